"""Experiment configuration: TOML file or built-in default -> a frozen, validated dataclass.

An experiment is named on the command line. A path to a `.toml` file is read as it is; a bare
name is `experiments/NAME.toml` when that file exists, else the built-in default for the data
set of that name. Command-line flags override the file. Every mistake is a ConfigError whose
message names the file, the key and the value, or the flag as the user typed it. The file's own
relative paths (data_dir, a CSV, an image folder) are read from the file's folder.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from nnlab import space
from nnlab.budget import parse_duration
from nnlab.cli import as_typed, joined, quoted
from nnlab.data import DATASETS, MEMORY
from nnlab.errors import ConfigError
from nnlab.builders import is_reference, reference_family
from nnlab.models import FAMILIES, families_for, register
from nnlab.source import source_label

TUNER_NAMES = ("random", "bayesian", "hyperband", "grid")

# Training settings whose default depends on the data and the family; an experiment or flag that
# sets one wins. The data's kind first, then the family's: the more specific wins.
# epochs 6 with factor 3 gives Hyperband rounds of 2 and 6 epochs (10 trials): after a single
# epoch a batch-normalised model's validation score is still noise (0.11 measured for one that
# reached 0.97 after two), and a round of 1 would discard the best configurations.
# ensemble 3: the average of the best three trials, registered unless the best alone is surely
# better on validation (champion.SINGLE_SURE); final_epochs 20: the champion trains on with its
# learning rate annealed to zero over them (hypermodel.fit_further; the CNN's row says 6, where
# an epoch costs seconds). Measured in BENCHMARKS.md, issues 15 and 30.
# A search whose epochs is set below its default and whose final_epochs is not trains its
# champion on in proportion: round(final_epochs * epochs / default epochs), at least 1 (epochs 2:
# round(20 * 2 / 6) = 7, a GAN's round(40 * 2 / 6) = 13; a table's 0 stays 0), so
# that a short search is short to the end (scaled_final_epochs). A final_epochs set always wins.
TRAINING_DEFAULTS = {"tuner": "hyperband", "max_trials": 20, "epochs": 6, "batch_size": 128, "final_epochs": 20,
                     "patience": 3, "ensemble": 3, "refit_repeats": 1}
KIND_TRAINING_DEFAULTS = {
    # A table of a few hundred rows is a few steps an epoch: it takes many epochs of small
    # batches, each a few milliseconds (BENCHMARKS.md, issue 13). Its trials are cross-validated
    # (nnlab/data/folds.py) and each trains until its folds stop improving, so that the epochs
    # they chose are what the champion's refit trains: a random search of 10 whole trials, not
    # Hyperband, whose 20 trials of a 60-epoch schedule were all 3-epoch first rounds (10: they run
    # in the search's own process, api.WorkerPlan), and no
    # further epochs after it (BENCHMARKS.md, issue 32). Each member of its refit is trained five
    # times from different initial weights, all averaged: a network of a few hundred rows varies
    # from one initialisation to the next by more than the trials differ (diabetes, seeds 1-3, the
    # same members: test RMSE 56.30 once each, 56.01 three times; breast_cancer 0.9766, 0.9825;
    # diabetes seed 2's members five times 55.03, three times 55.33: BENCHMARKS.md, fifth part).
    "table": {"tuner": "random", "max_trials": 10, "epochs": 60, "batch_size": 32, "final_epochs": 0, "patience": 10,
              "refit_repeats": 5},
}
EXPERIMENTS_DIR = Path("experiments")
# Names become MLflow names and folders under tuning/ and mlruns/: no separators, no "..".
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    dataset: str = "mnist"
    # The model family; None: the data set's own default (mnist: cnn, co2: lstm).
    model: str | None = None
    # The KerasTuner algorithm; None: the data's (TRAINING_DEFAULTS: Hyperband, a table's random).
    tuner: str | None = None
    # Most trials to run; for Hyperband a cap on its schedule. None: the data's (20, a table's 10).
    max_trials: int | None = None
    # Most epochs a trial trains (Hyperband's max_epochs); early stopping may end it sooner.
    # None: the data's and the family's (TRAINING_DEFAULTS and the two after it), as for
    # final_epochs, batch_size and patience.
    epochs: int | None = None
    # Epochs the champion trains on after the search, from its best checkpoint (0: none). None:
    # the data's and the family's, in proportion to a lower epochs (TRAINING_DEFAULTS' comment).
    final_epochs: int | None = None
    seed: int = 1
    # Examples per training step.
    batch_size: int | None = None
    # Epochs without a better objective (val_accuracy, val_rmse: the task's) before a trial stops early.
    patience: int | None = None
    validation_fraction: float = 0.1
    hyperband_factor: int = 3
    # The [space] table: hyperparameter name -> fixed value, [min, max] range or list of choices.
    space: dict = field(default_factory=dict)
    # Seconds for the whole command (no new trial starts that would not fit; None: no limit).
    time_budget: float | None = None
    # Seconds one trial may train; it then stops and is scored on the epochs it finished.
    trial_timeout: float | None = None
    # Training on an accelerator (nnlab.accelerators.Acceleration): float16 computation with
    # float32 variables for the whole search; XLA for every model (false: Keras' "auto", on for a
    # GPU); batches per call into the compiled train function.
    mixed_precision: bool = False
    jit_compile: bool = False
    steps_per_execution: int = 1
    # Trial checkpoints kept in tuning/: the best few; the champion is restored from one (an
    # average champion from `ensemble`, which keeps as many as it takes in).
    keep_checkpoints: int = 3
    # The best K trials of different hyperparameters averaged into one model, registered unless
    # the best trial alone is surely better on the validation split (champion.SINGLE_SURE); 0 or
    # 1: the best trial alone. None: 3 (the GAN: 0).
    ensemble: int | None = None
    # Folds each trial is cross-validated on (nnlab/data/folds.py): K fits, one per fold of the
    # training and validation rows, scored as their mean. 0: the one validation split. None: 5
    # for a table of fewer than folds.SMALL_TABLE_ROWS training and validation rows, else 0.
    cross_validation: int | None = None
    # The champion (each member of an average) trained once more from scratch on all the training
    # and validation rows for the epochs its folds chose, then registered. None: where the search
    # cross-validates.
    refit: bool | None = None
    # Times the refit trains each member, from different initial weights, all averaged. None: the
    # data's (a table's 5, else 1).
    refit_repeats: int | None = None
    # The refit's linear member (nnlab/linear_member.py): the no-hidden-layer model fit to its
    # optimum, averaged in where it scores on the folds as well as the members. None: where the
    # network family (dfn) searched a cross-validated table.
    linear_member: bool | None = None
    # Fits of each trial (of each fold) from different initial weights, scored as their mean:
    # KerasTuner's own setting, for trials whose score is noisy.
    executions_per_trial: int = 1
    # Failed trials in a row after which the search stops (a broken space, not bad luck).
    max_consecutive_failed_trials: int = 3
    data_dir: str | None = None
    # The trained model the transfer family starts from (nnlab.finetune's SOURCE): a registered
    # model ("mnist-cnn", "mnist-cnn@alias", "mnist-cnn/3", "models:/...") or a .keras file.
    source: str | None = None
    # The [data] table: the data set's own options (co2: window, horizon), each checked at load.
    data: dict = field(default_factory=dict)
    tracking_uri: str | None = None
    # Where the settings came from, for messages and the parent run's tags.
    origin: str = "built-in default"
    # The settings the command line set: a message about one names its flag, as the user typed it.
    flags: tuple[str, ...] = ()
    # A user's own builder as the user named it ("my_models.py:build", nnlab/builders.py); `model`
    # is then its name ("build"). None: a built-in family.
    builder: str | None = None

    def __post_init__(self):
        # The data set's defaults, where it is one nnlab knows (validate refuses the others).
        source = DATASETS.get(self.dataset)
        if source is not None:
            if self.model is None:
                object.__setattr__(self, "model", source.default_model)
            # The [data] options as the data set reads them, defaults included (logged as params);
            # an option whose default is None is absent unless given.
            defaults = {key: value for key, value in source.options.items() if value is not None}
            object.__setattr__(self, "data", {**defaults, **self.data})
        kind = source.kind if source is not None else None
        family = FAMILIES.get(self.model)  # its own defaults (models.Family.training_defaults)
        defaults = {**TRAINING_DEFAULTS, **KIND_TRAINING_DEFAULTS.get(kind, {}),
                    **(family.training_defaults if family is not None else {})}
        if self.final_epochs is None and self.epochs is not None:
            object.__setattr__(self, "final_epochs", scaled_final_epochs(self.epochs, defaults))
        for key, value in defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)

    @property
    def tuning_name(self) -> str:
        """The tuning/ folder and the registered model: one search per experiment and model,
        and per source for a fine-tune ("digits-from-mnist-cnn")."""
        if self.source is not None:
            return f"{self.name}-from-{source_label(self.source)}"
        return f"{self.name}-{self.model}"


def scaled_final_epochs(epochs, defaults: dict) -> int:
    """The champion's further epochs for a search of `epochs` whose final_epochs is not set: the
    default (`defaults`, the data's and the family's), in proportion where `epochs` is below
    their epochs (TRAINING_DEFAULTS' comment says the rule)."""
    final, default_epochs = defaults["final_epochs"], defaults["epochs"]
    if not isinstance(epochs, int) or epochs >= default_epochs or not final:
        return final  # a wrong epochs is validate's to say
    return max(1, round(final * epochs / default_epochs))


# Keys a TOML file may set, with the types they accept.
FILE_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "dataset": (str,),
    "model": (str,),
    "tuner": (str,),
    "max_trials": (int,),
    "epochs": (int,),
    "final_epochs": (int,),
    "seed": (int,),
    "batch_size": (int,),
    "patience": (int,),
    "validation_fraction": (float, int),
    "hyperband_factor": (int,),
    "space": (dict,),
    "time_budget": (int, float, str),
    "trial_timeout": (int, float, str),
    "mixed_precision": (bool,),
    "jit_compile": (bool,),
    "steps_per_execution": (int,),
    "keep_checkpoints": (int,),
    "ensemble": (int,),
    "cross_validation": (int,),
    "refit": (bool,),
    "refit_repeats": (int,),
    "linear_member": (bool,),
    "executions_per_trial": (int,),
    "max_consecutive_failed_trials": (int,),
    "data_dir": (str,),
    "source": (str,),
    "data": (dict,),
    "tracking_uri": (str,),
}


def _type_names(types: tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table"}
    return " or ".join(names[kind] for kind in types)


def _check_types(values: dict, where: str | None) -> None:
    """Each key known and of its type; `where` None: the values came from flags."""
    for key, value in values.items():
        if key not in FILE_KEYS:
            raise ConfigError(f"{where or 'command line'}: unknown key {key!r}; known keys: {', '.join(FILE_KEYS)}; "
                              f"a hyperparameter to fix or search goes in the [space] table")
        expected = FILE_KEYS[key]
        # bool is an int in Python; a TOML `true` is never a count, and only true or false is a switch.
        if isinstance(value, bool) != (bool in expected) or not isinstance(value, expected):
            named = f"{where}: {key} = {value!r}" if where else quoted(key, value)
            raise ConfigError(f"{named} must be {_type_names(expected)}")


DURATION_KEYS = ("time_budget", "trial_timeout")


def _normalise(values: dict, where: str | None) -> dict:
    """Durations to seconds and the [space] table checked, as the dataclass holds them; `where`
    None: the values came from flags."""
    values = dict(values)
    for key in DURATION_KEYS:
        if values.get(key) is not None:
            try:
                values[key] = parse_duration(values[key])
            except ValueError as error:
                raise ConfigError(f"{where}: {key} = {error}" if where else joined(key, str(error))) from None
    if "space" in values:
        try:
            values["space"] = space.parse(values["space"], where or "command line")
        except space.SpaceError as error:
            raise ConfigError(str(error)) from None
    return values


def named_setting(config: ExperimentConfig, key: str, joiner: str = " = ") -> str:
    """A setting in a message: its flag as typed where the command line set it, else the file (or
    the built-in default), the key and the value."""
    value = getattr(config, key)
    if key in config.flags:
        return as_typed(key, value)
    return f"{config.origin}: {key}{joiner}{str(value).lower() if isinstance(value, bool) else value}"


def validate(config: ExperimentConfig) -> ExperimentConfig:
    where = config.origin
    named = partial(named_setting, config)

    def choice(key: str, known) -> None:
        value = getattr(config, key)
        if value not in known:
            unknown = f"{quoted(key, value)}: unknown {key}" if key in config.flags else f"{where}: unknown {key} {value!r}"
            raise ConfigError(f"{unknown}; known: {', '.join(sorted(known))}")

    if not NAME_PATTERN.match(config.name) or ".." in config.name:
        raise ConfigError(
            f"{where}: name {config.name!r} must be letters, digits, '-', '_' or '.' (no path separators, no '..')"
        )
    choice("dataset", [name for name in DATASETS if name != MEMORY or config.dataset == MEMORY])  # not a name to type
    source = DATASETS[config.dataset]
    choice("model", FAMILIES)
    family = FAMILIES[config.model]
    if source.kind not in family.kinds:
        raise ConfigError(f"{named('model', ' ')} cannot take {config.dataset}'s {source.kind} data; "
                          f"families that can: {', '.join(families_for(source.kind))}")
    if family.needs_source != (config.source is not None):
        raise ConfigError(f"{named('model', ' ')} needs a source model (python -m nnlab.finetune SOURCE TARGET)"
                          if config.source is None else
                          f"{where}: source = {config.source!r} is for a fine-tune (model transfer), not model {config.model}")
    _check_data_options(config.data, config.dataset, source, where)
    choice("tuner", TUNER_NAMES)
    for key in ("epochs", "batch_size", "patience", "max_trials", "keep_checkpoints", "max_consecutive_failed_trials",
                "steps_per_execution", "executions_per_trial", "refit_repeats"):
        value = getattr(config, key)
        if value is not None and value < 1:
            raise ConfigError(f"{named(key)} must be at least 1")
    if config.max_trials is None and config.tuner != "hyperband":
        raise ConfigError(f"{named('tuner', ' ')} needs max_trials")
    problem = family.check(config, named) if family.check is not None else None
    if problem:
        raise ConfigError(problem)
    for key in ("final_epochs", "ensemble"):
        if getattr(config, key) < 0:
            raise ConfigError(f"{named(key)} must be 0 or more")
    if config.linear_member and source.kind != "table":
        raise ConfigError(f"{named('linear_member')}: the linear member is fit on a table's columns; "
                          f"{config.dataset} is {source.kind} data")
    if config.cross_validation is not None and (config.cross_validation < 0 or config.cross_validation == 1):
        raise ConfigError(f"{named('cross_validation')} must be 0 (one validation split) or at least 2 folds")
    if config.hyperband_factor < 2:
        raise ConfigError(f"{named('hyperband_factor')} must be at least 2")
    if not 0 < config.validation_fraction < 1:
        raise ConfigError(f"{named('validation_fraction')} must lie between 0 and 1")
    return config


def _check_data_options(options: dict, dataset: str, source, where: str) -> None:
    """The [data] table: keys the data set takes, each value of the kind it reads
    (DataSource.problem), and those it needs."""
    known = source.options
    for key, value in options.items():
        if key not in known:
            takes = f"known: {', '.join(known)}" if known else "it takes none"
            raise ConfigError(f"{where}: data.{key}: unknown option of data set {dataset}; {takes}")
        problem = source.problem(key, value)
        if problem:
            raise ConfigError(f"{where}: data.{key} = {value!r} {problem}")
    missing = [key for key in source.required if key not in options]
    if missing:
        example = ", ".join(f"{key} = ..." for key in missing)
        raise ConfigError(f"{where}: data set {dataset} needs {' and '.join(f'data.{key}' for key in missing)} "
                          f"in an experiment file's [data] table ([data] {example})")


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None


def _data_hint(path: Path) -> tuple[str, str] | None:
    """Where a CSV file or a folder is named in an experiment's place: (what it is, the experiment
    file that would search it); None for anything else."""
    if path.is_dir():
        return "a folder", _folder_file(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return "a table", _table_file(path)
    return None


def _folder_file(path: Path) -> str:
    return (f"an image folder is named in an experiment file, e.g. {path.name}.toml holding [data] "
            f'images = "{path.as_posix().rstrip("/")}/" (README: Your own data)')


def _table_file(path: Path) -> str:
    return (f"an experiment file names it and the column to predict, e.g. {path.stem}.toml holding "
            f'[data] csv = "{path.as_posix()}" and target = "COLUMN" (README: Your own data)')


def known_experiments() -> list[str]:
    files = sorted(path.stem for path in EXPERIMENTS_DIR.glob("*.toml")) if EXPERIMENTS_DIR.is_dir() else []
    # A data set that needs options (a CSV's file, an image folder) is named in a file, not alone.
    return sorted(set(files) | {name for name, source in DATASETS.items() if not source.required and name != MEMORY})


def _flags(overrides: dict | None) -> dict:
    """The command line's flags (or the API's settings) checked, as ExperimentConfig takes them."""
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    _check_types(overrides, None)
    return {**_normalise(overrides, None), "flags": tuple(overrides)}


def memory_config(name: str, overrides: dict | None = None) -> ExperimentConfig:
    """The settings of a search over data handed over from Python (nnlab.data.register_memory
    has registered it as the data set MEMORY): the experiment's name, then `overrides`."""
    return validate(ExperimentConfig(**{"name": name, **_flags(overrides), "dataset": MEMORY,
                                        "origin": "nnlab.search(data=...)"}))


def load_config(experiment: str, overrides: dict | None = None) -> ExperimentConfig:
    """The experiment's settings: file or built-in default, then `overrides`, the command line's
    flags (None values ignored)."""
    flags = _flags(overrides)
    path = Path(experiment)
    if experiment.endswith(".toml") or path.parent != Path("."):
        if path.is_dir():
            hint = f": {_folder_file(path)}" if path.suffix != ".toml" else ""
            raise ConfigError(f"experiment file {path} is a folder, not a TOML file{hint}")
        if not path.is_file():
            raise ConfigError(f"experiment file {path} does not exist")
        if path.suffix.lower() == ".csv":
            raise ConfigError(f"{path} is a table, not an experiment file: {_table_file(path)}")
    elif (EXPERIMENTS_DIR / f"{experiment}.toml").is_file():
        path = EXPERIMENTS_DIR / f"{experiment}.toml"
    elif experiment in DATASETS:
        return validate(ExperimentConfig(**{"name": experiment, "dataset": experiment, **flags}))
    else:
        hint = _data_hint(path)
        said = f", {hint[0]}: {hint[1]}" if hint else ""
        raise ConfigError(f"unknown experiment {experiment!r}{said}; known: {', '.join(known_experiments())}")

    values = _read_toml(path)
    _check_types(values, str(path))
    values = _relative_to_file(_normalise(values, str(path)), path)
    values.setdefault("name", path.stem)
    if isinstance(values.get("model"), str) and is_reference(values["model"]):
        # `model = "my_models.py:build"`: the user's builder, a family named after it, read beside the file.
        family = register(reference_family(values["model"], path.parent, str(path)))
        values["builder"], values["model"] = values["model"], family.name
    if "dataset" not in values:  # `[data] csv = "demand.csv"` names the csv data set
        named = [name for name, source in DATASETS.items()
                 if source.path_key is not None and source.path_key in values.get("data", {})]
        if len(named) == 1:
            values["dataset"] = named[0]
    return validate(ExperimentConfig(**{**values, **flags, "origin": str(path)}))


def _relative_to_file(values: dict, path: Path) -> dict:
    """The file's own relative paths (data_dir, the [data] table's csv or images) read from the
    file's folder, as every tool that reads a config file reads them; flags stay relative to the
    current folder."""
    folder = path.parent
    path_keys = {source.path_key for source in DATASETS.values() if source.path_key is not None}

    def resolved(value):
        if not isinstance(value, str) or not value.strip():
            return value  # refused by the data set's own check
        if value.startswith("~"):
            return os.path.expanduser(value)
        if os.path.abspath(folder) == os.getcwd() or Path(value).is_absolute():
            return value  # as the user wrote it, for messages
        return os.path.join(folder, value)  # os.path keeps a folder's trailing '/' as the user wrote it

    values = dict(values)
    if "data_dir" in values:
        values["data_dir"] = resolved(values["data_dir"])
    if isinstance(values.get("data"), dict):
        values["data"] = {key: resolved(value) if key in path_keys else value for key, value in values["data"].items()}
    return values


def as_params(config: ExperimentConfig) -> dict:
    """The settings as MLflow params of the parent run (tracking_uri, origin and flags are not settings)."""
    values = dataclasses.asdict(config)
    for key in ("tracking_uri", "origin", "flags"):  # `builder` stays: which code was searched
        values.pop(key)
    for table in ("space", "data"):
        for name, value in values.pop(table).items():
            values[f"{table}.{name}"] = value
    return {key: value for key, value in values.items() if value is not None}

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nnlab.config import TUNER_NAMES, load_config
from nnlab.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_builtin_default_for_a_known_data_set(workdir):
    config = load_config("mnist")
    assert (config.name, config.dataset, config.model, config.tuner) == ("mnist", "mnist", "cnn", "hyperband")
    assert config.tuning_name == "mnist-cnn"
    assert config.origin == "built-in default"


def test_training_defaults_per_family_and_a_set_one_wins(workdir):
    gan = load_config("mnist", {"model": "gan"})
    # A GAN learns per step; an average of generators' images is no generator's.
    assert (gan.batch_size, gan.final_epochs, gan.patience, gan.ensemble) == (32, 40, 8, 0)
    cnn = load_config("mnist")  # the CNN's members train on for 6 annealed epochs, other families 20
    assert (cnn.batch_size, cnn.final_epochs, cnn.patience, cnn.ensemble) == (128, 6, 3, 3)
    assert load_config("mnist", {"model": "dfn"}).final_epochs == 20
    assert load_config("mnist", {"ensemble": 0}).ensemble == 0
    assert load_config("mnist", {"model": "gan", "batch_size": 64}).batch_size == 64
    write(workdir / "experiments" / "gan.toml", 'dataset = "mnist"\nmodel = "gan"\nbatch_size = 16\nfinal_epochs = 0\n')
    from_file = load_config("gan")
    assert (from_file.batch_size, from_file.final_epochs, from_file.patience) == (16, 0, 8)


def test_experiment_file_by_name_and_by_path_with_overrides(workdir):
    write(workdir / "experiments" / "digits-dfn.toml", 'name = "mnist"\nmodel = "dfn"\ntuner = "random"\nmax_trials = 4\n')
    by_name = load_config("digits-dfn")
    assert (by_name.name, by_name.model, by_name.tuner, by_name.max_trials) == ("mnist", "dfn", "random", 4)
    by_path = load_config(str(workdir / "experiments" / "digits-dfn.toml"), {"max_trials": 7, "epochs": None, "seed": 5})
    assert (by_path.max_trials, by_path.seed, by_path.epochs) == (7, 5, load_config("mnist").epochs)


def test_name_defaults_to_the_file_stem(workdir):
    path = write(workdir / "other" / "quick.toml", 'dataset = "mnist"\n')
    assert load_config(str(path)).name == "quick"


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs = [", "not valid TOML"),
        ("epochz = 3\n", "unknown key 'epochz'"),
        ('epochs = "3"\n', "epochs = '3' must be an integer"),
        ("max_trials = true\n", "max_trials = True must be an integer"),
        ('model = "transformer"\n', "unknown model 'transformer'; known: cnn, dfn, gan, gru, linear, lstm, rnn"),
        ('tuner = "annealing"\n', "unknown tuner 'annealing'; known: bayesian, grid, hyperband, random"),
        ('dataset = "cifar"\n', "unknown dataset 'cifar'; known: breast_cancer, cifar10, co2, csv, diabetes, digits, fashion_mnist, images, mnist, wine"),
        ('name = "../escape"\n', "no path separators"),
        ("epochs = 0\n", "epochs = 0 must be at least 1"),
        ("validation_fraction = 1.5\n", "between 0 and 1"),
        ("final_epochs = -1\n", "final_epochs = -1 must be 0 or more"),
        ("steps_per_execution = 0\n", "steps_per_execution = 0 must be at least 1"),
        ("steps_per_execution = 2.5\n", "steps_per_execution = 2.5 must be an integer"),
        ("steps_per_execution = true\n", "steps_per_execution = True must be an integer"),
        ('mixed_precision = "yes"\n', "mixed_precision = 'yes' must be true or false"),
        ("jit_compile = 1\n", "jit_compile = 1 must be true or false"),
        ('model = "gan"\nmixed_precision = true\n', "mixed_precision = true: model gan trains in float32"),
    ],
)
def test_config_mistakes_name_file_key_and_value(workdir, text, message):
    path = write(workdir / "experiments" / "bad.toml", text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config("bad")
    assert str(path.relative_to(workdir)) in str(caught.value)


def test_accelerator_settings_from_a_file(workdir):
    from nnlab.accelerators import Acceleration
    from nnlab.config import as_params

    default = load_config("mnist")
    assert (default.mixed_precision, default.jit_compile, default.steps_per_execution) == (False, False, 1)
    write(workdir / "experiments" / "gpu.toml",
          'dataset = "mnist"\nmixed_precision = true\njit_compile = true\nsteps_per_execution = 16\n')
    config = load_config("gpu")
    assert (config.mixed_precision, config.jit_compile, config.steps_per_execution) == (True, True, 16)
    assert Acceleration.from_config(config) == Acceleration(mixed_precision=True, jit_compile=True, steps_per_execution=16)
    assert {key: as_params(config)[key] for key in ("mixed_precision", "jit_compile", "steps_per_execution")} == {
        "mixed_precision": True, "jit_compile": True, "steps_per_execution": 16}
    # The GAN's own train_step takes XLA and steps per execution, not mixed precision.
    write(workdir / "experiments" / "gan-xla.toml", 'model = "gan"\njit_compile = true\nsteps_per_execution = 4\n')
    assert load_config("gan-xla").steps_per_execution == 4


def test_unknown_experiment_lists_the_known_ones(workdir):
    write(workdir / "experiments" / "mine.toml", "")
    with pytest.raises(ConfigError, match="unknown experiment 'nope'; known: breast_cancer, cifar10, co2, diabetes, digits, fashion_mnist, mine, mnist, wine"):
        load_config("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("missing/file.toml")


def test_tuner_names_match_the_algorithms():
    from nnlab.oracles import ALGORITHMS

    assert set(TUNER_NAMES) == set(ALGORITHMS)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["nope"], "unknown experiment 'nope'"),
        (["mnist", "--epochs", "abc"], "'abc' is not a whole number"),
        (["mnist", "--max-trials", "0"], "must be at least 1"),
        (["mnist", "--tuner", "annealing"], "invalid choice: 'annealing'"),
        (["mnist", "--bogus"], "unrecognized arguments: --bogus"),
        (["experiments/broken.toml"], "not valid TOML"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(workdir, arguments, message):
    write(workdir / "experiments" / "broken.toml", "epochs = = 3")
    done = subprocess.run([sys.executable, "-m", "nnlab.search", *arguments], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (workdir / "mlruns").exists() and not (workdir / "tuning").exists()


def test_a_missing_data_dir_is_one_line_and_exit_2(workdir, capsys):
    # Found once TensorFlow has started: in this process, where it has (a process of its own took
    # 6 s to say it; a real interpreter's one line after TensorFlow's start is test_bad_input.py's).
    from nnlab.search import main
    from test_bad_input import assert_refused

    assert_refused(capsys, main(["mnist", "--data-dir", "no/such/dir"]), workdir,
                   "data directory no/such/dir does not exist")


def test_shipped_experiment_files_are_valid(monkeypatch):
    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    names = sorted(path.stem for path in (root / "experiments").glob("*.toml"))
    assert names
    for name in names:
        assert load_config(name).origin == f"experiments/{name}.toml"


def test_a_files_own_paths_are_read_from_its_folder_and_flags_from_here(workdir):
    write(workdir / "exp" / "demand.toml", 'data_dir = "idx/"\n[data]\ncsv = "demand.csv"\ntarget = "y"\n')
    config = load_config("exp/demand.toml")
    assert (config.data["csv"], config.data_dir) == ("exp/demand.csv", "exp/idx/")
    assert load_config("exp/demand.toml", {"data_dir": "idx"}).data_dir == "idx"  # a flag: the current folder's
    write(workdir / "here.toml", f'[data]\ncsv = "{workdir}/demand.csv"\ntarget = "y"\n')
    assert load_config("here.toml").data["csv"] == f"{workdir}/demand.csv"  # absolute: as written
    write(workdir / "here.toml", '[data]\ncsv = "demand.csv"\ntarget = "y"\n')
    assert load_config(str(workdir / "here.toml")).data["csv"] == "demand.csv"  # the file's folder is this one


@pytest.mark.parametrize(("text", "overrides", "message"), [
    (None, {"ensemble": -1}, "--ensemble -1 must be 0 or more"),
    (None, {"model": "cnn", "ensemble": None}, "--model cnn cannot take wine's table data; families that can: dfn, linear"),
    ('model = "gan"\n', {"ensemble": 2}, "--ensemble 2: an average of generators' images is no generator's"),
    ('model = "gan"\n', {"mixed_precision": True}, "--mixed-precision: model gan trains in float32"),
    ('model = "gan"\n', {"jit_compile": True, "mixed_precision": True}, "--mixed-precision: model gan"),
    ("epochs = 0\n", {"seed": 3}, "bad.toml: epochs = 0 must be at least 1"),  # the flag is not the mistake
    (None, {"epochs": "3"}, "--epochs '3' must be an integer"),
    (None, {"time_budget": "soon"}, "--time-budget 'soon' is not a duration"),
])
def test_a_mistake_from_a_flag_names_the_flag_as_typed(workdir, text, overrides, message):
    experiment = "wine" if "model" in overrides else "mnist"
    if text is not None:
        experiment = str(write(workdir / "bad.toml", text).relative_to(workdir))
    with pytest.raises(ConfigError) as caught:
        load_config(experiment, overrides)
    assert str(caught.value).startswith(message)


def test_the_flags_given_are_kept_but_not_logged(workdir):
    from nnlab.config import as_params

    config = load_config("mnist", {"seed": 4, "jit_compile": True, "epochs": None})
    assert config.flags == ("seed", "jit_compile") and config.origin == "built-in default"
    assert "flags" not in as_params(config) and as_params(config)["seed"] == 4


def test_a_shorter_search_trains_its_champion_on_in_proportion(workdir):
    # round(default final_epochs x epochs / default epochs), at least 1: the CNN's 6 x 2 / 6 = 2,
    # a DFN's 20 x 2 / 6 = 6.7.
    assert load_config("mnist", {"epochs": 2}).final_epochs == 2
    assert load_config("mnist", {"epochs": 1}).final_epochs == 1
    assert load_config("mnist", {"epochs": 2, "model": "dfn"}).final_epochs == 7
    assert load_config("mnist", {"epochs": 2, "model": "gan"}).final_epochs == 13  # 40 x 2 / 6
    # A table's default is none (its trials train until their folds stop improving): none stays none.
    assert (load_config("wine", {"epochs": 2}).final_epochs, load_config("wine", {"epochs": 1}).final_epochs) == (0, 0)
    assert load_config("wine", {"epochs": 2, "final_epochs": 3}).final_epochs == 3
    # A table's refit trains each member five times; other data once; a setting wins.
    assert (load_config("wine", {}).refit_repeats, load_config("mnist", {}).refit_repeats) == (5, 1)
    assert load_config("wine", {"refit_repeats": 1}).refit_repeats == 1
    assert load_config("co2", {"epochs": 2}).final_epochs == 7
    # The default's epochs or more: the default's final_epochs, never more.
    assert [load_config("mnist", {"epochs": epochs}).final_epochs for epochs in (None, 6, 12)] == [6, 6, 6]
    # A final_epochs set always wins, 0 included: the flag's, the file's, the flag's over the file's.
    assert [load_config("mnist", {"epochs": 2, "final_epochs": final}).final_epochs for final in (0, 2, 30)] == [0, 2, 30]
    write(workdir / "experiments" / "short.toml", 'dataset = "mnist"\nepochs = 2\n')
    write(workdir / "experiments" / "set.toml", 'dataset = "mnist"\nepochs = 2\nfinal_epochs = 9\n')
    assert (load_config("short").final_epochs, load_config("set").final_epochs) == (2, 9)
    assert load_config("set", {"final_epochs": 1}).final_epochs == 1


def test_the_proportion_is_the_same_rule_for_every_family_and_kind_of_data(workdir):
    from nnlab.config import TRAINING_DEFAULTS
    from nnlab.models import family_names

    assert TRAINING_DEFAULTS["final_epochs"] >= TRAINING_DEFAULTS["epochs"]
    checked = 0
    for dataset in ("mnist", "co2", "wine"):
        for model in family_names(searchable_only=True):
            try:
                default = load_config(dataset, {"model": model})
            except ConfigError:  # a family that cannot take this data
                continue
            for epochs in range(1, default.epochs + 2):
                config = load_config(dataset, {"model": model, "epochs": epochs})
                expected = (default.final_epochs if epochs >= default.epochs or not default.final_epochs
                            else max(1, round(default.final_epochs * epochs / default.epochs)))
                assert config.final_epochs == expected, (dataset, model, epochs)
                assert config.final_epochs <= default.final_epochs
            checked += 1
    assert checked >= 7 + 5 + 2  # images: all but transfer; a series: dfn, linear, rnn, lstm, gru; a table: dfn, linear


def test_the_final_epochs_flag(workdir, capsys):
    from nnlab import search

    assert search.parse_args(["co2", "--epochs", "2", "--final-epochs", "0"]).final_epochs == 0
    assert search.main(["mnist", "--final-epochs", "-1"]) == 2
    assert capsys.readouterr().err == "nnlab.search: error: --final-epochs -1 must be 0 or more\n"
    assert "--final-epochs" in subprocess.run([sys.executable, "-m", "nnlab.search", "--help"], capture_output=True,
                                              text=True, timeout=120).stdout

"""The model registry: a search's champion logged on its run and registered as a new version of
`<experiment>-<model>`, the alias `champion` moving to it only when it beats the holder; a
reference ("mnist-cnn", "mnist-cnn@alias", "mnist-cnn/3") read back as a version or a model.

mlflow.keras (which loads TensorFlow) and nnlab.tabular (Keras) are imported inside functions,
only where a model is saved or loaded, so that reading the store back (nnlab.report, nnlab.ui)
loads no TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.utils import _save_example
from mlflow.types.schema import ColSpec, Schema

from nnlab.accelerators import BACKEND_TITLES, start_backend
from nnlab.errors import TrackingError
from nnlab.tasks import get_task
from nnlab.tracking.store import configure, no_store, reading_client, resolve_tracking_uri
from nnlab.tracking.tags import (
    CHAMPION_ALIAS,
    CHAMPION_ARTIFACT,
    CHAMPION_TRIAL_TAG,
    CHAMPION_VERSION_TAG,
    TEST_DATA_TAG,
)


@dataclass(frozen=True)
class ChampionRecord:
    version: str
    promoted: bool
    previous_version: str | None
    # The alias holder's test_<task metric>: on this search's test split, rescored there when it
    # was tested on other data (`rescored`).
    previous_test_score: float | None
    rescored: bool = False


@dataclass(frozen=True)
class HolderScore:
    """The alias holder scored on a new search's test split (it was tested on other data), or
    why it could not be (`score` None)."""

    version: str
    score: float | None
    reason: str | None = None


def log_champion(
    client: MlflowClient,
    run_id: str,
    model,
    registered_name: str,
    example_inputs,
    example_outputs,
    test_metrics: dict,
    trial_id: str,
    pip_requirements: list[str],
    task=None,
    version_tags: dict | None = None,
    metadata: dict | None = None,
    datasets: dict | None = None,
    holder_score: HolderScore | None = None,
    judged_by: str | None = None,
) -> ChampionRecord:
    """Log the champion (.keras, signature, input example, `metadata`) as an MLflow 3 logged
    model of the search's run `run_id` (the active run), register a new version from it, and move
    the `champion` alias to it when its test score beats the holder's, as the task ranks them
    (`task` None: classification). `test_metrics` are logged on the run, linked to the logged
    model and to the split of `datasets` (MLflow datasets by context) they were measured on.
    The holder's score is its own where it was tested on the same split, else `holder_score`.
    SearchTracker's log_champion says what the other arguments are."""
    task = task or get_task(None)
    import mlflow.keras  # imports Keras: only where a model is saved or loaded

    # Looked up when called, not imported by name: benchmarks/search_overhead.py wraps it there.
    signature = mlflow.models.infer_signature(example_inputs, example_outputs)

    def save(folder: str, description: Model) -> None:
        loadable_anywhere(model)
        if isinstance(example_inputs, pd.DataFrame):
            _save_table_model(model, folder, description, signature, example_inputs[:2], pip_requirements)
        else:
            mlflow.keras.save_model(model, folder, mlflow_model=description, signature=signature,
                                    input_example=example_inputs[:2], pip_requirements=pip_requirements)

    with _in_nnlabs_words():
        logged = Model.log(artifact_path=None, flavor=_SavedByNnlab(save), name=CHAMPION_ARTIFACT, run_id=run_id,
                           metadata=metadata, params={"nnlab.champion_trials": trial_id}, flavor_name="keras",
                           # nnlab's tests serve every kind it registers; not paid again in each search
                           validate_serving_input=False)
        registered = mlflow.register_model(logged.model_uri, registered_name)
    _log_linked_metrics(test_metrics, logged.model_id, datasets or {})
    version = str(registered.version)
    test_score = float(test_metrics[task.test_key])
    test_data = test_label(datasets["test"], judged_by) if datasets and "test" in datasets else None
    tags = {**(version_tags or {}), task.test_key: test_score, "trial": trial_id, "run_id": run_id,
            **({TEST_DATA_TAG: test_data} if test_data else {})}
    for key, value in tags.items():
        client.set_model_version_tag(registered_name, version, key, str(value))
    record = _alias_moved(client, registered_name, version, task, test_score, test_data, holder_score)
    mlflow.set_tags({CHAMPION_VERSION_TAG: version, CHAMPION_TRIAL_TAG: trial_id})
    return record


def test_label(dataset, judged_by: str | None = None) -> str:
    """How a version was tested, as its TEST_DATA_TAG says: the MLflow dataset, "name@digest",
    and what judged it where something did (" judged by mnist-cnn/3")."""
    return f"{dataset.name}@{dataset.digest}" + (f" judged by {judged_by}" if judged_by else "")


def _alias_moved(client: MlflowClient, name: str, version: str, task, test_score: float, test_data: str | None,
                 holder_score: HolderScore | None) -> ChampionRecord:
    """Move the alias to `version` when it beats the holder on the same test split: the
    holder's own score where its TEST_DATA_TAG is `test_data`, else `holder_score` (the holder
    rescored on this split). A holder that could not be scored here gives way. The version's
    description says which test split decided."""
    previous = alias_holder(client, name)
    rescored = previous is not None and tested_otherwise(previous, test_data)
    previous_score = None
    if previous is None:
        decided = "the first version of this model: alias champion set"
    elif not rescored:
        previous_score = float(previous.tags[task.test_key]) if task.test_key in previous.tags else None
        decided = f"version {previous.version} had {task.test_key} {previous_score:.4f} on the same test split"
    elif holder_score is not None and holder_score.version == str(previous.version) and holder_score.score is not None:
        previous_score = holder_score.score
        decided = (f"version {previous.version}, tested on {_shown(previous.tags.get(TEST_DATA_TAG))}, scored "
                   f"{task.test_key} {previous_score:.4f} on this version's test split")
    else:
        why = holder_score.reason if holder_score and holder_score.reason else "it was not scored"
        decided = f"version {previous.version} could not be scored on this test split ({why})"
    promoted = previous is None or task.better(test_score, previous_score)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    outcome = "alias champion moved here" if promoted else f"alias champion stays on version {previous.version}"
    client.update_model_version(name, version, description=(
        f"Tested on {_shown(test_data)}: {task.test_key} {test_score:.4f}. {decided[0].upper()}{decided[1:]}"
        + ("." if previous is None else f"; {outcome}.")))
    return ChampionRecord(version=version, promoted=promoted,
                          previous_version=str(previous.version) if previous else None,
                          previous_test_score=previous_score, rescored=rescored and previous_score is not None)


def tested_otherwise(version, test_data: str | None) -> bool:
    """Whether a registered version (MLflow's ModelVersion) was tested otherwise than `test_data`
    (a TEST_DATA_TAG value) says: its test score cannot be compared with one on `test_data`."""
    return version.tags.get(TEST_DATA_TAG) != test_data


def _shown(test_data: str | None) -> str:
    """A TEST_DATA_TAG in words: "mnist-test (digest 1a2b3c4d)"."""
    if not test_data:
        return "a test split nnlab did not record (registered before nnlab named it)"
    split, _, judge = test_data.partition(" judged by ")
    name, _, digest = split.rpartition("@")
    return f"{name} (digest {digest})" + (f", judged by {judge}" if judge else "")


def _log_linked_metrics(metrics: dict, model_id: str, datasets: dict) -> None:
    """`metrics` on the active run, each linked to the logged model and to the split it was
    measured on: test_ ones to the test split, val_ ones to the validation split."""
    remaining = {key: float(value) for key, value in metrics.items()}
    for context, prefix in (("test", "test_"), ("validation", "val_"), (None, "")):
        part = {key: value for key, value in remaining.items() if key.startswith(prefix)}
        remaining = {key: value for key, value in remaining.items() if key not in part}
        if part:
            mlflow.log_metrics(part, model_id=model_id, dataset=datasets.get(context))


def loadable_anywhere(model) -> None:
    """A compiled model's compile settings made readable on every backend before it is saved.
    Keras on PyTorch saves its optimizer as a class of its own backend
    (keras.src.backend.torch.optimizers.torch_adam.Adam), which Keras on TensorFlow or JAX cannot
    import, and the whole model failed to load there: named by its public class instead
    (keras.optimizers.Adam, the same settings). Keras on JAX saves its "auto" XLA as true, which
    Keras on PyTorch reads as torch.compile (a wine model's first predict took 38 s there, with
    dynamo's warnings): saved as "auto", for the loading backend to decide."""
    import keras

    compiled = getattr(model, "_compile_config", None)
    if compiled is None:
        return
    if "jit_compile" in compiled.config:
        compiled.config["jit_compile"] = "auto"
    optimizer = compiled.config.get("optimizer")
    name = type(optimizer).__name__  # a backend's own class, e.g. torch_adam.Adam: Adam
    if not type(optimizer).__module__.startswith("keras.src.backend.") or getattr(keras.optimizers, name, None) is None:
        return
    compiled.config["optimizer"] = {"module": "keras.optimizers", "class_name": name,
                                    "config": optimizer.get_config(), "registered_name": name}


class _SavedByNnlab:
    """A flavor for mlflow.models.Model.log, the way MLflow 3 makes a logged model: the model
    saved by `save(folder, description)` into the folder Model.log names. The folder is created
    first: mlflow.keras.save_model(input_example=...) writes the example before it creates its
    folder (mlflow issue 16183, still so in MLflow 3.17), so mlflow.keras.log_model cannot log
    an input example."""

    __name__ = "nnlab"

    def __init__(self, save):
        self.save = save

    def save_model(self, path: str, mlflow_model: Model, **_) -> None:
        Path(path).mkdir(parents=True)
        self.save(path, mlflow_model)


def alias_holder(client: MlflowClient, registered_name: str):
    """The version the champion alias of `registered_name` is on (MLflow's ModelVersion), or None."""
    try:
        return client.get_model_version_by_alias(registered_name, CHAMPION_ALIAS)
    except MlflowException:
        return None


# What mlflow.register_model prints on stderr with `print` (mlflow.utils.logging_utils.eprint:
# no logger whose level could be set) and nnlab says in its own words ("Registered mnist-cnn
# version 1").
REGISTRY_NOTICES = re.compile(r"Successfully registered model '.+'\.|Created version '\d+' of model '.+'\."
                              r"|Registered model '.+' already exists\. Creating a new version of this model\.\.\.")
# Its INFO line "Waiting up to 300 seconds for model version to finish creation" (a store behind
# a server: --workers), from this logger; its warnings still pass.
REGISTRY_WAIT_LOGGER = "mlflow.store.model_registry.abstract_store"


@contextlib.contextmanager
def _in_nnlabs_words():
    """mlflow.register_model in the block without its notices (REGISTRY_NOTICES and the wait on
    a server): nnlab says what was registered. MLflow's warnings, errors and anything else
    written on stderr meanwhile still pass."""
    waiting = logging.getLogger(REGISTRY_WAIT_LOGGER)
    level = waiting.level
    waiting.setLevel(logging.WARNING)
    stderr = _WithoutLines(sys.stderr, REGISTRY_NOTICES)
    try:
        with contextlib.redirect_stderr(stderr):
            yield
    finally:
        stderr.end()
        waiting.setLevel(level)


class _WithoutLines(io.TextIOBase):
    """A text stream that passes every line on to `target` but those `pattern` matches whole."""

    def __init__(self, target, pattern: re.Pattern):
        super().__init__()
        self.target, self.pattern, self.pending = target, pattern, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if not self.pattern.fullmatch(line):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def end(self) -> None:
        """The last line, unfinished, passed on as it is."""
        if self.pending and not self.pattern.fullmatch(self.pending):
            self.target.write(self.pending)
        self.pending = ""
        self.target.flush()


def _save_table_model(model, folder: str, description: Model, signature, example,
                      pip_requirements: list[str]) -> None:
    """A model over a table's columns, saved as the Keras flavor (nnlab.load_model and
    mlflow.keras.load_model read it) whose python_function flavor (what `mlflow models serve`
    runs) is nnlab/tabular.py, shipped in the model's code/: the stock Keras one hands a DataFrame
    to the model as one array, which a model with one input per column cannot take. The
    signature is the table's columns, so that a served model takes `dataframe_split` rows.
    `description` is the MLmodel being written (Model.log's)."""
    import mlflow.keras

    from nnlab import tabular

    # The Keras flavor accepts only a signature of tensors; it is set below. Said, not missing.
    keras_logger = logging.getLogger("mlflow.keras.save")
    level = keras_logger.level
    keras_logger.setLevel(logging.ERROR)
    try:
        mlflow.keras.save_model(model, folder, mlflow_model=description, pip_requirements=pip_requirements)
    finally:
        keras_logger.setLevel(level)
    code = Path(folder) / "code"
    code.mkdir()
    shutil.copyfile(tabular.__file__, code / "nnlab_tabular.py")
    # A request names every column, as the CSV has them; a value may be missing (null): the model
    # fills it (FillMissing). Optional columns let a request without one through MLflow's schema,
    # to fail inside Keras ("Missing data for input"); required, MLflow says which it lacks.
    columns = [ColSpec(column.type, column.name) for column in signature.inputs.inputs]
    description.signature = ModelSignature(inputs=Schema(columns), outputs=signature.outputs)
    _save_example(description, example, folder)
    description.flavors["python_function"].update(loader_module="nnlab_tabular", code="code")
    description.save(Path(folder) / "MLmodel")


def model_uri(reference: str) -> str:
    """"mnist-cnn" -> models:/mnist-cnn@champion; "mnist-cnn@alias" and "mnist-cnn/3" as named."""
    if reference.startswith("models:/"):
        return reference
    if "@" in reference or "/" in reference:
        return f"models:/{reference}"
    return f"models:/{reference}@{CHAMPION_ALIAS}"


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model, as a reference names it."""

    name: str
    version: str
    run_id: str | None
    uri: str  # models:/<name>/<version>: this version, whatever the alias does later
    tags: dict = field(default_factory=dict)  # the version's tags (its test score, lineage, class names)


def registered_version(reference: str, tracking_uri: str | None = None, or_else: str = "") -> RegisteredVersion:
    """The version a reference names ("mnist-cnn": its champion, "@alias", "/3", models:/...),
    read without creating anything: an unknown name, alias or version, or no store at all, is a
    TrackingError that says which (and for no store, `or_else`: what else the caller takes)."""
    uri = resolve_tracking_uri(tracking_uri)
    missing = no_store(uri, holding=f", so no registered model {reference!r}", or_else=or_else)
    if missing:
        raise TrackingError(missing)
    target = model_uri(reference)[len("models:/"):]
    name, alias = target.split("@", 1) if "@" in target else (target, None)
    name, version = name.split("/", 1) if "/" in name and alias is None else (name, None)
    client = reading_client(uri)
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        known = sorted(model.name for model in client.search_registered_models())
        raise TrackingError(f"no registered model {name!r} in {uri}; registered: "
                            f"{', '.join(known) if known else 'none yet'}") from None
    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException:
        which = f"alias {alias!r}" if alias else f"version {version!r}"
        if alias and alias.isdigit():  # "@2" meant as a version
            which += f" (version {alias} is {name}/{alias})"
        raise TrackingError(f"registered model {name!r} has no {which} in {uri}; "
                            f"{_versions_and_aliases(client, registered)}") from None
    return RegisteredVersion(name, str(found.version), found.run_id, f"models:/{name}/{found.version}",
                             dict(found.tags or {}))


def _versions_and_aliases(client: MlflowClient, registered) -> str:
    """What a reference to `registered` may name: "versions 1, 2; alias champion (version 1)"."""
    versions = sorted(int(found.version) for found in client.search_model_versions(f"name = '{registered.name}'"))
    aliases = ", ".join(f"{alias} (version {version})" for alias, version in sorted((registered.aliases or {}).items()))
    return (f"{'version' if len(versions) == 1 else 'versions'} {', '.join(map(str, versions)) or 'none'}"
            + (f"; {'alias' if len(registered.aliases) == 1 else 'aliases'} {aliases}" if aliases else ""))


def _check_runs_here(model, uri: str) -> None:
    """A table model trained on TensorFlow reads its text columns with StringLookup, which runs
    on TensorFlow only: on another backend its predict would fail inside Keras."""
    import keras

    from nnlab.tabular import text_looked_up

    looked_up = text_looked_up(model) if keras.config.backend() != "tensorflow" else []
    if looked_up:
        columns = ", ".join(map(repr, looked_up))
        raise TrackingError(f"{uri} reads its text column{'s' if len(looked_up) > 1 else ''} {columns} with Keras' "
                            f"StringLookup, which runs on TensorFlow only, not {BACKEND_TITLES[keras.config.backend()]}: "
                            "load it with KERAS_BACKEND=tensorflow (a model searched on JAX or PyTorch reads the "
                            "text's codes and loads on any backend)")


def load_registered_model(reference: str, tracking_uri: str | None = None):
    """A registered Keras model, loaded in Keras' safe mode (no pickled code runs). A table's
    model predicts from a DataFrame or a dict of columns (nnlab.tabular.reads_rows). TensorFlow
    starts quietly first, as in nnlab's commands: `nnlab.load_model` from Python is this."""
    start_backend()
    import mlflow.keras

    from nnlab.tabular import input_of, reads_rows  # and registers the layer a table model holds, FillMissing

    configure(tracking_uri)
    uri = model_uri(reference)
    try:
        with warnings.catch_warnings():
            # A model trained in mixed precision saved its loss-scaling optimizer; loaded under the
            # caller's float32 policy its optimizer is the plain one, and Keras warns that the
            # saved state does not fit it. What a loaded model is for (predict, serve, a
            # fine-tune's source) never reads that state.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = mlflow.keras.load_model(uri, load_model_kwargs={"safe_mode": True})
        _check_runs_here(model, uri)
        return reads_rows(model) if isinstance(input_of(model), dict) else model
    except MlflowException as error:
        raise TrackingError(f"cannot load {uri} from {resolve_tracking_uri(tracking_uri)}: {error.message}") from None
    except ValueError as error:
        if "safe_mode" not in str(error):
            raise
        raise TrackingError(f"refused to load {uri}: it holds Python code (a Lambda layer or a pickled "
                            "function), which Keras' safe mode does not run") from None

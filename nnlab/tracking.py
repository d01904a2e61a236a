"""MLflow tracking: the only module that imports mlflow.

Run layout: the MLflow experiment is the nnlab experiment; one parent run per search, tagged
with its search id so that a resumed search reopens it; one nested run per KerasTuner trial,
tagged with the trial id; the champion logged on the parent run and registered as a new version
of `<experiment>-<model>`, the alias `champion` moving to it only when it beats the holder.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
CHAMPION_ALIAS = "champion"
CHAMPION_ARTIFACT = "champion"
SEARCH_ID_TAG = "nnlab.search_id"
TRIAL_ID_TAG = "nnlab.trial_id"
CHAMPION_VERSION_TAG = "nnlab.champion_version"
CHAMPION_TRIAL_TAG = "nnlab.champion_trial"  # its trial id, or an average champion's ids: "08,00,01"
TASK_TAG = "nnlab.task"  # classification or regression: how the search's results are ranked
# MLflow 3's kind of experiment: training models, not GenAI, so that its UI shows runs.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# On the search's run while its trials run in worker processes: the port its oracle serves on,
# by which a worker finds the run to nest its trials under.
ORACLE_PORT_TAG = "nnlab.oracle_port"
TIE_BREAK_METRIC = "best_epoch_val_loss"  # a trial run's val_loss at its best epoch: it ranks val_accuracy ties


class TrackingError(RuntimeError):
    """A tracking request that cannot be met (an unknown registered model, say)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the project's sqlite store under mlruns/."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// store; None for any other kind of store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def absolute_uri(uri: str) -> str:
    """A sqlite:/// store named by its absolute path: a relative one means another file in another
    folder, and MLflow keeps one store per URI for the life of a process."""
    database = sqlite_file(uri)
    return f"sqlite:///{database.resolve()}" if database is not None else uri


# How long a tracking server may take to answer the first request before it is taken as absent.
PROBE_SECONDS = 5


def store_problem(uri: str) -> str | None:
    """Why the store at `uri` cannot take a search, found before anything is created: a server
    that does not answer within PROBE_SECONDS (MLflow itself would retry for minutes), or a
    SQLite file or folder that cannot be written. None when it can, as far as can be told."""
    if uri.startswith(("http://", "https://")):
        return _server_problem(uri)
    database = sqlite_file(uri)
    if database is None:
        return None
    if database.is_dir():
        return f"{database} is a folder, not an SQLite file: name the file in it (mlflow.db)"
    if database.exists():
        if not os.access(database, os.R_OK | os.W_OK):
            return f"{database} is not writable by this user: make it writable"
        folder = database.parent  # SQLite writes its journal beside the file
    else:
        folder = database.parent
        while not folder.exists() and folder != folder.parent:  # the folder to be made, or the first one that is
            folder = folder.parent
        if not folder.is_dir():
            return f"{folder} is a file where a folder of {database} must be: move it away"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable by this user: make it writable"
    return None


def _server_problem(uri: str) -> str | None:
    """A tracking server that does not answer within PROBE_SECONDS (one refusing connections is
    asked again meanwhile: it may be starting), or answers as no MLflow server does."""
    import ssl
    import time
    import urllib.error
    import urllib.request

    probe = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
    deadline = time.monotonic() + PROBE_SECONDS
    while True:
        try:
            with urllib.request.urlopen(probe, timeout=max(0.5, deadline - time.monotonic())):
                return None
        except urllib.error.HTTPError as error:  # it answers: credentials and the rest are MLflow's to judge
            return ("a server answers there, but not as an MLflow tracking server (HTTP 404 for "
                    "/api/2.0/mlflow/experiments/search)") if error.code == 404 else None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ssl.SSLError):  # MLflow has settings of its own for TLS
                return None
            if not isinstance(error.reason, ConnectionRefusedError) or time.monotonic() >= deadline:
                reason = getattr(error.reason, "strerror", None) or error.reason
                return f"no MLflow server answers there within {PROBE_SECONDS} s ({reason})"
        except OSError as error:  # a timeout
            return f"no MLflow server answers there within {PROBE_SECONDS} s ({error or 'timed out'})"
        time.sleep(0.5)


def _sqlite_folder(uri: str) -> Path | None:
    database = sqlite_file(uri)
    return database.parent if database is not None else None


def configure(uri: str | None = None) -> str:
    """Point MLflow at the store, creating the folder a sqlite store lives in, and the store."""
    uri = resolve_tracking_uri(uri)
    # MLflow prints a link to each run it ends when the store is a server; nnlab says its own.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    database = sqlite_file(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        if not database.exists():
            _copy_empty_store(database)
    mlflow.set_tracking_uri(uri)
    return uri


def empty_store_template() -> Path:
    """An empty SQLite store at this MLflow's schema, made once per MLflow version in the user's
    cache: MLflow makes a new store by replaying its whole migration history, 2 s in a running
    process and 5 s in a new one; a copy takes milliseconds. MLflow adds its Default experiment
    when it first opens the copy, as it does for a store it made."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnlab"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.is_file():
        from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine_with_retry

        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{template.name}.{os.getpid()}"
        engine = create_sqlalchemy_engine_with_retry(f"sqlite:///{partial}")
        try:
            _initialize_tables(engine)  # the tables and every migration, as MLflow makes a store
        finally:
            engine.dispose()
        os.replace(partial, template)  # whole or not at all, if two processes race
    return template


def _copy_empty_store(database: Path) -> None:
    """Start a new store as a copy of the template. Where that cannot be done (a read-only
    cache, MLflow's internals moved) MLflow makes the store itself, only slower."""
    partial = database.with_name(f".{database.name}.{os.getpid()}")
    try:
        shutil.copyfile(empty_store_template(), partial)
        os.link(partial, database)  # fails if another process made the store meanwhile: keep theirs
    except Exception:  # noqa: BLE001 - any failure leaves the store to MLflow
        pass
    finally:
        partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class ChampionRecord:
    version: str
    promoted: bool
    previous_version: str | None
    previous_test_score: float | None  # the alias holder's test_<task metric>


# The MLflow input contexts of a data set's splits, in the order of Dataset's fields.
DATA_CONTEXTS = ("training", "validation", "test")


def data_inputs(dataset) -> dict:
    """The data set's splits as MLflow datasets (name, digest, source, schema), by context: a
    table's rows with their target column, arrays of images or windows with their targets."""
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource

    located = dataset.uri is not None and Path(dataset.uri).exists()
    inputs = {}
    for context, (features, targets) in zip(DATA_CONTEXTS, (dataset.train, dataset.validation, dataset.test)):
        name = f"{dataset.name}-{context}"
        # A file or folder is a local source; a package's data (sklearn, keras.datasets) is named
        # in a code source's tags. MLflow warns that a path resolves "in multiple ways" (to the
        # same class listed twice): it is one.
        source = Path(dataset.uri).resolve().as_uri() if located else CodeDatasetSource(
            {"nnlab.data_uri": dataset.uri or dataset.name, "nnlab.data_source": dataset.source[:500]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if isinstance(features, pd.DataFrame):
                rows = features.assign(**{dataset.target: np.asarray(targets).reshape(len(features), -1)[:, 0]})
                inputs[context] = mlflow.data.from_pandas(rows, source=source, targets=dataset.target, name=name)
            else:
                inputs[context] = mlflow.data.from_numpy(np.asarray(features), source=source,
                                                         targets=np.asarray(targets), name=name)
    return inputs


class SearchTracker:
    """One search's MLflow runs: the parent, the trial being run, the champion."""

    def __init__(self, experiment_name: str, tracking_uri: str | None = None, dataset=None):
        # Nothing touches the store before open_search: a search refused early leaves no trace.
        self.experiment_name = experiment_name
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        # The splits as MLflow dataset inputs: the search's run logs all three, each trial's run
        # what it trained and validated on.
        self.data_inputs = data_inputs(dataset) if dataset is not None else {}

    def _ensure_experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            if EXPERIMENT_KIND_TAG not in experiment.tags:  # one nnlab made before it set the kind
                self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
            return experiment.experiment_id
        folder = _sqlite_folder(self.tracking_uri)
        # Artifacts beside the sqlite file (mlruns/<experiment>/), not in MLflow's ./mlartifacts.
        location = (folder / name).resolve().as_uri() if folder is not None else None
        try:
            return self.client.create_experiment(name, artifact_location=location,
                                                 tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
        except MlflowException as error:
            # Another search of the same experiment (another family, say) created it since the
            # lookup above: theirs is ours.
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    # ------------------------------------------------------------ the parent run

    def _connect(self) -> None:
        if self.client is None:
            configure(self.tracking_uri)
            self.client = MlflowClient(self.tracking_uri)
            self.experiment_id = self._ensure_experiment(self.experiment_name)

    def _search_run(self, search_id: str):
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{SEARCH_ID_TAG}` = '{search_id}'", max_results=1
        )
        return found[0] if found else None

    def close_abandoned(self, search_id: str) -> int:
        """Mark KILLED what a killed process left RUNNING of search `search_id`: its parent run and
        its trial runs. Only for a search no process is running (search.py holds its lock)."""
        self._connect()
        parent = self._search_run(search_id)
        if parent is None:
            return 0
        runs = [parent, *self._trial_runs(parent_run_id=parent.info.run_id)]
        stale = [run for run in runs if run.info.status == "RUNNING"]
        for run in stale:
            self.client.set_tag(run.info.run_id, "nnlab.failure", "its process ended without closing the run (killed)")
            self.client.set_terminated(run.info.run_id, "KILLED")
        return len(stale)

    def open_search(self, search_id: str, run_name: str, tags: dict, params: dict) -> bool:
        """Start the parent run, or reopen the one of this search id. True when reopened."""
        self._connect()
        existing = self._search_run(search_id)
        if existing:
            self.close_abandoned(search_id)
            run = mlflow.start_run(run_id=existing.info.run_id)
        else:
            run = mlflow.start_run(
                experiment_id=self.experiment_id, run_name=run_name, tags={**tags, SEARCH_ID_TAG: search_id}
            )
            mlflow.log_params(params)
            self._log_inputs(DATA_CONTEXTS)
        self.parent_run_id = run.info.run_id
        return bool(existing)

    def _log_inputs(self, contexts) -> None:
        """The splits of `contexts` as dataset inputs of the active run."""
        import warnings

        for context in contexts:
            if context in self.data_inputs:
                # MLflow infers the schema here and hints that an integer column (a class label)
                # cannot hold a missing value: nnlab's never does.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    try:
                        mlflow.log_input(self.data_inputs[context], context=context)
                    except MlflowException as error:
                        # Two searches of one experiment started together log the same split:
                        # MLflow looks the dataset up, then inserts it, and the slower insert
                        # breaks the table's unique key. It exists now: linking it again works.
                        if "IntegrityError" not in str(error) and "unique constraint" not in str(error).lower():
                            raise
                        mlflow.log_input(self.data_inputs[context], context=context)

    def serve_oracle(self, port: int) -> None:
        """Tag the search's run with the port its oracle serves workers on."""
        self.client.set_tag(self.parent_run_id, ORACLE_PORT_TAG, str(port))

    def attach(self, run_name: str, oracle_port: int) -> bool:
        """In a worker: nest trials under the running search `run_name` whose oracle serves on
        `oracle_port`; False when there is none (the chief has not opened it, or has ended)."""
        self._connect()
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(f"attributes.status = 'RUNNING' and tags.mlflow.runName = '{run_name}' "
                           f"and tags.`{ORACLE_PORT_TAG}` = '{oracle_port}'"),
            order_by=["attributes.start_time DESC"], max_results=1)
        if not found:
            return False
        self.parent_run_id = found[0].info.run_id
        return True

    def close_search(self, status: str = "FINISHED", tags: dict | None = None) -> None:
        if self.parent_run_id is not None and tags:
            for key, value in tags.items():
                self.client.set_tag(self.parent_run_id, key, str(value)[:5000])
        while mlflow.active_run() is not None:
            mlflow.end_run(status)

    def search_tag(self, key: str) -> str | None:
        return self.client.get_run(self.parent_run_id).data.tags.get(key)

    def search_metrics(self) -> dict:
        return self.client.get_run(self.parent_run_id).data.metrics

    # ------------------------------------------------------------ trial runs

    def _trial_runs(self, trial_id: str | None = None, parent_run_id: str | None = None):
        query = f"tags.mlflow.parentRunId = '{parent_run_id or self.parent_run_id}'"
        if trial_id is not None:
            query += f" and tags.`{TRIAL_ID_TAG}` = '{trial_id}'"
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=10_000)

    def start_trial(self, trial_id: str, params: dict, tags: dict | None = None) -> None:
        """A nested run for the trial. KerasTuner runs a trial again when the process running it
        died; its earlier run, RUNNING or (killed between MLflow and KerasTuner saving) FINISHED,
        becomes KILLED, so that each trial counts once."""
        earlier = [run for run in self._trial_runs(trial_id) if run.info.status in ("RUNNING", "FINISHED")]
        # The parent named: in a worker process the search's run is not this process's active run.
        run = mlflow.start_run(experiment_id=self.experiment_id, nested=True, parent_run_id=self.parent_run_id,
                               run_name=f"trial-{trial_id}", tags={**(tags or {}), TRIAL_ID_TAG: trial_id})
        for old in earlier:
            self.client.set_tag(old.info.run_id, "nnlab.rerun_as", run.info.run_id)
            self.client.set_terminated(old.info.run_id, "KILLED")
        mlflow.log_params(params)
        self._log_inputs(DATA_CONTEXTS[:2])

    def kill_trial(self, trial_id: str, reason: str) -> None:
        """The RUNNING runs of a trial whose worker died end KILLED, `reason` their failure tag."""
        for run in self._trial_runs(trial_id):
            if run.info.status == "RUNNING":
                self.client.set_tag(run.info.run_id, "nnlab.failure", reason[:5000])
                self.client.set_terminated(run.info.run_id, "KILLED")

    def trial_failure(self, trial_id: str) -> str | None:
        """Why the trial's latest run failed, as its worker recorded it."""
        runs = sorted(self._trial_runs(trial_id), key=lambda run: run.info.start_time)
        return runs[-1].data.tags.get("nnlab.failure") if runs else None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        """Metrics of the active run: the trial being run, else the search's parent run."""
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)

    def end_trial(self, status: str, metrics: dict | None = None, reason: str | None = None,
                  details: str | None = None, timed_out: bool = False, tags: dict | None = None) -> None:
        if metrics:
            self.log_metrics(metrics)
        if tags:
            mlflow.set_tags(tags)
        if reason:
            mlflow.set_tag("nnlab.failure", reason[:5000])
        if details:
            mlflow.log_text(details, "failure.txt")
        if timed_out:
            mlflow.set_tag("nnlab.timed_out", "true")
        mlflow.end_run(status)

    def leaderboard(self, task) -> pd.DataFrame:
        return trial_leaderboard(self.tracking_uri, self.experiment_id, self.parent_run_id, task)

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        mlflow.log_text(table.to_csv(index=False), artifact_file)

    def log_images(self, images: dict[str, bytes], folder: str = "plots") -> None:
        """PNG images (plots.png) as artifacts of the active run, `folder/<name>.png`."""
        if not images:
            return
        with tempfile.TemporaryDirectory() as directory:
            for name, image in images.items():
                (Path(directory) / f"{name}.png").write_bytes(image)
            mlflow.log_artifacts(directory, folder)

    # ------------------------------------------------------------ the champion

    def log_champion(
        self,
        model,
        registered_name: str,
        example_inputs,
        example_outputs,
        test_metrics: dict,
        trial_id: str,
        pip_requirements: list[str],
        task=None,
        version_tags: dict | None = None,
    ) -> ChampionRecord:
        """Log the champion (.keras, signature, input example) on the parent run, register a new
        version, and move the `champion` alias to it when its test score beats the holder's, as
        the task ranks them (higher accuracy, lower RMSE; `task` None: classification).
        `example_outputs` are the model's predictions for `example_inputs`, for the signature;
        `version_tags` go on the new version beside its test score (a fine-tune's lineage)."""
        from nnlab.task import get_task

        task = task or get_task(None)
        self.log_metrics(test_metrics)
        import mlflow.keras  # imports Keras: only where a model is saved or loaded
        from mlflow.models import infer_signature

        signature = infer_signature(example_inputs, example_outputs)
        # mlflow.keras.log_model(input_example=...) writes the example before it creates its
        # folder (mlflow issue 16183): save into a folder that exists, then log and register it.
        with tempfile.TemporaryDirectory() as folder:
            if isinstance(example_inputs, pd.DataFrame):
                _save_table_model(model, folder, signature, example_inputs[:2], pip_requirements)
            else:
                mlflow.keras.save_model(
                    model,
                    folder,
                    signature=signature,
                    input_example=example_inputs[:2],
                    pip_requirements=pip_requirements,
                )
            mlflow.log_artifacts(folder, CHAMPION_ARTIFACT)
        registered = _quietly(mlflow.register_model, f"runs:/{self.parent_run_id}/{CHAMPION_ARTIFACT}", registered_name)
        version = str(registered.version)
        test_score = float(test_metrics[task.test_key])
        tags = {**(version_tags or {}), task.test_key: test_score, "trial": trial_id, "run_id": self.parent_run_id}
        for key, value in tags.items():
            self.client.set_model_version_tag(registered_name, version, key, str(value))

        previous = self._alias_holder(registered_name)
        previous_score = float(previous.tags[task.test_key]) if previous and task.test_key in previous.tags else None
        promoted = previous is None or task.better(test_score, previous_score)
        if promoted:
            self.client.set_registered_model_alias(registered_name, CHAMPION_ALIAS, version)
        mlflow.set_tags({CHAMPION_VERSION_TAG: version, CHAMPION_TRIAL_TAG: trial_id})
        return ChampionRecord(
            version=version,
            promoted=promoted,
            previous_version=str(previous.version) if previous else None,
            previous_test_score=previous_score,
        )

    def _alias_holder(self, registered_name: str):
        try:
            return self.client.get_model_version_by_alias(registered_name, CHAMPION_ALIAS)
        except MlflowException:
            return None


def _quietly(call, *args):
    """`call` without MLflow's notices on stderr ("Successfully registered model ...", "Created
    version ..."): nnlab says what was registered in its own words. Errors still raise."""
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    enabled = MLFLOW_LOGGING_STREAM.enabled
    MLFLOW_LOGGING_STREAM.enabled = False
    try:
        return call(*args)
    finally:
        MLFLOW_LOGGING_STREAM.enabled = enabled


# ------------------------------------------------------------ reading the store back


def runs_page(address: str, experiment_id: str) -> str:
    """The MLflow UI's runs table of an experiment. MLflow 3.17's UI opens an experiment on its
    GenAI overview (traces, tokens), empty for nnlab; this address opens the runs directly."""
    return f"{address}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiments_with_runs(tracking_uri: str) -> list[tuple[str, str]]:
    """(name, id) of the store's experiments that hold runs, in the order they were made."""
    client = MlflowClient(tracking_uri)
    experiments = sorted(client.search_experiments(), key=lambda experiment: int(experiment.experiment_id))
    return [(experiment.name, experiment.experiment_id) for experiment in experiments
            if client.search_runs([experiment.experiment_id], max_results=1)]


def ensure_experiment(uri: str, experiment_name: str) -> None:
    """The store and the experiment made directly, its artifacts where nnlab keeps them (beside
    a SQLite file), before an `mlflow server` stands in front of the store."""
    SearchTracker(experiment_name, uri)._connect()


def _save_table_model(model, folder: str, signature, example, pip_requirements: list[str]) -> None:
    """A model over a table's columns, saved as the Keras flavor (nnlab.load_model and
    mlflow.keras.load_model read it) whose python_function flavor (what `mlflow models serve`
    runs) is nnlab/tabular.py, shipped in the model's code/: the stock Keras one hands a DataFrame
    to the model as one array, which a model with one input per column cannot take. The
    signature is the table's columns, so that a served model takes `dataframe_split` rows."""
    import logging

    import mlflow.keras
    from mlflow.models import Model, ModelSignature
    from mlflow.models.utils import _save_example
    from mlflow.types.schema import ColSpec, Schema

    from nnlab import tabular

    # The Keras flavor accepts only a signature of tensors; it is set below. Said, not missing.
    keras_logger = logging.getLogger("mlflow.keras.save")
    level = keras_logger.level
    keras_logger.setLevel(logging.ERROR)
    try:
        mlflow.keras.save_model(model, folder, pip_requirements=pip_requirements)
    finally:
        keras_logger.setLevel(level)
    code = Path(folder) / "code"
    code.mkdir()
    shutil.copyfile(tabular.__file__, code / "nnlab_tabular.py")
    description = Model.load(Path(folder) / "MLmodel")
    # Every column may be missing in a request, as in the CSV: the model fills it (FillMissing).
    columns = [ColSpec(column.type, column.name, required=False) for column in signature.inputs.inputs]
    description.signature = ModelSignature(inputs=Schema(columns), outputs=signature.outputs)
    _save_example(description, example, folder)
    description.flavors["python_function"].update(loader_module="nnlab_tabular", code="code")
    description.save(Path(folder) / "MLmodel")


def trial_leaderboard(tracking_uri: str, experiment_id: str, parent_run_id: str, task) -> pd.DataFrame:
    """A search's trial runs, best first as the task ranks them (nnlab.task): trial, status, best
    objective, best epoch, size, time,
    then the hyperparameters as numbers where they are numbers. Hyperband's bookkeeping params
    (tuner/bracket, ...) are left out but for tuner/epochs, the epochs the trial was given."""
    runs = MlflowClient(tracking_uri).search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10_000
    )
    if not runs:
        return pd.DataFrame()
    best = task.best_key
    table = pd.DataFrame(
        {
            "trial": [run.data.tags.get(TRIAL_ID_TAG) for run in runs],
            "status": [run.info.status for run in runs],
            best: [run.data.metrics.get(best) for run in runs],
            "best_epoch": [run.data.metrics.get("best_epoch") for run in runs],
            "param_count": [run.data.metrics.get("param_count") for run in runs],
            "train_seconds": [run.data.metrics.get("train_seconds") for run in runs],
        }
    )
    for column in (best, "train_seconds"):
        table[column] = table[column].astype(float)
    for column in ("best_epoch", "param_count"):  # MLflow keeps every metric as a float
        table[column] = pd.to_numeric(table[column]).round().astype("Int64")
    params = pd.DataFrame([run.data.params for run in runs])
    bookkeeping = [name for name in params.columns if name.startswith("tuner/") and name != "tuner/epochs"]
    params = params.drop(columns=bookkeeping)
    for column in params.columns:  # params come back as text: numbers become numbers again
        try:
            params[column] = pd.to_numeric(params[column])
        except (ValueError, TypeError):
            pass
    table = pd.concat([table, params[sorted(params.columns)]], axis=1)
    order = pd.to_numeric(table["trial"], errors="coerce")
    # Ties rank by the validation loss at the best epoch, as the oracle ranks them (tuner.RanksTrials).
    tie_break = [run.data.metrics.get(TIE_BREAK_METRIC, math.inf) for run in runs]
    table = table.assign(_tie=tie_break, _order=order).sort_values(
        [best, "_tie", "_order"], ascending=[not task.higher_is_better, True, True], na_position="last")
    return table.drop(columns=["_tie", "_order"]).reset_index(drop=True)


@dataclass(frozen=True)
class SearchRun:
    """A search's parent run, as `nnlab.report` lists it."""

    run_id: str
    experiment_id: str
    model: str | None
    status: str
    start_time: int  # milliseconds since the epoch
    task: str | None = None  # None: tracked before tasks were tagged, classification


def find_searches(experiment_name: str, tracking_uri: str | None = None, model: str | None = None) -> list[SearchRun]:
    """The searches of an experiment, newest first, those of `model` only when given. An
    experiment the store does not hold is a TrackingError that lists the ones it does."""
    uri = resolve_tracking_uri(tracking_uri)
    database = sqlite_file(uri)
    if database is not None and not database.is_file():  # MLflow would create an empty one
        raise TrackingError(f"no MLflow store at {uri}; run a search first (python -m nnlab.search {experiment_name})")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        known = sorted(found.name for found in client.search_experiments() if found.name != "Default")
        raise TrackingError(f"the store {uri} holds no experiment {experiment_name!r}; "
                            f"known: {', '.join(known) if known else 'none yet'}")
    query = f"tags.`{SEARCH_ID_TAG}` != ''"
    if model:
        query += f" and tags.`nnlab.model` = '{model}'"
    runs = client.search_runs([experiment.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"])
    return [SearchRun(run.info.run_id, experiment.experiment_id, run.data.tags.get("nnlab.model"),
                      run.info.status, run.info.start_time, run.data.tags.get(TASK_TAG)) for run in runs]


def champions_table(experiment_name: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """One row per registered model of the experiment (`<experiment>-<family>`, a fine-tune's
    `<experiment>-from-...`): its champion's version and family, the task's test score and the
    other test metrics, its parameter count (an average champion's members together) and its
    search's wall time; best first within each task. Empty when none is registered."""
    from nnlab.task import get_task

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    rows = []
    for registered in client.search_registered_models(filter_string=f"name LIKE '{experiment_name}-%'"):
        try:
            version = client.get_model_version_by_alias(registered.name, CHAMPION_ALIAS)
        except MlflowException:  # registered, but no version holds the alias
            continue
        search = client.get_run(version.run_id)
        if experiment is None or search.info.experiment_id != experiment.experiment_id:
            continue  # another experiment's whose name begins alike: mnist-smoke-cnn is not mnist's
        task = get_task(search.data.tags.get(TASK_TAG) or "classification")
        trials = (search.data.tags.get(CHAMPION_TRIAL_TAG) or "").split(",")
        trial_runs = [run for run in client.search_runs(
            [search.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{search.info.run_id}'",
            max_results=10_000) if run.info.status == "FINISHED" and run.data.tags.get(TRIAL_ID_TAG) in trials]
        counts = [run.data.metrics.get("param_count") for run in trial_runs]
        end = search.info.end_time or search.info.start_time
        rows.append({
            "model": registered.name,
            "family": search.data.tags.get("nnlab.model"),
            "version": int(version.version),
            "task": task.name,
            "score": task.test_key,
            "test": search.data.metrics.get(task.test_key),
            **{key: value for key, value in sorted(search.data.metrics.items())
               if key.startswith("test_") and key != task.test_key and "_over_" not in key},
            "param_count": int(sum(counts)) if counts and None not in counts else None,
            "search_minutes": round((end - search.info.start_time) / 60_000, 1),
            "_better": -search.data.metrics.get(task.test_key, float("nan")) if task.higher_is_better
            else search.data.metrics.get(task.test_key, float("nan")),
        })
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    first_seen = {task: index for index, task in enumerate(dict.fromkeys(table["task"]))}
    table = table.assign(_task=table["task"].map(first_seen)).sort_values(["_task", "_better"], na_position="last")
    return table.drop(columns=["_task", "_better"]).reset_index(drop=True)


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


def registered_version(reference: str, tracking_uri: str | None = None) -> RegisteredVersion:
    """The version a reference names ("mnist-cnn": its champion, "@alias", "/3", models:/...),
    read without creating anything: an unknown name, alias or version, or no store at all, is a
    TrackingError that says which."""
    uri = resolve_tracking_uri(tracking_uri)
    database = sqlite_file(uri)
    if database is not None and not database.is_file():  # MLflow would create an empty one
        raise TrackingError(f"no MLflow store at {uri}, so no registered model {reference!r}; "
                            "run a search first (python -m nnlab.search mnist) or name a .keras file")
    target = model_uri(reference)[len("models:/"):]
    name, alias = target.split("@", 1) if "@" in target else (target, None)
    name, version = name.split("/", 1) if "/" in name and alias is None else (name, None)
    client = MlflowClient(uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        known = sorted(model.name for model in client.search_registered_models())
        raise TrackingError(f"no registered model {name!r} in {uri}; registered: "
                            f"{', '.join(known) if known else 'none yet'}") from None
    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException:
        which = f"alias {alias!r}" if alias else f"version {version!r}"
        raise TrackingError(f"registered model {name!r} has no {which} in {uri}") from None
    return RegisteredVersion(name, str(found.version), found.run_id, f"models:/{name}/{found.version}",
                             dict(found.tags or {}))


def load_registered_model(reference: str, tracking_uri: str | None = None):
    """A registered Keras model, loaded in Keras' safe mode (no pickled code runs). A table's
    model predicts from a DataFrame or a dict of columns (nnlab.tabular.reads_rows)."""
    import mlflow.keras

    from nnlab.tabular import reads_rows  # and registers the layer a table model holds, FillMissing

    configure(tracking_uri)
    uri = model_uri(reference)
    try:
        model = mlflow.keras.load_model(uri, load_model_kwargs={"safe_mode": True})
        return reads_rows(model) if isinstance(model.input, dict) else model
    except MlflowException as error:
        raise TrackingError(f"cannot load {uri} from {resolve_tracking_uri(tracking_uri)}: {error.message}") from None
    except ValueError as error:
        if "safe_mode" not in str(error):
            raise
        raise TrackingError(f"refused to load {uri}: it holds Python code (a Lambda layer or a pickled "
                            "function), which Keras' safe mode does not run") from None

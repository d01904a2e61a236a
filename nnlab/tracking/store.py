"""The MLflow store: which one (--tracking-uri, $MLFLOW_TRACKING_URI, mlruns/), whether it can
take a search, a new SQLite store made as a copy of an empty one, and the experiment opened in it.

MLflow's schema tools (SQLAlchemy, Alembic: most of a second to import) are imported inside
functions, only where the empty store is first made, so that importing nnlab.tracking (for
nnlab.report, nnlab.ui) does not load them.
"""

from __future__ import annotations

import os
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import mlflow.environment_variables
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from nnlab.cli import setting_name
from nnlab.errors import TrackingError
from nnlab.tracking.tags import EXPERIMENT_KIND_TAG, MODEL_TRAINING

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the project's sqlite store under mlruns/."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// store; None for any other kind of store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def folder_store_problem(uri: str) -> str | None:
    """Why `uri`, a folder store (a path, or a file: URI), will not do: it is the folder of
    nnlab's SQLite store (mlruns, given for sqlite:///mlruns/mlflow.db), or MLflow refuses to open
    one unless $MLFLOW_ALLOW_FILE_STORE is set (its later 3.x releases: a traceback otherwise).
    None where it will do, or `uri` names another kind of store."""
    parsed = urllib.parse.urlparse(uri)
    if not (parsed.scheme in ("", "file") or len(parsed.scheme) == 1):  # C:\ on Windows
        return None
    folder = Path(parsed.path if parsed.scheme == "file" else uri)
    if (folder / "mlflow.db").is_file():
        return f"a folder holding an SQLite store: name the file, sqlite:///{(folder / 'mlflow.db').as_posix()}"
    allowed = getattr(mlflow.environment_variables, "MLFLOW_ALLOW_FILE_STORE", None)
    if allowed is None or allowed.get():
        return None
    return (f"MLflow {mlflow.__version__} opens a folder store (a path or a file: URI) only where "
            "MLFLOW_ALLOW_FILE_STORE=true is set: set it to use the folder")


def no_store(uri: str, *, holding: str = "", experiment: str = "mnist", or_else: str = "") -> str | None:
    """What a reader says where `uri` names a SQLite store whose file is not there (MLflow would
    create an empty one and then find nothing in it), or a folder store MLflow will not open;
    None where the store is there or is of another kind. `holding`: what it would have held;
    `or_else`: what else the reader takes."""
    folder_problem = folder_store_problem(uri)
    if folder_problem:
        return f"{uri}: {folder_problem}"
    database = sqlite_file(uri)
    if database is None or database.is_file():
        return None
    return (f"no MLflow store at {uri}{holding}; run a search first "
            f"(python -m nnlab.search {experiment}){or_else}")


def absolute_uri(uri: str) -> str:
    """A sqlite:/// store named by its absolute path: a relative one means another file in another
    folder, and MLflow keeps one store per URI for the life of a process."""
    database = sqlite_file(uri)
    return f"sqlite:///{database.resolve()}" if database is not None else uri


# How long a tracking server may take to answer the first request before it is taken as absent.
PROBE_SECONDS = 5


def is_server(uri: str) -> bool:
    """A tracking server's URI (http or https), not a database or a folder."""
    return uri.startswith(("http://", "https://"))


def server_advice() -> str:
    """What to do about a tracking server that does not answer."""
    return f"start it first, or give {setting_name('tracking_uri')} the address of one that runs"


def store_problem(uri: str) -> str | None:
    """Why the store at `uri` cannot take a search, found before anything is created: a server
    that does not answer within PROBE_SECONDS (MLflow itself would retry for minutes), or a
    SQLite file or folder that cannot be written. None when it can, as far as can be told."""
    if is_server(uri):
        return _server_problem(uri)
    database = sqlite_file(uri)
    if database is None:
        return folder_store_problem(uri)
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


def reading_client(uri: str) -> MlflowClient:
    """A client that reads the store at `uri`. A tracking server that does not answer within
    PROBE_SECONDS is a TrackingError at once (MLflow would retry each request for minutes)."""
    if is_server(uri):
        problem = _server_problem(uri)
        if problem:
            raise TrackingError(f"{uri}: {problem}; {server_advice()}")
    problem = folder_store_problem(uri)
    if problem:
        raise TrackingError(f"{uri}: {problem}")
    return MlflowClient(uri)


def _server_problem(uri: str) -> str | None:
    """A tracking server that does not answer within PROBE_SECONDS (one refusing connections is
    asked again meanwhile: it may be starting), or answers as no MLflow server does."""
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
    # MLflow also writes the URI into this process's MLFLOW_TRACKING_URI (for its subprocesses):
    # a library call's tracking_uri= would become the store of every later call that names none.
    # nnlab hands its own processes the store by flag; the variable stays as the user left it.
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
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


def open_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """The id of experiment `name` in the store, made (or restored) when needed."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # one nnlab made before it set the kind
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return experiment.experiment_id
    folder = _sqlite_folder(tracking_uri)
    # Artifacts beside the sqlite file (mlruns/<experiment>/), not in MLflow's ./mlartifacts.
    location = (folder / name).resolve().as_uri() if folder is not None else None
    try:
        return client.create_experiment(name, artifact_location=location,
                                        tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
    except MlflowException as error:
        # Another search of the same experiment (another family, say) created it since the
        # lookup above: theirs is ours.
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def connect(tracking_uri: str, experiment_name: str) -> tuple[MlflowClient, str]:
    """MLflow pointed at the store (made when new), a client of it, and the experiment's id."""
    configure(tracking_uri)
    client = MlflowClient(tracking_uri)
    return client, open_experiment(client, tracking_uri, experiment_name)


def ensure_experiment(uri: str, experiment_name: str) -> None:
    """The store and the experiment made directly, its artifacts where nnlab keeps them (beside
    a SQLite file), before an `mlflow server` stands in front of the store."""
    connect(resolve_tracking_uri(uri), experiment_name)

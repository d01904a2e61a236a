"""What nnlab keeps beside KerasTuner's state in tuning/: the search's identity and settings, and
a lock so that one process at a time runs a given search.

The search id in tuning/<experiment>-<model>/nnlab.json is what reopens the same MLflow parent
run when a search resumes; the settings saved with it refuse a resume that would mix two
different searches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

from nnlab.accelerators import BACKEND_TITLES, backend_name
from nnlab.cli import as_typed
from nnlab.errors import SearchError
from nnlab.models import FAMILIES

try:
    import fcntl
except ImportError:  # not on Windows: no lock there
    fcntl = None

STATE_FILE = "nnlab.json"
SERVER_LOG = "mlflow-server.log"  # a search's local mlflow server's output (nnlab.workers.tracking_server)
# Settings that define a search: resuming with any of them changed would mix two searches.
SEARCH_DEFINING = ("dataset", "model", "tuner", "epochs", "seed", "batch_size", "patience",
                   "validation_fraction", "hyperband_factor", "space", "data", "source", "mixed_precision",
                   "cross_validation", "executions_per_trial")  # the last two: how a trial is scored


@dataclasses.dataclass(frozen=True)
class SearchState:
    search_id: str
    # The id of the search that --fresh replaced, whose runs may need closing.
    replaced_search_id: str | None = None


def _settings(config, data_source: str) -> dict:
    """What defines a search, as nnlab.json keeps it: the settings, where the data came from and
    the version of the family's builder."""
    family = FAMILIES.get(config.model)
    return ({key: getattr(config, key) for key in SEARCH_DEFINING}
            # The backend that trains: another's checkpoints and numbers differ (accelerators.py).
            | {"backend": backend_name()}
            | {"data_source": data_source, "architecture": family.architecture if family is not None else None,
               # A user's own builder: its code's digest (nnlab/builders.py); absent for the built-ins.
               **({"builder_code": family.code} if family is not None and family.code is not None else {})})


def _change(config, key: str, saved, value, joiner: str) -> str:
    """One setting that differs from the saved search's, in words."""
    if key == "builder_code":
        family = FAMILIES.get(config.model)
        where = f" ({family.reference})" if family is not None and family.reference else ""
        return f"the code of model {config.model}{where} has changed (digest {saved} {joiner} {value})"
    if key == "backend":
        return f"the Keras backend {BACKEND_TITLES.get(saved, saved)} {joiner} {BACKEND_TITLES.get(value, value)}"
    return f"{key} {saved!r} {joiner} {value!r}"


def _defaults(config) -> dict:
    """What a setting saved before it was recorded was: its default (the backend: TensorFlow, the only one then)."""
    return {field.name: field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            for field in dataclasses.fields(config)} | {"backend": "tensorflow"}


def open_state(config, data_source: str, directory: Path, fresh: bool, discard=shutil.rmtree) -> SearchState:
    """The search id for `directory`: the saved one when the settings match, a new one when there
    is none, when `fresh`, or when the saved search never started a trial (a new one deletes
    KerasTuner's state there, or hands the folder to `discard`; tracked runs stay in MLflow)."""
    settings = _settings(config, data_source)
    path = directory / STATE_FILE
    saved = None
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if not isinstance(saved, dict) or not {"settings", "search_id"} <= saved.keys():
                raise ValueError("no search id and settings in it")
        except ValueError as error:
            if not fresh:
                raise SearchError(f"{path} is damaged ({error}); add {as_typed('fresh', True)} to start a new search") from None
            saved = None
    # A search that never started a trial has nothing to lose: other settings simply replace it.
    started = any(directory.glob("trial_*/trial.json"))
    if saved is not None and not fresh:
        # A setting added after the search began is taken at its default.
        defaults = _defaults(config)
        changed = [_change(config, key, saved["settings"].get(key, defaults.get(key)), value, "->")
                   for key, value in settings.items() if saved["settings"].get(key, defaults.get(key)) != value]
        if not changed:
            return SearchState(saved["search_id"])
        if started:
            raise SearchError(
                f"{directory} holds a search with other settings ({'; '.join(changed)}): rerun with the "
                f"same settings to resume it, or add {as_typed('fresh', True)} to start a new search (tracked runs are kept)"
            )
    if directory.exists():
        discard(directory)
    state = {"search_id": uuid.uuid4().hex, "settings": settings}
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    return SearchState(state["search_id"], saved["search_id"] if saved else None)


def check_state(config, data_source: str, directory: Path) -> None:
    """In a worker: the chief's search in `directory` has this worker's settings; SearchError if
    there is none (not started, or a tuning/ folder the chief does not share) or they differ."""
    path = directory / STATE_FILE
    try:
        saved = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SearchError(f"no search in {directory}: start the chief first; workers on other machines need "
                          "the chief's tuning/ folder (a shared file system)") from None
    settings = _settings(config, data_source)
    defaults = _defaults(config)
    changed = [_change(config, key, saved.get(key, defaults.get(key)), value, "here")
               for key, value in settings.items() if saved.get(key, defaults.get(key)) != value]
    if changed:
        raise SearchError(f"this worker's settings differ from the chief's search in {directory} "
                          f"({'; '.join(changed)}): start it with the chief's experiment and options")


class SetAside:
    """The earlier search a new one replaces (--fresh, other settings) kept until the new one has
    started (`started`): a new search that fails before then puts it back as it was. Kept beside
    it as tuning/.<name>.replaced; one a killed process left there is dealt with on the next
    start: put back if the search that replaced it never ran a trial, else deleted."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.kept = directory.with_name(f".{directory.name}.replaced")
        self.holding = False
        if self.kept.is_dir():
            if directory.exists() and any(directory.glob("trial_*/trial.json")):
                shutil.rmtree(self.kept)
            else:
                self.holding = True
                self.put_back()

    def __call__(self, directory: Path) -> None:
        """open_state's `discard`: the folder moved aside, not deleted."""
        os.replace(directory, self.kept)
        self.holding = True

    def started(self) -> None:
        if self.holding:
            shutil.rmtree(self.kept, ignore_errors=True)
            self.holding = False

    def put_back(self) -> None:
        if not self.holding:
            return
        if self.directory.exists():
            log = self.directory / SERVER_LOG  # what the failed start's mlflow server said
            if log.is_file():
                with open(self.kept / SERVER_LOG, "ab") as kept_log:
                    kept_log.write(log.read_bytes())
            shutil.rmtree(self.directory)
        os.replace(self.kept, self.directory)
        self.holding = False


@contextlib.contextmanager
def set_aside(directory: Path):
    """A SetAside for `directory`: put back if the block fails before its `started` is called,
    dropped once the block ends after it."""
    aside = SetAside(directory)
    try:
        yield aside
    except BaseException:
        aside.put_back()
        raise
    aside.started()


@contextlib.contextmanager
def search_lock(directory: Path):
    """Hold tuning/<name>.lock while a search runs; a second process gets a SearchError. The
    operating system drops the lock with the process, however it ends (kill -9 included)."""
    if fcntl is None:
        yield
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    path = directory.parent / f"{directory.name}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SearchError(f"search {directory.name} is already running (process {holder}); "
                              "wait for it or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

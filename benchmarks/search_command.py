"""What the end-to-end benchmarks share: run `python -m nnlab.search ...` from this checkout in
a folder of its own (its own tuning/ and mlruns/), timed, its output kept in search.log (or
another nnlab command, `python -m nnlab.finetune ...`, in the same way)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def run_search_command(arguments: list[str], folder: Path | None, prefix: str, module: str = "nnlab.search",
                       log: str = "search.log", repository: Path = REPOSITORY, python: str = sys.executable,
                       environment: dict[str, str] | None = None) -> tuple[Path, float | None]:
    """(the run folder, wall seconds) of `python -m nnlab.search *arguments` (or another of
    nnlab's commands); seconds None, with the output's end printed, when it failed. The caller
    then works inside the folder (os.chdir) with this checkout importable, to read the run's
    store back. `repository`: the nnlab checkout the command runs (default this one); `python`:
    the interpreter that runs it (another environment's); `environment`: variables set for the
    command alone (KERAS_BACKEND, say)."""
    folder = folder or Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, **(environment or {}), "PYTHONPATH": str(repository),
                   "MLFLOW_TRACKING_URI": "sqlite:///mlruns/mlflow.db"}
    started = time.monotonic()
    done = subprocess.run([python, "-m", module, *arguments], cwd=folder, env=environment,
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    (folder / log).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:], sep="\n")
        return folder, None
    os.chdir(folder)
    sys.path.insert(0, str(REPOSITORY))
    return folder, seconds


def local_store() -> str:
    """The tracking URI of the run folder this process is in (after run_search_command)."""
    return f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}"


def latest_search_run(experiment: str, model: str):
    """The latest search run of `model` in `experiment`, from the run folder's store (MLflow's
    Run: its metrics and tags as nnlab logged them)."""
    from mlflow import MlflowClient

    # Named absolutely: MLflow keeps one store per URI for the life of a process, so a relative
    # URI would read the first run folder's store again after a chdir into the next.
    client = MlflowClient(local_store())
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], f"tags.`nnlab.model` = '{model}'",
                              order_by=["attributes.start_time DESC"], max_results=1)[0]

"""A search stopped in the middle of a trial by Ctrl-C, SIGTERM or kill -9, then resumed by running
the same command again: a real subprocess, real signals, a real MLflow store."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


import pytest
from mlflow import MlflowClient

from nnlab.config import ExperimentConfig
from nnlab.search import run_search
from test_search import runs_of

EXPERIMENT = 'name = "mnist"\nmodel = "dfn"\ntuner = "random"\nmax_trials = 3\nepochs = 10\npatience = 10\nfinal_epochs = 0\n'


def wait_for(condition, timeout: float, what: str, process):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"the search ended (exit {process.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def running_trial(tracking_uri) -> str | None:
    """The trial id of a trial run in progress, once the first trial has finished."""
    try:
        _, children = runs_of(tracking_uri)
    except Exception:  # the store may not exist yet, or be mid-creation
        return None
    if not any(child.info.status == "FINISHED" for child in children):
        return None
    running = [child.data.tags["nnlab.trial_id"] for child in children if child.info.status == "RUNNING"]
    return running[0] if running else None


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["ctrl-c", "sigterm", "kill-9"])
def test_interrupted_search_resumes_without_losing_or_repeating_trials(workdir, idx_dir, tracking_uri, signal_number):
    (workdir / "interrupted.toml").write_text(EXPERIMENT)
    arguments = ["interrupted.toml", "--data-dir", str(idx_dir), "--tracking-uri", tracking_uri]
    command = [sys.executable, "-u", "-m", "nnlab.search", *arguments]
    with open(workdir / "first.out", "w") as out, open(workdir / "first.err", "w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        try:
            wait_for(lambda: running_trial(tracking_uri), 180, "a trial after the first was running", process)
            interrupted = running_trial(tracking_uri)
            time.sleep(1.0)  # well inside the trial: ten epochs follow its graph tracing
            process.send_signal(signal_number)
            process.wait(timeout=120)
        finally:
            process.kill()
    stderr = (workdir / "first.err").read_text()
    assert "Traceback" not in stderr

    parents, children = runs_of(tracking_uri)
    statuses = {child.data.tags["nnlab.trial_id"]: child.info.status for child in children}
    if signal_number == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
        assert statuses[interrupted] == "RUNNING"  # nothing could tell the store
    else:
        name = signal.Signals(signal_number).name
        assert process.returncode == 128 + signal_number
        assert (f"nnlab.search: stopped by {name}; the trial in progress is marked KILLED and runs again on resume, "
                f"finished trials are kept. Resume with: python -m nnlab.search {' '.join(arguments)}") in stderr
        assert statuses[interrupted] == "KILLED"
        (killed,) = [child for child in children if child.data.tags["nnlab.trial_id"] == interrupted]
        assert killed.data.tags["nnlab.failure"] == "stopped by Ctrl-C or SIGTERM; the trial runs again on resume"
        assert parents[0].info.status == "KILLED"
        assert "RUNNING" not in statuses.values()
    assert statuses["0"] == "FINISHED"

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith("nnlab.search: data") and "Resuming search mnist-dfn" in again.stdout

    parents, children = runs_of(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [run for run in parents + children if run.info.status == "RUNNING"]
    finished = sorted(child.data.tags["nnlab.trial_id"] for child in children if child.info.status == "FINISHED")
    assert finished == ["0", "1", "2"]  # as many finished trial runs as trials, none twice
    runs_per_trial = {trial: [child for child in children if child.data.tags["nnlab.trial_id"] == trial]
                      for trial in ("0", "1", "2")}
    assert len(runs_per_trial["0"]) == 1  # the finished trial was not run again
    assert sorted(child.info.status for child in runs_per_trial[interrupted]) == ["FINISHED", "KILLED"]
    if signal_number == signal.SIGKILL:
        (killed,) = [child for child in runs_per_trial[interrupted] if child.info.status == "KILLED"]
        tags = MlflowClient(tracking_uri).get_run(killed.info.run_id).data.tags
        assert tags["nnlab.failure"] == "its process ended without closing the run (killed)"


# A signal's KeyboardInterrupt can land inside TensorFlow, which may turn it into another error
# (seen: "TypeError: Failed to convert elements of (None,) to Tensor", the trial FAILED and the
# search went on) or swallow it. The signal handler's record decides instead; these two tests
# give run_search that record directly, at the two moments it matters.


def test_an_error_while_interrupted_is_the_interruption(workdir, small_mnist, tracking_uri):
    config = ExperimentConfig(name="mnist", model="dfn", tuner="random", max_trials=3, epochs=2, final_epochs=0,
                              tracking_uri=tracking_uri, space={"learning_rate": 1e30})  # the loss goes NaN
    with pytest.raises(KeyboardInterrupt):
        run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lambda _line: None,
                   interrupted=lambda: True)
    parents, children = runs_of(tracking_uri)
    assert [child.info.status for child in children] == ["KILLED"]  # not FAILED: the user stopped it
    assert children[0].data.tags["nnlab.failure"] == "stopped by Ctrl-C or SIGTERM; the trial runs again on resume"
    assert parents[0].info.status == "KILLED"


def test_a_swallowed_interruption_stops_after_the_trial_and_keeps_it(workdir, small_mnist, tracking_uri):
    config = ExperimentConfig(name="mnist", model="dfn", tuner="random", max_trials=3, epochs=1, final_epochs=0,
                              tracking_uri=tracking_uri)
    stopped = []  # the signal arrives during trial 1 and TensorFlow swallows it: the trial finishes

    def echo(line):
        if line.startswith("trial 1/"):
            stopped.append(line)

    with pytest.raises(KeyboardInterrupt):
        run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=echo, interrupted=lambda: bool(stopped))
    parents, children = runs_of(tracking_uri)
    assert [child.info.status for child in children] == ["FINISHED"] and parents[0].info.status == "KILLED"

    result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lambda _line: None)
    assert result.trials_run == 2  # trial 0 was saved as done: only the other two run
    parents, children = runs_of(tracking_uri)
    assert sorted(child.data.tags["nnlab.trial_id"] for child in children) == ["0", "1", "2"]
    assert {child.info.status for child in children} == {"FINISHED"} and parents[0].info.status == "FINISHED"

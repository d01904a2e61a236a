"""What a search may take of the machine and what it leaves behind: the workers' limit, the
processes it starts (none outlives the command, however it ends), a grid search resumed, and an
oracle or a worker that fails said at once, never a silent wait. Real processes, real KerasTuner
oracles and gRPC servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import keras_tuner
import pytest

from nnlab.config import ExperimentConfig
from nnlab.errors import WorkersError
from nnlab.tasks import get_task
from nnlab.oracles import make_oracle
from nnlab.workers import OracleServer, WorkerPlan, Workers, check_worker_count, worker_limit
from test_search import runs_of
from test_workers import worker_processes


# ------------------------------------------------------------------ the workers' limit


def test_the_workers_limit_is_the_cores_and_the_memory():
    limit, reckoning = worker_limit()
    cores = len(os.sched_getaffinity(0))
    assert 1 <= limit <= cores
    assert reckoning.startswith(f"{cores} core") and "GB of memory available at about 1 GB per TensorFlow worker" in reckoning
    check_worker_count(limit)  # the limit itself is taken, and one worker always is
    check_worker_count(1)
    with pytest.raises(ValueError, match=rf"^--workers {limit + 1}: this machine takes at most {limit} \({cores} core"):
        check_worker_count(limit + 1)


# ------------------------------------------------------------------ grid search resumed


def grid_oracle(folder):
    oracle = make_oracle(ExperimentConfig(name="mnist", model="dfn", tuner="grid", max_trials=30),
                         get_task("classification"))
    oracle.verbose = 0
    space = keras_tuner.HyperParameters()
    space.Choice("units", [32, 64, 128])
    space.Choice("optimizer", ["adam", "sgd"])
    space.Boolean("batch_norm")
    oracle.update_space(space)
    oracle._set_project_dir(str(folder), "grid")
    return oracle


def run_trials(oracle, count, leave_last_running=False) -> list[tuple]:
    """Up to `count` trials through the oracle as a tuner runs them; the values each one took."""
    taken = []
    for number in range(count):
        trial = oracle.create_trial("worker1")
        if trial.status != "RUNNING":
            break
        taken.append(tuple(sorted(trial.hyperparameters.values.items())))
        if leave_last_running and number == count - 1:
            break  # stopped mid-trial: KerasTuner saved it RUNNING
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5 + number / 100})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return taken


@pytest.mark.parametrize("saved_by", ["nnlab", "before nnlab kept the grid's order"])
def test_a_grid_search_resumes_where_it_stopped(tmp_path, saved_by):
    """KerasTuner's grid forgets its order when reloaded (keras-tuner issue 1055): resumed, it
    stopped at once or failed on the trial it ran again (KeyError '4'). Restored, a grid stopped
    in the middle of its fifth trial goes on exactly as an uninterrupted one."""
    whole = run_trials(grid_oracle(tmp_path / "whole"), 30)
    assert len(whole) == len(set(whole)) == 12  # every combination once

    first = run_trials(grid_oracle(tmp_path / "stopped"), 5, leave_last_running=True)
    if saved_by != "nnlab":
        path = tmp_path / "stopped" / "grid" / "oracle.json"
        state = json.loads(path.read_text())
        del state["nnlab_grid_order"], state["nnlab_grid_populate_next"]
        path.write_text(json.dumps(state))
    resumed = grid_oracle(tmp_path / "stopped")
    resumed.reload()
    rest = run_trials(resumed, 30)
    assert resumed.broken is None
    assert rest[0] == first[-1]  # the trial it stopped in runs again, then the grid goes on
    assert first + rest[1:] == whole


# ------------------------------------------------------------------ an oracle or a worker that fails


def test_an_oracle_that_fails_stops_the_search_in_one_line(tmp_path):
    """An error inside the oracle (here damaged state: a trial it does not hold) left KerasTuner's
    lock held for good: the worker died of it and the chief waited on the lock without a word."""
    oracle = grid_oracle(tmp_path)
    run_trials(oracle, 1)
    oracle._populate_next.insert(0, "7")  # no trial 7, next to be taken
    trial = oracle.create_trial("worker1")
    assert trial.status == "STOPPED" and oracle.broken == "KeyError: '7' (in gridsearch.py, populate_space)"
    answered = []  # the lock is free: the next call answers at once
    asking = threading.Thread(target=lambda: answered.append(oracle.create_trial("worker2").status), daemon=True)
    asking.start()
    asking.join(10)
    assert answered == ["STOPPED"]

    server = OracleServer(oracle, "127.0.0.1:0")
    try:
        workers = Workers(WorkerPlan(count=0, command=()), oracle, server, "", kill_trial_runs=None)
        started = time.monotonic()
        with pytest.raises(WorkersError, match=r"^the search's oracle failed: KeyError: '7' \(in gridsearch.py"):
            workers.run(lambda: False)
        assert time.monotonic() - started < 5
    finally:
        server.stop()


def test_a_worker_that_dies_with_a_traceback_is_said_at_once(tmp_path, capfd):
    oracle = make_oracle(ExperimentConfig(name="mnist", model="dfn", tuner="random", max_trials=3),
                         get_task("classification"))
    oracle._set_project_dir(str(tmp_path), "random")
    server = OracleServer(oracle, "127.0.0.1:0")
    crash = (sys.executable, "-c", "raise RuntimeError('broken worker')")  # its role and address follow
    lines = []
    try:
        workers = Workers(WorkerPlan(count=1, command=crash), oracle, server, "", kill_trial_runs=None,
                          echo=lines.append)
        started = time.monotonic()
        with pytest.raises(WorkersError, match=r"^worker1 ended 3 times in a row before a trial ended \(last: exit "
                                               r"code 1\); see its messages above$"):
            workers.run(lambda: False)
        assert time.monotonic() - started < 15
    finally:
        server.stop()
    assert lines == ["worker1 ended (exit code 1); starting a new one"] * 2 + ["worker1 ended (exit code 1)"]
    assert capfd.readouterr().err.count("RuntimeError: broken worker") == 3  # its own words, above


# ------------------------------------------------------------------ no process outlives the command


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, now."""
    children: dict[int, list[int]] = {}
    for line in subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, queue = set(), [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.add(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "(gone)"


def test_nothing_a_search_started_outlives_its_kill_9(workdir, idx_dir, tracking_uri):
    """kill -9 of a --workers 2 search while both workers are in a trial: its workers, its
    mlflow server and the server's uvicorn are all gone within 10 s (README: When things go wrong)."""
    (workdir / "killed.toml").write_text('name = "mnist"\nmodel = "dfn"\ntuner = "random"\nmax_trials = 4\n'
                                         'epochs = 20\npatience = 20\nfinal_epochs = 0\n')
    with open(workdir / "err", "w") as err:
        chief = subprocess.Popen([sys.executable, "-m", "nnlab.search", "killed.toml", "--workers", "2",
                                  "--data-dir", str(idx_dir), "--tracking-uri", tracking_uri],
                                 stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while True:  # both workers inside a trial, writing through the mlflow server
            assert chief.poll() is None and time.monotonic() < deadline, (workdir / "err").read_text()[-3000:]
            started |= descendants(chief.pid)
            try:
                running = [child for child in runs_of(tracking_uri)[1] if child.info.status == "RUNNING"]
            except Exception:  # the store may not be there yet
                running = []
            if len(running) == 2:
                break
            time.sleep(0.5)
        started |= descendants(chief.pid)
        commands = [command_of(pid) for pid in started]
        assert any("mlflow server" in command for command in commands)
        assert any("uvicorn" in command for command in commands)
        assert len(worker_processes(workdir)) == 2
        chief.kill()
        chief.wait()
        killed = time.monotonic()
        while any(alive(pid) for pid in started) and time.monotonic() - killed < 10:
            time.sleep(0.2)
        assert [command_of(pid) for pid in started if alive(pid)] == []
    finally:
        chief.kill()
        for pid in started:  # whatever the assertion above found left behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

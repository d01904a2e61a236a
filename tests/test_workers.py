"""Trials in worker processes (KerasTuner's chief and workers over gRPC, a local mlflow server in
front of the SQLite store): real processes, real signals, a real store."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from test_search import runs_of

EXPERIMENT = 'name = "mnist"\nmodel = "dfn"\ntuner = "random"\nmax_trials = 4\nfinal_epochs = 0\n'


def processes_in(folder: Path) -> list[str]:
    """The command lines of the processes, other than this one, working in `folder` or naming
    it: a search's chief, its workers and its mlflow server all do."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if command and (Path(cwd) == Path(folder) or str(folder) in command):
            found.append(command)
    return found


def wait_until_gone(folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while processes_in(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_in(folder) == [], "processes left behind"


def free_port_now() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_processes(folder: Path) -> dict[str, int]:
    """worker id -> pid of the search's worker processes now running."""
    workers = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if Path(cwd) == Path(folder) and "--role" in arguments and "--worker-id" in arguments:
            workers[arguments[arguments.index("--worker-id") + 1]] = int(entry.name)
    return workers


def test_two_workers_share_the_trials_and_a_killed_workers_trial_runs_again(workdir, idx_dir, tracking_uri):
    """One --workers 2 search checked two ways (one search where there were two, each a chief, two
    workers and an mlflow server to start): the workers share the trials under one search run,
    and a worker killed mid-trial leaves its trial to run again."""
    (workdir / "killed.toml").write_text(EXPERIMENT + "epochs = 10\npatience = 10\n")
    with open(workdir / "out", "w") as out, open(workdir / "err", "w") as err:
        chief = subprocess.Popen([sys.executable, "-u", "-m", "nnlab.search", "killed.toml", "--workers", "2",
                                  "--data-dir", str(idx_dir), "--tracking-uri", tracking_uri], stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 240
            while True:  # both workers inside a trial
                assert chief.poll() is None and time.monotonic() < deadline, (workdir / "err").read_text()[-3000:]
                try:
                    _, children = runs_of(tracking_uri)
                except Exception:  # the store may not be there yet
                    children = []
                running = [child for child in children if child.info.status == "RUNNING"]
                if len(running) == 2:
                    break
                time.sleep(0.2)
            victim = [child for child in running if child.data.tags["nnlab.worker"].startswith("worker1,")]
            (killed_trial,) = [child.data.tags["nnlab.trial_id"] for child in victim]
            os.kill(worker_processes(workdir)["worker1"], signal.SIGKILL)
            assert chief.wait(timeout=400) == 0, (workdir / "err").read_text()[-3000:]
        finally:
            chief.kill()
    stdout, stderr = (workdir / "out").read_text(), (workdir / "err").read_text()
    assert "Traceback" not in stderr and "View run" not in stdout
    # The two workers shared the trials, each progress line saying whose it was.
    assert "2 worker processes)" in stdout and "; oracle 127.0.0.1:" in stdout
    progress = [line for line in stdout.splitlines() if re.match(r"trial \S+ \(\d+ of \d+\)", line)]
    assert len(progress) == 4 and all(" [worker1]  " in line or " [worker2]  " in line for line in progress), progress
    assert f"worker1 ended (killed by SIGKILL) during trial {killed_trial}; the trial runs again; starting a new one" in stdout
    assert "\nLeaderboard (best first, 5 of 5 runs of 4 trials):\n" in stdout  # the killed trial's two runs
    parents, children = runs_of(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {child.data.tags["mlflow.parentRunId"] for child in children} == {parents[0].info.run_id}
    ran_by = {child.data.tags["nnlab.worker"].split(",")[0] for child in children}
    assert ran_by <= {"worker1", "worker2"}
    # One finished run per trial; the killed trial's first run KILLED, saying why.
    finished = sorted(child.data.tags["nnlab.trial_id"] for child in children if child.info.status == "FINISHED")
    assert finished == ["0", "1", "2", "3"]
    (killed,) = [child for child in children if child.info.status == "KILLED"]
    assert killed.data.tags["nnlab.trial_id"] == killed_trial
    assert killed.data.tags["nnlab.failure"] == "worker1 ended (killed by SIGKILL) during the trial; the trial runs again"
    assert len(children) == 5
    version = MlflowClient(tracking_uri).get_model_version_by_alias("mnist-dfn", "champion")
    assert version.run_id == parents[0].info.run_id
    # The trial runs went through the local mlflow server, which is gone with the workers.
    assert (workdir / "tuning" / "mnist-dfn" / "mlflow-server.log").is_file()
    wait_until_gone(workdir, 10)


@pytest.mark.parametrize("arguments, message", [
    (["--workers", "0"], "nnlab.search: error: --workers 0 leaves the trials to workers on other machines: give "
                         "--oracle HOST:PORT for them to reach"),
    (["--oracle", "nowhere"], "nnlab.search: error: --oracle 'nowhere' is not HOST:PORT (for example 127.0.0.1:50051)"),
    (["--gpus", "first"], "nnlab.search: error: --gpus 'first': GPU numbers separated by commas, e.g. 0,1"),
    (["--role", "worker"], "nnlab.search: error: --role worker needs --oracle HOST:PORT, the chief's address"),
    (["--chief-timeout", "5m"], "nnlab.search: error: --chief-timeout is for --role worker"),
])
def test_a_mistaken_scale_out_option_is_one_line(workdir, arguments, message):
    done = subprocess.run([sys.executable, "-m", "nnlab.search", "mnist", *arguments], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == message and done.stdout == ""
    assert not (workdir / "mlruns").exists() and not (workdir / "tuning").exists()


def test_a_worker_without_its_chief_says_so(workdir, idx_dir, tracking_uri, capsys):
    # The worker's command in this process: it says so once TensorFlow and the data are loaded,
    # which a process of its own took 6 s to do (the tests above start real workers).
    from nnlab.search import main

    code = main(["mnist", "--role", "worker", "--oracle", "127.0.0.1:9", "--data-dir", str(idx_dir), "--tracking-uri",
                 tracking_uri])
    captured = capsys.readouterr()
    assert code == 2, captured.err[-2000:]
    assert captured.err.strip() == ("nnlab.search: error: no search in tuning/mnist-cnn: start the chief first; workers "
                                    "on other machines need the chief's tuning/ folder (a shared file system)")


def _worker_plan(argv):
    """The WorkerPlan `python -m nnlab.search ARGV` starts its workers by, made as its main does."""
    from nnlab.api import worker_plan
    from nnlab.search import parse_args

    args = parse_args(argv)
    return worker_plan(args.experiment, vars(args), args.workers, args.worker_trials, args.oracle, args.gpus)


def test_the_chief_hands_its_options_and_gpus_to_its_workers():
    from nnlab.workers import Workers, worker_environment

    plan = _worker_plan(["mnist", "--model", "dfn", "--workers", "3", "--gpus", "0,1", "--jit", "--mixed-precision",
                         "--steps-per-execution", "4", "--worker-trials", "5"])
    assert plan.command[1:] == ("-m", "nnlab.search", "mnist", "--model", "dfn", "--mixed-precision", "--jit",
                                "--steps-per-execution", "4")
    assert (plan.count, plan.trials_each, plan.bind, plan.gpus) == (3, 5, "127.0.0.1:0", ("0", "1"))
    # Each worker its GPU in turn: --gpus 0,0 would put two on one.
    workers = Workers(plan, oracle=None, server=None, tracking_uri="", kill_trial_runs=None)
    assert [(slot.name, slot.gpu) for slot in workers.slots] == [("worker1", "0"), ("worker2", "1"), ("worker3", "0")]
    assert worker_environment("worker2", "10.0.0.5:50051", "1") == {
        "KERASTUNER_TUNER_ID": "worker2", "KERASTUNER_ORACLE_IP": "10.0.0.5", "KERASTUNER_ORACLE_PORT": "50051",
        "CUDA_VISIBLE_DEVICES": "1"}
    # Without --gpus on a machine without one, the workers see what the chief sees.
    alone = Workers(_worker_plan(["mnist", "--workers", "2"]), oracle=None, server=None, tracking_uri="",
                    kill_trial_runs=None)
    assert [slot.gpu for slot in alone.slots] == [None, None]
    assert "CUDA_VISIBLE_DEVICES" not in worker_environment("worker1", "127.0.0.1:1")


def test_without_workers_asked_for_a_short_search_runs_its_trials_in_the_chief():
    """The default plan: a worker process only where it would be replaced (more trials planned than
    --worker-trials), for memory's sake; otherwise its start would buy nothing."""
    from nnlab.config import load_config
    from nnlab.oracles import planned_trials_of

    default = load_config("mnist", {})  # Hyperband's schedule: 10 trials
    assert planned_trials_of(default) == 10
    plan = _worker_plan(["mnist"])
    assert plan.automatic and plan.count == 1 and plan.runs_here(planned_trials_of(default))
    assert not _worker_plan(["mnist", "--worker-trials", "9"]).runs_here(10)
    assert _worker_plan(["mnist", "--worker-trials", "0"]).runs_here(None)  # never replaced: no need
    random = load_config("mnist", {"tuner": "random"})  # max_trials 20
    assert planned_trials_of(random) == 20 and not plan.runs_here(20)
    assert not plan.runs_here(None)  # no end planned
    # Asked for, a worker it is, however short the search; so with an --oracle or --gpus.
    for argv in (["--workers", "1"], ["--oracle", "127.0.0.1:0"], ["--gpus", "0"]):
        assert not _worker_plan(["mnist", *argv]).runs_here(1), argv


@contextlib.contextmanager
def users_mlflow_server(workdir: Path, port: int):
    """An mlflow server of the user's, as the README's several-machine recipe starts it, on
    loopback: yields its URI once it answers (a chief refuses a store that does not)."""
    store = f"sqlite:///{workdir}/server/mlflow.db"
    (workdir / "server").mkdir()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                               "--artifacts-destination", str(workdir / "server" / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    tracking = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{tracking}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the mlflow server did not start"
                time.sleep(0.3)
        yield tracking
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def start_chief(workdir: Path, arguments: list[str]) -> subprocess.Popen:
    """A chief with no worker of its own, started apart; returned once its run and its oracle are
    up, for a worker to find (it says "Starting search")."""
    with open(workdir / "chief-out", "w") as out, open(workdir / "chief-err", "w") as err:
        chief = subprocess.Popen([sys.executable, "-m", "nnlab.search", *arguments, "--role", "chief", "--workers",
                                  "0"], stdout=out, stderr=err)
    deadline = time.monotonic() + 120
    while "\nStarting search " not in "\n" + (workdir / "chief-out").read_text():
        assert chief.poll() is None and time.monotonic() < deadline, (workdir / "chief-err").read_text()[-3000:]
        time.sleep(0.2)
    return chief


def test_a_chief_and_a_worker_started_apart_as_on_two_machines(workdir, idx_dir, free_port, capsys):
    """The README's several-machine recipe on loopback: an mlflow server of the user's, a chief
    serving the oracle at an address it is told, running no worker itself, and a worker started
    on its own with the chief's address and the server's URI."""
    oracle = f"127.0.0.1:{free_port_now()}"
    (workdir / "apart.toml").write_text(EXPERIMENT.replace("max_trials = 4", "max_trials = 2") + "epochs = 1\n")
    with users_mlflow_server(workdir, free_port) as tracking:
        common = ["apart.toml", "--data-dir", str(idx_dir), "--tracking-uri", tracking]
        chief = start_chief(workdir, [*common, "--oracle", oracle])
        try:
            worker = subprocess.run([sys.executable, "-m", "nnlab.search", *common, "--role", "worker", "--oracle",
                                     oracle], capture_output=True, text=True, timeout=300)
            assert worker.returncode == 0 and worker.stdout == "", worker.stderr[-3000:]
            assert chief.wait(timeout=300) == 0, (workdir / "chief-err").read_text()[-3000:]
        finally:
            chief.kill()
        stdout = (workdir / "chief-out").read_text()
        assert "0 worker processes)" in stdout and f"; oracle {oracle}" in stdout and "Registered mnist-dfn version 1" in stdout
        parents, children = runs_of(tracking)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert sorted((child.data.tags["nnlab.trial_id"], child.info.status) for child in children) == [
            ("0", "FINISHED"), ("1", "FINISHED")]
        assert all(child.data.tags["nnlab.worker"].startswith("worker-") for child in children)  # worker-HOSTNAME
        # nnlab.ui on a tracking server starts nothing: the server serves its own UI, here are its pages.
        from nnlab.ui import main as ui_main

        assert ui_main(["--tracking-uri", tracking]) == 0
        assert capsys.readouterr().out.splitlines() == [
            f"MLflow UI: {tracking}   (the tracking server serves it; nothing to start)",
            f"  mnist: {tracking}/#/experiments/{parents[0].info.experiment_id}/runs?workflowType=machine_learning"]


def test_a_workers_call_to_a_chief_that_does_not_answer_ends_after_its_chief_timeout_not_an_hour(monkeypatch):
    """KerasTuner's own client, its calls given --chief-timeout: a real gRPC call to a port that
    takes the connection and never answers (a hung machine), ended by its deadline."""
    import grpc
    from keras_tuner.src.distribute.oracle_client import OracleClient

    from nnlab.search import _waited
    from nnlab.tuner import rpc_words
    from nnlab.workers import answer_within, worker_environment

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nothing ever answers
        for name, value in worker_environment("w1", f"127.0.0.1:{silent.getsockname()[1]}").items():
            monkeypatch.setenv(name, value)
        client = OracleClient(oracle=None)
        answer_within(client, 1.5)
        raised = []

        def ask():
            try:
                client.get_space()  # KerasTuner's call: wait_for_ready, timeout an hour
            except grpc.RpcError as error:
                raised.append(error)

        started = time.monotonic()
        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(30)  # a call still waiting fails the test here, not an hour later
        waited = time.monotonic() - started
    assert not asking.is_alive() and 1.5 <= waited < 10, waited
    assert _waited(rpc_words(raised[0]), 1.5) == ("DEADLINE_EXCEEDED: Deadline Exceeded: no answer in 1.5s "
                                                  "(--chief-timeout)")


@pytest.mark.slow
def test_a_worker_apart_whose_chief_stops_answering_mid_trial_ends_it_killed_after_its_chief_timeout(
        workdir, idx_dir, free_port):
    """A worker on another machine whose chief's machine goes down hears nothing: no connection
    is reset, its next call to the oracle (or the one in flight) just waits. KerasTuner's client
    waits an hour; nnlab's worker waits --chief-timeout, then ends its trial KILLED and exits 1
    with one line. The chief is stopped with SIGSTOP, as a machine that hangs: its sockets stay
    open (a chief killed on this machine resets them, and the call fails at once: UNAVAILABLE)."""
    from nnlab.tracking.runs import LOST_REASON

    oracle = f"127.0.0.1:{free_port_now()}"
    (workdir / "hangs.toml").write_text(EXPERIMENT.replace("max_trials = 4", "max_trials = 1")
                                        + "epochs = 40\npatience = 40\n")
    with users_mlflow_server(workdir, free_port) as tracking:
        common = ["hangs.toml", "--data-dir", str(idx_dir), "--tracking-uri", tracking]
        chief = start_chief(workdir, [*common, "--oracle", oracle])
        worker = subprocess.Popen([sys.executable, "-m", "nnlab.search", *common, "--role", "worker", "--oracle",
                                   oracle, "--chief-timeout", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            deadline = time.monotonic() + 180
            while not any(child.info.status == "RUNNING" and "loss" in child.data.metrics
                          for child in runs_of(tracking)[1]):  # the trial has trained an epoch
                assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read()[-3000:]
                time.sleep(0.3)
            chief.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            stdout, stderr = worker.communicate(timeout=120)
            waited = time.monotonic() - stopped
        finally:
            for process in (worker, chief):
                process.kill()
                process.wait(30)
        assert worker.returncode == 1 and stdout == "", stderr[-3000:]
        said = stderr.strip().splitlines()
        assert len(said) == 2 and said[0] == (f"nnlab.search: error: the chief's oracle at {oracle} stopped answering; "
                                              "trial 0 is marked KILLED and runs again when the search resumes"), said
        assert said[1] == "nnlab.search:   DEADLINE_EXCEEDED: Deadline Exceeded: no answer in 3s (--chief-timeout)"
        assert 3 <= waited < 60, waited  # the rest of an epoch, the 3 s, the run marked: not KerasTuner's hour
        (run,) = runs_of(tracking)[1]
        assert run.info.status == "KILLED" and run.data.tags["nnlab.failure"] == (
            f"{LOST_REASON} (DEADLINE_EXCEEDED: Deadline Exceeded); the trial runs again on resume")


def test_no_worker_here_needs_a_server_every_machine_reaches(workdir, idx_dir, tracking_uri):
    done = subprocess.run([sys.executable, "-m", "nnlab.search", "mnist", "--workers", "0", "--oracle", "127.0.0.1:0",
                           "--data-dir", str(idx_dir), "--tracking-uri", tracking_uri],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == (
        "nnlab.search: error: --workers 0 leaves the trials to workers on other machines, which need an MLflow server "
        f"they all reach: give --tracking-uri http://HOST:PORT, not {tracking_uri} (README: Scaling out)")
    assert not (workdir / "tuning").exists()


# The chief as `python -m nnlab.search` runs it, its oracle failing the first UpdateTrial call
# as a dying chief's does (UNAVAILABLE): a fault injected into the real servicer, nothing mocked
# on the worker's side, which runs in a process of its own.
CHIEF_FAILING_ONE_UPDATE = """
import sys
import grpc
from keras_tuner.src.distribute import oracle_chief

update_trial, failed = oracle_chief.OracleServicer.UpdateTrial, []

def update_or_fail_once(self, request, context):
    if not failed:
        failed.append(True)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the chief is going down")
    return update_trial(self, request, context)

oracle_chief.OracleServicer.UpdateTrial = update_or_fail_once
from nnlab.search import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_worker_whose_call_to_the_oracle_fails_ends_its_trial_killed_and_exits_in_one_line(
        workdir, idx_dir, tracking_uri):
    """The OracleLost path end to end (a chief killed mid-call, test_interrupt's kill -9 race,
    made certain): the worker marks its trial KILLED with how the call failed and exits 1 with
    one line (and gRPC's words on the next), and the chief replaces it; the trial runs again."""
    from nnlab.tracking.runs import LOST_REASON

    (workdir / "lost.toml").write_text(EXPERIMENT.replace("max_trials = 4", "max_trials = 1") + "epochs = 1\n")
    done = subprocess.run([sys.executable, "-c", CHIEF_FAILING_ONE_UPDATE, "lost.toml", "--workers", "1",
                           "--data-dir", str(idx_dir), "--tracking-uri", tracking_uri],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("nnlab.search: ")]
    assert len(said) == 2 and re.fullmatch(r"nnlab\.search: error: the chief's oracle at 127\.0\.0\.1:\d+ stopped "
                                           r"answering; trial 0 is marked KILLED and runs again when the search "
                                           r"resumes", said[0]), said
    assert said[1] == "nnlab.search:   UNAVAILABLE: the chief is going down", said
    assert "worker1 ended (exit code 1) during trial 0; the trial runs again; starting a new one" in done.stdout
    assert "\nLeaderboard (best first, 2 of 2 runs of 1 trial):\n" in done.stdout
    _parents, children = runs_of(tracking_uri)
    assert sorted((child.data.tags["nnlab.trial_id"], child.info.status) for child in children) == [
        ("0", "FINISHED"), ("0", "KILLED")]
    (lost,) = [child for child in children if child.info.status == "KILLED"]
    assert lost.data.tags["nnlab.failure"] == (f"{LOST_REASON} (UNAVAILABLE: the chief is going down); the trial "
                                               "runs again on resume")

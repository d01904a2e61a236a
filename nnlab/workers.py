"""Trials in worker processes, with KerasTuner's own distributed mode.

The chief (the search command's process) serves its KerasTuner oracle over gRPC; each worker is
`python -m nnlab.search ... --role worker`, a KerasTuner tuner whose oracle is the chief's
(KerasTuner's KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT). The chief
starts the local workers, replaces each one after its share of trials (a process that ends
takes all its memory with it: KerasTuner's grows trial after trial in one process), puts back
the trial of a worker that dies for another to run, and stops them all when the search ends or
is stopped. SQLite takes one writer at a time: with several workers and the project's SQLite
store, a local `mlflow server` stands in front of it and every process talks to that. gRPC,
KerasTuner and MLflow are imported inside functions: the search command imports this module to
check its flags, before anything is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

from nnlab.accelerators import start_backend
from nnlab.cli import as_typed
from nnlab.errors import WorkersError
from nnlab.formats import counted

# A worker's exit codes that the chief reads: it ran its share of trials and wants replacing;
# a mistake of the user's (the same as the command's own, said on stderr already).
WORKER_RETIRED = 3
WORKER_USER_ERROR = 2
# A worker that dies this many times in a row without a trial ending stops the search.
CRASHES_IN_A_ROW = 3
# How long a stopped worker gets to mark its trial KILLED and save before it is killed.
STOP_GRACE_SECONDS = 60
# How long a process the chief started outlives a chief that died without stopping it (kill -9,
# an abort): enough to mark a trial KILLED in a local store, not to wait on a server that is gone.
ORPHAN_GRACE_SECONDS = 5
DEFAULT_TRIALS_PER_WORKER = 10
# What one TensorFlow worker process takes, about (TensorFlow, the data, a model in training).
WORKER_MEMORY_BYTES = 1 << 30
# How long a host name may take to resolve before an --oracle address is refused.
RESOLVE_SECONDS = 5
# How long a worker's call to its chief's oracle may go unanswered before the worker takes the
# chief for gone (--chief-timeout). KerasTuner's client waits an hour, for a chief still starting;
# nnlab's worker finds the chief's run in MLflow before its first call, so the chief is up by then.
DEFAULT_CHIEF_TIMEOUT = 300.0


@dataclass(frozen=True)
class WorkerPlan:
    """How the chief runs its trials: `count` local worker processes (0: only workers started
    on other machines), each replaced after `trials_each` trials (0: never), each started as
    `command` (python -m nnlab.search EXPERIMENT and the search's own options) plus its role;
    the oracle listens on `bind`; `gpus` are handed out to the workers in turn (none given:
    with several workers, each GPU found in turn; one worker sees them all). `automatic`: the
    count was not asked for; the trials run in the chief instead where a worker would never be
    replaced (`runs_here`)."""

    count: int
    command: tuple[str, ...]
    trials_each: int = DEFAULT_TRIALS_PER_WORKER
    bind: str = "127.0.0.1:0"
    gpus: tuple[str, ...] = ()
    automatic: bool = False

    def runs_here(self, planned_trials: int | None) -> bool:
        """An automatic plan's trials run in the chief when the search plans no more than one
        worker would run before its replacement: that worker's start (TensorFlow, the data, a
        model: about 10 s, and 900 MB) would buy nothing; a longer search keeps the worker,
        whose replacement keeps memory flat (BENCHMARKS.md, issue 14)."""
        if not self.automatic:
            return False
        return not self.trials_each or (planned_trials is not None and planned_trials <= self.trials_each)

    def needs_tracking_server(self) -> bool:
        """More than one process will write trial runs at once."""
        return self.count != 1


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not HOST:PORT (for example 127.0.0.1:50051)")
    return host, int(port)


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux's MemAvailable), else the free pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_limit() -> tuple[int, str]:
    """The most local worker processes this machine takes, and how that was reckoned: one per
    core (more only share the cores: each TensorFlow process already uses them all) and one per
    GB of available memory (each holds its own TensorFlow, data and model); never fewer than 1."""
    cores = usable_cores()
    memory = available_memory()
    limit, reckoning = cores, counted(cores, "core")
    if memory is not None:
        limit = min(limit, memory // WORKER_MEMORY_BYTES)
        reckoning += f", {memory / 2**30:.1f} GB of memory available at about 1 GB per TensorFlow worker"
    return max(1, limit), reckoning


def check_worker_count(count: int) -> None:
    """ValueError naming the workers asked for when this machine cannot take `count` local workers."""
    limit, reckoning = worker_limit()
    if count > limit:
        raise ValueError(f"{as_typed('workers', count)}: this machine takes at most {limit} ({reckoning}); "
                         f"give {as_typed('workers', limit)} or fewer, or start workers on other machines "
                         "(README: Scaling out)")


def check_address(address: str, listen: bool) -> tuple[str, int]:
    """HOST:PORT split, its host resolved, and (`listen`: the chief's own address) the port bound
    once and let go: ValueError saying what is wrong, found before anything is started."""
    host, port = split_address(address)
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::] as gRPC writes it
    found: list = []
    lookup = threading.Thread(target=lambda: found.append(_resolve(name, port)), daemon=True)
    lookup.start()
    lookup.join(RESOLVE_SECONDS)
    if not found:
        raise ValueError(f"{address!r}: host {name!r} did not resolve within {RESOLVE_SECONDS} s")
    if isinstance(found[0], OSError):
        raise ValueError(f"{address!r}: host {name!r} does not resolve ({found[0].strerror or found[0]})")
    if listen:
        family, _kind, _protocol, _name, socket_address = found[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(socket_address)
            except OSError as error:
                raise ValueError(f"{address!r}: cannot listen there ({error.strerror or error}); give an address "
                                 "of this machine and a free port, or 0.0.0.0:PORT for every interface") from None
    return host, port


def _resolve(host: str, port: int):
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        return error


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def quiet_trial_protos() -> None:
    """KerasTuner 1.4.8 left a print(self.values[0]) in the conditions' to_proto, which every trial
    crossing gRPC goes through: "1", "2", ... on stdout for each conditional hyperparameter. The
    module's own `print` is shadowed; nothing else in it prints."""
    from keras_tuner.src.engine import conditions

    conditions.print = lambda *args, **kwargs: None


# ------------------------------------------------------------------ the chief's two servers


class OracleServer:
    """KerasTuner's oracle servicer on a gRPC server of our own: KerasTuner's start_server
    blocks and checks for the end every 20 s; the chief needs to watch its workers meanwhile."""

    def __init__(self, oracle, bind: str):
        import grpc
        from keras_tuner.src import protos
        from keras_tuner.src.distribute.oracle_chief import OracleServicer

        quiet_trial_protos()
        host, port = split_address(bind)
        self.servicer = OracleServicer(oracle)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if not self.port:
            raise WorkersError(f"--oracle {bind}: cannot listen there for workers (in use? another address?)")
        self.host = host
        self.server.start()

    def address_for_workers(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "[::]", "::") else self.host
        return f"{host}:{self.port}"

    @property
    def stop_sent(self) -> bool:
        """The oracle has told a worker that no trial is left."""
        return self.servicer.stop_triggered

    def stop(self) -> None:
        self.server.stop(grace=1).wait()


CHIEF_PID_VARIABLE = "NNLAB_CHIEF_PID"


def die_with_chief() -> None:
    """In a worker the chief started: SIGTERM when the chief dies, however it dies (Linux's
    PR_SET_PDEATHSIG), and ended ORPHAN_GRACE_SECONDS later if the SIGTERM's clean-up has not
    ended it (it may wait on the chief's mlflow server, gone with the chief). Set by the worker
    itself: a preexec_fn would run in a fork of the chief, whose gRPC threads make that fork abort."""
    chief = os.environ.get(CHIEF_PID_VARIABLE)
    if chief is None:
        return
    if not _parent_death_signal(signal.SIGTERM):  # not Linux: the chief's own clean-up has to do
        return
    threading.Thread(target=_end_when_orphaned, args=(int(chief),), daemon=True).start()
    if os.getppid() != int(chief):  # the chief died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _parent_death_signal(number: int) -> bool:
    """Ask Linux for `number` when this process's parent dies; False where it cannot."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, number) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _end_when_orphaned(chief: int) -> None:
    while os.getppid() == chief:
        time.sleep(0.5)
    time.sleep(ORPHAN_GRACE_SECONDS)
    os._exit(128 + signal.SIGTERM)


def supervise(command: list[str]) -> int:
    """The process the chief starts its mlflow server through (`python -c`, see tracking_server):
    it leads the server's process group (`mlflow server` starts uvicorn, which serves), runs
    `command` in it, and on SIGTERM or SIGINT, or when the chief dies however it dies
    (PR_SET_PDEATHSIG), stops the whole group: SIGTERM, SIGKILL what is left after
    ORPHAN_GRACE_SECONDS. Returns the server's exit code when it ends by itself."""
    chief = int(os.environ[CHIEF_PID_VARIABLE])
    stopping: list[int] = []

    def stop(number, _frame):
        # Once: a second signal (the chief's death and a Ctrl-C together, say) arriving while the
        # first one's clean-up runs would otherwise raise inside it and leave the group running.
        if not stopping:
            stopping.append(number)
            raise _Stop

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    try:
        _parent_death_signal(signal.SIGTERM)
        # The server's own children (uvicorn) become this process's when the server ends, so
        # that it can wait for them too (PR_SET_CHILD_SUBREAPER).
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1)
        if os.getppid() != chief:  # the chief died before the line above
            stop(signal.SIGTERM, None)
        return subprocess.Popen(command).wait()
    except _Stop:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)
        os.killpg(0, signal.SIGTERM)
        deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
        with contextlib.suppress(ChildProcessError):  # none left: all of them have ended
            while time.monotonic() < deadline:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.1)
        os.killpg(0, signal.SIGKILL)  # what is left, and this process last
        return 1


class _Stop(Exception):
    """supervise's signal to stop the server's group."""


@contextlib.contextmanager
def tracking_server(store_uri: str, log_file: Path):
    """A local `mlflow server` on loopback over the SQLite store `store_uri`, for as long as the
    block runs; yields its http URI. Its processes are a group of their own, stopped together, and
    stop by themselves if the chief dies (`supervise`)."""
    from nnlab.tracking import sqlite_file

    database = sqlite_file(store_uri).resolve()
    port = free_port()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{database}",
               "--default-artifact-root", database.parent.as_uri(), "--no-serve-artifacts",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # MLflow's job runner (a queue and seven consumers) serves its GenAI features, not nnlab.
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", CHIEF_PID_VARIABLE: str(os.getpid())}
    # Through `supervise`, in a process group of its own: a Ctrl-C at the terminal does not reach
    # it (the chief stops it after its workers, which may still be writing), and nothing of it
    # outlives the chief, even one killed with kill -9.
    supervised = [sys.executable, "-c", "import sys; from nnlab.workers import supervise; "
                  "sys.exit(supervise(sys.argv[1:]))", *command]
    with open(log_file, "ab") as log:
        process = subprocess.Popen(supervised, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment,
                                   start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise WorkersError(f"mlflow server ended with exit code {process.returncode} before it "
                                   f"answered; its log: {log_file}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise WorkersError(f"mlflow server did not answer on {uri} within 120 s; its log: {log_file}") from None
                time.sleep(0.2)
        yield uri
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM to the process's group (it leads one), SIGKILL to what is left after `grace`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


# ------------------------------------------------------------------ the workers


def worker_environment(name: str, oracle_address: str, gpu: str | None = None) -> dict:
    """What makes a KerasTuner tuner a worker of the chief at `oracle_address`."""
    host, port = split_address(oracle_address)
    environment = {"KERASTUNER_TUNER_ID": name, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": str(port)}
    if gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = gpu
    return environment


def answer_within(client, seconds: float) -> None:
    """Every call of a worker's KerasTuner oracle client to its chief ends after `seconds` at
    most (gRPC's DEADLINE_EXCEEDED), not after KerasTuner's hour: a chief killed, or its machine
    down, while the worker trained shows only as a call that waits."""
    client.stub = _CallsWithin(client.stub, seconds)


class _CallsWithin:
    """A gRPC stub whose calls (stub.Method(request, timeout=..., ...)) wait `seconds` at most."""

    def __init__(self, stub, seconds: float):
        self._stub, self._seconds = stub, seconds

    def __getattr__(self, name):
        call = getattr(self._stub, name)

        def within(request, **options):
            options["timeout"] = min(options.get("timeout") or self._seconds, self._seconds)
            return call(request, **options)

        return within


def wait_while_idle(client, pause: float = 0.5) -> None:
    """A worker's KerasTuner asks its chief again at once while the oracle answers IDLE (Hyperband
    waiting for the other trials of a round), keeping the chief busy: a pause between asks."""
    ask = client.create_trial

    def create_trial(tuner_id):
        while True:
            trial = ask(tuner_id)
            if trial.status != "IDLE":
                return trial
            time.sleep(pause)

    client.create_trial = create_trial


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class _Slot:
    name: str
    gpu: str | None
    process: subprocess.Popen | None = None
    ended_at_start: int = 0  # trials ended search-wide when this process started
    crashes: int = 0
    done: bool = False


@dataclass
class Workers:
    """The chief's local worker processes, started, watched and replaced; `run` returns when the
    oracle has no trial left and every trial has ended."""

    plan: WorkerPlan
    oracle: object  # the chief's KerasTuner oracle (nnlab.oracles' mixins)
    server: OracleServer
    tracking_uri: str
    kill_trial_runs: object  # callable(trial_id, reason): the trial's RUNNING runs end KILLED
    echo: object = print
    slots: list = field(default_factory=list)

    def __post_init__(self):
        gpus = list(self.plan.gpus)
        if not gpus and self.plan.count > 1:
            gpus = [str(index) for index in range(len(start_backend()))]  # each worker its own, in turn
        self.slots = [_Slot(f"worker{index + 1}", gpus[index % len(gpus)] if gpus else None)
                      for index in range(self.plan.count)]

    def _start(self, slot: _Slot) -> None:
        command = [*self.plan.command, "--role", "worker", "--oracle", self.server.address_for_workers(),
                   "--tracking-uri", self.tracking_uri, "--worker-id", slot.name,
                   "--worker-trials", str(self.plan.trials_each)]
        environment = {**os.environ, **worker_environment(slot.name, self.server.address_for_workers(), slot.gpu),
                       CHIEF_PID_VARIABLE: str(os.getpid())}
        slot.ended_at_start = len(self.oracle.end_order)
        slot.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=environment)

    def run(self, interrupted) -> None:
        try:
            for slot in self.slots:
                self._start(slot)
            while not self._finished():
                if interrupted():
                    raise KeyboardInterrupt
                if getattr(self.oracle, "broken", None):  # nnlab.oracles.KeepsWorking: no trial is handed out
                    raise WorkersError(f"the search's oracle failed: {self.oracle.broken}")
                for slot in self.slots:
                    if not slot.done and slot.process.poll() is not None:
                        self._ended(slot)
                time.sleep(0.2)
        finally:
            self.stop()

    def _finished(self) -> bool:
        # Local workers all told to stop, and no trial of a worker elsewhere still running.
        local_done = all(slot.done for slot in self.slots)
        return local_done and bool(self.slots or self.server.stop_sent) and not self.oracle.ongoing_trials

    def _ended(self, slot: _Slot) -> None:
        code = slot.process.returncode
        if code == 0:  # the oracle told it that no trial is left
            slot.done = True
            return
        if code == WORKER_RETIRED:
            slot.crashes = 0
            self._start(slot)
            return
        if code == WORKER_USER_ERROR:
            raise WorkersError(f"{slot.name} stopped on the error above")
        trial_id = self.oracle.requeue(slot.name)
        progressed = len(self.oracle.end_order) > slot.ended_at_start
        slot.crashes = 0 if progressed else slot.crashes + 1
        how = describe_exit(code)
        if trial_id is not None:
            self.kill_trial_runs(trial_id, f"{slot.name} ended ({how}) during the trial; the trial runs again")
        self.echo(f"{slot.name} ended ({how})" + (f" during trial {trial_id}; "
                                                  "the trial runs again" if trial_id is not None else "")
                  + ("; starting a new one" if slot.crashes < CRASHES_IN_A_ROW else ""))
        if slot.crashes >= CRASHES_IN_A_ROW:
            raise WorkersError(f"{slot.name} ended {slot.crashes} times in a row before a trial ended "
                               f"(last: {how}); see its messages above")
        self._start(slot)

    def stop(self) -> None:
        """Every worker still running is asked to stop (SIGTERM: it marks its trial KILLED and
        saves), then killed after STOP_GRACE_SECONDS; a killed one's trial runs are closed here."""
        running = [slot for slot in self.slots if slot.process is not None and slot.process.poll() is None]
        for slot in running:
            with contextlib.suppress(ProcessLookupError):
                slot.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for slot in running:
            try:
                slot.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait()
                trial = self.oracle.ongoing_trials.get(slot.name)
                if trial is not None:
                    self.kill_trial_runs(trial.trial_id, f"{slot.name} did not stop within {STOP_GRACE_SECONDS} s "
                                         "and was killed; the trial runs again on resume")

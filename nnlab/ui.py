"""`python -m nnlab.ui`: the MLflow UI on the project's store, on 127.0.0.1 only.

The same as `mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1`, with
the store nnlab's commands use (`--tracking-uri`, else $MLFLOW_TRACKING_URI, else mlruns/), a
check that the store and the port are there to use, and the address printed once it answers,
with a link to each experiment's runs table (MLflow 3's UI opens on its GenAI view otherwise).

It prints nnlab's lines only: what `mlflow ui` and its web server (uvicorn) print ("Registry store
URI not provided...", "Security middleware enabled...", a StarletteDeprecationWarning, uvicorn's
start-up lines) goes to a log file beside the store, without uvicorn's line per request. When the
server exits, before it answers or later, nnlab says so with the log's last lines.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from nnlab import cli
from nnlab.errors import TrackingError
from nnlab.tracking import experiments_with_runs, is_server, no_store, resolve_tracking_uri, runs_page, sqlite_file

PROG = "nnlab.ui"
HOST = "127.0.0.1"  # loopback: the UI has no login, and runs can hold data
START_SECONDS = 120
LOG_TAIL_LINES = 15  # of the server's log, shown when it fails


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def command(tracking_uri: str, port: int) -> list[str]:
    """The `mlflow ui` command line, run with this Python. One worker: a UI for one person, and
    each worker is a process that imports MLflow (four by default). Without uvicorn's line per
    request: the log would grow with every page the UI loads."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
            "--host", HOST, "--port", str(port), "--workers", "1", "--uvicorn-opts=--no-access-log"]


def log_file(tracking_uri: str, port: int) -> Path:
    """Where the server's output goes: beside a SQLite store where that folder can be written,
    else in the temporary folder; one per port, as two UIs may run on one store."""
    database = sqlite_file(tracking_uri)
    writable = database is not None and os.access(database.parent, os.W_OK)
    return (database.parent if writable else Path(tempfile.gettempdir())) / f"mlflow-ui-{port}.log"


def _failed(what: str, log: Path) -> str:
    """`what` went wrong, with the last lines of the server's log (its own words: a Python
    traceback, a port it could not take)."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        lines = []
    shown = "".join(f"\n  {line}" for line in lines) if lines else " (it wrote nothing)"
    return f"{PROG}: error: {what}; the end of its log {log}:{shown}"


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main(argv=None) -> int:
    parser = cli.Parser(prog="python -m nnlab.ui", short_name=PROG,
                        description="Start the MLflow UI on the project's store, bound to 127.0.0.1.")
    parser.add_argument("--port", type=cli.port, default=5000, help="port to listen on (default: 5000)")
    parser.add_argument("--tracking-uri", help=cli.TRACKING_URI_HELP)
    args = parser.parse_args(argv)

    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    if is_server(tracking_uri):
        return _server_ui(tracking_uri)
    missing = no_store(tracking_uri, or_else=" or name the store with --tracking-uri")  # mlflow ui would make one
    if missing:
        print(f"{PROG}: error: {missing}", file=sys.stderr)
        return 2
    if not _port_free(args.port):
        print(f"{PROG}: error: port {args.port} on {HOST} is in use; choose another with --port", file=sys.stderr)
        return 2

    # MLflow starts its web server (uvicorn) by name: the folder of this Python's scripts goes
    # first on PATH, as an activated virtual environment would have it.
    environment = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    # MLflow 3's job runner (7 worker processes for its GenAI features) slows start and stop
    # and serves nothing nnlab logs.
    environment.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    address = f"http://{HOST}:{args.port}"

    def stop(_number, _frame):
        for number in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the clean-up short
            signal.signal(number, signal.SIG_IGN)
        raise KeyboardInterrupt

    # Both signals stop the UI, SIGINT too where a shell started this in the background with
    # SIGINT ignored; set before the server starts, so that no signal leaves it running alone.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, stop)
    log = log_file(tracking_uri, args.port)
    with open(log, "w") as output:  # this start's output only: its tail is what failed
        server = subprocess.Popen(command(tracking_uri, args.port), env=environment, stdin=subprocess.DEVNULL,
                                  stdout=output, stderr=subprocess.STDOUT)
    try:
        return _serve(server, address, tracking_uri, log)
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _server_ui(tracking_uri: str) -> int:
    """A tracking server serves its own UI (`mlflow ui` takes a database, not a server): its
    address and each experiment's runs page, where it answers; nothing is started."""
    try:
        experiments = experiments_with_runs(tracking_uri)
    except TrackingError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    address = tracking_uri.rstrip("/")
    print(f"MLflow UI: {address}   (the tracking server serves it; nothing to start)", flush=True)
    for name, experiment_id in experiments:
        print(f"  {name}: {runs_page(address, experiment_id)}", flush=True)
    return 0


def _serve(server: subprocess.Popen, address: str, tracking_uri: str, log: Path) -> int:
    """Wait for the server to answer, print its address and each experiment's runs page, then
    wait for it to end: an end other than by a signal of the user's is an error, with its log."""
    deadline = time.monotonic() + START_SECONDS
    while not _answers(address):
        if server.poll() is not None:
            print(_failed(f"mlflow ui exited with code {server.returncode} before it answered", log), file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(_failed(f"mlflow ui did not answer at {address} within {START_SECONDS} s", log), file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"MLflow UI: {address}   (store {tracking_uri}; Ctrl-C stops it)", flush=True)
    for name, experiment_id in experiments_with_runs(tracking_uri):
        print(f"  {name}: {runs_page(address, experiment_id)}", flush=True)
    code = server.wait()
    if code != 0:
        print(_failed(f"mlflow ui stopped with code {code}", log), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`kill -9` of a search's chief in the middle of a trial, many times: how its worker's trial run
ends each time (tests/test_interrupt.py does it once per suite run).

    python benchmarks/chief_kill.py                 # 20 kills, one core kept busy beside them (~20 min on 2 cores)
    python benchmarks/chief_kill.py --runs 5 --no-busy

Each run, in a fresh folder: `python -m nnlab.search` with `--workers 1` (a random search of
DFNs, 40 epochs a trial, on 1,000 of the shipped MNIST images written as IDX files), stopped by
Ctrl-C once its first trial has finished, resumed, and killed with SIGKILL while its third trial
trains, as the test does. The worker outlives its chief by a moment (PR_SET_PDEATHSIG sends it
SIGTERM) and ends the trial's run. Printed per run: the trial's status and `nnlab.failure` tag;
then how many runs ended with each. A run left FINISHED, or with a reason other than the stop's,
is where a race between the chief's death and its worker's clean-up shows.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

EXPERIMENT = ('name = "mnist"\nmodel = "dfn"\ntuner = "random"\nmax_trials = 4\nepochs = 40\npatience = 40\n'
              'final_epochs = 0\n')


def write_idx_folder(folder: Path) -> Path:
    """1,000 of the shipped MNIST images as the train pair, 500 as the t10k pair (IDX, as published)."""
    import numpy as np

    from nnlab.data import _shipped_mnist_subset

    images, labels = _shipped_mnist_subset()
    folder.mkdir(parents=True)
    for name, array in (("train-images-idx3-ubyte", images[::5]), ("train-labels-idx1-ubyte", labels[::5]),
                        ("t10k-images-idx3-ubyte.gz", images[1::10]), ("t10k-labels-idx1-ubyte.gz", labels[1::10])):
        magic = 0x00000803 if array.ndim == 3 else 0x00000801
        raw = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
        raw += np.asarray(array, dtype=np.uint8).tobytes()
        (folder / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    return folder


def trial_runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mnist")
    if experiment is None:
        return []
    return [run for run in client.search_runs([experiment.experiment_id]) if "nnlab.trial_id" in run.data.tags]


def running_trial(uri: str, finished: int) -> str | None:
    """A trial in training (its first epoch logged) once `finished` trial runs have finished."""
    try:
        runs = trial_runs(uri)
    except Exception:  # the store is being created
        return None
    if sum(run.info.status == "FINISHED" for run in runs) < finished:
        return None
    running = [run.data.tags["nnlab.trial_id"] for run in runs if run.info.status == "RUNNING" and "loss" in run.data.metrics]
    return running[0] if running else None


def processes_in(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def stop_once(command: list[str], folder: Path, uri: str, finished: int, signal_number: int) -> str:
    """Run the search, send `signal_number` while a trial trains after `finished` have finished,
    wait for every process of it to end; the trial it stopped."""
    with open(folder / "out", "a") as out, open(folder / "err", "a") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True, cwd=folder)
        deadline = time.monotonic() + 300
        while (trial := running_trial(uri, finished)) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the search ended or stalled before a trial after {finished} trained; {folder}/err")
            time.sleep(0.2)
        if signal_number == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal_number)
        process.wait(timeout=120)
    deadline = time.monotonic() + 30
    while processes_in(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    return trial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy", action=argparse.BooleanOptionalAction, default=True,
                        help="keep one core busy beside the search, as a second test process does (default: on)")
    parser.add_argument("--keep", type=Path, help="a folder to keep each run's folder in (default: a temporary one)")
    args = parser.parse_args()
    # MLflow sets its loggers' levels as it loads (imported above): its store's set-up, said at
    # each query, quieted after.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    root = args.keep or Path(tempfile.mkdtemp(prefix="nnlab-chief-kill-"))
    idx = write_idx_folder(root / "idx")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    ends = collections.Counter()
    try:
        for number in range(1, args.runs + 1):
            folder = (root / f"run{number}").resolve()
            folder.mkdir()
            (folder / "kill.toml").write_text(EXPERIMENT)
            uri = f"sqlite:///{folder}/mlflow.db"
            command = [sys.executable, "-u", "-m", "nnlab.search", "kill.toml", "--data-dir", str(idx),
                       "--tracking-uri", uri, "--workers", "1"]
            stop_once(command, folder, uri, 1, signal.SIGINT)
            trial = stop_once(command, folder, uri, 2, signal.SIGKILL)
            (run,) = [run for run in trial_runs(uri) if run.data.tags["nnlab.trial_id"] == trial]  # its first run
            end = f"{run.info.status}: {run.data.tags.get('nnlab.failure', '(no failure tag)')}"
            ends[end] += 1
            print(f"run {number}: trial {trial} {end}", flush=True)
    finally:
        if busy is not None:
            busy.kill()
    print(f"\n{args.runs} kills of the chief (runs in {root}):")
    for end, count in ends.most_common():
        print(f"  {count:3d}  {end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

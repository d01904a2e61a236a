"""How far `--time-budget` is kept, on an idle machine and beside another search.

For each source tree given (default: this repository), `python -m nnlab.search mnist
--time-budget B` runs `--runs` times alone, then `--runs` times while a second, budget-less
`python -m nnlab.search mnist` trains beside it (started `--load-start` seconds before, killed
after). Each search gets an empty folder and its own SQLite store; the tree is put first on
PYTHONPATH, so an older commit's clone runs its own nnlab. Printed: the command's wall time
(Python's start to its exit), its own "Done in", what the budget said when it stopped the
trials, the champion's further epochs and its test accuracy.

    python benchmarks/budget_under_load.py                          # this tree
    python benchmarks/budget_under_load.py /tmp/old-clone .         # side by side, one after the other
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nnlab.budget import parse_duration

REPOSITORY = Path(__file__).resolve().parent.parent


def search(tree: Path, folder: Path, budget: str | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnlab.search", "mnist", "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
    if budget:
        command += ["--time-budget", budget]
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.Popen(command, cwd=folder, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def one_run(tree: Path, budget: str, loaded: bool, load_start: float) -> dict:
    with tempfile.TemporaryDirectory() as measured, tempfile.TemporaryDirectory() as beside:
        load = search(tree, Path(beside), None) if loaded else None
        if load is not None:
            time.sleep(load_start)
        started = time.monotonic()
        process = search(tree, Path(measured), budget)
        output = process.communicate(timeout=1200)[0]
        wall = time.monotonic() - started
        if load is not None:
            load.kill()
            load.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the search in {tree} failed ({process.returncode}):\n{output[-3000:]}")
    done = re.search(r"Done in (\S+)", output)
    stopped = re.search(r"No further trials: time budget \S+: (\S+) left", output)
    epochs = re.search(r"trained on (\d+) epochs?", output)
    accuracy = re.search(r"test_accuracy (\d\.\d+)", output)
    return {"wall": wall, "done": done.group(1) if done else "-", "left": stopped.group(1) if stopped else "-",
            "epochs": int(epochs.group(1)) if epochs else 0, "accuracy": accuracy.group(1) if accuracy else "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", type=Path, default=[REPOSITORY], help="source trees (default: this one)")
    parser.add_argument("--budget", default="40", help="each search's --time-budget (default 40 s)")
    parser.add_argument("--runs", type=int, default=3, help="runs alone and runs beside a load, each (default 3)")
    parser.add_argument("--load-start", type=float, default=12.0,
                        help="seconds the other search runs before the measured one starts (default 12)")
    args = parser.parse_args()
    seconds = parse_duration(args.budget)
    print("| tree | beside another search | run | wall s | over the budget s | its Done in | left when the trials "
          "stopped | champion's further epochs | test accuracy |\n| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    for tree in args.trees:
        for loaded in (False, True):
            for run in range(1, args.runs + 1):
                result = one_run(tree.resolve(), args.budget, loaded, args.load_start)
                print(f"| {tree} | {'yes' if loaded else 'no'} | {run} | {result['wall']:.1f} | "
                      f"{result['wall'] - seconds:+.1f} | {result['done']} | {result['left']} | {result['epochs']} | "
                      f"{result['accuracy']} |", flush=True)


if __name__ == "__main__":
    main()

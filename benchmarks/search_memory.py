"""Resident memory of a long search, trial after trial: nnlab's search command against a plain
in-process KerasTuner loop over the same model and data.

    python benchmarks/search_memory.py                 # 30 trials each, ~8 min on 2 cores
    python benchmarks/search_memory.py --trials 10 --only nnlab

nnlab runs twice: as the command runs by default (its trials in one worker process, replaced by
a fresh one every 10 trials: --worker-trials) and with its worker never replaced
(--worker-trials 0), which shows what the replacement is for.

Each runs in a process of its own, in a temporary folder (its own tuning/ and mlruns/), and
prints a line as each trial ends. The benchmark reads the resident memory (VmRSS, /proc) of that
process and of every process it started, summed, at each such line: the memory the search holds
after trial N. Reported: after trials 1, 5 and the last, and the growth from trial 5 to the last
(issue 14 asks for less than 300 MB over 30 trials).

The model is a small DFN fixed by the experiment's [space] (2 hidden layers of 64 units), 1
epoch a trial on the 3,600 offline MNIST training images; both runs train the same networks. Linux
only (/proc).
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

REPOSITORY = Path(__file__).resolve().parent.parent
EXPERIMENT = """name = "memory"
model = "dfn"
tuner = "random"
max_trials = {trials}
epochs = 1
final_epochs = 0
keep_checkpoints = 1
[space]
hidden_layers = 2
units_0 = 64
units_1 = 64
"""
# The same search without nnlab: KerasTuner's RandomSearch over the same builder, data and
# trials, its best model kept in memory as KerasTuner keeps it; a line printed as each trial ends.
PLAIN_LOOP = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, keras_tuner
from nnlab.data import load_dataset
from nnlab.models import get_builder
from nnlab.space import Narrowed

dataset = load_dataset("mnist", seed=1, validation_fraction=0.1)
builder = get_builder("dfn")
space = {"hidden_layers": 2, "units_0": 64, "units_1": 64}

def build(hp):
    model = builder(Narrowed(hp, space), dataset.spec)
    model.compile(optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 3e-4, 1e-2, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

class Said(keras_tuner.RandomSearch):
    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        print(f"trial {int(trial.trial_id) + 1} done", flush=True)

tuner = Said(build, objective="val_accuracy", max_trials=int(sys.argv[1]), seed=1, directory="tuning",
             project_name="plain", overwrite=True)
tuner.search(*dataset.train, validation_data=dataset.validation, epochs=1, batch_size=128, verbose=0)
"""


def tree_rss_mb(root: int) -> float:
    """The resident memory of `root` and every process descending from it, in MB."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grown = {root}, True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in tree and pid not in tree}
        tree |= children
        grown = bool(children)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])  # kB
        except OSError:
            continue
    return total / 1024


def measure(command: list[str], folder: Path, marker: str) -> tuple[list[float], float]:
    """(the process tree's memory after each trial, wall seconds) of `command` run in `folder`,
    a trial ending at each output line that `marker` (a regular expression) matches."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "MLFLOW_TRACKING_URI": "sqlite:///mlruns/mlflow.db",
                   "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    memory, log = [], []
    for line in process.stdout:
        log.append(line)
        if re.match(marker, line):
            memory.append(tree_rss_mb(process.pid))
    process.wait()
    (folder / "output.log").write_text("".join(log))
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{''.join(log)[-3000:]}")
    return memory, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--only", choices=("nnlab", "keras-tuner"))
    args = parser.parse_args()
    rows = []
    variants = {"nnlab": [], "nnlab --worker-trials 0": ["--worker-trials", "0"], "keras-tuner": None}
    for name, options in variants.items():
        if args.only and args.only != name.split()[0]:
            continue
        folder = Path(tempfile.mkdtemp(prefix=f"nnlab-memory-{name.split()[0]}-"))
        if options is not None:
            (folder / "memory.toml").write_text(EXPERIMENT.format(trials=args.trials))
            command, marker = [sys.executable, "-m", "nnlab.search", "memory.toml", *options], r"trial \d+/"
        else:
            command, marker = [sys.executable, "-c", PLAIN_LOOP, str(args.trials)], r"trial \d+ done"
        memory, seconds = measure(command, folder, marker)
        fifth = memory[min(4, len(memory) - 1)]
        rows.append(f"| {name} | {len(memory)} | {seconds / 60:.1f} min | {memory[0]:.0f} | {fifth:.0f} | "
                    f"{memory[-1]:.0f} | {memory[-1] - fifth:+.0f} |")
        print(rows[-1], " ".join(f"{value:.0f}" for value in memory), flush=True)
    print("\n| search | trials | wall | MB after trial 1 | after trial 5 | after the last | trial 5 to the last |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

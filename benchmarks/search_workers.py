"""Trials per minute with one worker process against two, on this machine, for the same trials.

    python benchmarks/search_workers.py                # 8 CNN trials of 1 epoch, each twice, ~8 min on 2 cores
    python benchmarks/search_workers.py --trials 6 --repeats 1 --model dfn

`python -m nnlab.search` runs the same random search (the same seed: the same 8 trials) with
`--workers 1` and `--workers 2`, alternated, each in a fresh folder with its own tuning/ and
mlruns/. Two figures per run: the wall time of the whole command, and the trial phase, from the
line that starts the search to the last trial's line (worker start-up included, the champion
step left out). Trials per minute is trials over the trial phase; the ratio is two workers'
median over one worker's.

With two workers the search also starts a local `mlflow server` (SQLite takes one writer at a
time), and each worker is a process of its own with its own TensorFlow, which by default uses
every core for each step. On a machine with as many cores as one training step can use, two
workers share the same cores: the figure says what that costs or gains here.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
EXPERIMENT = """name = "scale"
model = "{model}"
tuner = "random"
max_trials = {trials}
epochs = 1
final_epochs = 0
"""


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run(workers: int, model: str, trials: int) -> tuple[float, float, int]:
    """(trial phase seconds, whole command seconds, trials reported) of one search."""
    folder = Path(tempfile.mkdtemp(prefix=f"nnlab-workers{workers}-"))
    (folder / "scale.toml").write_text(EXPERIMENT.format(model=model, trials=trials))
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTHONUNBUFFERED": "1",
                   "MLFLOW_TRACKING_URI": "sqlite:///mlruns/mlflow.db"}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "nnlab.search", "scale.toml", "--workers", str(workers)],
                               cwd=folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    search_started = last_trial = None
    reported, log = 0, []
    for line in process.stdout:
        log.append(line)
        if line.startswith("Starting search"):
            search_started = time.monotonic()
        elif re.match(r"trial \d+/", line):
            last_trial, reported = time.monotonic(), reported + 1
    process.wait()
    whole = time.monotonic() - started
    (folder / "output.log").write_text("".join(log))
    if process.returncode != 0 or search_started is None or last_trial is None:
        sys.exit(f"--workers {workers} failed ({process.returncode}):\n{''.join(log)[-3000:]}")
    return last_trial - search_started, whole, reported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="cnn", choices=("cnn", "dfn", "linear"))
    args = parser.parse_args()
    phases: dict[int, list[float]] = {1: [], 2: []}
    wholes: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for workers in (1, 2):
            phase, whole, reported = run(workers, args.model, args.trials)
            phases[workers].append(phase)
            wholes[workers].append(whole)
            print(f"run {repeat + 1}, --workers {workers}: {reported} trials in {phase:.1f} s "
                  f"({60 * reported / phase:.2f} trials/min), whole command {whole:.1f} s", flush=True)
    print(f"\n{date.today()}, {os.cpu_count()} cores ({cpu_model()}), {args.trials} trials of `{args.model}`, "
          f"1 epoch each, {args.repeats} runs each, medians:\n")
    print("| workers | trial phase | trials per minute | whole command |")
    print("| ---: | ---: | ---: | ---: |")
    rate = {}
    for workers in (1, 2):
        phase = statistics.median(phases[workers])
        rate[workers] = 60 * args.trials / phase
        print(f"| {workers} | {phase:.1f} s | {rate[workers]:.2f} | {statistics.median(wholes[workers]):.1f} s |")
    print(f"\n--workers 2 against --workers 1: {rate[2] / rate[1]:.2f}x the trials per minute")
    return 0


if __name__ == "__main__":
    sys.exit(main())

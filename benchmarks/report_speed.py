"""How long `python -m nnlab.report` takes from start to exit, against the floor of any command
that reads MLflow (starting Python and importing mlflow and pandas), measured side by side.

    python benchmarks/report_speed.py [--experiment mnist] [--tracking-uri URI] [--repeat 5]

Run it where a search has filled the store (the project folder after `python -m nnlab.search mnist`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="mnist")
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    commands = {
        "python -m nnlab.report": [sys.executable, "-m", "nnlab.report", args.experiment, "--tracking-uri", args.tracking_uri],
        "floor: python -c 'import mlflow, pandas'": [sys.executable, "-c", "import mlflow, pandas"],
    }
    timings = {name: [] for name in commands}
    for _ in range(args.repeat):  # interleaved, so that both see the same machine
        for name, command in commands.items():
            timings[name].append(wall_seconds(command))
    print("| command | median s | max s | runs |\n| --- | ---: | ---: | ---: |")
    for name, seconds in timings.items():
        print(f"| `{name}` | {statistics.median(seconds):.2f} | {max(seconds):.2f} | {len(seconds)} |")
    report, floor = (statistics.median(seconds) for seconds in timings.values())
    print(f"\nreport / floor: {report / floor:.2f}")


if __name__ == "__main__":
    main()

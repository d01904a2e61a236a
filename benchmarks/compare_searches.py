"""Two searches of the same experiment, each in a folder of its own, compared result for result:
the check that a restructuring changed no behaviour (issue 27).

    python benchmarks/compare_searches.py BEFORE_DIR AFTER_DIR [--experiment mnist] [--model cnn]

Each folder holds the `mlruns/` of one run of the same command (for example
`python -m nnlab.search mnist` in an empty folder, on a fresh clone of each commit). Compared:
every metric of the search's run but timings, the champion's trials, the leaderboard without its
timing columns, and every figure on the search's run, pixel for pixel. Exit code 0 when all match.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from PIL import Image

TIMINGS = ("seconds", "elapsed", "time")  # metrics and columns that measure time, not behaviour


def search_run(folder: Path, experiment: str, model: str):
    client = MlflowClient(f"sqlite:///{folder.resolve()}/mlruns/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], f"tags.`nnlab.model` = '{model}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return client, parents[0]


def untimed(values: dict) -> dict:
    return {key: value for key, value in values.items() if not any(word in key for word in TIMINGS)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--experiment", default="mnist")
    parser.add_argument("--model", default="cnn")
    args = parser.parse_args()
    (client_a, a), (client_b, b) = (search_run(folder, args.experiment, args.model) for folder in (args.before, args.after))
    same = []
    metrics_a, metrics_b = untimed(a.data.metrics), untimed(b.data.metrics)
    same.append(metrics_a == metrics_b)
    print(f"search run metrics (without timings): {'equal' if same[-1] else 'DIFFER'}")
    for key in sorted(set(metrics_a) | set(metrics_b)):
        if metrics_a.get(key) != metrics_b.get(key):
            print(f"  {key}: {metrics_a.get(key)} against {metrics_b.get(key)}")
    trials = [run.data.tags.get("nnlab.champion_trial") for run in (a, b)]
    same.append(trials[0] == trials[1])
    print(f"champion trials: {trials[0]} and {trials[1]}")
    folders = [Path(client.download_artifacts(run.info.run_id, "", tempfile.mkdtemp()))
               for client, run in ((client_a, a), (client_b, b))]
    boards = [pd.read_csv(folder / "leaderboard.csv") for folder in folders]
    columns = [column for column in boards[0].columns if not any(word in column for word in TIMINGS)]
    same.append(list(boards[0].columns) == list(boards[1].columns) and boards[0][columns].equals(boards[1][columns]))
    print(f"leaderboard (without timings): {'equal' if same[-1] else 'DIFFERS'}")
    figures = [sorted(path.relative_to(folder) for path in folder.rglob("*.png")) for folder in folders]
    same.append(figures[0] == figures[1])
    print(f"figures: {len(figures[0])} and {len(figures[1])}, {'the same names' if same[-1] else 'DIFFERENT names'}")
    for name in figures[0]:
        if (folders[1] / name).exists():
            pixels = [np.asarray(Image.open(folder / name)) for folder in folders]
            same.append(pixels[0].shape == pixels[1].shape and bool((pixels[0] == pixels[1]).all()))
            print(f"  {name}: {'pixel-identical' if same[-1] else 'DIFFERS'}")
    return 0 if all(same) else 1


if __name__ == "__main__":
    raise SystemExit(main())

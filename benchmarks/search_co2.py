"""Time `python -m nnlab.search co2` (or an experiment file on co2) end to end and score its
champion against the naive forecasts, independently of what the search logged.

    python benchmarks/search_co2.py                          # the built-in default, horizon 1
    python benchmarks/search_co2.py experiments/co2-h13.toml # horizon 13
    python benchmarks/search_co2.py co2 --model gru          # another family

Runs the search in a fresh temporary folder (its own tuning/ and mlruns/), then loads the
registered `models:/<name>-<model>@champion` with MLflow, predicts the test windows in ppm, and
recomputes the naive forecasts from the windows and the raw series (last value; the same week a
year earlier). Prints one markdown row: wall time, trials, champion test RMSE, the naive RMSEs
and the champion's RMSE over the better naive one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search_command import local_store, run_search_command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", default="co2", help="co2 (default) or an experiment file on co2")
    parser.add_argument("--model", help="model family (default: the experiment's, else lstm)")
    parser.add_argument("--keep", type=Path, help="run in this folder instead of a temporary one")
    args = parser.parse_args()
    experiment = str(Path(args.experiment).resolve()) if args.experiment.endswith(".toml") else args.experiment

    flags = ["--model", args.model] if args.model else []
    folder, seconds = run_search_command([experiment, "--fresh", *flags], args.keep, "nnlab-bench-co2-")
    if seconds is None:
        return 1
    import mlflow
    import numpy as np

    from nnlab.config import load_config
    from nnlab.data import load_dataset
    from nnlab.data.series import SEASON, _co2_series, part_bounds

    config = load_config(experiment, {"model": args.model})
    window, horizon = config.data["window"], config.data["horizon"]
    mlflow.set_tracking_uri(local_store())
    runs = mlflow.search_runs(experiment_names=[config.name], output_format="list")
    trials = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    champion = mlflow.keras.load_model(f"models:/{config.tuning_name}@champion")
    windows, targets = load_dataset("co2", config.data).test
    targets = targets.ravel()

    def rmse(forecast) -> float:
        return float(np.sqrt(np.mean((np.ravel(forecast) - targets) ** 2)))

    # The naive forecasts from the raw series: the test part's windows start at its first week.
    values, _dates, _gaps = _co2_series()
    start = part_bounds(len(values))[2][0]
    target_index = start + window - 1 + horizon + np.arange(len(targets))
    assert np.allclose(values[target_index], targets, atol=1e-3)
    years_back = -(-horizon // SEASON)  # the same week whole years before, in weeks already seen
    naive_last, naive_seasonal = rmse(windows[:, -1, 0]), rmse(values[target_index - SEASON * years_back])
    model_rmse = rmse(champion.predict(windows, verbose=0))
    print("| command | wall time | trials | champion test RMSE (ppm) | naive last | naive seasonal | champion / best naive |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| `{' '.join(['python', '-m', 'nnlab.search', args.experiment, *flags])}` | {seconds / 60:.1f} min "
          f"| {len(trials)} | {model_rmse:.3f} | {naive_last:.3f} | {naive_seasonal:.3f} "
          f"| {model_rmse / min(naive_last, naive_seasonal):.2f} |")
    print(f"(run folder: {folder}; {len(targets)} test windows, window {window}, horizon {horizon})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time `python -m nnlab.search mnist` end to end and check what it leaves in MLflow.

    python benchmarks/search_mnist.py --data-dir ../shared/data/mnist [--model linear] [-- extra search flags]

Runs the search in a fresh temporary folder (its own tuning/ and mlruns/), then, independently
of nnlab, loads `models:/mnist-<model>@champion` with MLflow and scores it on the test files in
--data-dir (or on nnlab's own test split when no folder is given). Prints one markdown row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search_command import local_store, run_search_command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="MNIST files; the t10k pair is the test set")
    parser.add_argument("--model", default="cnn", help="model family to search (cnn, dfn, linear, rnn, lstm, gru)")
    parser.add_argument("--keep", type=Path, help="run in this folder instead of a temporary one")
    parser.add_argument("search_flags", nargs="*", help="extra flags for nnlab.search, after --")
    args = parser.parse_args()
    if args.data_dir:  # the scoring below runs inside the run folder
        args.data_dir = args.data_dir.resolve()

    arguments = ["mnist", "--fresh", "--model", args.model, *args.search_flags]
    if args.data_dir:
        arguments += ["--data-dir", str(args.data_dir)]
    folder, seconds = run_search_command(arguments, args.keep, "nnlab-bench-")
    if seconds is None:
        return 1
    command = ["python", "-m", "nnlab.search", *arguments]
    import mlflow
    import numpy as np

    from nnlab.data import load_mnist

    mlflow.set_tracking_uri(local_store())
    runs = mlflow.search_runs(experiment_names=["mnist"], output_format="list")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    trials = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    finished = sum(run.info.status == "FINISHED" for run in trials)
    champion = mlflow.keras.load_model(f"models:/mnist-{args.model}@champion")
    # Without --data-dir the test split is held out of the shipped images by the search's seed:
    # the same seed, or the images scored would include ones it trained on.
    test_images, test_labels = load_mnist(args.data_dir, seed=int(parents[-1].data.tags.get("nnlab.seed", 1))).test
    predicted = champion.predict(test_images, verbose=0).argmax(axis=1)
    accuracy = float(np.mean(predicted == test_labels))
    print("| command | wall time | trials (finished) | parent runs | champion test accuracy | test images |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| `{' '.join(command[2:])}` | {seconds / 60:.1f} min ({seconds:.0f} s) | {len(trials)} ({finished}) | {len(parents)} "
        f"| {accuracy:.4f} | {len(test_labels)} |"
    )
    print(f"(run folder: {folder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

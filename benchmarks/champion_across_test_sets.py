"""The champion alias across two test sets (issue 31): `python -m nnlab.search mnist` (offline:
the 5,000 shipped training images, 1,000 of them held out as its test split) and `python -m
nnlab.search mnist --data-dir D` (tested on the official 10,000), one after the other in one
store, in both orders.

Where --data-dir holds only the t10k pair (as ../shared/data/mnist does), the second search
trains on the same 5,000 shipped images: scored on the offline search's test split, its model
has trained on most of those images. The comparison is still the one the alias moves on; the
table says what the official test set makes of it.

    python benchmarks/champion_across_test_sets.py --data-dir ../shared/data/mnist [-- extra search flags]

For each order, both commands run in an empty folder of their own; then, independently of
nnlab's decision, both registered versions of mnist-cnn are loaded with MLflow and scored on the
official 10,000 test images. The alias must sit on the version that scores higher there,
whichever ran first, and the second search's run must hold both scores it compared
(test_accuracy, holder_test_accuracy). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from search_command import local_store, run_search_command


def scored_on_official(data_dir: Path) -> list[dict]:
    """Both versions of mnist-cnn in the run folder's store, scored on the official test set."""
    import mlflow
    import numpy as np

    from nnlab.data import load_mnist

    mlflow.set_tracking_uri(local_store())
    client = mlflow.MlflowClient(local_store())
    images, labels = load_mnist(data_dir).test
    holder = str(client.get_model_version_by_alias("mnist-cnn", "champion").version)
    rows = []
    for version in sorted(client.search_model_versions("name = 'mnist-cnn'"), key=lambda found: int(found.version)):
        model = mlflow.keras.load_model(f"models:/mnist-cnn/{version.version}")
        accuracy = float(np.mean(model.predict(images, verbose=0).argmax(axis=1) == labels))
        run = client.get_run(version.run_id)
        rows.append({"version": str(version.version), "official": accuracy, "holder": str(version.version) == holder,
                     "test_accuracy": run.data.metrics["test_accuracy"], "test_data": version.tags.get("nnlab.test_data"),
                     "holder_test_accuracy": run.data.metrics.get("holder_test_accuracy"),
                     "description": version.description})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="MNIST files; the t10k pair is the official test set")
    parser.add_argument("--keep", type=Path, help="run in folders under this one instead of temporary ones")
    parser.add_argument("search_flags", nargs="*", help="extra flags for both nnlab.search commands, after --")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    # --fresh: the second search's tuner state replaces the first's (other data: a resume would be
    # refused); the store, and the registry in it, is kept.
    commands = {"offline": ["mnist", "--fresh", *args.search_flags],
                "official": ["mnist", "--fresh", "--data-dir", str(data_dir), *args.search_flags]}
    here = Path.cwd()
    print("| order | version | its search | its test_accuracy (own split) | holder_test_accuracy on its run "
          "| official 10,000 | alias |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failures = 0
    for order in (("offline", "official"), ("official", "offline")):
        folder = (args.keep / "-then-".join(order)) if args.keep else None
        for which in order:
            folder, seconds = run_search_command(commands[which], folder, "nnlab-alias-")
            os.chdir(here)
            if seconds is None:
                return 1
        os.chdir(folder)
        rows = scored_on_official(data_dir)
        os.chdir(here)
        for row, which in zip(rows, order):
            holder = "" if row["holder_test_accuracy"] is None else f"{row['holder_test_accuracy']:.4f}"
            print(f"| {' then '.join(order)} | {row['version']} | {which} | {row['test_accuracy']:.4f} | {holder} "
                  f"| {row['official']:.4f} | {'champion' if row['holder'] else ''} |")
        best = max(rows, key=lambda row: row["official"])
        if not best["holder"]:
            failures += 1
            print(f"(the alias is not on the version better on the official test set: {rows})")
        print(f"(version {rows[-1]['version']}'s description: {rows[-1]['description']})", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

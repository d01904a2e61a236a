"""`python -m nnlab.search wine`, `breast_cancer` and `diabetes` with their defaults, timed end to
end, beside scikit-learn's linear baselines on the same split.

    python benchmarks/tables_sklearn.py                 # all three
    python benchmarks/tables_sklearn.py diabetes --keep /tmp/tables
    python benchmarks/tables_sklearn.py --model linear  # the no-hidden-layer family instead of dfn

Each search runs in a folder of its own (its own tuning/ and mlruns/). The registered champion
is loaded back with `nnlab.load_model` and scored on the test split independently of what the
search logged. scikit-learn's `LogisticRegression` (classes) or `Ridge` (values) learns from
the same training rows, standardised by a StandardScaler fitted on them (nnlab's model
normalises inside itself, learnt from the training split too), with the library's default
regularisation: no search, what a practitioner fits first. Prints one markdown row per table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from search_command import run_search_command

TABLES = ("wine", "breast_cancer", "diabetes")


def sklearn_score(dataset) -> tuple[str, float]:
    """(the baseline's name, its test accuracy or RMSE) on `dataset`'s split."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (train_rows, train_targets), (test_rows, test_targets) = dataset.train, dataset.test
    if dataset.spec.task == "classification":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(train_rows, train_targets)
        return "LogisticRegression", float(np.mean(model.predict(test_rows) == test_targets))
    model = make_pipeline(StandardScaler(), Ridge()).fit(train_rows, train_targets.ravel())
    return "Ridge", float(np.sqrt(np.mean((model.predict(test_rows) - test_targets.ravel()) ** 2)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # No `choices`: argparse checks a nargs="*" default list against them as one value.
    parser.add_argument("tables", nargs="*", default=list(TABLES), help=f"any of {', '.join(TABLES)} (default: all)")
    parser.add_argument("--keep", type=Path, help="run in folders under this one instead of temporary ones")
    parser.add_argument("--model", choices=("dfn", "linear"), help="model family (default: the table's, dfn)")
    args = parser.parse_args()
    unknown = [table for table in args.tables if table not in TABLES]
    if unknown:
        parser.error(f"unknown table {', '.join(unknown)}; known: {', '.join(TABLES)}")
    start = Path.cwd()
    rows = []
    for table in args.tables:
        os.chdir(start)
        flags = ["--model", args.model] if args.model else []
        folder, seconds = run_search_command([table, "--fresh", *flags], args.keep / table if args.keep else None,
                                             f"nnlab-bench-{table}-")
        if seconds is None:
            return 1
        import numpy as np

        import nnlab
        from nnlab.config import load_config
        from nnlab.data import load_dataset
        from mlflow import MlflowClient

        from nnlab.tabular import keras_inputs

        config = load_config(table, {"model": args.model})
        dataset = load_dataset(table, config.data, seed=config.seed, validation_fraction=config.validation_fraction)
        # Each table's own store, named absolutely: MLflow keeps a store open per URI, and a
        # relative one would name the first table's folder again.
        store = f"sqlite:///{folder.resolve()}/mlruns/mlflow.db"
        champion = nnlab.load_model(config.tuning_name, store)
        predictions = champion.predict(keras_inputs(dataset.test[0]), verbose=0)
        targets = dataset.test[1]
        if dataset.spec.task == "classification":
            metric, ours = "accuracy", float(np.mean(predictions.argmax(axis=1) == targets))
            trivial = float(np.mean(targets == np.bincount(dataset.train[1]).argmax()))
        else:
            metric = "RMSE"
            ours = float(np.sqrt(np.mean((predictions.ravel() - targets.ravel()) ** 2)))
            trivial = float(np.sqrt(np.mean((dataset.train[1].mean() - targets.ravel()) ** 2)))
        client = MlflowClient(store)
        search = client.search_runs([client.get_experiment_by_name(config.name).experiment_id],
                                    f"tags.`nnlab.model` = '{config.model}'", order_by=["attributes.start_time DESC"])[0]
        logged = search.data.metrics
        assert abs(logged[f"test_{'accuracy' if metric == 'accuracy' else 'rmse'}"] - ours) < 1e-4, "store disagrees"
        baseline, theirs = sklearn_score(dataset)
        rows.append(f"| {table} | {config.model} | {len(dataset.train[0])}/{len(dataset.validation[0])}/{len(dataset.test[0])} "
                    f"| {seconds / 60:.1f} min | {metric} | {ours:.4f} | {baseline} {theirs:.4f} | {trivial:.4f} |")
        print(rows[-1], flush=True)
    print("\n| table | family | train/validation/test rows | `python -m nnlab.search` | metric | nnlab champion "
          "| scikit-learn | majority class / training mean |")
    print("| --- | --- | --- | ---: | --- | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

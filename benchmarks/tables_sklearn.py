"""`python -m nnlab.search wine`, `breast_cancer`, `diabetes` (and `autompg`, a CSV with missing
values and text columns) with their defaults, timed end to end, beside scikit-learn's linear
baselines on the same split, over one or more seeds (the seed also draws the split).

    python benchmarks/tables_sklearn.py                           # the three scikit-learn tables, seed 1
    python benchmarks/tables_sklearn.py wine autompg --seeds 1 2 3
    python benchmarks/tables_sklearn.py --seeds 1 2 3 -- --cross-validation 0   # flags for every search
    python benchmarks/tables_sklearn.py --model linear            # the no-hidden-layer family instead of dfn
    python benchmarks/tables_sklearn.py breast_cancer --seeds 1 2 --read DIR1 DIR2   # kept searches, not run again

Each search runs in a folder of its own (its own tuning/ and mlruns/). `--read` runs nothing: it
scores the searches earlier `--keep DIR` runs left (DIR/TABLE-SEED, the first folder given that
holds one), their time read from the "Done in" line of the folder's search.log. The registered champion
is loaded back with `nnlab.load_model` and scored on the test split independently of what the
search logged (and checked against it); where the search refit its champion, the run's
`test_<metric>_refit` and `test_<metric>_validation_chosen` are printed beside it.
scikit-learn's `LogisticRegression` (classes) or `Ridge` (values) learns from the same training
rows, with the library's default regularisation: numbers standardised (a missing one filled
with the training mean), text one-hot; no search, what a practitioner fits first. nnlab's
refit also learns from the validation rows: the last column is scikit-learn's baseline fitted on
training and validation rows alike.

`autompg` is the UCI Auto MPG table shipped in mlxtend (392 cars), written as a CSV a user
might hold: the target `mpg`, `origin` as text (usa, europe, japan), the maker (the car name's
first word) as text, and 6 horsepower values and 3 origins left blank at fixed rows.
Prints one markdown row per search, then per table the means over the seeds and how far nnlab's
champion is ahead of scikit-learn's baseline, paired seed by seed (higher accuracy, lower RMSE):
its mean with the standard error over the seeds, and on how many seeds it is better, equal, worse.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from search_command import run_search_command

TABLES = ("wine", "breast_cancer", "diabetes", "autompg")
AUTOMPG_EXPERIMENT = """name = "autompg"
[data]
csv = "autompg.csv"
target = "mpg"
"""


def write_autompg(folder: Path) -> Path:
    """The Auto MPG CSV and its experiment file in `folder`; the experiment file's path."""
    import numpy as np
    import pandas as pd
    from mlxtend.data import autompg_data

    features, mpg = autompg_data()
    names = pd.read_csv(Path(autompg_data.__code__.co_filename).parent / "data" / "autompg.csv.gz", header=None)[7]
    frame = pd.DataFrame(features[:, :7], columns=["cylinders", "displacement", "horsepower", "weight",
                                                   "acceleration", "model_year", "origin"])
    frame["origin"] = frame["origin"].map({1.0: "usa", 2.0: "europe", 3.0: "japan"})
    frame["maker"] = names.str.split().str[0].to_numpy()
    frame["mpg"] = mpg
    frame.loc[[10, 50, 120, 200, 280, 350], "horsepower"] = np.nan
    frame.loc[[30, 160, 300], "origin"] = None
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "autompg.csv", index=False)
    (folder / "autompg.toml").write_text(AUTOMPG_EXPERIMENT)
    return folder / "autompg.toml"


def sklearn_score(dataset, on_all: bool = False) -> tuple[str, float]:
    """(the baseline's name, its test accuracy or RMSE) on `dataset`'s split, fitted on its
    training rows (and validation rows where `on_all`)."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rows, targets = dataset.train
    if on_all:
        rows = pd.concat([rows, dataset.validation[0]], ignore_index=True)
        targets = np.concatenate([targets, dataset.validation[1]])
    text = [column for column in rows.columns if rows[column].dtype == object]
    numbers = [column for column in rows.columns if column not in text]
    encode = ColumnTransformer([("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
                                ("text", OneHotEncoder(handle_unknown="ignore"), text)])
    test_rows, test_targets = dataset.test
    if dataset.spec.task == "classification":
        model = make_pipeline(encode, LogisticRegression(max_iter=5000)).fit(rows, targets)
        return "LogisticRegression", float(np.mean(model.predict(test_rows) == test_targets))
    model = make_pipeline(encode, Ridge()).fit(rows, targets.ravel())
    return "Ridge", float(np.sqrt(np.mean((model.predict(test_rows) - test_targets.ravel()) ** 2)))


def scored(table: str, experiment: str, seed: int, model_family: str | None, folder: Path) -> dict:
    """The search in `folder` read back: its champion scored on the test split, the run's
    refit and validation-chosen scores, scikit-learn's on the same split."""
    from mlflow import MlflowClient

    import nnlab
    from nnlab.config import load_config
    from nnlab.data import load_dataset
    from nnlab.tabular import keras_inputs
    from nnlab.tasks import get_task

    config = load_config(experiment, {"model": model_family, "seed": seed})
    dataset = load_dataset(config.dataset, config.data, seed=config.seed, validation_fraction=config.validation_fraction)
    # Each search's own store, named absolutely: MLflow keeps a store open per URI.
    store = f"sqlite:///{folder.resolve()}/mlruns/mlflow.db"
    predictions = nnlab.load_model(config.tuning_name, store).predict(keras_inputs(dataset.test[0]), verbose=0)
    task = get_task(dataset.spec.task)
    metric = task.metric
    ours = task.score(dataset.test[1], predictions)
    client = MlflowClient(store)
    search = client.search_runs([client.get_experiment_by_name(config.name).experiment_id],
                                f"tags.`nnlab.model` = '{config.model}'", order_by=["attributes.start_time DESC"])[0]
    logged = search.data.metrics
    assert abs(logged[f"test_{metric}"] - ours) < 1e-4, "store disagrees"
    baseline, theirs = sklearn_score(dataset)
    _baseline, theirs_all = sklearn_score(dataset, on_all=True)
    return {"table": table, "seed": seed, "metric": metric, "ours": ours, "baseline": baseline, "theirs": theirs,
            "theirs_all": theirs_all,
            "refit": logged.get(f"test_{metric}_refit"), "chosen": logged.get(f"test_{metric}_validation_chosen"),
            "rows": f"{len(dataset.train[0])}/{len(dataset.validation[0])}/{len(dataset.test[0])}"}


def kept_search(folders: list[Path], name: str) -> tuple[Path, float | None]:
    """(the folder, the command's seconds) of a search an earlier --keep run left under one of
    `folders`; seconds None where none holds it."""
    import re

    for folder in folders:
        log = folder / name / "search.log"
        if log.is_file():
            from nnlab.budget import parse_duration

            done = re.search(r"^Done in (\S+) \(", log.read_text(), re.MULTILINE)  # format_duration's words
            os.chdir(folder / name)
            return folder / name, parse_duration(done[1]) if done else None
    print(f"no search {name} under {', '.join(map(str, folders))}")
    return folders[0] / name, None


def paired_lead(ahead) -> str:
    """Markdown cells for differences paired split by split (positive: better): their mean with
    the standard error over the splits, then how many are better / equal / worse."""
    import numpy as np

    ahead = np.asarray(ahead, dtype=float)
    error = ahead.std(ddof=1) / np.sqrt(len(ahead)) if len(ahead) > 1 else float("nan")
    return (f"{ahead.mean():+.4f} ± {error:.4f} | "
            f"{np.sum(ahead > 1e-9)} / {np.sum(np.abs(ahead) <= 1e-9)} / {np.sum(ahead < -1e-9)}")


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # No `choices`: argparse checks a nargs="*" default list against them as one value.
    parser.add_argument("tables", nargs="*", default=list(TABLES[:3]), help=f"any of {', '.join(TABLES)} "
                        "(default: the three scikit-learn tables)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="seeds, each its own split and search")
    parser.add_argument("--keep", type=Path, help="run in folders under this one instead of temporary ones")
    parser.add_argument("--model", choices=("dfn", "linear"), help="model family (default: the table's, dfn)")
    parser.add_argument("--read", type=Path, nargs="+", metavar="DIR",
                        help="score the searches earlier --keep DIR runs left instead of running them")
    args, search_flags = parser.parse_known_args()
    search_flags = [flag for flag in search_flags if flag != "--"]
    unknown = [table for table in args.tables if table not in TABLES]
    if unknown:
        parser.error(f"unknown table {', '.join(unknown)}; known: {', '.join(TABLES)}")
    start = Path.cwd()
    experiments = {table: table for table in args.tables}
    if "autompg" in experiments:
        experiments["autompg"] = str(write_autompg(Path(tempfile.mkdtemp(prefix="nnlab-autompg-"))))
    print("| table | seed | train/validation/test rows | `python -m nnlab.search` | metric | nnlab champion | refit "
          "| chosen on validation | scikit-learn | the same on training and validation rows |")
    print("| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    results = []
    for table in args.tables:
        for seed in args.seeds:
            os.chdir(start)
            flags = ["--seed", str(seed), *(["--model", args.model] if args.model else []), *search_flags]
            if args.read:
                folder, seconds = kept_search(args.read, f"{table}-{seed}")
            else:
                folder, seconds = run_search_command([experiments[table], "--fresh", *flags],
                                                     args.keep / f"{table}-{seed}" if args.keep else None,
                                                     f"nnlab-bench-{table}-")
            if seconds is None:
                return 1
            result = scored(table, experiments[table], seed, args.model, folder) | {"seconds": seconds}
            results.append(result)
            print(f"| {table} | {seed} | {result['rows']} | {seconds / 60:.1f} min | {result['metric']} "
                  f"| {result['ours']:.4f} | {_number(result['refit'])} | {_number(result['chosen'])} "
                  f"| {result['baseline']} {result['theirs']:.4f} | {result['theirs_all']:.4f} |", flush=True)
    _print_means(results)
    return 0


def _print_means(results: list[dict]) -> None:
    import numpy as np

    print("\n| table | seeds | longest search | metric | nnlab champion, mean | scikit-learn, mean "
          "| the same on training and validation rows | nnlab ahead, mean ± standard error | seeds better / equal / worse |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for table in dict.fromkeys(result["table"] for result in results):
        mine = [result for result in results if result["table"] == table]
        # Paired by seed (the same split): ahead is higher accuracy, lower RMSE.
        sign = -1.0 if mine[0]["metric"] == "rmse" else 1.0
        ahead = [sign * (result["ours"] - result["theirs"]) for result in mine]
        print(f"| {table} | {len(mine)} | {max(result['seconds'] for result in mine) / 60:.1f} min | {mine[0]['metric']} "
              f"| {np.mean([result['ours'] for result in mine]):.4f} "
              f"| {mine[0]['baseline']} {np.mean([result['theirs'] for result in mine]):.4f} "
              f"| {np.mean([result['theirs_all'] for result in mine]):.4f} | {paired_lead(ahead)} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

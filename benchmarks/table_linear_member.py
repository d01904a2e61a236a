"""A table champion with the no-hidden-layer model beside its networks (issue 32): the searches a
`benchmarks/tables_sklearn.py --keep DIR` run left, each registered champion's test predictions
averaged with a linear model fit to its optimum, scored on the test split.

    python benchmarks/tables_sklearn.py breast_cancer diabetes --seeds 21 22 --keep DIR
    python benchmarks/table_linear_member.py DIR/breast_cancer-21 DIR/diabetes-21 ...

The linear model is nnlab.linear_member's, made as the champion step makes it: the
no-hidden-layer family's model on the columns as the networks read them, fit to its optimum by
scikit-learn (lbfgs LogisticRegression, Ridge's closed form) rather than by a few epochs of Adam,
its L2 (one of PENALTIES on the mean loss) chosen by the mean loss over the search's own folds
(the same rows, the same seed), then fit on all training and validation rows. It joins the champion's
average as one more member, weighing as each trial's refits together weigh (1 / (K + 1)):
"always", or "gated", only where its mean fold score at that L2 is at least the objective of
the K-th best trial (it would have ranked among the members). Prints a markdown row per search,
then per table the means and how far each variant is ahead of the registered champion, paired
search by search (higher accuracy, lower RMSE), with the standard error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def member_scores(folder: Path) -> dict:
    from mlflow import MlflowClient

    import nnlab
    from nnlab.config import load_config
    from nnlab.data import load_dataset
    from nnlab.data.folds import fold_indices, joined
    from nnlab.linear_member import linear_member
    from nnlab.tabular import keras_inputs
    from nnlab.tasks import get_task
    from nnlab.tracking import find_searches, trial_leaderboard

    table, seed = folder.name.rsplit("-", 1)
    config = load_config(table, {"seed": int(seed)})
    dataset = load_dataset(config.dataset, config.data, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    task = get_task(dataset.spec.task)
    store = f"sqlite:///{folder.resolve()}/mlruns/mlflow.db"
    search = find_searches(config.name, store, config.model)[0]
    logged = MlflowClient(store).get_run(search.run_id).data.metrics[task.test_key]
    champion = nnlab.load_model(config.tuning_name, store).predict(keras_inputs(dataset.test[0]), verbose=0)
    registered = task.score(dataset.test[1], champion)
    assert abs(registered - logged) < 1e-4, f"{folder}: the champion scores {registered}, the search logged {logged}"
    leaderboard = trial_leaderboard(store, search.experiment_id, search.run_id, task)
    finished = leaderboard[leaderboard["status"] == "FINISHED"]
    members = config.ensemble
    kth = float(finished[task.best_key].iloc[min(members, len(finished)) - 1])
    rows, targets = joined(dataset.train, dataset.validation)
    folds = fold_indices(targets, config.cross_validation or 5, dataset.spec.task, dataset.spec.kind, config.seed)
    member = linear_member(dataset.spec, task, rows, targets, folds)  # as the champion step makes it
    penalty, fold_score = member.penalty, member.fold_score
    linear = member.model.predict(keras_inputs(dataset.test[0]), verbose=0)
    # "At least": equal accuracies on the same rows differ in the last float digits (float32 curves).
    joins = fold_score >= kth - 1e-6 if task.higher_is_better else fold_score <= kth + 1e-6
    always = (members * champion + linear) / (members + 1)
    return {"table": table, "seed": int(seed), "metric": task.metric, "higher": task.higher_is_better,
            "registered": registered, "linear": task.score(dataset.test[1], linear),
            "always": task.score(dataset.test[1], always),
            "gated": task.score(dataset.test[1], always if joins else champion),
            "penalty": penalty, "fold_score": fold_score, "kth": kth, "joins": joins}


def main() -> int:
    import logging

    import numpy as np

    from tables_sklearn import paired_lead

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="searches a tables_sklearn.py --keep run left")
    args = parser.parse_args()
    print("| search | metric | registered | linear alone (L2; fold score; K-th trial's) | always | gated (joins?) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    results = []
    for folder in args.folders:
        result = member_scores(folder)
        results.append(result)
        print(f"| {folder.name} | {result['metric']} | {result['registered']:.4f} | {result['linear']:.4f} "
              f"({result['penalty']:g}; {result['fold_score']:.4f}; {result['kth']:.4f}) | {result['always']:.4f} "
              f"| {result['gated']:.4f} ({'yes' if result['joins'] else 'no'}) |", flush=True)
    print("\n| table | searches | variant | mean | ahead of the registered champion, mean ± standard error "
          "| better / equal / worse |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for table in dict.fromkeys(result["table"] for result in results):
        mine = [result for result in results if result["table"] == table]
        sign = 1.0 if mine[0]["higher"] else -1.0
        print(f"| {table} | {len(mine)} | registered | {np.mean([r['registered'] for r in mine]):.4f} | | |")
        for variant in ("linear", "always", "gated"):
            ahead = [sign * (result[variant] - result["registered"]) for result in mine]
            print(f"| {table} | {len(mine)} | {variant} | {np.mean([r[variant] for r in mine]):.4f} "
                  f"| {paired_lead(ahead)} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

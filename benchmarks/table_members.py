"""How many members a table's champion should average (issue 32): the searches a
`benchmarks/tables_sklearn.py --keep DIR` run left, their best K trials refit as nnlab's refit
trains them, for several K, scored on the test split.

    python benchmarks/tables_sklearn.py breast_cancer diabetes --seeds 11 12 --keep DIR
    python benchmarks/table_members.py DIR/breast_cancer-11 DIR/diabetes-11 ... --members 1 3 5 10

Each folder's search is read back from its own tuning/ and MLflow store: its trials ranked as the
search's leaderboard ranks them (the oracle's order: the objective, ties on the validation loss),
each trial's hyperparameters from KerasTuner's trial.json, the epochs its folds chose from its
finished run. The best max(K) trials are each refit as `nnlab.champion._refit` trains them (built
afresh, seeded by the search's seed and the trial's number, `refit_repeats` times, trained on the
training and validation rows for those epochs, the learning rate annealed to zero over them); the
average of the first K trials' refits is scored for each K. The search's own K (its `ensemble`) is
always replayed too, and its score must be the one the search registered: the script checks that
it is, so that the other K are the same refit with only the members changed. Prints one markdown row per search, then the
means per table and K, and how far each K is ahead of the search's own K, paired search by search
(higher accuracy, lower RMSE), with the standard error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def member_scores(folder: Path, sizes: list[int]) -> dict:
    """{"table", "seed", "metric", "registered", "members": {K: test score}} for one kept search."""
    import keras
    import numpy as np
    from keras_tuner.src.engine.trial import Trial
    from mlflow import MlflowClient

    from nnlab.config import load_config
    from nnlab.data import load_dataset
    from nnlab.data.folds import joined
    from nnlab.pipeline import hypermodel_policy
    from nnlab.tracking import find_searches, trial_leaderboard

    table, seed = folder.name.rsplit("-", 1)
    config = load_config(table, {"seed": int(seed)})
    sizes = sorted(set(sizes) | {config.ensemble})  # the search's own K always: the replay is checked on it
    dataset = load_dataset(config.dataset, config.data, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    hypermodel = hypermodel_policy(config, dataset, None)(space=config.space, trial_timeout=None)
    task = hypermodel.task
    store = f"sqlite:///{folder.resolve()}/mlruns/mlflow.db"
    search = find_searches(config.name, store, config.model)[0]
    leaderboard = trial_leaderboard(store, search.experiment_id, search.run_id, task)
    finished = leaderboard[leaderboard["status"] == "FINISHED"]
    ranked = list(finished["trial"])
    epochs = {trial: max(1, int(epoch)) for trial, epoch in zip(finished["trial"], finished["best_epoch"])}
    logged = MlflowClient(store).get_run(search.run_id).data.metrics[f"{task.test_key}_refit"]
    rows = joined(dataset.train, dataset.validation)
    predictions = {}
    for trial_id in ranked[: max(sizes)]:
        trial = Trial.load(str(folder / "tuning" / config.tuning_name / f"trial_{trial_id}" / "trial.json"))
        keras.utils.set_random_seed(config.seed + int(trial_id))  # as champion._refit seeds each member
        predictions[trial_id] = [hypermodel.test(hypermodel.refit(trial.hyperparameters, rows, epochs[trial_id]),
                                                 dataset.test)[2] for _ in range(config.refit_repeats)]
    averaged = {size: np.mean([each for trial_id in ranked[:size] for each in predictions[trial_id]], axis=0)
                for size in sizes}
    scores = {size: task.score(dataset.test[1], averaged[size]) for size in sizes}
    own = config.ensemble
    assert abs(scores[own] - logged) < 1e-4, f"{folder}: K={own} gives {scores[own]}, the search logged {logged}"
    return {"table": table, "seed": int(seed), "metric": task.metric, "registered": logged, "members": scores,
            "own": own, "higher": task.higher_is_better}


def main() -> int:
    import logging

    import numpy as np

    from tables_sklearn import paired_lead

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # the predict function's retracing notes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="searches a tables_sklearn.py --keep run left")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 3, 5, 10], help="the K to compare")
    args = parser.parse_args()
    sizes = sorted(set(args.members))
    print(f"| search | metric | registered | {' | '.join(f'best {size}' for size in sizes)} |")
    print(f"| --- | --- | ---: | {' | '.join('---:' for _ in sizes)} |")
    results = []
    for folder in args.folders:
        result = member_scores(folder, sizes)
        results.append(result)
        cells = " | ".join(f"{result['members'][size]:.4f}" for size in sizes)
        print(f"| {folder.name} | {result['metric']} | {result['registered']:.4f} | {cells} |", flush=True)
    print("\n| table | searches | K | mean | ahead of the search's own K, mean ± standard error "
          "| better / equal / worse |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for table in dict.fromkeys(result["table"] for result in results):
        mine = [result for result in results if result["table"] == table]
        own, sign = mine[0]["own"], 1.0 if mine[0]["higher"] else -1.0
        for size in sizes:
            values = np.array([result["members"][size] for result in mine])
            ahead = [sign * (result["members"][size] - result["members"][own]) for result in mine]
            print(f"| {table} | {len(mine)} | {size} | {values.mean():.4f} | {paired_lead(ahead)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a network needs on a table of a few hundred rows (issue 32), outside the search:

    python benchmarks/table_knobs.py knobs               # fixed knobs, diabetes and breast_cancer, ~10 min
    python benchmarks/table_knobs.py refits FOLDER ...   # a search's members refit three ways, ~1 min each
    python benchmarks/table_knobs.py epochs breast_cancer [--l2 1e-2]   # one network trained longer, ~5 min

`knobs`: plain Keras networks of fixed knobs (no search), trained on the training and validation
rows of nnlab's split for seeds 1-3 (standardised with scikit-learn), each five times from
different initial weights; prints the mean test score of a single network and of the five
averaged, per seed and over the seeds, beside the variants: the image defaults' relu against
tanh, weight decay (L2 on every kernel) 0 to 3e-2, a linear path beside the hidden layers
("wide"), fewer units, and the linear model itself. scikit-learn's Ridge / LogisticRegression
on the same rows: benchmarks/tables_sklearn.py ("the same on training and validation rows").

`refits`: the folders a `benchmarks/tables_sklearn.py --keep DIR` run left (DIR/diabetes-1, ...):
the registered champion's members (read from its MLflow store) refit as nnlab's refit trains them
(the epochs their folds chose, seeded as champion._refit seeded them, each repeat its own seed), with
their learning rate constant, annealed to zero over those epochs, and annealed and trained three
times from different initial weights; the test score of each average.

`epochs`: the first knobs network (tanh, 2 x 256, dropout 0.2, Adam at 1e-3, batch 32; `--l2`
its weight decay) trained for 3 to 40 epochs, five initialisations averaged per seed, with its
learning rate constant and annealed to zero (a cosine, as nnlab's refit anneals): how much the
epochs a refit trains matter beside what a search's folds can choose.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SEEDS = (1, 2, 3)
# name -> (table, network, epochs); every network: batch 32, Adam, dropout 0.2 after each hidden layer.
VARIANTS = {
    "diabetes": {
        "relu, no weight decay, 10 epochs": dict(activation="relu", epochs=10),
        "tanh, no weight decay, 10 epochs": dict(epochs=10),
        "tanh, linear path (wide), 10 epochs": dict(kind="wide", epochs=10),
        "tanh, 32 units, 30 epochs": dict(units=32, epochs=30),
        "tanh, weight decay 1e-3, 30 epochs": dict(l2=1e-3, epochs=30),
        "tanh, weight decay 1e-2, 30 epochs": dict(l2=1e-2, epochs=30),
        "tanh, weight decay 1e-2, 60 epochs": dict(l2=1e-2, epochs=60),
        "tanh, weight decay 3e-2, 30 epochs": dict(l2=3e-2, epochs=30),
        "relu, weight decay 1e-2, 30 epochs": dict(l2=1e-2, activation="relu", epochs=30),
        "linear model, 100 epochs at 1e-2": dict(kind="linear", epochs=100, learning_rate=1e-2),
    },
    "breast_cancer": {
        "tanh, no weight decay, 15 epochs": dict(epochs=15),
        "tanh, weight decay 1e-2, 30 epochs": dict(l2=1e-2, epochs=30),
        "tanh, weight decay 3e-2, 30 epochs": dict(l2=3e-2, epochs=30),
        "relu, weight decay 1e-2, 30 epochs": dict(l2=1e-2, activation="relu", epochs=30),
        "linear model, 100 epochs at 1e-2": dict(kind="linear", epochs=100, learning_rate=1e-2),
    },
}


def standardised(table: str, seed: int):
    import numpy as np
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    from nnlab.data import load_dataset

    dataset = load_dataset(table, {}, seed=seed, validation_fraction=0.1)
    rows = pd.concat([dataset.train[0], dataset.validation[0]]).to_numpy(float)
    targets = np.concatenate([dataset.train[1], dataset.validation[1]]).ravel()
    scaler = StandardScaler().fit(rows)
    return scaler.transform(rows), targets, scaler.transform(dataset.test[0].to_numpy(float)), dataset.test[1].ravel()


def network(inputs: int, outputs: int, kind="deep", units=256, layers=2, dropout=0.2, l2=0.0, activation="tanh",
            learning_rate=1e-3):
    import keras

    regularizer = keras.regularizers.L2(l2) if l2 else None
    rows = keras.Input((inputs,))
    x = rows
    if kind != "linear":
        for _ in range(layers):
            x = keras.layers.Dense(units, activation=activation, kernel_regularizer=regularizer)(x)
            x = keras.layers.Dropout(dropout)(x)
        if kind == "wide":
            x = keras.layers.Concatenate()([x, rows])
    classes = outputs > 1
    output = keras.layers.Dense(outputs, activation="softmax" if classes else None, kernel_regularizer=regularizer)(x)
    model = keras.Model(rows, output)
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy" if classes else "mse")
    return model


def five_averaged(table: str, data: dict, epochs: int, annealed: bool = False, **options) -> tuple[list, list]:
    """(the test score of five networks averaged, per seed; of each network alone): `network(**options)`
    trained `epochs` on each seed's standardised training and validation rows (`data`, seed ->
    `standardised`), from five seeded initialisations, its rate constant or annealed to zero."""
    import keras
    import numpy as np

    from nnlab.hypermodel import CosineToZero
    from nnlab.tasks import get_task

    classes = table != "diabetes"
    task = get_task("classification" if classes else "regression")
    averaged, singles = [], []
    for seed, (rows, targets, test_rows, test_targets) in data.items():
        mean, deviation = (0.0, 1.0) if classes else (targets.mean(), targets.std())
        predictions = []
        for start in range(5):
            keras.utils.set_random_seed(seed * 10 + start)
            model = network(rows.shape[1], 2 if classes else 1, **options)
            model.fit(rows, (targets - mean) / deviation, batch_size=32, epochs=epochs, verbose=0,
                      callbacks=[CosineToZero(epochs)] if annealed else [])
            predictions.append(model.predict(test_rows, verbose=0) * deviation + mean)
            singles.append(task.score(test_targets, predictions[-1]))
        averaged.append(task.score(test_targets, np.mean(predictions, axis=0)))
    return averaged, singles


def knobs() -> None:
    import numpy as np

    for table, variants in VARIANTS.items():
        metric = "RMSE" if table == "diabetes" else "accuracy"
        data = {seed: standardised(table, seed) for seed in SEEDS}
        print(f"\n{table}: test {metric}, networks trained on training and validation rows, seeds 1-3\n")
        print("| network | one network, mean | five averaged, each seed | five averaged, mean |")
        print("| --- | ---: | --- | ---: |")
        for name, options in variants.items():
            averaged, singles = five_averaged(table, data, **options)
            print(f"| {name} | {np.mean(singles):.4f} | {' '.join(f'{value:.4f}' for value in averaged)} | "
                  f"{np.mean(averaged):.4f} |", flush=True)


def epochs(table: str, l2: float) -> None:
    import numpy as np

    data = {seed: standardised(table, seed) for seed in SEEDS}
    metric = "RMSE" if table == "diabetes" else "accuracy"
    print(f"\n{table}, weight decay {l2:g}: test {metric} of five networks averaged, seeds 1-3\n")
    print("| epochs | learning rate | seeds 1 / 2 / 3 | mean |")
    print("| ---: | --- | --- | ---: |")
    for annealed in (False, True):
        for count in (3, 5, 10, 15, 25, 40):
            averaged, _singles = five_averaged(table, data, count, annealed, l2=l2)
            print(f"| {count} | {'annealed' if annealed else 'constant'} | {' / '.join(f'{value:.4f}' for value in averaged)} "
                  f"| {np.mean(averaged):.4f} |", flush=True)


def refits(folders: list[Path]) -> None:
    print("| search | members | registered (logged) | constant rate | annealed | annealed, three times each |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for folder in folders:
        table, seed = folder.name.rsplit("-", 1)
        members, logged, scores = _replayed(folder, table, int(seed))
        print(f"| {folder.name} | {','.join(members)} | {logged:.4f} | "
              f"{' | '.join(f'{scores[way]:.4f}' for way in ('constant', 'annealed', 'three'))} |", flush=True)


def _replayed(folder: Path, table: str, seed: int):
    import keras
    import numpy as np
    from mlflow import MlflowClient

    from nnlab.data import load_dataset
    from nnlab.data.folds import joined
    from nnlab.hypermodel import CosineToZero, SearchHyperModel
    from nnlab.models import get_builder
    from nnlab.tabular import keras_inputs
    from nnlab.tasks import get_task

    dataset = load_dataset(table, {}, seed=seed, validation_fraction=0.1)
    rows = joined(dataset.train, dataset.validation)
    hypermodel = SearchHyperModel.for_search(get_builder("dfn"), dataset.spec, batch_size=32, patience=10)
    client = MlflowClient(f"sqlite:///{folder.resolve()}/mlruns/mlflow.db")
    trials, members, logged = {}, None, None
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            if "nnlab.trial_id" in run.data.tags and "best_epoch" in run.data.metrics:
                trials[run.data.tags["nnlab.trial_id"]] = run
            if "nnlab.champion_trial" in run.data.tags:
                members = run.data.tags["nnlab.champion_trial"].split(",")
                logged = next(value for key, value in run.data.metrics.items() if key.endswith("_refit"))
    task = get_task(dataset.spec.task)
    scores = {}
    for way, annealed, times in (("constant", False, 1), ("annealed", True, 1), ("three", True, 3)):
        predictions = []
        for trial in members:
            hp = _hyperparameters(hypermodel, trials[trial].data.params)
            epochs = int(trials[trial].data.metrics["best_epoch"])
            for time in range(times):
                keras.utils.set_random_seed(seed + int(trial) + 1000 * time)
                # As hypermodel.refit trained before it annealed on its own: built afresh, no early stopping.
                model = hypermodel.build(hp)
                hypermodel.fit(hp, model, *rows, epochs=epochs, early_stopping=False, timed=False, verbose=0,
                               callbacks=[CosineToZero(epochs)] if annealed else [])
                predictions.append(model.predict(keras_inputs(dataset.test[0]), verbose=0))
        scores[way] = task.score(dataset.test[1], np.mean(predictions, axis=0))
    return members, logged, scores


def _hyperparameters(hypermodel, params: dict):
    """A trial's hyperparameters from its run's params (every declared one at its default first)."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    for declared in hp.space:
        hp.values.setdefault(declared.name, declared.default)
    for name, text in params.items():
        if name in hp.values:
            hp.values[name] = _value(text)
    return hp


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("knobs", "refits", "epochs"))
    parser.add_argument("names", nargs="*", help="refits: the search folders; epochs: the table (breast_cancer)")
    parser.add_argument("--l2", type=float, default=0.0, help="epochs: the network's weight decay")
    args = parser.parse_args()
    if args.what == "knobs":
        knobs()
    elif args.what == "epochs":
        epochs(args.names[0] if args.names else "breast_cancer", args.l2)
    else:
        refits([Path(name) for name in args.names])
    return 0


if __name__ == "__main__":
    sys.exit(main())

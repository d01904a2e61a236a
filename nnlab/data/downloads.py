"""Data sets that exist only as a download: Fashion-MNIST and CIFAR-10, fetched by Keras and
cached in ~/.keras/datasets, or read from the files in `data_dir`.

Nothing real of them ships offline, so a download that fails is a DataError of one line that
says how to get the data, never a fallback. The downloads are looked up when a loader runs
(`download=None`), so tests replace `_download_fashion_mnist` / `_download_cifar10` here.

- fashion_mnist: 60,000 + 10,000 grey 28x28 images of clothing in 10 classes, in MNIST's IDX
  format; `data_dir` holds its four files (train-/t10k- images and labels, gzip or not), as Keras
  caches them in ~/.keras/datasets/fashion-mnist.
- cifar10: 50,000 + 10,000 colour 32x32 images in 10 classes; `data_dir` is the extracted
  `cifar-10-batches-py` folder of cifar-10-python.tar.gz, or a folder holding it (Keras's cache,
  ~/.keras/datasets/cifar-10-batches-py-target), read with Keras's own batch reader.

Keras' own lines about a download ("Downloading data from ...", its progress bar) are kept out
of the output (mnist.keras_download): one notice says what was downloaded and where it is cached.

Keras is imported inside functions, when a data set loads: a config check needs none.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable

import numpy as np

from nnlab.data.types import DataSpec, Dataset
from nnlab.data.idx import _checked_pair, _read_idx_pair, data_folder
from nnlab.data.mnist import _scaled, _split, keras_download
from nnlab.errors import DataError

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_BATCHES = (*(f"data_batch_{number}" for number in range(1, 6)), "test_batch")
CIFAR10_FOLDER = "cifar-10-batches-py"  # what cifar-10-python.tar.gz extracts to


def _download_fashion_mnist():
    """The real Keras loader (cached in ~/.keras/datasets/fashion-mnist after the first download)."""
    import keras

    return keras.datasets.fashion_mnist.load_data()


def _download_cifar10():
    """The real Keras loader (cached in ~/.keras/datasets after the first download, 163 MB)."""
    import keras

    return keras.datasets.cifar10.load_data()


def _short_reason(error: BaseException) -> str:
    # Keras words it "URL fetch failure on https://...: None -- [Errno -2] Name or service not known".
    text = str(error).strip()
    return (text.split(" -- ")[-1].splitlines()[0] if text else type(error).__name__)[:160]


def _downloaded(name: str, download: Callable, remedy: str):
    """The download's ((train images, labels), (test images, labels)) and its notices (what it
    downloaded and where it is cached: none when Keras read its cache), or a one-line DataError."""
    try:
        data, downloaded = keras_download(name, download)
        return data, (downloaded,) if downloaded else ()
    except Exception as error:  # offline: DNS, URL or HTTP failures all mean the same here
        raise DataError(
            f"{name}: download failed ({_short_reason(error)}); run once with internet access "
            f"(Keras caches it in ~/.keras/datasets) or pass --data-dir with {remedy}"
        ) from None


def _dataset(name: str, train, test, seed: int, validation_fraction: float, scale: Callable, spec: DataSpec,
             source: str, uri: str, notices: tuple[str, ...] = ()) -> Dataset:
    """Validation split off the shuffled training set; the official test set kept as it is."""
    train, validation = _split(*train, validation_fraction, np.random.default_rng(seed))
    return Dataset(name=name, train=scale(train), validation=scale(validation), test=scale(test), spec=spec,
                   source=source, uri=uri, notices=notices)


def load_fashion_mnist(
    data_dir: str | Path | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    download: Callable | None = None,
) -> Dataset:
    """Fashion-MNIST as (N, 28, 28, 1) float32 in [0, 1] with integer labels.

    `data_dir` must hold both IDX pairs (train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte,
    .gz or not); otherwise `download` (None: Keras's, `_download_fashion_mnist`) fetches them.
    """
    if data_dir is not None:
        directory = data_folder(data_dir)
        train, test = _read_idx_pair(directory, "train"), _read_idx_pair(directory, "t10k")
        missing = [prefix for prefix, pair in (("train", train), ("t10k", test)) if pair is None]
        if missing:
            raise DataError(
                f"data directory {directory} holds no Fashion-MNIST {' or '.join(missing)} files (expected "
                "train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte, .gz or not, as Keras keeps them in "
                "~/.keras/datasets/fashion-mnist)"
            )
        source, uri, notices = f"{directory} (Fashion-MNIST IDX files)", str(directory), ()
    else:
        (train, test), notices = _downloaded("fashion_mnist", download or _download_fashion_mnist,
                                             "the Fashion-MNIST files (train-/t10k- images and labels, IDX)")
        # The same checks as files get: a stand-in or a damaged cache fails here, not in training.
        train, test = (_checked_pair(*pair, f"keras.datasets.fashion_mnist ({part})")
                       for part, pair in (("train", train), ("test", test)))
        source = f"keras.datasets.fashion_mnist ({len(train[0]):,} train + {len(test[0]):,} test)"
        uri = "keras.datasets.fashion_mnist"
    spec = DataSpec(input_shape=(28, 28, 1), num_classes=len(FASHION_MNIST_CLASSES), class_names=FASHION_MNIST_CLASSES)
    return _dataset("fashion_mnist", train, test, seed, validation_fraction, _scaled, spec, source, uri, notices)


def _checked_cifar(images: np.ndarray, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 images and (N,) int64 labels in 0..9, whatever layout they came in."""
    images, labels = np.asarray(images), np.asarray(labels).reshape(-1)  # Keras gives labels as (N, 1)
    if images.ndim == 4 and images.shape[1:] == (3, 32, 32):  # the batch files' and channels_first's layout
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DataError(f"{where}: images have shape {images.shape}, expected (N, 32, 32, 3)")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise DataError(f"{where}: labels outside 0..9")
    return images, labels.astype(np.int64)


def _read_cifar10(directory: Path):
    """The five training batches and the test batch of an extracted cifar-10-batches-py folder."""
    folder = directory / CIFAR10_FOLDER if (directory / CIFAR10_FOLDER).is_dir() else directory
    missing = [name for name in CIFAR10_BATCHES if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"data directory {directory} holds no CIFAR-10 batches ({', '.join(missing)} missing; expected the "
            f"extracted {CIFAR10_FOLDER} folder of cifar-10-python.tar.gz, or a folder holding it)"
        )
    try:  # Keras's own reader: it unpickles numpy arrays only, nothing a file could smuggle in
        from keras.src.datasets.cifar import load_batch
    except ImportError:
        raise DataError("cifar10: this Keras has no CIFAR batch reader (keras.src.datasets.cifar.load_batch) to read "
                        "--data-dir with; leave --data-dir out and let Keras download it") from None
    parts = []
    for name in CIFAR10_BATCHES:
        path = folder / name
        try:
            images, labels = load_batch(str(path))
        except (OSError, EOFError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as error:
            raise DataError(f"{path}: cannot read as a CIFAR-10 batch ({_short_reason(error)})") from None
        parts.append(_checked_cifar(images, labels, str(path)))
    train = tuple(np.concatenate(arrays) for arrays in zip(*parts[:-1]))
    return train, parts[-1], folder


def _unit(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    # Colour images have their channel axis already: only the scaling of mnist._scaled.
    images, labels = pair
    return images.astype(np.float32) / 255.0, labels


def load_cifar10(
    data_dir: str | Path | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    download: Callable | None = None,
) -> Dataset:
    """CIFAR-10 as (N, 32, 32, 3) float32 in [0, 1] with integer labels (Keras's (N, 1) flattened).

    `data_dir` is read with Keras's `keras.src.datasets.cifar.load_batch`: the extracted
    cifar-10-batches-py folder (data_batch_1..5, test_batch) or a folder holding it. Without it,
    `download` (None: Keras's, `_download_cifar10`) fetches the data set.
    """
    if data_dir is not None:
        train, test, folder = _read_cifar10(data_folder(data_dir))
        source, uri, notices = f"{folder} (CIFAR-10 python batches)", str(folder), ()
    else:
        remedy = f"the extracted CIFAR-10 python batches ({CIFAR10_FOLDER}: data_batch_1..5, test_batch)"
        (train, test), notices = _downloaded("cifar10", download or _download_cifar10, remedy)
        train, test = (_checked_cifar(*pair, f"keras.datasets.cifar10 ({part})")
                       for part, pair in (("train", train), ("test", test)))
        source = f"keras.datasets.cifar10 ({len(train[0]):,} train + {len(test[0]):,} test)"
        uri = "keras.datasets.cifar10"
    spec = DataSpec(input_shape=(32, 32, 3), num_classes=len(CIFAR10_CLASSES), class_names=CIFAR10_CLASSES)
    return _dataset("cifar10", train, test, seed, validation_fraction, _unit, spec, source, uri, notices)

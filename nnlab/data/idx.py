"""IDX and npz file readers: the formats MNIST is distributed in (yann.lecun.com's IDX files,
gzip or not, and Keras's mnist.npz)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from nnlab.errors import DataError

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
MNIST_CLASSES = 10  # here, not in mnist.py: _checked_pair checks the labels against it


def data_folder(data_dir) -> Path:
    """`data_dir` as the folder it must be; a DataError says what it is instead."""
    directory = Path(data_dir)
    if directory.is_dir():
        return directory
    if directory.exists():
        raise DataError(f"data directory {directory} is a file, not a folder: --data-dir (data_dir) names the folder "
                        "that holds the data set's files")
    raise DataError(f"data directory {directory} does not exist")


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

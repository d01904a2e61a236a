"""The data's types: a loaded Dataset and the DataSpec a builder reads from it (a data set that
cannot be loaded is a DataError, nnlab/errors.py). Their own module, below every loader, so that
the package's `__init__` imports its loaders at the top."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DataSpec:
    """What the data decides for a model builder."""

    input_shape: tuple[int, ...]
    num_classes: int = 0  # a classification task's classes; 0 for regression
    task: str = "classification"  # or "regression": nnlab.tasks.get_task(spec.task) decides the rest
    # "image" (height, width, channels) or "sequence" (steps, features): which families can take it.
    kind: str = "image"
    # A series read relative to each window's last value in units of `scale`, learnt from the
    # training part (models/layers.py applies it inside the model); None: the raw input as it is.
    scale: float | None = None
    # An image's largest raw value: the model scales its input to [0, 1] inside itself (the
    # digits' 0-16), so that it takes the data as the user holds it. MNIST arrives in [0, 1].
    pixel_max: float = 1.0
    # The names of the classes 0..K-1 where they are not their own numbers (a CSV's text target,
    # an image folder's class folders): tagged on the registered model, printed by nnlab.predict.
    class_names: tuple[str, ...] | None = None
    # The data set's own input adapter: an object whose `inputs()` returns (Keras inputs, the
    # encoded tensor a builder reads), where the data is not one array (a table's columns,
    # nnlab/data/tables.py). None: models/layers.py's model_input reads the array as it is.
    adapter: object | None = None
    # A regression target's (mean, standard deviation) over the training split, where the data
    # set states it: the output layer predicts in those units and the model maps them back, so
    # a table's target of a few hundred is learnt as quickly as one near 0, and its squared
    # error is trained in those units (tasks/regression.py, loss_weight).
    target_scale: tuple[float, float] | None = None


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
    # What each split is, for MLflow's dataset inputs: the file or the package it was read from.
    uri: str | None = None
    # A table's target column: the inputs are a DataFrame of its feature columns, the targets its values.
    target: str | None = None


def row_count(inputs) -> int | None:
    """How many examples `inputs` holds (an array, a table's DataFrame or dict of columns)."""
    if isinstance(inputs, dict):
        inputs = next(iter(inputs.values()), None)
    try:
        return len(inputs)
    except TypeError:
        return None

"""What a model over a table needs beyond Keras' stock layers, in one file that imports neither
nnlab nor TensorFlow directly, so that it ships inside every registered table model (its MLmodel's
`code/`) and `mlflow models serve` needs no nnlab installed:

- `FillMissing`: a missing value (NaN) of a normalised numeric column becomes 0, the training
  mean, and, for the columns that had missing values in training, a 0/1 "was missing" column
  is added. No stock Keras layer replaces NaN: Normalization passes it through.
- `keras_inputs(rows)`: a pandas DataFrame or a dict of columns as the model's inputs, one
  (N, 1) tensor per column: numbers as float32, text as strings; `reads_rows(model)` makes a
  loaded model's `predict` take them as they are.
- `_load_pyfunc(path)`: MLflow's python_function loader for a table model. The stock Keras
  flavor hands a DataFrame to the model as one array (`data.values`), which a model with a
  text column and one input per column cannot take; this one hands it over column by column.
"""

from __future__ import annotations

import os

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="nnlab")
class FillMissing(keras.layers.Layer):
    """(N, K) normalised numeric columns -> (N, K + M): each NaN replaced by 0 (the training
    mean, once normalised), then a 0/1 column per `indicate`d column saying it was missing."""

    def __init__(self, indicate=(), **kwargs):
        super().__init__(**kwargs)
        self.indicate = [bool(flag) for flag in indicate]

    def call(self, inputs):
        missing = keras.ops.isnan(inputs)
        filled = keras.ops.where(missing, keras.ops.zeros_like(inputs), inputs)
        columns = [index for index, flag in enumerate(self.indicate) if flag]
        if not columns:
            return filled
        indicators = keras.ops.cast(keras.ops.take(missing, columns, axis=1), inputs.dtype)
        return keras.ops.concatenate([filled, indicators], axis=1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + sum(self.indicate))

    def get_config(self):
        return {**super().get_config(), "indicate": self.indicate}


def keras_inputs(rows):
    """A DataFrame or a dict of columns -> {input name: (N, 1) tensor}: float32 for numbers and
    booleans, strings for text (a missing text value becomes "", which the model
    reads as an unknown category). Anything else (an array of images) is returned as it is."""
    if hasattr(rows, "columns") and hasattr(rows, "to_dict"):  # a pandas DataFrame
        columns = {name: rows[name].to_numpy() for name in rows.columns}
    elif isinstance(rows, dict):
        columns = {name: np.asarray(values) for name, values in rows.items()}
    else:
        return rows
    return {input_name(name): _column(values) for name, values in columns.items()}


def input_name(column) -> str:
    """The model's input for a column: its name, but Keras refuses '/' in a layer's name."""
    return str(column).replace("/", "_")


def _column(values: np.ndarray):
    values = np.asarray(values).reshape(-1)
    # Tensors, numbers too: a Keras model called on a dict takes no mix of arrays and tensors.
    if values.dtype.kind in "biuf":
        return keras.ops.convert_to_tensor(values.astype(np.float32).reshape(-1, 1))
    # Text, categories or mixed objects: strings, missing ones (None, NaN) as "".
    text = [("" if value is None or (isinstance(value, float) and np.isnan(value))
             else value.decode() if isinstance(value, bytes) else str(value)) for value in values]
    # Keras' array adapter takes no numpy text (object or str dtype): a string tensor it takes.
    return keras.ops.convert_to_tensor(np.asarray(text, dtype=str).reshape(-1, 1), dtype="string")


def input_of(model):
    """The model's input as it was built: a dict of tensors (a table: one per column) or one
    tensor. Keras 3 gives a Sequential model (a user's own) no `input`, only `inputs`."""
    try:
        structure = model.input
    except AttributeError:
        structure = model.inputs
    return structure[0] if isinstance(structure, (list, tuple)) and len(structure) == 1 else structure


def reads_rows(model):
    """`model` (one input per column), its `predict` taking a DataFrame or a dict of columns as
    they are, text and all (Keras' own takes no text arrays), other columns left aside: what
    nnlab.load_model returns."""
    predict, names = model.predict, set(input_of(model))

    def predict_rows(x, *args, **kwargs):
        # Columns the model does not take (the target, an identifier) are left aside.
        inputs = keras_inputs(x)
        return predict({name: value for name, value in inputs.items() if name in names}
                       if isinstance(inputs, dict) else inputs, *args, **kwargs)

    predict_rows.__doc__ = f"{predict.__doc__ or ''}\n\nx: a pandas DataFrame or a dict of columns (nnlab.tabular)."
    model.predict = predict_rows
    return model


class _TableModel:
    """The python_function flavor of a table model: predict(DataFrame) -> its outputs."""

    def __init__(self, model):
        self.model = model

    def get_raw_model(self):
        return self.model

    def predict(self, data, params=None):
        return keras.ops.convert_to_numpy(self.model.predict(keras_inputs(data), verbose=0))


def _load_pyfunc(path):
    """Called by mlflow.pyfunc.load_model (the MLmodel's python_function loader_module) with the
    model's folder; the Keras flavor keeps the model in data/model.keras."""
    return _TableModel(keras.saving.load_model(os.path.join(path, "data", "model.keras"), safe_mode=True))

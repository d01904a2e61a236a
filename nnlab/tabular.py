"""What a model over a table needs beyond Keras' stock layers, in one file that imports neither
nnlab nor TensorFlow directly, so that it ships inside every registered table model (its MLmodel's
`code/`) and `mlflow models serve` needs no nnlab installed:

- `FillMissing`: a missing value (NaN) of a normalised numeric column becomes 0, the training
  mean, and, for the columns that had missing values in training, a 0/1 "was missing" column
  is added. No stock Keras layer replaces NaN: Normalization passes it through.
- `Categories`: a text column's one-hot encoding on JAX and PyTorch, from its category codes.
  Keras' StringLookup, which encodes text inside a model on TensorFlow, runs on TensorFlow only
  (its own note), and JAX and PyTorch tensors hold no text: there the model takes codes, which
  `keras_inputs` reads from the text by the vocabulary this layer carries.
- `keras_inputs(rows, model)`: a pandas DataFrame or a dict of columns as the model's inputs,
  one (N, 1) tensor per column: numbers and dates as float32, text as strings (or its codes),
  text given for a number read as one; `reads_rows(model)` makes a loaded model's `predict`
  take them as they are. pandas is imported inside functions, where text given for a number is
  read: the file itself needs only Keras and numpy.
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


@keras.saving.register_keras_serializable(package="nnlab")
class Categories(keras.layers.Layer):
    """(N, 1) codes of text column `column` -> (N, 1 + its categories) one-hot: slot 0 an unknown
    or missing value, then the training split's categories in `vocabulary`'s order, as
    StringLookup(output_mode="one_hot") encodes the text itself on TensorFlow. keras_inputs
    reads the codes from the text by this layer's vocabulary."""

    def __init__(self, vocabulary=(), column="", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary, self.column = [str(category) for category in vocabulary], str(column)

    def call(self, codes):
        return keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(codes, "int32"), (-1,)), len(self.vocabulary) + 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.vocabulary) + 1)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "column": self.column}


def text_categories(model) -> dict:
    """{input name: vocabulary} of the text columns `model` takes as codes (Categories), found
    in the members of an average too; empty for a model that reads text itself (StringLookup)."""
    return {layer.column: layer.vocabulary for layer in _every_layer(model) if isinstance(layer, Categories)}


def text_looked_up(model) -> list[str]:
    """The inputs whose text `model` looks up itself, with StringLookup: a model trained on
    TensorFlow, which only TensorFlow can run."""
    return sorted({layer.name.removesuffix("_categories") for layer in _every_layer(model)
                   if isinstance(layer, keras.layers.StringLookup)})


def _every_layer(model):
    """`model`'s layers and those of the models inside it (an average's members)."""
    layers = list(getattr(model, "layers", ()))
    while layers:
        layer = layers.pop()
        yield layer
        layers.extend(getattr(layer, "layers", ()))


# A date as ISO 8601 writes it (2024-03-01, 2024-03-01 12:30, 2024-03-01T12:30:00.5+01:00); a
# date written another way (03/01/2024: March or January?) is text.
ISO_DATE = r"\s*\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?\s*"


class RowsError(ValueError):
    """Rows a table model cannot read: text in a column it takes as numbers."""


def keras_inputs(rows, model=None):
    """A DataFrame or a dict of columns -> {input name: (N, 1) tensor}: float32 for numbers,
    booleans and dates (days since 1970-01-01, as the model learnt them), strings for text (a
    missing text value becomes "", which the model reads as an unknown category), or, where
    `model` takes a text column as codes (JAX, PyTorch: text_categories), its codes. `model`, the
    table model that reads them, also says which inputs take numbers: text given to one is read
    as numbers or ISO dates, else a RowsError names the column. Anything else (an array of
    images) is returned as it is."""
    if hasattr(rows, "columns") and hasattr(rows, "to_dict"):  # a pandas DataFrame
        columns = {name: column_array(rows[name]) for name in rows.columns}
    elif isinstance(rows, dict):
        columns = {name: np.asarray(values) for name, values in rows.items()}
    else:
        return rows
    numbers, categories = (number_inputs(model), text_categories(model)) if model is not None else ((), {})
    return {input_name(name): _column(values, name if input_name(name) in numbers else None,
                                      categories.get(input_name(name)))
            for name, values in columns.items()}


def number_inputs(model) -> set:
    """The names of a table model's inputs that take numbers (numbers and dates)."""
    structure = input_of(model)
    return {name for name, tensor in structure.items() if "float" in str(tensor.dtype)} if isinstance(
        structure, dict) else set()


def input_name(column) -> str:
    """The model's input for a column: its name, but Keras refuses '/' in a layer's name."""
    return str(column).replace("/", "_")


def column_array(series) -> np.ndarray:
    """A DataFrame's column as an array; dates with a time zone as the same instants in UTC
    (numpy holds no time zone)."""
    if getattr(series.dtype, "tz", None) is not None:
        return series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    if series.dtype.kind in "biuf":  # pandas' nullable Int64 and boolean too: a missing one (NA) as NaN
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy()


def in_days(values) -> np.ndarray:
    """Dates (datetime64: days since 1970-01-01 UTC) or durations (timedelta64) as float64 days, a
    missing one (NaT) as NaN: how a table model reads them, one number its normalisation centres."""
    values = np.asarray(values)
    values = values.astype(f"{'datetime64' if values.dtype.kind == 'M' else 'timedelta64'}[ns]")
    return np.where(np.isnat(values), np.nan, values.astype(np.int64) / 86_400e9)


def iso_dates(text):
    """A pandas Series of text as naive UTC dates where every present value is an ISO date (a
    time zone's converted), else None."""
    import pandas as pd

    present = text.notna() & (text.astype(str).str.strip() != "")
    if not present.any() or not text[present].astype(str).str.fullmatch(ISO_DATE).all():
        return None
    try:
        return pd.to_datetime(text.where(present), format="ISO8601", utc=True).dt.tz_localize(None)
    except (ValueError, OverflowError):  # 2024-13-45: not a date after all
        return None


def _as_numbers(values: np.ndarray, column) -> np.ndarray:
    """Text given for column `column`, which the model takes as numbers: its numbers ("1.5", True),
    else its ISO dates; a missing value ("", None) stays missing."""
    import pandas as pd

    text = pd.Series(_texts(values), dtype=object).str.strip()
    present = text != ""
    truths = text.str.lower().map({"true": 1.0, "false": 0.0})  # a boolean column with a missing value
    numbers = pd.to_numeric(text.where(present), errors="coerce").fillna(truths)
    unread = numbers.isna() & present
    if not unread.any():
        return numbers.to_numpy(dtype=np.float64)
    dates = iso_dates(text)
    if dates is not None:
        return dates.to_numpy()
    wrong = unread & ~text.str.fullmatch(ISO_DATE)  # neither a number nor a date: the value to name
    row = int(np.flatnonzero((wrong if wrong.any() else unread).to_numpy())[0])
    raise RowsError(f"column {str(column)!r} takes numbers (or ISO dates, 2024-03-01); row {row + 1} holds "
                    f"{text[row]!r}")


def _column(values: np.ndarray, number_column=None, vocabulary=None):
    values = np.asarray(values).reshape(-1)
    if vocabulary is not None:  # a text column the model takes as codes: 0 for an unknown or missing one
        codes = {category: code for code, category in enumerate(vocabulary, start=1)}
        return keras.ops.convert_to_tensor(np.array([codes.get(text, 0) for text in _texts(values)],
                                                    dtype=np.int32).reshape(-1, 1))
    if number_column is not None and values.dtype.kind not in "biufmM":  # text for a number's input
        values = _as_numbers(values, number_column)
    if values.dtype.kind in "mM":  # dates, durations
        values = in_days(values)
    # Tensors, numbers too: a Keras model called on a dict takes no mix of arrays and tensors.
    if values.dtype.kind in "biuf":
        return keras.ops.convert_to_tensor(values.astype(np.float32).reshape(-1, 1))
    # Keras' array adapter takes no numpy text (object or str dtype): a string tensor it takes.
    return keras.ops.convert_to_tensor(np.asarray(_texts(values), dtype=str).reshape(-1, 1), dtype="string")


def _texts(values) -> list[str]:
    """Text, categories or mixed objects as strings, a missing one (None, NaN, pandas' NA) as ""."""
    return [("" if value is None or (isinstance(value, float) and np.isnan(value)) or type(value).__name__ == "NAType"
             else value.decode() if isinstance(value, bytes) else str(value)) for value in values]


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
        inputs = keras_inputs(x, model)
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
        return keras.ops.convert_to_numpy(self.model.predict(keras_inputs(data, self.model), verbose=0))


def _load_pyfunc(path):
    """Called by mlflow.pyfunc.load_model (the MLmodel's python_function loader_module) with the
    model's folder; the Keras flavor keeps the model in data/model.keras."""
    return _TableModel(keras.saving.load_model(os.path.join(path, "data", "model.keras"), safe_mode=True))

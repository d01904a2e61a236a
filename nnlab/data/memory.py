"""A user's own data held in memory, as a Dataset: what `nnlab.search(data=..., target=...,
validation=..., test=...)` searches.

- `(x, y)` numpy arrays (or array-likes): x of shape (N, features) is a table, (N, height, width)
  or (N, height, width, channels) an image, (N, steps, features) a sequence with kind="sequence".
- a pandas DataFrame with `target=` the column to predict: a CSV's preprocessing inside the
  model (nnlab/data/tables.py's table_dataset).
- a `tf.data.Dataset` of (x, y) elements, batched or not, a PyTorch `DataLoader` of (x, y) batches
  or `Dataset` of (x, y) items, or a Keras `PyDataset` of (x, y) batches (what Keras' own fit
  takes on each backend): read whole into arrays.

`validation=` and `test=` take the same forms; a part not given is drawn from `data` by `seed`
(test first, then validation, stratified by class for classification). The task is inferred
from the targets as for a CSV, and said. The source line carries a digest of every given part,
so that a search refuses to resume with other data.

pandas, TensorFlow and PyTorch are imported inside functions, where the data is of their kind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from nnlab.data import tables
from nnlab.data.types import DataSpec, Dataset
from nnlab.errors import DataError

KINDS = ("table", "image", "sequence")
FORMS = ("data must be (x, y) arrays, a pandas DataFrame with target=, or a tf.data.Dataset, a PyTorch DataLoader or "
         "Dataset, or a Keras PyDataset of (x, y) pairs")
# The keras.Input of an array table: the model takes the raw (N, features) array under this name.
FEATURES_INPUT = "features"


@dataclass(frozen=True)
class ArrayAdapter:
    """The input adapter of an (N, features) array: one input, each feature normalised by the
    training split's mean and variance in a stock Normalization layer, so that the registered
    model takes the raw array and loads without nnlab code (tables.TableAdapter's contract)."""

    mean: tuple[float, ...]
    variance: tuple[float, ...]

    def inputs(self):
        import keras

        inputs = keras.Input((len(self.mean),), name=FEATURES_INPUT)
        return inputs, keras.layers.Normalization(mean=list(self.mean), variance=list(self.variance),
                                                  name="normalised")(inputs)


def memory_dataset(data, *, target=None, validation=None, test=None, name: str = "data", seed: int = 1,
                   validation_fraction: float = 0.1, test_fraction: float = 0.2, task: str | None = None,
                   kind: str | None = None) -> Dataset:
    """`data` (and the `validation` and `test` parts where given) as a Dataset: see the module's
    docstring for the forms. A tf.data.Dataset is read whole: it must fit in memory. Every
    mistake is a one-line DataError."""
    _check_options(task, kind, validation_fraction, test_fraction)
    given = {part: value for part, value in (("validation", validation), ("test", test)) if value is not None}
    if _is_frame(data):
        return _frame_dataset(data, target, given, name, seed, validation_fraction, test_fraction, task, kind)
    if target is not None:
        raise DataError(f"target= names a DataFrame's column; with {_form(data)} the targets are y")
    pairs = {"data": _pair(data, "data")} | {part: _pair(value, part) for part, value in given.items()}
    for part in given:
        if pairs[part][0].shape[1:] != pairs["data"][0].shape[1:]:
            raise DataError(f"{part}: x rows have shape {pairs[part][0].shape[1:]}, data's have "
                            f"{pairs['data'][0].shape[1:]}; give rows of the same shape")
    task, notices = _task(pairs["data"][1], task, "y")
    targets, class_names = _targets(pairs, task)
    kind = _kind(pairs["data"][0], kind)
    inputs = {part: _shaped(x, kind) for part, (x, _) in pairs.items()}
    rows = dict(zip(("train", "validation", "test"), tables._split(
        len(targets["data"]), targets["data"] if task == "classification" else None, seed, validation_fraction,
        test_fraction, "data: ", tuple(given))))
    split = {part: (inputs[part], targets[part]) if part in given else
             (inputs["data"][rows[part]], targets["data"][rows[part]]) for part in ("train", "validation", "test")}
    num_classes = int(targets["data"].max()) + 1 if task == "classification" else 0
    spec = _spec(split["train"], kind, task, num_classes, class_names)
    what = _streamed(data) or "arrays"
    return Dataset(name=name, train=split["train"], validation=split["validation"], test=split["test"], spec=spec,
                   source=(f"{what} in memory: {_rows_words(pairs, kind)}, {_task_words(spec)}; "
                           f"digest {_digest(pairs)}; "
                           f"{tables.split_words(task, seed, validation_fraction, test_fraction, tuple(given))}"),
                   notices=tuple(notices))


def _check_options(task, kind, validation_fraction, test_fraction) -> None:
    if task is not None and task not in tables.TASKS:
        raise DataError(f"task={task!r}: must be one of {', '.join(map(repr, tables.TASKS))}, or None to infer it")
    if kind is not None and kind not in KINDS:
        raise DataError(f"kind={kind!r}: must be one of {', '.join(map(repr, KINDS))}, or None to infer it")
    for option, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise DataError(f"{option}={value!r}: must be a number between 0 and 1")


def _form(value) -> str:
    """The user's value as a message names it."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def _is_frame(value) -> bool:
    if not type(value).__module__.startswith("pandas"):  # no pandas import for arrays
        return False
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _is_tf_dataset(value) -> bool:
    """A tf.data.Dataset, told without importing TensorFlow."""
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "element_spec")


def _streamed(value) -> str | None:
    """What a data source read element by element is ("tf.data.Dataset", "PyTorch DataLoader",
    "PyTorch Dataset", "Keras PyDataset"), told without importing their libraries; None for another."""
    if _is_tf_dataset(value):
        return "tf.data.Dataset"
    classes = {f"{kind.__module__}.{kind.__name__}" for kind in type(value).__mro__}
    if "torch.utils.data.dataloader.DataLoader" in classes:
        return "PyTorch DataLoader"
    if "torch.utils.data.dataset.Dataset" in classes:
        return "PyTorch Dataset"
    if any(name.startswith("keras") and name.endswith(".PyDataset") for name in classes):
        return "Keras PyDataset"
    return None


# ------------------------------------------------------------ arrays and tf.data


def _pair(value, part: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one given part, checked: y one value per row, numbers in x, nothing missing."""
    streamed = _streamed(value)
    if streamed == "tf.data.Dataset":
        x, y = _read_tf_dataset(value, part)
    elif streamed:
        x, y = _read_elements(value, part, streamed)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and not isinstance(value[0], str):
        x, y = (_array(item, part, axis) for item, axis in zip(value, "xy"))
    else:
        got = "a DataFrame (data is arrays)" if _is_frame(value) else _form(value)
        raise DataError(f"{FORMS if part == 'data' else part + ' must be in the same form as data'}; got {got}")
    if len(x) != len(y):
        raise DataError(f"{part}: x has {len(x):,} rows but y has {len(y):,}; give one target per row")
    if not len(x):
        raise DataError(f"{part}: x and y have no rows")
    if x.ndim < 2:
        raise DataError(f"{part}: x has shape {x.shape}, one number per row; give rows of features, "
                        "x.reshape(-1, 1) for a single feature")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{part}: x must hold numbers, not {x.dtype} (pass a DataFrame with target= to have "
                        "text columns encoded)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{part}: y has shape {y.shape}; give one target per row, shape ({len(y)},) (one-hot "
                        "labels: y.argmax(axis=1))")
    # A table's missing numbers the model can fill itself, as a CSV's: from a DataFrame.
    _check_finite(x, f"{part}: x", " (or pass a pandas DataFrame with target=: its model fills missing "
                                   "numbers as a CSV's)" if x.ndim == 2 else "")
    _check_finite(y, f"{part}: y")
    return x, y


def _array(value, part: str, axis: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError:  # numpy's words: "inhomogeneous shape after 1 dimensions"
        raise DataError(f"{part}: {axis} is ragged: its rows differ in shape") from None
    if array.dtype.kind == "S":  # bytes (a tf.data string) read as text
        array = array.astype(str)
    if array.dtype == object and array.ndim and all(isinstance(item, bytes) for item in array.flat):
        array = np.array([item.decode() for item in array.flat], dtype=object).reshape(array.shape)
    if axis == "x" and array.dtype == object:
        if any(isinstance(item, (list, tuple, np.ndarray)) for item in array.flat):
            raise DataError(f"{part}: x is ragged: its rows differ in shape")
        try:  # numbers held as Python objects (np.array(rows, dtype=object), a DataFrame's .values); None: NaN
            return array.astype(np.float64)
        except (TypeError, ValueError):
            first = next(item for item in array.flat if not isinstance(item, (int, float)) or isinstance(item, bool))
            raise DataError(f"{part}: x holds {type(first).__name__} values ({first!r}) among its numbers; pass a "
                            "pandas DataFrame with target= to have text columns encoded") from None
    return array


def _check_finite(array: np.ndarray, what: str, alternative: str = "") -> None:
    """A NaN or infinite value (or a missing label) is a DataError naming the first row with one
    (and `alternative`, another way to give it)."""
    if array.dtype.kind in "fc":
        bad = ~np.isfinite(array)
    elif array.dtype == object:
        bad = np.array([item is None or (isinstance(item, float) and not np.isfinite(item)) for item in array.flat],
                       dtype=bool).reshape(array.shape)
    else:
        return
    if bad.any():
        rows = bad.reshape(len(array), -1).any(axis=1)
        raise DataError(f"{what} holds NaN, infinite or missing values in {int(rows.sum()):,} of {len(array):,} "
                        f"rows (first row {int(np.argmax(rows))}); drop or fill them{alternative}")


def _read_tf_dataset(dataset, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) arrays of a tf.data.Dataset of (x, y) elements, batched (the first axis of both
    is the batch) or not, read whole into memory."""
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2 or not all(hasattr(item, "shape") for item in spec):
        got = type(spec).__name__
        if isinstance(spec, tuple):
            names = ", ".join(type(item).__name__ for item in spec)
            got = f"a tuple of {len(spec)}" if len(spec) != 2 else f"a pair of ({names})"
        raise DataError(f"{part}: a tf.data.Dataset's elements must be (x, y) pairs of tensors; got {got}")
    if int(dataset.cardinality()) == -1:  # tf.data.INFINITE_CARDINALITY
        raise DataError(f"{part}: the tf.data.Dataset repeats forever; pass it without .repeat()")
    x_shape, y_shape = (tuple(item.shape) if item.shape.rank is not None else None for item in spec)
    batched = bool(y_shape) and bool(x_shape) and y_shape[0] in (None, x_shape[0])
    return _joined(list(dataset.as_numpy_iterator()), batched, part, "tf.data.Dataset")


def _read_elements(source, part: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) arrays of a PyTorch DataLoader's batches, a PyTorch Dataset's items (indexed
    0 to len - 1) or a Keras PyDataset's batches (each (x, y) or (x, y, sample weights), whose
    weights nnlab does not take), read whole into memory; tensors as numpy arrays."""
    batched = what != "PyTorch Dataset"
    elements = iter(source) if what == "PyTorch DataLoader" else (source[index] for index in range(len(source)))
    pairs = []
    for element in elements:
        if not isinstance(element, (tuple, list)) or len(element) not in (2, 3) or (len(element) == 3 and not batched):
            got = f"a {type(element).__name__} of {len(element)}" if isinstance(element, (tuple, list)) else type(
                element).__name__
            raise DataError(f"{part}: a {what}'s elements must be (x, y) pairs; got {got}")
        if len(element) == 3 and element[2] is not None:
            raise DataError(f"{part}: the {what} gives sample weights, which nnlab does not take; give (x, y) pairs")
        if isinstance(element[0], dict):
            raise DataError(f"{part}: the {what}'s x is a dict of inputs; give one array of rows (a table's named "
                            "columns: a pandas DataFrame with target=)")
        pairs.append((_numpy(element[0]), _numpy(element[1])))
    return _joined(pairs, batched, part, what)


def _joined(pairs: list, batched: bool, part: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) arrays of a data source's (x, y) elements: batches joined, or items stacked."""
    if not pairs:
        raise DataError(f"{part}: the {what} has no elements")
    try:
        x, y = (np.concatenate(items) if batched else np.stack(items) for items in zip(*pairs))
    except ValueError:
        raise DataError(f"{part}: the {what}'s elements differ in shape; give rows of one shape") from None
    return _array(x, part, "x"), _array(y, part, "y")


def _numpy(value):
    """A tensor (PyTorch's on any device, TensorFlow's, JAX's) or an array-like as numpy."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a PyTorch tensor, maybe on a GPU
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _task(values, task: str | None, what: str) -> tuple[str, list[str]]:
    """(the task, notices): inferred from the targets as for a CSV (tables.infer_task) where not
    given, and said; targets with nothing to learn are a DataError."""
    import pandas as pd

    values = pd.Series(values)
    if values.empty:
        raise DataError(f"{what} is empty in every row; there is nothing to learn from")
    if values.nunique() < 2:
        only = values.iloc[0].item() if hasattr(values.iloc[0], "item") else values.iloc[0]
        raise DataError(f"{what} has 1 distinct value ({only!r}); there is nothing to predict")
    if task == "regression" and tables._is_text(values):
        raise DataError(f"task='regression', but {what} holds text; leave task out to classify it")
    if task is not None:
        return task, []
    inferred, why = tables.infer_task(values)
    other = "regression" if inferred == "classification" else "classification"
    return inferred, [f'task {inferred}: {what} holds {why} (pass task="{other}" to change it)']


def _targets(pairs: dict, task: str) -> tuple[dict, tuple[str, ...] | None]:
    """(each part's targets, class names): classes numbered 0..K-1 in data's sorted classes (named
    where they are not those numbers already); a quantity float32, one column."""
    if task == "regression":
        return {part: y.astype(np.float32).reshape(-1, 1) for part, (_, y) in pairs.items()}, None
    import pandas as pd

    classes = tables.sorted_classes(pd.unique(pairs["data"][1]))
    numbers = {value: index for index, value in enumerate(classes)}
    targets = {}
    for part, (_, y) in pairs.items():
        encoded = pd.Series(y).map(numbers)
        if encoded.isna().any():
            unknown = sorted({str(value) for value in np.asarray(y)[encoded.isna().to_numpy()]})
            raise DataError(f"{part}: y holds class {', '.join(map(repr, unknown[:5]))}, which data's y does not")
        targets[part] = encoded.to_numpy(dtype=np.int64)
    own_numbers = all(isinstance(value, (int, float, np.integer, np.floating))
                      and not isinstance(value, (bool, np.bool_)) and value == index
                      for index, value in enumerate(classes))
    return targets, None if own_numbers else tuple(str(value) for value in classes)


def _kind(x: np.ndarray, kind: str | None) -> str:
    """Which families can take x: (N, F) a table, (N, H, W[, C]) an image, (N, T[, F]) a sequence
    when asked; a shape the kind cannot take is a DataError."""
    takes = {"table": (2,), "image": (3, 4), "sequence": (2, 3)}
    if kind is None:
        kind = "table" if x.ndim == 2 else "image"
    if x.ndim not in takes[kind]:
        shapes = {"table": "(N, features)", "image": "(N, height, width) or (N, height, width, channels)",
                  "sequence": "(N, steps) or (N, steps, features)"}
        raise DataError(f"x has shape {x.shape}; {kind} data is {shapes[kind]}"
                        + ("" if x.ndim > 4 else "; pass kind= to read it as another kind"))
    return kind


def _shaped(x: np.ndarray, kind: str) -> np.ndarray:
    """x as the families read it: float32, a channel axis on a grey image, a feature axis on a
    sequence of single values."""
    x = x.astype(np.float32)
    if (kind == "image" and x.ndim == 3) or (kind == "sequence" and x.ndim == 2):
        x = x[..., np.newaxis]
    return x


def _spec(train: tuple[np.ndarray, np.ndarray], kind: str, task: str, num_classes: int, class_names) -> DataSpec:
    """What the families read of the data, learnt from the training split."""
    x, y = train
    target_scale = (float(y.mean()), float(y.std() or 1.0)) if task == "regression" else None
    adapter, pixel_max = None, 1.0
    if kind == "table":  # a constant feature is divided by 1, not by a zero deviation
        variance = x.var(axis=0, dtype=np.float64)
        adapter = ArrayAdapter(tuple(x.mean(axis=0, dtype=np.float64).tolist()),
                               tuple(np.where(variance > 0, variance, 1.0).tolist()))
    elif kind == "image":  # the model scales raw pixels (0-16, 0-255) to [0, 1] inside itself
        pixel_max = max(float(x.max()), 1.0)
    return DataSpec(input_shape=x.shape[1:], num_classes=num_classes, task=task, kind=kind, pixel_max=pixel_max,
                    class_names=class_names, adapter=adapter, target_scale=target_scale)


def _rows_words(pairs: dict, kind: str) -> str:
    x = pairs["data"][0]
    shape = f"{x.shape[1]} features" if kind == "table" else f"{x.shape[1:]}"
    given = "".join(f" + {len(pairs[part][0]):,} {part}" for part in ("validation", "test") if part in pairs)
    return f"{len(x):,} rows of {shape}{given}, {kind}"


def _task_words(spec: DataSpec) -> str:
    return f"{spec.num_classes} classes" if spec.task == "classification" else "regression"


def _digest(parts: dict) -> str:
    """The first 12 hex characters of a sha256 over every given part: its name, and each of its
    arrays' shape, dtype and values (text hashed by pandas, as an object array's bytes are pointers)."""
    digest = hashlib.sha256()
    for part, arrays in parts.items():
        digest.update(part.encode())
        for array in arrays:
            digest.update(f"{array.shape} {array.dtype}".encode())
            if array.dtype == object:
                import pandas as pd

                digest.update(pd.util.hash_pandas_object(pd.Series(array.ravel()).astype(str), index=False)
                              .to_numpy().tobytes())
            else:
                digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]


# ------------------------------------------------------------ a DataFrame


def _frame_dataset(frame, target, given: dict, name: str, seed: int, validation_fraction: float,
                   test_fraction: float, task: str | None, kind: str | None) -> Dataset:
    """A DataFrame predicting its column `target`: the given parts put under it, each row marked
    with its part, and tables.table_dataset makes the rest (its preprocessing, learnt from training)."""
    import pandas as pd

    if kind not in (None, "table"):
        raise DataError(f"kind={kind!r}: a DataFrame is a table; leave kind out")
    if target is None:
        raise DataError(f"a DataFrame needs target=, the column to predict; columns: {tables._listed(frame.columns)}")
    frames = {"data": frame}
    for part, value in given.items():
        if not _is_frame(value):
            raise DataError(f"{part} must be a DataFrame like data; got {_form(value)}")
        frames[part] = value
    for part, value in frames.items():
        _check_frame(value, part, target, frame.columns)
        if part != "data":
            _check_kinds(value, part, frame)
    task, notices = _task(frame[target].dropna(), task, f"target {target!r}")
    if task == "classification":
        known = set(frame[target].dropna())
        for part in given:
            unknown = sorted({str(value) for value in frames[part][target].dropna() if value not in known})
            if unknown:
                raise DataError(f"{part}: target {target!r} holds class {', '.join(map(repr, unknown[:5]))}, "
                                "which data's does not")
    digest = hashlib.sha256()
    for part, value in frames.items():
        digest.update(f"{part} {list(value.columns)} {[str(dtype) for dtype in value.dtypes]}".encode())
        digest.update(pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
    combined = pd.concat([_aligned(value[list(frame.columns)], frame) for value in frames.values()], ignore_index=True)
    row_parts = np.repeat(np.array(list(frames), dtype=object), [len(value) for value in frames.values()])
    dataset = tables.table_dataset(name, combined, target, f"DataFrame in memory (digest {digest.hexdigest()[:12]})",
                                   None, seed, validation_fraction, test_fraction, task, row_parts=row_parts)
    if task == "classification" and pd.api.types.is_numeric_dtype(frame[target]) \
            and not pd.api.types.is_bool_dtype(frame[target]) \
            and dataset.spec.class_names == tuple(str(number) for number in range(dataset.spec.num_classes)):
        dataset = replace(dataset, spec=replace(dataset.spec, class_names=None))  # labels their own numbers
    return replace(dataset, notices=tuple(notices) + dataset.notices)


def _aligned(frame, data):
    """A given part with a column that has no value at all (None, NaN) typed as data's is, so that,
    put together, data's numbers or dates stay numbers or dates (whole numbers and booleans as
    floats: a missing one is NaN, not False)."""
    frame = frame.copy()
    for column in data.columns:
        dtype = data[column].dtype
        if frame[column].isna().all() and frame[column].dtype != dtype:
            frame[column] = frame[column].astype(np.float64 if dtype.kind in "biu" else dtype)
    return frame


def _check_kinds(frame, part: str, data) -> None:
    """A given part's columns hold what data's hold (numbers, text, dates): put together, a column
    of numbers with a part's text in it was read as text, silently. A part's column with no value
    at all is only missing."""
    for column in data.columns:
        values = frame[column]
        kind, expected = tables.column_kind(values), tables.column_kind(data[column])
        if kind != expected and values.notna().any():
            raise DataError(f"{part}: column {str(column)!r} holds {kind if kind == 'text' else kind + 's'} where "
                            f"data's holds {expected if expected == 'text' else expected + 's'}; give a column the "
                            "same kind of values in every part")


def _check_frame(frame, part: str, target: str, columns) -> None:
    """One given DataFrame: rows, one name a column, the target column, data's columns, one value
    a cell, no infinite number."""
    if frame.empty:
        raise DataError(f"{part}: the DataFrame has no rows")
    if frame.columns.nlevels > 1:
        raise DataError(f"{part}: the DataFrame's columns have {frame.columns.nlevels} levels of names; give each "
                        "column one name, which its model input takes (frame.columns = ['_'.join(map(str, name)) "
                        "for name in frame.columns])")
    twice = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    if twice:
        raise DataError(f"{part}: column {tables._listed(twice)} appears more than once; a column's name is its model "
                        "input, so each must differ")
    if target not in frame.columns:
        raise DataError(f"{part}: no column {target!r} to predict; columns: {tables._listed(frame.columns)}")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(f"{part}: the DataFrame lacks data's column {tables._listed(missing)}")
    nested = [column for column in columns if frame[column].dtype == object and frame[column].map(
        lambda value: isinstance(value, (list, tuple, dict, set, np.ndarray))).any()]
    if nested:
        raise DataError(f"{part}: column {tables._listed(nested)} holds lists, not one value a row (a number, text or "
                        "a date); give each item a column of its own")
    numbers = frame[list(columns)].select_dtypes("number")
    infinite = [column for column in numbers.columns if np.isinf(numbers[column].to_numpy(dtype=float)).any()]
    if infinite:
        raise DataError(f"{part}: column {tables._listed(infinite)} holds infinite values; drop or fill them")

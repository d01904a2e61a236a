"""Tables: a user's CSV file, and the real tables that ship offline in scikit-learn.

    [data]
    csv = "data/demand.csv"      # read with pandas
    target = "demand"            # the column to predict
    # task = "regression"        # inferred from the target when absent, and said
    # features = ["price", ...]  # default: every other column
    # test_fraction = 0.2

`wine` (178 rows, 3 classes), `breast_cancer` (569 rows, 2 classes) and `diabetes` (442 rows,
regression) are the same kind of data set, read from scikit-learn instead of a file.

The inputs stay the raw rows (a pandas DataFrame of the feature columns): the data set's own
input adapter (`TableAdapter`) puts the preprocessing inside the model, learnt from the training
split only: numbers normalised, a missing number filled with the training mean and flagged,
text one-hot encoded over the training split's categories (an unknown or missing one has its own
slot). A registered table model therefore takes the CSV's own columns, as a DataFrame or a dict.

pandas, scikit-learn and Keras are imported inside functions, when a table loads: a config check
needs none.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import zipfile
import zlib
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from nnlab.data.types import DataSpec, Dataset
from nnlab.errors import DataError
from nnlab.formats import counted

TASKS = ("classification", "regression")
# A numeric target of at most this many distinct whole numbers is a class label (0/1, a rating
# of 1-5), more is a quantity to regress: a user with a count to regress says task = "regression".
MOST_CLASSES_INFERRED = 20
# A text column's most frequent categories each get a slot; rarer ones share the unknown slot:
# a column of free text or identifiers would otherwise add a slot per row.
MOST_CATEGORIES = 50
TEST_FRACTION = 0.2
CSV_OPTIONS = {"csv": None, "target": None, "task": None, "features": None, "test_fraction": TEST_FRACTION}
BUILT_IN_OPTIONS = {"test_fraction": TEST_FRACTION}


def check_option(key: str, value) -> str | None:
    """Why a table's [data] value cannot be taken, or None (the config asks before any reading)."""
    if key in ("csv", "target"):
        return None if isinstance(value, str) and value.strip() else "must be a non-empty string"
    if key == "task":
        return None if value in TASKS else f"must be one of {', '.join(TASKS)}"
    if key == "features":
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            return "must be a non-empty list of column names"
        return None if len(set(value)) == len(value) else "names a column twice"
    if key == "test_fraction":
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < 1:
            return "must be a number between 0 and 1"
        return None
    return "is not an option of a table"


@dataclass(frozen=True)
class Column:
    """One feature column as the model reads it, learnt from the training split."""

    name: str
    kind: str  # "number", "date" (read as a number: days since 1970-01-01) or "text"
    mean: float = 0.0  # a number's, over its present training values
    variance: float = 1.0
    missing: int = 0  # missing training values: a number that had any gets a was-missing input
    categories: tuple[str, ...] = ()  # a text column's, most frequent first


@dataclass(frozen=True)
class TableAdapter:
    """The input adapter of a table: one Keras input per column (named by it), encoded by stock
    preprocessing layers and nnlab.tabular.FillMissing into the one vector a builder reads."""

    columns: tuple[Column, ...]

    def inputs(self):
        import keras

        from nnlab.tabular import Categories, FillMissing, input_name

        # Text is looked up inside the model on TensorFlow; elsewhere the model takes its codes
        # (StringLookup runs on TensorFlow only, and JAX and PyTorch tensors hold no text).
        text_read = keras.config.backend() == "tensorflow"
        inputs, numbers, parts = {}, [], []
        for column in self.columns:
            # Keyed and named alike, as Keras matches a dict of inputs (nnlab.tabular.keras_inputs).
            name = input_name(column.name)
            dtype = "float32" if column.kind != "text" else "string" if text_read else "int32"
            inputs[name] = keras.Input((1,), name=name, dtype=dtype)
            if column.kind != "text":
                numbers.append(column)
            elif text_read:  # slot 0: an unknown or missing category; then the training split's
                parts.append(keras.layers.StringLookup(vocabulary=list(column.categories), num_oov_indices=1,
                                                       output_mode="one_hot", name=f"{name}_categories")(inputs[name]))
            else:  # the same slots, from the codes keras_inputs reads by the vocabulary
                parts.append(Categories(column.categories, name, name=f"{name}_categories")(inputs[name]))
        if numbers:
            values = [inputs[input_name(column.name)] for column in numbers]
            x = keras.layers.Concatenate(name="numbers")(values) if len(values) > 1 else values[0]
            x = keras.layers.Normalization(mean=[column.mean for column in numbers],
                                           variance=[column.variance for column in numbers], name="normalised")(x)
            parts.insert(0, FillMissing([column.missing > 0 for column in numbers], name="missing_filled")(x))
        x = keras.layers.Concatenate(name="encoded")(parts) if len(parts) > 1 else parts[0]
        return inputs, x


def _is_date(values) -> bool:
    import pandas as pd

    return pd.api.types.is_datetime64_any_dtype(values)


def _is_duration(values) -> bool:
    import pandas as pd

    return pd.api.types.is_timedelta64_dtype(values)


def column_kind(values) -> str:
    """What a column holds as the model reads it: "date", "text" or "number" (booleans and
    durations too)."""
    return "date" if _is_date(values) else "text" if _is_text(values) else "number"


def _is_text(values) -> bool:
    import pandas as pd

    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
                or _is_date(values) or _is_duration(values))


def infer_task(values) -> tuple[str, str]:
    """(task, why) of a target column: text, booleans or at most MOST_CLASSES_INFERRED distinct
    whole numbers are classes; other numbers are a quantity."""
    import pandas as pd

    distinct = values.nunique()
    if pd.api.types.is_bool_dtype(values):
        return "classification", "booleans"
    if _is_text(values):
        return "classification", f"text, {distinct} distinct values"
    whole = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if whole and distinct <= MOST_CLASSES_INFERRED:
        return "classification", f"{distinct} distinct whole numbers"
    return "regression", f"numbers, {distinct} distinct values"


def table_dataset(name: str, frame, target: str, source: str, uri: str | None, seed: int = 0,
                  validation_fraction: float = 0.1, test_fraction: float = TEST_FRACTION,
                  task: str | None = None, features: list[str] | None = None, label: str | None = None,
                  *, row_parts=None) -> Dataset:
    """The table `frame` as a data set: rows with a target, split (stratified by class for
    classification) into training, validation and test parts, the adapter learnt from training.
    `row_parts`, where the user gave a validation or test part (nnlab/data/memory.py): each row's
    part, "data" (split as above), "validation" or "test"."""
    where = f"{label or name}: "  # what messages name: the CSV as the user wrote it, else the table
    features = _checked_features(frame, target, features, where)
    labelled, task, notices = _labelled_rows(frame, target, task, where)
    dates = [column for column in features if _is_date(labelled[column])]
    if dates:
        notices.append(f"date column {_listed(dates)}: read as a number, days since 1970-01-01")
    durations = [column for column in features if _is_duration(labelled[column])]
    if durations:
        notices.append(f"duration column {_listed(durations)}: read as a number of days")
    inputs = _feature_inputs(labelled, features)
    targets, class_names = _encoded_targets(labelled[target], task)
    if row_parts is not None:  # those of the rows with a target value
        row_parts = np.asarray(row_parts)[frame[target].notna().to_numpy()]
    train, validation, test = _split_rows(targets if task == "classification" else None, seed, validation_fraction,
                                          test_fraction, where, row_parts if row_parts is not None else len(inputs))
    columns = tuple(_learnt(inputs.iloc[train][column], column) for column in features)
    notices += _column_notices(inputs, columns, train)
    spec_target = None
    if task == "regression":
        train_targets = targets[train]
        spec_target = (float(train_targets.mean()), float(train_targets.std() or 1.0))
    parts = [(inputs.iloc[index].reset_index(drop=True), targets[index]) for index in (train, validation, test)]
    text = sum(column.kind == "text" for column in columns)
    kinds = f"{len(columns) - text - len(dates)} numeric{f', {len(dates)} date' if dates else ''}, {text} text"
    return Dataset(
        name=name,
        train=parts[0],
        validation=parts[1],
        test=parts[2],
        spec=DataSpec(input_shape=(len(columns),), num_classes=len(class_names) if class_names else 0, task=task,
                      kind="table", class_names=class_names, adapter=TableAdapter(columns), target_scale=spec_target),
        source=(f"{source}: {len(inputs)} rows, {len(columns)} features ({kinds}), "
                f"target {target!r}; "
                f"{split_words(task, seed, validation_fraction, test_fraction, _given(row_parts))}"),
        notices=tuple(notices),
        uri=uri,
        target=target,
    )


def _checked_features(frame, target: str, features: list[str] | None, where: str) -> list[str]:
    """The feature columns (default: every column but the target), or a DataError naming what
    the model could not take: a missing column, the target itself, an input name two columns
    would share, a column with no value at all."""
    if target not in frame.columns:
        raise DataError(f"{where}no column {target!r} to predict; columns: {_listed(frame.columns)}")
    if features is None:
        features = [column for column in frame.columns if column != target]
    unknown = [column for column in features if column not in frame.columns]
    if unknown:
        raise DataError(f"{where}data.features names {_listed(unknown)}, not columns of the file; columns: {_listed(frame.columns)}")
    if target in features:
        raise DataError(f"{where}data.features includes the target {target!r}")
    if not features:
        raise DataError(f"{where}no feature columns beside the target {target!r}")
    from nnlab.tabular import input_name

    clashes = [column for column in features if input_name(column) != column and input_name(column) in features]
    if clashes:
        raise DataError(f"{where}column {clashes[0]!r} becomes the model's input {input_name(clashes[0])!r} (Keras "
                        "takes no '/' in a name), which another column already is; rename one")
    empty = [column for column in features if frame[column].isna().all()]
    if empty:
        raise DataError(f"{where}feature column {_listed(empty)} is entirely empty; leave it out with data.features")
    return features


def _labelled_rows(frame, target: str, task: str | None, where: str) -> tuple[object, str, list[str]]:
    """(the rows with a target value, the task, the notices so far): the task inferred from the
    target where not given, and said; a target with nothing to learn is a DataError."""
    notices = []
    labelled = frame[frame[target].notna()]
    if len(labelled) < len(frame):
        notices.append(f"{len(frame) - len(labelled)} rows without a {target!r} value left out")
    values = labelled[target]
    if values.empty:
        raise DataError(f"{where}target column {target!r} is empty in every row; there is nothing to learn from")
    if _is_date(values) or _is_duration(values):  # read as text, each one was a class of its own
        held = "dates" if _is_date(values) else "durations"
        raise DataError(f"{where}target {target!r} holds {held}; nnlab predicts a class or a number: make it a "
                        f"number to predict ({'the days since its earliest date' if held == 'dates' else 'its days'}, "
                        "say)")
    if values.nunique() < 2:
        only = values.iloc[0].item() if hasattr(values.iloc[0], "item") else values.iloc[0]
        raise DataError(f"{where}target {target!r} has 1 distinct value ({only!r}); there is nothing to predict")
    inferred, why = infer_task(values)
    if task is None:
        task = inferred
        notices.append(f"task {task}: target {target!r} holds {why} (set data.task to change it)")
    elif task == "regression" and _is_text(values):
        raise DataError(f"{where}data.task = 'regression', but target {target!r} holds text")
    return labelled, task, notices


def _feature_inputs(labelled, features: list[str]):
    """The feature columns as the model's inputs take them: every number a float (a whole-number
    column may gain a NaN; a duration in days), dates as naive UTC dates (the model reads their
    days: nnlab.tabular.keras_inputs), text as str with a missing value as ""."""
    import pandas as pd

    from nnlab.tabular import column_array, in_days

    inputs = labelled[features].reset_index(drop=True)
    for column in features:
        if _is_date(inputs[column]):
            inputs[column] = column_array(inputs[column])
        elif _is_duration(inputs[column]):
            inputs[column] = in_days(column_array(inputs[column]))
        elif _is_text(inputs[column]):
            inputs[column] = inputs[column].map(lambda value: "" if pd.isna(value) else str(value)).astype(object)
        else:
            inputs[column] = inputs[column].astype(np.float64)
    return inputs


def _encoded_targets(values, task: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """(targets, class names): a class's number is its place in the sorted classes (sorted by
    type first, so a column mixing numbers and text still sorts); a quantity is one float column."""
    if task == "classification":
        classes = sorted_classes(values.unique())
        targets = values.map({value: index for index, value in enumerate(classes)}).to_numpy(dtype=np.int64)
        return targets, tuple(str(value) for value in classes)
    return values.to_numpy(dtype=np.float32).reshape(-1, 1), None


def _column_notices(inputs, columns: tuple[Column, ...], train) -> list[str]:
    """What the user should know of the feature columns: missing values and how the model fills
    them, text columns with more categories than get an input of their own."""
    notices = []
    missing = {column.name: int(inputs[column.name].isna().sum() if column.kind != "text"
                                else (inputs[column.name] == "").sum()) for column in columns}
    missing = {column: count for column, count in missing.items() if count}
    if missing:
        counts = ", ".join(f"{column} {count}" for column, count in missing.items())
        notices.append(f"missing values ({counts} of {len(inputs)} rows): a missing number is filled with the "
                       "training mean inside the model and flagged in a was-missing input; missing text is an "
                       "unknown category")
    capped = [column.name for column in columns if column.kind == "text"
              and inputs[column.name].iloc[train].nunique() > MOST_CATEGORIES]
    if capped:
        notices.append(f"text column {_listed(capped)}: the {MOST_CATEGORIES} most frequent categories each get "
                       "an input, the rest share the unknown one")
    return notices


def _listed(names) -> str:
    return ", ".join(repr(str(name)) for name in names)


def _learnt(values, name: str) -> Column:
    """A column's preprocessing from its training values (a date's from its days)."""
    from nnlab.tabular import in_days

    if values.dtype == object:
        counts = values[values != ""].value_counts()
        categories = tuple(str(category) for category in counts.index[:MOST_CATEGORIES])
        return Column(name, "text", categories=categories, missing=int((values == "").sum()))
    numbers = in_days(values) if _is_date(values) else values.to_numpy(dtype=np.float64)
    present = numbers[~np.isnan(numbers)]
    mean = float(present.mean()) if len(present) else 0.0
    variance = float(present.var()) if len(present) else 1.0
    return Column(name, column_kind(values), mean=mean, variance=variance, missing=int(values.isna().sum()))


def sorted_classes(values) -> list:
    """The distinct class values in the order their numbers follow: sorted by type first, so that
    a column mixing numbers and text still sorts."""
    return sorted(values, key=lambda value: (str(type(value)), value))


def split_words(task: str, seed: int, validation_fraction: float, test_fraction: float, given=()) -> str:
    """How the parts were made, as a data set's source says it: "20% test, then 10% validation,
    stratified, seed 1"; a part in `given` ("validation", "test") the user gave is said so."""
    how = f"{'stratified, ' if task == 'classification' else ''}seed {seed}"
    if "test" in given and "validation" in given:
        return "validation and test given"
    if "test" in given:
        return f"test given, then {validation_fraction:.0%} validation, {how}"
    if "validation" in given:
        return f"{test_fraction:.0%} test, {how}; validation given"
    return f"{test_fraction:.0%} test, then {validation_fraction:.0%} validation, {how}"


def _given(parts) -> tuple[str, ...]:
    """The parts ("validation", "test") the user gave, from each row's part (None: none)."""
    return () if parts is None else tuple(part for part in ("validation", "test") if np.any(parts == part))


def _split_rows(labels, seed: int, validation_fraction: float, test_fraction: float, where: str, parts):
    """Row indices of the training, validation and test parts: `parts` a row count (every part
    drawn from the rows by _split) or each row's part ("data" rows drawn into the parts not given)."""
    if isinstance(parts, int):
        return _split(parts, labels, seed, validation_fraction, test_fraction, where)
    own = np.flatnonzero(parts == "data")
    given = _given(parts)
    drawn = _split(len(own), None if labels is None else labels[own], seed, validation_fraction, test_fraction,
                   where, given)
    rows = {part: own[index] for part, index in zip(("train", "validation", "test"), drawn)}
    for part in given:
        rows[part] = np.flatnonzero(parts == part)
        if not len(rows[part]):  # every row of it had no target value
            raise DataError(f"{where}the given {part} part has no row with a target value")
    return rows["train"], rows["validation"], rows["test"]


def _split(count: int, labels, seed: int, validation_fraction: float, test_fraction: float, where: str,
           given=()):
    """Row indices of the training, validation and test parts: shuffled by `seed`, and stratified
    by class where `labels` are given, so that a small table's parts hold every class. A part in
    `given` ("validation", "test"), which the user gave, is drawn from none of these rows (empty)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(count)
    try:
        rest, test = (rows, rows[:0]) if "test" in given else train_test_split(
            rows, test_size=test_fraction, random_state=seed, stratify=labels)
        train, validation = (rest, rest[:0]) if "validation" in given else train_test_split(
            rest, test_size=validation_fraction, random_state=seed, stratify=None if labels is None else labels[rest])
    except ValueError as error:  # a class with a single row cannot be in every part
        drawn = [part for part in ("test", "validation") if part not in given]
        if labels is None:
            fractions = {"test": test_fraction, "validation": validation_fraction}
            split = ", ".join(f"{fractions[part]:.0%} {part}" for part in drawn)
            raise DataError(f"{where}{count} rows cannot be split {split} ({error})") from None
        counts = np.bincount(labels)
        smallest = int(counts[counts > 0].min())
        each = "training, validation and test" if not given else f"training and {drawn[0]}"
        raise DataError(f"{where}the smallest class has {counted(smallest, 'row')}: too few to "
                        f"have one in each of {each}") from None
    return np.sort(train), np.sort(validation), np.sort(test)


# A CSV that a spreadsheet in many locales writes: fields separated by semicolons, decimals
# written with a comma ("1,5"); and a tab-separated export.
OTHER_SEPARATORS = (";", "\t")
READ_AS = "nnlab.read_as"


# The encodings a CSV is read in, in turn: UTF-8 (with or without Excel's byte-order mark);
# Windows-1252, as Excel saves "CSV" in Western Europe and the Americas (é as one byte, 0xE9);
# Latin-1, which reads any byte.
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
ENCODING_NAMES = {"cp1252": "Windows-1252", "latin-1": "Latin-1"}


# The compressions a CSV is read in by its file's name, each with how its text is opened; a ZIP
# archive's one CSV is read here, not by pandas, which refuses an archive of more than one file
# (macOS' Finder adds a __MACOSX/ folder to every archive it makes).
COMPRESSED = {".gz": ("gzip", gzip.open), ".bz2": ("bzip2", bz2.open), ".xz": ("xz", lzma.open), ".zip": ("ZIP", None)}


class NotText(ValueError):
    """A file given as a CSV that is not text at all."""


def parsed_csv(path):
    """The CSV at `path` as pandas reads it: UTF-8, else Windows-1252 (said); comma-separated,
    or, where its header line holds no comma but semicolons or tabs, separated by those; a
    semicolon file's columns of decimal-comma numbers ("1,5") read as numbers. A file that is
    not text, or not the compression its name says, is NotText; pandas' own errors pass through."""
    problem = _not_text(path)
    if problem:
        raise NotText(problem)
    source = _zipped_csv(path) if Path(path).suffix.lower() == ".zip" else path
    try:
        for encoding in ENCODINGS[:-1]:
            try:
                return _parsed_csv(source, encoding)
            except UnicodeDecodeError:
                continue
        return _parsed_csv(source, ENCODINGS[-1])
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as error:
        suffix = Path(path).suffix.lower()
        if suffix == ".zip" or suffix not in COMPRESSED or isinstance(error, (FileNotFoundError, IsADirectoryError)):
            raise
        raise NotText(f"named {Path(path).suffix}, but not a whole {COMPRESSED[suffix][0]}-compressed file "
                      f"({error})") from None


def _not_text(path) -> str | None:
    """What a file is where it is not text (or compressed text read by its name)."""
    if Path(path).suffix.lower() in COMPRESSED:
        return None
    with open(path, "rb") as file:
        head = file.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive, not text (an Excel workbook? save it as CSV)"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed (read by its name: .csv.gz)"
    return "a binary file, not text" if b"\x00" in head else None


def _zipped_csv(path) -> io.BytesIO:
    """The bytes of the one file a ZIP archive holds, beside folders and macOS' __MACOSX/."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist()
                     if not name.endswith("/") and not name.startswith("__MACOSX/")]
            if len(names) != 1:
                listed = f": {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}" if names else ""
                raise NotText(f"a ZIP archive of {counted(len(names), 'file')}{listed}; one CSV is read from a .zip")
            return io.BytesIO(archive.read(names[0]))
    except zipfile.BadZipFile as error:
        raise NotText(f"named {Path(path).suffix}, but not a ZIP archive ({error})") from None


def _first_line(source, encoding: str) -> str:
    """The header line of a CSV file (compressed as its name says) or of a ZIP archive's bytes."""
    if isinstance(source, io.BytesIO):
        return source.getvalue().split(b"\n", 1)[0].decode(encoding)
    opener = COMPRESSED.get(Path(source).suffix.lower(), (None, open))[1]
    with opener(source, "rt", encoding=encoding) as file:
        return file.readline()


def _parsed_csv(source, encoding: str):
    import pandas as pd

    header = _first_line(source, encoding)
    separator = next((mark for mark in OTHER_SEPARATORS if mark in header), None) if "," not in header else None
    if isinstance(source, io.BytesIO):
        source.seek(0)
    frame = pd.read_csv(source, sep=separator or ",", encoding=encoding)
    read_as = [f"{'semicolon' if separator == ';' else 'tab'}-separated"] if separator else []
    if encoding in ENCODING_NAMES:
        read_as.insert(0, f"not UTF-8: read as {ENCODING_NAMES[encoding]}")
    decimal_commas = 0
    for column in frame.columns if separator == ";" else ():
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or not values.notna().any():
            continue
        if values.dropna().astype(str).str.fullmatch(r"\s*[-+]?\d*,?\d+\s*").all():
            frame[column] = pd.to_numeric(values.astype(str).str.replace(",", ".", regex=False).where(values.notna()))
            decimal_commas += 1
    if decimal_commas:
        read_as.append(f"decimal commas in {counted(decimal_commas, 'column')}")
    dates = _read_dates(frame)
    if dates:
        read_as.append(f"dates in {counted(dates, 'column')}")
    if read_as:  # said where the data is described: what was read is not what pandas reads by default
        frame.attrs[READ_AS] = ", ".join(read_as)
    return frame


def _read_dates(frame) -> int:
    """Read each text column of ISO dates as dates (nnlab.tabular.iso_dates), in place: how many
    there were."""
    from nnlab.tabular import iso_dates

    count = 0
    for column in frame.columns:
        dates = iso_dates(frame[column]) if _is_text(frame[column]) else None
        if dates is not None:
            frame[column] = dates
            count += 1
    return count


def read_csv(path: str | Path):
    """The CSV as pandas reads it; a file that is missing or does not parse is a DataError."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise DataError(f"CSV file {path} is a folder, not a file: data.csv names the CSV file itself")
    if not path.is_file():
        raise DataError(f"CSV file {path} does not exist")
    try:
        frame = parsed_csv(path)
    except NotText as error:
        raise DataError(f"{path}: {error}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"{path}: not a CSV table pandas can read ({reason[:200]})") from None
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def load_csv(data_dir=None, seed: int = 0, validation_fraction: float = 0.1, csv: str | None = None,
             target: str | None = None, task: str | None = None, features: list[str] | None = None,
             test_fraction: float = TEST_FRACTION) -> Dataset:
    """A user's CSV file (`[data] csv`), predicting its column `target`."""
    if data_dir is not None:
        raise DataError("a CSV data set reads [data] csv = PATH, not --data-dir")
    if csv is None or target is None:
        raise DataError("a CSV data set needs [data] csv = PATH and target = COLUMN")
    path = Path(csv)
    frame = read_csv(path)
    read_as = f" ({frame.attrs[READ_AS]})" if READ_AS in frame.attrs else ""
    return table_dataset(path.stem, frame, target, f"CSV {path}{read_as}", str(path.resolve()), seed, validation_fraction,
                         test_fraction, task, features, label=str(path))


@functools.lru_cache(maxsize=None)
def _sklearn_frame(name: str):
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    if name in ("wine", "breast_cancer"):  # class numbers -> the names the data set gives them
        frame["target"] = frame["target"].map(dict(enumerate(bunch.target_names)))
    return frame


SKLEARN_TABLES = {
    "wine": "sklearn.datasets.load_wine (UCI wine recognition: 178 wines, 13 measurements, 3 cultivars)",
    "breast_cancer": "sklearn.datasets.load_breast_cancer (UCI diagnostic breast cancer: 569 tumours, 30 features, "
                     "malignant or benign)",
    "diabetes": "sklearn.datasets.load_diabetes (442 patients, 10 baseline measurements, scaled as shipped; "
                "disease progression a year later)",
}


def _built_in(name: str, data_dir=None, seed: int = 0, validation_fraction: float = 0.1,
              test_fraction: float = TEST_FRACTION) -> Dataset:
    if data_dir is not None:
        raise DataError(f"the {name} table ships with scikit-learn and reads no --data-dir")
    return table_dataset(name, _sklearn_frame(name), "target", SKLEARN_TABLES[name], f"sklearn.datasets.load_{name}",
                         seed, validation_fraction, test_fraction,
                         task="regression" if name == "diabetes" else "classification")


load_wine = functools.partial(_built_in, "wine")
load_breast_cancer = functools.partial(_built_in, "breast_cancer")
load_diabetes = functools.partial(_built_in, "diabetes")

"""A user's own data in memory (nnlab/data/memory.py): (x, y) arrays, a DataFrame with target=, a
tf.data.Dataset, with or without given validation and test parts, each becomes the Dataset a
search takes: its spec, its split, its task said, a digest that follows the data; every mistake
is one line; and the built-in dfn family builds on each kind and takes the raw x."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn.datasets

from nnlab.data.memory import memory_dataset
from nnlab.errors import DataError

DIGITS = sklearn.datasets.load_digits()  # 1,797 images of 8x8 in 0-16, 10 classes
WINE = sklearn.datasets.load_wine()  # 178 rows, 13 measurements, 3 cultivars
DIABETES = sklearn.datasets.load_diabetes()  # 442 rows, 10 features, a quantity


def sizes(dataset) -> list[int]:
    return [len(part[0]) for part in (dataset.train, dataset.validation, dataset.test)]


def wine_frame() -> pd.DataFrame:
    """Wine with text beside numbers: a text feature (the alcohol band) and the cultivar's name."""
    frame = pd.DataFrame(WINE.data, columns=WINE.feature_names)
    frame["strength"] = np.where(frame["alcohol"] > 13, "strong", "light")
    frame["cultivar"] = WINE.target_names[WINE.target]
    return frame


def test_images_as_arrays():
    dataset = memory_dataset((DIGITS.images, DIGITS.target))
    spec = dataset.spec
    assert (spec.kind, spec.input_shape, spec.task, spec.num_classes) == ("image", (8, 8, 1), "classification", 10)
    assert spec.pixel_max == 16.0 and spec.class_names is None and spec.adapter is None
    assert sizes(dataset) == [1293, 144, 360]  # 20% test, then 10% of the rest
    assert dataset.train[0].dtype == np.float32 and dataset.train[1].dtype == np.int64
    assert all(set(part[1]) == set(range(10)) for part in (dataset.train, dataset.validation, dataset.test))
    assert dataset.notices == ('task classification: y holds 10 distinct whole numbers (pass task="regression" to '
                               'change it)',)
    assert dataset.source.startswith("arrays in memory: 1,797 rows of (8, 8), image, 10 classes; digest ")
    assert dataset.source.endswith("; 20% test, then 10% validation, stratified, seed 1")
    assert dataset.uri is None and dataset.name == "data"


def test_a_table_of_arrays_with_text_labels():
    labels = WINE.target_names[WINE.target]  # "class_0" ...
    dataset = memory_dataset((WINE.data, labels), name="wine", seed=3)
    spec = dataset.spec
    assert (spec.kind, spec.input_shape, spec.num_classes) == ("table", (13,), 3)
    assert spec.class_names == ("class_0", "class_1", "class_2")
    train_x = dataset.train[0]
    # The training split's statistics, not the whole table's.
    assert spec.adapter.mean == pytest.approx(train_x.mean(axis=0), rel=1e-5)
    assert spec.adapter.mean != pytest.approx(WINE.data.mean(axis=0), rel=1e-5)
    assert spec.adapter.variance == pytest.approx(train_x.var(axis=0), rel=1e-4)
    assert "178 rows of 13 features, table, 3 classes" in dataset.source and dataset.source.endswith("seed 3")


def test_text_labels_are_numbered_in_sorted_order():
    labels = np.array(["red", "blue", "green"] * 20)
    dataset = memory_dataset((np.arange(120.0).reshape(60, 2), labels))
    assert dataset.spec.class_names == ("blue", "green", "red")
    rows = np.concatenate([dataset.train[0], dataset.validation[0], dataset.test[0]])
    targets = np.concatenate([dataset.train[1], dataset.validation[1], dataset.test[1]])
    names = np.array(dataset.spec.class_names)[targets]
    assert all(names[index] == labels[int(row[0]) // 2] for index, row in enumerate(rows))


def test_regression_is_inferred_and_scaled():
    dataset = memory_dataset((DIABETES.data, DIABETES.target))
    spec = dataset.spec
    assert spec.task == "regression" and spec.num_classes == 0 and spec.class_names is None
    assert dataset.train[1].dtype == np.float32 and dataset.train[1].shape == (317, 1)
    assert spec.target_scale == pytest.approx((dataset.train[1].mean(), dataset.train[1].std()), rel=1e-5)
    assert dataset.notices == ('task regression: y holds numbers, 214 distinct values (pass task="classification" '
                               'to change it)',)
    assert "regression; digest" in dataset.source and "stratified" not in dataset.source
    # A few whole numbers would be classes: the user says otherwise.
    counts = memory_dataset((DIABETES.data, (DIABETES.target // 100).astype(int)), task="regression")
    assert counts.spec.task == "regression" and counts.notices == ()


def test_sequences():
    rows = memory_dataset((DIGITS.images, DIGITS.target), kind="sequence")  # 8 steps of 8 pixels
    assert (rows.spec.kind, rows.spec.input_shape, rows.spec.pixel_max) == ("sequence", (8, 8), 1.0)
    series = memory_dataset((DIGITS.data, DIGITS.target), kind="sequence")  # 64 steps of one value
    assert series.spec.input_shape == (64, 1) and series.train[0].shape[1:] == (64, 1)
    assert ", sequence, 10 classes" in series.source


def test_a_data_frame_with_text_and_numbers():
    frame = wine_frame()
    dataset = memory_dataset(frame, target="cultivar", name="wine")
    spec = dataset.spec
    assert (spec.kind, spec.input_shape, spec.num_classes) == ("table", (14,), 3)
    assert spec.class_names == ("class_0", "class_1", "class_2")
    assert isinstance(dataset.train[0], pd.DataFrame) and "cultivar" not in dataset.train[0]
    assert dataset.target == "cultivar" and sizes(dataset) == [127, 15, 36]
    columns = {column.name: column for column in spec.adapter.columns}
    assert columns["strength"].kind == "text" and set(columns["strength"].categories) == {"light", "strong"}
    assert dataset.notices[0] == ("task classification: target 'cultivar' holds text, 3 distinct values "
                                  '(pass task="regression" to change it)')
    assert dataset.source.startswith("DataFrame in memory (digest ")
    assert dataset.source.endswith("178 rows, 14 features (13 numeric, 1 text), target 'cultivar'; 20% test, "
                                   "then 10% validation, stratified, seed 1")
    # Labels that are already 0..K-1 keep no names.
    numbered = memory_dataset(frame.assign(cultivar=WINE.target), target="cultivar")
    assert numbered.spec.class_names is None and numbered.spec.num_classes == 3


def test_tf_data_batched_or_not_reads_the_same_arrays():
    import tensorflow as tf

    arrays = memory_dataset((DIGITS.images, DIGITS.target))
    elements = tf.data.Dataset.from_tensor_slices((DIGITS.images, DIGITS.target))
    for given in (elements, elements.batch(100), elements.batch(64, drop_remainder=False)):
        dataset = memory_dataset(given)
        assert dataset.source.startswith("tf.data.Dataset in memory: 1,797 rows of (8, 8), image, 10 classes")
        assert dataset.source.split("digest")[1] == arrays.source.split("digest")[1]  # the same data
        np.testing.assert_array_equal(dataset.train[0], arrays.train[0])
        np.testing.assert_array_equal(dataset.test[1], arrays.test[1])
    text = tf.data.Dataset.from_tensor_slices((WINE.data, WINE.target_names[WINE.target])).batch(32)
    assert memory_dataset(text).spec.class_names == ("class_0", "class_1", "class_2")  # bytes read as text


class Batches:
    """A Keras PyDataset of DIGITS in batches of 100 (the last one short); with sample weights
    where asked."""

    def __new__(cls, weights: bool = False):
        import keras

        class DigitBatches(keras.utils.PyDataset):
            def __len__(self):
                return 18

            def __getitem__(self, index):
                rows = slice(100 * index, 100 * (index + 1))
                pair = (DIGITS.images[rows], DIGITS.target[rows])
                return (*pair, np.ones(len(pair[1]))) if weights else pair

        return DigitBatches()


def test_numbers_held_as_python_objects_are_numbers():
    """np.array(rows, dtype=object) of numbers (a mixed DataFrame's .values, lists of Python
    numbers) was refused as "ragged or mixed"."""
    arrays = memory_dataset((DIGITS.data, DIGITS.target))
    held = memory_dataset((DIGITS.data.astype(object), DIGITS.target))
    np.testing.assert_array_equal(held.train[0], arrays.train[0])
    assert held.spec.kind == "table"


def test_a_pytorch_dataloader_or_dataset_and_a_keras_pydataset_read_the_same_arrays():
    """What Keras' own fit takes besides arrays and tf.data (a PyTorch DataLoader, a Keras
    PyDataset) was refused as not (x, y) arrays; now read whole, as a tf.data.Dataset is."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    arrays = memory_dataset((DIGITS.images, DIGITS.target))
    items = TensorDataset(torch.tensor(DIGITS.images), torch.tensor(DIGITS.target))
    for given, what in ((DataLoader(items, batch_size=64), "PyTorch DataLoader"), (items, "PyTorch Dataset"),
                        (Batches(), "Keras PyDataset")):
        dataset = memory_dataset(given)
        assert dataset.source.startswith(f"{what} in memory: 1,797 rows of (8, 8), image, 10 classes")
        assert dataset.source.split("digest")[1] == arrays.source.split("digest")[1]  # the same data
        np.testing.assert_array_equal(dataset.train[0], arrays.train[0])
        np.testing.assert_array_equal(dataset.test[1], arrays.test[1])
    with pytest.raises(DataError, match=r"^data: the Keras PyDataset gives sample weights, which nnlab does not take"):
        memory_dataset(Batches(weights=True))
    with pytest.raises(DataError, match=r"^data: a PyTorch Dataset's elements must be \(x, y\) pairs; got Tensor$"):
        memory_dataset(_unpaired())
    with pytest.raises(DataError, match=r"^data: the PyTorch Dataset's x is a dict of inputs; give one array of rows"):
        memory_dataset(_unpaired(named=True))


def _unpaired(named: bool = False):
    """A PyTorch Dataset of rows without their targets, or (named) of ({"features": row}, target)."""
    import torch

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return ({"features": torch.zeros(3)}, 1) if named else torch.zeros(3)

    return Rows()


def test_given_validation_and_test():
    x, y = DIGITS.images, DIGITS.target
    both = memory_dataset((x[:1200], y[:1200]), validation=(x[1200:1400], y[1200:1400]), test=(x[1400:], y[1400:]))
    assert sizes(both) == [1200, 200, 397]
    np.testing.assert_array_equal(both.test[1], y[1400:])
    np.testing.assert_array_equal(both.train[0][..., 0], x[:1200])
    assert "1,200 rows of (8, 8) + 200 validation + 397 test, image" in both.source
    assert both.source.endswith("; validation and test given")
    test_only = memory_dataset((x[:1400], y[:1400]), test=(x[1400:], y[1400:]))
    assert sizes(test_only) == [1260, 140, 397] and test_only.source.endswith("test given, then 10% validation, "
                                                                                "stratified, seed 1")
    validation_only = memory_dataset((x[:1400], y[:1400]), validation=(x[1400:], y[1400:]))
    assert sizes(validation_only) == [1120, 397, 280]
    assert validation_only.source.endswith("20% test, stratified, seed 1; validation given")
    frame = wine_frame()
    tables = memory_dataset(frame.iloc[:150], target="cultivar", test=frame.iloc[150:])
    assert sizes(tables) == [135, 15, 28] and "test given, then 10% validation" in tables.source


def test_the_digest_follows_the_data():
    def digest(dataset):
        return dataset.source.split("digest ")[1][:12]

    x, y = DIGITS.images.copy(), DIGITS.target.copy()
    first = digest(memory_dataset((x, y)))
    assert len(first) == 12 and digest(memory_dataset((x.copy(), y.copy()))) == first
    changed = x.copy()
    changed[1000, 3, 3] += 1
    assert digest(memory_dataset((changed, y))) != first
    relabelled = y.copy()
    relabelled[5] = (relabelled[5] + 1) % 10
    assert digest(memory_dataset((x, relabelled))) != first
    assert digest(memory_dataset((x[:1400], y[:1400]), test=(x[1400:], y[1400:]))) != first
    assert digest(memory_dataset((x[:1400], y[:1400]), test=(x[1400:], y[1400:]))) != digest(
        memory_dataset((x[:1400], y[:1400]), validation=(x[1400:], y[1400:])))
    frame = wine_frame()
    table = digest(memory_dataset(frame, target="cultivar"))
    assert digest(memory_dataset(frame.copy(), target="cultivar")) == table
    edited = frame.copy()
    edited.loc[7, "strength"] = "strong" if edited.loc[7, "strength"] == "light" else "light"
    assert digest(memory_dataset(edited, target="cultivar")) != table


WITH_NAN = DIGITS.images.copy()
WITH_NAN[3, 0, 0] = np.nan


@pytest.mark.parametrize("call, message", [
    (lambda: memory_dataset("digits.csv"), "data must be (x, y) arrays, a pandas DataFrame with target=, or a "
                                           "tf.data.Dataset, a PyTorch DataLoader or Dataset, or a Keras PyDataset "
                                           "of (x, y) pairs; got str"),
    (lambda: memory_dataset((DIGITS.images, DIGITS.target, DIGITS.target)), "; got a tuple of 3"),
    (lambda: memory_dataset((DIGITS.images, DIGITS.target[:1000])),
     "data: x has 1,797 rows but y has 1,000; give one target per row"),
    (lambda: memory_dataset((DIGITS.images, np.eye(10)[DIGITS.target])),
     "data: y has shape (1797, 10); give one target per row, shape (1797,) (one-hot labels: y.argmax(axis=1))"),
    (lambda: memory_dataset((DIGITS.images[:0], DIGITS.target[:0])), "data: x and y have no rows"),
    (lambda: memory_dataset((WITH_NAN, DIGITS.target)),
     "data: x holds NaN, infinite or missing values in 1 of 1,797 rows (first row 3); drop or fill them"),
    (lambda: memory_dataset((np.where(np.arange(178)[:, None] == 5, np.nan, WINE.data), WINE.target)),
     "data: x holds NaN, infinite or missing values in 1 of 178 rows (first row 5); drop or fill them (or pass a "
     "pandas DataFrame with target=: its model fills missing numbers as a CSV's)"),
    (lambda: memory_dataset((DIABETES.data, np.where(np.arange(442) == 9, np.inf, DIABETES.target))),
     "data: y holds NaN, infinite or missing values in 1 of 442 rows (first row 9)"),
    (lambda: memory_dataset((DIGITS.target, DIGITS.target)),
     "data: x has shape (1797,), one number per row; give rows of features, x.reshape(-1, 1) for a single feature"),
    (lambda: memory_dataset((WINE.data, WINE.target), target="cultivar"),
     "target= names a DataFrame's column; with a tuple of 2 the targets are y"),
    (lambda: memory_dataset(wine_frame()), "a DataFrame needs target=, the column to predict; columns: 'alcohol'"),
    (lambda: memory_dataset(wine_frame(), target="grape"), "data: no column 'grape' to predict; columns: 'alcohol'"),
    (lambda: memory_dataset(wine_frame(), target="cultivar", test=(WINE.data, WINE.target)),
     "test must be a DataFrame like data; got a tuple of 2"),
    (lambda: memory_dataset(wine_frame(), target="cultivar", test=wine_frame().drop(columns="hue")),
     "test: the DataFrame lacks data's column 'hue'"),
    (lambda: memory_dataset((DIGITS.images, DIGITS.target), validation=(DIGITS.data, DIGITS.target)),
     "validation: x rows have shape (64,), data's have (8, 8); give rows of the same shape"),
    (lambda: memory_dataset((DIGITS.images[:1000], DIGITS.target[:1000] % 3),
                            test=(DIGITS.images[1000:], DIGITS.target[1000:])),
     "test: y holds class '3', '4', '5', '6', '7', which data's y does not"),
    (lambda: memory_dataset((WINE.data[:60], np.r_[np.zeros(59, int), 1])),
     "data: the smallest class has 1 row: too few to have one in each of training, validation and test"),
    (lambda: memory_dataset((WINE.data[:60], np.r_[np.zeros(59, int), 1]), test=(WINE.data[60:], WINE.target[60:] * 0)),
     "data: the smallest class has 1 row: too few to have one in each of training and validation"),
    (lambda: memory_dataset((WINE.data, np.zeros(178))), "y has 1 distinct value (0.0); there is nothing to predict"),
    (lambda: memory_dataset((WINE.data, WINE.target_names[WINE.target]), task="regression"),
     "task='regression', but y holds text; leave task out to classify it"),
    (lambda: memory_dataset((WINE.data, WINE.target), task="ranking"),
     "task='ranking': must be one of 'classification', 'regression', or None to infer it"),
    (lambda: memory_dataset((DIGITS.images, DIGITS.target), kind="table"),
     "x has shape (1797, 8, 8); table data is (N, features); pass kind= to read it as another kind"),
    (lambda: memory_dataset((np.array([[1.0], [2.0, 3.0]], dtype=object), [0, 1])), "data: x is ragged"),
    # A DataFrame's .values with a text column was "x is ragged or mixed: its rows differ in shape or type".
    (lambda: memory_dataset((np.array([[1.5, "red"], [2.0, "blue"]] * 20, dtype=object), [0, 1] * 20)),
     "data: x holds str values ('red') among its numbers; pass a pandas DataFrame with target= to have text columns "
     "encoded"),
    (lambda: memory_dataset((np.array([[1.5, None], [2.0, 3.0]] * 20, dtype=object), [0, 1] * 20)),
     "data: x holds NaN, infinite or missing values in 20 of 40 rows (first row 0)"),
    (lambda: memory_dataset((WINE.data.astype(str), WINE.target)), "data: x must hold numbers, not <U"),
    (lambda: memory_dataset((WINE.data, WINE.target), test_fraction=1.5),
     "test_fraction=1.5: must be a number between 0 and 1"),
    # Each of the three below was a traceback from pandas or Keras.
    (lambda: memory_dataset(wine_frame().set_axis(pd.MultiIndex.from_tuples(
        [("x", str(column)) for column in wine_frame().columns]), axis=1), target=("x", "cultivar")),
     "data: the DataFrame's columns have 2 levels of names; give each column one name"),
    (lambda: memory_dataset(pd.concat([wine_frame(), wine_frame()[["hue"]]], axis=1), target="cultivar"),
     "data: column 'hue' appears more than once; a column's name is its model input, so each must differ"),
    (lambda: memory_dataset(wine_frame().assign(cultivar=pd.Timestamp("2020-01-01") + pd.to_timedelta(
        np.arange(178), unit="D")), target="cultivar"),
     "data: target 'cultivar' holds dates; nnlab predicts a class or a number: make it a number to predict (the "
     "days since its earliest date, say)"),
    # Put together, the column was read as text, silently.
    (lambda: memory_dataset(wine_frame(), target="cultivar",
                            validation=wine_frame().head(30).assign(hue=lambda frame: frame["hue"].astype(str))),
     "validation: column 'hue' holds text where data's holds numbers; give a column the same kind of values in every "
     "part"),
    (lambda: memory_dataset(wine_frame(), target="cultivar", test=wine_frame().head(30).assign(
        hue=pd.Timestamp("2020-01-01"))), "test: column 'hue' holds dates where data's holds numbers"),
    (lambda: memory_dataset(wine_frame().assign(hue=[[1.0, 2.0]] * 178), target="cultivar"),
     "data: column 'hue' holds lists, not one value a row (a number, text or a date); give each item a column"),
])
def test_each_mistake_is_one_line(call, message):
    with pytest.raises(DataError) as raised:
        call()
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_tf_data_mistakes():
    import tensorflow as tf

    cases = [
        (tf.data.Dataset.from_tensor_slices(DIGITS.images), "got TensorSpec"),
        (tf.data.Dataset.from_tensor_slices((DIGITS.images, DIGITS.target, DIGITS.target)), "got a tuple of 3"),
        (tf.data.Dataset.from_tensor_slices(({"pixels": DIGITS.images}, DIGITS.target)),
         "got a pair of (dict, TensorSpec)"),
        (tf.data.Dataset.from_tensor_slices((DIGITS.images, DIGITS.target)).repeat(), "repeats forever"),
    ]
    for dataset, words in cases:
        with pytest.raises(DataError, match=r"^data: (a|the) tf\.data\.Dataset") as raised:
            memory_dataset(dataset)
        assert words in str(raised.value), str(raised.value)


def fitted_dfn(dataset, inputs=lambda x: x, rows: int = 64):
    """The built-in dfn family built on the spec, compiled with the task's loss, fitted an epoch on
    a few training rows (`inputs`: the model's inputs from them)."""
    import keras_tuner

    from nnlab.models import get_builder
    from nnlab.tasks import get_task

    model = get_builder("dfn")(keras_tuner.HyperParameters(), dataset.spec)
    model.compile(optimizer="adam", loss=get_task(dataset.spec.task).loss)
    x, y = dataset.train
    model.fit(inputs(x[:rows]), y[:rows], epochs=1, verbose=0)
    return model


def test_dfn_takes_a_raw_table_normalised_inside_and_loads_without_nnlab(tmp_path):
    import keras

    dataset = memory_dataset((DIABETES.data * 100 + 50, DIABETES.target))  # far from unit scale
    model = fitted_dfn(dataset)
    raw = DIABETES.data[:5] * 100 + 50
    predictions = model.predict(raw, verbose=0)
    assert predictions.shape == (5, 1) and np.isfinite(predictions).all()
    normalised = keras.Model(model.inputs, model.get_layer("normalised").output).predict(dataset.train[0], verbose=0)
    assert np.abs(normalised.mean(axis=0)).max() < 1e-3 and np.abs(normalised.std(axis=0) - 1).max() < 1e-3
    model.save(tmp_path / "table.keras")
    loaded = keras.saving.load_model(tmp_path / "table.keras")  # safe mode: stock layers only
    np.testing.assert_allclose(loaded.predict(raw, verbose=0), predictions, rtol=1e-5)


def test_dfn_takes_raw_images_scaled_inside():
    import keras

    dataset = memory_dataset((DIGITS.images, DIGITS.target))
    model = fitted_dfn(dataset)
    probabilities = model.predict(DIGITS.images[:5][..., np.newaxis], verbose=0)
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    scaled = keras.Model(model.inputs, model.get_layer("to_unit_range").output).predict(dataset.train[0], verbose=0)
    assert scaled.max() == pytest.approx(1.0)


def test_dfn_takes_sequences_and_data_frames():
    from nnlab.tabular import keras_inputs

    sequences = memory_dataset((DIGITS.images, DIGITS.target), kind="sequence")
    assert fitted_dfn(sequences).predict(DIGITS.images[:3].astype(np.float32), verbose=0).shape == (3, 10)
    frame = wine_frame()
    model = fitted_dfn(memory_dataset(frame, target="cultivar"), keras_inputs)
    rows = frame.drop(columns="cultivar").iloc[:4]
    assert model.predict(keras_inputs(rows), verbose=0).shape == (4, 3)


def test_a_duration_column_is_a_number_of_days():
    """A timedelta column was text, one category a duration."""
    from nnlab.tabular import keras_inputs, reads_rows

    frame = wine_frame().assign(aged=pd.to_timedelta(np.arange(178) % 40, unit="D") + pd.Timedelta(hours=12))
    frame.loc[3, "aged"] = pd.NaT
    dataset = memory_dataset(frame, target="cultivar")
    column = {column.name: column for column in dataset.spec.adapter.columns}["aged"]
    assert (column.kind, column.missing > 0) == ("number", True) and 15 < column.mean < 25
    assert "duration column 'aged': read as a number of days" in dataset.notices
    model = reads_rows(fitted_dfn(dataset, keras_inputs))
    rows = frame.drop(columns="cultivar").iloc[:5]
    np.testing.assert_allclose(model.predict(rows, verbose=0), model.predict(
        rows.assign(aged=rows["aged"].dt.total_seconds() / 86_400), verbose=0), rtol=1e-5)


def test_a_given_parts_column_with_no_value_is_only_missing():
    test = wine_frame().head(30).assign(hue=None)  # objects, all None: no kind of its own
    dataset = memory_dataset(wine_frame(), target="cultivar", test=test)
    assert {column.name: column.kind for column in dataset.spec.adapter.columns}["hue"] == "number"


def test_a_table_model_reads_pandas_nullable_columns_and_text_given_for_numbers():
    """A nullable boolean column with a missing value (pandas' "boolean") reached the model as
    objects, True and <NA>: a Keras cast error, as was any text given for a number."""
    from nnlab.tabular import RowsError, keras_inputs, reads_rows

    frame = wine_frame().assign(aged=pd.array([True, False, None] * 59 + [True], dtype="boolean"),
                                vintage=pd.array([2001, None] * 89, dtype="Int64"))
    dataset = memory_dataset(frame, target="cultivar")
    assert {column.name: column.kind for column in dataset.spec.adapter.columns}["aged"] == "number"
    model = reads_rows(fitted_dfn(dataset, keras_inputs))
    rows = frame.drop(columns="cultivar").iloc[:4]
    expected = model.predict(rows, verbose=0)
    as_text = {name: ["" if pd.isna(value) else str(value) for value in values] for name, values in rows.items()}
    np.testing.assert_allclose(model.predict(as_text, verbose=0), expected, rtol=1e-5)  # "True", "13.2", ""
    with pytest.raises(RowsError, match=r"^column 'hue' takes numbers \(or ISO dates, 2024-03-01\); row 2 holds 'pale'$"):
        model.predict(rows.assign(hue=["1.04", "pale", None, "0.9"]), verbose=0)


def test_the_splits_become_mlflow_dataset_inputs_carrying_the_digest():
    from nnlab.tracking.runs import data_inputs

    dataset = memory_dataset((DIGITS.data, DIGITS.target), name="digits")
    inputs = data_inputs(dataset)
    assert [item.name for item in inputs.values()] == ["digits-training", "digits-validation", "digits-test"]
    assert inputs["training"].source.to_dict()["tags"]["nnlab.data_source"] == dataset.source
    frame = data_inputs(memory_dataset(wine_frame(), target="cultivar", name="wine"))
    assert frame["test"].targets == "cultivar" and len(frame["test"].df) == 36

"""Tables: a user's CSV through pandas and scikit-learn's real tables. The preprocessing lives in
the model, learnt from the training split; the champion takes raw rows (a DataFrame, a dict of
columns, or `dataframe_split` JSON over HTTP from `mlflow models serve`); every search logs its
baseline and its data as MLflow dataset inputs; bad tables are one line and exit 2."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nnlab
from nnlab.data import load_dataset
from nnlab.data.tables import infer_task, table_dataset
from nnlab.errors import DataError
from nnlab.search import main
from conftest import search_here
from test_bad_input import assert_refused
from test_serve import assert_serves_its_example, own_example, served_answer


def diabetes_csv(path: Path) -> Path:
    """scikit-learn's diabetes table as a user would export it: raw units, `sex` as text, the
    target named `progression`, and a few values missing (3 bmi, 2 sex)."""
    import sklearn.datasets

    frame = sklearn.datasets.load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
    frame.loc[[4, 40, 400], "bmi"] = np.nan
    frame.loc[[7, 70], "sex"] = None
    frame.to_csv(path, index=False)
    return path


def test_the_task_is_inferred_from_the_target():
    assert infer_task(pd.Series(["red", "blue", "red"]))[0] == "classification"
    assert infer_task(pd.Series([True, False, True]))[0] == "classification"
    assert infer_task(pd.Series([1, 2, 3, 2, 1]))[0] == "classification"
    assert infer_task(pd.Series(np.arange(100)))[0] == "regression"  # a count of many values is a quantity
    assert infer_task(pd.Series([0.5, 1.5, 2.25]))[0] == "regression"


def test_preprocessing_is_learnt_from_the_training_split_and_takes_raw_rows(tmp_path):
    frame = pd.read_csv(diabetes_csv(tmp_path / "diabetes.csv"))
    dataset = table_dataset("diabetes", frame, "progression", "test table", None, seed=4)
    assert dataset.spec.task == "regression" and dataset.spec.kind == "table"
    assert any("task regression" in notice for notice in dataset.notices)
    assert any("missing values (sex 2, bmi 3 of 442 rows)" in notice for notice in dataset.notices)
    columns = {column.name: column for column in dataset.spec.adapter.columns}
    assert columns["sex"].kind == "text" and set(columns["sex"].categories) == {"female", "male"}
    train = dataset.train[0]
    assert columns["age"].mean == pytest.approx(train["age"].mean())  # the training split's, not the table's
    assert columns["age"].mean != pytest.approx(frame["age"].mean())
    assert dataset.spec.target_scale[0] == pytest.approx(float(dataset.train[1].mean()), rel=1e-5)

    import keras_tuner

    from nnlab.models import get_builder
    from nnlab.tabular import keras_inputs

    model = get_builder("dfn")(keras_tuner.HyperParameters(), dataset.spec)
    rows = dataset.test[0][:3].copy()
    rows.loc[0, "bmi"], rows.loc[1, "sex"] = np.nan, "unknown"  # missing, and a category never seen
    predictions = model.predict(keras_inputs(rows), verbose=0)
    assert predictions.shape == (3, 1) and np.isfinite(predictions).all()


def test_built_in_tables():
    wine = load_dataset("wine", {"test_fraction": 0.2}, seed=1, validation_fraction=0.1)
    assert wine.spec.num_classes == 3 and wine.spec.class_names == ("class_0", "class_1", "class_2")
    assert len(wine.train[0]) + len(wine.validation[0]) + len(wine.test[0]) == 178
    # Stratified: every part holds every class.
    assert all(set(np.unique(part[1])) == {0, 1, 2} for part in (wine.train, wine.validation, wine.test))
    cancer = load_dataset("breast_cancer", {}, seed=1, validation_fraction=0.1)
    assert cancer.spec.class_names == ("benign", "malignant") and cancer.spec.input_shape == (30,)
    diabetes = load_dataset("diabetes", {}, seed=1, validation_fraction=0.1)
    assert diabetes.spec.task == "regression" and diabetes.train[1].shape[1] == 1


CSV_EXPERIMENT = """
name = "progression"
tuner = "random"
max_trials = 2
epochs = 3
final_epochs = 1
[data]
csv = "diabetes.csv"
target = "progression"
"""


def test_a_csv_searches_registers_and_serves_raw_rows(workdir, capsys, free_port):
    diabetes_csv(workdir / "diabetes.csv")
    (workdir / "progression.toml").write_text(CSV_EXPERIMENT)
    # The default store's file, named absolutely: MLflow keeps one store per URI in a process, and
    # an earlier test's relative URI meant its own folder (the search, too, runs in this process).
    tracking_uri = f"sqlite:///{workdir}/mlruns/mlflow.db"
    search_here("progression.toml", tracking_uri=tracking_uri)  # python -m nnlab.search progression.toml
    out = capsys.readouterr().out
    assert "task regression: target 'progression' holds numbers" in out
    assert "missing values (sex 2, bmi 3 of 442 rows)" in out
    assert "(always the training mean: test_rmse " in out  # the training mean's RMSE beside the champion's

    import keras
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("progression")
    parent = client.search_runs([experiment.experiment_id], "tags.`nnlab.search_id` != ''")[0]
    assert {"test_rmse", "test_rmse_mean", "test_rmse_over_best_baseline"} <= set(parent.data.metrics)
    inputs = {item.dataset.name: item for item in parent.inputs.dataset_inputs}
    assert set(inputs) == {"diabetes-training", "diabetes-validation", "diabetes-test"}
    training = inputs["diabetes-training"].dataset
    assert training.source_type == "local" and "diabetes.csv" in training.source
    assert "progression" in training.schema and "sex" in training.schema
    trial = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")[0]
    assert {item.dataset.name for item in trial.inputs.dataset_inputs} == {"diabetes-training", "diabetes-validation"}

    # 353 training and validation rows: cross-validated by default, each trial the mean of 5 fits,
    # each fit's curves on its run, the spread beside the mean; the champion refit on all rows and
    # registered, both test scores on the search's run.
    assert "best_val_rmse_std" in trial.data.metrics
    for fold in range(1, 6):
        steps = [point.step for point in client.get_metric_history(trial.info.run_id, f"fold{fold}/val_rmse")]
        assert steps and steps == list(range(1, len(steps) + 1))
    assert "Refit: trials" in out and "from scratch on all 353 training and validation rows" in out
    assert parent.data.metrics["test_rmse"] == parent.data.metrics["test_rmse_refit"]
    assert "test_rmse_validation_chosen" in parent.data.metrics

    assert ", 5 times from different initial weights" in out  # a table's refit_repeats
    # Raw rows as the CSV holds them, a missing value and all; the target left out.
    rows = pd.read_csv(workdir / "diabetes.csv").drop(columns="progression").iloc[[4, 7, 10, 11]].reset_index(drop=True)
    model = nnlab.load_model("progression-dfn", tracking_uri)
    # Each member refit five times, all averaged: the first under its trial's name, then _2 to _5;
    # the linear member, where it joined, five times as well (it weighs as one member).
    members = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    networks = [name for name in members if not name.startswith("trial_linear_")]
    joined = parent.data.metrics["linear_member_joined"]
    assert len(networks) == 5 * len(parent.data.tags["nnlab.champion_trial"].split(","))
    assert len(members) - len(networks) == 5 * joined
    assert {name.removeprefix("trial_").split("_")[0] for name in networks} == set(
        parent.data.tags["nnlab.champion_trial"].split(","))
    assert "the linear model (no hidden layer, fit to its optimum by scikit-learn, L2 " in " ".join(out.split())
    assert ("test_rmse_networks" in parent.data.metrics) == bool(joined)
    champion_line = [line for line in out.splitlines() if line.startswith("Champion: ")][-1]  # the last: what is registered
    assert champion_line.startswith("Champion: the average of trial") and (
        "and the linear member" in champion_line) == bool(joined), champion_line
    expected = model.predict(rows, verbose=0)
    assert expected.shape == (4, 1) and np.isfinite(expected).all()
    columns = {name: list(values) for name, values in rows.items()}
    np.testing.assert_allclose(model.predict(columns, verbose=0), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(rows.assign(progression=1.0), verbose=0), expected, rtol=1e-5)

    split = json.loads(rows.to_json(orient="split", index=False))  # NaN -> null, as a client sends it
    example, example_expected = own_example("progression-dfn", tracking_uri)
    served, served_example = served_answer("progression-dfn", tracking_uri, free_port, workdir / "serve.log",
                                           [{"dataframe_split": split}, example])
    np.testing.assert_allclose(np.asarray(served, dtype=float).reshape(-1, 1), expected, rtol=1e-4)
    assert_serves_its_example(served_example, example_expected, "progression-dfn")  # its own input example

    # The same rows through nnlab.predict: one value a row, the target column (when there) left aside.
    from nnlab.predict import main as predict

    rows.assign(progression=0.0).to_csv(workdir / "rows.csv", index=False)
    assert predict(["progression-dfn", "rows.csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"rows.csv row {row}" for row in range(1, 5)]
    np.testing.assert_allclose([float(line.split(": ")[1]) for line in lines], expected.ravel(), rtol=1e-4)


def test_every_search_logs_its_baseline_and_its_data(searched_store):
    """MNIST as for a CSV: the majority class's accuracy and the three splits as dataset inputs."""
    import mlflow

    client = mlflow.MlflowClient(searched_store.tracking_uri)
    parent = client.get_run(searched_store.result.parent_run_id)
    assert 0.05 < parent.data.metrics["test_accuracy_majority"] < 0.2  # one digit of ten
    contexts = {item.dataset.name: [tag.value for tag in item.tags] for item in parent.inputs.dataset_inputs}
    assert contexts == {"mnist-training": ["training"], "mnist-validation": ["validation"], "mnist-test": ["test"]}


TABLE_MISTAKES = [
    ('[data]\ncsv = "missing.csv"\ntarget = "y"\n', "CSV file missing.csv does not exist"),
    ('[data]\ncsv = "broken.csv"\ntarget = "y"\n', "broken.csv: not a CSV table pandas can read (Error tokenizing data"),
    ('[data]\ncsv = "table.csv"\ntarget = "price"\n', "no column 'price' to predict; columns: 'x', 'empty', 'y', 'same'"),
    ('[data]\ncsv = "table.csv"\ntarget = "same"\nfeatures = ["x"]\n', "target 'same' has 1 distinct value (7); there is nothing to predict"),
    ('[data]\ncsv = "table.csv"\ntarget = "y"\n', "feature column 'empty' is entirely empty; leave it out with data.features"),
    ('[data]\ncsv = "table.csv"\ntarget = "y"\nfeatures = ["x", "z"]\n', "data.features names 'z', not columns of the file"),
    ('[data]\ncsv = "table.csv"\ntarget = "y"\nseperator = ";"\n', "data.seperator: unknown option of data set csv; known: csv, target"),
    ('[data]\ncsv = "table.csv"\n', "data set csv needs data.target in an experiment file's [data] table"),
    ('model = "cnn"\n[data]\ncsv = "table.csv"\ntarget = "y"\n', "model cnn cannot take csv's table data; families that can: dfn, linear"),
    ('[data]\ncsv = "table.csv"\ntarget = "y"\ntask = "ranking"\n', "data.task = 'ranking' must be one of classification, regression"),
    ('dataset = "wine"\n[data]\nimages = "x/"\n', "data.images: unknown option of data set wine; known: test_fraction"),
    # An Excel workbook named .csv was "no rows" once any byte could be read as Latin-1.
    ('[data]\ncsv = "book.csv"\ntarget = "y"\n', "book.csv: a ZIP archive, not text (an Excel workbook? save it as CSV)"),
]


@pytest.mark.parametrize(("text", "message"), TABLE_MISTAKES)
def test_table_mistakes(workdir, capsys, text, message):
    (workdir / "table.csv").write_text("x,empty,y,same\n" + "".join(f"{i},,{i % 3},7\n" for i in range(30)))
    (workdir / "broken.csv").write_text("a,b\n1,2\n3,4,5\n")
    with zipfile.ZipFile(workdir / "book.csv", "w") as book:  # what an .xlsx is
        book.writestr("xl/workbook.xml", "<workbook/>")
    (workdir / "bad.toml").write_text(text)
    assert_refused(capsys, main(["bad.toml"]), workdir, message)


def test_a_csv_as_spreadsheets_in_many_locales_write_it_reads_as_the_comma_one(tmp_path):
    """Semicolons between fields and decimal commas ("1,5"), or tabs: the same table, said."""
    from nnlab.predict import read_rows

    frame = pd.read_csv(diabetes_csv(tmp_path / "diabetes.csv"))
    frame.to_csv(tmp_path / "semicolons.csv", sep=";", decimal=",", index=False)
    frame.to_csv(tmp_path / "tabs.csv", sep="\t", index=False)
    assert ";18,8;" in (tmp_path / "semicolons.csv").read_text()  # a bmi, written with a decimal comma
    loaded = {name: load_dataset("csv", {"csv": str(tmp_path / f"{name}.csv"), "target": "progression"}, seed=2)
              for name in ("diabetes", "semicolons", "tabs")}
    for name in ("semicolons", "tabs"):
        pd.testing.assert_frame_equal(loaded[name].train[0], loaded["diabetes"].train[0])
        np.testing.assert_array_equal(loaded[name].test[1], loaded["diabetes"].test[1])
    assert "(semicolon-separated, decimal commas in 10 columns): 442 rows" in loaded["semicolons"].source
    assert "(tab-separated): 442 rows" in loaded["tabs"].source
    assert "separated" not in loaded["diabetes"].source
    # nnlab.predict reads such rows too.
    pd.testing.assert_frame_equal(read_rows(tmp_path / "semicolons.csv"), frame, check_dtype=False)

    # Not UTF-8 (Excel's "CSV" in Western Europe: an accented letter one byte), or compressed:
    # the first was refused ("'utf-8' codec can't decode byte 0xe9"), the second's header unread.
    accented = frame.assign(sex=frame["sex"].map({"female": "féminin", "male": "masculin"}))
    accented.to_csv(tmp_path / "windows.csv", index=False, encoding="cp1252")
    frame.to_csv(tmp_path / "semicolons.csv.gz", sep=";", decimal=",", index=False)
    windows = load_dataset("csv", {"csv": str(tmp_path / "windows.csv"), "target": "progression"}, seed=2)
    assert "(not UTF-8: read as Windows-1252): 442 rows" in windows.source
    assert set(windows.train[0]["sex"]) == {"féminin", "masculin", ""}
    packed = load_dataset("csv", {"csv": str(tmp_path / "semicolons.csv.gz"), "target": "progression"}, seed=2)
    pd.testing.assert_frame_equal(packed.train[0], loaded["diabetes"].train[0])
    pd.testing.assert_frame_equal(read_rows(tmp_path / "windows.csv"), accented, check_dtype=False)

    # A ZIP archive's header was not read (its semicolons taken for one column's name), and one
    # macOS' Finder makes (its CSV beside __MACOSX/) was pandas' traceback.
    with zipfile.ZipFile(tmp_path / "semicolons.csv.zip", "w") as archive:
        archive.write(tmp_path / "semicolons.csv", "semicolons.csv")
        archive.writestr("__MACOSX/._semicolons.csv", "Mac OS X resource fork")
    zipped = load_dataset("csv", {"csv": str(tmp_path / "semicolons.csv.zip"), "target": "progression"}, seed=2)
    pd.testing.assert_frame_equal(zipped.train[0], loaded["diabetes"].train[0])
    pd.testing.assert_frame_equal(read_rows(tmp_path / "semicolons.csv.zip"), frame, check_dtype=False)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("two.csv.zip", None, "a ZIP archive of 2 files: a.csv, b.csv; one CSV is read from a .zip"),
    ("plain.csv.zip", b"a,b\n1,2\n", "named .zip, but not a ZIP archive (File is not a zip file)"),
    ("plain.csv.gz", b"a,b\n1,2\n", "named .gz, but not a whole gzip-compressed file (Not a gzipped file"),
    ("cut.csv.gz", "cut", "named .gz, but not a whole gzip-compressed file (Compressed file ended before"),
    ("plain.csv.xz", b"a,b\n1,2\n", "named .xz, but not a whole xz-compressed file"),
])
def test_a_csv_not_compressed_as_its_name_says_is_one_line(tmp_path, name, content, message):
    """Each was a traceback (pandas' ValueError, gzip's BadGzipFile, an EOFError, an LZMAError)."""
    import gzip

    from nnlab.predict import InputError, read_rows

    path = tmp_path / name
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.csv", "a,b\n1,2\n")
            archive.writestr("b.csv", "a,b\n3,4\n")
    else:
        whole = gzip.compress(b"a,b\n" + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(5000)))
        path.write_bytes(whole[:len(whole) // 2] if content == "cut" else content)
    with pytest.raises(DataError, match="^" + re.escape(f"{path}: {message}")):
        load_dataset("csv", {"csv": str(path), "target": "b"})
    with pytest.raises(InputError, match="^" + re.escape(message)):
        read_rows(path)


def sales(rows: int = 300):
    """Units sold: a trend over three years of dates, a price's effect and noise; one date missing."""
    rng = np.random.default_rng(0)
    days = rng.integers(0, 3 * 365, rows)
    frame = pd.DataFrame({"sold": pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D"),
                          "price": rng.normal(size=rows)})
    frame["units"] = 0.05 * days + 3 * frame["price"] + rng.normal(size=rows)
    frame.loc[5, "sold"] = pd.NaT
    return frame


def test_a_csvs_iso_dates_are_dates_and_other_text_stays_text(tmp_path):
    from nnlab.data.tables import parsed_csv

    (tmp_path / "dates.csv").write_text(
        "day,stamp,american,impossible,y\n"
        "2024-01-01,2024-01-01T10:00:00+01:00,03/01/2024,2024-01-01,a\n"
        ",2024-01-02 12:30,04/01/2024,2024-13-45,b\n")
    frame = parsed_csv(tmp_path / "dates.csv")
    assert [str(dtype) for dtype in frame.dtypes[["day", "stamp"]]] == ["datetime64[us]", "datetime64[us]"]
    assert frame["stamp"].tolist() == [pd.Timestamp("2024-01-01 09:00"), pd.Timestamp("2024-01-02 12:30")]  # UTC
    assert pd.isna(frame["day"][1]) and frame.attrs["nnlab.read_as"] == "dates in 2 columns"
    assert not any(pd.api.types.is_datetime64_any_dtype(frame[column]) for column in ("american", "impossible", "y"))


def test_a_date_column_is_a_number_the_model_learns_from_and_takes_as_dates(workdir, tmp_path, capsys):
    """A DataFrame's dates were text, one category a date, every test date unknown: the model
    learnt nothing from them (on this data test RMSE 17.1, the training mean's 17.7; read as days,
    0.95). A CSV's ISO dates were the same."""
    import mlflow
    from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

    from nnlab.predict import main as predict

    frame = sales()
    in_memory = nnlab.search("sales", data=frame, target="units", max_trials=1, epochs=20, cross_validation=0,
                             ensemble=0, tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db", verbose=False)
    assert in_memory.test_metrics["test_rmse"] < 3  # the units' deviation is 16; without the dates RMSE 16
    frame.to_csv(tmp_path / "sales.csv", index=False, date_format="%Y-%m-%d")
    from_csv = load_dataset("csv", {"csv": str(tmp_path / "sales.csv"), "target": "units"}, seed=1)
    assert "CSV " in from_csv.source and "(dates in 1 column): 300 rows, 2 features (1 numeric, 1 date, 0 text)" \
        in from_csv.source
    assert "date column 'sold': read as a number, days since 1970-01-01" in from_csv.notices
    from nnlab.data.memory import memory_dataset

    pd.testing.assert_frame_equal(from_csv.train[0], memory_dataset(frame, target="units").train[0])  # read alike
    dates = from_csv.train[0]["sold"]  # kept as dates; the model reads their days
    assert pd.api.types.is_datetime64_dtype(dates) and dates.min() >= pd.Timestamp("2020-01-01")
    sold = {column.name: column for column in from_csv.spec.adapter.columns}["sold"]
    assert sold.kind == "date" and 18_262 < sold.mean < 18_262 + 3 * 365  # 2020-01-01 is day 18,262

    # The champion takes dates as dates: from Python, from a CSV, and served (MLflow parses a
    # request's dates by the signature).
    rows = frame.drop(columns="units").iloc[[0, 1, 5]].reset_index(drop=True)
    expected = in_memory.champion.predict(rows, verbose=0).ravel()
    np.testing.assert_allclose(expected[:2], frame["units"][:2], atol=3)
    as_text = {"sold": ["2020-01-01", "2021-06-30T12:00:00+02:00", None], "price": ["0.5", 1, ""]}  # a request's
    np.testing.assert_allclose(in_memory.champion.predict(as_text, verbose=0).ravel(), in_memory.champion.predict(
        {"sold": pd.to_datetime(["2020-01-01 00:00", "2021-06-30 10:00", None]), "price": [0.5, 1, np.nan]}, verbose=0).ravel())
    rows.to_csv(workdir / "rows.csv", index=False, date_format="%Y-%m-%d")
    (workdir / "words.csv").write_text("sold,price\n2020-01-01,1\nMarch,2\n")
    assert predict(["sales-dfn", "words.csv", "rows.csv", "--tracking-uri", in_memory.tracking_uri]) == 2
    output = capsys.readouterr()
    assert output.err.strip().splitlines()[-1] == ("nnlab.predict: words.csv: column 'sold' takes numbers (or ISO "
                                                   "dates, 2024-03-01); row 2 holds 'March'")  # it was a traceback
    np.testing.assert_allclose([float(line.split(": ")[1]) for line in output.out.strip().splitlines()], expected,
                               rtol=1e-4)
    mlflow.set_tracking_uri(in_memory.tracking_uri)
    served = mlflow.pyfunc.load_model("models:/sales-dfn@champion")
    assert str(served.metadata.get_input_schema()) == "['sold': datetime (required), 'price': double (required)]"
    # A request without a column is refused by MLflow, naming it (optional, it failed inside Keras).
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"Model is missing inputs \['price'\]"):
        served.predict(rows.drop(columns="price"))
    request = json.loads(rows.to_json(orient="split", index=False, date_format="iso"))
    parsed = dataframe_from_parsed_json(request, "split", schema=served.metadata.get_input_schema())
    np.testing.assert_allclose(np.asarray(served.predict(parsed)).ravel(), expected, rtol=1e-4)


def test_a_class_too_small_to_split_is_refused():
    frame = pd.DataFrame({"x": np.arange(20.0), "y": ["a"] * 19 + ["b"]})
    with pytest.raises(DataError, match="the smallest class has 1 row: too few"):
        table_dataset("tiny", frame, "y", "test", None)


def test_a_csv_beside_its_experiment_file_is_read_from_any_folder(workdir):
    folder = workdir / "project"
    folder.mkdir()
    (folder / "demand.csv").write_text("price,demand\n" + "".join(f"{index},{index % 2}\n" for index in range(40)))
    (folder / "demand.toml").write_text('[data]\ncsv = "demand.csv"\ntarget = "demand"\n')
    from nnlab.config import load_config

    config = load_config("project/demand.toml")
    dataset = load_dataset(config.dataset, config.data)
    assert config.data["csv"] == "project/demand.csv" and dataset.name == "demand" and dataset.spec.num_classes == 2

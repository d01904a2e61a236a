"""The regression task end to end on the real co2 series: the task decides the loss, metrics,
objective and its direction, the champion's test metrics beside the naive forecasts, the
figures, the alias rule and the leaderboard's order."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

import nnlab
from nnlab.tasks import CLASSIFICATION, REGRESSION, get_task


def runs_of(tracking_uri, experiment):
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return ([run for run in runs if "mlflow.parentRunId" not in run.data.tags],
            [run for run in runs if "mlflow.parentRunId" in run.data.tags])


def test_task_rules():
    assert (CLASSIFICATION.objective, CLASSIFICATION.direction) == ("val_accuracy", "max")
    assert (REGRESSION.objective, REGRESSION.direction, REGRESSION.best_key) == ("val_rmse", "min", "best_val_rmse")
    assert REGRESSION.better(0.4, 0.5) and not REGRESSION.better(0.6, 0.5) and REGRESSION.better(0.6, None)
    assert CLASSIFICATION.better(0.9, 0.8) and not CLASSIFICATION.better(0.7, 0.8)
    assert not REGRESSION.better(math.nan, 0.5) and REGRESSION.better(0.5, math.nan)
    assert REGRESSION.best_index([0.5, np.nan, 0.3, 0.3]) == 2 and CLASSIFICATION.best_index([0.5, 0.9, 0.9]) == 1
    np.testing.assert_array_equal(REGRESSION.running_best([np.nan, 0.5, 0.7, 0.2]), [np.nan, 0.5, 0.5, 0.2])
    assert REGRESSION.score(np.array([[1.0], [3.0]]), np.array([[2.0], [3.0]])) == pytest.approx(math.sqrt(0.5))
    assert CLASSIFICATION.score(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]])) == 0.5
    # The loss an average champion is chosen by: Keras' own, without any weight penalty.
    import keras

    labels, probabilities = np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    assert CLASSIFICATION.loss_of(labels, probabilities) == pytest.approx(
        float(np.mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))), rel=1e-5)
    assert REGRESSION.loss_of(np.array([[1.0], [3.0]]), np.array([[2.0], [3.0]])) == pytest.approx(0.5)
    assert get_task(None) is CLASSIFICATION
    with pytest.raises(ValueError, match="unknown task 'clustering'"):
        get_task("clustering")


def test_regression_search_tracks_rmse_and_beats_naive_forecasts_with_baselines_logged(co2_search):
    result, dataset = co2_search.result, co2_search.dataset
    parents, children = runs_of(co2_search.tracking_uri, "co2")
    assert (len(parents), len(children)) == (1, 2)
    parent = parents[0]
    assert parent.data.tags["nnlab.task"] == "regression" and parent.data.tags["nnlab.model"] == "lstm"
    assert (parent.data.params["data.window"], parent.data.params["data.horizon"]) == ("52", "1")
    for child in children:
        assert {"loss", "rmse", "mae", "val_loss", "val_rmse", "val_mae", "best_val_rmse", "best_epoch"} <= set(
            child.data.metrics)
    assert result.leaderboard["best_val_rmse"].is_monotonic_increasing  # lower is better: best first
    assert any(line.startswith("trial 0 (1 of 2)  val_rmse ") for line in co2_search.lines)
    metrics = parent.data.metrics
    assert {"test_loss", "test_rmse", "test_mae"} <= set(metrics)
    # The naive forecasts scored on the same test windows, and the champion against the best.
    targets, last_values = dataset.test[1].ravel(), dataset.test[0][:, -1, 0]
    naive_last = float(np.sqrt(np.mean((last_values - targets) ** 2)))
    assert metrics["test_rmse_naive_last"] == pytest.approx(naive_last, rel=1e-4)
    best_naive = min(metrics["test_rmse_naive_last"], metrics["test_rmse_naive_seasonal"])
    assert metrics["test_rmse_over_best_baseline"] == pytest.approx(metrics["test_rmse"] / best_naive, rel=1e-4)
    assert result.test_metrics["test_rmse"] == pytest.approx(metrics["test_rmse"])
    # Regression figures in place of the classification ones.
    artifacts = {item.path for item in MlflowClient(co2_search.tracking_uri).list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/champion_forecast.png", "plots/champion_residuals.png", "plots/search_objective_by_trial.png",
            "plots/champion_learning_curves.png"} <= artifacts
    assert "plots/champion_confusion_matrix.png" not in artifacts


def test_registered_regression_champion_takes_a_window_in_ppm_and_returns_ppm(co2_search):
    version = MlflowClient(co2_search.tracking_uri).get_model_version_by_alias("co2-lstm", "champion")
    assert float(version.tags["test_rmse"]) == pytest.approx(co2_search.result.test_metrics["test_rmse"])
    model = nnlab.load_model("co2-lstm", tracking_uri=co2_search.tracking_uri)
    windows, targets = co2_search.dataset.test
    assert model.input_shape == (None, 52, 1)
    forecast = model.predict(windows[:50], verbose=0)
    assert forecast.shape == (50, 1)
    # Scaling lives inside the model: raw ppm in, ppm out, near what happened (the series is
    # around 360 ppm in the test years; two epochs already land within a few ppm).
    assert np.abs(forecast - targets[:50]).max() < 5.0


def test_a_worse_rmse_does_not_move_the_alias(workdir, tracking_uri, co2_search):
    import keras_tuner

    from nnlab.models import get_builder
    from nnlab.tracking import SearchTracker

    model = get_builder("linear")(keras_tuner.HyperParameters(), co2_search.dataset.spec)
    inputs = co2_search.dataset.test[0][:2]
    tracker = SearchTracker("alias-rmse", tracking_uri)
    tracker.open_search("s1", "search", {}, {})
    versions = []
    for rmse in (0.50, 0.60, 0.40):
        record = tracker.log_champion(model, "alias-rmse-linear", inputs, model.predict(inputs, verbose=0),
                                      {"test_rmse": rmse, "test_loss": rmse**2}, "0", [], task=REGRESSION)
        versions.append((record.version, record.promoted, record.previous_test_score))
    tracker.close_search()
    assert versions == [("1", True, None), ("2", False, 0.5), ("3", True, 0.5)]


def test_report_sorts_a_regression_search_lowest_rmse_first(co2_search, capsys):
    from nnlab.report import main

    assert main(["co2", "--tracking-uri", co2_search.tracking_uri, "--format", "csv"]) == 0
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table.columns[:3]) == ["trial", "status", "best_val_rmse"]
    assert table["best_val_rmse"].is_monotonic_increasing and len(table) == 2


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('dataset = "co2"\n[data]\nwindows = 10\n', "data.windows: unknown option of data set co2; known: window, horizon"),
        ('dataset = "co2"\n[data]\nwindow = 0\n', "data.window = 0 must be a positive whole number"),
        ('dataset = "co2"\n[data]\nhorizon = 1.5\n', "data.horizon = 1.5 must be a positive whole number"),
        ('dataset = "co2"\n[data]\nhorizon = "13"\n', "data.horizon = '13' must be a positive whole number"),
        ('dataset = "mnist"\n[data]\nwindow = 5\n', "data.window: unknown option of data set mnist; known: classes, labels_per_class"),
        ('dataset = "co2"\nmodel = "cnn"\n', "model cnn cannot take co2's sequence data; families that can: dfn, "
                                             "linear, rnn, lstm, gru"),
        ('dataset = "co2"\n[data]\nwindow = 300\nhorizon = 52\n', "window 300 + horizon 52"),
    ],
)
def test_bad_data_options_are_one_line_and_exit_2(workdir, capsys, toml, message):
    # The command in this process: a real interpreter's one line is test_bad_input.py's (the last
    # case here loaded TensorFlow and co2 in a process of its own, 6 s, to say it).
    from nnlab.search import main
    from test_bad_input import assert_refused

    (workdir / "bad.toml").write_text(toml)
    assert_refused(capsys, main(["bad.toml"]), workdir, message)


def test_changed_data_options_do_not_mix_into_a_saved_search(co2_search):
    from dataclasses import replace

    from nnlab.search import run_search
    from nnlab.errors import SearchError

    changed = replace(co2_search.config, data={"window": 52, "horizon": 13})
    with pytest.raises(SearchError, match=r"data \{'window': 52, 'horizon': 1\} -> \{'window': 52, 'horizon': 13\}"):
        run_search(changed, co2_search.dataset, tuning_root=co2_search.root / "tuning", echo=lambda line: None)

"""The figures nnlab logs: each drawn from real trained models and real MNIST, checked for what it
claims to show (the data behind every image and line), and found as PNG artifacts in MLflow after
a real search."""

from __future__ import annotations

import keras
import keras_tuner
import matplotlib.image
import numpy as np
import pytest
from mlflow import MlflowClient

from nnlab import plots
from nnlab.config import ExperimentConfig
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import get_builder
from nnlab.search import run_search
from nnlab.tasks import CLASSIFICATION, REGRESSION

CHAMPION_PLOTS = {"champion_confusion_matrix", "champion_misclassified", "champion_first_layer_weights",
                  "champion_learning_curves"}
SEARCH_PLOTS = {"search_objective_by_trial", "search_hyperparameters"}


def trained(name: str, dataset, epochs: int = 3, **fixed):
    hp = keras_tuner.HyperParameters()
    for key, value in fixed.items():
        hp.Fixed(key, value)
    hypermodel = SearchHyperModel(get_builder(name), dataset.spec, batch_size=64, patience=5)
    keras.utils.set_random_seed(2)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, *dataset.train, validation_data=dataset.validation, epochs=epochs, verbose=0)
    return model


def tiles_of(figure) -> list[tuple[str, object]]:
    """A grid figure's tiles in order: each one's title and its image (AxesImage)."""
    (axes,) = [axes for axes in figure.axes if axes.images]
    assert len(axes.texts) == len(axes.images)
    return [(text.get_text(), image) for text, image in zip(axes.texts, axes.images)]


def test_softmax_regression_draws_ten_digit_maps_centred_on_zero(small_mnist):
    model = trained("linear", small_mnist, epochs=5)
    figure = plots.first_layer_weights(model, "champion")
    drawn = tiles_of(figure)
    assert [title for title, _image in drawn] == [f"class {digit}" for digit in range(10)]
    kernel = model.layers[-1].kernel.numpy()
    limit = np.abs(kernel).max()
    for digit, (_title, image) in enumerate(drawn):
        np.testing.assert_allclose(image.get_array(), kernel[:, digit].reshape(28, 28), rtol=1e-6)
        assert image.get_cmap().name == plots.WEIGHT_COLOURS and image.get_clim() == pytest.approx((-limit, limit))
    # What the maps show: a digit's class weighs its own typical ink positively. The mean "0"
    # scores higher with the "0" map than with the others.
    images, labels = small_mnist.train
    zero = images[labels == 0].mean(axis=0).reshape(-1)
    assert np.argmax(zero @ kernel) == 0


def test_dense_and_convolution_first_layers(small_mnist):
    dense = plots.first_layer_weights(trained("dfn", small_mnist, epochs=1, hidden_layers=2, units_0=128), "dfn")
    drawn = tiles_of(dense)
    assert len(drawn) == plots.MOST_MAPS and drawn[0][0] == "unit 0"
    assert all(image.get_array().shape == (28, 28) for _title, image in drawn)
    assert "128 units (first 64 drawn)" in dense.texts[0].get_text()

    convolution = trained("cnn", small_mnist, epochs=1, filters_0=32)
    figure = plots.first_layer_weights(convolution, "cnn")
    kernels = convolution.get_layer(plots.first_weight_layer(convolution).name).kernel.numpy()
    drawn = tiles_of(figure)
    assert len(drawn) == 32 and "32 kernels 3x3" in figure.texts[0].get_text()
    assert drawn[5][0] == "5"
    np.testing.assert_allclose(drawn[5][1].get_array(), kernels[:, :, 0, 5], rtol=1e-6)
    low, high = drawn[5][1].get_clim()
    assert low == -high  # the diverging map's white is 0


def test_confusion_matrix_and_worst_mistakes(small_mnist):
    model = trained("linear", small_mnist, epochs=2)
    images, labels = small_mnist.test
    probabilities = model.predict(images, verbose=0)
    predicted = probabilities.argmax(axis=1)
    counts = plots.confusion_counts(labels, predicted, 10)
    assert counts.sum() == len(labels) and np.trace(counts) == (predicted == labels).sum()
    assert counts[3, 5] == ((labels == 3) & (predicted == 5)).sum()

    figure = plots.confusion_matrix(labels, probabilities, "champion")
    (axes,) = figure.axes[:1]
    written = {(round(text.get_position()[1]), round(text.get_position()[0])): int(text.get_text()) for text in axes.texts}
    assert written == {cell: count for cell, count in np.ndenumerate(counts) if count}
    assert f"accuracy {(predicted == labels).mean():.4f}" in axes.get_title()

    mistakes = plots.worst_misclassified(images, labels, probabilities, "champion", count=10)
    drawn = tiles_of(mistakes)
    wrong = np.flatnonzero(predicted != labels)
    assert len(drawn) == min(10, len(wrong)) > 0
    confidences = []
    for title, image in drawn:  # title: "true 4  pred 9\np=0.93"
        true, pred = int(title.split()[1]), int(title.split()[3])
        assert true != pred
        index = next(i for i in wrong if labels[i] == true and predicted[i] == pred
                     and np.allclose(image.get_array(), images[i].squeeze()))
        confidences.append(probabilities[index, pred])
    assert confidences == sorted(confidences, reverse=True)  # the most confident mistakes first
    assert min(confidences) >= np.sort(probabilities[wrong, predicted[wrong]])[-len(drawn)]


def test_learning_curves_draw_each_epoch_train_and_validation():
    logs = [{"loss": 1.0, "val_loss": 1.2, "accuracy": 0.6, "val_accuracy": 0.55},
            {"loss": 0.5, "val_loss": 0.7, "accuracy": 0.8, "val_accuracy": 0.75},
            {"loss": 0.3, "val_loss": 0.6, "accuracy": 0.9, "val_accuracy": 0.8}]
    figure = plots.learning_curves([3, 4, 5], logs, "val_accuracy", "trial 7")
    loss, accuracy = figure.axes
    lines = {(axes.get_title(), line.get_label()): (list(line.get_xdata()), list(line.get_ydata()))
             for axes in (loss, accuracy) for line in axes.lines}
    assert lines[("loss", "validation")] == ([3, 4, 5], [1.2, 0.7, 0.6])
    assert lines[("accuracy", "train")] == ([3, 4, 5], [0.6, 0.8, 0.9])

    # A trial whose loss went NaN in its one epoch: nothing to draw on that panel, and it says so.
    nan = float("nan")
    failed = plots.learning_curves([1], [{"loss": nan, "val_loss": nan, "accuracy": 0.1, "val_accuracy": 0.1}],
                                   "val_accuracy", "trial 1")
    loss, accuracy = failed.axes
    assert not loss.lines and loss.texts[0].get_text() == "no finite loss in any epoch"
    assert len(accuracy.lines) == 2 and accuracy.get_legend() is not None


def test_forecast_residuals_and_a_lower_is_better_search():
    import pandas as pd

    times = np.arange("2000-01-01", "2000-03-11", 7, dtype="datetime64[D]")  # 10 weeks
    actual = np.linspace(370.0, 371.0, 10).reshape(-1, 1)
    forecast = actual + np.array([0.5, -0.5] * 5).reshape(-1, 1)
    figure = plots.forecast_against_actual(times, actual, forecast, {"naive_last": actual - 0.2}, "champion")
    top, bottom = figure.axes
    lines = {line.get_label(): line.get_ydata() for line in top.lines}
    assert set(lines) == {"actual", "naive last", "model"}
    np.testing.assert_allclose(lines["model"], forecast.ravel())
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), [0.5, -0.5] * 5)  # the error per step

    histogram = plots.residual_histogram(actual, forecast, "champion")
    (axes,) = histogram.axes
    assert sum(patch.get_height() for patch in axes.patches) == 10
    assert "RMSE 0.5, mean error +0" in axes.get_title()

    # Lower is better: the best so far falls, failed trials sit at the worst score drawn.
    table = pd.DataFrame({"trial": ["0", "1", "2", "3"], "status": ["FINISHED", "FINISHED", "FAILED", "FINISHED"],
                          "best_val_rmse": [0.8, 0.9, np.nan, 0.5]})
    search = plots.objective_by_trial(table, REGRESSION, "search")
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in search.axes[0].lines}
    assert drawn["best so far"] == ([1, 2, 3, 4], [0.8, 0.8, 0.8, 0.5])
    assert drawn["failed / killed"] == ([3], [0.9])


def test_search_figures_panel_per_hyperparameter_over_its_domain():
    import pandas as pd

    table = pd.DataFrame({
        "trial": ["0", "1", "2", "10"], "status": ["FINISHED", "FINISHED", "FAILED", "FINISHED"],
        "best_val_accuracy": [0.9, 0.95, np.nan, 0.97],
        "learning_rate": [0.002, 0.0005, 0.009, 0.004], "activation": ["relu", "tanh", "relu", "sigmoid"],
        "batch_norm": ["True", "False", "True", "True"], "filters_2": [np.nan, 48.0, np.nan, 64.0],
    })
    domains = {"learning_rate": (3e-4, 1e-2, True), "activation": ["relu", "tanh", "sigmoid"],
               "batch_norm": [False, True], "filters_2": [32, 48, 64]}
    figure = plots.hyperparameters_vs_objective(table, "val_accuracy", domains, "search")
    panels = {axes.get_title(): axes for axes in figure.axes if axes.lines}
    assert set(panels) == {"learning_rate", "activation", "batch_norm", "filters_2 (not in 2 trials)"}
    assert panels["learning_rate"].get_xscale() == "log"
    assert [tick.get_text() for tick in panels["activation"].get_xticklabels()] == ["relu", "tanh", "sigmoid"]
    (points,) = panels["activation"].lines
    assert list(points.get_xdata()) == [0, 1, 2] and list(points.get_ydata()) == [0.9, 0.95, 0.97]
    assert list(panels["filters_2 (not in 2 trials)"].lines[0].get_xdata()) == [1, 2]
    assert list(panels["batch_norm"].lines[0].get_xdata()) == [1, 0, 1]

    order = plots.objective_by_trial(table, CLASSIFICATION, "search")
    trials, failed, best_so_far = order.axes[0].lines
    assert list(trials.get_xdata()) == [1, 2, 4] and list(trials.get_ydata()) == [0.9, 0.95, 0.97]  # "10" ran last
    assert list(failed.get_xdata()) == [3]
    assert list(best_so_far.get_ydata()) == [0.9, 0.95, 0.95, 0.97]


def test_a_search_logs_every_plot_as_a_png_artifact(searched_store):
    client = MlflowClient(searched_store.tracking_uri)
    parent = client.get_run(searched_store.result.parent_run_id)
    logged = {artifact.path for artifact in client.list_artifacts(parent.info.run_id, "plots")}
    assert logged == {f"plots/{name}.png" for name in CHAMPION_PLOTS | SEARCH_PLOTS}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3
    for child in children:
        assert [artifact.path for artifact in client.list_artifacts(child.info.run_id, "plots")] == ["plots/learning_curves.png"]
    # Real images on disk, of the size drawn.
    folder = parent.info.artifact_uri.removeprefix("file://")
    for name in CHAMPION_PLOTS | SEARCH_PLOTS:
        pixels = matplotlib.image.imread(f"{folder}/plots/{name}.png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 0.05



def test_a_figure_that_cannot_be_drawn_costs_the_trial_and_the_search_nothing(workdir, small_mnist, tracking_uri, monkeypatch):
    # No real input makes matplotlib fail here: the fault is injected to reach the path that
    # must keep a trained trial when its figure fails.
    def broken(*_args, **_kwargs):
        raise RuntimeError("no font")

    monkeypatch.setattr(plots, "learning_curves", broken)
    monkeypatch.setattr(plots, "objective_by_trial", broken)
    config = ExperimentConfig(name="mnist", model="linear", tuner="random", max_trials=1, epochs=1, final_epochs=0,
                              tracking_uri=tracking_uri)
    result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lambda _line: None)
    client = MlflowClient(tracking_uri)
    (trial,) = client.search_runs([client.get_experiment_by_name("mnist").experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert trial.info.status == "FINISHED" and "best_val_accuracy" in trial.data.metrics
    assert trial.data.tags["nnlab.plot_error"] == "learning curves not drawn: RuntimeError: no font"
    assert result.champion_version == "1"
    # A search figure that fails costs the search as little: a tag, and the other figures are logged.
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["nnlab.plot_error"] == "search_objective_by_trial not drawn: RuntimeError: no font"
    logged = {artifact.path for artifact in client.list_artifacts(result.parent_run_id, "plots")}
    assert "plots/search_hyperparameters.png" in logged and "plots/search_objective_by_trial.png" not in logged

"""Regression: values scored by their RMSE (lower is better) in the data's own units and trained
on their mean squared error (in the target's standard units where the data standardises it);
its trivial baseline the training split's mean; its champion drawn as its forecast on a series'
test period, its predictions against the actual values and its residuals.

nnlab.plots (matplotlib, pandas) and Keras are imported inside functions, the figure functions
and `keras_metrics`, when they run, which `import nnlab.tasks` leaves out.
"""

from __future__ import annotations

import numpy as np

from nnlab.tasks.base import ChampionFigure, Task


def _forecast(_model, dataset, predictions, title):
    from nnlab import plots

    return plots.forecast_against_actual(dataset.test_times, dataset.test[1], predictions, dataset.baselines,
                                         f"{title}: forecast on the test period")


def _predicted_against_actual(_model, dataset, predictions, title):
    from nnlab import plots

    return plots.predicted_against_actual(dataset.test[1], predictions, f"{title}: test predictions")


def _residuals(_model, dataset, predictions, title):
    from nnlab import plots

    return plots.residual_histogram(dataset.test[1], predictions, f"{title}: test residuals")


class Regression(Task):
    figures = (ChampionFigure("forecast", _forecast, ("sequence",)),
               ChampionFigure("predicted_against_actual", _predicted_against_actual),
               ChampionFigure("residuals", _residuals))
    headline = ("rmse", "mae")
    # The training mean, and a series' naive forecasts (nnlab/data/series.py).
    baseline_words = {"mean": "always the training mean", "naive_last": "the window's last value",
                      "naive_seasonal": "the same week a year earlier"}

    def keras_metrics(self) -> list:
        import keras

        # In the data's own units (the model outputs them): what a user reads off a forecast.
        return [keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")]

    def loss_weight(self, spec) -> float | None:
        """1 / the target's variance where the data standardises its target (a table's, an
        array's): the squared error in the target's standard units, so that a weight penalty (a
        table's searched weight_decay, the linear family's L2) weighs against it as it does against
        a classification's cross-entropy, whatever the target's units. Against diabetes' squared
        errors in its own units (a deviation of 77) weight decay 1e-2 was 6,000 times weaker than
        on a standardised target (BENCHMARKS.md, issue 32, fifth part). RMSE and MAE stay in the
        data's units."""
        return None if spec.target_scale is None else 1.0 / float(spec.target_scale[1]) ** 2

    def score(self, targets: np.ndarray, predictions: np.ndarray) -> float:
        """The RMSE of values."""
        targets = np.asarray(targets)
        predictions = np.asarray(predictions)
        errors = predictions.reshape(len(targets), -1).astype(float) - targets.reshape(len(targets), -1)
        return float(np.sqrt(np.mean(errors**2)))

    def example_losses(self, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Each example's mean squared error."""
        targets = np.asarray(targets)
        predictions = np.asarray(predictions, dtype=float)
        errors = predictions.reshape(len(targets), -1) - targets.reshape(len(targets), -1)
        return np.mean(errors**2, axis=1)

    def trivial_baselines(self, dataset) -> dict:
        """The training split's mean ("mean"), for every test example."""
        targets, count = dataset.train[1], len(dataset.test[1])
        mean = np.mean(np.asarray(targets, dtype=np.float64).reshape(len(targets), -1), axis=0)
        return {"mean": np.broadcast_to(mean, (count, mean.size)).astype(np.float32)}


# The objective is val_rmse, not val_loss: the same ranking as the mean squared error when the
# loss is nothing else, but a weight penalty (the linear family's L2) adds to the loss and not to
# it, and it is in the data's units.
REGRESSION = Regression("regression", metric="rmse", direction="min", loss="mean_squared_error")

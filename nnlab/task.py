"""The task a search poses, classification, regression or generation, decides in one place what follows
from it: the loss, the metrics, the KerasTuner objective and its direction, the trial metric
`best_<objective>`, the champion's test metrics and when a champion is better than another,
the leaderboard's order, and which figures the champion gets.

Every module asks the task (`get_task(spec.task)`, or the name a search's run is tagged with)
instead of naming a metric itself. Importing this module loads no TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    name: str
    # The metric the objective is made of, as Keras names it: the history key is val_<metric>,
    # the KerasTuner objective and the MLflow metric the same; the champion's test_<metric>.
    metric: str
    direction: str  # "max" or "min": which way is better
    loss: str  # the Keras loss
    # What the champion is drawn as, beside its learning curves (champion.py draws each kind).
    champion_figures: tuple[str, ...]

    @property
    def objective(self) -> str:
        return f"val_{self.metric}"

    @property
    def best_key(self) -> str:
        """A trial's best epoch's objective, as its run logs it."""
        return f"best_{self.objective}"

    @property
    def test_key(self) -> str:
        return f"test_{self.metric}"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"

    @property
    def further_monitor(self) -> tuple[str, str]:
        """(metric, "min" or "max") the champion's further training watches to cut its learning
        rate, stop and keep its best weights: for classification the validation loss, since
        accuracy on a few hundred images moves in steps of 0.002 and stalls for epochs while the
        loss still falls (BENCHMARKS.md, issue 15); otherwise the objective."""
        if self.name == "classification":
            return "val_loss", "min"
        return self.objective, self.direction

    def keras_metrics(self) -> list:
        """The compiled metrics; built per model (Keras metrics hold state)."""
        import keras

        if self.name == "classification":
            return ["accuracy"]
        if self.name == "generation":
            return []  # what a GAN reports is its hypermodel's (its two losses, fid_mnist per epoch)
        # In the data's own units (the model outputs them): what a user reads off a forecast.
        return [keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")]

    def better(self, candidate: float | None, incumbent: float | None) -> bool:
        """Whether `candidate` beats `incumbent`; anything beats a missing or NaN score."""
        if incumbent is None or math.isnan(incumbent):
            return candidate is not None and not math.isnan(candidate)
        if candidate is None or math.isnan(candidate):
            return False
        return candidate > incumbent if self.higher_is_better else candidate < incumbent

    def best_index(self, values) -> int:
        """The position of the best value (NaN ignored; the first of equals)."""
        values = np.asarray(values, dtype=float)
        return int(np.nanargmax(values) if self.higher_is_better else np.nanargmin(values))

    def best(self, values) -> float:
        return float(np.asarray(values, dtype=float)[self.best_index(values)])

    def running_best(self, values) -> np.ndarray:
        """The best value so far at each position (NaN until the first finite one)."""
        values = np.asarray(values, dtype=float)
        filled = np.where(np.isnan(values), -np.inf if self.higher_is_better else np.inf, values)
        best = np.maximum.accumulate(filled) if self.higher_is_better else np.minimum.accumulate(filled)
        return np.where(np.isinf(best), np.nan, best)

    def score(self, targets: np.ndarray, predictions: np.ndarray) -> float:
        """The task's metric of `predictions` against `targets` (for forecasts that are no model,
        the naive baselines): accuracy of class probabilities, or RMSE of values."""
        targets = np.asarray(targets)
        predictions = np.asarray(predictions)
        if self.name == "classification":
            return float(np.mean(predictions.argmax(axis=-1) == targets.reshape(-1)))
        errors = predictions.reshape(len(targets), -1).astype(float) - targets.reshape(len(targets), -1)
        return float(np.sqrt(np.mean(errors**2)))

    def loss_of(self, targets: np.ndarray, predictions: np.ndarray) -> float:
        """The task's loss of `predictions`, without any model's weight penalty: the
        cross-entropy of class probabilities (clipped as Keras clips them), or the mean squared
        error. Unlike accuracy, it tells apart models that get the same few images right."""
        return float(np.mean(self.example_losses(targets, predictions)))

    def example_losses(self, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Each example's loss (`loss_of` is their mean)."""
        targets = np.asarray(targets)
        predictions = np.asarray(predictions, dtype=float)
        if self.name == "classification":
            chosen = predictions.reshape(len(targets), -1)[np.arange(len(targets)), targets.reshape(-1)]
            return -np.log(np.clip(chosen, 1e-7, 1.0))
        errors = predictions.reshape(len(targets), -1) - targets.reshape(len(targets), -1)
        return np.mean(errors**2, axis=1)


CLASSIFICATION = Task("classification", metric="accuracy", direction="max", loss="sparse_categorical_crossentropy",
                      champion_figures=("confusion_matrix", "misclassified", "first_layer_weights"))
# The objective is val_rmse, not val_loss: the same ranking as the mean squared error when the
# loss is nothing else, but a weight penalty (the linear family's L2) adds to the loss and not to
# it, and it is in the data's units.
REGRESSION = Task("regression", metric="rmse", direction="min", loss="mean_squared_error",
                  champion_figures=("forecast", "predicted_against_actual", "residuals"))
# A generator has no accuracy: its images are scored by how far they lie from held-out real ones
# in an MNIST classifier's feature space (nnlab/quality.py), lower is better. Its loss is its
# hypermodel's own (a GAN's two), and its figures are grids of what it draws.
GENERATION = Task("generation", metric="fid_mnist", direction="min", loss="binary_crossentropy",
                  champion_figures=("samples",))
TASKS = {task.name: task for task in (CLASSIFICATION, REGRESSION, GENERATION)}


def get_task(name: str | None) -> Task:
    """The task of that name; None (a search tracked before tasks existed) is classification."""
    if name is None:
        return CLASSIFICATION
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]

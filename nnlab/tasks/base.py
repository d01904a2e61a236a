"""What every task shares: the objective, trial metric and test metric named from the task's
metric, which way is better (and so the best of several values, the leaderboard's order), the
loss of predictions, how baselines are scored beside the champion, and which of its champion
figures a kind of data can show. Each task (a file beside this one) says the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, NamedTuple

import numpy as np


class ChampionFigure(NamedTuple):
    """A kind of figure the champion is drawn as, beside its learning curves: logged as
    champion_<kind>; `draw` is (model, dataset, test predictions, title) -> Figure."""
    kind: str
    draw: Callable
    # The kinds of data it can draw (DataSpec.kind), for figures that draw the data itself (a
    # table has no pixels to show, nor a time axis); None: any.
    data_kinds: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Task:
    name: str
    # The metric the objective is made of, as Keras names it: the history key is val_<metric>,
    # the KerasTuner objective and the MLflow metric the same; the champion's test_<metric>.
    metric: str
    direction: str  # "max" or "min": which way is better
    loss: str  # the Keras loss
    # What the champion is drawn as, in order (the champion step draws those its data can show).
    figures: ClassVar[tuple[ChampionFigure, ...]] = ()

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
        rate, stop and keep its best weights: the objective, unless the task says otherwise."""
        return self.objective, self.direction

    def keras_metrics(self) -> list:
        """The compiled metrics; built per model (Keras metrics hold state)."""
        raise NotImplementedError

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
        the naive baselines)."""
        raise NotImplementedError

    def loss_of(self, targets: np.ndarray, predictions: np.ndarray) -> float:
        """The task's loss of `predictions`, without any model's weight penalty. Unlike
        accuracy, it tells apart models that get the same few images right."""
        return float(np.mean(self.example_losses(targets, predictions)))

    def example_losses(self, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Each example's loss (`loss_of` is their mean)."""
        raise NotImplementedError

    def trivial_baselines(self, dataset) -> dict:
        """What a model that learnt nothing from the inputs predicts on the test split, for any
        data set of this task, name -> predictions; none unless the task says."""
        return {}

    def baseline_metrics(self, targets, test_metrics: dict, baselines: dict) -> dict:
        """The predictions that are no model (the majority class or the training mean, a series'
        naive forecasts), scored on the test split like the champion: test_<metric>_<name> each,
        and the champion's score over the best of them (RMSE below 1, accuracy above 1: the
        model beats every one of them)."""
        if not baselines:
            return {}
        scores = {name: self.score(targets, predictions) for name, predictions in baselines.items()}
        best = max(scores.values()) if self.higher_is_better else min(scores.values())
        metrics = {f"{self.test_key}_{name}": value for name, value in scores.items()}
        if best:
            metrics[f"{self.test_key}_over_best_baseline"] = test_metrics[self.test_key] / best
        return metrics

    def champion_figures(self, data_kind: str) -> dict[str, Callable]:
        """The champion's figures that data of `data_kind` (DataSpec.kind) can show, in order:
        kind -> (model, dataset, test predictions, title) -> Figure."""
        return {figure.kind: figure.draw for figure in self.figures
                if figure.data_kinds is None or data_kind in figure.data_kinds}

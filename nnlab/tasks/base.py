"""What every task shares: the objective, trial metric and test metric named from the task's
metric, which way is better (and so the best of several values, the leaderboard's order), the
loss of predictions, how baselines are scored beside the champion, the champion's headline in
words, and which of its champion figures a kind of data can show. Each task (a file beside this
one) says the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, NamedTuple

import numpy as np

# What follows test_<metric>_ in a champion's test metrics that is no baseline's name: the best
# trial's and the average's own scores, the refit's and the model chosen on validation, the refit's
# networks without the linear member and that member alone (nnlab/champion.py),
# the ratio to the best baseline.
NOT_BASELINES = ("single", "ensemble", "over_best_baseline", "refit", "validation_chosen", "networks", "linear")


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
    # The champion's test metrics a command prints, test_<name> each (empty: the task's metric);
    # the others stay on the search's run.
    headline: ClassVar[tuple[str, ...]] = ()
    # The baselines scored beside the champion (trivial_baselines, a data set's own), in words.
    baseline_words: ClassVar[dict[str, str]] = {}
    # Its metrics that count something, shown whole (generation's coverage: 10 digits found).
    counts: ClassVar[tuple[str, ...]] = ()

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

    def loss_weight(self, spec) -> float | None:
        """A factor on the loss (Keras' `loss_weights`) for data of `spec`; None: the loss as it is."""
        return None

    def compile_options(self, spec) -> dict:
        """What a model of this task compiles with for data of `spec`: its loss, the loss's
        weight where the task gives one, its metrics."""
        weight = self.loss_weight(spec)
        return {"loss": self.loss, "metrics": self.keras_metrics()} | ({} if weight is None else {"loss_weights": weight})

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

    def headline_metrics(self, test_metrics: dict) -> dict:
        """The champion's headline test metrics it has, test_<name> -> value, in `headline`'s order."""
        keys = [f"test_{name}" for name in self.headline or (self.metric,)]
        return {key: test_metrics[key] for key in keys if test_metrics.get(key) is not None}

    def baseline_scores(self, test_metrics: dict) -> dict:
        """The baselines scored beside the champion (`baseline_metrics`), name -> score."""
        prefix = f"{self.test_key}_"
        return {key[len(prefix):]: value for key, value in test_metrics.items()
                if key.startswith(prefix) and key[len(prefix):] not in NOT_BASELINES
                and value is not None and not math.isnan(value)}

    def headline_text(self, test_metrics: dict) -> str:
        """The champion's headline test metrics, and the best baseline's score beside them in
        words: "test_accuracy 0.9910 (always the most frequent class: 0.1135)"."""
        metrics = self.headline_metrics(test_metrics)
        text = "  ".join(f"{key} {value:.0f}" if key.removeprefix("test_") in self.counts else f"{key} {value:.4f}"
                         for key, value in metrics.items())
        scores = self.baseline_scores(test_metrics)
        if not scores:
            return text
        name = list(scores)[self.best_index(list(scores.values()))]
        words = self.baseline_words.get(name, name.replace("_", " "))
        # The metric named where several stand before it; "the best" where there were several.
        value = f"{scores[name]:.4f}" if list(metrics) == [self.test_key] else f"{self.test_key} {scores[name]:.4f}"
        return f"{text} ({'the best baseline, ' if len(scores) > 1 else ''}{words}: {value})"


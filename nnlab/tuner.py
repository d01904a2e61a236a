"""The tuner: a KerasTuner algorithm whose every trial is a nested MLflow run.

Any of KerasTuner's four tuners gets the TrackedTrials mixin: the trial's active hyperparameters
become the run's params, every epoch's logs its metrics, and the run ends FINISHED or FAILED as
the trial did. KerasTuner keeps its own state under tuning/<experiment>-<model>/, which is what
makes a search resumable.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass

import keras_tuner
import numpy as np

from nnlab.hypermodel import OBJECTIVE

# name -> (KerasTuner tuner class, its oracle class)
ALGORITHMS = {
    "random": (keras_tuner.RandomSearch, keras_tuner.oracles.RandomSearchOracle),
    "bayesian": (keras_tuner.BayesianOptimization, keras_tuner.oracles.BayesianOptimizationOracle),
    "hyperband": (keras_tuner.Hyperband, keras_tuner.oracles.HyperbandOracle),
    "grid": (keras_tuner.GridSearch, keras_tuner.oracles.GridSearchOracle),
}


@dataclass(frozen=True)
class TrialReport:
    """What the user is told when a trial ends."""

    number: int
    planned: int | None
    status: str
    score: float | None
    best_score: float | None
    elapsed_seconds: float
    message: str | None = None


def trial_params(hp) -> dict:
    """The values a trial used: searched ones only where active, plus Hyperband's tuner/* values."""
    searched = {parameter.name for parameter in hp.space}
    return {
        name: value
        for name, value in hp.values.items()
        if name not in searched or hp.is_active(name)
    }


def summarise(histories) -> dict:
    """best_<objective> and its (1-based) epoch; a loss that went NaN or inf fails the trial."""
    history = histories[-1] if isinstance(histories, list) else histories
    losses = np.asarray(history.history.get("loss", []), dtype=float)
    if losses.size and not np.isfinite(losses).all():
        first_bad = int(np.argmin(np.isfinite(losses)))
        raise keras_tuner.errors.FailedTrialError(f"loss became {losses[first_bad]} at epoch {history.epoch[first_bad] + 1}")
    values = np.asarray(history.history[OBJECTIVE], dtype=float)
    best = int(np.nanargmax(values))
    return {f"best_{OBJECTIVE}": float(values[best]), "best_epoch": history.epoch[best] + 1}


def planned_trials(oracle) -> int | None:
    """How many trials the search will run, as far as the algorithm tells in advance."""
    planned = oracle.max_trials
    if isinstance(oracle, keras_tuner.oracles.HyperbandOracle):
        schedule = sum(
            oracle._get_size(bracket, round_number)
            for bracket in range(oracle._get_num_brackets())
            for round_number in range(bracket + 1)
        )
        iterations = oracle.hyperband_iterations
        if math.isfinite(iterations):
            schedule *= int(iterations)
            planned = min(planned, schedule) if planned else schedule
    return planned


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".strip(": ")


@contextlib.contextmanager
def _weights_only_restore():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        yield


class DefaultsFirst:
    """Oracle mixin: a new search's first trial takes the builders' default values, a known-good
    baseline for the search to beat; every later draw is the algorithm's own. (KerasTuner's
    GridSearch starts from the defaults by itself; the other three draw at random.)"""

    def _random_values(self):
        if self.trials:
            return super()._random_values()
        values = keras_tuner.HyperParameters()
        for parameter in self.hyperparameters.space:
            values.merge([parameter])
            if values.is_active(parameter):  # conditional ones only where their condition holds
                values.values[parameter.name] = parameter.default
        return values.values


class TrackedTrials:
    """Mixin for a KerasTuner tuner: one nested MLflow run per trial, one report per finished trial."""

    def __init__(self, oracle, hypermodel, tracker, on_trial_done=None, **kwargs):
        self.tracker = tracker
        self.on_trial_done = on_trial_done
        self._started = time.monotonic()
        self._param_count: int | None = None
        # The algorithms' own constructors only build their oracle; ours comes ready-made.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    # Checkpoints are restored for their weights only (Hyperband's continued trials, the best
    # models): Keras' warning that the fresh optimizer skips the saved one's state is noise.
    def _build_hypermodel(self, hp):
        with _weights_only_restore():
            return super()._build_hypermodel(hp)

    def load_model(self, trial):
        with _weights_only_restore():
            return super().load_model(trial)

    def _try_build(self, hp):
        model = super()._try_build(hp)
        self._param_count = model.count_params()
        return model

    def run_trial(self, trial, *args, **kwargs):
        self._param_count = None
        self.tracker.start_trial(trial.trial_id, trial_params(trial.hyperparameters))
        started = time.monotonic()
        try:
            histories = super().run_trial(trial, *args, **kwargs)
            metrics = summarise(histories)
        except BaseException as error:
            # KeyboardInterrupt is the user stopping the search, anything else a broken trial.
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            self.tracker.end_trial(status, reason=_one_line(error))
            raise
        metrics.update(param_count=self._param_count, train_seconds=time.monotonic() - started)
        self.tracker.end_trial("FINISHED", metrics)
        return histories

    def on_epoch_end(self, trial, model, epoch, logs=None):
        self.tracker.log_metrics(logs or {}, step=epoch + 1)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.on_trial_done is None:
            return
        ended = self.oracle.get_trial(trial.trial_id)
        best = self.oracle.get_best_trials(1)
        best_score = best[0].score if best and best[0].status == "COMPLETED" else None
        self.on_trial_done(
            TrialReport(
                number=self.oracle.start_order.index(trial.trial_id) + 1,
                planned=planned_trials(self.oracle),
                status=ended.status,
                score=ended.score,
                best_score=best_score,
                elapsed_seconds=time.monotonic() - self._started,
                message=(ended.message or "").strip().splitlines()[-1] if ended.message else None,
            )
        )


def make_tuner(config, hypermodel, tracker, directory, fresh: bool = False, on_trial_done=None):
    """The configured KerasTuner algorithm with tracking, resuming from `directory` unless fresh."""
    tuner_class, oracle_class = ALGORITHMS[config.tuner]
    oracle_options = dict(objective=keras_tuner.Objective(OBJECTIVE, direction="max"), seed=config.seed)
    if config.tuner == "hyperband":
        oracle_options.update(max_epochs=config.epochs, factor=config.hyperband_factor)
    oracle = type(f"DefaultsFirst{oracle_class.__name__}", (DefaultsFirst, oracle_class), {})(**oracle_options)
    # KerasTuner's Hyperband takes no trial budget; its oracle honours one all the same.
    oracle.max_trials = config.max_trials
    tracked = type(f"Tracked{tuner_class.__name__}", (TrackedTrials, tuner_class), {})
    return tracked(
        oracle,
        hypermodel,
        tracker=tracker,
        on_trial_done=on_trial_done,
        directory=str(directory),
        project_name=config.tuning_name,
        overwrite=fresh,
    )

"""The tuner: a KerasTuner algorithm whose every trial is a nested MLflow run.

Any of KerasTuner's four tuners gets the TrackedTrials mixin: the trial's active hyperparameters
become the run's params, every epoch's logs its metrics, and the run ends FINISHED, FAILED or
KILLED as the trial did. KerasTuner keeps its own state under tuning/<experiment>-<model>/, which
is what makes a search resumable; the mixin keeps only the best few trial checkpoints there.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import socket
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from nnlab import plots
from nnlab.tracking import TIE_BREAK_METRIC

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
    seconds: float  # this trial's own
    epoch_seconds: float  # one epoch's training and validation, graph tracing left out where it can be
    timed_out: bool = False
    message: str | None = None
    worker: str | None = None  # the worker process that ran it, when trials run in workers


class TooManyFailures(RuntimeError):
    """`max_consecutive_failed_trials` trials failed in a row: the space or the data is broken."""

    def __init__(self, limit: int, failures: list[tuple[str, str]]):
        self.limit, self.failures = limit, failures
        super().__init__(f"{limit} trials failed in a row (max_consecutive_failed_trials = {limit})")


def trial_params(hp) -> dict:
    """The values a trial used: searched ones only where active, plus Hyperband's tuner/* values."""
    searched = {parameter.name for parameter in hp.space}
    return {
        name: value
        for name, value in hp.values.items()
        if name not in searched or hp.is_active(name)
    }


def summarise(histories, task) -> dict:
    """best_<objective> and its (1-based) epoch; a loss that went NaN or inf fails the trial."""
    history = histories[-1] if isinstance(histories, list) else histories
    if not history.history.get(task.objective):
        raise keras_tuner.errors.FailedTrialError(f"no epoch reported {task.objective}")
    for name, values in history.history.items():  # loss, or a GAN's discriminator_loss and generator_loss
        losses = np.asarray(values, dtype=float)
        if name.endswith("loss") and not name.startswith("val_") and not np.isfinite(losses).all():
            first_bad = int(np.argmin(np.isfinite(losses)))
            raise keras_tuner.errors.FailedTrialError(f"{name} became {losses[first_bad]} at epoch {history.epoch[first_bad] + 1}")
    values = history.history[task.objective]
    best = task.best_index(values)
    summary = {task.best_key: float(values[best]), "best_epoch": history.epoch[best] + 1}
    if "val_loss" in history.history and task.objective != "val_loss":  # what ranks ties (RanksTrials)
        summary[TIE_BREAK_METRIC] = float(history.history["val_loss"][best])
    return summary


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


def last_line(message: str | None) -> str | None:
    """A trial's message (KerasTuner keeps the whole traceback) reduced to its last line, the
    error's module path left out: "ResourceExhaustedError: OOM when allocating ..."."""
    lines = (message or "").strip().splitlines()
    return re.sub(r"^(?:\w+\.)+(?=\w+: )", "", lines[-1]) if lines else None


def one_line(error: BaseException) -> str:
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


class RanksTrials:
    """Oracle mixin: trials whose objective ties are ranked by the validation loss at the epoch
    the objective was best (on 400-500 validation images accuracy moves in steps of 0.002 and
    ties are common; the loss tells which is surer). `best_distinct_trials` is what an average
    champion takes in: the best trials of different hyperparameters, since a Hyperband round
    continues an earlier round's model and would put one model in twice at two ages."""

    def get_best_trials(self, num_trials=1):
        completed = [trial for trial in self.trials.values() if trial.status == "COMPLETED"]
        sign = -1 if self.objective.direction == "max" else 1
        completed.sort(key=lambda trial: (sign * trial.score, tie_breaking_loss(trial)))  # stable: ties of both keep trial order
        if len(completed) < num_trials:
            completed += [trial for trial in self.trials.values() if trial.status != "COMPLETED"]
        return completed[:num_trials]

    def best_distinct_trials(self, count: int) -> list:
        chosen, seen = [], set()
        for trial in self.get_best_trials(len(self.trials)):
            if trial.status != "COMPLETED" or len(chosen) == count:
                break
            values = configuration(trial.hyperparameters)
            if values not in seen:
                seen.add(values)
                chosen.append(trial)
        return chosen


def configuration(hyperparameters) -> tuple:
    """A trial's hyperparameter values without Hyperband's bookkeeping (tuner/epochs, tuner/round...)."""
    return tuple(sorted((name, value) for name, value in hyperparameters.values.items() if not name.startswith("tuner/")))


def tie_breaking_loss(trial) -> float:
    """val_loss at the trial's best step; infinity where it has none (a GAN's trials)."""
    if "val_loss" not in trial.metrics.metrics:
        return math.inf
    history = trial.metrics.get_history("val_loss")
    at_best = [observation.mean() for observation in history if observation.step == trial.best_step]
    return float(at_best[0]) if at_best else math.inf


class KeepsWorking:
    """Oracle mixin, outermost: an error inside the oracle (a KerasTuner bug, damaged state) ends
    the search with a reason instead of freezing it. KerasTuner's @synchronized does not release
    the oracle's lock when the method it guards raises: in a chief every later call (the next
    worker's, the chief's own) would wait for it forever, after one worker died of the error.
    Caught inside the lock, the error is kept in `broken`; no further trial is handed out, and
    the chief (nnlab.workers) or run_search reports it."""

    broken: str | None = None

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        if self.broken is None:
            try:
                return super().create_trial(tuner_id)
            except Exception as error:  # noqa: BLE001 - any error: the search cannot go on
                self._break(error)
        return keras_tuner.engine.trial.Trial(self.hyperparameters.copy(), status="STOPPED")

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        try:
            return super().update_trial(trial_id, metrics, step)
        except Exception as error:  # noqa: BLE001
            self._break(error)
            return self.trials.get(trial_id)

    @keras_tuner.synchronized
    def end_trial(self, trial):
        try:
            return super().end_trial(trial)
        except Exception as error:  # noqa: BLE001
            self._break(error)

    def _break(self, error: Exception) -> None:
        where = traceback.extract_tb(error.__traceback__)[-1]
        self.broken = f"{one_line(error)} (in {Path(where.filename).name}, {where.name})"


class KeepsGridOrder:
    """GridSearchOracle mixin: KerasTuner's grid keeps the order of the values it tried and the
    trials whose next combination it has yet to take in memory only (keras-tuner issue 1055):
    reloaded, it has neither, and it stops at once or fails on the first trial it sees again
    (KeyError '4'). Saved with the oracle's state and restored, a resumed grid goes on exactly as
    it would have; state saved without them is rebuilt from the trials, each one's next
    combination taken in start order."""

    def get_state(self):
        state = super().get_state()
        order, index = [], self._ordered_ids._next_index[None]
        while index is not None:  # the linked list from its head
            order.append(self._ordered_ids._memory[index])
            index = self._ordered_ids._next_index[index]
        return state | {"nnlab_grid_order": order, "nnlab_grid_populate_next": list(self._populate_next)}

    def set_state(self, state):
        super().set_state(state)
        order = state.get("nnlab_grid_order")
        populate_next = state.get("nnlab_grid_populate_next")
        if order is None:  # saved before nnlab kept them
            order = sorted(self.start_order, key=functools.cmp_to_key(
                lambda a, b: self._compare(self.trials[a].hyperparameters.values, self.trials[b].hyperparameters.values)))
            populate_next = [trial_id for trial_id in self.start_order if trial_id in self.end_order]
        self._ordered_ids = type(self._ordered_ids)()
        for trial_id in order:
            self._ordered_ids.insert(trial_id)
        self._populate_next = list(populate_next)


class StopsOnRequest:
    """Oracle mixin: `stop_reason`, a callable, may end the search before the algorithm does, and
    so do `max_consecutive_failed_trials` failures in a row (`too_many`). Once either gives a
    reason no trial starts, not even one waiting to be retried."""

    stop_reason = None
    stopped_because: str | None = None
    too_many: TooManyFailures | None = None

    def create_trial(self, tuner_id):
        # Once every planned trial has started the algorithm ends the search itself: a time budget
        # that would not fit another trial must not be named as the reason.
        reason = self.stop_reason() if self.stop_reason is not None and not self.schedule_done() else None
        if self.too_many is not None:
            reason = str(self.too_many)
        if reason and tuner_id not in self.ongoing_trials:
            if self.too_many is None:
                self.stopped_because = reason
            return keras_tuner.engine.trial.Trial(self.hyperparameters.copy(), status="STOPPED")
        return super().create_trial(tuner_id)

    def _check_consecutive_failures(self):
        # KerasTuner raises here, inside end_trial, holding the oracle's lock for good and, in a
        # worker, failing the worker's gRPC call: recorded instead, the search stops at the next
        # create_trial and reports it.
        try:
            super()._check_consecutive_failures()
        except RuntimeError:
            limit = self.max_consecutive_failed_trials
            failed = [self.trials[trial_id] for trial_id in self.end_order[-limit:]]
            self.too_many = TooManyFailures(limit, [(self.number(ended), last_line(ended.message)) for ended in failed])

    def schedule_done(self) -> bool:
        """Every trial the algorithm planned (max_trials, Hyperband's brackets) has been created."""
        planned = planned_trials(self)
        return planned is not None and len(self.trials) >= planned

    def number(self, trial) -> int:
        """The trial's 1-based number in start order, as the user is told."""
        return self.start_order.index(trial.trial_id) + 1


# What a tuner tells its oracle about a trial beside the metrics KerasTuner sends: its timing,
# through KerasTuner's own update_trial, so that it reaches a chief oracle over gRPC too.
TIMING_METRICS = ("nnlab.trial_seconds", "nnlab.epoch_seconds", "nnlab.timed_out")
CHECKPOINT_FILE = "checkpoint.weights.h5"
WORKER_TAG = "nnlab.worker"  # KerasTuner's name for a trial's weights under Keras 3


class ReportsTrials:
    """Oracle mixin: where trials are decided, whether the tuners run in this process or in
    worker processes, each trial that ends is reported once (`on_trial_done`, a TrialReport),
    and the checkpoints no later step needs are deleted. A worker's failure message does not
    travel with KerasTuner's trial; `failure_reason(trial_id)` finds it."""

    on_trial_done = None
    failure_reason = None
    keep_checkpoints = 3
    started = None  # the search's start, time.monotonic()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._trial_started: dict[str, float] = {}  # trial id -> when it was handed out
        self._timings: dict[str, dict] = {}  # trial id -> the TIMING_METRICS its tuner told

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == "RUNNING":
            self._trial_started[trial.trial_id] = time.monotonic()
        return trial

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        metrics = dict(metrics)
        timing = {name: metrics.pop(name) for name in TIMING_METRICS if name in metrics}
        if timing:
            self._timings[trial_id] = timing
        return super().update_trial(trial_id, metrics, step) if metrics else self.trials[trial_id]

    @keras_tuner.synchronized
    def end_trial(self, trial):
        worker = next((tuner_id for tuner_id, ongoing in self.ongoing_trials.items()
                       if ongoing.trial_id == trial.trial_id), None)
        if trial.status in ("FAILED", "INVALID") and not trial.message and self.failure_reason is not None:
            trial.message = self.failure_reason(trial.trial_id)
        super().end_trial(trial)
        self._prune_checkpoints()
        if self.on_trial_done is not None:
            self.on_trial_done(self._report(self.trials[trial.trial_id], worker))

    def _report(self, ended, worker) -> TrialReport:
        now = time.monotonic()
        started = self._trial_started.pop(ended.trial_id, now)
        timing = self._timings.pop(ended.trial_id, {})
        best = self.get_best_trials(1)
        return TrialReport(
            number=self.number(ended),
            planned=planned_trials(self),
            status=ended.status,
            score=ended.score,
            best_score=best[0].score if best and best[0].status == "COMPLETED" else None,
            elapsed_seconds=now - (self.started or now),
            seconds=timing.get("nnlab.trial_seconds", now - started),
            epoch_seconds=timing.get("nnlab.epoch_seconds", 0.0),
            timed_out=bool(timing.get("nnlab.timed_out", 0.0)),
            message=last_line(ended.message),
            worker=worker,
        )

    def _prune_checkpoints(self) -> None:
        keep = protected_trials(self, self.keep_checkpoints)
        for trial_id in self.trials:
            checkpoint = os.path.join(self._project_dir, f"trial_{trial_id}", CHECKPOINT_FILE)
            if trial_id not in keep and os.path.exists(checkpoint):
                os.remove(checkpoint)

    @keras_tuner.synchronized
    def requeue(self, tuner_id: str) -> str | None:
        """The trial a worker that died was running goes back to the queue, for any worker to
        run again (KerasTuner itself does this when it reloads a search); its id, or None."""
        trial = self.ongoing_trials.pop(tuner_id, None)
        if trial is None:
            return None
        self._retry_queue.append(trial.trial_id)
        self.save()
        return trial.trial_id


def protected_trials(oracle, keep: int) -> set[str]:
    """Trials whose checkpoints must stay: the best `keep`, those running, and for Hyperband
    every trial of a bracket still in progress (its next round continues from them)."""
    best = {trial.trial_id for trial in oracle.get_best_trials(keep) if trial.status == "COMPLETED"}
    best |= {trial.trial_id for trial in oracle.best_distinct_trials(keep)}  # an average champion's members
    running = {trial.trial_id for trial in oracle.ongoing_trials.values()}
    brackets = {info["id"] for bracket in getattr(oracle, "_brackets", [])
                for round_trials in bracket["rounds"] for info in round_trials}
    return best | running | brackets


class WorkerRetires(Exception):
    """A worker process has run its share of trials and ends, to be replaced by a fresh one."""


class TrackedTrials:
    """Mixin for a KerasTuner tuner: one nested MLflow run per trial, each trial seeded from the
    search's seed and its number, its timing told to the oracle (ReportsTrials reports it).
    `retire_after`: in a worker process, the trials it runs before it ends (WorkerRetires)."""

    def __init__(self, oracle, hypermodel, tracker, seed: int = 1, interrupted=None,
                 retire_after: int | None = None, **kwargs):
        self.tracker = tracker
        # A callable: has the user asked the search to stop (Ctrl-C, SIGTERM)? The signal's
        # KeyboardInterrupt can land inside TensorFlow, which may turn it into another error or
        # swallow it; this tells the truth either way.
        self.interrupted = interrupted or (lambda: False)
        self.seed = seed
        self.retire_after = retire_after
        self.trials_ended = 0
        self._param_count: int | None = None
        self._last_trial = (0.0, 0.0, False)  # seconds, seconds per epoch, timed out
        self._epoch_ends: list[float] = []
        self._epoch_logs: list[tuple[int, dict]] = []  # (epoch, logs): the trial's learning curves
        # The algorithms' own constructors only build their oracle; ours comes ready-made.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    # Checkpoints are restored for their weights only (Hyperband's continued trials, the best
    # models): Keras' warning that the fresh optimizer skips the saved one's state is noise.
    def _build_hypermodel(self, hp):
        with _weights_only_restore():
            return super()._build_hypermodel(hp)

    def load_model(self, trial):
        # Not KerasTuner's load_model: it would first restore a continued Hyperband trial's
        # parent, whose checkpoint may have been pruned (the trial's own holds all its weights),
        # and it builds through _try_build, which collects garbage twice (0.7 s) to make room for
        # training. A finished trial needs only Keras' naming reset, so that its layers keep
        # their names, and its weights, loaded before compiling: Keras would otherwise build an
        # optimizer just to skip its saved state.
        keras.backend.clear_session(free_memory=False)
        model = self.hypermodel.architecture(trial.hyperparameters)
        model.load_weights(self._get_checkpoint_fname(trial.trial_id))
        return self.hypermodel.compile(trial.hyperparameters, model)

    def _try_build(self, hp):
        model = super()._try_build(hp)
        self._param_count = model.count_params()
        return model

    def run_trial(self, trial, *args, **kwargs):
        self._param_count = None
        self._last_trial = (0.0, 0.0, False)
        # Its own seed: a trial trains the same whether the search ran straight or was resumed.
        keras.utils.set_random_seed(self.seed + int(trial.trial_id))
        # Which worker process ran it, where trials run in workers (KerasTuner's tuner id).
        ran_by = {WORKER_TAG: f"{self.tuner_id}, process {os.getpid()} on {socket.gethostname()}"} if self._is_worker() else {}
        self.tracker.start_trial(trial.trial_id, trial_params(trial.hyperparameters)
                                 | self.hypermodel.run_params(trial.hyperparameters), tags=ran_by)
        started = time.monotonic()
        self._epoch_ends = [started]
        self._epoch_logs = []
        try:
            histories = super().run_trial(trial, *args, **kwargs)
            timed_out = bool(self.hypermodel.timer and self.hypermodel.timer.stopped)
            self._last_trial = (time.monotonic() - started, self._epoch_seconds(), timed_out)
            metrics = summarise(histories, self.hypermodel.task)
        except BaseException as error:
            # KeyboardInterrupt is the user stopping the search, anything else a broken trial.
            self._last_trial = (time.monotonic() - started, self._epoch_seconds(), False)
            if isinstance(error, KeyboardInterrupt) or self.interrupted():
                self.tracker.end_trial("KILLED", reason="stopped by Ctrl-C or SIGTERM; the trial runs again on resume")
                if not isinstance(error, KeyboardInterrupt):
                    raise KeyboardInterrupt from error
            else:
                # The epochs a failed trial did run show how it failed.
                self.tracker.end_trial("FAILED", reason=one_line(error), details=traceback.format_exc(),
                                       tags=self._log_learning_curves(trial))
                self._tell_timing(trial)
            raise
        metrics.update(param_count=self._param_count, train_seconds=self._last_trial[0])
        self.tracker.end_trial("FINISHED", metrics, timed_out=timed_out, tags=self._log_learning_curves(trial))
        self._tell_timing(trial)
        return histories

    def _tell_timing(self, trial) -> None:
        seconds, epoch_seconds, timed_out = self._last_trial
        self.oracle.update_trial(trial.trial_id, dict(zip(TIMING_METRICS, (seconds, epoch_seconds, float(timed_out)))))

    def on_epoch_end(self, trial, model, epoch, logs=None):
        self._epoch_ends.append(time.monotonic())
        self._epoch_logs.append((epoch + 1, dict(logs or {})))
        self.tracker.log_metrics(logs or {}, step=epoch + 1)
        figures = self.hypermodel.epoch_figures(epoch + 1)  # a GAN's sample grid
        if figures:
            images, _errors = plots.draw_all(figures)  # a figure not drawn costs the epoch nothing
            self.tracker.log_images(images)

    def _log_learning_curves(self, trial) -> dict:
        """Draw the trial's curves on its run. A figure that cannot be drawn costs the trial
        nothing: the reason becomes a tag of its run (returned), the run is closed as it ended."""
        if not self._epoch_logs:
            return {}
        epochs, logs = zip(*self._epoch_logs)
        images, errors = plots.draw_all({"learning_curves": lambda: plots.learning_curves(
            list(epochs), list(logs), self.hypermodel.task.objective, f"trial {trial.trial_id}")})
        self.tracker.log_images(images)
        return {"nnlab.plot_error": f"learning curves not drawn: {one_line(errors['learning_curves'])}"} if errors else {}

    def _epoch_seconds(self) -> float:
        """The first epoch also traces the model's graphs (seconds on a CPU): time the later ones."""
        ends = self._epoch_ends
        if len(ends) > 2:
            return (ends[-1] - ends[1]) / (len(ends) - 2)
        return ends[-1] - ends[0] if len(ends) == 2 else 0.0

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle, here or the chief's, records and reports it
        self.trials_ended += 1
        if self.interrupted():  # a signal TensorFlow swallowed: stop now, the trial just ended is saved
            raise KeyboardInterrupt
        if self.retire_after and self.trials_ended >= self.retire_after:
            raise WorkerRetires


def make_tuner(config, hypermodel, tracker, directory, fresh: bool = False, on_trial_done=None, stop_reason=None,
               interrupted=None, retire_after: int | None = None, failure_reason=None):
    """The configured KerasTuner algorithm with tracking, resuming from `directory` unless fresh;
    `stop_reason` (a callable) may end the search early, `interrupted` (a callable) says the user
    stopped it, `on_trial_done` hears of every trial that ends. In a worker process (KerasTuner's
    KERASTUNER_* variables set) the oracle is the chief's, over gRPC, and those three act there."""
    # KerasTuner prints every failed trial's traceback while its DEBUG flag is on (the default);
    # nnlab reports one line and keeps the traceback in the trial's run (failure.txt).
    keras_tuner.src.config.DEBUG = False
    tuner_class, _oracle_class = ALGORITHMS[config.tuner]
    oracle = make_oracle(config, hypermodel.task)
    oracle.stop_reason = stop_reason
    oracle.on_trial_done = on_trial_done
    oracle.failure_reason = failure_reason
    tracked = type(f"Tracked{tuner_class.__name__}", (TrackedTrials, tuner_class), {})
    return tracked(
        oracle,
        hypermodel,
        tracker=tracker,
        seed=config.seed,
        interrupted=interrupted,
        retire_after=retire_after,
        directory=str(directory),
        project_name=config.tuning_name,
        overwrite=fresh,
    )


def make_oracle(config, task):
    """The configured KerasTuner algorithm's oracle with nnlab's mixins, not yet tied to a folder."""
    _tuner_class, oracle_class = ALGORITHMS[config.tuner]
    oracle_options = dict(objective=keras_tuner.Objective(task.objective, direction=task.direction), seed=config.seed,
                          max_consecutive_failed_trials=config.max_consecutive_failed_trials)
    if config.tuner == "hyperband":
        oracle_options.update(max_epochs=config.epochs, factor=config.hyperband_factor)
    grid = (KeepsGridOrder,) if issubclass(oracle_class, keras_tuner.oracles.GridSearchOracle) else ()
    mixins = (KeepsWorking, DefaultsFirst, RanksTrials, StopsOnRequest, ReportsTrials, *grid, oracle_class)
    oracle = type(f"DefaultsFirst{oracle_class.__name__}", mixins, {})(**oracle_options)
    # KerasTuner's Hyperband takes no trial budget; its oracle honours one all the same.
    oracle.max_trials = config.max_trials
    oracle.keep_checkpoints = max(config.keep_checkpoints, config.ensemble)  # an average champion's members too
    oracle.started = time.monotonic()
    return oracle

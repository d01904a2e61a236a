"""What nnlab adds to KerasTuner's oracles, the part of a search that decides its trials (in
this process, or in the chief that worker processes ask over gRPC): `make_oracle` gives the
configured algorithm's oracle these mixins, outermost first:

- KeepsWorking: an error inside the oracle ends the search with a reason instead of freezing it;
- DefaultsFirst: a new search's first trial takes the builders' default values;
- RanksTrials: ties of the objective ranked by the validation loss, and the best trials of
  different hyperparameters (an average champion's members);
- StopsOnRequest: the time budget, a stop requested, or too many failures in a row end it;
- ReportsTrials: each trial that ends reported once, and the checkpoints no later step needs
  deleted;
- KeepsGridOrder (the grid alone): a resumed grid goes on as it would have.
"""

from __future__ import annotations

import functools
import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import keras_tuner

from nnlab.errors import last_line, one_line
from nnlab.formats import counted

# name -> (KerasTuner tuner class, its oracle class): make_oracle takes the oracle, tuner.make_tuner the tuner
ALGORITHMS = {
    "random": (keras_tuner.RandomSearch, keras_tuner.oracles.RandomSearchOracle),
    "bayesian": (keras_tuner.BayesianOptimization, keras_tuner.oracles.BayesianOptimizationOracle),
    "hyperband": (keras_tuner.Hyperband, keras_tuner.oracles.HyperbandOracle),
    "grid": (keras_tuner.GridSearch, keras_tuner.oracles.GridSearchOracle),
}


@dataclass(frozen=True)
class TrialReport:
    """What the user is told when a trial ends."""

    trial_id: str  # its name everywhere: the leaderboard, its run (trial-<id>), the champion's members
    number: int  # how many trials have started, this one included
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
    epochs: int = 0  # the epochs it trained, all its fits together (a Hyperband continuation: those it added)
    fits: int = 1  # its fits: its folds, each as many times as executions_per_trial
    best_trial_id: str | None = None


class TooManyFailures(RuntimeError):
    """`max_consecutive_failed_trials` trials failed in a row: the space or the data is broken."""

    def __init__(self, limit: int, failures: list[tuple[str, str]]):
        self.limit, self.failures = limit, failures
        super().__init__(f"{limit} trials failed in a row (max_consecutive_failed_trials = {limit})")


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


def planned_trials_of(config) -> int | None:
    """planned_trials of `config`'s search before its oracle exists: Hyperband's schedule (capped
    at max_trials), else max_trials (None: no end set)."""
    if config.tuner != "hyperband":
        return config.max_trials
    oracle = keras_tuner.oracles.HyperbandOracle(objective="loss", max_epochs=config.epochs,
                                                 factor=config.hyperband_factor)
    oracle.max_trials = config.max_trials
    return planned_trials(oracle)


def planned_epochs(oracle, epochs: int, from_scratch: bool = False) -> int | None:
    """The epochs the planned trials train in all, at most (early stopping cuts some short):
    Hyperband's schedule in the order it runs it (its most-trial bracket first, each round's
    trials training on from the last round's epoch, or `from_scratch` as cross-validated trials
    do), capped at max_trials; otherwise max_trials trials of `epochs`."""
    planned = planned_trials(oracle)
    if planned is None:
        return None
    if not isinstance(oracle, keras_tuner.oracles.HyperbandOracle):
        return planned * epochs
    schedule = []
    for bracket in reversed(range(oracle._get_num_brackets())):
        for round_number in range(bracket + 1):
            done = oracle._get_epochs(bracket, round_number - 1) if round_number and not from_scratch else 0
            schedule += [oracle._get_epochs(bracket, round_number) - done] * oracle._get_size(bracket, round_number)
    repeats = math.ceil(planned / len(schedule))
    return sum((schedule * repeats)[:planned])


def fit_epochs(oracle, trial_id: str, epochs: int, from_scratch: bool = False) -> int:
    """The epochs a fit of the trial could train at most: its Hyperband round's (continued from
    the last round's epoch unless `from_scratch`), else the experiment's `epochs`."""
    trial = oracle.trials.get(trial_id)
    values = trial.hyperparameters.values if trial is not None else {}
    return values.get("tuner/epochs", epochs) - (0 if from_scratch else values.get("tuner/initial_epoch", 0))


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
        trial = super().create_trial(tuner_id)
        if trial.status == "STOPPED" and not self.schedule_done() and self.stopped_because is None:
            # KerasTuner ends a search whose space yields no values not tried yet, and says nothing:
            # a space of few values (a model with nothing to search, a [space] that fixes the rest).
            self.stopped_because = (f"the search space has no combination of values left untried after "
                                    f"{counted(len(self.trials), 'trial')}")
        return trial

    def _check_consecutive_failures(self):
        # KerasTuner raises here, inside end_trial, holding the oracle's lock for good and, in a
        # worker, failing the worker's gRPC call: recorded instead, the search stops at the next
        # create_trial and reports it.
        try:
            super()._check_consecutive_failures()
        except RuntimeError:
            limit = self.max_consecutive_failed_trials
            failed = [self.trials[trial_id] for trial_id in self.end_order[-limit:]]
            self.too_many = TooManyFailures(limit, [(ended.trial_id, last_line(ended.message)) for ended in failed])

    def schedule_done(self) -> bool:
        """Every trial the algorithm planned (max_trials, Hyperband's brackets) has been created."""
        planned = planned_trials(self)
        return planned is not None and len(self.trials) >= planned

    def number(self, trial) -> int:
        """The trial's 1-based number in start order, as the user is told."""
        return self.start_order.index(trial.trial_id) + 1


# What a tuner tells its oracle about a trial beside the metrics KerasTuner sends: its timing,
# through KerasTuner's own update_trial, so that it reaches a chief oracle over gRPC too.
TIMING_METRICS = ("nnlab.trial_seconds", "nnlab.epoch_seconds", "nnlab.timed_out", "nnlab.trial_epochs",
                  "nnlab.trial_fits")
# A tuner tells its oracle each epoch's end the same way: the epoch and the objective's value,
# taken out before KerasTuner sees them (its trial's metrics are the whole trial's).
PROGRESS_METRICS = ("nnlab.epoch", "nnlab.epoch_objective")
CHECKPOINT_FILE = "checkpoint.weights.h5"  # KerasTuner's name for a trial's weights under Keras 3


class ReportsTrials:
    """Oracle mixin: where trials are decided, whether the tuners run in this process or in
    worker processes, each epoch's end is heard (`on_trial_progress`) and each trial that ends is
    reported once (`on_trial_done`, a TrialReport),
    and the checkpoints no later step needs are deleted. A worker's failure message does not
    travel with KerasTuner's trial; `failure_reason(trial_id)` finds it."""

    on_trial_done = None
    # (trial id, epoch, objective, the trial's planned epochs or None) at each epoch's end,
    # wherever the trial runs: its tuner tells the PROGRESS_METRICS.
    on_trial_progress = None
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
        progress = {name: metrics.pop(name) for name in PROGRESS_METRICS if name in metrics}
        if progress and self.on_trial_progress is not None and trial_id in self.trials:
            epochs = self.trials[trial_id].hyperparameters.values.get("tuner/epochs")  # Hyperband's
            self.on_trial_progress(trial_id, int(progress[PROGRESS_METRICS[0]]), progress.get(PROGRESS_METRICS[1]), epochs)
        return super().update_trial(trial_id, metrics, step) if metrics else self.trials[trial_id]

    @keras_tuner.synchronized
    def end_trial(self, trial):
        worker = next((tuner_id for tuner_id, ongoing in self.ongoing_trials.items()
                       if ongoing.trial_id == trial.trial_id), None)
        if trial.status in ("FAILED", "INVALID") and not trial.message and self.failure_reason is not None:
            trial.message = self.failure_reason(trial.trial_id)
        super().end_trial(trial)
        # KerasTuner saves its state before it lets the trial go from ongoing_trials: the last
        # trial of a search stayed "ongoing" on disk, and a resume ran it again.
        self.save()
        self._prune_checkpoints()
        if self.on_trial_done is not None:
            self.on_trial_done(self._report(self.trials[trial.trial_id], worker))

    def _report(self, ended, worker) -> TrialReport:
        now = time.monotonic()
        started = self._trial_started.pop(ended.trial_id, now)
        timing = self._timings.pop(ended.trial_id, {})
        best = self.get_best_trials(1)
        return TrialReport(
            trial_id=ended.trial_id,
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
            epochs=int(timing.get("nnlab.trial_epochs", 0.0)),
            fits=max(1, int(timing.get("nnlab.trial_fits", 1.0))),
            best_trial_id=best[0].trial_id if best and best[0].status == "COMPLETED" else None,
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

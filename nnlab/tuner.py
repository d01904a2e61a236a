"""The tuner: a KerasTuner algorithm whose every trial is a nested MLflow run.

Any of KerasTuner's four tuners gets the TrackedTrials mixin: the trial's active hyperparameters
become the run's params, every epoch's logs its metrics, and the run ends FINISHED, FAILED or
KILLED as the trial did. KerasTuner keeps its own state under tuning/<experiment>-<model>/, which
is what makes a search resumable; the oracle (nnlab/oracles.py, what nnlab adds to KerasTuner's)
keeps only the best few trial checkpoints there.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import traceback
import warnings

import grpc  # loaded by keras_tuner's import already: its oracle client
import keras
import keras_tuner
from keras_tuner.src.engine import tuner_utils
import numpy as np

from nnlab import plots
from nnlab.data.folds import fold_indices, joined, take
from nnlab.errors import one_line
from nnlab.oracles import ALGORITHMS, PROGRESS_METRICS, TIMING_METRICS, make_oracle
from nnlab.tracking import TIE_BREAK_METRIC
from nnlab.tracking.runs import LOST_REASON, STOPPED_REASON


def epoch_seconds(fits: list[list[float]]) -> float:
    """An epoch's seconds from each fit's start and its epochs' ends (time.monotonic()). A fit's
    first epoch also builds its model and traces its graphs (seconds on a CPU): the later epochs
    of every fit are timed, never across two fits (the gap holds the next one's set-up); where
    every fit trained one epoch, the first epochs whole."""
    later = [end - previous for fit in fits for previous, end in zip(fit[1:], fit[2:])]
    if later:
        return sum(later) / len(later)
    firsts = [fit[1] - fit[0] for fit in fits if len(fit) > 1]
    return sum(firsts) / len(firsts) if firsts else 0.0


def trial_params(hp) -> dict:
    """The values a trial used: searched ones only where active, plus Hyperband's tuner/* values."""
    searched = {parameter.name for parameter in hp.space}
    return {
        name: value
        for name, value in hp.values.items()
        if name not in searched or hp.is_active(name)
    }


def summarise(histories, task) -> dict:
    """best_<objective> and its (1-based) epoch; a loss that went NaN or inf fails the trial. A
    trial of several fits (K folds, or repeats: executions_per_trial) is scored on their mean
    curve (mean_history), with the fits' spread at its best epoch beside it (best_<objective>_std)."""
    fits = histories if isinstance(histories, list) else [histories]
    for history in fits:
        _check_finite(history, task)
    if len(fits) == 1:
        return _fit_summary(fits[0], task)
    summary = _fit_summary(mean_history(fits), task)
    best = summary["best_epoch"] - 1 - fits[0].epoch[0]
    summary[f"{task.best_key}_std"] = float(np.std([history.history[task.objective][best] for history in fits]))
    return summary


def mean_history(histories: list) -> keras.callbacks.History:
    """A trial's fits as one History: each metric's mean over the fits, epoch by epoch, over the
    epochs they all ran (early stopping ends each fold at its own). The trial is then scored at
    one epoch for all its fits, the best of their mean, and that epoch is what its refit trains:
    a fold's own best epoch, chosen on the very rows that score it, flatters every trial, and
    most the one whose curves are noisiest. KerasTuner, handed this History, ranks the trial on
    the same number."""
    length = min(len(history.epoch) for history in histories)
    merged = keras.callbacks.History()
    merged.epoch = list(histories[0].epoch[:length])
    names = [name for name in histories[0].history if all(name in history.history for history in histories)]
    merged.history = {name: [float(value) for value in np.mean(
        [np.asarray(history.history[name][:length], dtype=float) for history in histories], axis=0)]
        for name in names}
    return merged


def _check_finite(history, task) -> None:
    if not history.history.get(task.objective):
        raise keras_tuner.errors.FailedTrialError(f"no epoch reported {task.objective}")
    for name, values in history.history.items():  # loss, or a GAN's discriminator_loss and generator_loss
        losses = np.asarray(values, dtype=float)
        if name.endswith("loss") and not name.startswith("val_") and not np.isfinite(losses).all():
            first_bad = int(np.argmin(np.isfinite(losses)))
            raise keras_tuner.errors.FailedTrialError(f"{name} became {losses[first_bad]} at epoch {history.epoch[first_bad] + 1}")


def _fit_summary(history, task) -> dict:
    values = history.history[task.objective]
    best = task.best_index(values)
    summary = {task.best_key: float(values[best]), "best_epoch": history.epoch[best] + 1}
    if "val_loss" in history.history and task.objective != "val_loss":  # what ranks ties (oracles.RanksTrials)
        summary[TIE_BREAK_METRIC] = float(history.history["val_loss"][best])
    return summary


@contextlib.contextmanager
def _weights_only_restore():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        yield


WORKER_TAG = "nnlab.worker"  # a trial's run: the worker process that ran it


class WorkerRetires(Exception):
    """A worker process has run its share of trials and ends, to be replaced by a fresh one."""


class OracleLost(keras_tuner.errors.FatalError):
    """A worker's call to its chief's oracle failed (TrackedTrials._tell_oracle): the chief is
    gone (killed, its machine down). A FatalError: KerasTuner passes it on rather than count a
    failed trial. `how` the call failed (rpc_words), `fate` what became of the trial it was in."""

    def __init__(self, how: str, fate: str = ""):
        super().__init__(f"{fate} ({how})" if fate else how)
        self.how, self.fate = how, fate


def rpc_words(error: grpc.RpcError) -> str:
    """How a gRPC call failed, in one line: "UNAVAILABLE: failed to connect ..." (its text is
    several lines, the last one ">")."""
    code, details = getattr(error, "code", None), getattr(error, "details", None)
    return f"{code().name}: {details()}" if callable(code) and callable(details) else one_line(error)


class TrackedTrials:
    """Mixin for a KerasTuner tuner: one nested MLflow run per trial, each trial seeded from the
    search's seed and its number, its timing told to the oracle (ReportsTrials reports it).
    `retire_after`: in a worker process, the trials it runs before it ends (WorkerRetires).
    `folds` K of 2 or more: each trial is K fits, one per fold of the training and validation
    rows (nnlab/data/folds.py), scored as their mean (KerasTuner averages several fits' results)."""

    def __init__(self, oracle, hypermodel, tracker, seed: int = 1, interrupted=None,
                 retire_after: int | None = None, folds: int = 0, **kwargs):
        self.tracker = tracker
        self.folds = folds
        self._fold_fits: list[tuple] | None = None  # each fold's (label, fit args, validation), made once
        self._fit_label = ""  # where a trial fits more than once, the prefix of this fit's curves: "fold2/"
        # A callable: has the user asked the search to stop (Ctrl-C, SIGTERM)? The signal's
        # KeyboardInterrupt can land inside TensorFlow, which may turn it into another error or
        # swallow it; this tells the truth either way.
        self.interrupted = interrupted or (lambda: False)
        self.seed = seed
        self.retire_after = retire_after
        self.trials_ended = 0
        self._param_count: int | None = None
        # seconds, seconds per epoch, timed out, epochs of all its fits, fits: TIMING_METRICS
        self._last_trial = (0.0, 0.0, False, 0, 0)
        self._epoch_ends: list[list[float]] = []  # each fit started: its start, then its epochs' ends
        self._epoch_logs: list[tuple[int, dict]] = []  # (epoch, logs): the fit's learning curves
        self._curves: dict[str, list[tuple[int, dict]]] = {}  # a trial of several fits: each fit's, by its label
        # The algorithms' own constructors only build their oracle; ours comes ready-made.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    # Checkpoints are restored for their weights only (Hyperband's continued trials, the best
    # models): Keras' warning that the fresh optimizer skips the saved one's state is noise.
    def _build_hypermodel(self, hp):
        with _weights_only_restore():
            if self.folds:
                # Every fold trains from scratch: a continued Hyperband round's parent checkpoint
                # is one fold's model, which has trained on the other folds' validation rows.
                return keras_tuner.Tuner._build_hypermodel(self, hp)
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
        with _weights_only_restore():  # a builder that compiles its model gave it an optimizer not yet built
            model.load_weights(self._get_checkpoint_fname(trial.trial_id))
        return self.hypermodel.compile(trial.hyperparameters, model)

    def _try_build(self, hp):
        model = super()._try_build(hp)
        self._param_count = model.count_params()
        return model

    def run_trial(self, trial, *args, **kwargs):
        self._param_count = None
        self._last_trial = (0.0, 0.0, False, 0, 0)
        # Its own seed: a trial trains the same whether the search ran straight or was resumed.
        keras.utils.set_random_seed(self.seed + int(trial.trial_id))
        # Which worker process ran it, where trials run in workers (KerasTuner's tuner id).
        ran_by = {WORKER_TAG: f"{self.tuner_id}, process {os.getpid()} on {socket.gethostname()}"} if self._is_worker() else {}
        params = trial_params(trial.hyperparameters)
        self.tracker.start_trial(trial.trial_id, params | self.hypermodel.run_params(trial.hyperparameters), tags=ran_by)
        started = time.monotonic()
        self._epoch_ends = []
        self._epoch_logs, self._curves, self._fit_label = [], {}, ""
        try:
            histories = self._fits(trial, *args, **kwargs)
            if self.interrupted():
                # The signal came while it trained and TensorFlow swallowed its KeyboardInterrupt:
                # the trial stopped at an epoch's end (on_epoch_end) and is KILLED, as Ctrl-C says.
                raise KeyboardInterrupt
            timed_out = bool(self.hypermodel.timer and self.hypermodel.timer.stopped)
            self._last_trial = self._timing(started, timed_out)
            metrics = summarise(histories, self.hypermodel.task)
        except BaseException as error:
            self._last_trial = self._timing(started, False)
            try:
                self._end_unfinished(trial, error)
            except KeyboardInterrupt as stop:
                # The stop landed while a failure was recorded: a worker whose chief is killed sees
                # the oracle's call fail a moment before the SIGTERM that death sends it.
                self.tracker.end_trial("KILLED", reason=STOPPED_REASON)  # where the run is still open
                raise stop from error
            raise
        metrics.update(param_count=self._param_count, train_seconds=self._last_trial[0])
        # What the trial declared as it ran, not known at its start: a HyperModel's own fit's
        # `batch_size` on the first trial that asks for it.
        declared = {name: value for name, value in trial_params(trial.hyperparameters).items() if name not in params}
        self.tracker.end_trial("FINISHED", metrics, timed_out=timed_out, tags=self._log_learning_curves(trial),
                               params=declared)
        self._tell_timing(trial)
        # KerasTuner ranks a trial of several fits on their mean curve too (its own rule would
        # average each fit's best).
        return mean_history(histories) if isinstance(histories, list) and len(histories) > 1 else histories

    def _end_unfinished(self, trial, error: BaseException) -> None:
        """End the run of a trial that raised `error`: KILLED where the user stopped the search
        (KeyboardInterrupt, raised here where the signal came during an error) or a worker lost
        its chief's oracle (OracleLost, raised again with the trial's fate), FAILED where the
        trial broke."""
        if isinstance(error, KeyboardInterrupt) or self.interrupted():
            self.tracker.end_trial("KILLED", reason=STOPPED_REASON)
            if not isinstance(error, KeyboardInterrupt):
                raise KeyboardInterrupt from error
        elif isinstance(error, OracleLost):
            # Not the trial's failure: its end cannot be told, and KerasTuner, whose next call to the
            # oracle would wait --chief-timeout for it, must not go on (a FatalError passes through it).
            self.tracker.end_trial("KILLED", reason=f"{LOST_REASON} ({error.how}); the trial runs again on resume")
            raise OracleLost(error.how, f"trial {trial.trial_id} is marked KILLED and runs again when the search "
                             "resumes") from error
        else:
            # The epochs a failed trial did run show how it failed.
            self.tracker.end_trial("FAILED", reason=one_line(error), details=traceback.format_exc(),
                                   tags=self._log_learning_curves(trial))
            self._tell_timing(trial)

    def _fits(self, trial, *args, **kwargs):
        """The trial's fits: KerasTuner's (one, or executions_per_trial on the validation split), or
        with `folds` one per fold, each repeated executions_per_trial times, every fit from scratch
        and validated on rows it did not train on. KerasTuner's checkpoint keeps the best epoch of
        any fit. Hyperband's round sets each fit's epochs."""
        if not self.folds and self.executions_per_trial == 1:
            self._epoch_ends.append([time.monotonic()])
            return super().run_trial(trial, *args, **kwargs)
        hp = trial.hyperparameters
        if "tuner/epochs" in hp.values:  # Hyperband's round (its own run_trial, bypassed here)
            kwargs["epochs"] = hp.values["tuner/epochs"]
            kwargs["initial_epoch"] = 0 if self.folds else hp.values["tuner/initial_epoch"]
        checkpoint = tuner_utils.SaveBestEpoch(objective=self.oracle.objective,
                                               filepath=self._get_checkpoint_fname(trial.trial_id))
        callbacks = kwargs.pop("callbacks", [])
        fits = self._fold_data(args, kwargs) if self.folds else [("", args, kwargs.get("validation_data"))]
        histories = []
        for execution in range(1, self.executions_per_trial + 1):
            for label, fit_args, validation in fits:
                repeat = f"repeat{execution}/" if self.executions_per_trial > 1 else ""
                self._fit_label, self._epoch_logs = f"{repeat}{label}", []
                self._epoch_ends.append([time.monotonic()])
                fit_kwargs = dict(kwargs, validation_data=validation, callbacks=[
                    *self._deepcopy_callbacks(callbacks), tuner_utils.TunerCallback(self, trial), checkpoint])
                try:
                    histories.append(self._build_and_fit_model(trial, *fit_args, **fit_kwargs))
                finally:  # a fit that failed shows how far it got
                    self._end_fit()
                if self.hypermodel.timer is not None and self.hypermodel.timer.stopped:
                    # Out of time (trial_timeout, the budget): scored on the fits it completed,
                    # the one cut short only where it is the first.
                    return histories[:-1] if len(histories) > 1 else histories
        return histories

    def _fold_data(self, args, kwargs) -> list[tuple]:
        """(label, (inputs, targets), validation) of each fold of the training and validation rows
        the search was given, made once for the search (the same folds for every trial)."""
        if self._fold_fits is None:
            inputs, targets = joined(args[:2], kwargs["validation_data"])
            spec = self.hypermodel.spec
            folds = fold_indices(targets, self.folds, spec.task, spec.kind, self.seed)
            self._fold_fits = [(f"fold{number}/", (take(inputs, train), targets[train]),
                                (take(inputs, validation), targets[validation]))
                               for number, (train, validation) in enumerate(folds, 1)]
        return self._fold_fits

    def _end_fit(self) -> None:
        """A fit of a trial of several has ended: its curves go on the trial's run at once, under its label."""
        if self._epoch_logs:
            self._curves[self._fit_label] = self._epoch_logs
            self.tracker.log_curves(self._epoch_logs, self._fit_label)

    def _tell_timing(self, trial) -> None:
        self._tell_oracle(trial, dict(zip(TIMING_METRICS, map(float, self._last_trial))))

    def _tell_oracle(self, trial, metrics: dict) -> None:
        """The trial's metrics to the oracle: here, or in a worker the chief's over gRPC, where a
        failed call means the chief has gone (it closes its sockets before its workers hear of
        its death): OracleLost, not a broken trial."""
        try:
            self.oracle.update_trial(trial.trial_id, metrics)
        except grpc.RpcError as error:
            raise OracleLost(rpc_words(error)) from error

    def on_epoch_end(self, trial, model, epoch, logs=None):
        if self._epoch_ends:
            self._epoch_ends[-1].append(time.monotonic())
        self._epoch_logs.append((epoch + 1, dict(logs or {})))
        if not self._fit_label:  # a trial of several fits logs each fit's curves at its end (_end_fit)
            self.tracker.log_metrics(logs or {}, step=epoch + 1)
        objective = (logs or {}).get(self.hypermodel.task.objective, math.nan)
        self._tell_oracle(trial, dict(zip(PROGRESS_METRICS, (float(epoch + 1), float(objective)))))
        figures = self.hypermodel.epoch_figures(epoch + 1)  # a GAN's sample grid
        if figures:
            images, _errors = plots.draw_all(figures)  # a figure not drawn costs the epoch nothing
            self.tracker.log_images(images)
        # A signal TensorFlow swallowed, or one that came while the epoch was logged: no further epoch.
        if self.interrupted():
            model.stop_training = True

    def _log_learning_curves(self, trial) -> dict:
        """Draw the trial's curves on its run. A figure that cannot be drawn costs the trial
        nothing: the reason becomes a tag of its run (returned), the run is closed as it ended."""
        objective, title = self.hypermodel.task.objective, f"trial {trial.trial_id}"
        if self._curves:  # a trial of several fits: each one's
            images, errors = plots.draw_all({"learning_curves": lambda: plots.fits_curves(
                self._curves, objective, f"{title}, {len(self._curves)} fits")})
        elif self._epoch_logs:
            epochs, logs = zip(*self._epoch_logs)
            images, errors = plots.draw_all({"learning_curves": lambda: plots.learning_curves(
                list(epochs), list(logs), objective, title)})
        else:
            return {}
        self.tracker.log_images(images)
        return {"nnlab.plot_error": f"learning curves not drawn: {one_line(errors['learning_curves'])}"} if errors else {}

    def _timing(self, started: float, timed_out: bool) -> tuple:
        """The trial's TIMING_METRICS: KerasTuner keeps one value of each metric for the whole
        trial, so its epochs are counted here, where they end."""
        epochs = sum(len(fit) - 1 for fit in self._epoch_ends)
        fits = len(self._epoch_ends)
        return time.monotonic() - started, epoch_seconds(self._epoch_ends), timed_out, epochs, fits

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle, here or the chief's, records and reports it
        self.trials_ended += 1
        if self.interrupted():  # a signal TensorFlow swallowed: stop now, the trial just ended is saved
            raise KeyboardInterrupt
        if self.retire_after and self.trials_ended >= self.retire_after:
            raise WorkerRetires


def make_tuner(config, hypermodel, tracker, directory, fresh: bool = False, on_trial_done=None, stop_reason=None,
               interrupted=None, retire_after: int | None = None, failure_reason=None, on_trial_progress=None,
               folds: int = 0):
    """The configured KerasTuner algorithm with tracking, resuming from `directory` unless fresh;
    `stop_reason` (a callable) may end the search early, `interrupted` (a callable) says the user
    stopped it, `on_trial_done` hears of every trial that ends and `on_trial_progress` of every
    epoch's end; `folds` (pipeline.trial_folds): the folds each trial fits. In a worker process (KerasTuner's
    KERASTUNER_* variables set) the oracle is the chief's, over gRPC, and those three act there."""
    # KerasTuner prints every failed trial's traceback while its DEBUG flag is on (the default);
    # nnlab reports one line and keeps the traceback in the trial's run (failure.txt).
    keras_tuner.src.config.DEBUG = False
    tuner_class, _oracle_class = ALGORITHMS[config.tuner]
    oracle = make_oracle(config, hypermodel.task)
    oracle.stop_reason = stop_reason
    oracle.on_trial_done = on_trial_done
    oracle.on_trial_progress = on_trial_progress
    oracle.failure_reason = failure_reason
    tracked = type(f"Tracked{tuner_class.__name__}", (TrackedTrials, tuner_class), {})
    return tracked(
        oracle,
        hypermodel,
        tracker=tracker,
        seed=config.seed,
        interrupted=interrupted,
        retire_after=retire_after,
        folds=folds,
        executions_per_trial=config.executions_per_trial,
        directory=str(directory),
        project_name=config.tuning_name,
        overwrite=fresh,
    )

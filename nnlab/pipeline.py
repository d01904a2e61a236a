"""The search itself, as a short sequence of named steps: the policy (the data, the family's
policy, the space checked, the budget), opening (the tuner state, the store, the oracle, the
search's run), the trials (here or in worker processes), and the conclusion (the leaderboard,
the figures, the champion registered). `run_search` runs them; `python -m nnlab.search` and
`python -m nnlab.finetune` both call it. TensorFlow and MLflow are imported inside functions
(the steps), so that a config or data mistake is reported without loading them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nnlab import space
from nnlab.accelerators import Acceleration, backend_name, missing_gpus, start_backend
from nnlab.budget import TimeBudget, format_duration
from nnlab.cli import as_typed
from nnlab.config import ExperimentConfig, as_params, named_setting
from nnlab.data import Dataset, load_dataset
from nnlab.data.folds import search_folds
from nnlab.data.types import row_count
from nnlab.errors import ConfigError, SearchError, SearchFailed, WorkersError, one_line
from nnlab.builders import check_builds
from nnlab.formats import counted, wrapped
from nnlab.models import FAMILIES, get_builder
from nnlab.progress import PROGRESS_SECONDS, Narrator, epoch_line, pace_line, trial_line
from nnlab.provenance import provenance_tags
from nnlab.source import load_source
from nnlab.state import open_state, search_lock, set_aside
from nnlab.tasks import get_task
from nnlab.workers import OracleServer, Workers, check_address, check_worker_count, tracking_server

TUNING_ROOT = Path("tuning")


@dataclass(frozen=True)
class SearchResult:
    registered_name: str
    parent_run_id: str
    tracking_uri: str
    leaderboard: object  # pandas.DataFrame
    champion_trial: str  # its trial, or an average champion's trials: "08,00,01"
    champion_version: str
    test_metrics: dict
    promoted: bool | None
    # The version that keeps the alias when this champion is not promoted, and its test score.
    alias_holder: tuple[str, float | None] | None
    newly_registered: bool
    trials_run: int
    stopped_because: str | None = None
    experiment: str = ""  # the MLflow experiment, and the model family searched
    model: str = ""
    task: str = "classification"  # how the scores are ranked (nnlab.tasks)
    experiment_id: str = ""
    # Where the best trials are within one validation example of each other, says so (ties_note).
    ties: str | None = None

    @functools.cached_property
    def champion(self):
        """The registered champion as a Keras model (loaded on first use, from the registry)."""
        from nnlab.tracking import load_registered_model

        return load_registered_model(f"{self.registered_name}/{self.champion_version}", self.tracking_uri)

    @property
    def run_id(self) -> str:
        """The search's MLflow run."""
        return self.parent_run_id

    @property
    def champion_words(self) -> str:
        """What the registered champion is: "trial 05", "the average of trials 08, 00, 02", with
        "and the linear member" where a table's refit averaged it in (nnlab.champion)."""
        trials = self.champion_trial.split(",")
        linear = bool(self.test_metrics.get("linear_member_joined"))
        if len(trials) == 1 and not linear:
            return f"trial {trials[0]}"
        return (f"the average of trial{'s' if len(trials) > 1 else ''} {', '.join(trials)}"
                + (" and the linear member" if linear else ""))

    def __repr__(self) -> str:
        metrics = get_task(self.task).headline_text(self.test_metrics)
        return (f"<SearchResult {self.registered_name} version {self.champion_version}: {self.champion_words}; {metrics}; "
                f"{len(self.leaderboard)} trials; run {self.parent_run_id}>")


def run_search(
    config: ExperimentConfig,
    dataset: Dataset | None = None,
    tuning_root: Path = TUNING_ROOT,
    fresh: bool = False,
    echo=print,
    interrupted=None,
    source=None,
    workers=None,
    started: float | None = None,
    callbacks=(),
) -> SearchResult:
    """Search `config`'s space, one MLflow run per trial, then log and register the champion.
    `interrupted`, a callable, tells whether the user has asked the search to stop: the trial in
    progress then ends KILLED and KeyboardInterrupt is raised, whatever became of the signal's own.
    `source`: the loaded nnlab.source.Source of `config.source` (loaded here when not given).
    `workers`: a nnlab.workers.WorkerPlan to run the trials in worker processes; None: here.
    `started`: where a time budget counts from (time.monotonic; None: now), the command's start.
    `callbacks`: Keras callbacks of a user's, a copy of each in every trial's fits (KerasTuner's
    `search(..., callbacks=)`)."""
    from nnlab.tracking import autologging_off

    search = _Search(config, dataset, Path(tuning_root), echo, interrupted, source, workers, started, callbacks)
    # Closed last, whatever happens: the oracle's server, the tracking server, in that order. An
    # earlier search that this one replaces is put back if this one fails before it has started.
    with search_lock(search.directory), autologging_off(), contextlib.ExitStack() as servers:
        search.open(servers, fresh)
        status = "FAILED"
        # Before each model it builds, KerasTuner collects garbage twice, and building a model
        # or a test pass triggers Python's own full collections: 0.35 s each here, scanning half
        # a million objects (TensorFlow, MLflow, the data) that live as long as the process.
        # Frozen for the search, they are skipped; unfrozen after it, what of them has become
        # garbage is collected as usual.
        gc.freeze()
        try:
            search.run_trials()
            result = search.conclude()
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"  # the trial's own run is KILLED already; KerasTuner reruns it on resume
            search.tuner.save()  # KerasTuner saved at the trial's start; again, in case it stopped between saves
            raise
        finally:
            gc.unfreeze()
            search.tracker.close_search(status, search.stop_tags)
    return result


class _Search:
    """One search's state as its steps build it up; run_search says the order."""

    def __init__(self, config: ExperimentConfig, dataset, tuning_root: Path, echo, interrupted, source, workers,
                 started=None, callbacks=()):
        """The policy step: the data, the family's policy, the space checked against it, the budget,
        and what can be found wrong before anything is created."""
        import keras

        from nnlab.tracking import resolve_tracking_uri

        keras.utils.set_random_seed(config.seed)
        if dataset is None:
            dataset = load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                                   validation_fraction=config.validation_fraction)
        self.config, self.dataset, self.tuning_root, self.echo = config, dataset, tuning_root, Narrator(echo)
        self.interrupted, self.workers, self.callbacks = interrupted, workers, list(callbacks)
        self.source = source_of(config, source)
        policy = hypermodel_policy(config, dataset, self.source)
        family = FAMILIES[config.model]
        if family.code is not None:  # a user's own builder: one build says at once what it cannot do
            check_builds(policy().architecture, family, dataset.train[0][:2])
        try:  # before anything is saved or tracked: a wrong [space] entry leaves no trace
            examples = (dataset.train[0][:2], dataset.train[1][:2])
            space.check(config.space, policy().declaring(examples), config.origin)
        except space.SpaceError as error:
            raise ConfigError(str(error)) from None
        self.hypermodel = policy(space=config.space, trial_timeout=config.trial_timeout)
        self.task = self.hypermodel.task
        self.folds = trial_folds(config, dataset, self.hypermodel)
        self.budget = time_budget(config, dataset, started)
        if self.budget is not None:  # a trial still training when only the ending is left stops
            self.hypermodel.stop_by = self.budget.training_deadline
        self.directory = tuning_root / config.tuning_name
        self.store_uri = resolve_tracking_uri(config.tracking_uri)
        check_before_start(config, workers)
        self.trials_run, self.stop_tags, self.oracle_server = 0, {}, None

    def open(self, servers: contextlib.ExitStack, fresh: bool) -> None:
        """The tuner state, the store (a local server for several writers), the tuner, the
        oracle's server, what the family needs, and the search's run: opened or resumed."""
        from nnlab.tracking import SearchTracker, absolute_uri, ensure_experiment, sqlite_file

        config, workers = self.config, self.workers
        replaced = servers.enter_context(set_aside(self.directory))
        state = open_state(config, self.dataset.source, self.directory, fresh, discard=replaced)
        # Where this process and its workers track: the same file wherever each one runs.
        self.tracking_uri = absolute_uri(self.store_uri) if workers is not None else self.store_uri
        if workers is not None and workers.needs_tracking_server() and sqlite_file(self.store_uri) is not None:
            # Several processes write at once, which SQLite refuses: one server writes for all.
            ensure_experiment(self.store_uri, config.name)
            self.tracking_uri = servers.enter_context(tracking_server(self.store_uri,
                                                                      self.directory / "mlflow-server.log"))
        self.tracker = SearchTracker(config.name, self.tracking_uri, self.dataset)  # touches the store when opened
        self._start_tuner(servers)
        # What the family needs beyond the data (the GAN's judge), before the search's run opens:
        # finding it may itself run a search, which the family is handed (it is below this module).
        family_tags, family_metrics = self.hypermodel.prepare(self.dataset, self.tuning_root, self.echo, run_search)
        resumed = self.tracker.open_search(state.search_id, f"search-{config.tuning_name}",
                                           self._tags(family_tags), as_params(config))
        replaced.started()  # the new search has its run: the one it replaced goes
        self.tracker.log_metrics(family_metrics)
        if state.replaced_search_id:
            self.tracker.close_abandoned(state.replaced_search_id)
        self._say_start(resumed)

    def _say_start(self, resumed: bool) -> None:
        """What is searched, how much, where: two lines, the second the places to look."""
        from nnlab.oracles import planned_epochs, planned_trials

        config, workers = self.config, self.workers
        planned = planned_trials(self.tuner.oracle)
        epochs = planned_epochs(self.tuner.oracle, config.epochs, from_scratch=bool(self.folds))
        fits = max(1, self.folds) * config.executions_per_trial  # each trains the trial's epochs
        how_much = (f", {counted(planned, 'trial')}{f' of {fits} fits' if fits > 1 else ''}, "
                    f"{counted(epochs * fits, 'epoch')} in all at most" if planned and epochs else "")
        where = [config.origin, f"tuner state {self.directory}", f"MLflow run {self.tracker.parent_run_id}"]
        processes = ""
        if self.oracle_server is not None:
            self.tracker.serve_oracle(self.oracle_server.port)
            processes = f", {workers.count} worker process{'es' if workers.count != 1 else ''}"
            where.append(f"oracle {self.oracle_server.host}:{self.oracle_server.port}")
        self.echo(f"{'Resuming' if resumed else 'Starting'} search {config.tuning_name} ({config.tuner}{how_much}"
                  f"{processes})")
        self.echo(wrapped("  " + "; ".join(where)))
        if config.mixed_precision and not start_backend():  # the backend's GPUs, found when it started
            self.echo(wrapped(f"{named_setting(config, 'mixed_precision')} without a GPU: float16 is emulated on the "
                              "CPU, slower than float32 (the default CNN 9 times, the DFN 1.2 times: BENCHMARKS.md); "
                              "it is meant for GPUs"))

    def _start_tuner(self, servers: contextlib.ExitStack) -> None:
        """KerasTuner's tuner, and with workers its oracle served to them. KerasTuner reloads its
        state and builds the model with the space's first values: a space that cannot build, or
        damaged state, stops here, before anything is tracked."""
        from nnlab.tuner import make_tuner

        budget, tracker = self.budget, self.tracker
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's "Reloading Tuner from ..."
                self.tuner = make_tuner(self.config, self.hypermodel, tracker, self.tuning_root, folds=self.folds,
                                        on_trial_done=self._report, on_trial_progress=self._progress,
                                        interrupted=self.interrupted,
                                        stop_reason=budget.stop_reason if budget else None,
                                        failure_reason=tracker.trial_failure if self.workers is not None else None)
        except Exception as error:
            raise SearchFailed(f"cannot start search {self.config.tuning_name}: {one_line(error)} (a [space] value "
                               f"the model cannot be built with? damaged state in {self.directory}? "
                               f"{as_typed('fresh', True)} starts over)") from None
        if self.workers is not None:
            self.tuner.oracle.verbose = 0  # KerasTuner's own trial tables: nnlab prints its line per trial
            self.tuner.save()
            try:
                self.oracle_server = OracleServer(self.tuner.oracle, self.workers.bind)
            except WorkersError as error:
                raise SearchFailed(str(error)) from None
            servers.callback(self.oracle_server.stop)

    def _tags(self, family_tags: dict) -> dict:
        """The search's run's tags: what it searched, with what, on what, and by which code."""
        from nnlab.tracking import TASK_TAG

        config = self.config
        return {
            "nnlab.dataset": config.dataset,
            "nnlab.model": config.model,
            "nnlab.tuner": config.tuner,
            "nnlab.seed": str(config.seed),
            "nnlab.data_source": self.dataset.source,
            TASK_TAG: self.task.name,
            **({"nnlab.builder": config.builder} if config.builder else {}),
        } | (self.source.tags if self.source is not None else {}) | family_tags | provenance_tags()

    def _report(self, trial) -> None:
        """A finished trial's line (nnlab.progress.trial_line); after a new search's first, how
        long the rest will take at its pace."""
        self.trials_run += 1
        if self.budget is not None:
            self._plan_champion(trial)
        several = self.workers is not None and self.workers.count != 1
        self.echo(trial_line(trial, self.task.objective, self._stopped_at(), several))
        if trial.number == 1:
            from nnlab.oracles import fit_epochs, planned_epochs

            config, oracle, from_scratch = self.config, self.tuner.oracle, bool(self.folds)
            workers = self.workers.count if self.workers is not None else 1
            pace = pace_line(trial, planned_epochs(oracle, config.epochs, from_scratch), workers,
                             max(1, config.ensemble), config.final_epochs,
                             fit_epochs(oracle, trial.trial_id, config.epochs, from_scratch),
                             self.budget.left() if self.budget is not None else None)
            if pace:
                self.echo(wrapped(pace))

    def _plan_champion(self, trial) -> None:
        """The budget told the trial's pace and the champion it would have now: its members and
        their further epochs, for what the next trial must leave room for."""
        from nnlab.champion import further_epochs

        # A trial cut short ended in a partial epoch, perhaps before its last fit: its set-up is not told.
        self.budget.record_trial(trial.seconds, trial.epoch_seconds, trial.trial_id,
                                 epochs=0 if trial.timed_out else trial.epochs, fits=trial.fits)
        members = self.tuner.oracle.best_distinct_trials(max(1, self.config.ensemble))
        self.budget.champion_plan = {member.trial_id: further_epochs(self.config, member) for member in members}

    def _stopped_at(self) -> str | None:
        """What stops a trial that runs out of time now: the budget's end, else the trial timeout."""
        budget, timeout = self.budget, self.config.trial_timeout
        if budget is not None and time.monotonic() >= budget.training_deadline() - 1:
            return f"the end of time budget {format_duration(budget.seconds)}"
        return f"trial_timeout {format_duration(timeout)}" if timeout else None

    def _progress(self, trial_id: str, epoch: int, value: float | None, epochs: int | None) -> None:
        """A trial's epoch has ended: said only when nothing has been said for PROGRESS_SECONDS,
        and not for its last epoch (the trial's own line follows at once)."""
        epochs = epochs or self.config.epochs
        if epoch < epochs and self.echo.quiet_for() >= PROGRESS_SECONDS:
            started = self.tuner.oracle.started or time.monotonic()
            self.echo(epoch_line(trial_id, epoch, epochs, self.task.objective, value,
                                 time.monotonic() - started))

    def run_trials(self) -> None:
        """The trials, here or in the workers; a search that cannot go on raises SearchFailed."""
        config, oracle = self.config, self.tuner.oracle
        if self.oracle_server is None:
            self.tuner.search(*self.dataset.train, validation_data=self.dataset.validation, epochs=config.epochs,
                              callbacks=self.callbacks, verbose=0)
            if self.interrupted is not None and self.interrupted():  # a stop recorded, not raised (signals_interrupt)
                raise KeyboardInterrupt
        else:
            try:
                Workers(self.workers, oracle, self.oracle_server, self.tracking_uri, self.tracker.kill_trial,
                        self.echo).run(self.interrupted or (lambda: False))
            except WorkersError as error:
                self.stop_tags = {"nnlab.stopped": str(error)}
                raise SearchFailed(f"search {config.tuning_name} stopped: {error}") from None
        if oracle.broken:  # nnlab.oracles.KeepsWorking
            self.stop_tags = {"nnlab.stopped": oracle.broken}
            raise SearchFailed(f"search {config.tuning_name} stopped: the search's oracle failed: "
                               f"{oracle.broken}; its state is in {self.directory}")
        error = oracle.too_many
        if error is not None:
            self.stop_tags = {"nnlab.stopped": str(error)}
            raise SearchFailed(
                f"search {config.tuning_name} stopped: {error}; fix the cause, then rerun with {as_typed('fresh', True)}",
                [f"trial {number}: {reason}" for number, reason in error.failures],
            )
        if oracle.stopped_because:
            self.stop_tags = {"nnlab.stopped": oracle.stopped_because}
            self.echo(f"No further trials: {oracle.stopped_because}.")

    def conclude(self) -> SearchResult:
        """The leaderboard and the search's figures, then the champion: registered when there is
        anything new since this search's last, else the registered one's record read back."""
        from nnlab.tracking import CHAMPION_TRIAL_TAG, CHAMPION_VERSION_TAG

        config, tracker, task = self.config, self.tracker, self.task
        # The best, and the next best of other hyperparameters an average champion may take in (config.ensemble).
        best_trials = self.tuner.oracle.best_distinct_trials(max(1, config.ensemble))
        if not best_trials:
            raise SearchFailed(f"no trial of {config.tuning_name} finished; nothing to register "
                               "(the FAILED trial runs' nnlab.failure tags say why)")
        leaderboard = tracker.leaderboard(task)
        tracker.log_table(leaderboard, "leaderboard.csv")
        plot_errors = _log_figures(tracker, _search_figures(config, self.tuner, leaderboard, task))
        registered = tracker.search_tag(CHAMPION_VERSION_TAG)
        newly_registered = registered is None or self.trials_run > 0
        if newly_registered:
            champion, errors = self._register(best_trials)
            plot_errors += errors
        else:  # nothing new since the champion of this search was registered
            metrics = tracker.search_metrics()
            champion = (tracker.search_tag(CHAMPION_TRIAL_TAG) or best_trials[0].trial_id,
                        {key: value for key, value in metrics.items() if key.startswith("test_")},
                        registered, None, None)
        if plot_errors:  # a figure costs the search nothing but this tag
            self.stop_tags["nnlab.plot_error"] = "; ".join(plot_errors)
        label, test_metrics, version, promoted, alias_holder = champion
        return SearchResult(
            registered_name=config.tuning_name,
            parent_run_id=tracker.parent_run_id,
            tracking_uri=self.store_uri,  # where the runs stay, not the server that stood in front of it
            leaderboard=leaderboard, champion_trial=label, champion_version=version, test_metrics=test_metrics,
            promoted=promoted, alias_holder=alias_holder, newly_registered=newly_registered,
            trials_run=self.trials_run, stopped_because=self.tuner.oracle.stopped_because, experiment=config.name,
            model=config.model, task=task.name, experiment_id=tracker.experiment_id,
            ties=ties_note(leaderboard, task, self._validation_examples()),
        )

    def _validation_examples(self) -> int:
        """The examples a trial's score is the mean over: the validation split's, or with folds
        every training and validation row (each validated once)."""
        rows = row_count(self.dataset.validation[0]) or 0
        return rows + (row_count(self.dataset.train[0]) or 0) if self.folds else rows

    def _register(self, best_trials) -> tuple[tuple, list[str]]:
        """The champion step (nnlab/champion.py): (label, test metrics, version, promoted, the
        alias's holder when not promoted), and the figures that could not be drawn."""
        from nnlab.champion import register_champion

        champion = register_champion(self.config, self.tuner, best_trials, self.hypermodel, self.dataset,
                                     self.tracker, self.echo, self.budget)
        errors = _log_figures(self.tracker, champion.figures)
        record = champion.record
        holder = None if record.promoted else (record.previous_version, record.previous_test_score)
        return (champion.label, champion.test_metrics, record.version, record.promoted, holder), errors


def ties_note(leaderboard, task, examples: int) -> str | None:
    """Where the best trials' accuracy is within one validation example of the best (1 /
    `examples`): which they are, and that the validation loss ranked them; else None."""
    best = task.best_key
    if task.name != "classification" or not examples or best not in leaderboard or len(leaderboard) < 2:
        return None
    scores = leaderboard[best].astype(float)
    one = 1 / examples
    close = leaderboard["trial"][(scores.iloc[0] - scores).abs() <= one + 1e-9].tolist()
    if len(close) < 2:
        return None
    listed = ", ".join(map(str, close[:-1])) + f" and {close[-1]}"
    return (f"Trials {listed} are within one validation example of each other in {task.objective} "
            f"(1/{examples} = {one:.4f}): ranked on val_loss at their best epochs, not by chance.")


def check_before_start(config: ExperimentConfig, workers=None) -> None:
    """What can be found wrong before anything is created or started: a ConfigError or SearchError
    naming the flag (or key) and value. The workers' count against this machine, the oracle's
    address, and the MLflow store: a server that answers, or a SQLite file that can be written."""
    from nnlab.tracking import is_server, resolve_tracking_uri, server_advice, store_problem

    store_uri = resolve_tracking_uri(config.tracking_uri)
    if config.steps_per_execution > 1 and backend_name() == "torch":  # Keras would raise it at the first fit
        raise ConfigError(f"{named_setting(config, 'steps_per_execution')}: Keras on PyTorch runs one batch a "
                          "call; leave it at 1 there (it is TensorFlow's and JAX's)")
    if workers is not None:
        if workers.count == 0 and not is_server(store_uri):
            raise ConfigError(f"--workers 0 leaves the trials to workers on other machines, which need an MLflow "
                              f"server they all reach: give --tracking-uri http://HOST:PORT, not {store_uri} "
                              "(README: Scaling out)")
        try:
            check_worker_count(workers.count)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        try:
            check_address(workers.bind, listen=True)
        except ValueError as error:
            raise ConfigError(f"--oracle {error}") from None
        if workers.gpus:
            problem = missing_gpus(workers.gpus)  # loads TensorFlow, as the data's loading would
            if problem:
                raise ConfigError(f"--gpus {','.join(workers.gpus)}: {problem}")
    problem = store_problem(store_uri)
    if problem:
        advice = f"; {server_advice()}" if is_server(store_uri) else ", or give --tracking-uri another store"
        raise SearchError(f"{_store_named(config, store_uri)}: {problem}{advice}")


def _store_named(config: ExperimentConfig, store_uri: str) -> str:
    """The MLflow store as the user named it: its flag, its key, its variable, or the default."""
    if config.tracking_uri:  # a flag or the experiment file's key
        return named_setting(config, "tracking_uri")
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return f"MLFLOW_TRACKING_URI={store_uri}"
    return f"the MLflow store {store_uri}"


def time_budget(config: ExperimentConfig, dataset: Dataset, started: float | None) -> TimeBudget | None:
    """The search's TimeBudget where it has one: its members' further epochs, and their passes over
    the test and validation splits at the end in epochs of training."""
    if not config.time_budget:
        return None
    rows = [row_count(split[0]) for split in (dataset.train, dataset.validation, dataset.test)]
    train, validation, test = (count or 0 for count in rows)
    # A prediction costs about a fifth of a training step's example (no gradients, no
    # augmentation, larger batches): a third over-reserved (BENCHMARKS.md, issue 30).
    passes = (test + validation) / (5 * train + validation) if train else 0.0
    return TimeBudget(config.time_budget, final_epochs=config.final_epochs, members=max(1, config.ensemble),
                      prediction_epochs=passes, started=started)


def trial_folds(config: ExperimentConfig, dataset: Dataset, hypermodel) -> int:
    """The folds each trial fits (nnlab/data/folds.py): the experiment's cross_validation, else
    by the data's size; none for a family whose trials are not scored on validation rows (the
    GAN's), which refuses a cross_validation or refit asked of it."""
    if not hypermodel.cross_validates:
        for key in ("cross_validation", "refit"):
            if getattr(config, key):
                raise ConfigError(f"{named_setting(config, key)}: the {config.model} family's trials are scored by "
                                  "its judge, not on validation rows; it cannot be cross-validated or refit")
        return 0
    folds = search_folds(config.cross_validation, dataset.train, dataset.validation, dataset.spec, config.seed)
    if config.linear_member and not folds:
        raise ConfigError(f"{named_setting(config, 'linear_member')}: the linear member is chosen on the search's "
                          "folds; this search has none (set cross_validation to 2 or more)")
    return folds


def source_of(config: ExperimentConfig, source=None):
    """The transfer family's source model, loaded unless given."""
    if config.source is not None and source is None:
        return load_source(config.source, config.tracking_uri)
    return source


def hypermodel_policy(config: ExperimentConfig, dataset: Dataset, source):
    """make_hypermodel for this experiment, waiting for its space and trial timeout; each model it
    builds, built under the experiment's dtype policy (mixed precision or not)."""
    from nnlab.policies import make_hypermodel

    return partial(make_hypermodel, config.model, get_builder(config.model, source), dataset.spec, config.batch_size,
                   config.patience, source, config.tracking_uri, accelerate=Acceleration.from_config(config))


def _log_figures(tracker, figures: dict) -> list[str]:
    """Draw the figures and log them on the search's run; returns why any could not be drawn."""
    from nnlab import plots

    images, errors = plots.draw_all(figures)
    tracker.log_images(images)
    return [f"{name} not drawn: {one_line(error)}" for name, error in errors.items()]


def _search_figures(config, tuner, leaderboard, task) -> dict:
    """The shape of the search, the objective trial by trial and per searched hyperparameter:
    name -> a function that draws it."""
    from keras_tuner.engine import hyperparameters as kinds

    from nnlab import plots

    domains = {}
    for parameter in tuner.oracle.hyperparameters.space:
        if isinstance(parameter, (kinds.Choice, kinds.Boolean)):
            domains[parameter.name] = list(parameter.values) if isinstance(parameter, kinds.Choice) else [False, True]
        elif isinstance(parameter, (kinds.Int, kinds.Float)):  # a [space] entry that fixes a value searches nothing
            domains[parameter.name] = (parameter.min_value, parameter.max_value, parameter.sampling == "log")
    title = f"search {config.tuning_name} ({config.tuner}, {len(leaderboard)} trials)"
    return {
        "search_objective_by_trial": partial(plots.objective_by_trial, leaderboard, task, title),
        "search_hyperparameters": partial(plots.hyperparameters_vs_objective, leaderboard, task.objective, domains, title),
    }

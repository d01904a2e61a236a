"""`python -m nnlab.search EXPERIMENT`: search, track every trial, register the champion.

`run_search(config, ...)` is the library entry point; `main` parses the command line, turns
every user mistake into one line on stderr and exit code 2, and prints the results.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nnlab import cli, space
from nnlab.budget import TimeBudget, format_duration, parse_duration
from nnlab.config import TUNER_NAMES, ConfigError, ExperimentConfig, as_params, load_config
from nnlab.data import DataError, Dataset, load_dataset
from nnlab.models import family_names
from nnlab.provenance import provenance_tags
from nnlab.source import SourceError
from nnlab.state import SearchError, open_state, search_lock, set_aside
from nnlab.workers import DEFAULT_TRIALS_PER_WORKER

PROG = "nnlab.search"  # how messages to the user begin
TUNING_ROOT = Path("tuning")

__all__ = ["SearchError", "SearchFailed", "SearchResult", "run_search", "main"]


class SearchFailed(RuntimeError):
    """The search ran but cannot produce a champion: no trial finished, or too many failed."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []


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
    task: str = "classification"  # how the scores are ranked (nnlab.task)
    experiment_id: str = ""


def run_search(
    config: ExperimentConfig,
    dataset: Dataset | None = None,
    tuning_root: Path = TUNING_ROOT,
    fresh: bool = False,
    echo=print,
    interrupted=None,
    source=None,
    workers=None,
) -> SearchResult:
    """Search `config`'s space, one MLflow run per trial, then log and register the champion.
    `interrupted`, a callable, tells whether the user has asked the search to stop: the trial in
    progress then ends KILLED and KeyboardInterrupt is raised, whatever became of the signal's own.
    `source`: the loaded nnlab.source.Source of `config.source` (loaded here when not given).
    `workers`: a nnlab.workers.WorkerPlan to run the trials in worker processes; None: here."""
    # Imported here so that a config or data mistake is reported without loading TensorFlow.
    import keras

    from nnlab.champion import register_champion
    from nnlab.tracking import (CHAMPION_TRIAL_TAG, CHAMPION_VERSION_TAG, TASK_TAG, SearchTracker, absolute_uri,
                                ensure_experiment, resolve_tracking_uri, sqlite_file)
    from nnlab.tuner import make_tuner, one_line
    from nnlab.workers import OracleServer, Workers, WorkersError, tracking_server

    keras.utils.set_random_seed(config.seed)
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                               validation_fraction=config.validation_fraction)
    source = _source(config, source)
    policy = _hypermodel_policy(config, dataset, source)
    try:  # before anything is saved or tracked: a wrong [space] entry leaves no trace
        space.check(config.space, policy().build, config.origin)
    except space.SpaceError as error:
        raise ConfigError(str(error)) from None
    hypermodel = policy(space=config.space, trial_timeout=config.trial_timeout)
    task = hypermodel.task
    # The champion step's worst case: each member of an average trained on for final_epochs.
    budget = TimeBudget(config.time_budget, config.final_epochs * max(1, config.ensemble)) if config.time_budget else None

    directory = Path(tuning_root) / config.tuning_name
    store_uri = resolve_tracking_uri(config.tracking_uri)
    check_before_start(config, workers)
    # Closed last, whatever happens: the oracle's server, the tracking server, in that order. An
    # earlier search that this one replaces is put back if this one fails before it has started.
    with search_lock(directory), contextlib.ExitStack() as servers:
        replaced = servers.enter_context(set_aside(directory))
        state = open_state(config, dataset.source, directory, fresh, discard=replaced)
        # Where this process and its workers track: the same file wherever each one runs.
        tracking_uri = absolute_uri(store_uri) if workers is not None else store_uri
        if workers is not None and workers.needs_tracking_server() and sqlite_file(store_uri) is not None:
            # Several processes write at once, which SQLite refuses: one server writes for all.
            ensure_experiment(store_uri, config.name)
            tracking_uri = servers.enter_context(tracking_server(store_uri, directory / "mlflow-server.log"))
        tracker = SearchTracker(config.name, tracking_uri, dataset)  # touches the store only when opened
        trials_run = 0

        def report(trial):
            nonlocal trials_run
            trials_run += 1
            if budget is not None:
                budget.record_trial(trial.seconds, trial.epoch_seconds)
            of = f"/{trial.planned}" if trial.planned else ""
            if trial.worker is not None and workers is not None and workers.count != 1:
                of += f" [{trial.worker}]"
            result = (f"{task.objective} {trial.score:.4f}" if trial.status == "COMPLETED"
                      else f"{trial.status}: {trial.message or 'no reason given'}")
            if trial.timed_out:
                result += f" (stopped at trial_timeout {format_duration(config.trial_timeout)})"
            best = f"best {trial.best_score:.4f}" if trial.best_score is not None else "best -"
            echo(f"trial {trial.number}{of}  {result}  {best}  elapsed {format_duration(trial.elapsed_seconds)}")

        # KerasTuner reloads its state and builds the model with the space's first values: a space
        # that cannot build, or damaged state, stops here, before anything is tracked.
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's "Reloading Tuner from ..."
                tuner = make_tuner(config, hypermodel, tracker, tuning_root, on_trial_done=report,
                                   interrupted=interrupted, stop_reason=budget.stop_reason if budget else None,
                                   failure_reason=tracker.trial_failure if workers is not None else None)
        except Exception as error:
            raise SearchFailed(f"cannot start search {config.tuning_name}: {one_line(error)} (a [space] value the "
                               f"model cannot be built with? damaged state in {directory}? --fresh starts over)") from None
        oracle_server = None
        if workers is not None:
            tuner.oracle.verbose = 0  # KerasTuner's own trial tables: nnlab prints its line per trial
            tuner.save()
            try:
                oracle_server = OracleServer(tuner.oracle, workers.bind)
            except WorkersError as error:
                raise SearchFailed(str(error)) from None
            servers.callback(oracle_server.stop)
        # What the family needs beyond the data (the GAN's judge), before the search's run opens:
        # finding it may itself run a search, which the family is handed (it is below this module).
        family_tags, family_metrics = hypermodel.prepare(dataset, tuning_root, echo, run_search)
        tags = {
            "nnlab.dataset": config.dataset,
            "nnlab.model": config.model,
            "nnlab.tuner": config.tuner,
            "nnlab.seed": str(config.seed),
            "nnlab.data_source": dataset.source,
            TASK_TAG: task.name,
        } | (source.tags if source is not None else {}) | family_tags | provenance_tags()
        resumed = tracker.open_search(state.search_id, f"search-{config.tuning_name}", tags, as_params(config))
        replaced.started()  # the new search has its run: the one it replaced goes
        tracker.log_metrics(family_metrics)
        if state.replaced_search_id:
            tracker.close_abandoned(state.replaced_search_id)
        where = ""
        if oracle_server is not None:
            tracker.serve_oracle(oracle_server.port)
            count = f"{workers.count} worker process{'es' if workers.count != 1 else ''}"
            where = f", {count}, oracle on {oracle_server.host}:{oracle_server.port}"
        echo(f"{'Resuming' if resumed else 'Starting'} search {config.tuning_name} ({config.tuner}, "
             f"{config.origin}{where}); tuner state in {directory}, MLflow run {tracker.parent_run_id}")

        status, stop_tags = "FAILED", {}
        # Before each model it builds, KerasTuner collects garbage twice, and building a model
        # or a test pass triggers Python's own full collections: 0.35 s each here, scanning half
        # a million objects (TensorFlow, MLflow, the data) that live as long as the process.
        # Frozen for the search, they are skipped; unfrozen after it, what of them has become
        # garbage is collected as usual.
        gc.freeze()
        try:
            if oracle_server is None:
                tuner.search(*dataset.train, validation_data=dataset.validation, epochs=config.epochs, verbose=0)
            else:
                try:
                    Workers(workers, tuner.oracle, oracle_server, tracking_uri, tracker.kill_trial, echo).run(
                        interrupted or (lambda: False))
                except WorkersError as error:
                    stop_tags = {"nnlab.stopped": str(error)}
                    raise SearchFailed(f"search {config.tuning_name} stopped: {error}") from None
            if tuner.oracle.broken:  # nnlab.tuner.KeepsWorking
                stop_tags = {"nnlab.stopped": tuner.oracle.broken}
                raise SearchFailed(f"search {config.tuning_name} stopped: the search's oracle failed: "
                                   f"{tuner.oracle.broken}; its state is in {directory}")
            error = tuner.oracle.too_many
            if error is not None:
                stop_tags = {"nnlab.stopped": str(error)}
                raise SearchFailed(
                    f"search {config.tuning_name} stopped: {error}; fix the cause, then rerun with --fresh",
                    [f"trial {number}: {reason}" for number, reason in error.failures],
                )
            stopped_because = tuner.oracle.stopped_because
            if stopped_because:
                stop_tags = {"nnlab.stopped": stopped_because}
                echo(f"No further trials: {stopped_because}.")
            # The best, and the next best of other hyperparameters an average champion may take in (config.ensemble).
            best_trials = tuner.oracle.best_distinct_trials(max(1, config.ensemble))
            if not best_trials:
                raise SearchFailed(f"no trial of {config.tuning_name} finished; nothing to register "
                                   "(the FAILED trial runs' nnlab.failure tags say why)")
            registered_name = config.tuning_name
            leaderboard = tracker.leaderboard(task)
            tracker.log_table(leaderboard, "leaderboard.csv")
            plot_errors = _log_figures(tracker, _search_figures(config, tuner, leaderboard, task))

            registered = tracker.search_tag(CHAMPION_VERSION_TAG)
            newly_registered = registered is None or trials_run > 0
            if newly_registered:
                champion = register_champion(config, tuner, best_trials, hypermodel, dataset, tracker, echo,
                                             budget.deadline() if budget else None)
                champion_trial = champion.label
                plot_errors += _log_figures(tracker, champion.figures)
                record, test_metrics = champion.record, champion.test_metrics
                version, promoted = record.version, record.promoted
                alias_holder = None if promoted else (record.previous_version, record.previous_test_score)
            else:  # nothing new since the champion of this search was registered
                champion_trial = tracker.search_tag(CHAMPION_TRIAL_TAG) or best_trials[0].trial_id
                metrics = tracker.search_metrics()
                test_metrics = {key: value for key, value in metrics.items() if key.startswith("test_")}
                version, promoted, alias_holder = registered, None, None
            if plot_errors:  # a figure costs the search nothing but this tag
                stop_tags["nnlab.plot_error"] = "; ".join(plot_errors)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"  # the trial's own run is KILLED already; KerasTuner reruns it on resume
            tuner.save()  # KerasTuner saved at the trial's start; again, in case it stopped between saves
            raise
        finally:
            gc.unfreeze()
            tracker.close_search(status, stop_tags)
    return SearchResult(
        registered_name=registered_name,
        parent_run_id=tracker.parent_run_id,
        tracking_uri=store_uri,  # where the runs stay, not the server that stood in front of it
        leaderboard=leaderboard,
        champion_trial=champion_trial,
        champion_version=version,
        test_metrics=test_metrics,
        promoted=promoted,
        alias_holder=alias_holder,
        newly_registered=newly_registered,
        trials_run=trials_run,
        stopped_because=stopped_because,
        experiment=config.name,
        model=config.model,
        task=task.name,
        experiment_id=tracker.experiment_id,
    )


def check_before_start(config: ExperimentConfig, workers=None) -> None:
    """What can be found wrong before anything is created or started: a ConfigError or SearchError
    naming the flag (or key) and value. The workers' count against this machine, the oracle's
    address, and the MLflow store: a server that answers, or a SQLite file that can be written."""
    from nnlab.tracking import resolve_tracking_uri, store_problem
    from nnlab.workers import check_address, check_worker_count

    store_uri = resolve_tracking_uri(config.tracking_uri)
    if workers is not None:
        if workers.count == 0 and not store_uri.startswith(("http://", "https://")):
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
            from nnlab.accelerators import missing_gpus

            problem = missing_gpus(workers.gpus)  # loads TensorFlow, as the data's loading would
            if problem:
                raise ConfigError(f"--gpus {','.join(workers.gpus)}: {problem}")
    problem = store_problem(store_uri)
    if problem:
        advice = ("; start it first, or give --tracking-uri the address of one that runs"
                  if store_uri.startswith("http") else ", or give --tracking-uri another store")
        raise SearchError(f"{_store_named(config, store_uri)}: {problem}{advice}")


def _store_named(config: ExperimentConfig, store_uri: str) -> str:
    """The MLflow store as the user named it: its flag, its key, its variable, or the default."""
    import os

    if "tracking_uri" in getattr(config, "flags", ()):
        return f"--tracking-uri {store_uri}"
    if config.tracking_uri:
        return f"{config.origin}: tracking_uri = {store_uri!r}"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return f"MLFLOW_TRACKING_URI={store_uri}"
    return f"the MLflow store {store_uri}"


def _source(config: ExperimentConfig, source=None):
    """The transfer family's source model, loaded unless given."""
    from nnlab.source import load_source

    if config.source is not None and source is None:
        return load_source(config.source, config.tracking_uri)
    return source


def _hypermodel_policy(config: ExperimentConfig, dataset: Dataset, source):
    """make_hypermodel for this experiment, waiting for its space and trial timeout; Keras'
    dtype policy set for the process (mixed precision or not) before any model is built."""
    from nnlab.accelerators import Acceleration
    from nnlab.policies import make_hypermodel
    from nnlab.models import get_builder

    accelerate = Acceleration.from_config(config)
    accelerate.activate()
    return partial(make_hypermodel, config.model, get_builder(config.model, source), dataset.spec, config.batch_size,
                   config.patience, source, config.tracking_uri, accelerate=accelerate)


def run_worker(config: ExperimentConfig, dataset: Dataset, oracle: str, worker_id: str, trials_each: int = 0,
               tuning_root: Path = TUNING_ROOT, interrupted=None) -> int:
    """A worker of the search a chief serves at `oracle` (HOST:PORT): KerasTuner's tuner asks
    the chief for trials and runs them, each a nested run of the chief's search run, until the
    chief has none left (returns 0) or this worker has run `trials_each` (returns
    nnlab.workers.WORKER_RETIRED: the chief starts a fresh process in its place)."""
    import os

    import keras

    from nnlab.state import check_state
    from nnlab.tracking import SearchTracker
    from nnlab.tuner import WorkerRetires, make_tuner
    from nnlab.workers import WORKER_RETIRED, quiet_trial_protos, split_address, wait_while_idle, worker_environment

    keras.utils.set_random_seed(config.seed)
    directory = Path(tuning_root) / config.tuning_name
    check_state(config, dataset.source, directory)
    check_before_start(config)  # the store answers: MLflow would otherwise retry for minutes
    source = _source(config)
    hypermodel = _hypermodel_policy(config, dataset, source)(space=config.space, trial_timeout=config.trial_timeout)
    tracker = SearchTracker(config.name, config.tracking_uri, dataset)
    _host, port = split_address(oracle)
    if not tracker.attach(f"search-{config.tuning_name}", port):
        raise SearchError(f"no running search {config.tuning_name} with its oracle on port {port} in "
                          f"{tracker.tracking_uri}: start the chief first, and give its workers the chief's tracking URI")
    hypermodel.prepare(dataset, tuning_root, lambda _line: None)  # found already: the chief prepared it
    os.environ.update(worker_environment(worker_id, oracle))  # what makes KerasTuner's tuner a worker
    with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's "Reloading Tuner from ..."
        tuner = make_tuner(config, hypermodel, tracker, tuning_root, interrupted=interrupted,
                           retire_after=trials_each or None)
    wait_while_idle(tuner.oracle)
    quiet_trial_protos()
    gc.freeze()  # as in run_search: the long-lived objects are left out of every collection
    try:
        tuner.search(*dataset.train, validation_data=dataset.validation, epochs=config.epochs, verbose=0)
    except WorkerRetires:
        return WORKER_RETIRED
    finally:
        gc.unfreeze()
    return 0


def _log_figures(tracker, figures: dict) -> list[str]:
    """Draw the figures and log them on the search's run; returns why any could not be drawn."""
    from nnlab import plots
    from nnlab.tuner import one_line

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


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.Parser(
        short_name=PROG,
        prog="python -m nnlab.search",
        description="Search network architectures with KerasTuner, track every trial in MLflow, "
        "register the best model.",
    )
    parser.add_argument("experiment", help="a name (experiments/NAME.toml, else the built-in default "
                        "for that data set: mnist, co2, digits, wine, breast_cancer, diabetes, fashion_mnist, cifar10) or a path to a "
                        "TOML file (a CSV or an image folder is named in one)")
    # The transfer family starts from a source model: python -m nnlab.finetune names it.
    parser.add_argument("--model", choices=family_names(searchable_only=True), help="model family (default: the data set's own, "
                        "mnist: cnn, co2: lstm)")
    parser.add_argument("--tuner", choices=TUNER_NAMES, help="search algorithm (default: hyperband)")
    parser.add_argument("--max-trials", type=cli.positive, help="most trials to run (Hyperband: cap on its schedule)")
    parser.add_argument("--epochs", type=cli.positive, help="most epochs per trial (Hyperband's max_epochs)")
    parser.add_argument("--seed", type=cli.whole_number, help="random seed for data split, search and training")
    parser.add_argument("--data-dir", help=cli.DATA_DIR_HELP)
    parser.add_argument("--tracking-uri", help=cli.TRACKING_URI_HELP)
    parser.add_argument("--time-budget", type=_duration, help="wall-clock limit for this run, e.g. 900, 15m, 1h: "
                        "no trial starts that would not finish in time, and the champion is still registered")
    parser.add_argument("--ensemble", type=cli.whole_number, help="average the best K trials of different "
                        "hyperparameters into one model, registered unless the best alone is surely better on validation "
                        "(default 3, the GAN 0; 0: the best alone)")
    parser.add_argument("--fresh", action="store_true", help="discard the saved tuner state and start a new search")
    scale = parser.add_argument_group("worker processes and machines (README: Scaling out)")
    scale.add_argument("--workers", type=cli.whole_number, default=1,
                       help="worker processes on this machine that run the trials (default 1; with several and "
                       "the default SQLite store, a local mlflow server writes for them all)")
    scale.add_argument("--worker-trials", type=cli.whole_number, default=DEFAULT_TRIALS_PER_WORKER,
                       help="trials a worker process runs before a fresh one replaces it, so that memory stays "
                       f"flat (default {DEFAULT_TRIALS_PER_WORKER}; 0: never)")
    scale.add_argument("--role", choices=("chief", "worker"), default="chief",
                       help="chief (default): serve the search and start --workers; worker: run trials for the "
                       "chief at --oracle")
    scale.add_argument("--oracle", metavar="HOST:PORT", help="chief: where to listen for workers (default "
                       "127.0.0.1 and a free port); worker: the chief's address")
    scale.add_argument("--worker-id", help="a worker's name, unique among the chief's workers (default: "
                       "worker-HOSTNAME); a worker restarted under its name takes its unfinished trial back")
    scale.add_argument("--gpus", help="GPU numbers handed to the workers in turn, e.g. 0,1 or 0,0 (default: each "
                       "worker its own where there are several, else all)")
    scale.add_argument("--mixed-precision", action="store_true", default=None,
                       help="float16 computation with float32 variables (mixed_precision in the TOML)")
    scale.add_argument("--jit", action="store_true", default=None, dest="jit_compile",
                       help="XLA-compile every model (jit_compile; default: Keras' own choice, XLA where a GPU is)")
    scale.add_argument("--steps-per-execution", type=cli.positive,
                       help="batches per call into the compiled training step (steps_per_execution; default 1)")
    return parser.parse_args(argv)


def _print_results(result: SearchResult, echo=print) -> None:
    from nnlab.report import render
    from nnlab.tracking import DEFAULT_TRACKING_URI, runs_page

    echo(f"\nLeaderboard (best first, {min(15, len(result.leaderboard))} of {len(result.leaderboard)} trials):")
    echo(render(result.leaderboard.head(15), "table"))
    test = "  ".join(f"{key} {value:.4f}" for key, value in result.test_metrics.items())
    trials = result.champion_trial.split(",")
    which = f"trial {trials[0]}" if len(trials) == 1 else f"the average of trials {', '.join(trials)}"
    echo(f"\nChampion: {which}, {test}")
    if not result.newly_registered:
        echo(f"No new trials: {result.registered_name} version {result.champion_version} stays as registered.")
    elif result.promoted:
        echo(f"Registered {result.registered_name} version {result.champion_version}; alias champion now points to it.")
    else:
        from nnlab.task import get_task

        holder, score = result.alias_holder
        held = f" ({get_task(result.task).test_key} {score:.4f})" if score is not None else ""
        echo(f"Registered {result.registered_name} version {result.champion_version}; alias champion stays "
             f"on version {holder}{held}, which tested better.")
    store = result.tracking_uri
    env = "" if store == DEFAULT_TRACKING_URI else f"MLFLOW_TRACKING_URI={store} "
    page = runs_page("http://127.0.0.1:5000", result.experiment_id or "0")
    echo(f"Browse: {env}python -m nnlab.ui   (or: mlflow ui --backend-store-uri {store}); then open {page}")
    echo(f"Report: {env}python -m nnlab.report {result.experiment} --model {result.model}")
    echo(f"Load:   {env}python -c \"import nnlab; print(nnlab.load_model('{result.registered_name}').summary())\"")


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM stops the search the way Ctrl-C does: the trial's run is marked KILLED, state
    kept. Further signals are ignored while that clean-up runs. Yields the signal received."""
    received: list[int] = []

    def interrupt(number, _frame):
        received.append(number)
        # A handler that does nothing, not SIG_IGN: a signal already on its way (a worker gets
        # the terminal's Ctrl-C and its chief's SIGTERM together) would otherwise meet SIG_IGN
        # and Python report "Signal 15 ignored due to race condition" with a traceback.
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, lambda *_ignored: None)
        raise KeyboardInterrupt

    previous = {name: signal.signal(name, interrupt) for name in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


# The options that define what a worker runs: a chief hands its own to the workers it starts.
WORKER_OPTIONS = ("model", "tuner", "max_trials", "epochs", "seed", "data_dir", "mixed_precision", "jit_compile",
                  "steps_per_execution")


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {key: getattr(args, key) for key in (*WORKER_OPTIONS, "tracking_uri", "time_budget", "ensemble")}
    if args.role == "worker":
        return _worker_main(args, overrides)
    try:
        plan = _worker_plan(args)
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    def search(interrupted) -> SearchResult:
        config = load_config(args.experiment, overrides)
        check_before_start(config, plan)  # before TensorFlow and the data load: a mistake is said at once
        return run_search(config, load_data(PROG, config), fresh=args.fresh, interrupted=interrupted, workers=plan)

    return run_command(PROG, "nnlab.search", argv, search, "the trial in progress is marked KILLED and runs again "
                       "on resume, finished trials are kept. Resume with")


def _worker_plan(args):
    """The chief's WorkerPlan from the command line; ValueError for a mistake in it."""
    from nnlab.workers import WorkerPlan, split_address

    if args.worker_id is not None:
        raise ValueError("--worker-id is for --role worker")
    for flag, value in (("--workers", args.workers), ("--worker-trials", args.worker_trials)):
        if value < 0:
            raise ValueError(f"{flag} {value}: must be 0 or more")
    if args.workers == 0 and args.oracle is None:
        raise ValueError("--workers 0 leaves the trials to workers on other machines: give --oracle HOST:PORT "
                         "for them to reach")
    bind = args.oracle or "127.0.0.1:0"
    try:
        split_address(bind)
    except ValueError as error:
        raise ValueError(f"--oracle {error}") from None
    gpus = tuple(part.strip() for part in args.gpus.split(",")) if args.gpus else ()
    if not all(gpu.isdigit() for gpu in gpus):
        raise ValueError(f"--gpus {args.gpus!r}: GPU numbers separated by commas, e.g. 0,1")
    command = [sys.executable, "-m", "nnlab.search", args.experiment]
    for key in WORKER_OPTIONS:
        value = getattr(args, key)
        flag = cli.flag_name(key)
        if value is True:  # a switch
            command.append(flag)
        elif value is not None:
            command += [flag, str(value)]
    return WorkerPlan(count=args.workers, command=tuple(command), trials_each=args.worker_trials, bind=bind, gpus=gpus)


def _worker_main(args, overrides) -> int:
    import socket

    from nnlab.workers import check_address, die_with_chief

    die_with_chief()
    if args.oracle is None:
        print(f"{PROG}: error: --role worker needs --oracle HOST:PORT, the chief's address", file=sys.stderr)
        return 2
    try:
        check_address(args.oracle, listen=False)
    except ValueError as error:
        print(f"{PROG}: error: --oracle {error}", file=sys.stderr)
        return 2
    worker_id = args.worker_id or f"worker-{socket.gethostname()}"

    def work(interrupted) -> int:
        config = load_config(args.experiment, overrides)
        return run_worker(config, load_data(PROG, config, quiet=True), args.oracle, worker_id, args.worker_trials,
                          interrupted=interrupted)

    return run_command(PROG, "nnlab.search", None, work, None)


def load_data(prog: str, config: ExperimentConfig, quiet: bool = False) -> Dataset:
    """The experiment's data, its notices and its size said to the user (unless `quiet`: a
    worker's chief has said them); TensorFlow started first, quietly, and the GPUs it found named
    (nnlab/accelerators.py)."""
    from nnlab.accelerators import start_tensorflow

    start_tensorflow(echo=None if quiet else lambda line: print(f"{prog}: {line}"))
    if quiet:  # Keras' own "Downloading data from ..." too
        with contextlib.redirect_stdout(io.StringIO()):
            return load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                                validation_fraction=config.validation_fraction)
    dataset = load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    for notice in dataset.notices:
        print(f"{prog}: {notice}")
    print(f"{prog}: data {dataset.source}: {len(dataset.train[0])} train, "
          f"{len(dataset.validation[0])} validation, {len(dataset.test[0])} test")
    return dataset


def run_command(prog: str, module: str, argv, work, stopped: str | None) -> int:
    """What nnlab's searching commands share around `work(interrupted) -> SearchResult`: every
    user mistake one line and exit code 2, a search that cannot finish exit code 1, Ctrl-C or
    SIGTERM 128 + the signal with `stopped` and the command to run again, else the results.
    A worker's `work` returns its exit code instead, and stops without a word (stopped None)."""
    started = time.monotonic()
    with _signals_interrupt() as received:
        try:
            result = work(lambda: bool(received))
        except (ConfigError, DataError, SearchError, SourceError) as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except SearchFailed as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            for line in error.details:
                print(f"{prog}:   {line}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            number = received[0] if received else signal.SIGINT
            if stopped is not None:
                again = shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
                print(f"\n{prog}: stopped by {signal.Signals(number).name}; {stopped}: {again}", file=sys.stderr)
            return 128 + number
    if isinstance(result, int):
        return result
    _print_results(result)
    print(f"Done in {format_duration(time.monotonic() - started)} ({result.trials_run} trials run now).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

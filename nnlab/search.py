"""`python -m nnlab.search EXPERIMENT`: search, track every trial, register the champion.
From Python, `nnlab.search(...)` calls nnlab.api.search (help(nnlab.api.search)); this module,
called, calls it.

`main` parses the command line and hands the search (nnlab.api.run, what `nnlab.search(...)`
runs too) to nnlab.commands.run_command, which turns every user mistake into one line on stderr
and exit code 2 and prints the results; `run_worker` is a worker process's side. Keras, KerasTuner and MLflow are
imported inside functions, so that `--help` and a mistake in the arguments answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import socket
import sys
import time
from pathlib import Path

from nnlab import cli
from nnlab.budget import format_duration, parse_duration
from nnlab.api import WORKER_OPTIONS, callable_module, run, search, worker_plan
from nnlab.commands import load_data, run_command
from nnlab.config import TUNER_NAMES, ExperimentConfig, load_config
from nnlab.data import Dataset
from nnlab.errors import ConfigError, SearchError, SearchFailed, print_error
from nnlab.models import family_names
from nnlab.pipeline import (TUNING_ROOT, SearchResult, check_before_start, hypermodel_policy, run_search, source_of,
                            trial_folds)
from nnlab.state import check_state
from nnlab.workers import (DEFAULT_CHIEF_TIMEOUT, DEFAULT_TRIALS_PER_WORKER, WORKER_RETIRED, answer_within,
                           check_address, die_with_chief, quiet_trial_protos, split_address, wait_while_idle,
                           worker_environment)

PROG = "nnlab.search"  # how messages to the user begin

__all__ = ["SearchError", "SearchFailed", "SearchResult", "run_search", "main"]


def run_worker(config: ExperimentConfig, dataset: Dataset, oracle: str, worker_id: str, trials_each: int = 0,
               tuning_root: Path = TUNING_ROOT, interrupted=None, chief_timeout: float = DEFAULT_CHIEF_TIMEOUT) -> int:
    """A worker of the search a chief serves at `oracle` (HOST:PORT): KerasTuner's tuner asks
    the chief for trials and runs them, each a nested run of the chief's search run, until the
    chief has none left (returns 0) or this worker has run `trials_each` (returns
    nnlab.workers.WORKER_RETIRED: the chief starts a fresh process in its place). A call the
    chief leaves unanswered for `chief_timeout` seconds ends the worker: the chief has gone."""
    import grpc
    import keras

    from nnlab.tracking import SearchTracker
    from nnlab.tuner import OracleLost, WorkerRetires, make_tuner, rpc_words

    keras.utils.set_random_seed(config.seed)
    directory = Path(tuning_root) / config.tuning_name
    check_state(config, dataset.source, directory)
    check_before_start(config)  # the store answers: MLflow would otherwise retry for minutes
    source = source_of(config)
    hypermodel = hypermodel_policy(config, dataset, source)(space=config.space, trial_timeout=config.trial_timeout)
    tracker = SearchTracker(config.name, config.tracking_uri, dataset)
    _host, port = split_address(oracle)
    if not tracker.attach(f"search-{config.tuning_name}", port):
        raise SearchError(f"no running search {config.tuning_name} with its oracle on port {port} in "
                          f"{tracker.tracking_uri}: start the chief first, and give its workers the chief's tracking URI")
    hypermodel.prepare(dataset, tuning_root, lambda _line: None)  # found already: the chief prepared it
    os.environ.update(worker_environment(worker_id, oracle))  # what makes KerasTuner's tuner a worker
    with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's "Reloading Tuner from ..."
        tuner = make_tuner(config, hypermodel, tracker, tuning_root, interrupted=interrupted,
                           retire_after=trials_each or None, folds=trial_folds(config, dataset, hypermodel))
    answer_within(tuner.oracle, chief_timeout)
    wait_while_idle(tuner.oracle)
    quiet_trial_protos()
    gc.freeze()  # as in run_search: the long-lived objects are left out of every collection
    try:
        tuner.search(*dataset.train, validation_data=dataset.validation, epochs=config.epochs, verbose=0)
    except WorkerRetires:
        return WORKER_RETIRED
    # gRPC's details (an address, a socket error) go on a line of their own: they run long.
    except OracleLost as error:  # nnlab's call, in a trial: said with what became of it
        raise SearchFailed(f"the chief's oracle at {oracle} stopped answering" + (f"; {error.fate}" if error.fate else ""),
                           details=[_waited(error.how, chief_timeout)]) from None
    except grpc.RpcError as error:  # KerasTuner's, between trials
        raise SearchFailed(f"the chief's oracle at {oracle} stopped answering",
                           details=[_waited(rpc_words(error), chief_timeout)]) from None
    finally:
        gc.unfreeze()
    return 0


def _waited(how: str, chief_timeout: float) -> str:
    """gRPC's words for a failed call, and for one that waited out its deadline, how long that was."""
    if how.startswith("DEADLINE_EXCEEDED"):
        return f"{how}: no answer in {format_duration(chief_timeout)} (--chief-timeout)"
    return how


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
    parser.add_argument("--tuner", choices=TUNER_NAMES, help="search algorithm (default: hyperband; a table's random)")
    parser.add_argument("--max-trials", type=cli.positive, help="most trials to run (Hyperband: cap on its schedule; default 20, a table's 10)")
    parser.add_argument("--epochs", type=cli.positive, help="most epochs per trial (Hyperband's max_epochs; "
                        "default 6, a table's 60)")
    parser.add_argument("--final-epochs", type=cli.whole_number, help="most epochs the champion trains on after "
                        "the search (0: none; default 20, the CNN's 6, a GAN's 40, a table's 0, in proportion where "
                        "--epochs is below its default: round(default x epochs / default epochs), e.g. a DFN's "
                        "--epochs 2: 7)")
    parser.add_argument("--seed", type=cli.whole_number, help="random seed for data split, search and training")
    parser.add_argument("--data-dir", help=cli.DATA_DIR_HELP)
    parser.add_argument("--tracking-uri", help=cli.TRACKING_URI_HELP)
    parser.add_argument("--time-budget", type=_duration, help="wall-clock limit for this run, e.g. 900, 15m, 1h: "
                        "no trial starts that would not finish in time, and the champion is still registered")
    parser.add_argument("--ensemble", type=cli.whole_number, help="average the best K trials of different "
                        "hyperparameters into one model, registered unless the best alone is surely better on validation "
                        "(default 3, the GAN 0; 0: the best alone)")
    parser.add_argument("--cross-validation", type=cli.whole_number, metavar="K",
                        help="score each trial as the mean of K fits on K folds of the training and validation rows, "
                        "and refit the champion on all of them (default: 5 for a table under 2,000 rows, else 0: "
                        "one validation split)")
    parser.add_argument("--executions-per-trial", type=cli.positive, metavar="N",
                        help="fit each trial (each fold) N times from different initial weights and score the mean "
                        "(KerasTuner's setting; default 1)")
    parser.add_argument("--fresh", action="store_true", help="discard the saved tuner state and start a new search")
    _scaling_flags(parser.add_argument_group("worker processes and machines (README: Scaling out)"))
    return parser.parse_args(argv)


def _scaling_flags(scale) -> None:
    """The flags of worker processes, machines and accelerators."""
    scale.add_argument("--workers", type=cli.whole_number,
                       help="worker processes on this machine that run the trials (default: none, the trials run in "
                       "this process, where the search plans no more than --worker-trials of them, else 1; with "
                       "several and the default SQLite store, a local mlflow server writes for them all)")
    scale.add_argument("--worker-trials", type=cli.whole_number, default=DEFAULT_TRIALS_PER_WORKER,
                       help="trials a worker process runs before a fresh one replaces it, so that memory stays "
                       f"flat (default {DEFAULT_TRIALS_PER_WORKER}; 0: never)")
    scale.add_argument("--role", choices=("chief", "worker"), default="chief",
                       help="chief (default): serve the search and start --workers; worker: run trials for the "
                       "chief at --oracle")
    scale.add_argument("--oracle", metavar="HOST:PORT", help="chief: where to listen for workers (default "
                       "127.0.0.1 and a free port); worker: the chief's address")
    scale.add_argument("--chief-timeout", type=_duration, metavar="DURATION",
                       help="worker: how long a call to the chief's oracle may go unanswered before the worker takes "
                       "the chief for gone, ends its trial KILLED and exits, e.g. 90, 5m (default "
                       f"{format_duration(DEFAULT_CHIEF_TIMEOUT)}; KerasTuner's own: an hour)")
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


def main(argv=None) -> int:
    started = time.monotonic()  # a --time-budget is the whole command's (the 0.4 s of Python's start aside)
    args = parse_args(argv)
    overrides = {key: getattr(args, key) for key in (*WORKER_OPTIONS, "final_epochs", "tracking_uri", "time_budget",
                                                     "ensemble")}
    if args.role == "worker":
        return _worker_main(args, overrides)
    for flag, value in (("--worker-id", args.worker_id), ("--chief-timeout", args.chief_timeout)):
        if value is not None:
            print_error(PROG, f"{flag} is for --role worker")
            return 2
    try:
        plan = worker_plan(args.experiment, overrides, args.workers, args.worker_trials, args.oracle, args.gpus)
    except ConfigError as error:
        print_error(PROG, error)
        return 2

    def search(interrupted) -> SearchResult:
        return run(args.experiment, overrides, fresh=args.fresh, workers=plan, interrupted=interrupted,
                   started=started)

    return run_command(PROG, "nnlab.search", argv, search, "the trial in progress is marked KILLED and runs again "
                       "on resume, finished trials are kept. Resume with")


def _worker_main(args, overrides) -> int:
    die_with_chief()
    if args.oracle is None:
        print_error(PROG, "--role worker needs --oracle HOST:PORT, the chief's address")
        return 2
    try:
        check_address(args.oracle, listen=False)
    except ValueError as error:
        print_error(PROG, f"--oracle {error}")
        return 2
    worker_id = args.worker_id or f"worker-{socket.gethostname()}"

    def work(interrupted) -> int:
        config = load_config(args.experiment, overrides)
        return run_worker(config, load_data(PROG, config, quiet=True), args.oracle, worker_id, args.worker_trials,
                          interrupted=interrupted, chief_timeout=args.chief_timeout or DEFAULT_CHIEF_TIMEOUT)

    return run_command(PROG, "nnlab.search", None, work, None)


callable_module(__name__, search)  # nnlab.search(...) calls the library function, this module imported or not

if __name__ == "__main__":
    sys.exit(main())

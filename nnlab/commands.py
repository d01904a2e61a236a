"""What the searching commands (`nnlab.search`, `nnlab.finetune`) share: the data's first load
with its notices, `run_command` around the work (every user mistake one line and exit code 2,
Ctrl-C and SIGTERM a clean stop with the command to run again), and the results printed.
MLflow is imported inside functions, so that a user's mistake is said before it loads."""

from __future__ import annotations

import contextlib
import io
import shlex
import signal
import sys
import time

from nnlab.accelerators import start_tensorflow
from nnlab.budget import format_duration
from nnlab.config import ExperimentConfig
from nnlab.data import Dataset, load_dataset
from nnlab.errors import USER_ERRORS, SearchFailed, print_error
from nnlab.formats import render
from nnlab.pipeline import SearchResult
from nnlab.tasks import get_task


def load_data(prog: str, config: ExperimentConfig, quiet: bool = False) -> Dataset:
    """The experiment's data, its notices and its size said to the user (unless `quiet`: a
    worker's chief has said them); TensorFlow started first, quietly, and the GPUs it found named
    (nnlab/accelerators.py)."""
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
    with signals_interrupt() as received:
        try:
            result = work(lambda: bool(received))
        except USER_ERRORS as error:
            print_error(prog, error)
            return 2
        except SearchFailed as error:
            print_error(prog, error, error.details)
            return 1
        except KeyboardInterrupt:
            number = received[0] if received else signal.SIGINT
            if stopped is not None:
                again = shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
                print(f"\n{prog}: stopped by {signal.Signals(number).name}; {stopped}: {again}", file=sys.stderr)
            return 128 + number
    if isinstance(result, int):
        return result
    print_results(result)
    print(f"Done in {format_duration(time.monotonic() - started)} ({result.trials_run} trials run now).")
    return 0


def print_results(result: SearchResult, echo=print) -> None:
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
def signals_interrupt():
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

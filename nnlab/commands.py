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
import textwrap
import time

from nnlab.accelerators import start_backend
from nnlab.budget import format_duration
from nnlab.config import ExperimentConfig
from nnlab.data import Dataset, load_dataset
from nnlab.errors import USER_ERRORS, SearchFailed, print_error
from nnlab.formats import TERMINAL_WIDTH, counted, fitted, wrapped
from nnlab.pipeline import SearchResult
from nnlab.tasks import get_task


def load_data(prog: str, config: ExperimentConfig, quiet: bool = False, echo=print) -> Dataset:
    """The experiment's data, its notices and its size said to the user (unless `quiet`: a
    worker's chief has said them); the Keras backend started first, quietly, and the GPUs it found named
    (nnlab/accelerators.py)."""
    start_backend(echo=None if quiet else lambda line: echo(f"{prog}: {line}"))
    if quiet:  # Keras' own "Downloading data from ..." too
        with contextlib.redirect_stdout(io.StringIO()):
            return load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                                validation_fraction=config.validation_fraction)
    dataset = load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    say_data(prog, dataset, echo)
    return dataset


def say_data(prog: str, dataset: Dataset, echo=print) -> None:
    """The data's notices and its size. A notice or a data set's description runs long (co2's:
    its source, gaps, split, window)."""
    for notice in dataset.notices:
        echo(wrapped(f"{prog}: {notice}"))
    echo(wrapped(f"{prog}: data {dataset.source}: {len(dataset.train[0])} train, "
                 f"{len(dataset.validation[0])} validation, {len(dataset.test[0])} test"))


def run_command(prog: str, module: str, argv, work, stopped: str | None) -> int:
    """What nnlab's searching commands share around `work(interrupted) -> SearchResult`: every
    user mistake one line and exit code 2, a search that cannot finish exit code 1, Ctrl-C or
    SIGTERM 128 + the signal with `stopped` and the command to run again, else the results.
    A worker's `work` returns its exit code instead, and stops without a word (stopped None)."""
    started = time.monotonic()
    # Each line as it is said, also into a file or a pipe (Python buffers those by the block):
    # a log shows where the search is, not where it was minutes ago.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
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
                print(f"\n{wrapped(f'{prog}: stopped by {signal.Signals(number).name}; {stopped}:')}\n  {again}",
                      file=sys.stderr)
            return 128 + number
    if isinstance(result, int):
        return result
    print_results(result)
    print(f"Done in {format_duration(time.monotonic() - started)} ({counted(result.trials_run, 'trial')} run now).")
    return 0


def print_results(result: SearchResult, echo=print) -> None:
    """The search's results, each line at most TERMINAL_WIDTH characters but where a path or an
    address makes it longer: the leaderboard cut to fit, the champion's headline test metrics
    (its task's; the others are on the search's run), where it was registered, and the commands
    that show the rest."""
    from nnlab.tracking import DEFAULT_TRACKING_URI, runs_page

    store = result.tracking_uri
    env = "" if store == DEFAULT_TRACKING_URI else f"MLFLOW_TRACKING_URI={store} "
    report = f"{env}python -m nnlab.report {result.experiment} --model {result.model}"
    _print_leaderboard(result.leaderboard, report, echo)
    if result.ties:
        echo(wrapped(result.ties))
    which = result.champion_words
    task = get_task(result.task)
    headline = task.headline_text(result.test_metrics)
    champion = f"Champion: {which}; {headline}"
    echo(f"\n{champion}" if len(champion) <= TERMINAL_WIDTH else f"\nChampion: {which}\n  {headline}")
    if not result.newly_registered:
        echo(f"No new trials: {result.registered_name} version {result.champion_version} stays as registered.")
    elif result.promoted:
        echo(f"Registered {result.registered_name} version {result.champion_version}; alias champion now points to it.")
    else:
        holder, score = result.alias_holder
        held = f" ({task.test_key} {score:.4f})" if score is not None else ""
        # The alias moves only to a better test score: a tie keeps it where it is.
        tie = score is not None and not task.better(score, result.test_metrics.get(task.test_key))
        how = "the same" if tie else "better"
        echo(f"Registered {result.registered_name} version {result.champion_version}; alias champion stays "
             f"on version {holder}{held}, which tested {how}.")
    page = runs_page("http://127.0.0.1:5000", result.experiment_id or "0")
    echo(f"Browse: {env}python -m nnlab.ui   (or: mlflow ui --backend-store-uri {store}); then open {page}")
    echo(f"Report: {report}")
    echo(f"Load:   {env}python -c \"import nnlab; print(nnlab.load_model('{result.registered_name}').summary())\"")


# The leaderboard's columns always printed: trial, status, best objective, best epoch, size, time;
# the last two under names that read without a legend.
LEADERBOARD_COLUMNS = 6
LEADERBOARD_NAMES = {"param_count": "params", "train_seconds": "seconds"}
LEADERBOARD_ROWS = 15


def _print_leaderboard(leaderboard, report: str, echo) -> None:
    """The best trials, cut to the terminal's width: their own columns, then as many searched
    hyperparameters as fit (those that differ between them first); what was shortened or left
    out said below it, and where the whole table is."""
    from nnlab.tracking import runs_counted

    shown = leaderboard.head(LEADERBOARD_ROWS)
    echo(f"\nLeaderboard (best first, {len(shown)} of {runs_counted(leaderboard)}):")
    spread = [column for column in shown.columns if column.endswith("_std")][:1]  # cross-validated trials
    names = LEADERBOARD_NAMES | {column: "spread" for column in spread}
    table = fitted(shown, TERMINAL_WIDTH, keep=LEADERBOARD_COLUMNS + len(spread), names=names)
    echo(table.text)
    if table.short_names:
        legend = [f"{short} = {name}" for short, name in table.short_names.items()]
        # Broken between its entries only: "rl =" at a line's end would say nothing.
        echo("\n".join(line.replace("\0", " ") for line in textwrap.wrap(
            "Short names: " + ", ".join(entry.replace(" ", "\0") for entry in legend), TERMINAL_WIDTH,
            subsequent_indent="  ")))
    # A single trial is alike in every column: nothing to tell apart.
    left_out, alike = (table.left_out, table.alike) if len(shown) > 1 else (table.left_out + table.alike, [])
    if left_out:
        echo(_listed("Not shown: ", left_out))
    if alike:
        echo(_listed("Not shown, the same in every trial above: ", alike))
    if left_out or alike:
        echo(f"Every column: leaderboard.csv on the search's run, or {report}")


def _listed(opening: str, items: list[str]) -> str:
    """`opening` and the items, comma-separated, as many as fit in TERMINAL_WIDTH and the count of the rest."""
    line = opening + ", ".join(items)
    for count in range(len(items) - 1, 0, -1):
        if len(line) <= TERMINAL_WIDTH:
            break
        line = f"{opening}{', '.join(items[:count])} and {len(items) - count} more"
    return line


# Where a stop is not raised: inside a call to the store's database. Raised there (a Ctrl-C during
# an epoch's metrics), it left SQLite's write lock held by the write it cut short, and the KILLED
# mark that followed waited 20 s for it and failed, the trial recorded as failed, never to run again.
STORE_MODULES = ("sqlalchemy", "sqlite3")


def _in_a_store_call(frame) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).split(".")[0] in STORE_MODULES:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def signals_interrupt():
    """SIGTERM stops the search the way Ctrl-C does: the trial's run is marked KILLED, state
    kept. Further signals are ignored while that clean-up runs. A signal that comes inside a
    call to the store is recorded, not raised: the search stops at its next look at the record
    (an epoch's end, a trial's, the trials'). Yields the signals received."""
    received: list[int] = []

    def interrupt(number, frame):
        received.append(number)
        # A handler that does nothing, not SIG_IGN: a signal already on its way (a worker gets
        # the terminal's Ctrl-C and its chief's SIGTERM together) would otherwise meet SIG_IGN
        # and Python report "Signal 15 ignored due to race condition" with a traceback.
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, lambda *_ignored: None)
        if not _in_a_store_call(frame):
            raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def unraisable(report):
        # The raise above can land where Python cannot pass it on (a __del__, a garbage collector's
        # callback such as JAX's): Python would print it with a traceback. `received` holds it.
        if not (received and report.exc_type is KeyboardInterrupt):
            previous_hook(report)

    previous = {name: signal.signal(name, interrupt) for name in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = unraisable
    try:
        yield received
    finally:
        sys.unraisablehook = previous_hook
        for name, handler in previous.items():
            signal.signal(name, handler)

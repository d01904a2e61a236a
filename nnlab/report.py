"""`python -m nnlab.report EXPERIMENT`: a search's leaderboard of trials, read back from MLflow;
`--champions`: the experiment's registered families side by side, one champion each.

The latest search of the experiment (of `--model` when given, or of the model an experiment file
names), best trial first: its status, best objective, best epoch, parameter count, training time
and searched hyperparameters. `--format markdown` pastes into a README, `--format csv` into a
spreadsheet. Reads the store only; loads no TensorFlow, so it answers in a few seconds. MLflow is
imported inside functions, once the arguments are known to be right.
"""

from __future__ import annotations

import sys
import time

from nnlab import cli
from nnlab.config import load_config
from nnlab.errors import ConfigError, TrackingError, print_error
from nnlab.formats import FORMATS, TERMINAL_WIDTH, render
from nnlab.models import family_names
from nnlab.tasks import TASKS, get_task

PROG = "nnlab.report"


def _parser() -> cli.Parser:
    parser = cli.Parser(prog="python -m nnlab.report", short_name=PROG,
                        description="The leaderboard of a search's trials, from MLflow.")
    parser.add_argument("experiment", help="an experiment name (the MLflow experiment, e.g. mnist) or its TOML file")
    parser.add_argument("--model", choices=family_names(), help="the search of this model family (default: the "
                        "experiment file's model, else the latest search whatever its model)")
    parser.add_argument("--champions", action="store_true", help="one row per registered family of the "
                        "experiment (cnn, dfn, lstm, ...): its champion's version, its task's headline test metrics (a column "
                        "each, named as the metric), parameter count and search wall time, best first")
    parser.add_argument("--top", type=cli.positive, help="only the best K trials")
    parser.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or markdown")
    parser.add_argument("--tracking-uri", help=cli.TRACKING_URI_HELP)
    return parser


def _experiment(argument: str, model: str | None, tracking_uri: str | None) -> tuple[str, str | None, str | None]:
    """(MLflow experiment name, model, tracking URI): from an experiment file when one is named
    or found in experiments/, else the argument is the MLflow experiment's own name."""
    try:
        config = load_config(argument, {"tracking_uri": tracking_uri})
    except ConfigError as error:
        if argument.endswith(".toml") or "/" in argument or not str(error).startswith("unknown experiment"):
            raise
        return argument, model, tracking_uri
    from_file = config.origin != "built-in default"
    return config.name, model or (config.model if from_file else None), config.tracking_uri


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        name, model, tracking_uri = _experiment(args.experiment, args.model, args.tracking_uri)
        from nnlab.tracking import find_searches, resolve_tracking_uri, runs_counted, trial_leaderboard

        try:
            searches = find_searches(name, tracking_uri, model)
        except TrackingError as error:
            raise ConfigError(str(error)) from None
    except ConfigError as error:
        print_error(PROG, error)
        return 2
    if args.champions:
        return _champions(name, tracking_uri, args.format)
    if not searches:
        which = f" of model {model}" if model else ""
        print_error(PROG, f"experiment {name} holds no search{which} in {resolve_tracking_uri(tracking_uri)}")
        return 2
    search = searches[0]
    table = trial_leaderboard(resolve_tracking_uri(tracking_uri), search.experiment_id, search.run_id,
                              get_task(search.task))
    trials = runs_counted(table)
    if args.top:
        table = table.head(args.top)
    if args.format == "table":
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(search.start_time / 1000))
        earlier = [f"{other.model} ({time.strftime('%Y-%m-%d %H:%M', time.localtime(other.start_time / 1000))})"
                   for other in searches[1:]]
        others = f"; earlier searches: {', '.join(earlier)} (--model picks a family's latest)" if earlier else ""
        print(f"{name}-{search.model}: search run {search.run_id} ({search.status}, started {started}), "
              f"{trials}, best first{others}")
    if table.empty:
        print(f"{PROG}: the search has no trial runs yet", file=sys.stderr)
        return 0
    print(render(table, args.format))
    return 0


def _champions(name: str, tracking_uri: str | None, output_format: str) -> int:
    from nnlab.tracking import champions_table, resolve_tracking_uri

    table = champions_table(name, tracking_uri)
    if table.empty:
        print_error(PROG, f"experiment {name} has no registered champion in {resolve_tracking_uri(tracking_uri)}; "
                          f"a search registers one (python -m nnlab.search {name})")
        return 2
    if output_format == "table":
        print(f"{name}: {len(table)} registered famil{'ies' if len(table) != 1 else 'y'}, each its champion "
              "(alias champion), best first")
        table = _narrowed(table)
    print(render(table, output_format))
    return 0


def _narrowed(table):
    """The champions as a terminal shows them: where all their headline test metrics are wider
    than TERMINAL_WIDTH (a GAN's three beside a classifier's), each task's own metric alone
    (test_accuracy, test_rmse, test_fid_mnist); the others stay in --format csv and markdown."""
    if max(len(line) for line in render(table, "table").splitlines()) <= TERMINAL_WIDTH:
        return table
    own = {task.test_key for task in TASKS.values()}
    return table.drop(columns=[column for column in table.columns if column.startswith("test_") and column not in own])


if __name__ == "__main__":
    sys.exit(main())

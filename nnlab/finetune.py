"""`python -m nnlab.finetune SOURCE TARGET`: reuse a trained model on a new task.
From Python, `nnlab.finetune(...)` calls nnlab.api.finetune; this module, called, calls it.

A fine-tune is a search of the transfer family (nnlab/models/transfer.py) over the target's
data: `--strategy` fixes its strategy and the search is one trial; `--search` lets KerasTuner
choose the strategy, the depth to unfreeze and the two learning rates, and registers its best
trial or the average of its best three, unless the best alone is surely better on validation
(`--ensemble`, the shared champion step's). The search machinery does the rest unchanged: a
parent run in the target's MLflow experiment tagged with the source's lineage, a nested run per
trial, the figures, and the result registered as a new version of `<target>-from-<source>`
(`digits-from-mnist-cnn`), whose `champion` alias moves only to a version that tests better. The
source is read, never changed. What a fine-tune is lives in nnlab/finetuning.py, for both doors.
"""

from __future__ import annotations

import argparse
import sys

from nnlab import cli
from nnlab.api import callable_module, finetune, run_finetune
from nnlab.commands import run_command
from nnlab.finetuning import EPOCHS, SEARCH_ENSEMBLE, SEARCH_TRIALS, finetune_problem
from nnlab.finetuning import finetune_config as _finetune_config
from nnlab.models import TRANSFER_SOURCE_MEMBERS as SOURCE_MEMBERS
from nnlab.models import TRANSFER_STRATEGIES as STRATEGIES

PROG = "nnlab.finetune"
# The options this command hands to the fine-tune (nnlab/finetuning.py), as its flags name them.
OPTIONS = ("search", "strategy", "unfreeze", "learning_rate", "fine_tune_learning_rate", "source_members",
           "labels_per_class", "epochs", "max_trials", "ensemble", "cross_validation", "seed", "data_dir",
           "tracking_uri")


def parse_args(argv=None):
    parser = cli.Parser(
        short_name=PROG,
        prog="python -m nnlab.finetune",
        description="Train a registered model (or a .keras file) on a new data set: a new head for its "
        "classes, its raw input adapted inside the model, tracked in MLflow and registered.",
    )
    parser.add_argument("source", help="a registered model: mnist-cnn (its champion), mnist-cnn@ALIAS, "
                        "mnist-cnn/VERSION, models:/...; or a .keras file")
    parser.add_argument("target", help="a data set (digits, mnist) or an experiment: experiments/NAME.toml or a "
                        "path to a TOML file ([data] classes = [...] picks classes)")
    parser.add_argument("--strategy", choices=STRATEGIES, help="feature-extraction: train a new head on the frozen "
                        "source; fine-tune (default): that, then the top --unfreeze layers at a lower learning rate; "
                        "full: train everything from the source's weights; scratch: the same architecture from "
                        "random weights, for comparison")
    parser.add_argument("--search", action="store_true", help="let KerasTuner choose the strategy, the layers to "
                        "unfreeze and both learning rates (random search)")
    parser.add_argument("--max-trials", type=cli.positive, help=f"trials of --search (default {SEARCH_TRIALS})")
    parser.add_argument("--ensemble", type=cli.whole_number, help="--search: average the best K trials into one "
                        f"model, registered unless the best alone is surely better on validation (default {SEARCH_ENSEMBLE}; "
                        "0: the best alone)")
    parser.add_argument("--cross-validation", type=cli.whole_number, metavar="K", help="score each trial as the "
                        "mean of K fits on K folds of the labelled training and validation images, and refit the "
                        "champion on all of them (default 0: one validation split)")
    parser.add_argument("--unfreeze", type=cli.positive, help="fine-tune: how many of the source's layers with "
                        "weights to unfreeze, from the top (default: all)")
    parser.add_argument("--epochs", type=cli.positive, help=f"most epochs (default {EPOCHS}; fine-tune: half for the "
                        "head, half after unfreezing; early stopping may end either sooner)")
    parser.add_argument("--learning-rate", type=_rate, help="the first learning rate: the new head's, "
                        "or everything's for full and scratch (default by strategy: 1e-2, full 1e-3, scratch 2e-3)")
    parser.add_argument("--fine-tune-learning-rate", type=_rate, help="fine-tune: the rate once layers are "
                        "unfrozen (default 1e-3)")
    parser.add_argument("--source-members", choices=SOURCE_MEMBERS, help="a source that is an average champion: "
                        "take all members' bodies side by side (all, the default) or its best member's alone (best)")
    parser.add_argument("--labels-per-class", type=cli.positive, help="train on K labelled examples per class "
                        "(balanced, seeded); validation and test stay whole")
    parser.add_argument("--seed", type=cli.whole_number, help="random seed for the labels drawn, the split and training")
    parser.add_argument("--data-dir", help=cli.DATA_DIR_HELP)
    parser.add_argument("--tracking-uri", help=cli.TRACKING_URI_HELP)
    parser.add_argument("--fresh", action="store_true", help="--search: discard its saved tuner state and start over")
    args = parser.parse_args(argv)
    problem = finetune_problem(options_of(args))
    if problem:
        parser.error(problem)
    return args


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie between 0 and 1")
    return value


def options_of(args) -> dict:
    return {key: getattr(args, key) for key in OPTIONS}


def finetune_config(args):
    """The fine-tune's config from the parsed command line (nnlab/finetuning.py makes it)."""
    return _finetune_config(args.source, args.target, options_of(args))


def main(argv=None) -> int:
    args = parse_args(argv)

    def finetune(interrupted):
        return run_finetune(args.source, args.target, options_of(args), fresh=args.fresh, interrupted=interrupted)

    return run_command(PROG, "nnlab.finetune", argv, finetune, "nothing of the trial in progress is registered; "
                       "run again with")


callable_module(__name__, finetune)  # nnlab.finetune(...) calls the library function, this module imported or not

if __name__ == "__main__":
    sys.exit(main())

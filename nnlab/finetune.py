"""`python -m nnlab.finetune SOURCE TARGET`: reuse a trained model on a new task.

A fine-tune is a search of the transfer family (nnlab/models/transfer.py) over the target's
data: `--strategy` fixes its strategy and the search is one trial; `--search` lets KerasTuner
choose the strategy, the depth to unfreeze and the two learning rates, and registers its best
trial or the average of its best three, unless the best alone is surely better on validation
(`--ensemble`, the shared champion step's). The search machinery does the rest unchanged: a
parent run in the target's MLflow experiment tagged with the source's lineage, a nested run per
trial, the figures, and the result registered as a new version of `<target>-from-<source>`
(`digits-from-mnist-cnn`), whose `champion` alias moves only to a version that tests better. The
source is read, never changed. Keras is imported inside functions, once the arguments are checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from nnlab import cli
from nnlab.commands import load_data, run_command
from nnlab.config import load_config, validate
from nnlab.formats import wrapped
from nnlab.errors import SourceError
from nnlab.models import TRANSFER_SOURCE_MEMBERS as SOURCE_MEMBERS
from nnlab.models import TRANSFER_STRATEGIES as STRATEGIES
from nnlab.pipeline import run_search
from nnlab.source import load_source

PROG = "nnlab.finetune"
SEARCHED_STRATEGIES = ["fine-tune", "feature-extraction", "full"]  # scratch is the comparison, not a candidate
# A fine-tune trains on few examples: many short epochs, small batches, more patience than a search's.
EPOCHS = 60
BATCH_SIZE = 32
PATIENCE = 6
SEARCH_TRIALS = 10
# --search registers the average of its best 3 trials unless the best alone is surely better on
# validation. With 10 labels per class the validation split is 144 digits, and which trial tops it is
# partly luck: mnist-cnn -> digits, seed 1, the best trial tested 0.922, the average of the best
# three 0.942 (BENCHMARKS.md, issue 11). A fine-tune's trials are not trained on, so the
# average costs only its test pass.
SEARCH_ENSEMBLE = 3


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
    if args.search and args.strategy:
        parser.error("--search chooses the strategy: give one or the other")
    if args.unfreeze is not None and (args.search or (args.strategy or "fine-tune") != "fine-tune"):
        parser.error("--unfreeze applies to --strategy fine-tune")
    if args.fine_tune_learning_rate is not None and (args.strategy or "fine-tune") != "fine-tune":
        parser.error("--fine-tune-learning-rate applies to --strategy fine-tune")
    if args.search and (args.learning_rate is not None or args.fine_tune_learning_rate is not None):
        parser.error("--search chooses the learning rates: leave out --learning-rate and --fine-tune-learning-rate")
    if args.max_trials is not None and not args.search:
        parser.error("--max-trials applies to --search")
    if args.ensemble is not None and not args.search:
        parser.error("--ensemble applies to --search (a fixed strategy is one trial)")
    return args


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie between 0 and 1")
    return value


def finetune_config(args):
    """The target's experiment as a search of the transfer family. The target names the data
    (data set, [data] table, seed, store); how a fine-tune trains is this command's."""
    target = load_config(args.target, {key: getattr(args, key) for key in ("seed", "data_dir", "tracking_uri")})
    if args.search:
        space = {"strategy": SEARCHED_STRATEGIES}
    else:
        space = {"strategy": args.strategy or "fine-tune"}
        for key in ("unfreeze", "learning_rate", "fine_tune_learning_rate"):
            if getattr(args, key) is not None:
                space[key] = getattr(args, key)
    if args.source_members is not None:
        space["source_members"] = args.source_members
    data = dict(target.data)
    if args.labels_per_class is not None:
        data["labels_per_class"] = args.labels_per_class
    return validate(dataclasses.replace(
        target,
        model="transfer",
        source=args.source,
        tuner="random",
        max_trials=(args.max_trials or SEARCH_TRIALS) if args.search else 1,
        ensemble=(SEARCH_ENSEMBLE if args.ensemble is None else args.ensemble) if args.search else 0,
        epochs=args.epochs or EPOCHS,
        final_epochs=0,  # a fine-tune's trial is its whole training; its best epoch is kept
        batch_size=BATCH_SIZE,
        patience=PATIENCE,
        space=space,
        data=data,
        time_budget=None,
        trial_timeout=None,
        origin=f"{target.origin}, fine-tuned from {args.source}",
        # A mistake in one of this command's own flags is named as the flag the user typed.
        flags=(*target.flags, *(key for key in ("ensemble", "epochs", "max_trials") if getattr(args, key) is not None)),
    ))


def taken_line(source: str, trials: list[str], taken: str) -> str:
    """What a fine-tune takes of an average champion, in one line."""
    if taken == "all":
        return (f"{source} is the average of trials {', '.join(trials)}: taking all {len(trials)} members' bodies "
                f"side by side, their features under one new head (--source-members best: trial {trials[0]}'s alone)")
    return f"{source} is the average of trials {', '.join(trials)}: taking its best member's body alone, trial {trials[0]}"


def main(argv=None) -> int:
    args = parse_args(argv)

    def finetune(interrupted):
        config = finetune_config(args)
        dataset = load_data(PROG, config)
        from nnlab.models.transfer import DEFAULT_SOURCE_MEMBERS, body_layer_count, cannot_adapt, member_trials

        source = load_source(config.source, config.tracking_uri)
        problem = cannot_adapt(dataset.spec, source.model)
        if problem:
            raise SourceError(f"cannot fine-tune {config.source} on {args.target}: {problem}")
        trials = member_trials(source.model)
        if args.source_members is not None and not trials:
            raise SourceError(f"--source-members applies to an average champion; {config.source} is one model")
        taken = config.space.get("source_members", DEFAULT_SOURCE_MEMBERS)
        layers = body_layer_count(source.model, taken)
        if args.unfreeze is not None and args.unfreeze > layers:
            raise SourceError(f"--unfreeze {args.unfreeze}: {config.source}'s body has {layers} layers with weights")
        lineage = ", ".join(f"{key.removeprefix('nnlab.')} {value}" for key, value in source.tags.items())
        print(wrapped(f"{PROG}: from {lineage}; input {tuple(source.model.inputs[0].shape[1:])}, {layers} body "
                      "layers with weights"))
        if trials:
            print(wrapped(f"{PROG}: {taken_line(config.source, trials, taken)}"))
        # A fixed strategy is one trial with nothing to resume: each run starts afresh.
        return run_search(config, dataset, fresh=args.fresh or not args.search, source=source, interrupted=interrupted)

    return run_command(PROG, "nnlab.finetune", argv, finetune, "nothing of the trial in progress is registered; "
                       "run again with")


if __name__ == "__main__":
    sys.exit(main())

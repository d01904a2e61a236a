"""What a fine-tune is, for both of its doors (`python -m nnlab.finetune` and `nnlab.finetune`):
the target's experiment made a search of the transfer family, the checks of its options and of
the source against the data, and what is said of the source before it trains. Keras is imported
inside functions (the source's loading), once the options are checked."""

from __future__ import annotations

import dataclasses

from nnlab.cli import as_typed, setting_name
from nnlab.config import load_config, validate
from nnlab.errors import ConfigError, SourceError
from nnlab.source import load_source

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


def finetune_problem(options: dict) -> str | None:
    """What cannot go together among a fine-tune's options (named as the caller gave them: flags
    or keywords)."""
    search, strategy = options.get("search"), options.get("strategy")
    fine_tune = (strategy or "fine-tune") == "fine-tune"
    searched, fine_tuned = as_typed("search", True), as_typed("strategy", "fine-tune")
    if search and strategy:
        return f"{searched} chooses the strategy: give one or the other"
    if options.get("unfreeze") is not None and (search or not fine_tune):
        return f"{setting_name('unfreeze')} applies to {fine_tuned}"
    if options.get("fine_tune_learning_rate") is not None and not fine_tune:
        return f"{setting_name('fine_tune_learning_rate')} applies to {fine_tuned}"
    if search and (options.get("learning_rate") is not None or options.get("fine_tune_learning_rate") is not None):
        return (f"{searched} chooses the learning rates: leave out {setting_name('learning_rate')} and "
                f"{setting_name('fine_tune_learning_rate')}")
    if options.get("max_trials") is not None and not search:
        return f"{setting_name('max_trials')} applies to {searched}"
    if options.get("ensemble") is not None and not search:
        return f"{setting_name('ensemble')} applies to {searched} (a fixed strategy is one trial)"
    return None


def finetune_config(source: str, target: str, options: dict, base=None):
    """The target's experiment as a search of the transfer family. The target names the data
    (data set, [data] table, seed, store), or `base` is its config (data handed over from
    Python); how a fine-tune trains is this module's."""
    problem = finetune_problem(options)
    if problem:
        raise ConfigError(problem)
    get = options.get
    config = base or load_config(target, {key: get(key) for key in ("seed", "data_dir", "tracking_uri")})
    if get("search"):
        space = {"strategy": SEARCHED_STRATEGIES}
    else:
        space = {"strategy": get("strategy") or "fine-tune"}
        for key in ("unfreeze", "learning_rate", "fine_tune_learning_rate"):
            if get(key) is not None:
                space[key] = get(key)
    if get("source_members") is not None:
        space["source_members"] = get("source_members")
    data = dict(config.data)
    for key in ("classes", "labels_per_class"):  # the target's [data] keys, from Python or the command line
        if get(key) is not None:
            data[key] = get(key)
    return validate(dataclasses.replace(
        config,
        model="transfer",
        source=source,
        tuner="random",
        max_trials=(get("max_trials") or SEARCH_TRIALS) if get("search") else 1,
        ensemble=(SEARCH_ENSEMBLE if get("ensemble") is None else get("ensemble")) if get("search") else 0,
        cross_validation=config.cross_validation if get("cross_validation") is None else get("cross_validation"),
        epochs=get("epochs") or EPOCHS,
        final_epochs=0,  # a fine-tune's trial is its whole training; its best epoch is kept
        batch_size=BATCH_SIZE,
        patience=PATIENCE,
        space=space,
        data=data,
        time_budget=None,
        trial_timeout=None,
        builder=None,
        origin=f"{config.origin}, fine-tuned from {source}",
        # A mistake in one of this module's own options is named as the flag the user typed.
        flags=(*config.flags, *(key for key in ("ensemble", "epochs", "max_trials", "cross_validation")
                                 if get(key) is not None)),
    ))


def prepare_finetune(config, dataset, options: dict, target: str, say):
    """The source loaded and checked against the data (a SourceError says why it cannot adapt),
    and said through `say` (one line each, wrapped there): its lineage, its input, its body, what is taken of an average."""
    from nnlab.models.transfer import DEFAULT_SOURCE_MEMBERS, body_layer_count, cannot_adapt, member_trials

    source = load_source(config.source, config.tracking_uri)
    problem = cannot_adapt(dataset.spec, source.model)
    if problem:
        raise SourceError(f"cannot fine-tune {config.source} on {target}: {problem}")
    trials = member_trials(source.model)
    if options.get("source_members") is not None and not trials:
        raise SourceError(f"{setting_name('source_members')} applies to an average champion; {config.source} is one model")
    taken = config.space.get("source_members", DEFAULT_SOURCE_MEMBERS)
    layers = body_layer_count(source.model, taken)
    if options.get("unfreeze") is not None and options["unfreeze"] > layers:
        raise SourceError(f"{as_typed('unfreeze', options['unfreeze'])}: {config.source}'s body has {layers} layers "
                          "with weights")
    lineage = ", ".join(f"{key.removeprefix('nnlab.')} {value}" for key, value in source.tags.items())
    say(f"from {lineage}; input {tuple(source.model.inputs[0].shape[1:])}, {layers} body layers with weights")
    if trials:
        say(taken_line(config.source, trials, taken))
    return source


def taken_line(source: str, trials: list[str], taken: str) -> str:
    """What a fine-tune takes of an average champion, in one line."""
    if taken == "all":
        return (f"{source} is the average of trials {', '.join(trials)}: taking all {len(trials)} members' bodies "
                f"side by side, their features under one new head ({as_typed('source_members', 'best')}: trial {trials[0]}'s "
                "alone)")
    return f"{source} is the average of trials {', '.join(trials)}: taking its best member's body alone, trial {trials[0]}"

"""The champion step every family and task shares: restore the search's best trial at its best
epoch, train it on, test it once, log it with its test metrics (and the data set's naive
baselines beside them), register it, and move the `champion` alias when it beats the holder,
as the task ranks them. The search (and later commands that train a model: fine-tuning, the
GAN) hands it a trained tuner; nnlab.tracking does the MLflow side. The task (nnlab.tasks) says
which baselines and figures the champion gets.

Keras, and the nnlab modules that load it, are imported inside functions (those that train): importing
this module (nnlab.predict does, for CLASS_NAMES_TAG) loads no TensorFlow.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from nnlab import plots
from nnlab.budget import format_duration
from nnlab.data.folds import fold_indices, joined
from nnlab.errors import TrackingError
from nnlab.formats import counted, wrapped
from nnlab.linear_member import linear_member
from nnlab.provenance import backend_requirement, package_version

CLASS_NAMES_TAG = "nnlab.class_names"  # a JSON list: the registered model's output i is class_names[i]
# Within a time budget, a member trains on for as many epochs as fit its share of the time left,
# from its further_epochs up to this many: a budget the search did not use up is the champion's.
# Measured on the default search's members: 6 annealed epochs 0.9902, 8 0.9904, the old rule's
# 20 0.9912 (BENCHMARKS.md, issue 30), and a 15-minute search ended after 6 minutes at 0.9900.
BUDGET_FURTHER_EPOCHS = 20


@dataclass(frozen=True)
class Champion:
    record: object  # tracking.ChampionRecord
    test_metrics: dict
    figures: dict  # name -> a function that draws it
    label: str  # the trials registered: "05", or an average's "08,00,01"


def register_champion(config, tuner, best_trials, hypermodel, dataset, tracker, echo, budget=None) -> Champion:
    """Restore the best trial at its best epoch, train it on, test it, log and register it.
    With `config.ensemble` K of 2 or more, the next best trials of other hyperparameters up to K
    are restored and trained on the same way, and their average is registered unless the best
    alone is surely better on the validation split (SINGLE_SURE; never the test split's word);
    both test scores go on the search's run. Within a time `budget` (nnlab.budget.TimeBudget) the
    members share the time left before its ending evenly, each training the epochs that fit."""
    task = hypermodel.task
    best_trial = best_trials[0]
    best_trials = best_trials[: max(1, config.ensemble)]
    _say_plan(config, hypermodel, best_trials, echo, budget is not None)
    further_logs: list[tuple[int, dict]] = []
    model = _trained_on(config, tuner, best_trial, hypermodel, dataset, echo, _share_of_time(config, budget, best_trials, 0),
                        tracker, further_logs, (1, len(best_trials)))
    # One pass over the test split feeds the test metrics, the signature's example and the figures.
    test_metrics, inputs, predictions = hypermodel.test(model, dataset.test)
    chosen = _Chosen([best_trial], model, predictions, test_metrics)
    others = _trained_others(config, tuner, best_trials, hypermodel, dataset, echo, budget)
    if others:
        chosen = _single_or_average(task, dataset, chosen, others, inputs, echo)
    if refits(config, tuner):
        # Cross-validated, the members' checkpoints have trained on most of the validation split
        # that chose between the best alone and the average: the refit averages every member.
        members = best_trials if tuner.folds else chosen.trials
        chosen = _refit(config, tuner, hypermodel, dataset, chosen, members, tracker, echo, budget)
    label = ",".join(trial.trial_id for trial in chosen.trials)
    # Beside them, and logged with them, the forecasts that are no model: has it learnt anything?
    test_metrics = chosen.test_metrics | task.baseline_metrics(
        dataset.test[1], chosen.test_metrics, {**task.trivial_baselines(dataset), **dataset.baselines})
    holder = _holder_rescored(config.tuning_name, hypermodel, dataset, tracker, echo)
    record = _logged_and_registered(config, hypermodel, dataset, tracker, chosen, inputs, test_metrics, label, holder)
    figures = _champion_figures(task, dataset, chosen, label, best_trial, further_logs)
    return Champion(record, test_metrics, figures, label)


@dataclass(frozen=True)
class _Chosen:
    """What is registered: its trials (one, or an average's members), its model, and that
    model's test predictions and test metrics."""
    trials: list
    model: object
    predictions: object
    test_metrics: dict


def further_epochs(config, trial) -> int:
    """The epochs `trial`'s model trains on: config.final_epochs, and as many more as it was
    restored short of a trial's `epochs` (a member from a Hyperband round of 2 epochs, or
    restored at an early best epoch), so that every member has trained as long. Measured: a
    seed whose best trial had trained 2 epochs got the same 6 further epochs as the others, and
    its average tested 0.9882 (BENCHMARKS.md, issue 30)."""
    if not config.final_epochs:
        return 0
    return config.final_epochs + max(0, (config.epochs or 0) - (trial.best_step + 1))


def _share_of_time(config, budget, members: list, index: int) -> tuple[int, list]:
    """(the further epochs of member `index` of `members`, the callbacks that stop it at its
    share of the time): within a budget, its share of what is left before the ending among the
    members still to train (this one included), in proportion to its epoch's seconds, and as
    many epochs as fit in it, at most BUDGET_FURTHER_EPOCHS or further_epochs where that is
    more; else further_epochs and none."""
    wanted = further_epochs(config, members[index])
    if budget is None:
        return wanted, []
    wanted = max(wanted, BUDGET_FURTHER_EPOCHS) if wanted else 0
    from nnlab.hypermodel import StopAt

    now = time.monotonic()
    # In proportion to each one's rate, so that the members still to train fit as many epochs
    # each: an even share of the time gave a slow last member 4 epochs where the others had 9 and 20.
    rates = [budget.rate(trial.trial_id) for trial in members[index:]]
    part = rates[0] / sum(rates) if all(rates) else 1 / len(rates)
    share = (budget.training_deadline([trial.trial_id for trial in members]) - now) * part
    return budget.member_epochs(members[index].trial_id, share, wanted), [StopAt(deadline=now + share)]


def _say_plan(config, hypermodel, best_trials: list, echo, budgeted: bool = False) -> None:
    """The champion step's first line: which trials, how far, watching what."""
    trials = ", ".join(trial.trial_id for trial in best_trials)
    one = len(best_trials) == 1
    which = f"trial {trials}" if one else f"trials {trials} (the best of different hyperparameters)"
    if not config.final_epochs:
        echo(f"Champion step: {which}, restored at {'its best epoch' if one else 'their best epochs'} and tested")
        return
    epochs = counted(config.final_epochs, "epoch")
    if budgeted:  # _share_of_time
        whose = "its" if one else "each member's"
        echo(f"Champion step: {which} train{'s' if one else ''} on for as many epochs as fit")
        echo(f"  {whose} share of the time budget, up to {max(config.final_epochs, BUDGET_FURTHER_EPOCHS)},")
    else:
        echo(f"Champion step: {which} train{'s' if one else ''} on for {epochs}{'' if one else ' each'},")
    keeping = "its" if one else "each one's"
    if config.epochs and config.epochs > 1 and not budgeted:  # further_epochs: restored before the last epoch, more
        echo(f"  and those {'it' if one else 'each'} was restored short of epoch {config.epochs},")
    if hypermodel.anneals_further:
        echo(f"  the learning rate annealed to zero over them, keeping {keeping} last epoch")
        return
    monitored, mode = hypermodel.task.further_monitor
    echo(f"  keeping {keeping} epoch of {'lowest' if mode == 'min' else 'highest'} {monitored}")


def _trained_others(config, tuner, best_trials, hypermodel, dataset, echo, budget) -> list[tuple]:
    """The average's other members, (trial, model) each, in order: restored and trained on like
    the best trial, but with no tracker (only the champion's own curves go on the search's run)."""
    return [(trial, _trained_on(config, tuner, trial, hypermodel, dataset, echo,
                                _share_of_time(config, budget, best_trials, member), member=(member + 1, len(best_trials))))
            for member, trial in enumerate(best_trials[1:], 1)]


def _single_or_average(task, dataset, best: _Chosen, others: list[tuple], inputs, echo) -> _Chosen:
    """The best trial alone, or the average of it and `others` unless the validation split is
    sure the best alone is better (SINGLE_SURE); either way with both test scores and the
    validation comparison added to its test metrics, and the choice said."""
    from nnlab.hypermodel import PREDICT_BATCH_SIZE, scores
    from nnlab.tabular import keras_inputs

    best_trial, targets = best.trials[0], dataset.test[1]
    members = [best.model] + [member for _, member in others]
    trials = [best_trial] + [trial for trial, _ in others]
    ids = ", ".join(trial.trial_id for trial in trials)
    validation_inputs, validation_targets = dataset.validation
    validation = [member.predict(keras_inputs(validation_inputs, member), batch_size=PREDICT_BATCH_SIZE, verbose=0)
                  for member in members]
    # The average model's output is this mean: its last layer computes it.
    averaged = np.mean([best.predictions] + [member.predict(keras_inputs(inputs, member), batch_size=PREDICT_BATCH_SIZE,
                                                            verbose=0) for member in members[1:]], axis=0)
    single_loss = task.loss_of(validation_targets, validation[0])
    ensemble_loss = task.loss_of(validation_targets, np.mean(validation, axis=0))
    share = single_better_share(task, validation_targets, validation[0], np.mean(validation, axis=0))
    compared = {"val_loss_single": single_loss, "val_loss_ensemble": ensemble_loss,
                "val_single_better_share": share,
                f"{task.test_key}_single": task.score(targets, best.predictions),
                f"{task.test_key}_ensemble": task.score(targets, averaged)}
    sureness = (f"  trial {best_trial.trial_id} alone had the lower loss on {share:.0%} of {RESAMPLES} resamples "
                f"of the validation split ({SINGLE_SURE:.0%} keeps it alone)")
    if share < SINGLE_SURE:
        model = average_model(members, [trial.trial_id for trial in trials], task, dataset.spec)
        test_metrics = {f"test_{name}": value for name, value in scores(model, targets, averaged).items()}
        echo(f"Champion: the average of trials {ids} (validation loss {ensemble_loss:.4f}; "
             f"trial {best_trial.trial_id} alone {single_loss:.4f})")
        echo(sureness)
        return _Chosen(trials, model, averaged, test_metrics | compared)
    echo(f"Champion: trial {best_trial.trial_id} alone (validation loss {single_loss:.4f}; "
         f"the average of trials {ids} {ensemble_loss:.4f})")
    echo(sureness)
    return _Chosen(best.trials, best.model, best.predictions, best.test_metrics | compared)


def refits(config, tuner) -> bool:
    """Whether the champion is refit on all the training and validation rows: the experiment's
    `refit`, else wherever its trials were cross-validated."""
    return config.refit if config.refit is not None else bool(tuner.folds)


def _refit(config, tuner, hypermodel, dataset, chosen: _Chosen, members: list, tracker, echo, budget=None) -> _Chosen:
    """`members` (`chosen`'s trials, or every member where cross-validated) each built afresh
    (`refit_repeats` times, from different initial weights) and trained on all the training and
    validation rows for the epochs its folds (or its validation run) chose and the further epochs
    the model chosen on validation trained on (hypermodel.refit), averaged where they are
    several (with the linear member where it ranks among them: _linear_member), and tested.
    Registered by rule, decided before either is tested: the refit, unless the time budget cut
    it short; both test scores go on the search's run."""
    import keras

    from nnlab.hypermodel import StopAt

    task, key = hypermodel.task, hypermodel.task.test_key
    rows = joined(dataset.train, dataset.validation)
    epochs = tracker.trial_best_epochs([trial.trial_id for trial in members])
    stop = StopAt(deadline=budget.training_deadline()) if budget is not None else None
    one = len(members) == 1
    whose = "its" if one else "each one's"
    echo(f"Refit: {'trial' if one else 'trials'} {', '.join(t.trial_id for t in members)} from scratch on all "
         f"{len(rows[1])} training and validation rows, for the epochs {whose} {'folds' if tuner.folds else 'trial'} chose")
    models, names, repeats = [], [], config.refit_repeats
    for trial in members:
        # Each repeat's initial weights are the next draw after the last: seeded once per member.
        keras.utils.set_random_seed(config.seed + int(trial.trial_id))
        wanted, started = epochs.get(trial.trial_id, trial.best_step + 1), time.monotonic()
        further = further_epochs(config, trial) if hypermodel.anneals_further else 0
        for repeat in range(1, repeats + 1):
            models.append(hypermodel.refit(trial.hyperparameters, rows, wanted, further, callbacks=[stop] if stop else ()))
            names.append(trial.trial_id if repeat == 1 else f"{trial.trial_id}_{repeat}")
        then = f", then {further} with the learning rate annealed to zero" if further else ""
        times = f", {repeats} times from different initial weights" if repeats > 1 else ""
        echo(f"  trial {trial.trial_id}: {counted(wanted, 'epoch')}{then}{times} "
             f"({format_duration(time.monotonic() - started)})")
    linear, member = {}, None
    if not (stop and stop.stopped):
        linear = _linear_member(config, tuner, hypermodel, dataset, rows, members, echo)
        member = linear.pop("model", None)
    if member is not None:  # as many times as each trial is refit: it weighs as one trial's refits together
        models, names = models + [member] * repeats, names + [f"linear_{repeat}" for repeat in range(1, repeats + 1)]
    model = models[0] if len(models) == 1 else average_model(models, names, task, dataset.spec)
    test_metrics, _inputs, predictions = hypermodel.test(model, dataset.test)
    if member is not None:
        linear |= _scored_apart(task, dataset.test, predictions, member, repeats / len(models))
    compared = {f"{key}_validation_chosen": chosen.test_metrics[key], f"{key}_refit": test_metrics[key], **linear}
    extras = {name: value for name, value in chosen.test_metrics.items() if name not in test_metrics}
    if stop is not None and stop.stopped:
        echo(f"Registered: the model chosen on validation (the time budget cut the refit short); {key} "
             f"{compared[f'{key}_validation_chosen']:.4f}, the refit's {compared[f'{key}_refit']:.4f}")
        return replace(chosen, test_metrics=chosen.test_metrics | compared)
    echo(f"Registered: the refit (refit = true, decided before testing); {key} {compared[f'{key}_refit']:.4f}, "
         f"the model chosen on validation {compared[f'{key}_validation_chosen']:.4f}")
    if f"{key}_networks" in linear:
        echo(f"  {key} of its networks alone {linear[f'{key}_networks']:.4f}, of the linear member alone "
             f"{linear[f'{key}_linear']:.4f}")
    return _Chosen(members, model, predictions, test_metrics | extras | compared)


def linear_member_applies(config, tuner, spec) -> bool:
    """Whether the refit considers the linear member (nnlab.linear_member): the experiment's
    `linear_member`, else where nnlab's network family searched a cross-validated table."""
    if not tuner.folds or spec.kind != "table":
        return False
    return config.linear_member if config.linear_member is not None else config.model == "dfn"


def _linear_member(config, tuner, hypermodel, dataset, rows: tuple, members: list, echo) -> dict:
    """{"model": the linear member's Keras model, or None where it does not rank among `members`
    on the folds (its mean fold score below the last member's objective), and its L2 and fold
    score as metrics}; {} where it does not apply (linear_member_applies)."""
    spec, task = dataset.spec, hypermodel.task
    if not linear_member_applies(config, tuner, spec):
        return {}
    started = time.monotonic()
    folds = fold_indices(rows[1], tuner.folds, spec.task, spec.kind, config.seed)  # the trials' folds
    member = linear_member(spec, task, rows[0], rows[1], folds)
    last, metric = members[-1], f"val_{task.metric}"
    # At least as good: equal scores on the same rows differ in their last digits (float32 curves).
    if task.higher_is_better:
        joins = member.fold_score >= last.score - 1e-6
    else:
        joins = member.fold_score <= last.score + 1e-6
    ranked = f"trial {last.trial_id}'s {last.score:.4f}" + ("" if len(members) == 1 else f", the last of {len(members)} members")
    echo(wrapped(f"  the linear model (no hidden layer, fit to its optimum by scikit-learn, L2 {member.penalty:g} chosen on "
                 f"the folds): {metric} {member.fold_score:.4f} on the folds, {ranked}: "
                 + ("joins the average as one member more" if joins else "left out")
                 + f" ({format_duration(time.monotonic() - started)})"))
    return {"model": member.model if joins else None, "linear_member_l2": member.penalty,
            f"linear_member_fold_{task.metric}": member.fold_score, "linear_member_joined": float(joins)}


def _scored_apart(task, test: tuple, predictions, member, share: float) -> dict:
    """The test scores of the networks' average without the linear `member` and of `member`
    alone, logged beside the champion's: the networks' mean is the average's `predictions` with
    the member's `share` of them taken out (no network is run again)."""
    from nnlab.hypermodel import PREDICT_BATCH_SIZE
    from nnlab.tabular import keras_inputs

    inputs, targets = test
    alone = member.predict(keras_inputs(inputs, member), batch_size=PREDICT_BATCH_SIZE, verbose=0)
    networks = (predictions - share * alone) / (1 - share)
    return {f"{task.test_key}_networks": task.score(targets, networks), f"{task.test_key}_linear": task.score(targets, alone)}


def _holder_rescored(registered_name: str, hypermodel, dataset, tracker, echo):
    """The champion alias's holder scored on this search's test split (and by its judge, where
    one scores it) when it was tested otherwise: tracking.HolderScore, logged on the search's
    run; else None. Champion and challenger are compared on one test split, never on two."""
    from nnlab.tracking import HolderScore, load_registered_model

    task = hypermodel.task
    holder = tracker.holder_tested_elsewhere(registered_name, hypermodel.judged_by)
    if holder is None:
        return None
    try:
        model = load_registered_model(holder.uri, tracker.tracking_uri)
        score = HolderScore(holder.version, hypermodel.holder_score(model, dataset.test))
    except (TrackingError, ValueError) as error:  # another input shape, columns or outputs
        score = HolderScore(holder.version, None, " ".join(str(error).split())[:300])
    tracker.log_holder_score(task.test_key, score)
    held = f"{task.test_key} {score.score:.4f}" if score.score is not None else f"not scored: {score.reason}"
    echo(wrapped(f"  {registered_name} version {holder.version}, champion so far, was tested on other data; "
                 f"on this search's test split: {held}"))
    return score


def _logged_and_registered(config, hypermodel, dataset, tracker, chosen: _Chosen, inputs, test_metrics: dict,
                           label: str, holder=None):
    """The chosen model logged on the search's run with its test metrics and registered, its
    version tagged with where it came from, the alias moved on one test split (`holder`: the
    holder rescored on this one): tracking.ChampionRecord."""
    return tracker.log_champion(
        hypermodel.exported(chosen.model),
        config.tuning_name,
        inputs[:8],
        chosen.predictions[:8],
        test_metrics,
        label,
        [backend_requirement(), *(f"{name}=={package_version(name)}" for name in ("keras", "mlflow"))],
        task=hypermodel.task,
        # Where the model came from and what it learnt on: a fine-tune's source and strategy
        # (an average's: each member's, in order), the data set's options (its classes, labels
        # per class).
        version_tags=_joined([hypermodel.lineage(trial.hyperparameters) for trial in chosen.trials])
        | {f"nnlab.data.{key}": ",".join(map(str, value)) if isinstance(value, list) else value
           for key, value in config.data.items()}
        # What its outputs 0..K-1 are called, where not their numbers: nnlab.predict prints them.
        | ({CLASS_NAMES_TAG: json.dumps(list(dataset.spec.class_names))} if dataset.spec.class_names else {}),
        # The same names in the model's own MLmodel, for whoever loads or serves it without nnlab.
        metadata={"class_names": list(dataset.spec.class_names)} if dataset.spec.class_names else None,
        holder_score=holder,
        judged_by=hypermodel.judged_by,
    )


def _champion_figures(task, dataset, chosen: _Chosen, label: str, best_trial, further_logs: list) -> dict:
    """The champion's figures, name -> a function that draws it: the task's kinds that this
    data can show, and the best trial's further training curves where it had any."""
    title = f"champion ({'trial' if len(chosen.trials) == 1 else 'average of trials'} {label.replace(',', ', ')})"
    figures = {f"champion_{kind}": partial(draw, chosen.model, dataset, chosen.predictions, title)
               for kind, draw in task.champion_figures(dataset.spec.kind).items()}
    if further_logs:
        epochs, logs = zip(*further_logs)
        figures["champion_learning_curves"] = partial(
            plots.learning_curves, list(epochs), list(logs), task.objective,
            f"champion (trial {best_trial.trial_id}), trained on from its best checkpoint")
    return figures


# The average is the remedy for a champion chosen on a few hundred validation images: the best
# trial was picked, and its epoch stopped, on those same images, so its validation loss flatters
# it (measured: a best trial 0.002 lower in validation loss than its average tested 0.9859
# against the average's 0.9904, BENCHMARKS.md issue 15). It is registered alone only where the
# validation split is sure of it: a lower loss on SINGLE_SURE of RESAMPLES bootstrap resamples.
SINGLE_SURE = 0.95
RESAMPLES = 1000


def single_better_share(task, targets, single, averaged, seed: int = 0) -> float:
    """The share of bootstrap resamples of the validation examples on which `single`'s
    predictions have a lower mean loss than `averaged`'s (paired: the same examples for both)."""
    difference = task.example_losses(targets, single) - task.example_losses(targets, averaged)
    generator = np.random.default_rng(seed)
    lower = sum(difference[generator.integers(0, len(difference), len(difference))].mean() < 0
                for _ in range(RESAMPLES))
    return lower / RESAMPLES


def _trained_on(config, tuner, trial, hypermodel, dataset, echo, share: tuple[int, list], tracker=None,
                further_logs=None, member=(1, 1)):
    """`trial`'s model restored at its best epoch and trained on for `share`'s epochs with its
    callbacks (_share_of_time); with a `tracker`, its further curves go on the search's run (the
    best trial's, under the trials' names) and into `further_logs`. `member`: (its place, of how
    many) in an average."""
    import keras

    from nnlab.hypermodel import SaysProgress

    task = hypermodel.task
    epochs, callbacks = share
    model = tuner.load_model(trial)
    what = f"trial {trial.trial_id}" + (f" (member {member[0]} of {member[1]})" if member[1] > 1 else "")
    if not epochs:
        # Saved with an unbuilt optimizer, the model would load with a warning that Keras
        # skipped the saved optimizer's variables (it builds its own from the compile config).
        hypermodel.built_before_tracing(model, dataset.validation)
        if config.final_epochs:
            echo(f"{what}: no time left in the budget to train on; kept as its trial left it")
        return model
    if tracker is not None:
        callbacks = [*callbacks, keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: (tracker.log_metrics(logs, step=epoch + 1),
                                              further_logs.append((epoch + 1, dict(logs)))))]
    callbacks = [*callbacks, SaysProgress(echo, what, task.further_monitor[0], epochs)]
    further = hypermodel.fit_further(trial.hyperparameters, model, dataset.train, dataset.validation,
                                     initial_epoch=trial.best_step + 1, epochs=epochs, callbacks=callbacks)
    if tracker is not None:
        tracker.log_metrics(further.metrics())
    echo(wrapped(further_line(what, further)))  # "none beat its start ..." runs past the width
    return model


def further_line(what: str, further) -> str:
    """What the further training did and kept: `trial 05 trained on 14 epochs, kept epoch 11
    (val_loss 0.0512 -> 0.0398); val_accuracy 0.9800 -> 0.9860`."""
    ran = f"{what} trained on {counted(further.epochs, 'epoch')}"
    if further.kept_epoch is None:
        kept = f"none beat its start on {further.monitored} ({further.start_monitored:.4f}): kept as it was"
    else:
        kept = f"kept epoch {further.kept_epoch} ({further.monitored} {further.start_monitored:.4f} -> " \
               f"{further.kept_monitored:.4f})"
    if further.monitored == further.objective:
        return f"{ran}, {kept}"
    return f"{ran}, {kept}; {further.objective} {further.start:.4f} -> {further.kept:.4f}"


def average_model(members: list, trial_ids: list[str], task, spec):
    """One Keras model whose output is the mean of the members' outputs: it loads, serves, is
    tested and fine-tuned like any single model. Its members are uncompiled copies, named after
    their trials: a compiled member would be saved with its own optimizer, which Keras rebuilds
    and warns about on every load."""
    import keras

    from nnlab.models.layers import AVERAGE_MODEL
    from nnlab.tabular import input_of

    copies = []
    for member, trial_id in zip(members, trial_ids):
        copy = keras.models.clone_model(member)
        copy.set_weights(member.get_weights())
        copy.name = f"trial_{trial_id}"
        copies.append(copy)
    structure = input_of(members[0])  # one tensor, or a table's dict of one per column
    if isinstance(structure, dict):
        inputs = {key: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
                  for key, tensor in structure.items()}
    else:
        inputs = keras.Input(shape=structure.shape[1:], dtype=structure.dtype, name="inputs")
    # In float32, as each member's output is, under mixed precision too.
    outputs = keras.layers.Average(name="average", dtype="float32")([copy(inputs) for copy in copies])
    model = keras.Model(inputs, outputs, name=AVERAGE_MODEL)
    model.compile(optimizer="adam", **task.compile_options(spec))  # its loss as its members' (spec: their data's)
    model.optimizer.build(model.trainable_variables)  # saved and loaded whole, ready to train on
    return model


def _joined(tag_sets: list[dict]) -> dict:
    """One set of tags for several models: a value they share as it is, else each one's in order."""
    keys = dict.fromkeys(key for tags in tag_sets for key in tags)
    return {key: tag_sets[0][key] if all(tags.get(key) == tag_sets[0].get(key) for tags in tag_sets)
            else ",".join(str(tags.get(key, "")) for tags in tag_sets) for key in keys}

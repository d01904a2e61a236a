"""A real search end to end: real Keras training, real KerasTuner, a real MLflow store in tmp_path."""

from __future__ import annotations

import re
from dataclasses import replace

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

import nnlab
from nnlab.config import ExperimentConfig
from nnlab.errors import SearchError
from nnlab.search import run_search

EPOCH_METRICS = {"loss", "accuracy", "val_loss", "val_accuracy"}
TRIAL_METRICS = {"best_val_accuracy", "best_epoch", "param_count", "train_seconds"}


def runs_of(tracking_uri, experiment="mnist"):
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return parents, children


@pytest.fixture
def config(tracking_uri):
    return ExperimentConfig(name="mnist", tuner="random", max_trials=2, epochs=1, seed=7, batch_size=64,
                            final_epochs=0, ensemble=0, tracking_uri=tracking_uri)


def test_search_tracks_trials_and_registers_the_champion(workdir, config, small_mnist, tracking_uri):
    lines = []
    config = ExperimentConfig(**{**config.__dict__, "final_epochs": 2})
    result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lines.append)

    parents, children = runs_of(tracking_uri)
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert (tags["nnlab.dataset"], tags["nnlab.model"], tags["nnlab.tuner"], tags["nnlab.seed"]) == ("mnist", "cnn", "random", "7")
    assert {"test_accuracy", "test_loss"} <= set(parent.data.metrics)
    assert parent.data.metrics["test_accuracy"] == pytest.approx(result.test_metrics["test_accuracy"])
    # The champion trained on from its checkpoint (epoch 1): epochs 2 and 3 on the parent run,
    # and it kept whichever weights validated better.
    client = MlflowClient(tracking_uri)
    assert [point.step for point in client.get_metric_history(parent.info.run_id, "val_accuracy")] == [2, 3]
    metrics = parent.data.metrics
    assert metrics["further_epochs"] == 2
    # Its rate annealed to zero, it kept its last epoch, or the start where that did not beat it
    # on the validation loss.
    accuracies = [point.value for point in client.get_metric_history(parent.info.run_id, "val_accuracy")]
    assert metrics["best_val_accuracy"] in (metrics["start_val_accuracy"], accuracies[-1])
    # The line says what was kept and by what: the last epoch, or the start.
    said = [line for line in lines if line.startswith(f"trial {result.champion_trial} trained on 2 epochs, ")]
    assert len(said) == 1 and ("kept epoch 2 " in said[0] or "kept as it was" in said[0]) and "val_loss" in said[0]
    assert "  the learning rate annealed to zero over them, keeping its last epoch" in lines

    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"learning_rate", "conv_blocks", "filters_0", "dropout", "activation", "batch_norm"} <= set(child.data.params)
        blocks = int(child.data.params["conv_blocks"])
        assert not {f"filters_{index}" for index in range(blocks, 3)} & set(child.data.params)
        assert EPOCH_METRICS | TRIAL_METRICS <= set(child.data.metrics)
        assert [point.step for point in client.get_metric_history(child.info.run_id, "val_accuracy")] == [1]
        assert child.data.metrics["param_count"] > 1000 and child.data.metrics["best_epoch"] == 1

    # The first trial is the builders' defaults, the baseline the search has to beat.
    first = next(child for child in children if child.data.tags["nnlab.trial_id"] == "0")
    defaults = {"activation": "relu", "batch_norm": "True", "conv_blocks": "2", "filters_0": "32",
                "filters_1": "64", "dense_units": "128", "augment_shift": "0.1", "learning_rate": "0.002"}
    assert {key: first.data.params[key] for key in defaults} == defaults
    second = next(child for child in children if child.data.tags["nnlab.trial_id"] == "1")
    assert {key: second.data.params.get(key) for key in defaults} != defaults

    assert len(result.leaderboard) == 2
    assert result.leaderboard["best_val_accuracy"].is_monotonic_decreasing
    # ensemble = 0: the best trial alone is the champion, as before averages existed.
    assert result.champion_trial == result.leaderboard["trial"].iloc[0]
    assert not {"val_loss_ensemble", "test_accuracy_single"} & set(metrics)
    assert not any(line.startswith("Champion: the average") for line in lines)
    assert nnlab.load_model("mnist-cnn", tracking_uri).name == "cnn"
    progress = [line for line in lines if re.match(r"trial \S+ \(\d+ of \d+\)", line)]
    assert len(progress) == 2 and progress[-1].startswith("trial 1 (2 of 2)  val_accuracy ") and "elapsed" in progress[-1]

    version = client.get_model_version_by_alias("mnist-cnn", "champion")
    assert str(version.version) == result.champion_version == "1"
    assert float(version.tags["test_accuracy"]) == pytest.approx(result.test_metrics["test_accuracy"])
    images = small_mnist.test[0][:5]
    from_registry = mlflow.keras.load_model("models:/mnist-cnn@champion")
    probabilities = from_registry.predict(images, verbose=0)
    assert probabilities.shape == (5, 10)
    for reference in ("mnist-cnn", "mnist-cnn@champion", "mnist-cnn/1"):
        np.testing.assert_allclose(nnlab.load_model(reference, tracking_uri).predict(images, verbose=0), probabilities, atol=1e-6)


def test_rerun_resumes_without_duplicates_and_fresh_starts_over(workdir, config, small_mnist, tracking_uri):
    # Feed-forward networks: resuming is the same for every family, and their search here takes 4 s, a CNN's 9 s.
    config = replace(config, model="dfn")
    tuning = workdir / "tuning"
    run_search(config, small_mnist, tuning_root=tuning, echo=lambda line: None)
    again = run_search(config, small_mnist, tuning_root=tuning, echo=lambda line: None)
    parents, children = runs_of(tracking_uri)
    assert (len(parents), len(children)) == (1, 2)
    assert again.trials_run == 0 and not again.newly_registered and again.champion_version == "1"

    # A larger budget continues the same search: one more trial, one more run, a new version.
    more = run_search(ExperimentConfig(**{**config.__dict__, "max_trials": 3}), small_mnist, tuning_root=tuning,
                      echo=lambda line: None)
    parents, children = runs_of(tracking_uri)
    assert (len(parents), len(children), more.trials_run, more.champion_version) == (1, 3, 1, "2")

    fresh = run_search(config, small_mnist, tuning_root=tuning, fresh=True, echo=lambda line: None)
    parents, children = runs_of(tracking_uri)
    assert (len(parents), len(children), fresh.trials_run) == (2, 5, 2)
    assert fresh.parent_run_id != again.parent_run_id


def test_a_search_saved_by_an_earlier_cnn_builder_is_not_resumed(tmp_path):
    """A CNN search saved before convolutions came two a block (its nnlab.json has no
    architecture) holds checkpoints the new layers cannot load: refused, --fresh named."""
    import json

    from nnlab.state import STATE_FILE, open_state

    config = ExperimentConfig(name="mnist")
    directory = tmp_path / "mnist-cnn"
    (directory / "trial_00").mkdir(parents=True)
    (directory / "trial_00" / "trial.json").write_text("{}")
    state = open_state(config, "shipped", directory, fresh=False)  # a new search: the current builder
    saved = json.loads((directory / STATE_FILE).read_text())
    assert saved["settings"]["architecture"] == 2
    (directory / "trial_00").mkdir()
    (directory / "trial_00" / "trial.json").write_text("{}")
    assert open_state(config, "shipped", directory, fresh=False).search_id == state.search_id
    del saved["settings"]["architecture"]  # as nnlab.json was written before issue 15
    (directory / STATE_FILE).write_text(json.dumps(saved))
    with pytest.raises(SearchError, match=r"architecture None -> 2.*--fresh"):
        open_state(config, "shipped", directory, fresh=False)
    # A family whose builder did not change (linear; dfn's did for tables, issue 32): its saved
    # searches resume as before.
    linear = ExperimentConfig(name="mnist", model="linear")
    saved["settings"]["model"] = "linear"
    (directory / STATE_FILE).write_text(json.dumps(saved))
    assert open_state(linear, "shipped", directory, fresh=False).search_id == state.search_id


def test_changed_settings_do_not_mix_into_a_saved_search(searched_store):
    # Refused before anything is created: the shared search is only read.
    changed = replace(searched_store.config, seed=8)
    with pytest.raises(SearchError, match=r"seed 5 -> 8.*--fresh"):
        run_search(changed, searched_store.dataset, tuning_root=searched_store.root / "tuning", echo=lambda line: None)
    parents, children = runs_of(searched_store.tracking_uri)
    assert (len(parents), len(children)) == (1, 3)


def test_hyperband_dfn_search(hyperband_search):
    # max_epochs 3, factor 3: three 1-epoch trials, the best continued to 3 epochs, then 3-epoch
    # trials until the budget of 5.
    result, lines, tracking_uri = hyperband_search.result, hyperband_search.lines, hyperband_search.tracking_uri
    parents, children = runs_of(tracking_uri)
    assert len(children) == 5 and result.registered_name == "mnist-dfn"
    assert all("tuner/epochs" in child.data.params for child in children)
    (continued,) = [child for child in children if "tuner/trial_id" in child.data.params]
    assert continued.data.params["tuner/initial_epoch"] == "1" and continued.data.params["tuner/epochs"] == "3"
    steps = MlflowClient(tracking_uri).get_metric_history(continued.info.run_id, "val_accuracy")
    assert [point.step for point in steps] == [2, 3]
    counted = [re.match(r"trial (\S+) \((\d) of (\d)\)  ", line) for line in lines]
    assert [(match[2], match[3]) for match in counted if match] == [("1", "5"), ("2", "5"), ("3", "5"), ("4", "5"),
                                                                    ("5", "5")]
    assert sorted(match[1] for match in counted if match) == sorted(result.leaderboard["trial"])  # one numbering
    assert result.test_metrics["test_accuracy"] > 0.5


def test_an_average_of_the_best_trials_is_registered_when_it_validates_better(workdir, small_mnist, tracking_uri):
    """ensemble = 3: the best three trials restored and trained on, and their average registered
    (the best alone is not surely better on validation), both tested. The space leaves the
    trials little to differ in but their seeds and learning rates, so that their average is the
    better (validation loss 0.57 against 0.67 for the best alone, measured)."""
    from nnlab.tasks import CLASSIFICATION

    lines = []
    space = {"hidden_layers": 2, "units_0": 128, "units_1": 128, "activation": "relu", "batch_norm": False,
             "dropout": 0.2, "learning_rate": [5e-3, 8e-3]}
    config = ExperimentConfig(name="mnist", model="dfn", tuner="random", max_trials=3, epochs=1, final_epochs=1, seed=7,
                              batch_size=64, ensemble=3, keep_checkpoints=1, space=space, tracking_uri=tracking_uri)
    result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lines.append)
    parent = runs_of(tracking_uri)[0][0]
    metrics = parent.data.metrics
    assert metrics["val_loss_ensemble"] < metrics["val_loss_single"]
    trials = result.champion_trial.split(",")
    assert len(trials) == 3 and set(trials) == set(result.leaderboard["trial"])
    # keep_checkpoints 1 does not prune the members: each was restored and trained on.
    assert sum(bool(re.match(r"trial \S+ \(member \d of 3\) trained on 1 epoch, ", line)) for line in lines) == 3
    assert f"Champion: the average of trials {', '.join(trials)} (validation loss" in "\n".join(lines)
    assert metrics["val_single_better_share"] == 0.0
    assert parent.data.tags["nnlab.champion_trial"] == result.champion_trial
    assert metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy_ensemble"]) and "test_accuracy_single" in metrics
    model = nnlab.load_model("mnist-dfn", tracking_uri)
    assert [layer.name for layer in model.layers[1:]] == [f"trial_{trial}" for trial in trials] + ["average"]
    assert CLASSIFICATION.score(small_mnist.test[1], model.predict(small_mnist.test[0], verbose=0)) == pytest.approx(
        metrics["test_accuracy"])


def test_alias_moves_only_to_a_better_champion(workdir, tracking_uri, small_mnist):
    import keras_tuner

    from nnlab.models import get_builder
    from nnlab.tracking import SearchTracker

    model = get_builder("dfn")(keras_tuner.HyperParameters(), small_mnist.spec)
    tracker = SearchTracker("alias-check", tracking_uri)
    tracker.open_search("s1", "search", {}, {})
    versions = []
    inputs = small_mnist.test[0][:2]
    for accuracy in (0.90, 0.85, 0.95):
        record = tracker.log_champion(model, "alias-check-dfn", inputs, model.predict(inputs, verbose=0),
                                      {"test_accuracy": accuracy, "test_loss": 0.1}, "0", [])
        versions.append((record.version, record.promoted))
    tracker.close_search()
    assert versions == [("1", True), ("2", False), ("3", True)]
    assert str(MlflowClient(tracking_uri).get_model_version_by_alias("alias-check-dfn", "champion").version) == "3"


# The command end to end (an experiment file by name, flags over it, the trials in worker
# processes) is checked on the one search test_output.py runs for what the command prints.


def test_results_say_which_version_keeps_the_alias():
    import pandas as pd

    from nnlab.commands import print_results as _print_results
    from nnlab.pipeline import SearchResult

    result = SearchResult(
        registered_name="mnist-cnn", parent_run_id="0", tracking_uri="sqlite:///mlruns/mlflow.db",
        leaderboard=pd.DataFrame({"trial": ["0"], "best_val_accuracy": [0.98]}), champion_trial="0",
        champion_version="2", test_metrics={"test_accuracy": 0.97}, promoted=False, alias_holder=("1", 0.985),
        newly_registered=True, trials_run=1, experiment="mnist", model="cnn", experiment_id="4",
    )
    lines = []
    _print_results(result, echo=lines.append)
    assert "Registered mnist-cnn version 2; alias champion stays on version 1 (test_accuracy 0.9850), which tested better." in lines
    # A tie keeps the alias too, and says so (not "better").
    lines = []
    _print_results(replace(result, test_metrics={"test_accuracy": 0.985}), echo=lines.append)
    assert "Registered mnist-cnn version 2; alias champion stays on version 1 (test_accuracy 0.9850), which tested the same." in lines
    assert ("Browse: python -m nnlab.ui   (or: mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db); then open "
            "http://127.0.0.1:5000/#/experiments/4/runs?workflowType=machine_learning") in lines
    assert "Report: python -m nnlab.report mnist --model cnn" in lines


def test_ties_are_ranked_by_validation_loss_and_an_average_takes_distinct_trials(tmp_path):
    """400-500 validation images make val_accuracy ties common: the lower val_loss at the best
    epoch ranks first. An average champion's members have different hyperparameters: a
    Hyperband continuation (same values, other tuner/ bookkeeping) of a member is skipped."""
    import keras_tuner

    from nnlab.oracles import DefaultsFirst, RanksTrials, ReportsTrials, StopsOnRequest

    oracle_class = type("Ranked", (DefaultsFirst, RanksTrials, StopsOnRequest, ReportsTrials,
                                   keras_tuner.oracles.RandomSearchOracle), {})
    oracle = oracle_class(objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=5)
    oracle._set_project_dir(str(tmp_path), "ranked")

    def trial(trial_id, units, accuracies, losses, **bookkeeping):
        hp = keras_tuner.HyperParameters()
        hp.values.update({"units": units, **bookkeeping})
        made = keras_tuner.engine.trial.Trial(hp, trial_id=trial_id, status="COMPLETED")
        for step, (accuracy, loss) in enumerate(zip(accuracies, losses)):
            made.metrics.update("val_accuracy", accuracy, step=step)
            made.metrics.update("val_loss", loss, step=step)
        oracle.score_trial(made)
        oracle.trials[trial_id] = made
        return made

    trial("00", 64, [0.95, 0.98], [0.20, 0.09])  # best at step 1: loss 0.09
    trial("01", 128, [0.98, 0.97], [0.06, 0.05])  # best at step 0: loss 0.06, its lower later loss is not the one
    trial("02", 128, [0.97, 0.98], [0.10, 0.07], **{"tuner/epochs": 2, "tuner/trial_id": "01"})  # 01 continued
    trial("03", 32, [0.96], [0.12])
    assert [best.trial_id for best in oracle.get_best_trials(4)] == ["01", "02", "00", "03"]
    assert [best.trial_id for best in oracle.best_distinct_trials(3)] == ["01", "00", "03"]
    assert [best.trial_id for best in oracle.best_distinct_trials(1)] == ["01"]

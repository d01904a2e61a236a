"""Cross-validation's folds (nnlab/data/folds.py): stratified for classes, shuffled for a table's
values, in time order for a series; which searches make them by default; what is refused."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nnlab.config import load_config
from nnlab.data.folds import DEFAULT_FOLDS, SMALL_TABLE_ROWS, fold_indices, folds_for, joined, take
from nnlab.errors import ConfigError, DataError


def test_classification_folds_are_stratified_and_score_every_row_once():
    targets = np.repeat([0, 1, 2], [50, 30, 10])
    folds = fold_indices(targets, 5, "classification", "table", seed=1)
    assert len(folds) == 5
    validated = np.concatenate([validation for _train, validation in folds])
    assert sorted(validated) == list(range(len(targets)))  # every row validated exactly once
    for train, validation in folds:
        assert not set(train) & set(validation)
        assert np.bincount(targets[validation]).tolist() == [10, 6, 2]  # each class in proportion
    assert [list(v) for _t, v in folds] != [list(v) for _t, v in fold_indices(targets, 5, "classification",
                                                                               "table", seed=2)]


def test_a_series_folds_in_time_order_and_values_are_shuffled():
    for train, validation in fold_indices(np.zeros(60), 4, "regression", "sequence", seed=1):
        assert train.max() < validation.min()  # trained on the weeks before, never after
    folds = fold_indices(np.arange(40.0), 4, "regression", "table", seed=1)
    assert sorted(np.concatenate([v for _t, v in folds])) == list(range(40))
    assert np.any(np.diff(folds[0][1]) > 1)  # shuffled: a fold is not one block of neighbouring rows


def test_too_few_rows_for_the_folds_are_refused():
    with pytest.raises(DataError, match="the smallest class has 3 training and validation rows: too few for 5 folds"):
        fold_indices(np.array([0] * 20 + [1] * 3), 5, "classification", "table", seed=1)
    with pytest.raises(DataError, match="too few for 5 time-ordered folds"):
        fold_indices(np.zeros(8), 5, "regression", "sequence", seed=1)


def test_which_searches_cross_validate_by_default():
    assert folds_for(None, 455, "table") == DEFAULT_FOLDS
    assert folds_for(None, SMALL_TABLE_ROWS, "table") == 0
    assert folds_for(None, 800, "image") == 0 and folds_for(None, 500, "sequence") == 0
    assert folds_for(3, 50_000, "image") == 3 and folds_for(0, 100, "table") == 0


def test_rows_join_and_split_as_arrays_and_tables():
    import pandas as pd

    inputs, targets = joined((pd.DataFrame({"a": [1.0, 2.0]}), np.array([0, 1])),
                             (pd.DataFrame({"a": [3.0]}), np.array([1])))
    assert list(take(inputs, np.array([2, 0]))["a"]) == [3.0, 1.0] and list(targets) == [0, 1, 1]
    images, _labels = joined((np.zeros((2, 4, 4)), np.zeros(2)), (np.ones((1, 4, 4)), np.ones(1)))
    assert take(images, np.array([2])).sum() == 16


@pytest.mark.parametrize("flags, message", [
    ({"cross_validation": 1}, "--cross-validation 1 must be 0 (one validation split) or at least 2 folds"),
    ({"cross_validation": -2}, "--cross-validation -2 must be 0"),
    ({"executions_per_trial": 0}, "--executions-per-trial 0 must be at least 1"),
])
def test_cross_validation_settings_are_checked(flags, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("wine", flags)


def test_the_command_refuses_folds_it_cannot_make(workdir, capsys):
    from nnlab.search import main

    # A GAN's trials are scored by its judge; wine's smallest class has 48 rows for 60 folds.
    assert main(["mnist", "--model", "gan", "--cross-validation", "3"]) == 2
    error = capsys.readouterr().err
    assert "--cross-validation 3: the gan family's trials are scored by its judge" in error
    assert "Traceback" not in error
    assert main(["wine", "--cross-validation", "60"]) != 0
    error = capsys.readouterr().err
    assert "too few for 60 folds" in error and "Traceback" not in error
    assert not (workdir / "mlruns" / "mlflow.db").exists() and not (workdir / "tuning").exists()  # refused first


def test_the_leaderboard_says_when_the_best_trials_are_within_one_example():
    import pandas as pd

    from nnlab.pipeline import ties_note
    from nnlab.tasks import get_task

    leaderboard = pd.DataFrame({"trial": ["04", "01", "07"], "best_val_accuracy": [0.98, 0.975, 0.95]})
    note = ties_note(leaderboard, get_task("classification"), 142)  # one example: 0.0070
    assert note.startswith("Trials 04 and 01 are within one validation example of each other in val_accuracy")
    assert "(1/142 = 0.0070): ranked on val_loss" in note
    assert ties_note(leaderboard, get_task("classification"), 1000) is None  # 0.005 apart: five examples
    assert ties_note(leaderboard.rename(columns={"best_val_accuracy": "best_val_rmse"}),
                     get_task("regression"), 142) is None


def test_a_fit_out_of_time_ends_the_trial_on_the_fits_it_ran(workdir, tracking_uri):
    import mlflow

    import nnlab

    result = nnlab.search("wine", tuner="random", max_trials=1, epochs=3, final_epochs=1, cross_validation=3,
                          trial_timeout=0.001, tracking_uri=tracking_uri, verbose=False)
    client = mlflow.MlflowClient(tracking_uri)
    trial = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")[0]
    assert trial.data.tags.get("nnlab.timed_out") == "true"
    names = set(trial.data.metrics)
    assert "fold1/val_accuracy" in names and not any(name.startswith(("fold2/", "fold3/")) for name in names)
    assert "best_val_accuracy_std" not in names  # one fit: no spread


def test_a_trial_of_several_fits_is_scored_at_the_best_epoch_of_their_mean_curve():
    """Not each fold's own best (which flatters every trial): one epoch for all, over the epochs
    they all ran, the spread of the fits at that epoch beside it; KerasTuner gets the same History."""
    import keras

    from nnlab.tasks import get_task
    from nnlab.tuner import mean_history, summarise

    def history(accuracies, losses):
        made = keras.callbacks.History()
        made.epoch = list(range(len(accuracies)))
        made.history = {"val_accuracy": accuracies, "val_loss": losses, "loss": losses}
        return made

    first = history([0.5, 0.9, 0.6, 0.7], [1.0, 0.3, 0.8, 0.7])  # its own best: epoch 2
    second = history([0.5, 0.6, 0.9], [1.0, 0.9, 0.2])  # its own best: epoch 3; stopped sooner
    merged = mean_history([first, second])
    assert merged.epoch == [0, 1, 2] and merged.history["val_accuracy"] == pytest.approx([0.5, 0.75, 0.75])
    summary = summarise([first, second], get_task("classification"))
    # Epochs 2 and 3 tie on the mean (0.75); the first is kept, as for one fit. The mean of each
    # fold's own best would say 0.9.
    assert summary["best_val_accuracy"] == pytest.approx(0.75) and summary["best_epoch"] == 2
    assert summary["best_val_accuracy_std"] == pytest.approx(0.15)
    assert summary["best_epoch_val_loss"] == pytest.approx(0.6)
    broken = history([0.5, 0.6], [1.0, float("nan")])
    with pytest.raises(Exception, match="loss became nan at epoch 2"):
        summarise([first, broken], get_task("classification"))


def test_a_trial_of_several_fits_times_its_epochs_within_each_fit():
    """The pace line and the time budget take a trial's epoch seconds; a fold's first epoch builds
    and traces its model. Two folds of three 1 s epochs, 4 s of set-up each: 1 s an epoch (timing
    across the folds' gap said 1.8 s)."""
    from nnlab.tuner import epoch_seconds

    assert epoch_seconds([[0.0, 5.0, 6.0, 7.0], [7.5, 12.0, 13.0, 14.0]]) == pytest.approx(1.0)
    assert epoch_seconds([[0.0, 5.0], [5.0, 9.0]]) == pytest.approx(4.5)  # one epoch a fit: the first, whole
    assert epoch_seconds([[0.0]]) == 0.0 and epoch_seconds([]) == 0.0  # no epoch ended


def test_repeats_score_a_trial_as_the_mean_of_its_fits(workdir, tracking_uri, capsys):
    import mlflow

    import nnlab

    result = nnlab.search("wine", tuner="random", max_trials=1, epochs=2, final_epochs=1, cross_validation=0,
                          executions_per_trial=2, tracking_uri=tracking_uri)
    # The start line counts every fit's epochs (it said 2).
    assert "Starting search wine-dfn (random, 1 trial of 2 fits, 4 epochs in all at most)" in capsys.readouterr().out
    client = mlflow.MlflowClient(tracking_uri)
    trial = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")[0]
    metrics = trial.data.metrics
    assert {"repeat1/val_accuracy", "repeat2/val_accuracy", "best_val_accuracy_std"} <= set(metrics)
    curves = [[point.value for point in sorted(client.get_metric_history(trial.info.run_id, f"repeat{n}/val_accuracy"),
                                               key=lambda point: point.step)] for n in (1, 2)]
    length = min(map(len, curves))
    mean = np.mean([curve[:length] for curve in curves], axis=0)  # scored on the repeats' mean curve
    assert abs(metrics["best_val_accuracy"] - mean.max()) < 1e-6
    assert metrics["best_epoch"] == int(np.argmax(mean)) + 1
    assert "test_accuracy_refit" not in client.get_run(result.run_id).data.metrics  # no folds: no refit

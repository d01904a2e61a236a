"""What the searching command prints (issue 28), checked on a small search's captured output, as
a user's terminal or log file gets it: only nnlab's lines, each within 120 characters but for a
path or address, and one numbering of trials in the progress, the leaderboard and the MLflow runs.
The same search checks the command end to end (test_search.py's other searches run in-process),
started together with a second search in the same empty folder (test_concurrent.py's point)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import too_wide
from mlflow import MlflowClient

from nnlab.formats import counted
from nnlab.hypermodel import SaysProgress
from nnlab.oracles import TrialReport
from nnlab.progress import pace_line
from test_concurrent import TINY

# What Keras, TensorFlow (its C++ log and absl), MLflow and uvicorn print on their own.
FOREIGN = re.compile(r"Downloading data from|Successfully registered model|Created version|^[IWEF]\d{4} |absl|"
                     r"^WARNING:|^INFO:|Warning: |uvicorn|oneDNN|cuda|Reloading Tuner|Search: Running Trial|\d+/\d+ \S+ [━=]")
PROGRESS = re.compile(r"^trial (\S+) \((\d+) of (\d+)\)  ")


def test_the_search_command_end_to_end_beside_another_says_only_nnlab_lines_with_one_numbering(
        workdir, idx_dir, tmp_path):
    """The command end to end (an experiment file found by name, flags over it, the trials in
    worker processes) and what it prints, on one small search started together with a second one
    in the same empty folder (test_concurrent.py's point): three tests' searches in one."""
    # The default's kind of champion (an average of two) on a tiny search: every kind of line.
    (workdir / "experiments").mkdir()
    (workdir / "experiments" / "mnist.toml").write_text('tuner = "grid"\nfinal_epochs = 1\nbatch_size = 64\n'
                                                        'ensemble = 2\n')
    (workdir / "tiny.toml").write_text(TINY)
    # A cold cache too: neither finds the empty store's template, both make it.
    environment = {**{key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"},
                   "XDG_CACHE_HOME": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "nnlab.search", "mnist", "--tuner", "random", "--max-trials", "2",
               "--epochs", "1", "--worker-trials", "1", "--data-dir", str(idx_dir)]
    search = subprocess.Popen(command, cwd=workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    beside = subprocess.Popen([sys.executable, "-m", "nnlab.search", "tiny.toml", "--model", "linear"], cwd=workdir,
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines, said_at = [], None
        for line in search.stdout:  # each line as it comes, to the end
            lines.append(line.rstrip("\n"))
            if said_at is None and PROGRESS.match(lines[-1]):  # the first trial's line
                said_at = time.monotonic()
        search.wait(timeout=60)
        # Said as it happened, into a pipe too: not held in a buffer until the end (the second trial
        # and the champion's two members train after it).
        assert said_at is not None and time.monotonic() - said_at > 3, "\n".join(lines)
        beside_output, _ = beside.communicate(timeout=600)
    finally:
        search.kill()
        beside.kill()
    outputs = {"cnn": "\n".join(lines), "linear": beside_output}
    for family, process in (("cnn", search), ("linear", beside)):
        assert process.returncode == 0 and "Traceback" not in outputs[family], outputs[family][-3000:]
        assert f"Registered mnist-{family} version 1" in outputs[family]
        # No TensorFlow, absl or CUDA start-up chatter (stderr included).
        chatter = [line for line in outputs[family].splitlines()
                   if any(word in line for word in ("absl", "cuda", "cpu_feature_guard", "rebuild TensorFlow"))]
        assert not chatter, chatter
    stdout = outputs["cnn"]
    assert "trial 1 (2 of 2)" in stdout and "Leaderboard" in stdout and "mlflow ui --backend-store-uri" in stdout
    assert not [line for line in lines if FOREIGN.search(line)]
    assert not too_wide(lines)
    progress = [PROGRESS.match(line) for line in lines if PROGRESS.match(line)]
    said = [match.group(1) for match in progress]
    assert [match.group(2) for match in progress] == ["1", "2"] and len(set(said)) == 2
    # The same names in the leaderboard, the runs and the champion's members.
    start = lines.index(next(line for line in lines if line.startswith("Leaderboard")))
    board = [line.split()[0] for line in lines[start + 2:start + 4]]
    assert sorted(board) == sorted(said)

    # Both searches in the default store they made side by side: one experiment, both in it.
    client = MlflowClient(f"sqlite:///{workdir}/mlruns/mlflow.db")
    experiments = [found for found in client.search_experiments() if found.name == "mnist"]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert sorted(run.data.tags["nnlab.model"] for run in parents) == ["cnn", "linear"]
    parents = {run.data.tags["nnlab.model"]: run for run in parents}
    trials = {family: [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
              for family, parent in parents.items()}
    for family, parent in parents.items():
        assert parent.info.status == "FINISHED"
        assert [trial.info.status for trial in trials[family]] == ["FINISHED"] * {"cnn": 2, "linear": 1}[family]
    assert sorted(run.info.run_name for run in trials["cnn"]) == sorted(f"trial-{trial}" for trial in said)
    members = [line for line in lines if re.match(r"trial \S+ \(member \d of 2\) trained on 1 epoch, kept ", line)]
    assert sorted(line.split()[1] for line in members) == sorted(said)

    # The trials ran in a worker process, replaced after each trial (--worker-trials 1), so that a
    # long search's memory stays flat: the default for a search of more trials than a worker runs.
    ran_by = [child.data.tags["nnlab.worker"] for child in trials["cnn"]]
    assert all(worker.startswith("worker1, process ") for worker in ran_by) and len(set(ran_by)) == 2
    assert (workdir / "tuning" / "mnist-cnn" / "nnlab.json").is_file()
    # The file set final_epochs, batch_size and ensemble; the flag overrode its tuner.
    params = parents["cnn"].data.params
    assert (params["tuner"], params["final_epochs"], params["batch_size"], params["max_trials"]) == ("random", "1", "64", "2")
    assert params["ensemble"] == "2"


def test_a_count_takes_its_nouns_plural_but_for_one():
    assert [counted(number, "trial") for number in (0, 1, 2)] == ["0 trials", "1 trial", "2 trials"]
    assert counted(1, "training and validation row") == "1 training and validation row"


def test_a_leaderboard_of_trials_that_ran_again_counts_runs_and_trials():
    import pandas as pd

    from nnlab.tracking import runs_counted

    assert runs_counted(pd.DataFrame({"trial": ["0", "1", "2", "3"]})) == "4 trials"
    assert runs_counted(pd.DataFrame({"trial": ["0", "1", "1", "2", "3"]})) == "5 runs of 4 trials"
    assert runs_counted(pd.DataFrame({"trial": ["0", "0"]})) == "2 runs of 1 trial"
    assert runs_counted(pd.DataFrame({"trial": []})) == "0 trials"


def test_the_champion_says_where_its_further_training_is(small_mnist):
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    lines = []
    progress = SaysProgress(lines.append, "trial 05 (member 1 of 3)", "val_loss", epochs=3, every=0)
    x, y = small_mnist.train
    model.fit(x[:64], y[:64], validation_data=(x[:32], y[:32]), epochs=3, verbose=0, callbacks=[progress])
    # A line at each epoch's end but the last (the member's own line follows it), with the time left.
    assert len(lines) == 2 and all(re.match(r"trial 05 \(member 1 of 3\): epoch [12] of up to 3  val_loss \d\.\d{4}  "
                                            r"at most \S+ left for it$", line) for line in lines)
    assert np.isfinite(float(lines[0].split("val_loss ")[1].split()[0]))


def test_the_pace_of_a_real_trial_counts_every_epoch_it_trained(small_mnist, workdir, tracking_uri):
    """KerasTuner keeps one value of a trial's metrics for the whole trial: its epochs are the
    tuner's count (TIMING_METRICS). Two trials of 3 epochs planned: after the first, the second at
    its pace is exactly the first's seconds (3 epochs + its set-up); counting one epoch instead
    said 4 epochs' more, and the time budget took epochs for set-up."""
    from nnlab.config import ExperimentConfig
    from nnlab.pipeline import run_search

    config = ExperimentConfig(name="mnist", model="dfn", tuner="random", max_trials=2, epochs=3, patience=3,
                              final_epochs=0, ensemble=1, tracking_uri=tracking_uri)
    lines = []
    result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lines.append)
    (pace,) = [line for line in lines if line.startswith("At trial 0's pace")]
    forecast = re.search(r"trials about (\d+(?:\.\d+)?)s more", pace)
    assert forecast, pace
    board = result.leaderboard
    (seconds,) = board.loc[board["trial"].astype(str) == "0", "train_seconds"]
    assert float(forecast.group(1)) == pytest.approx(seconds, rel=0.06, abs=0.06), pace


def test_the_planned_epochs_of_hyperband_count_a_cross_validated_rounds_fits_from_scratch():
    """Hyperband at 6 epochs, factor 3: 5 trials of 2 epochs, 2 of them continued to 6, 3 of 6.
    A continued trial trains 4 more; a cross-validated one retrains its folds from scratch (6)."""
    import keras_tuner

    from nnlab.oracles import fit_epochs, planned_epochs

    oracle = keras_tuner.oracles.HyperbandOracle(objective="loss", max_epochs=6, factor=3)
    oracle.max_trials = None
    assert planned_epochs(oracle, 6) == 5 * 2 + 2 * 4 + 3 * 6
    assert planned_epochs(oracle, 6, from_scratch=True) == 5 * 2 + 2 * 6 + 3 * 6
    continued = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="07")
    continued.hyperparameters.values.update({"tuner/epochs": 6, "tuner/initial_epoch": 2})
    oracle.trials["07"] = continued
    assert fit_epochs(oracle, "07", 6) == 4 and fit_epochs(oracle, "07", 6, from_scratch=True) == 6
    assert fit_epochs(oracle, "99", 60) == 60  # not a Hyperband trial: the experiment's epochs


def test_the_pace_after_the_first_trial_counts_its_epochs_and_its_set_up():
    first = TrialReport(trial_id="00", number=1, planned=10, status="COMPLETED", score=0.98, best_score=0.98,
                        elapsed_seconds=25.0, seconds=20.0, epoch_seconds=5.0, epochs=2, best_trial_id="00")
    # 34 epochs left at 5 s, and 9 trials to set up at the 10 s the first took beyond its epochs.
    assert pace_line(first, planned_epochs=36, workers=1, members=3, final_epochs=20) == (
        "At trial 00's pace (5.0 s an epoch + 10 s a trial): trials about 4m20s more, champion up to 5m00s "
        "(3 x 20 epochs)")
    assert pace_line(first, planned_epochs=36, workers=2, members=0, final_epochs=20).endswith("trials about 2m10s more")
    # Five folds of 4 epochs each: 32 further epochs of a fit, each five fits' worth.
    folds = TrialReport(trial_id="00", number=1, planned=10, status="COMPLETED", score=0.98, best_score=0.98,
                        elapsed_seconds=30.0, seconds=25.0, epoch_seconds=1.0, epochs=20, fits=5, best_trial_id="00")
    assert pace_line(folds, planned_epochs=36, workers=1, members=0, final_epochs=0) == (
        "At trial 00's pace (1.0 s an epoch + 5 s a trial): trials about 3m25s more")  # 160 s + 9 x 5 s
    # Its fits stopped early, at 4 of the 20 epochs a fit could train: the others at its pace too.
    assert pace_line(folds, planned_epochs=36, workers=1, members=0, final_epochs=0, trial_epochs=20) == (
        "At trial 00's pace (1.0 s an epoch + 5 s a trial): trials about 1m17s more")  # 32 s + 9 x 5 s
    assert pace_line(first, planned_epochs=36, workers=1, members=0, final_epochs=0, trial_epochs=2) == (
        pace_line(first, planned_epochs=36, workers=1, members=0, final_epochs=0))  # trained all it could
    # Under a time budget that ends it first (4m20s of trials and 5m of champion, 3 minutes left):
    # said, as the budget's own stop line will say when it comes.
    assert pace_line(first, planned_epochs=36, workers=1, members=3, final_epochs=20, budget_left=180.0).endswith(
        "(3 x 20 epochs); the time budget ends the search sooner, in 3m00s")
    assert "budget" not in pace_line(first, planned_epochs=36, workers=1, members=3, final_epochs=20, budget_left=600.0)
    quick = TrialReport(trial_id="00", number=1, planned=10, status="COMPLETED", score=0.98, best_score=0.98,
                        elapsed_seconds=3.0, seconds=2.0, epoch_seconds=0.034, epochs=10, fits=5, best_trial_id="00")
    assert pace_line(quick, planned_epochs=600, workers=1, members=0, final_epochs=0).startswith(
        "At trial 00's pace (0.034 s an epoch + 2 s a trial)")  # a table's: not "0.0 s an epoch"
    failed = TrialReport(trial_id="00", number=1, planned=10, status="FAILED", score=None, best_score=None,
                         elapsed_seconds=5.0, seconds=5.0, epoch_seconds=0.0)
    assert pace_line(failed, planned_epochs=36, workers=1, members=3, final_epochs=20) is None

"""A search that meets trouble: failing trials, budgets, pruned checkpoints, reproducibility,
safe loading. Real Keras training, real KerasTuner, a real MLflow store in tmp_path."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from dataclasses import replace

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

import nnlab
from nnlab.budget import ENDING_SECONDS, TimeBudget, parse_duration
from nnlab.config import ExperimentConfig
from nnlab.errors import SearchFailed, TrackingError
from nnlab.search import parse_args, run_search
from conftest import with_nan_inputs
from test_search import runs_of


def quiet(_line):
    pass


@pytest.fixture
def config(tracking_uri):
    return ExperimentConfig(name="mnist", model="dfn", tuner="random", max_trials=2, epochs=2, seed=5,
                            batch_size=64, final_epochs=0, tracking_uri=tracking_uri)


def test_nan_loss_fails_the_trial_at_once_and_the_search_stops_after_the_limit(workdir, config, small_mnist, tracking_uri):
    # A NaN in the training images: the loss goes NaN in the first epoch, whatever the trial draws.
    config = replace(config, max_trials=5, epochs=3, max_consecutive_failed_trials=2)
    with pytest.raises(SearchFailed, match=r"stopped: 2 trials failed in a row \(max_consecutive_failed_trials = 2\)") as failed:
        run_search(config, with_nan_inputs(small_mnist), tuning_root=workdir / "tuning", echo=quiet)
    assert failed.value.details == ["trial 0: FailedTrialError: loss became nan at epoch 1",  # trial ids
                                    "trial 1: FailedTrialError: loss became nan at epoch 1"]
    parents, children = runs_of(tracking_uri)
    assert [child.info.status for child in children] == ["FAILED", "FAILED"]
    client = MlflowClient(tracking_uri)
    for child in children:
        assert child.data.tags["nnlab.failure"] == "FailedTrialError: loss became nan at epoch 1"
        assert "Traceback" in mlflow.artifacts.load_text(f"runs:/{child.info.run_id}/failure.txt")
        # TerminateOnNaN stopped it in its first epoch of three.
        assert len(client.get_metric_history(child.info.run_id, "loss")) == 1
        # The epoch it ran is drawn all the same: the curves show how it failed.
        assert [artifact.path for artifact in client.list_artifacts(child.info.run_id, "plots")] == ["plots/learning_curves.png"]
    assert parents[0].info.status == "FAILED" and "2 trials failed in a row" in parents[0].data.tags["nnlab.stopped"]


def test_a_trial_out_of_memory_fails_and_the_search_goes_on_until_the_limit(workdir, small_idx_dir, tracking_uri):
    # Most dense heads in this range need terabytes: under a memory limit like a container's,
    # TensorFlow cannot allocate them. The first trial (the defaults, 128 units) fits. A limit of
    # two failures in a row: TensorFlow's allocator waits 10 s for memory before each one fails.
    (workdir / "oom.toml").write_text(
        'name = "mnist"\nmodel = "cnn"\ntuner = "random"\nmax_trials = 6\nepochs = 1\nfinal_epochs = 0\n'
        "max_consecutive_failed_trials = 2\n[space]\ndense_units = [64, 100_000_000]\n"
    )

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    done = subprocess.run([sys.executable, "-m", "nnlab.search", "oom.toml", "--data-dir", str(small_idx_dir),
                           "--tracking-uri", tracking_uri], capture_output=True, text=True, timeout=600,
                          preexec_fn=limit_memory)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("nnlab.search:")]
    assert errors[0] == ("nnlab.search: error: search mnist-cnn stopped: 2 trials failed in a row "
                         "(max_consecutive_failed_trials = 2); fix the cause, then rerun with --fresh")
    assert [line.split(":")[1].strip() for line in errors[1:]] == ["trial 1", "trial 2"]  # trial ids
    assert all("ResourceExhaustedError" in line and "OOM when allocating" in line for line in errors[1:])
    assert "trial 0 (1 of 6)  val_accuracy" in done.stdout and "trial 1 (2 of 6)  FAILED: ResourceExhaustedError" in done.stdout
    parents, children = runs_of(tracking_uri)
    statuses = {child.data.tags["nnlab.trial_id"]: child.info.status for child in children}
    assert statuses == {"0": "FINISHED", "1": "FAILED", "2": "FAILED"}
    assert all("OOM when allocating" in child.data.tags["nnlab.failure"] for child in children if child.info.status == "FAILED")
    assert parents[0].info.status == "FAILED"


def test_time_budget_stops_starting_trials_and_still_registers_a_champion(workdir, config, small_mnist, tracking_uri):
    # One second: the first trial always starts (nothing to estimate from), the second would not fit.
    config = replace(config, max_trials=4, time_budget=1.0, final_epochs=2)
    lines = []
    result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lines.append)
    assert result.trials_run == 1 and result.champion_version == "1"
    # What is left is under a second: how far under depends on the machine (0s here, 0.11s on a faster one).
    assert re.match(r"time budget 1s: (0|0\.\d+)s left, the next trial and the champion need about", result.stopped_because)
    assert any(line.startswith("No further trials: time budget 1s") for line in lines)
    # The budget's end stopped the trial too (after its first batch) and left no time for the champion.
    assert "(stopped at the end of time budget 1s)" in next(line for line in lines if line.startswith("trial 0 (1 of 4)"))
    assert "trial 0: no time left in the budget to train on; kept as its trial left it" in lines
    parents, children = runs_of(tracking_uri)
    assert len(children) == 1 and parents[0].info.status == "FINISHED"
    assert children[0].data.tags["nnlab.timed_out"] == "true"
    assert parents[0].data.tags["nnlab.stopped"] == result.stopped_because
    assert "further_epochs" not in parents[0].data.metrics


def test_a_search_whose_trials_all_ran_is_not_said_to_be_stopped_by_its_budget(workdir, config, small_mnist):
    # One trial planned, a budget too short for a second: the search ended because it was done.
    config = replace(config, max_trials=1, time_budget=1.0, final_epochs=0)
    lines = []
    result = run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lines.append)
    assert result.trials_run == 1 and result.stopped_because is None
    assert not any(line.startswith("No further trials") for line in lines)


def test_time_budget_keeps_room_for_the_next_trial_the_champion_and_the_ending():
    now = [0.0]
    budget = TimeBudget(600, final_epochs=10, clock=lambda: now[0])
    assert budget.stop_reason() is None  # nothing measured yet
    now[0] = 100
    budget.record_trial(100, epoch_seconds=20)
    assert budget.stop_reason() is None  # 500 s left >= 100 + 10 * 20 + the ending
    now[0] = 320
    budget.record_trial(60, epoch_seconds=30)  # the slowest rate counts
    # 10 epochs at 30 s and an epoch's start: 330 s, at most half the budget.
    assert budget.needed_for_next() == 100 + 300 + ENDING_SECONDS
    assert budget.stop_reason() == "time budget 10m00s: 4m40s left, the next trial and the champion need about 6m44s"
    # The champion's reserve is at most half the budget: 3 x 20 epochs at 10 s would be all 10 minutes.
    now[0] = 0
    budget = TimeBudget(600, final_epochs=20, members=3, clock=lambda: now[0])
    budget.record_trial(30, epoch_seconds=10)
    assert budget.needed_for_next() == 30 + 300 + ENDING_SECONDS
    now[0] = 260
    assert budget.stop_reason() is None  # 340 s left
    now[0] = 280
    assert budget.stop_reason() == "time budget 10m00s: 5m20s left, the next trial and the champion need about 5m34s"


def test_time_budget_ends_training_before_the_champions_passes_and_fits_each_member_its_epochs():
    now = [0.0]
    # 10,500 rows to predict a member at the end, 4,500 trained an epoch: 0.75 epochs of passes.
    budget = TimeBudget(180, final_epochs=5, members=3, prediction_epochs=0.75, clock=lambda: now[0])
    budget.record_trial(40, epoch_seconds=4.0, trial_id="05")
    budget.record_trial(20, epoch_seconds=8.0, trial_id="06")
    # The ending: each member's passes at its own rate (the slowest seen for one not measured).
    assert budget.ending(["05", "06", "07"]) == ENDING_SECONDS + 0.75 * (4 + 8 + 8)
    assert budget.ending() == ENDING_SECONDS + 0.75 * 8 * 3  # before the members are known: the slowest
    assert budget.training_deadline(["05"]) == 180 - ENDING_SECONDS - 3
    # As many epochs as fit a member's share at its own rate, an epoch kept for its start.
    assert budget.member_epochs("05", 30, 5) == 5
    assert budget.member_epochs("05", 21, 5) == 4
    assert budget.member_epochs("06", 21, 5) == 1
    assert budget.member_epochs("06", 3, 5) == 0
    assert TimeBudget(60).member_epochs("05", 10, 5) == 5  # nothing measured: the clock stops it
    # Once the champion the search would have now is known, its members' own rates and epochs
    # (a member restored at epoch 2 trains more) stand in for the slowest rate.
    budget.champion_plan = {"05": 5, "06": 4}
    assert budget.champion_seconds() == (5 * 4 + 4) + (4 * 8 + 8)  # each with an epoch for its start
    assert budget.ending() == ENDING_SECONDS + 0.75 * (4 + 8)
    assert budget.needed_for_next() == 40 + 64 + ENDING_SECONDS + 0.75 * 12
    budget.champion_plan = {"05": 5, "06": 9}
    assert budget.champion_seconds() == 90  # 104, but at most half the budget
    budget.champion_plan = {"05": 0, "06": 0}  # final_epochs 0: no further training, no set-up
    assert budget.champion_seconds() == 0


def test_time_budget_reserves_the_set_up_a_trial_measured_for_each_members_start():
    """A member's start is an epoch (its restore and validation passes) and the seconds a trial
    measured beside its epochs (building, tracing), the latest trial's, under the load of the
    moment: half an epoch, kept before, was about half of what the default CNN's start took."""
    budget = TimeBudget(180, final_epochs=5, clock=lambda: 0.0)
    budget.record_trial(40, epoch_seconds=4.0, trial_id="05", epochs=5)  # 20 s of epochs, 20 s beside
    assert budget.set_up == 20
    assert budget.member_epochs("05", 30, 5) == 1  # (30 - 4 - 20) / 4, not 30 / 4 - 0.5
    assert budget.member_epochs("05", 23, 5) == 0
    budget.champion_plan = {"05": 3}
    assert budget.champion_seconds() == 3 * 4 + 4 + 20
    # Three folds of 5 epochs: each fold's fit had its own set-up, the third of what is beside.
    budget.record_trial(90, epoch_seconds=4.0, trial_id="06", epochs=15, fits=3)
    assert budget.set_up == 10
    # The latest trial's, as the load changes: an idle machine's again after a busy one's.
    budget.record_trial(21, epoch_seconds=4.0, trial_id="07", epochs=5)
    assert budget.set_up == 1


@pytest.mark.parametrize(("text", "seconds"), [("900", 900), (900, 900), ("15m", 900), ("1h", 3600),
                                               ("1h30m", 5400), ("90s", 90), ("2.5m", 150)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_time_budget_flag():
    assert parse_args(["mnist", "--time-budget", "15m"]).time_budget == 900
    assert parse_args(["mnist", "--time-budget", "900"]).time_budget == 900
    assert parse_args(["mnist", "--time-budget", "1h"]).time_budget == 3600


def test_trial_timeout_stops_a_trial_and_scores_what_it_finished(workdir, config, small_mnist, tracking_uri):
    config = replace(config, max_trials=1, epochs=5, trial_timeout=0.1, patience=5)
    lines = []
    run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=lines.append)
    _, (child,) = runs_of(tracking_uri)
    assert child.info.status == "FINISHED" and child.data.tags["nnlab.timed_out"] == "true"
    # Stopped within its first epoch (its first batch alone takes longer), which was still validated.
    assert len(MlflowClient(tracking_uri).get_metric_history(child.info.run_id, "val_accuracy")) == 1
    assert child.data.metrics["best_epoch"] == 1
    assert any(line.startswith("trial 0 (1 of 1)  val_accuracy ") and "(stopped at trial_timeout 0.1s)" in line
               for line in lines)


def test_only_the_best_checkpoints_stay(workdir, config, small_mnist):
    config = replace(config, max_trials=4, epochs=1, keep_checkpoints=2, ensemble=0)  # no members to keep
    tuning = workdir / "tuning"
    result = run_search(config, small_mnist, tuning_root=tuning, echo=quiet)
    kept = sorted(path.parent.name for path in (tuning / "mnist-dfn").glob("trial_*/checkpoint.weights.h5"))
    best_two = result.leaderboard["trial"].head(2).tolist()
    assert kept == sorted(f"trial_{trial}" for trial in best_two)
    assert len(list((tuning / "mnist-dfn").glob("trial_*/trial.json"))) == 4  # the trials' records stay


def test_hyperband_continues_from_checkpoints_it_still_needs(hyperband_search):
    # keep_checkpoints 1: the first round's trials must survive until Hyperband has picked the
    # one to continue; the continued trial restores its weights from that checkpoint.
    _, children = runs_of(hyperband_search.tracking_uri)
    assert all(child.info.status == "FINISHED" for child in children) and len(children) == 5
    (continued,) = [child for child in children if "tuner/trial_id" in child.data.params]
    assert continued.data.params["tuner/initial_epoch"] == "1"
    kept = list((hyperband_search.root / "tuning" / "mnist-dfn").glob("trial_*/checkpoint.weights.h5"))
    assert len(kept) < 5 and f"trial_{hyperband_search.result.champion_trial}" in {path.parent.name for path in kept}


def test_same_seed_same_trials_and_metrics(searched_store, tmp_path):
    # The same settings as the shared search, run again in a folder and store of its own.
    def trials_of(uri):
        client = MlflowClient(uri)
        parents, children = runs_of(uri)
        trials = {}
        for child in children:
            curves = {key: [point.value for point in client.get_metric_history(child.info.run_id, key)]
                      for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
            trials[child.data.tags["nnlab.trial_id"]] = (child.data.params, curves)
        return parents[0].data.tags, trials

    uri = f"sqlite:///{tmp_path}/again/mlflow.db"
    second = run_search(replace(searched_store.config, tracking_uri=uri), searched_store.dataset,
                        tuning_root=tmp_path / "again" / "tuning", echo=quiet)
    first = searched_store.result
    tags, first_trials = trials_of(searched_store.tracking_uri)
    _, second_trials = trials_of(uri)
    assert first_trials.keys() == second_trials.keys() == {"0", "1", "2"}
    for trial, (params, curves) in first_trials.items():
        assert second_trials[trial][0] == params
        for key, values in curves.items():
            np.testing.assert_allclose(second_trials[trial][1][key], values, rtol=0, atol=1e-6)
    for key, value in first.test_metrics.items():
        assert second.test_metrics[key] == pytest.approx(value, abs=1e-6)

    import keras
    import keras_tuner
    import tensorflow

    assert tags["nnlab.python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert (tags["nnlab.tensorflow_version"], tags["nnlab.keras_version"], tags["nnlab.keras_tuner_version"],
            tags["nnlab.mlflow_version"]) == (tensorflow.__version__, keras.__version__, keras_tuner.__version__,
                                             mlflow.__version__)
    assert (tags["nnlab.keras_backend"], tags["nnlab.keras_backend_version"]) == (keras.config.backend(),
                                                                                tensorflow.__version__)
    assert len(tags["nnlab.git_commit"]) == 40 or tags["nnlab.git_commit"] == "unknown"


def test_champion_is_a_keras_file_and_code_is_never_loaded(workdir, searched_store, tracking_uri):
    import keras

    client = MlflowClient(searched_store.tracking_uri)
    # A logged model's files are its own, not its run's (MLflow 3): found through the version.
    version = client.get_model_version_by_alias("mnist-cnn", "champion")
    files = [item.path for item in client.list_logged_model_artifacts(version.source.removeprefix("models:/"), "data")]
    assert "data/model.keras" in files

    # A registered model that carries Python code (a Lambda layer) is refused, not run.
    inputs = keras.Input((28, 28))
    outputs = keras.layers.Lambda(lambda images: images * 2)(keras.layers.Flatten()(inputs))
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        # pip_requirements given: MLflow would otherwise infer them by loading the model in a
        # subprocess (15-70 s here), which has nothing to do with what is checked.
        mlflow.keras.log_model(keras.Model(inputs, outputs), name="model", registered_model_name="with-code",
                               pip_requirements=[])
    with pytest.raises(TrackingError, match="refused to load models:/with-code/1: it holds Python code"):
        nnlab.load_model("with-code/1", tracking_uri)


def test_a_trial_run_again_counts_once(tracking_uri):
    # Killed after MLflow closed a trial's run but before KerasTuner saved the trial, a search
    # runs that trial again: the earlier run must not count as a second finished trial.
    from nnlab.tracking import SearchTracker

    tracker = SearchTracker("rerun-check", tracking_uri)
    tracker.open_search("s1", "search", {}, {})
    tracker.start_trial("3", {"units": 64})
    tracker.end_trial("FINISHED", {"best_val_accuracy": 0.5})
    tracker.start_trial("3", {"units": 64})
    tracker.end_trial("FINISHED", {"best_val_accuracy": 0.5})
    tracker.close_search()
    _, children = runs_of(tracking_uri, "rerun-check")
    first, second = sorted(children, key=lambda run: run.info.start_time)
    assert (first.info.status, second.info.status) == ("KILLED", "FINISHED")
    assert first.data.tags["nnlab.rerun_as"] == second.info.run_id


def test_a_space_the_model_cannot_be_built_with_stops_before_anything_is_tracked(workdir, small_mnist, tmp_path, tracking_uri):
    # A fixed dense head of 10^11 units needs petabytes: KerasTuner's first build, before any trial, fails.
    config = ExperimentConfig(name="mnist", model="cnn", tuner="random", max_trials=1, epochs=1, final_epochs=0,
                              tracking_uri=tracking_uri, space={"dense_units": 10**11})
    with pytest.raises(SearchFailed, match=r"cannot start search mnist-cnn: ResourceExhaustedError: .*OOM when "
                                           r"allocating.*\(a \[space\] value the model cannot be built with\?"):
        run_search(config, small_mnist, tuning_root=workdir / "tuning", echo=quiet)
    assert not (tmp_path / "store").exists()  # no MLflow run, not even a store
    # Corrected, the same search starts without --fresh: the refused one never started a trial.
    result = run_search(replace(config, space={"dense_units": 64}), small_mnist, tuning_root=workdir / "tuning", echo=quiet)
    assert result.trials_run == 1


def test_a_fresh_search_that_cannot_start_leaves_the_earlier_one_as_it_was(workdir, small_mnist, tracking_uri):
    """--fresh replaces an earlier search only once the new one has started: here its space
    cannot be built (see above), and the earlier search's state is back, byte for byte."""
    from nnlab.state import open_state

    config = ExperimentConfig(name="mnist", model="dfn", tuner="random", max_trials=1, epochs=1, final_epochs=0,
                              tracking_uri=tracking_uri)
    directory = workdir / "tuning" / "mnist-dfn"
    open_state(config, small_mnist.source, directory, fresh=False)
    (directory / "trial_00").mkdir()
    (directory / "trial_00" / "trial.json").write_text('{"trial_id": "00", "status": "COMPLETED"}')
    before = {path.relative_to(directory): path.read_bytes() for path in directory.rglob("*") if path.is_file()}
    with pytest.raises(SearchFailed, match=r"cannot start search mnist-dfn: ResourceExhaustedError"):
        run_search(replace(config, space={"units_0": 10**11}), small_mnist, tuning_root=workdir / "tuning",
                   fresh=True, echo=quiet)
    assert {path.relative_to(directory): path.read_bytes() for path in directory.rglob("*") if path.is_file()} == before
    assert sorted(path.name for path in (workdir / "tuning").iterdir()) == ["mnist-dfn", "mnist-dfn.lock"]


def test_damaged_search_state_is_reported_and_fresh_starts_over(workdir, config):
    from nnlab.errors import SearchError
    from nnlab.state import open_state

    directory = workdir / "tuning" / "mnist-dfn"
    first = open_state(config, "source", directory, fresh=False)
    (directory / "nnlab.json").write_text('{"search_id": "abc", "sett')  # cut short, as by kill -9
    with pytest.raises(SearchError, match=r"nnlab.json is damaged \(.*\); add --fresh to start a new search"):
        open_state(config, "source", directory, fresh=False)
    again = open_state(config, "source", directory, fresh=True)
    assert again.search_id != first.search_id
    assert open_state(config, "source", directory, fresh=False) == replace(again, replaced_search_id=None)


@pytest.mark.alone
def test_the_search_command_ends_within_seconds_of_its_time_budget(workdir, tracking_uri):
    """--time-budget is the whole command's, wall clock: Python's start, the data, the trials, the
    champion's training, its test passes, registering and figures. The default CNN search on
    the shipped images would run for minutes; 40 s stops it after a trial or two."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "nnlab.search", "mnist", "--time-budget", "40",
                           "--tracking-uri", tracking_uri], capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert "No further trials: time budget 40s" in done.stdout
    # The pace line after the first trial forecasts the planned trials (minutes), and says the budget ends them.
    assert re.search(r"the\s+time\s+budget\s+ends\s+the\s+search\s+sooner,\s+in\s+\d+s\n", done.stdout), done.stdout
    ran = re.search(r"\((\d+) (trials?) run now\)", done.stdout)
    assert ran and (ran.group(1) == "1") == (ran.group(2) == "trial"), done.stdout[-300:]
    assert 30 <= seconds <= 50, f"{seconds:.1f} s\n{done.stdout}"  # within 10 s of the budget, either way
    assert "Registered mnist-cnn version 1" in done.stdout


def test_every_member_trains_on_to_the_same_length():
    """A member restored short of a trial's epochs (from a Hyperband round of 2, or at an early
    best epoch) trains on for the epochs it missed too; final_epochs 0 trains none."""
    from types import SimpleNamespace

    from nnlab.champion import further_epochs

    config = ExperimentConfig(name="mnist", epochs=6, final_epochs=6)
    assert [further_epochs(config, SimpleNamespace(best_step=step)) for step in (1, 3, 5)] == [10, 8, 6]
    assert further_epochs(replace(config, final_epochs=0), SimpleNamespace(best_step=1)) == 0
    # Within a budget, what fits of it (TimeBudget.member_epochs caps it at the time's share).
    budget = TimeBudget(100, final_epochs=6, members=1)
    budget.record_trial(10, epoch_seconds=2.0, trial_id="00")
    assert budget.member_epochs("00", 100, further_epochs(config, SimpleNamespace(best_step=1))) == 10
    assert budget.member_epochs("00", 15, further_epochs(config, SimpleNamespace(best_step=1))) == 6


def test_a_budget_the_trials_left_over_is_the_champions():
    """Within a time budget each member trains on for as many epochs as fit its share of what
    is left, up to BUDGET_FURTHER_EPOCHS: a 15-minute search no longer ends after 6 minutes
    with its members at the 6 epochs of a budget-less one."""
    import time
    from types import SimpleNamespace

    from nnlab.champion import BUDGET_FURTHER_EPOCHS, _share_of_time

    config = ExperimentConfig(name="mnist", epochs=6, final_epochs=6)
    members = [SimpleNamespace(trial_id="00", best_step=5), SimpleNamespace(trial_id="01", best_step=5)]
    assert _share_of_time(config, None, members, 0)[0] == 6  # no budget: further_epochs

    def budget_of(seconds: float) -> TimeBudget:
        budget = TimeBudget(seconds, final_epochs=6, members=2, started=time.monotonic())
        for trial in members:
            budget.record_trial(10, epoch_seconds=2.0, trial_id=trial.trial_id)
        return budget

    epochs, callbacks = _share_of_time(config, budget_of(1000), members, 0)
    assert epochs == BUDGET_FURTHER_EPOCHS == 20 and len(callbacks) == 1  # the room is there: the most
    # 61 s less the ending (4 s and the passes), half of it each: 2 s an epoch, an epoch aside.
    ending = budget_of(61).ending(["00", "01"])
    assert _share_of_time(config, budget_of(61), members, 0)[0] == int((61 - ending) / 2 / 2.0 - 1) < 20
    assert _share_of_time(replace(config, final_epochs=0), budget_of(1000), members, 0)[0] == 0
    # Members of different speeds get the same epochs, not the same seconds: 1 s and 3 s an epoch.
    def uneven(used: float) -> TimeBudget:
        budget = TimeBudget(62, final_epochs=6, members=2, started=time.monotonic() - used)
        budget.record_trial(10, epoch_seconds=1.0, trial_id="00")
        budget.record_trial(10, epoch_seconds=3.0, trial_id="01")
        return budget

    room = 62 - uneven(0).ending(["00", "01"])
    fast = _share_of_time(config, uneven(0), members, 0)[0]
    assert fast == int(room / 4 * 1 / 1.0 - 1) == 13  # a quarter of the time at 1 s an epoch
    # Once the fast one has used its quarter, the slow one gets the rest: as many epochs.
    assert _share_of_time(config, uneven(room / 4), members, 1)[0] == fast

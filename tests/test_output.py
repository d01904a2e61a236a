"""What the searching command prints (issue 28), checked on a small search's captured output, as
a user's terminal or log file gets it: only nnlab's lines, each within 120 characters but for a
path or address, and one numbering of trials in the progress, the leaderboard and the MLflow runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import keras
import numpy as np
from conftest import too_wide
from mlflow import MlflowClient

from nnlab.hypermodel import SaysProgress
from nnlab.oracles import TrialReport
from nnlab.progress import pace_line

# What Keras, TensorFlow (its C++ log and absl), MLflow and uvicorn print on their own.
FOREIGN = re.compile(r"Downloading data from|Successfully registered model|Created version|^[IWEF]\d{4} |absl|"
                     r"^WARNING:|^INFO:|Warning: |uvicorn|oneDNN|cuda|Reloading Tuner|Search: Running Trial|\d+/\d+ \S+ [━=]")
PROGRESS = re.compile(r"^trial (\S+) \((\d+) of (\d+)\)  ")


def test_a_small_search_says_only_nnlab_lines_within_the_width_with_one_numbering(workdir, idx_dir, tracking_uri):
    # The default's kind of champion (an average of two) on a tiny search: every kind of line.
    (workdir / "tiny.toml").write_text('name = "mnist"\ntuner = "random"\nmax_trials = 2\nepochs = 1\n'
                                       'final_epochs = 1\nensemble = 2\nbatch_size = 64\n')
    search = subprocess.Popen([sys.executable, "-m", "nnlab.search", "tiny.toml", "--data-dir", str(idx_dir),
                               "--tracking-uri", tracking_uri], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"})
    lines = []
    while not lines or not PROGRESS.match(lines[-1]):  # up to the first trial's line
        lines.append(search.stdout.readline().rstrip("\n"))
        assert lines[-1] or search.poll() is None, "\n".join(lines)
    said_at = time.monotonic()
    output, _ = search.communicate(timeout=600)
    # Said as it happened, into a pipe too: not held in a buffer until the end (the second trial
    # and the champion's two members train after it).
    assert time.monotonic() - said_at > 3
    assert search.returncode == 0, output[-3000:]
    lines += output.splitlines()
    assert not [line for line in lines if FOREIGN.search(line)]
    assert not too_wide(lines)
    progress = [PROGRESS.match(line) for line in lines if PROGRESS.match(line)]
    said = [match.group(1) for match in progress]
    assert [match.group(2) for match in progress] == ["1", "2"] and len(set(said)) == 2
    # The same names in the leaderboard, the runs and the champion's members.
    start = lines.index(next(line for line in lines if line.startswith("Leaderboard")))
    board = [line.split()[0] for line in lines[start + 2:start + 4]]
    assert sorted(board) == sorted(said)
    runs = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("mnist").experiment_id])
    assert sorted(run.info.run_name for run in runs if "mlflow.parentRunId" in run.data.tags) == \
        sorted(f"trial-{trial}" for trial in said)
    members = [line for line in lines if re.match(r"trial \S+ \(member \d of 2\) trained on 1 epoch, kept ", line)]
    assert sorted(line.split()[1] for line in members) == sorted(said)


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


def test_the_pace_after_the_first_trial_counts_its_epochs_and_its_set_up():
    first = TrialReport(trial_id="00", number=1, planned=10, status="COMPLETED", score=0.98, best_score=0.98,
                        elapsed_seconds=25.0, seconds=20.0, epoch_seconds=5.0, epochs=2, best_trial_id="00")
    # 34 epochs left at 5 s, and 9 trials to set up at the 10 s the first took beyond its epochs.
    assert pace_line(first, planned_epochs=36, workers=1, members=3, final_epochs=20) == (
        "At trial 00's pace (5.0 s an epoch + 10 s a trial): trials about 4m20s more, champion up to 5m00s "
        "(3 x 20 epochs)")
    assert pace_line(first, planned_epochs=36, workers=2, members=0, final_epochs=20).endswith("trials about 2m10s more")
    failed = TrialReport(trial_id="00", number=1, planned=10, status="FAILED", score=None, best_score=None,
                         elapsed_seconds=5.0, seconds=5.0, epoch_seconds=0.0)
    assert pace_line(failed, planned_epochs=36, workers=1, members=3, final_epochs=20) is None

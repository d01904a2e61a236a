"""nnlab as a library (issue 29): `nnlab.search(...)` gives what the command gives (the same trials
and metrics for the same seed, its trials in the calling process), a result object to work with,
the command's one-line messages as one exception type, a clean stop on Ctrl-C that the same call
resumes, and a user's own data held in memory. Real searches on scikit-learn's 8x8 digits and
wine table, real MLflow stores in tmp_path."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_digits, load_wine

import nnlab
from nnlab.predict import main as predict_main
from nnlab.search import main
from test_search import runs_of

SMALL = dict(tuner="random", max_trials=2, epochs=2, final_epochs=0, ensemble=0)


def test_the_command_and_the_library_give_the_same_trials_and_metrics(workdir, tmp_path, monkeypatch):
    command_store, library_store = f"sqlite:///{tmp_path}/command.db", f"sqlite:///{tmp_path}/library.db"
    flags = ["--model", "dfn", "--tuner", "random", "--max-trials", "2", "--epochs", "2", "--final-epochs", "0",
             "--ensemble", "0", "--seed", "3"]
    for folder in ("command", "library"):  # each its own tuning/
        (tmp_path / folder).mkdir()
    by_command = subprocess.run([sys.executable, "-m", "nnlab.search", "digits", *flags, "--tracking-uri", command_store],
                                capture_output=True, text=True, timeout=600, cwd=tmp_path / "command")
    assert by_command.returncode == 0, by_command.stderr[-3000:]
    # The command's default for a search of no more trials than a worker would run: in its own
    # process, as the library's (a worker's start would buy nothing; test_output.py has the other case).
    assert "worker process" not in by_command.stdout

    monkeypatch.chdir(tmp_path / "library")
    threads = threading.active_count()
    result = nnlab.search("digits", model="dfn", seed=3, tracking_uri=library_store, verbose=False, **SMALL)
    assert threading.active_count() == threads  # in this process: no worker, no oracle server left

    _, command_trials = runs_of(command_store, "digits")
    _, library_trials = runs_of(library_store, "digits")
    assert len(command_trials) == len(library_trials) == 2
    for ours, theirs in zip(sorted(library_trials, key=trial_id), sorted(command_trials, key=trial_id)):
        assert ours.data.params == theirs.data.params
        for name in ("best_val_accuracy", "val_accuracy", "loss", "param_count"):
            assert ours.data.metrics[name] == pytest.approx(theirs.data.metrics[name], abs=1e-6), name
    command_parent = runs_of(command_store, "digits")[0][0]
    assert result.test_metrics["test_accuracy"] == pytest.approx(command_parent.data.metrics["test_accuracy"], abs=1e-6)
    assert result.registered_name == "digits-dfn" and result.champion_version == "1"
    assert result.run_id == runs_of(library_store, "digits")[0][0].info.run_id
    assert list(result.leaderboard["trial"]) == [result.champion_trial, *({"0", "1"} - {result.champion_trial})]
    assert result.champion.predict(np.zeros((2, 8, 8)), verbose=0).shape == (2, 10)  # loaded from the registry
    assert "digits-dfn version 1" in repr(result)


def trial_id(run) -> str:
    return run.data.tags["nnlab.trial_id"]


BAD_EXPERIMENTS = {
    "unknown-tuner": 'dataset = "digits"\ntuner = "sideways"\n',
    "unknown-space": 'dataset = "digits"\n[space]\nwings = 2\n',
    "negative-ensemble": 'dataset = "digits"\nensemble = -1\n',
    "no-epochs": 'dataset = "digits"\nepochs = 0\n',
    "no-such-model": 'dataset = "digits"\nmodel = "nothere.py:build"\n',
}


@pytest.mark.parametrize("argv, call", [
    (["nosuch"], dict(experiment="nosuch")),
    (["no-epochs"], dict(experiment="no-epochs")),
    (["no-such-model"], dict(experiment="no-such-model")),
    (["unknown-tuner"], dict(experiment="unknown-tuner")),
    (["unknown-space"], dict(experiment="unknown-space")),
    (["negative-ensemble"], dict(experiment="negative-ensemble")),
], ids=["unknown-experiment", "epochs", "builder-file", "tuner", "space", "ensemble"])
def test_a_mistake_through_the_library_is_the_commands_line_as_nnlab_error(workdir, capsys, argv, call):
    (workdir / "experiments").mkdir()
    for name, text in BAD_EXPERIMENTS.items():
        (workdir / "experiments" / f"{name}.toml").write_text(text)
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("nnlab.search: error: ") and "\n" not in line
    with pytest.raises(nnlab.NnlabError) as raised:
        nnlab.search(**call, verbose=False)
    assert str(raised.value) == line.removeprefix("nnlab.search: error: ")
    # Its traceback: the caller and nnlab's door, nothing of the machinery behind it.
    files = {Path(frame.filename).name for frame in traceback.extract_tb(raised.value.__traceback__)}
    assert files <= {"test_api.py", "api.py"}, files
    assert not (workdir / "tuning").exists() and not (workdir / "mlruns").exists()


def test_a_stop_from_python_ends_the_trial_killed_and_the_same_call_resumes(workdir, tracking_uri):
    """A notebook's stop button is SIGINT to the kernel: here it comes from a thread, once a trial
    has logged its first epoch (it has 29 more to go)."""
    settings = dict(model="dfn", tuner="random", max_trials=2, epochs=30, patience=30, final_epochs=0, ensemble=0,
                    tracking_uri=tracking_uri, verbose=False)

    def stop_in_a_trial():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                _, children = runs_of(tracking_uri, "digits")
            except Exception:  # the store is not there yet
                children = []
            if any(child.info.status == "RUNNING" and "loss" in child.data.metrics for child in children):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)

    stopper = threading.Thread(target=stop_in_a_trial, daemon=True)
    stopper.start()
    with pytest.raises(KeyboardInterrupt, match="the trial in progress is marked KILLED"):
        nnlab.search("digits", **settings)
    stopper.join()
    parents, children = runs_of(tracking_uri, "digits")
    assert parents[0].info.status == "KILLED" and [child.info.status for child in children] == ["KILLED"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own again

    result = nnlab.search("digits", **settings)  # the same call resumes
    parents, children = runs_of(tracking_uri, "digits")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and result.trials_run == 2
    assert sorted(child.info.status for child in children) == ["FINISHED", "FINISHED", "KILLED"]


def test_own_arrays_search_register_serve_raw_rows_and_refuse_other_data_on_resume(workdir, tracking_uri, capsys):
    images, labels = load_digits(return_X_y=True)
    images = images.reshape(-1, 8, 8)
    settings = dict(tracking_uri=tracking_uri, verbose=False, **SMALL)
    result = nnlab.search("own", data=(images, labels), model="dfn", **settings)
    assert result.registered_name == "own-dfn"
    assert result.test_metrics["test_accuracy"] > 0.5
    predicted = result.champion.predict(images[:200], verbose=0).argmax(axis=1)  # raw 0-16 pixels, scaled inside
    assert (predicted == labels[:200]).mean() > 0.5
    parent = runs_of(tracking_uri, "own")[0][0]
    assert parent.data.tags["nnlab.dataset"] == "memory" and "digest" in parent.data.tags["nnlab.data_source"]
    client = MlflowClient(tracking_uri)
    inputs = client.get_run(parent.info.run_id).inputs.dataset_inputs
    assert {entry.dataset.name for entry in inputs} == {"own-training", "own-validation", "own-test"}
    assert all(entry.dataset.digest for entry in inputs)

    changed = images.copy()
    changed[0, 0, 0] += 1
    with pytest.raises(nnlab.NnlabError, match=r"tuning/own-dfn holds a search with other settings \(data_source"
                       r".*: rerun with the same settings to resume it, or add fresh=True to start a new search"):
        nnlab.search("own", data=(changed, labels), model="dfn", **settings)
    with pytest.raises(nnlab.NnlabError, match="workers=1 runs the trials in other processes"):
        nnlab.search("own", data=(images, labels), model="dfn", workers=1, **settings)
    with pytest.raises(nnlab.NnlabError, match="data: x has 1,797 rows but y has 1,796; give one target per row"):
        nnlab.search("own", data=(images, labels[1:]), model="dfn", **settings)

    features, kinds = load_wine(return_X_y=True)  # rows of numbers: normalised inside the model
    rows = nnlab.search("vats", data=(features, kinds), **settings)
    assert rows.test_metrics["test_accuracy"] > 0.5
    np.savetxt(workdir / "rows.csv", features[:3], delimiter=",", header=",".join(f"f{i}" for i in range(13)),
               comments="")
    assert predict_main(["vats-dfn", str(workdir / "rows.csv"), "--tracking-uri", tracking_uri]) == 0
    assert [line.split(": ")[0] for line in capsys.readouterr().out.splitlines()] == [
        f"{workdir / 'rows.csv'} row {row}" for row in (1, 2, 3)]

    wine = load_wine(as_frame=True).frame
    table = nnlab.search("cellar", data=wine, target="target", **settings)
    assert table.registered_name == "cellar-dfn" and table.test_metrics["test_accuracy"] > 0.5
    columns = {name: values.to_numpy()[:4] for name, values in wine.drop(columns="target").items()}
    assert table.champion.predict(columns, verbose=0).shape == (4, 3)  # the raw columns, encoded inside


@pytest.mark.parametrize("call, message", [
    (dict(experiment="digits", wings=2), "nnlab.search: unknown setting 'wings'; known: the experiment file's keys"),
    (dict(experiment="digits", learning_rate=0.1),
     "unknown setting 'learning_rate'; known: the experiment file's keys, .*; a hyperparameter to fix or search goes in "
     "space={'learning_rate': ...}$"),
    (dict(experiment="digits", target="label"), "target= describes data=, which is missing"),
    (dict(experiment="own.toml", data=([[1.0]], [0])), "data= takes the experiment's name, not a file (own.toml)"),
    (dict(experiment="own", data="rows.csv"), "data must be (x, y) arrays"),
    (dict(experiment="own", data=(np.zeros((4, 3)), [0, 1, 0, 1]), target="y"), "target= names a DataFrame's column"),
], ids=["unknown-setting", "hyperparameter", "no-data", "data-and-file", "not-data", "target-with-arrays"])
def test_a_mistake_only_python_can_make_is_one_line_too(workdir, call, message):
    with pytest.raises(nnlab.NnlabError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        nnlab.search(**call, verbose=False)
    assert "\n" not in str(raised.value)
    assert not (workdir / "tuning").exists() and not (workdir / "mlruns").exists()


SEEN_EPOCHS = []  # what every copy of Logs saw: each trial's fits get a copy, as KerasTuner gives them


def logs_seen():
    import keras

    class Logs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            SEEN_EPOCHS.append((epoch, sorted(logs or {})))

    return Logs()


def test_a_users_keras_callbacks_reach_every_trials_fits(workdir, tracking_uri):
    """A KerasTuner user passes callbacks to search(); nnlab.search refused `callbacks` as an unknown
    setting and suggested space={'callbacks': ...}."""
    import keras

    SEEN_EPOCHS.clear()
    result = nnlab.search("digits", callbacks=[logs_seen(), keras.callbacks.ReduceLROnPlateau(patience=1)],
                          tracking_uri=tracking_uri, verbose=False, **SMALL)
    assert result.trials_run == 2 and [epoch for epoch, _ in SEEN_EPOCHS] == [0, 1, 0, 1]
    assert all("val_accuracy" in names for _, names in SEEN_EPOCHS)


def test_callbacks_that_cannot_be_given_are_one_line_before_anything_is_made(workdir):
    import keras

    class Locked(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()

    for callbacks, extra, message in [
        ("logs", {}, "callbacks: give a list of keras.callbacks.Callback; got str"),
        ([print], {}, "callbacks: give a list of keras.callbacks.Callback; it holds builtin_function_or_method"),
        ([logs_seen()], dict(workers=2), "callbacks: the trials of workers= run in other processes, which cannot "
                                         "take this process's callbacks; leave one of them out"),
        ([Locked()], {}, "callbacks: each trial gets a copy of each callback, and copy.deepcopy cannot copy these: "
                         "TypeError: cannot pickle '_thread.lock' object"),
    ]:
        with pytest.raises(nnlab.NnlabError) as raised:
            nnlab.search("digits", callbacks=callbacks, verbose=False, **SMALL, **extra)
        assert str(raised.value) == message
    assert not (workdir / "tuning").exists() and not (workdir / "mlruns").exists()


@pytest.mark.parametrize("argv, call, said", [
    (["--cross-validation", "1"], dict(cross_validation=1), ("--cross-validation 1", "cross_validation=1")),
    (["--model", "cnn"], dict(model="cnn"), ("--model cnn", "model='cnn'")),
    (["--workers", "99"], dict(workers=99), ("--workers 99", "workers=99")),
], ids=["folds", "family", "workers"])
def test_a_setting_is_named_as_the_caller_gave_it_a_flag_or_a_keyword(workdir, capsys, argv, call, said):
    """The same mistake, made on the command line and in a library call, names the setting as
    each caller wrote it."""
    flag, keyword = said
    assert main(["wine", *argv]) == 2
    line = capsys.readouterr().err.strip().removeprefix("nnlab.search: error: ")
    assert line.startswith(f"{flag}: " if call.get("workers") else f"{flag} "), line
    with pytest.raises(nnlab.NnlabError) as raised:
        nnlab.search("wine", **call, verbose=False)
    # The same words after each name ("give --workers 2 or fewer": "give workers=2 or fewer").
    assert str(raised.value) == keyword + re.sub(r"--workers (\d+)", r"workers=\1", line.removeprefix(flag))
    assert not (workdir / "tuning").exists() and not (workdir / "mlruns").exists()


def test_a_fine_tunes_options_that_cannot_go_together_are_named_as_keywords_from_python(workdir):
    with pytest.raises(nnlab.NnlabError) as raised:
        nnlab.finetune("mnist-cnn", "digits", search=True, strategy="head", verbose=False)
    assert str(raised.value) == "search=True chooses the strategy: give one or the other"
    with pytest.raises(nnlab.NnlabError) as raised:
        nnlab.finetune("mnist-cnn", "digits", strategy="head", unfreeze=2, verbose=False)
    assert str(raised.value) == "unfreeze applies to strategy='fine-tune'"


def test_load_model_from_a_store_that_is_not_there_creates_none(workdir):
    store = workdir / "nowhere" / "mlflow.db"
    with pytest.raises(nnlab.NnlabError) as raised:
        nnlab.load_model("mnist-cnn", tracking_uri=f"sqlite:///{store}")
    assert str(raised.value) == (f"no MLflow store at sqlite:///{store}, so no registered model 'mnist-cnn'; run a "
                                 "search first (python -m nnlab.search mnist)")
    assert not (workdir / "nowhere").exists()  # before: an empty store made there


def test_a_calls_tracking_uri_is_that_calls_alone(workdir, searched_store, monkeypatch):
    """MLflow's set_tracking_uri writes MLFLOW_TRACKING_URI into the process: in a notebook, a call
    that named no store after one that named it went to that store, and a mistake then blamed a
    variable the user never set."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir}/earlier.db")  # as an earlier call on another store left it
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    model = nnlab.load_model("mnist-cnn", tracking_uri=searched_store.tracking_uri)
    assert model.output_shape == (None, 10)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    with pytest.raises(nnlab.NnlabError) as raised:
        nnlab.load_model("mnist-cnn")  # the default store, under workdir: there is none
    assert str(raised.value).startswith("no MLflow store at sqlite:///mlruns/mlflow.db, so no registered model")


def test_mixed_precision_reaches_every_trial_and_the_callers_policy_comes_back(workdir, tracking_uri, capsys):
    """Keras' clear_session, run by KerasTuner before each trial, forgets the global dtype policy:
    a --mixed-precision search set it once and trained every trial in float32. And a notebook's
    own models after such a search were built in mixed_float16 (or in float32 where the user had
    set another policy)."""
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")  # the user's own, before the call
    try:
        result = nnlab.search("wine", model="dfn", max_trials=2, epochs=1, cross_validation=0, ensemble=0,
                              mixed_precision=True, tracking_uri=tracking_uri)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")
    from nnlab.accelerators import start_backend

    if not start_backend():  # on the CPU it says why not to
        assert "mixed_precision=True without a GPU: float16 is emulated on the CPU, slower than float32" in (
            capsys.readouterr().out.replace("\n  ", " "))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loaded back quietly (Keras warned of the loss-scaling optimizer's state)
        champion = result.champion
    dense = [layer for layer in champion.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.dtype_policy.name for layer in dense[:-1]] == ["mixed_float16"] * (len(dense) - 1)
    assert dense[-1].name == "probabilities" and dense[-1].dtype_policy.name == "float32"  # the output stays float32


def test_mlflows_autologging_in_the_users_session_stays_out_of_the_search(workdir, tracking_uri, capfd):
    """`mlflow.keras.autolog()` in a notebook hooked every trial's fit: it logged into nnlab's trial
    runs and failed there, with a warning per fit ("Changing param values is not allowed ...")."""
    import mlflow

    mlflow.keras.autolog()
    try:
        nnlab.search("wine", max_trials=2, epochs=1, cross_validation=0, tracking_uri=tracking_uri, verbose=False)
        assert mlflow.utils.autologging_utils.autologging_is_disabled("keras") is False  # the user's setting holds
    finally:
        mlflow.keras.autolog(disable=True)
    err = capfd.readouterr().err
    assert "autologging" not in err, err
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("wine").experiment_id])
    assert len(runs) == 3 and {run.data.tags.get("mlflow.autologging") for run in runs} == {None}

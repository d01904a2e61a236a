"""Two searches started at the same time in the same empty folder (two families of one
experiment) both finish with every run intact: they create the store, the experiment and their
runs side by side, and neither dies with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from mlflow import MlflowClient

from nnlab.tracking import SearchTracker

TINY = 'name = "mnist"\ntuner = "random"\nmax_trials = 1\nepochs = 1\nfinal_epochs = 0\n'


def test_two_searches_started_together_in_an_empty_folder_both_finish(workdir, tmp_path):
    (workdir / "tiny.toml").write_text(TINY)
    # A cold cache too: neither finds the empty store's template, both make it.
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    searches = {family: subprocess.Popen([sys.executable, "-m", "nnlab.search", "tiny.toml", "--model", family],
                                         cwd=workdir, env=environment, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
                for family in ("dfn", "linear")}
    outputs = {family: process.communicate(timeout=600)[0] for family, process in searches.items()}
    for family, process in searches.items():
        assert process.returncode == 0 and "Traceback" not in outputs[family], outputs[family][-3000:]
        assert f"Registered mnist-{family} version 1" in outputs[family]
        # No TensorFlow, absl or CUDA start-up chatter (stderr included).
        chatter = [line for line in outputs[family].splitlines()
                   if any(word in line for word in ("absl", "cuda", "cpu_feature_guard", "rebuild TensorFlow"))]
        assert not chatter, chatter

    client = MlflowClient("sqlite:///mlruns/mlflow.db")
    experiments = [found for found in client.search_experiments() if found.name == "mnist"]
    assert len(experiments) == 1  # one experiment, both searches in it
    runs = client.search_runs([experiments[0].experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert sorted(run.data.tags["nnlab.model"] for run in parents) == ["dfn", "linear"]
    for parent in parents:
        assert parent.info.status == "FINISHED"
        trials = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert [trial.info.status for trial in trials] == ["FINISHED"]


def test_an_experiment_created_meanwhile_by_another_search_is_taken(tracking_uri, monkeypatch):
    """The interleaving the test above can only hope for: this search looks the experiment up
    (not there yet), another creates it, then this one creates it too."""
    first = SearchTracker("mnist", tracking_uri)
    first._connect()
    lookup = MlflowClient.get_experiment_by_name
    missed = []

    def not_yet(client, name):
        if not missed:  # the lookup before the other search's creation
            missed.append(name)
            return None
        return lookup(client, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", not_yet)
    second = SearchTracker("mnist", tracking_uri)
    second._connect()
    assert missed == ["mnist"] and second.experiment_id == first.experiment_id


def test_tensorflow_starts_without_a_word_on_a_machine_without_a_gpu():
    """In a fresh process: no start-up lines on stdout or stderr, no GPU named, none found."""
    code = ("from nnlab.accelerators import start_tensorflow\n"
            "print(start_tensorflow(echo=print))\n"
            "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))\n")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n0\n" and done.stderr == ""

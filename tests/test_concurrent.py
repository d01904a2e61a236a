"""Two searches started at the same time in the same empty folder (two families of one
experiment) both finish with every run intact: they create the store, the experiment and their
runs side by side, and neither dies with a traceback (the two processes: test_output.py; the
interleaving they can only hope for: here)."""

from __future__ import annotations

import os
import subprocess
import sys

from mlflow import MlflowClient

from nnlab.tracking import SearchTracker

TINY = 'name = "mnist"\ntuner = "random"\nmax_trials = 1\nepochs = 1\nfinal_epochs = 0\n'


# Two searches started together in an empty folder, both finishing with every run intact: checked
# in test_output.py on the search whose output it checks, with a second one started beside it.


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
    code = ("from nnlab.accelerators import start_backend\n"
            "print(start_backend(echo=print))\n"
            "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))\n")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n0\n" and done.stderr == ""

"""nnlab on every Keras backend (issue 33). The tests marked `backends` (here and in
test_models.py, test_gan.py and test_accelerators.py: each family's build, a short search of a
table with its champion registered and loaded back, the GAN's train step, save and load, XLA,
mixed precision and the GPUs asked for) run in the default run on TensorFlow, and again on JAX
and on PyTorch, each in a process of its own started with KERAS_BACKEND: Keras picks its
backend once per process, when it is first imported."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_output import FOREIGN

OTHER_BACKENDS = ("jax", "torch")


# The files that hold the tests marked `backends`: collecting only these keeps each process short.
MARKED_FILES = ("test_backends.py", "test_models.py", "test_gan.py", "test_accelerators.py")


def test_the_backend_tests_pass_on_jax_and_pytorch():
    """Both at once, each in its own process (their time in the fresh-clone suite on 2 cores:
    57-60 s at 20d9e93; 86 s at 3c10420, whose table search runs as a command; 99 s and 115 s
    at 090acf8 and 51d6ac5, and 129 s at 1fdc7ba, beside the suite's second process)."""
    folder = Path(__file__).parent
    processes = {}
    for backend in OTHER_BACKENDS:
        assert importlib.util.find_spec(backend) is not None, (
            f"{backend} is not installed here: the tests' install (pip install -e '.[dev]') brings it")
        processes[backend] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-m", "backends", "-q", "-p", "no:cacheprovider", "--durations=5",
             "-n", "0", *(str(folder / name) for name in MARKED_FILES)],
            env={**os.environ, "KERAS_BACKEND": backend}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for backend, process in processes.items():
        output = process.communicate(timeout=1200)[0]
        assert process.returncode == 0, f"on {backend}:\n{output[-5000:]}"
        assert " passed" in output and " skipped" not in output and "warning" not in output, output[-3000:]
        print(f"on {backend}:\n{output[-1200:]}")  # what each took, for -s and the CI log


@pytest.mark.backends
def test_the_keras_backend_is_the_one_asked_for():
    import keras

    from nnlab.accelerators import backend_name

    assert backend_name() == keras.config.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


@pytest.mark.backends
def test_a_table_search_records_its_backend_and_its_champion_loads_back(workdir, capsys):
    """A short table search (wine: cross-validated, refit): the search's run names the backend
    and its version, the registered model reproduces the logged test score here and predicts the
    same on another backend, and a resume on another backend is refused in one line (its
    checkpoints and numbers differ)."""
    import keras
    import numpy as np
    from mlflow import MlflowClient

    from nnlab.accelerators import BACKEND_PACKAGES, BACKEND_TITLES
    from nnlab import load_model
    from nnlab.data import load_dataset
    from nnlab.provenance import package_version
    from nnlab.search import main
    from nnlab.tabular import keras_inputs

    # The command as a user's shell runs it (TensorFlow's C++ log level unset): on JAX and
    # PyTorch with TensorFlow installed too, as the tests' install has it, nnlab's lines only.
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    (workdir / "experiments").mkdir()
    (workdir / "experiments" / "wine.toml").write_text('dataset = "wine"\nrefit_repeats = 1\n')
    done = subprocess.run([sys.executable, "-m", "nnlab.search", "wine", "--max-trials", "1", "--epochs", "2",
                           "--cross-validation", "2"], env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (done.stdout + done.stderr).splitlines()
    assert lines and not [line for line in lines if FOREIGN.search(line)], "\n".join(lines)
    tracking_uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("wine").experiment_id])
    (search,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]  # the search's, not a trial's
    backend = keras.config.backend()
    assert search.data.tags["nnlab.keras_backend"] == backend
    assert search.data.tags["nnlab.keras_backend_version"] == package_version(BACKEND_PACKAGES[backend]) != "unknown"

    model = load_model("wine-dfn", tracking_uri=tracking_uri)
    test = load_dataset("wine", {}, seed=1).test
    predictions = model.predict(keras_inputs(test[0]), verbose=0)
    accuracy = float((np.argmax(predictions, axis=1) == test[1]).mean())
    assert accuracy == pytest.approx(search.data.metrics["test_accuracy"], abs=1e-6)
    # Loaded by Keras on another backend, in a process of its own: the same predictions (on
    # JAX and PyTorch: a model saved on TensorFlow is the file Keras has always read).
    elsewhere = {"jax": "torch", "torch": "tensorflow"}.get(backend)
    script = ("import sys, numpy as np, nnlab\n"
              "from nnlab.data import load_dataset\nfrom nnlab.tabular import keras_inputs\n"
              "model = nnlab.load_model('wine-dfn', tracking_uri=sys.argv[1])\n"
              "rows = load_dataset('wine', {}, seed=1).test[0]\n"
              "np.save(sys.argv[2], model.predict(keras_inputs(rows), verbose=0))\n")
    if elsewhere is not None:
        done = subprocess.run([sys.executable, "-c", script, tracking_uri, str(workdir / "elsewhere.npy")],
                              env={**os.environ, "KERAS_BACKEND": elsewhere}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        # Saved as JAX resolved it, XLA would be torch.compile there: slow, and dynamo's warnings.
        assert "torch._dynamo" not in done.stderr, done.stderr[-2000:]
        np.testing.assert_allclose(np.load(workdir / "elsewhere.npy"), predictions, atol=1e-5)

    state = workdir / "tuning" / "wine-dfn" / "nnlab.json"
    saved = json.loads(state.read_text())
    assert saved["settings"]["backend"] == backend
    other = next(name for name in BACKEND_TITLES if name != backend)
    saved["settings"]["backend"] = other
    state.write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(["wine", "--max-trials", "1", "--epochs", "2", "--cross-validation", "2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (f"holds a search with other settings (the Keras backend {BACKEND_TITLES[other]} -> "
            f"{BACKEND_TITLES[backend]}): rerun with the same settings" in line), line



@pytest.mark.backends
def test_a_table_with_text_trains_and_predicts_from_its_words(workdir):
    """Keras' StringLookup, which reads a text column inside the model, runs on TensorFlow only:
    on JAX and PyTorch every trial of a table with text failed ("data type 'string' not
    understood", "Invalid dtype: str32"). There the model takes the column's codes
    (nnlab.tabular.Categories), read from the text by the vocabulary it carries: the registered
    champion still takes the words, an unknown or missing one in the same slot, as on TensorFlow;
    and it serves them through MLflow's python_function flavor."""
    import mlflow
    import numpy as np
    import pandas as pd

    import nnlab

    rng = np.random.default_rng(0)
    shop = rng.choice(["north", "south", None], 150)
    frame = pd.DataFrame({"shop": shop, "price": rng.normal(size=150)})
    frame["units"] = 5.0 * (shop == "north") + frame["price"] + rng.normal(scale=0.1, size=150)
    tracking_uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    result = nnlab.search("shops", data=frame, target="units", max_trials=1, epochs=2, cross_validation=0,
                          verbose=False, tracking_uri=tracking_uri)
    model = nnlab.load_model("shops-dfn", tracking_uri=tracking_uri)
    rows = pd.DataFrame({"shop": ["north", "south", "east", None], "price": [0.0, 0.0, 0.0, 0.0]})
    predictions = model.predict(rows, verbose=0).ravel()
    assert predictions[2] == predictions[3] != predictions[0] != predictions[1]  # east, like a missing one: unknown
    mlflow.set_tracking_uri(tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/shops-dfn/{result.champion_version}").predict(rows)
    np.testing.assert_allclose(np.ravel(served), predictions, rtol=1e-5)
    # On another backend: a model searched on JAX or PyTorch predicts the same on TensorFlow; one
    # searched on TensorFlow, whose StringLookup JAX cannot run, is refused in nnlab's words.
    import keras

    elsewhere = "jax" if keras.config.backend() == "tensorflow" else "tensorflow"
    script = ("import sys, json, pandas as pd, nnlab\n"
              "rows = pd.DataFrame({'shop': ['north', 'south', 'east', None], 'price': [0.0] * 4})\n"
              "try:\n"
              "    print(json.dumps(nnlab.load_model('shops-dfn', sys.argv[1]).predict(rows, verbose=0).ravel().tolist()))\n"
              "except nnlab.NnlabError as error:\n"
              "    print(error)\n")
    done = subprocess.run([sys.executable, "-c", script, tracking_uri], env={**os.environ, "KERAS_BACKEND": elsewhere},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if elsewhere == "jax":
        assert done.stdout.startswith(f"models:/shops-dfn/{result.champion_version} reads its text column 'shop' with Keras' StringLookup, "
                                      "which runs on TensorFlow only, not JAX: load it with KERAS_BACKEND=tensorflow"), done
    else:
        np.testing.assert_allclose(json.loads(done.stdout), predictions, rtol=1e-5)

"""Only nnlab's words (issue 28): what Keras, TensorFlow (its C++ log on file descriptor 2),
MLflow and uvicorn print is silenced or said in one nnlab line, on the real paths: a Keras
download from a local server and offline, a registration, a GAN's train step, `nnlab.load_model`
in a new Python, and `python -m nnlab.ui` up to its link and while it serves (test_browser.py,
on the UI its browser uses). Real warnings and errors still reach the user: MLflow's warnings
during a registration, the UI server's failure."""

from __future__ import annotations

import functools
import http.server
import logging
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from nnlab.data import load_mnist
from nnlab.data.downloads import load_fashion_mnist
from nnlab.errors import DataError

KERAS_DOWNLOAD = "Downloading data from"
MLFLOW_REGISTRY_LINES = ("Successfully registered model", "Created version", "already exists")
# nnlab.ui's lines: its address, then one link per experiment.
UI_LINES = re.compile(r"MLflow UI: http://127\.0\.0\.1:\d+   \(store \S+; Ctrl-C stops it\)"
                      r"|  \S+: http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?workflowType=machine_learning")


def user_environment() -> dict:
    """The environment of a user's shell: without the C++ log level conftest.py sets for the tests."""
    environment = dict(os.environ)
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return environment


class _SilentHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args):  # the test server's own request lines would be foreign too
        pass


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on loopback, as a download's origin: (folder, base address)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_SilentHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def keras_mnist(origin: str, cache: str):
    """What keras.datasets.mnist.load_data does, from `origin`: Keras' get_file, then the npz."""
    import keras

    path = keras.utils.get_file("mnist.npz", origin=origin, cache_dir=cache)
    with np.load(path) as data:
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


def test_a_keras_download_is_one_nnlab_notice(served, tmp_path, monkeypatch, capfd, mnist_subset):
    folder, address = served
    images, labels = mnist_subset
    np.savez(folder / "mnist.npz", x_train=images[:400], y_train=labels[:400], x_test=images[400:500],
             y_test=labels[400:500])
    keras_home = tmp_path / "keras"
    keras_home.mkdir()  # Keras falls back to /tmp/.keras for a cache folder it cannot write
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    download = functools.partial(keras_mnist, f"{address}/mnist.npz", str(keras_home))

    first, again = load_mnist(seed=0, download=download), load_mnist(seed=0, download=download)
    captured = capfd.readouterr()
    assert KERAS_DOWNLOAD not in captured.out + captured.err, captured.out
    assert captured.out == "", captured.out  # nor Keras' progress bar
    cached = keras_home / "datasets" / "mnist.npz"
    assert re.fullmatch(rf"MNIST downloaded \(0\.\d MB\), cached in {re.escape(str(cached))} for the next runs",
                        first.notices[0]), first.notices
    assert again.notices == ()  # read from Keras' cache: nothing to say
    assert len(first.train[0]) + len(first.validation[0]) == 400 and len(first.test[0]) == 100


def test_offline_nnlab_says_so_before_keras_says_anything(tmp_path, capfd, free_port):
    (tmp_path / "keras").mkdir()
    download = functools.partial(keras_mnist, f"http://127.0.0.1:{free_port}/mnist.npz", str(tmp_path / "keras"))
    dataset = load_mnist(seed=0, download=download)
    assert dataset.notices[0].startswith("MNIST download failed ("), dataset.notices
    with pytest.raises(DataError, match=r"^fashion_mnist: download failed \("):
        load_fashion_mnist(download=download)
    captured = capfd.readouterr()
    assert captured.out == "" and KERAS_DOWNLOAD not in captured.err, captured.out + captured.err


def test_a_registration_prints_none_of_mlflows_lines(tmp_path, capfd):
    import keras
    import mlflow
    from mlflow import MlflowClient

    from nnlab.tracking import configure
    from nnlab.tracking.registry import log_champion

    client = MlflowClient(configure(f"sqlite:///{tmp_path}/mlruns/mlflow.db"))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    inputs = np.zeros((2, 3), "float32")
    outputs = model.predict(inputs, verbose=0)
    versions = []
    for _ in range(2):  # a new registered model, then a new version of it
        with mlflow.start_run() as run:
            record = log_champion(client, run.info.run_id, model, "quiet-dfn", inputs, outputs,
                                  {"test_accuracy": 0.5}, "1", pip_requirements=[])
        versions.append(record.version)
    captured = capfd.readouterr()
    assert versions == ["1", "2"]
    for words in MLFLOW_REGISTRY_LINES:
        assert words not in captured.out + captured.err, captured.out + captured.err


def test_mlflows_warnings_pass_while_its_registry_notices_do_not(capfd):
    from mlflow.utils.logging_utils import eprint

    from nnlab.tracking.registry import REGISTRY_WAIT_LOGGER, _in_nnlabs_words

    waiting = logging.getLogger(REGISTRY_WAIT_LOGGER)
    wait = "Waiting up to 300 seconds for model version to finish creation. Model name: mnist-cnn, version 3"
    waiting.info(wait)  # MLflow's own logging prints it, outside the registration
    assert wait in capfd.readouterr().err
    with _in_nnlabs_words():
        eprint("Successfully registered model 'mnist-cnn'.")
        waiting.info(wait)
        waiting.warning("a real warning")
        eprint("Created version '3' of model 'mnist-cnn'.")
        sys.stderr.write("and a line left unfinished")
    captured = capfd.readouterr()
    assert "a real warning" in captured.err and captured.err.endswith("and a line left unfinished"), captured.err
    assert "mnist-cnn" not in captured.err, captured.err
    waiting.info(wait)  # and the logger as it was after it
    assert wait in capfd.readouterr().err


def test_a_gan_trains_without_tensorflows_remapper_error(small_mnist, capfd):
    """Grappler's remapper fails on the discriminator's convolution, bias and LeakyReLU, whose
    gradient reads the bias' output, and TensorFlow logs an error on fd 2 (nnlab/models/gan.py)."""
    import keras
    import keras_tuner

    from nnlab.accelerators import start_backend
    from nnlab.models.gan import build

    start_backend()  # as every command does first: TensorFlow's start-up lines are not this test's
    capfd.readouterr()
    gan = build(keras_tuner.HyperParameters(), small_mnist.spec)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    gan.fit(small_mnist.train[0][:64], small_mnist.train[1][:64], batch_size=32, epochs=1, verbose=0)
    captured = capfd.readouterr()
    assert "remapper failed" not in captured.err, captured.err
    assert captured.err.strip() == "", captured.err


def test_mixed_precision_on_the_cpu_trains_without_tensorflows_half_float_line(tmp_path):
    """On a CPU without AVX-512's half floats TensorFlow's first float16 value logs "oneDNN
    supports DT_HALF only on platforms with AVX-512 ..." on fd 2 as an error; the search says
    what it means in its own words (emulated, slower) and the line is made quietly."""
    code = ("import numpy as np\n"
            "from nnlab.accelerators import Acceleration, start_backend\n"
            "start_backend()\n"  # as every command does first: TensorFlow's start-up lines are not this test's
            "import keras\n"
            "Acceleration(mixed_precision=True).activate()\n"
            "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1, dtype='float32')])\n"
            "model.compile('adam', 'mse')\n"
            "model.fit(np.ones((8, 4)), np.ones(8), verbose=0)\n"
            "assert model.layers[0].compute_dtype == 'float16'\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=user_environment(),
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    assert (completed.stdout, completed.stderr) == ("", ""), completed.stdout + completed.stderr


def test_load_model_in_python_prints_nothing(searched_store, tmp_path):
    code = f"import nnlab; nnlab.load_model('mnist-cnn', {searched_store.tracking_uri!r})"
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=user_environment(),
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    assert (completed.stdout, completed.stderr) == ("", ""), completed.stdout + completed.stderr


def test_the_predict_command_prints_its_answer_alone(searched_store, mnist_subset, tmp_path):
    """nnlab.predict imports the champion step's module for a tag's name before it starts the
    backend quietly (nnlab.accelerators): a Keras import at that module's top (64530e9) printed
    TensorFlow's start-up lines twice above every answer."""
    from PIL import Image

    images, labels = mnist_subset
    Image.fromarray(images[0]).save(tmp_path / "digit.png")
    completed = subprocess.run([sys.executable, "-m", "nnlab.predict", "mnist-cnn", "digit.png", "--tracking-uri",
                                searched_store.tracking_uri], cwd=tmp_path, env=user_environment(),
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    assert re.fullmatch(r"digit\.png: \d \(\d\.\d+\)\n", completed.stdout) and completed.stderr == "", completed


# `python -m nnlab.ui` up to its link and while it serves, in a user's environment, says only its
# own lines and keeps MLflow's in its log: checked in test_browser.py on the UI the browser uses.


def test_the_ui_says_why_its_server_failed(tmp_path, free_port):
    store = tmp_path / "mlflow.db"
    store.write_text("not an SQLite database\n" * 100)
    completed = subprocess.run([sys.executable, "-m", "nnlab.ui", "--port", str(free_port), "--tracking-uri",
                                f"sqlite:///{store}"], cwd=tmp_path, env=user_environment(), capture_output=True,
                               text=True, timeout=200, check=False)
    assert completed.returncode == 1 and completed.stdout == "", completed.stdout + completed.stderr
    first, *tail = completed.stderr.splitlines()
    assert first == (f"nnlab.ui: error: mlflow ui exited with code 1 before it answered; the end of its log "
                     f"{tmp_path / f'mlflow-ui-{free_port}.log'}:"), completed.stderr
    assert tail and all(line.startswith("  ") for line in tail), completed.stderr
    assert "not a database" in completed.stderr, completed.stderr

"""The registered champion served by `mlflow models serve` on a loopback port answers real test
inputs as the model itself does: MNIST images with class probabilities, CO2 windows in ppm with
a forecast in ppm (the scaling inside the model, in stock layers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import nnlab


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def served_answer(registered: str, tracking_uri: str, port: int, log: Path, body: dict):
    """The predictions `mlflow models serve` answers for the JSON `body`, serving the champion of
    `registered` from the store on 127.0.0.1:`port` (its output in `log`), stopped afterwards."""
    scripts = Path(sys.executable).parent
    mlflow_command = [str(scripts / "mlflow")] if (scripts / "mlflow").exists() else [sys.executable, "-m", "mlflow"]
    # mlflow models serve starts uvicorn by name: the environment's scripts go first on PATH.
    environment = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri,
                       PATH=os.pathsep.join([str(scripts), os.environ.get("PATH", "")]))
    with log.open("w") as output:
        server = subprocess.Popen(
            [*mlflow_command, "models", "serve", "-m", f"models:/{registered}@champion", "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not answers(f"http://127.0.0.1:{port}/ping"):
            assert server.poll() is None, f"mlflow models serve exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer within 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        server.wait(timeout=30)


@pytest.mark.parametrize(("store", "registered", "outputs"), [("searched_store", "mnist-cnn", 10),
                                                             ("co2_search", "co2-lstm", 1)])
def test_served_champion_predicts_like_the_model(request, store, registered, outputs, tmp_path, free_port):
    searched_store = request.getfixturevalue(store)
    images = searched_store.dataset.test[0][:20]
    served = np.asarray(served_answer(registered, searched_store.tracking_uri, free_port, tmp_path / "serve.log",
                                      {"inputs": images.tolist()}))

    assert served.shape == (20, outputs)
    model = nnlab.load_model(registered, searched_store.tracking_uri)
    expected = model.predict(images, verbose=0)
    if outputs > 1:  # class probabilities
        np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)
        assert (served.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(served, expected, atol=1e-4 if outputs == 1 else 1e-5)

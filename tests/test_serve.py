"""The registered champion served by `mlflow models serve` on a loopback port answers real MNIST
test images with the class probabilities the model itself gives."""

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

import nnlab


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_served_champion_predicts_like_the_model(searched_store, tmp_path, free_port):
    scripts = Path(sys.executable).parent
    mlflow_command = [str(scripts / "mlflow")] if (scripts / "mlflow").exists() else [sys.executable, "-m", "mlflow"]
    port = free_port
    # mlflow models serve starts uvicorn by name: the environment's scripts go first on PATH.
    environment = dict(os.environ, MLFLOW_TRACKING_URI=searched_store.tracking_uri,
                       PATH=os.pathsep.join([str(scripts), os.environ.get("PATH", "")]))
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [*mlflow_command, "models", "serve", "-m", "models:/mnist-cnn@champion", "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not answers(f"http://127.0.0.1:{port}/ping"):
            assert server.poll() is None, f"mlflow models serve exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer within 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)

        images = searched_store.dataset.test[0][:20]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = np.asarray(json.load(response)["predictions"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        server.wait(timeout=30)

    assert served.shape == (20, 10)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)
    model = nnlab.load_model("mnist-cnn", searched_store.tracking_uri)
    expected = model.predict(images, verbose=0)
    assert (served.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(served, expected, atol=1e-5)

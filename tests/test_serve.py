"""The registered champion served by `mlflow models serve` on a loopback port answers real test
inputs as the model itself does: MNIST images with class probabilities, CO2 windows in ppm with
a forecast in ppm (the scaling inside the model, in stock layers)."""

from __future__ import annotations

import json
import os
import signal
import socket
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


def served_answers(requests: list[tuple[str, str, int, Path, dict]]) -> list:
    """For each (registered, tracking_uri, port, log, body): the predictions `mlflow models serve`
    answers for the JSON `body`, serving the champion of `registered` from the store on
    127.0.0.1:`port` (its output in `log`). The servers start together (each one's start, MLflow
    and TensorFlow imported, is most of what serving takes) and are stopped afterwards."""
    scripts = Path(sys.executable).parent
    mlflow_command = [str(scripts / "mlflow")] if (scripts / "mlflow").exists() else [sys.executable, "-m", "mlflow"]
    servers = []
    try:
        for registered, tracking_uri, port, log, _body in requests:
            # mlflow models serve starts uvicorn by name: the environment's scripts go first on PATH.
            environment = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri,
                               PATH=os.pathsep.join([str(scripts), os.environ.get("PATH", "")]))
            with log.open("w") as output:
                servers.append(subprocess.Popen(
                    [*mlflow_command, "models", "serve", "-m", f"models:/{registered}@champion", "--env-manager",
                     "local", "--host", "127.0.0.1", "--port", str(port)],
                    stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
                ))
        deadline = time.monotonic() + 180
        answered = []
        for server, (_registered, _uri, port, log, body) in zip(servers, requests):
            while not answers(f"http://127.0.0.1:{port}/ping"):
                assert server.poll() is None, (f"mlflow models serve exited with {server.returncode}:\n"
                                               f"{log.read_text()[-3000:]}")
                assert time.monotonic() < deadline, f"no answer within 180 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                answered.append(json.load(response)["predictions"])
        return answered
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        for server in servers:
            server.wait(timeout=30)


def served_answer(registered: str, tracking_uri: str, port: int, log: Path, body: dict):
    """The predictions one `mlflow models serve` answers (served_answers)."""
    return served_answers([(registered, tracking_uri, port, log, body)])[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


SERVED = [("searched_store", "mnist-cnn", 10), ("co2_search", "co2-lstm", 1)]


def test_served_champions_predict_like_the_models(request, tmp_path):
    """Both shared searches' champions served at once: an image classifier and a forecaster."""
    searches = [request.getfixturevalue(store) for store, _registered, _outputs in SERVED]
    images = [search.dataset.test[0][:20] for search in searches]
    answered = served_answers([
        (registered, search.tracking_uri, port, tmp_path / f"serve-{registered}.log", {"inputs": inputs.tolist()})
        for (_store, registered, _outputs), search, port, inputs in zip(SERVED, searches, free_ports(2), images)])

    for (_store, registered, outputs), search, inputs, served in zip(SERVED, searches, images, answered):
        served = np.asarray(served)
        assert served.shape == (20, outputs), registered
        model = nnlab.load_model(registered, search.tracking_uri)
        expected = model.predict(inputs, verbose=0)
        if outputs > 1:  # class probabilities
            np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)
            assert (served.argmax(axis=1) == expected.argmax(axis=1)).all()
        np.testing.assert_allclose(served, expected, atol=1e-4 if outputs == 1 else 1e-5, err_msg=registered)

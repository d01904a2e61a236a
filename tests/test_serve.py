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
import pytest

import nnlab


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def served_answers(requests: list[tuple[str, str, int, Path, dict | list[dict]]]) -> list:
    """For each (registered, tracking_uri, port, log, body): the predictions `mlflow models serve`
    answers for the JSON `body` (a list of bodies: a list of answers, one each), serving the
    champion of `registered` from the store on 127.0.0.1:`port` (its output in `log`). The
    servers start together (each one's start, MLflow and TensorFlow imported, is most of what
    serving takes) and are stopped afterwards."""
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
            bodies = body if isinstance(body, list) else [body]
            predictions = []
            for each in bodies:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(each).encode(),
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as response:
                    predictions.append(json.load(response)["predictions"])
            answered.append(predictions if isinstance(body, list) else predictions[0])
        return answered
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        for server in servers:
            server.wait(timeout=30)


def served_answer(registered: str, tracking_uri: str, port: int, log: Path, body: dict | list[dict]):
    """The predictions one `mlflow models serve` answers (served_answers)."""
    return served_answers([(registered, tracking_uri, port, log, body)])[0]


def own_example(registered: str, tracking_uri: str) -> tuple[dict, np.ndarray]:
    """(the serving request MLflow wrote beside the registered champion from its input example,
    what `mlflow.pyfunc.load_model` predicts for that example): what a user of MLflow alone tries
    first, without nnlab's code or data (issue 31: every kind nnlab registers serves)."""
    import mlflow
    from mlflow.models import Model

    client = mlflow.MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(registered, "champion")
    # Where the version's files are (its logged model's): models:/ URIs resolve in the process's registry.
    local = mlflow.artifacts.download_artifacts(artifact_uri=client.get_model_version_download_uri(
        registered, version.version))
    description = Model.load(local)
    body = description.get_serving_input(local)
    assert body is not None, f"{registered} was registered without an input example"
    expected = mlflow.pyfunc.load_model(local).predict(description.load_input_example(local))
    return json.loads(body), np.asarray(expected, dtype=float)


def assert_serves_its_example(served, expected: np.ndarray, registered: str) -> None:
    """The served answer to a champion's own example is what pyfunc predicted for it."""
    served = np.asarray(served, dtype=float)
    np.testing.assert_allclose(served.reshape(expected.shape), expected, rtol=1e-4, atol=1e-5, err_msg=registered)


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


@pytest.fixture(scope="module")
def single_kinds(tmp_path_factory, small_mnist):
    """The kinds the shared searches do not register: a DFN and a softmax regression, each the
    best of 1 trial of 1 epoch (no average), in one store."""
    from types import SimpleNamespace

    from nnlab.config import ExperimentConfig
    from nnlab.search import run_search

    root = tmp_path_factory.mktemp("kinds")
    tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
    for model in ("dfn", "linear"):
        config = ExperimentConfig(name="mnist", model=model, tuner="random", max_trials=1, epochs=1, final_epochs=0,
                                  seed=2, tracking_uri=tracking_uri)
        run_search(config, small_mnist, tuning_root=root / "tuning", echo=lambda _line: None)
    return SimpleNamespace(root=root, tracking_uri=tracking_uri, dataset=small_mnist)


def test_served_champions_predict_like_the_models(request, tmp_path, single_kinds):
    """The shared searches' champions (an average of CNNs, a forecaster) and a DFN and a softmax
    regression served at once: each answers its own input example as mlflow.pyfunc predicts it,
    and the first two answer real test inputs as the model itself does."""
    searches = [request.getfixturevalue(store) for store, _registered, _outputs in SERVED]
    images = [search.dataset.test[0][:20] for search in searches]
    served_names = [registered for _store, registered, _outputs in SERVED] + ["mnist-dfn", "mnist-linear"]
    stores = [search.tracking_uri for search in searches] + [single_kinds.tracking_uri] * 2
    examples = [own_example(registered, store) for registered, store in zip(served_names, stores)]
    bodies = [[example] for example, _expected in examples]
    for body, inputs in zip(bodies, images):
        body.append({"inputs": inputs.tolist()})
    answered = served_answers([
        (registered, store, port, tmp_path / f"serve-{registered}.log", body)
        for registered, store, port, body in zip(served_names, stores, free_ports(len(served_names)), bodies)])

    for registered, (_body, expected), served in zip(served_names, examples, answered):
        assert_serves_its_example(served[0], expected, registered)
    for (_store, registered, outputs), search, inputs, (_example, served) in zip(SERVED, searches, images, answered):
        served = np.asarray(served)
        assert served.shape == (20, outputs), registered
        model = nnlab.load_model(registered, search.tracking_uri)
        expected = model.predict(inputs, verbose=0)
        if outputs > 1:  # class probabilities
            np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)
            assert (served.argmax(axis=1) == expected.argmax(axis=1)).all()
        np.testing.assert_allclose(served, expected, atol=1e-4 if outputs == 1 else 1e-5, err_msg=registered)

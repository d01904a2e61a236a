"""The registry as MLflow 3 shows it (issue 31): a champion is a logged model of its search's
run, its test metrics linked to it and to the test split, and the registered version made from
it, so that the experiment's Models tab lists it and the version's page shows its metrics."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.models import Model

from nnlab.tracking import CHAMPION_ALIAS


def registered_mlmodel(client: MlflowClient, name: str, version: str) -> Model:
    # Read where the version's files are: a models:/ URI resolves in the process's registry,
    # whichever store a test before this one configured.
    return Model.load(download_artifacts(artifact_uri=client.get_model_version_download_uri(name, version)))


def logged_model_of(version) -> str:
    # MLflow's SQL store keeps no model_id on a version (3.17): its source names the logged model.
    assert version.source.startswith("models:/m-"), version.source
    return version.source.removeprefix("models:/")


def test_the_champion_is_a_logged_model_of_its_search(searched_store):
    client = MlflowClient(searched_store.tracking_uri)
    result = searched_store.result
    run = client.get_run(result.parent_run_id)
    version = client.get_model_version_by_alias("mnist-cnn", CHAMPION_ALIAS)
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [model.model_id for model in logged] == [logged_model_of(version)]
    model = logged[0]
    assert (model.name, model.source_run_id) == ("champion", result.parent_run_id)
    # The run lists it as its output, and its parameters are the search's, the trials named.
    assert [output.model_id for output in run.outputs.model_outputs] == [model.model_id]
    assert model.params["nnlab.champion_trials"] == result.champion_trial
    assert model.params["tuner"] == run.data.params["tuner"]

    # Its test metrics: linked to it and to the test split the search logged as an input.
    test_input = next(entry.dataset for entry in run.inputs.dataset_inputs
                      if any(tag.value == "test" for tag in entry.tags))
    linked = {metric.key: metric for metric in model.metrics}
    accuracy = linked["test_accuracy"]
    assert accuracy.value == run.data.metrics["test_accuracy"] == float(version.tags["test_accuracy"])
    assert (accuracy.dataset_name, accuracy.dataset_digest) == (test_input.name, test_input.digest)
    assert accuracy.model_id == model.model_id and accuracy.run_id == result.parent_run_id

    # The version is the logged model's.
    description = registered_mlmodel(client, "mnist-cnn", version.version)
    assert description.model_id == model.model_id and description.signature is not None
    assert description.saved_input_example_info is not None


def test_class_names_are_in_the_model_itself(workdir, tracking_uri, small_mnist):
    import keras_tuner

    from nnlab.models import get_builder
    from nnlab.tracking import SearchTracker

    model = get_builder("linear")(keras_tuner.HyperParameters(), small_mnist.spec)
    tracker = SearchTracker("named", tracking_uri, small_mnist)
    tracker.open_search("s1", "search", {}, {})
    inputs = small_mnist.test[0][:2]
    names = [f"digit {number}" for number in range(10)]
    tracker.log_champion(model, "named-linear", inputs, model.predict(inputs, verbose=0),
                         {"test_accuracy": 0.5, "test_loss": 1.0, "val_loss_single": 0.9}, "0", [],
                         metadata={"class_names": names})
    tracker.close_search()
    client = MlflowClient(tracking_uri)
    version = client.get_model_version("named-linear", "1")
    assert registered_mlmodel(client, "named-linear", "1").metadata == {"class_names": names}
    linked = {metric.key: metric for metric in client.get_logged_model(logged_model_of(version)).metrics}
    assert linked["test_accuracy"].dataset_name == f"{small_mnist.name}-test"
    assert linked["val_loss_single"].dataset_name == f"{small_mnist.name}-validation"


def small_search(dataset, tracking_uri, root, epochs: int):
    from nnlab.config import ExperimentConfig
    from nnlab.search import run_search

    config = ExperimentConfig(name="mnist", model="linear", tuner="random", max_trials=1, epochs=epochs,
                              final_epochs=0, seed=1, tracking_uri=tracking_uri)
    lines: list[str] = []
    result = run_search(config, dataset, tuning_root=root, echo=lines.append)
    return result, lines


@pytest.mark.parametrize("official_first", [False, True], ids=["offline-first", "official-first"])
def test_the_alias_is_decided_on_one_test_split(workdir, tracking_uri, small_mnist, official_first):
    # `python -m nnlab.search mnist` (offline: 4,500 training images, tested on 1,000 held out)
    # and `... --data-dir` (60,000, tested on the official 10,000), in small: a weak model tested
    # on one split and a strong one on another. Whichever runs first, the alias ends on the
    # version better on the "official" split, and the second search's run holds both scores.
    from dataclasses import replace

    import nnlab
    from nnlab.tasks import get_task

    offline = replace(small_mnist, train=tuple(part[:60] for part in small_mnist.train),
                      test=tuple(part[:150] for part in small_mnist.test))
    official = replace(small_mnist, test=tuple(part[150:] for part in small_mnist.test))
    order = [(official, 4), (offline, 1)] if official_first else [(offline, 1), (official, 4)]
    results = [small_search(dataset, tracking_uri, workdir / f"tuning-{index}", epochs)
               for index, (dataset, epochs) in enumerate(order)]
    (first, _), (second, lines) = results

    client = MlflowClient(tracking_uri)
    task = get_task("classification")
    scores = {}
    for result in (first, second):
        model = nnlab.load_model(f"mnist-linear/{result.champion_version}", tracking_uri)
        scores[result.champion_version] = task.score(official.test[1], model.predict(official.test[0], verbose=0))
    better_on_official = max(scores, key=scores.get)
    assert scores[better_on_official] > min(scores.values()) + 0.1, scores  # a clear case, not a tie
    holder = client.get_model_version_by_alias("mnist-linear", CHAMPION_ALIAS)
    assert str(holder.version) == better_on_official

    # Both scores of the comparison on the second search's run, on its own test split.
    run = client.get_run(second.parent_run_id)
    assert run.data.tags["nnlab.holder_version"] == first.champion_version
    second_test = second.test_metrics["test_accuracy"]
    assert run.data.metrics["test_accuracy"] == second_test
    holder_here = run.data.metrics["holder_test_accuracy"]
    second_model = nnlab.load_model(f"mnist-linear/{second.champion_version}", tracking_uri)
    first_model = nnlab.load_model(f"mnist-linear/{first.champion_version}", tracking_uri)
    second_split = order[1][0].test
    assert holder_here == pytest.approx(task.score(second_split[1], first_model.predict(second_split[0], verbose=0)))
    assert second_test == pytest.approx(task.score(second_split[1], second_model.predict(second_split[0], verbose=0)))
    assert second.promoted == (second_test > holder_here)
    description = client.get_model_version("mnist-linear", second.champion_version).description
    assert f"scored test_accuracy {holder_here:.4f} on this version's test split" in description
    assert any("was tested on other data" in line for line in lines)
    # The first version says it was the first; each names the split it was tested on.
    first_version = client.get_model_version("mnist-linear", first.champion_version)
    assert "the first version" in first_version.description.lower()
    assert first_version.tags["nnlab.test_data"] != client.get_model_version(
        "mnist-linear", second.champion_version).tags["nnlab.test_data"]

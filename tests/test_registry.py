"""The registry as MLflow 3 shows it (issue 31): a champion is a logged model of its search's
run, its test metrics linked to it and to the test split, and the registered version made from
it, so that the experiment's Models tab lists it and the version's page shows its metrics."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient

from nnlab.tracking import CHAMPION_ALIAS


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
    description = mlflow.models.get_model_info(f"models:/mnist-cnn/{version.version}")
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
    assert mlflow.models.get_model_info(f"models:/named-linear/1").metadata == {"class_names": names}
    linked = {metric.key: metric for metric in client.get_logged_model(logged_model_of(version)).metrics}
    assert linked["test_accuracy"].dataset_name == f"{small_mnist.name}-test"
    assert linked["val_loss_single"].dataset_name == f"{small_mnist.name}-validation"

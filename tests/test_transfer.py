"""Transfer learning (issue 11): the transfer family's strategies, `python -m nnlab.finetune`
end to end on a copy of the shared searched store, and its refusals."""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np
import pytest
from conftest import too_wide

from nnlab.data import load_dataset
from nnlab.errors import DataError


@pytest.fixture(scope="session")
def source_store(tmp_path_factory, searched_store):
    """A copy of the shared search's store, for fine-tunes to write into: the shared one stays
    as its readers expect. The copy's mnist-cnn points at the same (read-only) artifacts."""
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("transfer")
    (root / "mlruns").mkdir()
    shutil.copyfile(searched_store.root / "mlruns" / "mlflow.db", root / "mlruns" / "mlflow.db")
    return SimpleNamespace(root=root, tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db")


def _version_state(client, name):
    """What a registered model's versions are, to tell whether anything changed them."""
    return [(version.version, version.last_updated_timestamp, dict(version.tags), version.source)
            for version in client.search_model_versions(f"name = '{name}'")]


@pytest.fixture(scope="session")
def finetuned(source_store):
    """Two fine-tunes of the shared search's mnist-cnn on the digits, 10 labels per class, both
    registered as digits-from-mnist-cnn: the README's `python -m nnlab.finetune mnist-cnn digits
    --labels-per-class 10` (its default strategy, fine-tune; 4 epochs here: 2 for the head, 2
    unfrozen), what it printed kept, then scratch (2 epochs) as `nnlab.finetune` configures it."""
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from nnlab import finetune
    from nnlab.finetune import finetune_config, parse_args
    from nnlab.search import run_search

    client = MlflowClient(source_store.tracking_uri)
    before = _version_state(client, "mnist-cnn")
    printed, errors = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        patch.chdir(source_store.root)  # the command's tuning/ folder
        code = finetune.main(["mnist-cnn", "digits", "--labels-per-class", "10", "--epochs", "4", "--tracking-uri",
                              source_store.tracking_uri])
    assert code == 0, errors.getvalue()
    # What the command registered, as its result would have said it.
    version = client.get_model_version("digits-from-mnist-cnn", "1")
    parent = client.get_run(version.run_id)
    results = {"fine-tune": SimpleNamespace(
        registered_name=version.name, model=parent.data.tags["nnlab.model"], parent_run_id=version.run_id,
        champion_version=str(version.version),
        test_metrics={key: value for key, value in parent.data.metrics.items() if key.startswith("test_")})}
    args = parse_args(["mnist-cnn", "digits", "--strategy", "scratch", "--labels-per-class", "10", "--epochs", "2",
                       "--tracking-uri", source_store.tracking_uri])
    config = finetune_config(args)
    dataset = load_dataset(config.dataset, config.data, seed=config.seed, validation_fraction=config.validation_fraction)
    results["scratch"] = run_search(config, dataset, tuning_root=source_store.root / "tuning", fresh=True,
                                    echo=lambda _line: None)
    return SimpleNamespace(results=results, client=client, before=before, after=_version_state(client, "mnist-cnn"),
                           dataset=dataset, printed=printed.getvalue(), **vars(source_store))


def _layers_trainable_counts(strategy, source, spec, unfreeze=None, source_members=None):
    """Build the strategy's model and train it on a few digits; the trainable weight count at
    the start of each phase and the model."""
    import keras
    import keras_tuner

    from nnlab.policies import make_hypermodel
    from nnlab.models import get_builder

    dataset = load_dataset("digits", {"labels_per_class": 3}, seed=0)
    hypermodel = make_hypermodel("transfer", get_builder("transfer", source), spec, 16, 10, source)
    hp = keras_tuner.HyperParameters()
    hp.Fixed("strategy", strategy)
    if unfreeze is not None:
        hp.Fixed("unfreeze", unfreeze)
    if source_members is not None:
        hp.Fixed("source_members", source_members)
    model = hypermodel.build(hp)
    counts = []
    phases = keras.callbacks.LambdaCallback(on_train_begin=lambda _logs: counts.append(len(model.trainable_weights)))
    hypermodel.fit(hp, model, *dataset.train, validation_data=dataset.validation, epochs=2, callbacks=[phases], verbose=0)
    return counts, model, hypermodel.run_params(hp)


@pytest.fixture(scope="module")
def mnist_source(searched_store):
    """The shared search's mnist-cnn as a fine-tune's source, loaded once (tests only read it)."""
    from nnlab.source import load_source

    return load_source("mnist-cnn", searched_store.tracking_uri)


@pytest.mark.parametrize("strategy", ["feature-extraction", "fine-tune", "fine-tune/1", "full", "scratch"])
def test_each_strategy_trains_the_layers_it_says(strategy, mnist_source):
    from nnlab.models.transfer import BASE_NAME, members, weighted_layers

    source = mnist_source
    original = [weights.copy() for weights in source.model.get_weights()]
    spec = load_dataset("digits", seed=0).spec
    strategy, _, unfreeze = strategy.partition("/")
    counts, model, params = _layers_trainable_counts(strategy, source, spec, int(unfreeze) if unfreeze else None,
                                                     source_members="best")

    body = weighted_layers(model.get_layer(BASE_NAME))
    head = 2  # the new classifier's kernel and bias
    trainable_in = lambda layers: sum(len(layer.trainable_weights) for layer in layers)  # noqa: E731
    everything = head + trainable_in(body)  # batch norm's moving statistics are never trainable
    top = int(unfreeze) if unfreeze else len(body)
    expected = {"feature-extraction": [head], "fine-tune": [head, head + trainable_in(body[len(body) - top:])],
                "full": [everything], "scratch": [everything]}[strategy]
    assert counts == expected
    frozen = {"feature-extraction": len(body), "fine-tune": len(body) - top, "full": 0, "scratch": 0}[strategy]
    assert params == {"frozen_layers": frozen, "body_layers": len(body)}
    assert sum(not layer.trainable for layer in body) == frozen
    # The source itself is never trained: its weights are as loaded.
    for now, then in zip(source.model.get_weights(), original):
        np.testing.assert_array_equal(now, then)
    # Frozen layers kept the source's weights through training; scratch started elsewhere.
    best_member = members(source.model)[0]  # the shared champion is an average: its best member's body
    source_body = [layer for layer in best_member.layers if layer.weights][:len(body)]
    for layer, source_layer in zip(body, source_body):
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), source_layer.get_weights()))
        if not layer.trainable:
            assert same, layer.name
        if strategy == "scratch":
            assert not same, layer.name


def test_a_source_that_scales_raw_pixels_itself_reads_the_targets_pixels_once():
    """A source trained on raw pixels (the digits' 0-16) holds its to_unit_range in its body; the
    fine-tune's input scaled the target to [0, 1] before it, so the body saw a sixteenth of the
    range: feature extraction from a digits-trained CNN to the digits scored 0.125 (chance), fine-tune
    0.9805; after, 0.9916 both (BENCHMARKS.md)."""
    from types import SimpleNamespace

    import keras
    import keras_tuner

    from nnlab.data.types import DataSpec
    from nnlab.models import get_builder
    from nnlab.models.layers import pixel_max_of
    from nnlab.models.transfer import BASE_NAME, build, head_index

    digits = load_dataset("digits", seed=0)
    source = get_builder("dfn")(keras_tuner.HyperParameters(), digits.spec)
    model = build(keras_tuner.HyperParameters(), digits.spec, SimpleNamespace(model=source))
    raw = features = digits.test[0][:8]
    for layer in model.layers[1:]:  # the fine-tune's input, as far as the source's body
        features = layer(features, training=False)
        if layer.name == BASE_NAME:
            break
    sources_own = keras.Model(source.input, source.layers[head_index(source)].input)(raw, training=False)
    np.testing.assert_allclose(features, sources_own, rtol=1e-5, atol=1e-6)
    assert pixel_max_of(model) == 16.0  # the digits' white, as nnlab.predict feeds it
    # To images in [0, 1] (MNIST's), the fine-tune takes [0, 1]: the source's 16 is inside it.
    mnist_spec = DataSpec(input_shape=(28, 28, 1), num_classes=10)
    assert pixel_max_of(build(keras_tuner.HyperParameters(), mnist_spec, SimpleNamespace(model=source))) == 1.0


@pytest.mark.parametrize("strategy", ["feature-extraction", "fine-tune/1", "full"])
def test_an_average_source_lends_all_its_members_side_by_side(strategy, mnist_source):
    """source_members = "all": each member's body under one head, `unfreeze` counted in each."""
    from nnlab.models.transfer import BASE_NAME, bodies, body_layer_count, member_trials, members, weighted_layers

    source = mnist_source
    assert len(member_trials(source.model)) == 3
    spec = load_dataset("digits", seed=0).spec
    strategy, _, unfreeze = strategy.partition("/")
    counts, model, params = _layers_trainable_counts(strategy, source, spec, int(unfreeze) if unfreeze else None,
                                                     source_members="all")
    parts = bodies(model.get_layer(BASE_NAME))
    assert len(parts) == 3
    layers = [weighted_layers(part) for part in parts]
    # Each body is its member's, below its head, with its member's weights.
    for part, member in zip(layers, members(source.model)):
        below_head = [layer for layer in member.layers if layer.weights][:-1]
        assert len(part) == len(below_head)
        for layer, source_layer in zip(part, below_head):
            assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), source_layer.get_weights())) \
                or layer.trainable
    trainable_in = lambda group: sum(len(layer.trainable_weights) for layer in group)  # noqa: E731
    head = 2
    top = int(unfreeze) if unfreeze else None
    expected = {"feature-extraction": [head],
                "fine-tune": [head, head + sum(trainable_in(part[len(part) - top:]) for part in layers if top)],
                "full": [head + sum(trainable_in(part) for part in layers)]}[strategy]
    assert counts == expected
    assert params["body_layers"] == body_layer_count(source.model, "all") == min(map(len, layers))
    # The concatenated features: every member's input to its own head, side by side.
    assert model.get_layer(BASE_NAME).output.shape[-1] == sum(
        member.layers[-1].input.shape[-1] for member in members(source.model))


def test_the_default_takes_all_of_an_average_sources_members(mnist_source):
    import keras_tuner

    from nnlab.policies import make_hypermodel
    from nnlab.models import get_builder
    from nnlab.models.transfer import BASE_NAME, bodies, member_trials, members

    spec = load_dataset("digits", seed=0).spec
    hypermodel = make_hypermodel("transfer", get_builder("transfer", mnist_source), spec, 16, 10, mnist_source)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert hp.get("source_members") == "all" and len(bodies(model.get_layer(BASE_NAME))) == 3
    trials = member_trials(mnist_source.model)
    assert hypermodel.lineage(hp)["nnlab.source_taken"] == ",".join(trials)
    # The best alone, on request: one body, the best member's.
    hp = keras_tuner.HyperParameters()
    hp.Fixed("source_members", "best")
    model = hypermodel.build(hp)
    (body,) = bodies(model.get_layer(BASE_NAME))
    best = members(mnist_source.model)[0]
    assert body.output.shape[-1] == best.layers[-1].input.shape[-1]
    lineage = hypermodel.lineage(hp)
    assert lineage["nnlab.source_average"] == ",".join(trials) and lineage["nnlab.source_taken"] == trials[0]


def test_the_readme_flow_search_then_finetune(finetuned):
    """The README's second command after its first: `python -m nnlab.finetune mnist-cnn digits
    --labels-per-class 10` on the default search's kind of champion, an average (4 epochs here),
    says in one line what it took of it and registers a model that loads and predicts."""
    import nnlab
    from nnlab.models.transfer import member_trials

    tracking_uri = finetuned.tracking_uri
    source = nnlab.load_model("mnist-cnn", tracking_uri)
    trials = member_trials(source)
    assert len(trials) == 3  # what the default search registers
    assert (f"nnlab.finetune: mnist-cnn is the average of trials {', '.join(trials)}: taking all 3 members' bodies "
            "side by side") in " ".join(finetuned.printed.split())  # wrapped within 120 columns
    assert not too_wide(finetuned.printed.splitlines())
    assert "Registered digits-from-mnist-cnn version 1" in finetuned.printed
    model = nnlab.load_model("digits-from-mnist-cnn/1", tracking_uri)  # the fixture registers scratch after it
    from sklearn.datasets import load_digits

    probabilities = model.predict(load_digits().images[:20, :, :, np.newaxis], verbose=0)
    assert probabilities.shape == (20, 10)
    from mlflow import MlflowClient

    version = MlflowClient(tracking_uri).get_model_version("digits-from-mnist-cnn", "1")
    assert version.tags["nnlab.source_average"] == ",".join(trials) and version.tags["nnlab.source_taken"] == ",".join(trials)


def test_finetuned_model_is_tracked_registered_and_takes_raw_digits(finetuned):
    import nnlab
    from nnlab.tracking import CHAMPION_ALIAS

    result = finetuned.results["fine-tune"]
    assert result.registered_name == "digits-from-mnist-cnn" and result.model == "transfer"
    parent = finetuned.client.get_run(result.parent_run_id)
    source_version = finetuned.client.get_model_version_by_alias("mnist-cnn", CHAMPION_ALIAS)
    # Lineage on the fine-tune's run, in the target's experiment.
    assert finetuned.client.get_experiment(parent.info.experiment_id).name == "digits"
    assert parent.data.tags["nnlab.source"] == "mnist-cnn"
    assert parent.data.tags["nnlab.source_version"] == str(source_version.version)
    assert parent.data.tags["nnlab.source_run_id"] == source_version.run_id
    assert parent.data.params["data.labels_per_class"] == "10" and parent.data.params["space.strategy"] == "fine-tune"
    trial = finetuned.client.search_runs([parent.info.experiment_id],
                                         f"tags.mlflow.parentRunId = '{result.parent_run_id}'")[0]
    assert trial.data.params["strategy"] == "fine-tune" and trial.data.params["frozen_layers"] == "0"
    assert {"val_accuracy", "best_val_accuracy", "param_count"} <= trial.data.metrics.keys()
    version = finetuned.client.get_model_version("digits-from-mnist-cnn", result.champion_version)
    assert version.tags["nnlab.strategy"] == "fine-tune" and version.tags["nnlab.source"] == "mnist-cnn"
    assert version.tags["nnlab.source_version"] == str(source_version.version)
    assert version.tags["nnlab.frozen_layers"] == "0" and version.tags["nnlab.data.labels_per_class"] == "10"
    # Figures as for any classifier, the first layer's being the source body's first convolution.
    plots = {entry.path for entry in finetuned.client.list_artifacts(result.parent_run_id, "plots")}
    assert {f"plots/champion_{kind}.png" for kind in ("confusion_matrix", "misclassified", "first_layer_weights")} <= plots
    assert "nnlab.plot_error" not in parent.data.tags
    assert {entry.path for entry in finetuned.client.list_artifacts(trial.info.run_id, "plots")} == {"plots/learning_curves.png"}
    # The registered model takes the digits as scikit-learn gives them: 8x8, 0-16.
    from sklearn.datasets import load_digits

    digits = load_digits()
    model = nnlab.load_model("digits-from-mnist-cnn", finetuned.tracking_uri)
    assert tuple(model.input_shape) == (None, 8, 8, 1)
    probabilities = model.predict(digits.images[:200, :, :, np.newaxis].astype("float32"), verbose=0)
    assert probabilities.shape == (200, 10)
    # Few labels and 4 epochs, but far above chance (0.1) on raw input.
    assert (probabilities.argmax(axis=1) == digits.target[:200]).mean() > 0.5


def test_scratch_is_registered_beside_and_the_alias_follows_the_test_score(finetuned):
    from nnlab.tracking import CHAMPION_ALIAS

    tuned, scratch = finetuned.results["fine-tune"], finetuned.results["scratch"]
    assert scratch.registered_name == tuned.registered_name
    assert (tuned.champion_version, scratch.champion_version) == ("1", "2")
    strategies = {str(version.version): version.tags["nnlab.strategy"]
                  for version in finetuned.client.search_model_versions("name = 'digits-from-mnist-cnn'")}
    assert strategies == {"1": "fine-tune", "2": "scratch"}
    holder = str(finetuned.client.get_model_version_by_alias("digits-from-mnist-cnn", CHAMPION_ALIAS).version)
    better = "2" if scratch.test_metrics["test_accuracy"] > tuned.test_metrics["test_accuracy"] else "1"
    assert holder == better and scratch.promoted == (better == "2")


def test_the_source_version_is_unchanged(finetuned):
    assert finetuned.after == finetuned.before


def test_search_registers_its_best_trial_or_the_average_of_its_best_three(searched_store, tmp_path):
    """--search as the command configures it (3 trials of 2 epochs here): KerasTuner picks the
    strategies, and the best trial alone or the average of the best three is registered,
    whichever has the lower validation loss, with each member's strategy in its lineage."""
    import nnlab
    from nnlab.finetune import finetune_config, parse_args
    from nnlab.search import run_search
    from nnlab.tasks import CLASSIFICATION

    (tmp_path / "mlruns").mkdir()
    shutil.copyfile(searched_store.root / "mlruns" / "mlflow.db", tmp_path / "mlruns" / "mlflow.db")
    tracking_uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    config = finetune_config(parse_args(["mnist-cnn", "digits", "--search", "--max-trials", "3", "--epochs", "2",
                                         "--labels-per-class", "10", "--tracking-uri", tracking_uri]))
    assert (config.ensemble, config.max_trials, config.space) == (3, 3, {"strategy": ["fine-tune", "feature-extraction", "full"]})
    dataset = load_dataset(config.dataset, config.data, seed=config.seed, validation_fraction=config.validation_fraction)
    result = run_search(config, dataset, tuning_root=tmp_path / "tuning", echo=lambda _line: None)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    metrics = client.get_run(result.parent_run_id).data.metrics
    from nnlab.champion import SINGLE_SURE

    averaged = metrics["val_single_better_share"] < SINGLE_SURE  # the shared champion step's rule
    trials = result.champion_trial.split(",")
    assert len(trials) == (3 if averaged else 1)
    strategies = {run.data.tags["nnlab.trial_id"]: run.data.params["strategy"]
                  for run in client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                                f"tags.mlflow.parentRunId = '{result.parent_run_id}'")}
    version = client.get_model_version("digits-from-mnist-cnn", result.champion_version)
    assert version.tags["trial"] == result.champion_trial and version.tags["nnlab.source"] == "mnist-cnn"
    # A tag the members share stays one value; one they differ in lists each member's, in order.
    members = [strategies[trial] for trial in trials]
    assert version.tags["nnlab.strategy"] == (members[0] if len(set(members)) == 1 else ",".join(members))
    model = nnlab.load_model(f"digits-from-mnist-cnn/{result.champion_version}", tracking_uri)
    assert tuple(model.input_shape) == (None, 8, 8, 1) and (model.name == "ensemble") == averaged
    test_inputs, test_labels = dataset.test
    assert CLASSIFICATION.score(test_labels, model.predict(test_inputs, verbose=0)) == pytest.approx(metrics["test_accuracy"])



def test_a_cross_validated_search_refits_its_members_on_every_labelled_digit(searched_store, tmp_path):
    """--search --cross-validation 2 (2 trials of 2 epochs here): each trial is scored on two
    folds of the 100 training and 144 validation digits, each fold's curves on its run; the
    members are refit on all 244 and the refit registered, both test scores on the search's run."""
    import nnlab
    from mlflow import MlflowClient

    from nnlab.finetune import finetune_config, parse_args
    from nnlab.search import run_search
    from nnlab.tasks import CLASSIFICATION

    (tmp_path / "mlruns").mkdir()
    shutil.copyfile(searched_store.root / "mlruns" / "mlflow.db", tmp_path / "mlruns" / "mlflow.db")
    tracking_uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    config = finetune_config(parse_args(["mnist-cnn", "digits", "--search", "--max-trials", "2", "--epochs", "2",
                                         "--labels-per-class", "10", "--cross-validation", "2",
                                         "--tracking-uri", tracking_uri]))
    assert config.cross_validation == 2 and config.refit is None  # None: refit where cross-validated
    dataset = load_dataset(config.dataset, config.data, seed=config.seed, validation_fraction=config.validation_fraction)
    result = run_search(config, dataset, tuning_root=tmp_path / "tuning", echo=lambda _line: None)

    client = MlflowClient(tracking_uri)
    parent = client.get_run(result.parent_run_id)
    metrics = parent.data.metrics
    assert {"test_accuracy_refit", "test_accuracy_validation_chosen"} <= set(metrics)
    assert metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy_refit"])
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(trials) == 2
    for trial in trials:
        assert {"fold1/val_loss", "fold2/val_loss", "best_val_accuracy_std"} <= set(trial.data.metrics)
    model = nnlab.load_model(f"digits-from-mnist-cnn/{result.champion_version}", tracking_uri)
    test_inputs, test_labels = dataset.test
    assert CLASSIFICATION.score(test_labels, model.predict(test_inputs, verbose=0)) == pytest.approx(metrics["test_accuracy"])

def _store_contents(tracking_uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    runs = sum(len(client.search_runs([experiment.experiment_id])) for experiment in experiments)
    return (sorted(experiment.name for experiment in experiments), runs,
            sorted(model.name for model in client.search_registered_models()))


@pytest.mark.parametrize(("argv", "message"), [
    (["nope-cnn", "digits"], "no registered model 'nope-cnn'"),
    (["mnist-cnn/9", "digits"], "registered model 'mnist-cnn' has no version '9'"),
    (["mnist-cnn@best", "digits"], "registered model 'mnist-cnn' has no alias 'best'"),
    # What it has, after the store's address.
    (["mnist-cnn/9", "digits"], "/mlflow.db; version 1; alias champion (version 1)"),
    (["mnist-cnn@1", "digits"], "has no alias '1' (version 1 is mnist-cnn/1) in "),
    (["{notmodel}", "digits"], "is not a Keras model Keras can load"),
    (["mnist-cnn", "co2"], "model transfer cannot take co2's sequence data"),
    (["mnist-cnn", "digits", "--labels-per-class", "200"],
     "data.labels_per_class = 200 is more than the"),
    (["mnist-cnn", "digits", "--strategy", "freeze-all"], "argument --strategy: invalid choice: 'freeze-all'"),
    (["mnist-cnn", "digits", "--strategy", "full", "--unfreeze", "2"], "--unfreeze applies to --strategy fine-tune"),
    (["mnist-cnn", "digits", "--unfreeze", "40"], "--unfreeze 40: mnist-cnn's body has"),
    (["mnist-cnn", "digits", "--search", "--learning-rate", "0.01"], "--search chooses the learning rates"),
    (["mnist-cnn", "digits", "--ensemble", "2"], "--ensemble applies to --search"),
    (["mnist-cnn", "digits", "--search", "--ensemble", "-1"], "--ensemble -1 must be 0 or more"),
    (["mnist-cnn", "digits", "--search", "--cross-validation", "1"], "--cross-validation 1 must be 0 (one validation"),
    (["mnist-cnn", "digits", "--source-members", "most"], "argument --source-members: invalid choice: 'most'"),
    (["mnist-cnn", "digits", "--source-members", "all", "--unfreeze", "40"], "--unfreeze 40: mnist-cnn's body has"),
])
def test_bad_input_is_one_line_and_creates_nothing(argv, message, source_store, tmp_path, monkeypatch, capsys):
    from nnlab import finetune

    monkeypatch.chdir(tmp_path)
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("not a model")
    argv = [part.replace("{notmodel}", str(not_a_model)) for part in argv]
    before = _store_contents(source_store.tracking_uri)
    code = _exit_code(finetune.main, [*argv, "--tracking-uri", source_store.tracking_uri])
    said = capsys.readouterr()
    error = said.err.strip()
    assert code == 2
    if "no registered model" in message or "has no" in message:  # said before the target's data is loaded
        assert "digits" not in said.out, said.out
    assert len(error.splitlines()) == 1 and error.startswith("nnlab.finetune: error: ") and message in error, error
    assert _store_contents(source_store.tracking_uri) == before
    assert not (tmp_path / "tuning").exists() and not (tmp_path / "mlruns").exists()


def _exit_code(main, argv) -> int:
    """The command's exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def test_missing_store_is_refused_without_creating_one(tmp_path, capsys):
    from nnlab import finetune

    store = tmp_path / "none" / "mlflow.db"
    assert finetune.main(["mnist-cnn", "digits", "--tracking-uri", f"sqlite:///{store}"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"nnlab.finetune: error: no MLflow store at sqlite:///{store}, so no registered model 'mnist-cnn'; run a search "
        "first (python -m nnlab.search mnist) or name a .keras file")  # a fine-tune's source may be a file
    assert not store.parent.exists()


# ------------------------------------------------------------ the data a fine-tune reads


def test_digits_are_raw_and_split_fixed():
    first, other = load_dataset("digits", seed=4), load_dataset("digits", seed=5)
    for split in ("train", "validation", "test"):  # the seed draws labels and trains; the split stays
        np.testing.assert_array_equal(getattr(first, split)[0], getattr(other, split)[0])
    assert first.train[0].shape[1:] == (8, 8, 1) and first.spec.pixel_max == 16
    assert first.train[0].max() == 16 and first.train[0].min() == 0
    assert len(first.train[0]) + len(first.validation[0]) + len(first.test[0]) == 1797
    assert len(first.test[0]) == 359


def test_classes_relabel_every_split_and_labels_per_class_only_train():
    whole = load_dataset("digits", seed=2)
    subset = load_dataset("digits", {"classes": [7, 3], "labels_per_class": 5}, seed=2)
    assert subset.spec.num_classes == 2
    assert np.bincount(subset.train[1]).tolist() == [5, 5]
    for split in ("validation", "test"):  # whole, but for the other classes
        (inputs, labels), (all_inputs, all_labels) = getattr(subset, split), getattr(whole, split)
        np.testing.assert_array_equal(inputs, all_inputs[np.isin(all_labels, [7, 3])])
        np.testing.assert_array_equal(labels, np.where(all_labels[np.isin(all_labels, [7, 3])] == 7, 0, 1))
    # Seeded: the same labels drawn again, others for another seed.
    np.testing.assert_array_equal(subset.train[0], load_dataset("digits", {"classes": [7, 3], "labels_per_class": 5},
                                                                seed=2).train[0])
    assert not np.array_equal(subset.train[0], load_dataset("digits", {"classes": [7, 3], "labels_per_class": 5},
                                                            seed=3).train[0])


@pytest.mark.parametrize(("options", "message"), [
    ({"classes": [1, 12]}, "digits has classes 0 to 9, not 12"),
    ({"labels_per_class": 1000}, "is more than the"),
])
def test_bad_subsets_say_why(options, message):
    with pytest.raises(DataError, match=message):
        load_dataset("digits", options, seed=0)


@pytest.mark.parametrize(("table", "message"), [
    ("classes = [3]", "data.classes = [3] must be a list of at least two distinct class numbers"),
    ("classes = [1, 1]", "must be a list of at least two distinct class numbers"),
    ('classes = ["a", "b"]', "must be a list of at least two distinct class numbers"),
    ("labels_per_class = 0", "data.labels_per_class = 0 must be a positive whole number"),
])
def test_bad_data_table_is_refused_at_load(table, message, tmp_path):
    from nnlab.config import load_config
    from nnlab.errors import ConfigError

    path = tmp_path / "bad.toml"
    path.write_text(f'dataset = "mnist"\n[data]\n{table}\n')
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(str(path))


def test_figures_read_the_source_body_and_raw_pixels(mnist_source):
    """The first-layer figure finds the source body's first convolution inside the fine-tuned
    model, and the mistakes grid draws 0-16 digits with 16 as black, not saturated at 1."""
    import keras
    import keras_tuner

    from nnlab import plots
    from nnlab.models import get_builder

    digits = load_dataset("digits", seed=0)
    model = get_builder("transfer", mnist_source)(keras_tuner.HyperParameters(), digits.spec)
    layer = plots.first_weight_layer(model)
    # The first member's body, side by side with the others inside the base.
    first_body = model.get_layer("source_base").layers[1]
    assert isinstance(layer, keras.layers.Conv2D) and layer in first_body.layers
    figure = plots.first_layer_weights(model, "champion")
    assert "kernels 3x3" in figure.get_suptitle()
    probabilities = np.eye(10)[(digits.test[1] + 1) % 10]  # every image wrong
    figure = plots.worst_misclassified(*digits.test, probabilities, "champion", count=4, pixel_max=digits.spec.pixel_max)
    limits = {image.get_clim() for axes in figure.axes for image in axes.get_images()}
    assert limits == {(0, 16)}


def test_the_fine_tune_serves_its_own_input_example(finetuned, tmp_path, free_port):
    # Issue 31: the registered fine-tune (its input adapter inside it) answers the digits example
    # registered beside it, served, as mlflow.pyfunc predicts it.
    from test_serve import assert_serves_its_example, own_example, served_answer

    example, expected = own_example("digits-from-mnist-cnn", finetuned.tracking_uri)
    assert expected.shape[1:] == (10,)
    served = served_answer("digits-from-mnist-cnn", finetuned.tracking_uri, free_port, tmp_path / "serve.log", example)
    assert_serves_its_example(served, expected, "digits-from-mnist-cnn")


def test_a_table_model_as_a_source_is_refused_in_words_not_thirteen_shapes(tmp_path):
    import keras

    from nnlab.errors import SourceError
    from nnlab.source import load_source

    columns = {name: keras.Input((1,), name=name) for name in ("alcohol", "hue", "proline")}
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()(list(columns.values())))
    keras.Model(columns, outputs).save(tmp_path / "wine.keras")
    with pytest.raises(SourceError) as refused:
        load_source(str(tmp_path / "wine.keras"))
    assert str(refused.value) == (f"{tmp_path / 'wine.keras'} takes a table's 3 columns, one input each: a fine-tune "
                                  "needs a model of one image input (height, width, channels) and one output")


def test_a_fine_tune_from_python_takes_the_users_own_images(source_store, workdir):
    """nnlab.finetune took a data set's name only: a user's own images in memory could be
    searched from scratch (nnlab.search(data=...)), not fine-tuned from a registered model."""
    from mlflow import MlflowClient
    from sklearn.datasets import load_digits

    import nnlab

    digits = load_digits()
    result = nnlab.finetune("mnist-cnn", "mydigits", data=(digits.images[:300], digits.target[:300]), epochs=2,
                            tracking_uri=source_store.tracking_uri, verbose=False)
    assert result.registered_name == "mydigits-from-mnist-cnn" and result.test_metrics["test_accuracy"] > 0.5
    run = MlflowClient(source_store.tracking_uri).get_run(result.run_id)
    assert run.data.tags["nnlab.source"] == "mnist-cnn" and run.data.params["dataset"] == "memory"
    with pytest.raises(nnlab.NnlabError, match=r"^labels_per_class= picks from a named data set; with data= give"):
        nnlab.finetune("mnist-cnn", "mydigits", data=(digits.images, digits.target), labels_per_class=10,
                       tracking_uri=source_store.tracking_uri, verbose=False)
    with pytest.raises(nnlab.NnlabError, match=r"^test= describes data=, which is missing$"):
        nnlab.finetune("mnist-cnn", "digits", test=(digits.images, digits.target), tracking_uri=source_store.tracking_uri,
                       verbose=False)

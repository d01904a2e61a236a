"""The GAN family (issue 12): its builders, its train_step, and fid_mnist, on real MNIST."""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest

from nnlab.data import DataSpec
from nnlab.quality import Judge, frechet_distance

MNIST = DataSpec(input_shape=(28, 28, 1), num_classes=10)
DIGITS = DataSpec(input_shape=(8, 8, 1), num_classes=10, pixel_max=16.0)


@pytest.mark.backends
@pytest.mark.parametrize("spec", [MNIST, DIGITS], ids=["mnist", "digits"])
def test_builders_make_images_in_the_data_units_and_one_logit(spec):
    from nnlab.models.gan import build_discriminator, build_generator

    hp = keras_tuner.HyperParameters()
    generator, discriminator = build_generator(hp, spec), build_discriminator(hp, spec)
    assert generator.input_shape == (None, hp.get("latent_dim")) and generator.output_shape == (None, *spec.input_shape)
    # Real or generated, and (the class code) which class.
    assert discriminator.input_shape == (None, *spec.input_shape)
    assert discriminator.output_shape == [(None, 1), (None, spec.num_classes)]
    images = generator.predict(np.random.default_rng(0).normal(size=(16, hp.get("latent_dim"))), verbose=0)
    # In the data's units: an untrained sigmoid sits near half of them (the digits' 8 of 16).
    assert images.min() >= 0 and images.max() <= spec.pixel_max and images.max() > 0.25 * spec.pixel_max
    # The searched widths and depths take effect.
    hp.values.update(latent_dim=32, generator_filters=32, generator_extra_convolutions=1, generator_batch_norm=False,
                     discriminator_blocks=3, class_code=False)
    wider = build_generator(hp, spec)
    assert wider.input_shape == (None, 32) and not [layer for layer in wider.layers
                                                    if isinstance(layer, keras.layers.BatchNormalization)]
    convolutions = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    assert len([layer for layer in wider.layers if isinstance(layer, convolutions)]) == 3  # 1 extra, 2 transposed
    plain = build_discriminator(hp, spec)
    assert len([layer for layer in plain.layers if isinstance(layer, keras.layers.Conv2D)]) == 3
    assert plain.output_shape == (None, 1)  # no class code: real or generated alone


def test_the_class_code_is_the_largest_of_the_first_coordinates():
    from nnlab.models.gan import CODE_SCALE, build_generator

    hp = keras_tuner.HyperParameters()
    generator = build_generator(hp, MNIST)
    coded = keras.Model(generator.inputs, generator.get_layer("coded_latent").output)
    latent = np.random.default_rng(0).normal(size=(200, hp.get("latent_dim"))).astype("float32")
    latent[0, :10] = [0, 0, 0, 0, 0, 0, 0, 5, 0, 0]  # a user who wants a 7
    values = coded.predict(latent, verbose=0)
    expected = np.eye(10)[latent[:, :10].argmax(axis=1)] * CODE_SCALE
    top_two = np.sort(latent[:, :10], axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 2e-3  # a near tie mixes the two classes' codes
    assert clear.mean() > 0.95
    np.testing.assert_allclose(values[clear, :10], expected[clear], atol=1e-3)
    assert values[0, :10].argmax() == 7
    np.testing.assert_array_equal(values[:, 10:], latent[:, 10:])  # the noise passes unchanged


def test_a_size_the_generator_cannot_reach_is_refused():
    from nnlab.models.gan import build_generator

    with pytest.raises(ValueError, match="30x30 is not a multiple of 4"):
        build_generator(keras_tuner.HyperParameters(), DataSpec(input_shape=(30, 30, 1), num_classes=10))


@pytest.mark.backends
def test_one_train_step_changes_both_networks(small_mnist):
    from nnlab.models.gan import build

    keras.utils.set_random_seed(0)
    gan = build(keras_tuner.HyperParameters(), small_mnist.spec)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    networks = (("generator", gan.generator), ("discriminator", gan.discriminator), ("average", gan.average_generator))
    before = {name: [weights.copy() for weights in network.get_weights()] for name, network in networks}
    images, labels = small_mnist.train[0][:32], small_mnist.train[1][:32]
    history = gan.fit(images, labels, batch_size=32, epochs=1, verbose=0)  # one batch: one train_step
    assert set(history.history) == {"discriminator_loss", "generator_loss"}
    assert all(np.isfinite(values[0]) for values in history.history.values())
    for name, network in networks:
        changed = [not np.array_equal(old, new) for old, new in zip(before[name], network.get_weights())]
        assert any(changed), name
    # The average moved towards the generator's new weights, not onto them.
    for start, average, trained in zip(before["average"], gan.average_generator.get_weights(), gan.generator.get_weights()):
        assert np.abs(average - trained).sum() <= np.abs(start - trained).sum()
    assert not all(np.array_equal(average, trained)
                   for average, trained in zip(gan.average_generator.get_weights(), gan.generator.get_weights()))
    # Calling the GAN generates.
    assert gan(np.zeros((3, gan.latent_dim), "float32")).shape == (3, 28, 28, 1)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 4))
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-6)
    # A shift moves only the means: the distance is the squared shift.
    assert frechet_distance(features, features + [1, 2, 0, 0]) == pytest.approx(5, rel=1e-6)
    # Twice the spread: Tr(S + 4S - 2 * 2S) = Tr(S), about 4 for unit variances.
    assert frechet_distance(features, 2 * features) == pytest.approx(4, rel=0.1)


def test_fid_mnist_is_near_zero_for_real_images_and_grows_with_noise(searched_store):
    import nnlab

    judge = Judge(nnlab.load_model("mnist-cnn", searched_store.tracking_uri))
    real, other = searched_store.dataset.train[0][:300], searched_store.dataset.validation[0][:200]
    rng = np.random.default_rng(0)
    assert judge.distance(real, real) == pytest.approx(0, abs=1e-6)
    noisy = [judge.distance(real, np.clip(real + rng.normal(0, scale, real.shape), 0, 1).astype("float32"))
             for scale in (0.1, 0.3, 0.6)]
    assert noisy == sorted(noisy) and noisy[0] > 0
    # Other real digits are nearer than any of these noisy ones.
    assert judge.distance(real, other) < noisy[1]
    scores = judge.scores(judge.look(other)[0], real)
    assert scores["fid_mnist"] == pytest.approx(judge.distance(other, real))
    assert scores["coverage"] == 10 and scores["confidence"] > 0.5


# ------------------------------------------------------------ the GAN searched, tracked, registered


@pytest.fixture(scope="module")
def gan_search(tmp_path_factory, small_mnist):
    """`nnlab.search mnist --model gan` in small: 2 random trials of 1 epoch on 600 images, in an
    empty store, so that nnlab first trains and registers its own judge."""
    from types import SimpleNamespace

    from nnlab.config import ExperimentConfig
    from nnlab.search import run_search

    root = tmp_path_factory.mktemp("gan")
    tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
    config = ExperimentConfig(name="mnist", model="gan", tuner="random", max_trials=2, epochs=1, final_epochs=0,
                              batch_size=64, tracking_uri=tracking_uri)
    lines: list[str] = []
    result = run_search(config, small_mnist, tuning_root=root / "tuning", echo=lines.append)
    return SimpleNamespace(root=root, tracking_uri=tracking_uri, result=result, lines=lines)


def test_gan_search_tracks_fid_and_registers_the_generator(gan_search):
    from mlflow import MlflowClient

    import nnlab

    client = MlflowClient(gan_search.tracking_uri)
    result = gan_search.result
    assert result.registered_name == "mnist-gan" and result.task == "generation"
    # No mnist-cnn in the store: nnlab said it would train its judge first, then which it registered.
    judge = client.get_model_version_by_alias("mnist-judge-cnn", "champion")
    said = [index for index, line in enumerate(gan_search.lines) if line.startswith("No mnist-cnn champion")]
    assert len(said) == 1 and "training the default CNN" in gan_search.lines[said[0]]
    assert gan_search.lines[said[0] + 1].startswith(f"  the judge: mnist-judge-cnn version {judge.version}, test accuracy ")
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["nnlab.judge"] == f"mnist-judge-cnn/{judge.version}"
    assert parent.data.tags["nnlab.task"] == "generation"
    metrics = parent.data.metrics
    # The floor and the ceiling every fid_mnist is read against.
    assert 0 < metrics["fid_mnist_real"] < metrics["fid_mnist_untrained"]
    assert {"test_fid_mnist", "test_confidence", "test_coverage"} <= set(metrics)
    assert 1 <= metrics["test_coverage"] <= 10 and 0.1 <= metrics["test_confidence"] <= 1
    artifacts = {entry.path for entry in client.list_artifacts(result.parent_run_id, "plots")}
    assert "plots/champion_samples.png" in artifacts and "nnlab.plot_error" not in parent.data.tags
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(trials) == 2
    for trial in trials:
        assert {"discriminator_loss", "generator_loss", "val_fid_mnist", "val_confidence", "val_coverage",
                "best_val_fid_mnist"} <= set(trial.data.metrics)
        assert {"latent_dim", "generator_filters", "discriminator_blocks", "label_smoothing", "generator_learning_rate",
                "discriminator_learning_rate", "beta_1", "generator_batch_norm"} <= set(trial.data.params)
        assert {entry.path for entry in client.list_artifacts(trial.info.run_id, "plots")} == {
            "plots/learning_curves.png", "plots/samples_epoch_01.png"}
    # What is registered is the generator: latent vectors in, images in the data's units out.
    generator = nnlab.load_model("mnist-gan", gan_search.tracking_uri)
    latent_dim = generator.input_shape[-1]
    images = generator.predict(np.random.default_rng(0).normal(size=(5, latent_dim)), verbose=0)
    assert images.shape == (5, 28, 28, 1) and images.min() >= 0 and images.max() <= 1


def test_report_ranks_gan_trials_lowest_fid_first(gan_search, capsys):
    from nnlab import report

    assert report.main(["mnist", "--model", "gan", "--format", "csv", "--tracking-uri", gan_search.tracking_uri]) == 0
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"trial": str})
    assert list(table.columns[:3]) == ["trial", "status", "best_val_fid_mnist"] and len(table) == 2
    assert table["best_val_fid_mnist"].is_monotonic_increasing


def test_the_judge_is_the_registered_mnist_cnn_when_there_is_one(searched_store, small_mnist):
    from nnlab.models.gan import find_judge

    judge, tags = find_judge(small_mnist, searched_store.tracking_uri, None, print)
    assert tags == {"nnlab.judge": f"mnist-cnn/{searched_store.result.champion_version}"}
    assert judge.input_shape == (28, 28, 1)


def test_a_loss_that_is_not_finite_stops_the_fit_and_fails_the_trial():
    from nnlab.models.gan import Quality
    from nnlab.tuner import summarise
    from nnlab.tasks import GENERATION

    quality = Quality(judge=None, real_features=None, objective=GENERATION.objective)
    quality.set_model(keras.Model())
    logs = {"discriminator_loss": 0.7, "generator_loss": float("nan")}
    quality.on_epoch_end(0, logs)
    assert quality.model.stop_training and np.isnan(logs["val_fid_mnist"])
    history = keras.callbacks.History()
    history.epoch, history.history = [0, 1], {"discriminator_loss": [0.7, 0.6], "generator_loss": [0.8, float("nan")],
                                              "val_fid_mnist": [90.0, float("nan")]}
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="generator_loss became nan at epoch 2"):
        summarise(history, GENERATION)


def test_the_generator_serves_its_own_input_example(gan_search, tmp_path, free_port):
    # Issue 31: what `mlflow models serve` answers for the latent vectors registered beside it is
    # what mlflow.pyfunc draws from them.
    from test_serve import assert_serves_its_example, own_example, served_answer

    example, expected = own_example("mnist-gan", gan_search.tracking_uri)
    assert expected.shape[1:] == (28, 28, 1)
    served = served_answer("mnist-gan", gan_search.tracking_uri, free_port, tmp_path / "serve.log", example)
    assert_serves_its_example(served, expected, "mnist-gan")


def test_a_holder_judged_by_another_judge_is_rejudged_by_this_one(gan_search, tmp_path, small_mnist):
    # Issue 31: a GAN's comparison uses one judge, named by version, for both. The holder was
    # judged by mnist-judge-cnn; the same network registered as mnist-cnn (the first judge nnlab
    # takes) judges the next search, which must judge the holder again, and gets the same FID.
    import shutil

    from mlflow import MlflowClient

    from nnlab.config import ExperimentConfig
    from nnlab.search import run_search

    (tmp_path / "mlruns").mkdir()
    shutil.copyfile(gan_search.root / "mlruns" / "mlflow.db", tmp_path / "mlruns" / "mlflow.db")
    tracking_uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = MlflowClient(tracking_uri)
    judge = client.get_model_version_by_alias("mnist-judge-cnn", "champion")
    client.create_registered_model("mnist-cnn")
    # Its files named by where they are: MLflow's SQL store resolves a models:/ source in the
    # process's own store, not this client's.
    files = client.get_model_version_download_uri("mnist-judge-cnn", judge.version)
    copy = client.create_model_version("mnist-cnn", files, run_id=judge.run_id)
    client.set_registered_model_alias("mnist-cnn", "champion", copy.version)
    holder = client.get_model_version_by_alias("mnist-gan", "champion")
    assert holder.tags["nnlab.test_data"].endswith(f" judged by mnist-judge-cnn/{judge.version}")

    config = ExperimentConfig(name="mnist", model="gan", tuner="random", max_trials=1, epochs=1, final_epochs=0,
                              batch_size=64, seed=7, tracking_uri=tracking_uri)
    lines: list[str] = []
    result = run_search(config, small_mnist, tuning_root=tmp_path / "tuning", echo=lines.append)
    run = client.get_run(result.parent_run_id)
    assert run.data.tags["nnlab.judge"] == f"mnist-cnn/{copy.version}"
    assert run.data.tags["nnlab.holder_version"] == str(holder.version)
    # The same network, the same test split and latent vectors: the same score, under the new name.
    assert run.data.metrics["holder_test_fid_mnist"] == pytest.approx(float(holder.tags["test_fid_mnist"]), rel=1e-4)
    version = client.get_model_version("mnist-gan", result.champion_version)
    assert version.tags["nnlab.test_data"].endswith(f" judged by mnist-cnn/{copy.version}")
    assert f"judged by mnist-judge-cnn/{judge.version}" in version.description
    assert result.promoted == (result.test_metrics["test_fid_mnist"] < run.data.metrics["holder_test_fid_mnist"])

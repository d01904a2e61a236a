from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest

from nnlab.data import DataSpec
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import MODEL_NAMES, SOURCE_FAMILIES, get_builder
from nnlab.tuner import trial_params

SPEC = DataSpec(input_shape=(28, 28, 1), num_classes=10)


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


# transfer: test_transfer.py; gan, which draws images: test_gan.py
@pytest.mark.backends
@pytest.mark.parametrize("name", [name for name in MODEL_NAMES if name not in (*SOURCE_FAMILIES, "gan")])
def test_builders_return_uncompiled_probability_models(name, small_mnist):
    model = get_builder(name)(keras_tuner.HyperParameters(), SPEC)
    assert not model.compiled  # compiling is the hypermodel's job
    probabilities = model.predict(small_mnist.test[0][:4], verbose=0)
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_dfn_depth_width_and_knobs():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("hidden_layers", 3)
    hp.Fixed("activation", "tanh")
    hp.Fixed("batch_norm", False)
    hp.Fixed("units_1", 128)
    model = get_builder("dfn")(hp, SPEC)
    dense = layers_of(model, keras.layers.Dense)
    assert [layer.units for layer in dense][1] == 128 and len(dense) == 3 + 1
    assert {layer.get_config()["activation"] for layer in layers_of(model, keras.layers.Activation)} == {"tanh"}
    assert not layers_of(model, keras.layers.BatchNormalization)


@pytest.mark.parametrize("name, count, layer", [("dfn", "hidden_layers", keras.layers.Dense),
                                                ("cnn", "conv_blocks", keras.layers.Conv2D)])
def test_layer_counts_start_at_two(name, count, layer):
    space = keras_tuner.HyperParameters()
    get_builder(name)(space, SPEC)
    (searched,) = [parameter for parameter in space.space if parameter.name == count]
    assert searched.min_value == 2
    space.values[count] = 2
    built = layers_of(get_builder(name)(space, SPEC), layer)
    # The DFN's softmax output is Dense too; each CNN block holds two convolutions by default.
    assert len(built) == (2 + 1 if layer is keras.layers.Dense else 2 * 2)


def test_cnn_blocks_filters_augmentation_and_batch_norm():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("conv_blocks", 3)
    hp.Fixed("filters_2", 48)
    hp.Fixed("augment_shift", 0.15)
    hp.Fixed("batch_norm", True)
    model = get_builder("cnn")(hp, SPEC)
    convolutions = layers_of(model, keras.layers.Conv2D)
    assert len(convolutions) == 3 * 2 and [layer.filters for layer in convolutions[4:]] == [48, 48]
    assert len(layers_of(model, keras.layers.MaxPooling2D)) == 3
    one = keras_tuner.HyperParameters()
    one.Fixed("conv_blocks", 3)
    one.Fixed("convs_per_block", 1)  # one convolution a block, as before issue 15
    assert len(layers_of(get_builder("cnn")(one, SPEC), keras.layers.Conv2D)) == 3
    assert layers_of(model, keras.layers.BatchNormalization)
    (shift,) = layers_of(model, keras.layers.RandomTranslation)
    assert shift.get_config()["height_factor"] == 0.15


def test_inactive_layer_hyperparameters_are_left_out():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("hidden_layers", 4)
    get_builder("dfn")(hp, SPEC)  # registers units_0 .. units_3
    hp.values["hidden_layers"] = 2
    params = trial_params(hp)
    assert {"units_0", "units_1"} <= set(params) and not {"units_2", "units_3"} & set(params)


def test_hypermodel_compiles_with_the_searched_learning_rate_and_trains(small_mnist):
    hp = keras_tuner.HyperParameters()
    hp.Fixed("learning_rate", 0.003)
    hypermodel = SearchHyperModel(get_builder("dfn"), SPEC, batch_size=64, patience=2)
    model = hypermodel.build(hp)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.003)
    # Each step is traced once per fit: a trace that creates the optimizer's or the metrics'
    # variables would be traced again (hypermodel.built_before_tracing).
    traces = {"train": 0, "test": 0}

    def counted(kind, step):
        def traced(data):
            traces[kind] += 1
            return step(data)
        return traced

    model.train_step, model.test_step = counted("train", model.train_step), counted("test", model.test_step)
    history = hypermodel.fit(hp, model, *small_mnist.train, validation_data=small_mnist.validation, epochs=2, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.5 and np.isfinite(history.history["loss"]).all()
    assert traces == {"train": 1, "test": 1}


def test_a_standardised_target_is_trained_on_its_squared_error_in_standard_units():
    # The loss is the squared error over the target's variance plus the weight penalty, so that
    # a penalty weighs the same whatever the target's units; RMSE stays in the data's units. The
    # average of such models compiles with the same loss, scored without its members' penalties.
    from nnlab.champion import average_model
    from nnlab.hypermodel import scores
    from nnlab.tasks import get_task

    spec = DataSpec(input_shape=(3, 1), task="regression", kind="sequence", target_scale=(50.0, 20.0))
    hp = keras_tuner.HyperParameters()
    hp.Fixed("l2", 1e-3)
    hypermodel = SearchHyperModel(get_builder("linear"), spec, batch_size=8, patience=2)
    single = hypermodel.build(hp)
    average = average_model([single, hypermodel.build(hp)], ["00", "01"], get_task("regression"), spec)
    windows = np.random.default_rng(0).normal(size=(16, 3, 1)).astype("float32")
    targets = np.linspace(10.0, 90.0, 16).astype("float32").reshape(-1, 1)
    for model in (single, average):
        predictions = model.predict(windows, verbose=0)
        squared = float(np.mean((predictions - targets) ** 2))
        penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
        assert penalty > 0
        measured = scores(model, targets, predictions)
        # An average's loss is its predictions' alone: its members' penalties, which Keras sums
        # (a table champion's 15 refits gave a test_loss of 10 beside 0.3), were never its own.
        assert measured["loss"] == pytest.approx(squared / 20.0**2 + (penalty if model is single else 0.0), rel=1e-4)
        assert measured["rmse"] == pytest.approx(squared**0.5, rel=1e-4)


def test_linear_is_softmax_regression_with_l2():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("l2", 1e-3)
    model = get_builder("linear")(hp, SPEC)
    (dense,) = layers_of(model, keras.layers.Dense)
    assert dense.kernel.shape == (28 * 28, 10) and dense.get_config()["activation"] == "softmax"
    assert model.count_params() == 28 * 28 * 10 + 10 and len(model.losses) == 1  # the L2 penalty


# ---------------------------------------------------------------- recurrent family

SERIES = DataSpec(input_shape=(52, 1), task="regression", kind="sequence", scale=2.0)
RECURRENT = ("rnn", "lstm", "gru")


def windows(count=64, seed=0):
    """A rising, seasonal series cut into windows of 52 steps, and the next value of each."""
    rng = np.random.default_rng(seed)
    starts = rng.uniform(300, 420, size=(count, 1))
    steps = np.arange(53)
    series = (starts + 0.04 * steps + 3 * np.sin(2 * np.pi * steps / 52) + rng.normal(0, 0.2, (count, 53))).astype("float32")
    return series[:, :52, None], series[:, 52]


@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_cells_train_on_images_and_series(name, small_mnist):
    hp = keras_tuner.HyperParameters()
    model = get_builder(name)(hp, SPEC)
    assert hp.values["cell"] == name and model.input_shape == (None, 28, 28, 1)
    (cell,) = {type(layer.forward_layer) for layer in layers_of(model, keras.layers.Bidirectional)}
    assert cell is {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[name]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(small_mnist.train[0][:64], small_mnist.train[1][:64], batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()

    model = get_builder(name)(keras_tuner.HyperParameters(), SERIES)
    inputs, targets = windows()
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(inputs, targets, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # The output is the window's last value plus a learnt change: with no change, the last value.
    change = model.get_layer("scaled_change")
    change.set_weights([np.zeros_like(weight) for weight in change.get_weights()])
    np.testing.assert_array_equal(model.predict(inputs, verbose=0)[:, 0], inputs[:, -1, 0])


def test_recurrent_defaults_and_space():
    hp = keras_tuner.HyperParameters()
    get_builder("lstm")(hp, SPEC)
    assert hp.values == {"cell": "lstm", "dropout": 0.2, "bidirectional": True, "recurrent_dropout": 0.0,
                         "recurrent_layers": 1, "units_0": 128, "dense_units": 0, "clipnorm": 1.0}
    declared = {parameter.name: parameter for parameter in hp.space}
    assert {"units_1", "units_2"} <= set(declared)  # every layer's width visible from the first build
    assert (declared["recurrent_layers"].min_value, declared["recurrent_layers"].max_value) == (1, 3)
    assert isinstance(declared["recurrent_dropout"], keras_tuner.engine.hyperparameters.Fixed)


def test_recurrent_three_bidirectional_layers_and_a_dense_layer():
    hp = keras_tuner.HyperParameters()
    for name, value in {"recurrent_layers": 3, "bidirectional": True, "units_2": 64, "dense_units": 64}.items():
        hp.Fixed(name, value)
    model = get_builder("gru")(hp, SERIES)
    stacked = layers_of(model, keras.layers.Bidirectional)
    assert [layer.forward_layer.units for layer in stacked] == [128, 128, 64]
    assert [layer.forward_layer.return_sequences for layer in stacked] == [True, True, False]
    assert [layer.units for layer in layers_of(model, keras.layers.Dense)] == [64, 1]
    assert model.predict(windows(4)[0], verbose=0).shape == (4, 1)

    hp = keras_tuner.HyperParameters()
    hp.Fixed("bidirectional", False)
    assert not layers_of(get_builder("rnn")(hp, SPEC), keras.layers.Bidirectional)


@pytest.mark.backends
@pytest.mark.parametrize("spec", [SPEC, SERIES], ids=["image", "series"])
def test_recurrent_model_round_trips_in_safe_mode(spec, tmp_path):
    model = get_builder("lstm")(keras_tuner.HyperParameters(), spec)
    inputs = windows(8)[0] if spec.kind == "sequence" else np.random.default_rng(0).random((8, 28, 28, 1), "float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert not layers_of(loaded, keras.layers.Lambda)
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


def test_family_kinds_need_no_tensorflow():
    import subprocess
    import sys

    from nnlab.models import FAMILY_KINDS, families_for

    assert set(FAMILY_KINDS) == set(MODEL_NAMES)
    assert families_for("sequence") == ["dfn", "linear", "rnn", "lstm", "gru"] and "cnn" in families_for("image")
    script = "import sys, nnlab.models as m; m.families_for('image'); assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", script], check=True)


def test_raw_pixels_are_scaled_inside_the_model():
    """The digits arrive in 0-16, as scikit-learn gives them: the model scales them itself."""
    from nnlab.data import load_dataset

    digits = load_dataset("digits", seed=0)
    model = get_builder("cnn")(keras_tuner.HyperParameters(), digits.spec)
    scaling = model.get_layer("to_unit_range")
    assert model.input_shape == (None, 8, 8, 1) and scaling.scale == pytest.approx(1 / 16)
    assert model.predict(digits.test[0][:4], verbose=0).shape == (4, 10)


@pytest.mark.backends
def test_an_average_model_is_the_mean_of_its_members_and_loads_cleanly(tmp_path):
    """The ensemble champion: one model whose output is its members' mean, saved and loaded in
    safe mode without Keras' optimizer warnings, the members named after their trials and
    left as they were."""
    import warnings

    from nnlab.champion import average_model
    from nnlab.tasks import CLASSIFICATION

    members = []
    for seed in (1, 2, 3):
        keras.utils.set_random_seed(seed)
        hypermodel = SearchHyperModel(get_builder("dfn"), SPEC, batch_size=32, patience=1)
        members.append(hypermodel.build(keras_tuner.HyperParameters()))  # compiled, as a restored trial is
    inputs = np.random.default_rng(0).random((6, 28, 28, 1), "float32")
    outputs = [member.predict(inputs, verbose=0) for member in members]
    assert not np.allclose(outputs[0], outputs[1])
    model = average_model(members, ["04", "00", "07"], CLASSIFICATION, SPEC)
    assert [layer.name for layer in model.layers[1:]] == ["trial_04", "trial_00", "trial_07", "average"]
    assert [member.name for member in members] == ["dfn"] * 3  # copies go in; the members stay as they were
    np.testing.assert_allclose(model.predict(inputs, verbose=0), np.mean(outputs, axis=0), atol=1e-6)
    path = tmp_path / "average.keras"
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert not [str(warning.message) for warning in caught if "optimizer" in str(warning.message)]
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), np.mean(outputs, axis=0), atol=1e-6)


def test_the_best_trial_alone_is_registered_only_where_validation_is_sure_of_it():
    """The average is the default; the best trial alone wins only where its lower validation
    loss holds on SINGLE_SURE of the bootstrap resamples, not on a few images' luck."""
    from nnlab.champion import SINGLE_SURE, single_better_share
    from nnlab.tasks import CLASSIFICATION, REGRESSION

    generator = np.random.default_rng(0)
    targets = generator.integers(0, 10, 400)

    def probabilities(right):  # `right` on the true class, the rest spread over the other nine
        spread = np.repeat(((1 - right) / 9)[:, None], 10, axis=1)
        spread[np.arange(len(targets)), targets] = right
        return spread

    single, averaged = probabilities(np.full(400, 0.95)), probabilities(np.full(400, 0.6))
    assert single_better_share(CLASSIFICATION, targets, single, averaged) == 1.0
    assert single_better_share(CLASSIFICATION, targets, averaged, single) == 0.0
    # Lower on average by a hair that a few images decide: not sure enough.
    noisy = probabilities(np.clip(0.9 + generator.normal(0, 0.08, 400), 0.01, 0.99))
    hair = probabilities(np.clip(0.9 + generator.normal(0, 0.08, 400), 0.01, 0.99))
    share = single_better_share(CLASSIFICATION, targets, noisy, hair)
    assert 0.05 < share < SINGLE_SURE
    assert CLASSIFICATION.loss_of(targets, noisy) == pytest.approx(CLASSIFICATION.example_losses(targets, noisy).mean())
    values = generator.normal(size=(50, 1))
    assert single_better_share(REGRESSION, values, values + 0.01, values + 1.0) == 1.0

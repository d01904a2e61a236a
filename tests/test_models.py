from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest

from nnlab.data import DataSpec
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import MODEL_NAMES, get_builder
from nnlab.tuner import trial_params

SPEC = DataSpec(input_shape=(28, 28, 1), num_classes=10)


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize("name", MODEL_NAMES)
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
    assert len(built) == 2 + (layer is keras.layers.Dense)  # the DFN's softmax output is Dense too


def test_cnn_blocks_filters_augmentation_and_batch_norm():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("conv_blocks", 3)
    hp.Fixed("filters_2", 48)
    hp.Fixed("augment_shift", 0.15)
    hp.Fixed("batch_norm", True)
    model = get_builder("cnn")(hp, SPEC)
    convolutions = layers_of(model, keras.layers.Conv2D)
    assert len(convolutions) == 3 and convolutions[2].filters == 48
    assert len(layers_of(model, keras.layers.MaxPooling2D)) == 3
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
    history = hypermodel.fit(hp, model, *small_mnist.train, validation_data=small_mnist.validation, epochs=2, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.5 and np.isfinite(history.history["loss"]).all()


def test_linear_is_softmax_regression_with_l2():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("l2", 1e-3)
    model = get_builder("linear")(hp, SPEC)
    (dense,) = layers_of(model, keras.layers.Dense)
    assert dense.kernel.shape == (28 * 28, 10) and dense.get_config()["activation"] == "softmax"
    assert model.count_params() == 28 * 28 * 10 + 10 and len(model.losses) == 1  # the L2 penalty

"""The lecture notes' training knobs (issue 15): optimizer, learning-rate schedule, L2 weight
decay, pooling and batch size, each fixed at what nnlab did before unless an experiment's
`[space]` opens it, each reaching the compiled model. Real Keras, a few hundred real images."""

from __future__ import annotations

import math

import keras
import keras_tuner
import pytest

from nnlab import space
from nnlab.data import DataSpec
from nnlab.hypermodel import learning_rate_schedule
from nnlab.policies import make_hypermodel
from nnlab.models import get_builder

SPEC = DataSpec(input_shape=(28, 28, 1), num_classes=10)
KNOBS = ("optimizer", "learning_rate_schedule", "weight_decay", "batch_size")


def hypermodel(family="dfn", overrides=None, batch_size=64):
    return make_hypermodel(family, get_builder(family), SPEC, batch_size, 2, space=overrides or {})


def built(family="dfn", overrides=None, values=None, batch_size=64):
    """(hp, compiled model) as a trial builds it, with `values` the oracle's picks."""
    hp = keras_tuner.HyperParameters()
    hp.values.update(values or {})
    return hp, hypermodel(family, overrides, batch_size).build(hp)


def layers_of(model, *kinds):
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def rate(optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


@pytest.mark.parametrize("family", ["cnn", "dfn"])
def test_the_defaults_are_todays_model_and_search(family):
    hp, model = built(family)
    declared = {parameter.name: parameter for parameter in hp.space}
    new = (*KNOBS, "pooling") if family == "cnn" else KNOBS
    # In the default search none of them is searched: each is fixed at what nnlab did before.
    assert all(isinstance(declared[name], keras_tuner.engine.hyperparameters.Fixed) for name in new)
    assert {name: hp.values[name] for name in new} == {
        "optimizer": "adam", "learning_rate_schedule": "constant", "weight_decay": 0.0, "batch_size": 64,
        **({"pooling": "max"} if family == "cnn" else {})}
    assert type(model.optimizer) is keras.optimizers.Adam and learning_rate_schedule(model) is None
    assert rate(model.optimizer) == pytest.approx(2e-3) and model.optimizer.clipnorm is None
    assert not model.losses  # no weight penalty
    assert all(layer.kernel_regularizer is None for layer in layers_of(model, keras.layers.Dense, keras.layers.Conv2D))
    if family == "cnn":
        assert len(layers_of(model, keras.layers.MaxPooling2D)) == 2
        assert not layers_of(model, keras.layers.AveragePooling2D)


@pytest.mark.parametrize("name, kind", [("adam", keras.optimizers.Adam), ("sgd", keras.optimizers.SGD),
                                        ("rmsprop", keras.optimizers.RMSprop)])
def test_the_optimizer_opened_up_reaches_the_compiled_model_with_its_clipping(name, kind):
    # The LSTM declares clipnorm 1.0: every optimizer clips with it.
    hp, model = built("lstm", {"optimizer": ["adam", "sgd", "rmsprop"]}, {"optimizer": name})
    (declared,) = [parameter for parameter in hp.space if parameter.name == "optimizer"]
    assert declared.values == ["adam", "sgd", "rmsprop"] and declared.default == "adam"
    assert type(model.optimizer) is kind and model.optimizer.clipnorm == 1.0
    assert rate(model.optimizer) == pytest.approx(2e-3)
    if name == "sgd":
        assert model.optimizer.momentum == 0.9 and model.optimizer.nesterov


def expected_rate(schedule: str, initial: float, step: int, steps: int) -> float:
    """The lecture notes' formulas, computed here rather than by Keras."""
    if schedule == "inverse_time":
        return initial / (1 + 9 * step / steps)
    return initial * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


@pytest.mark.parametrize("schedule", ["inverse_time", "cosine"])
def test_a_schedule_decays_over_the_epochs_a_fit_trains(schedule, small_mnist):
    keras.utils.set_random_seed(0)
    overrides = {"learning_rate_schedule": schedule, "learning_rate": 0.01, "optimizer": "sgd"}
    policy = hypermodel("dfn", overrides, batch_size=32)
    hp = keras_tuner.HyperParameters()
    model = policy.build(hp)
    inputs, labels = small_mnist.train[0][:96], small_mnist.train[1][:96]
    validation = tuple(part[:32] for part in small_mnist.validation)
    policy.fit(hp, model, inputs, labels, validation_data=validation, epochs=2, verbose=0)
    # 96 images in batches of 32: 3 steps an epoch, 6 in the 2 epochs the trial trains.
    optimizer = model.optimizer
    assert int(optimizer.iterations) == 6 and learning_rate_schedule(model).decay_steps == 6
    assert rate(optimizer) == pytest.approx(expected_rate(schedule, 0.01, 6, 6), abs=1e-7)
    for step in (0, 2, 5, 9):
        optimizer.iterations.assign(step)
        assert rate(optimizer) == pytest.approx(expected_rate(schedule, 0.01, step, 6), abs=1e-7)

    # The champion step: restored with a fresh optimizer (tuner.load_model compiles anew), the
    # schedule starts again and decays over the further epochs, without ReduceLROnPlateau (which
    # cannot set a scheduled rate; it would log a learning_rate each epoch).
    logs = []
    restored = policy.compile(hp, model)
    policy.fit_further(hp, restored, (inputs, labels), validation, initial_epoch=2, epochs=1,
                       callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda _epoch, epoch_logs: logs.append(epoch_logs))])
    assert learning_rate_schedule(restored).decay_steps == 3 and int(restored.optimizer.iterations) == 3
    assert logs and "learning_rate" not in logs[0]


def test_the_champion_anneals_a_constant_rate_to_zero_and_keeps_its_last_epoch(small_mnist):
    policy = hypermodel("dfn", {"learning_rate": 2e-3}, batch_size=32)
    hp = keras_tuner.HyperParameters()
    model = policy.build(hp)
    rates = []  # the rate each step trained with
    validation = tuple(part[:32] for part in small_mnist.validation)
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: rates.append(rate(model.optimizer)))
    further = policy.fit_further(hp, model, tuple(part[:64] for part in small_mnist.train), validation,
                                 initial_epoch=0, epochs=2, callbacks=[record])
    # 64 images in batches of 32: 4 steps in the 2 epochs, along half a cosine from 2e-3 to zero.
    assert rates == pytest.approx([2e-3 * 0.5 * (1 + math.cos(math.pi * step / 4)) for step in range(4)], abs=1e-9)
    assert rate(model.optimizer) == pytest.approx(2e-3)  # put back: the saved model keeps its trial's rate
    # Both epochs ran (no early stopping on an annealed rate), and the last is kept where it beats the start.
    assert further.epochs == 2 and further.kept_epoch in (2, None)
    if further.kept_epoch is None:
        assert further.kept_monitored == further.start_monitored


def test_average_pooling_opened_up():
    hp, model = built("cnn", {"pooling": ["max", "average"]}, {"pooling": "average"})
    (declared,) = [parameter for parameter in hp.space if parameter.name == "pooling"]
    assert declared.values == ["max", "average"] and declared.default == "max"
    assert len(layers_of(model, keras.layers.AveragePooling2D)) == 2 and not layers_of(model, keras.layers.MaxPooling2D)


@pytest.mark.parametrize("family, kernels", [("dfn", 3), ("cnn", 6)])  # hidden layers (two convolutions a CNN block) and the classifier
def test_weight_decay_puts_an_l2_penalty_on_every_kernel(family, kernels):
    _hp, model = built(family, {"weight_decay": 1e-3})
    layers = layers_of(model, keras.layers.Dense, keras.layers.Conv2D)
    assert len(layers) == kernels
    assert all(isinstance(layer.kernel_regularizer, keras.regularizers.L2) for layer in layers)
    assert all(float(layer.kernel_regularizer.l2) == pytest.approx(1e-3) for layer in layers)
    assert len(model.losses) == kernels


def test_batch_size_from_the_space_wins_over_the_experiments(small_mnist):
    inputs, labels = small_mnist.train[0][:96], small_mnist.train[1][:96]
    validation = tuple(part[:32] for part in small_mnist.validation)
    steps = {}
    for overrides in ({}, {"batch_size": 32}):
        policy = hypermodel("dfn", overrides, batch_size=64)
        hp = keras_tuner.HyperParameters()
        model = policy.build(hp)
        history = policy.fit(hp, model, inputs, labels, validation_data=validation, epochs=1, verbose=0)
        steps[overrides.get("batch_size", 64)] = (int(model.optimizer.iterations), len(history.epoch), hp.values["batch_size"])
    assert steps == {64: (2, 1, 64), 32: (3, 1, 32)}  # 96 images: 2 steps of 64, 3 of 32

    # Opened into a choice, the experiment's batch_size is the default (the first trial's).
    hp, _model = built("dfn", {"batch_size": [32, 64, 128]})
    (declared,) = [parameter for parameter in hp.space if parameter.name == "batch_size"]
    assert declared.values == [32, 64, 128] and declared.default == 64 and hp.values["batch_size"] == 64


def test_the_space_check_knows_the_knobs_and_refuses_what_they_cannot_be():
    dfn, cnn = hypermodel("dfn").build, hypermodel("cnn").build
    space.check({"optimizer": ["adam", "sgd", "rmsprop"], "learning_rate_schedule": ["constant", "inverse_time", "cosine"],
                 "weight_decay": [0.0, 1e-3], "batch_size": [32, 64, 128]}, dfn, "here")
    space.check({"pooling": ["max", "average"]}, cnn, "here")
    refused = [
        (dfn, {"optimizer": "adagrad"},
         "here: space.optimizer = 'adagrad': optimizer 'adagrad' is not one of adam, sgd, rmsprop"),
        (dfn, {"learning_rate_schedule": ["constant", "step"]},
         "learning_rate_schedule 'step' is not one of constant, inverse_time, cosine"),
        (cnn, {"pooling": "min"}, "pooling 'min' is not one of max, average"),
        (dfn, {"weight_decay": -1e-4}, "here: space.weight_decay = -0.0001: weight_decay must be at least 0"),
        (dfn, {"batch_size": 0}, "here: space.batch_size = 0: batch_size must be at least 1"),
        (dfn, {"batch_size": 32.5}, "batch_size 32.5 is not a whole number of at least 1"),
        (dfn, {"batch_size": "big"}, "batch_size takes numbers"),
    ]
    for build, overrides, message in refused:
        with pytest.raises(space.SpaceError, match=message.replace("[", r"\[")):
            space.check(overrides, build, "here")

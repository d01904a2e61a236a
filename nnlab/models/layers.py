"""Pieces the builders share: the searched activation / normalisation / dropout knobs."""

from __future__ import annotations

import keras

ACTIVATIONS = ["relu", "tanh", "sigmoid"]


def shared_knobs(hp) -> dict:
    """The knobs every hidden-layer family searches under the same names."""
    return {
        "activation": hp.Choice("activation", ACTIVATIONS),
        "batch_norm": hp.Boolean("batch_norm", default=True),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.3),
    }


def layer_scopes(hp, name: str, min_value: int, max_value: int, default: int | None = None) -> tuple[int, list[list[int]]]:
    """Search a layer count: (count, per possible layer index the counts under which it exists).

    Declaring every possible layer's own hyperparameters in `hp.conditional_scope(name,
    scopes[index])`, and building only the first `count` layers, makes the whole space visible
    from the first build (KerasTuner, and an experiment's [space] check, see all of it) while
    the layers a trial does not build stay inactive and are not logged as if they mattered.
    """
    count = hp.Int(name, min_value, max_value, default=default)
    return count, [list(range(index + 1, max_value + 1)) for index in range(max_value)]


def activate(x, knobs: dict):
    """[batch norm] -> activation; the layer before it leaves out its bias when batch norm is on."""
    if knobs["batch_norm"]:
        # Momentum 0.9, not 0.99: a short trial on a few thousand images takes a few hundred
        # steps, too few for the slower moving averages, and evaluation would see stale ones.
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
    return keras.layers.Activation(knobs["activation"])(x)


def classifier_head(x, knobs: dict, num_classes: int):
    if knobs["dropout"] > 0:
        x = keras.layers.Dropout(knobs["dropout"])(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)

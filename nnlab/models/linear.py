"""The no-hidden-layer baseline: softmax regression, every pixel weighted straight into each class."""

from __future__ import annotations

import keras


def build(hp, spec) -> keras.Model:
    # L2 on the weights: without it the weight maps of a digit classifier fill with pixel noise
    # at the image edges, where training images are always blank.
    l2 = hp.Choice("l2", [0.0, 1e-4, 1e-3], default=1e-4)
    inputs = keras.Input(spec.input_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", kernel_regularizer=regularizer,
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name="linear")

"""The no-hidden-layer baseline: every input weighted straight into the output. Softmax
regression for classes, linear regression (an autoregressive model, for a series) for values."""

from __future__ import annotations

import keras

from nnlab.models.layers import model_input, output_head


def build(hp, spec) -> keras.Model:
    # L2 on the weights: without it the weight maps of a digit classifier fill with pixel noise
    # at the image edges, where training images are always blank.
    l2 = hp.Choice("l2", [0.0, 1e-4, 1e-3], default=1e-4)
    inputs, x = model_input(spec)
    x = keras.layers.Flatten()(x)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    return keras.Model(inputs, output_head(x, {}, spec, inputs, kernel_regularizer=regularizer), name="linear")

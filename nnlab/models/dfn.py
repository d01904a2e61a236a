"""Deep feed-forward network: flatten, then two or more dense hidden layers."""

from __future__ import annotations

import keras

from nnlab.models.layers import activate, classifier_head, layer_scopes, shared_knobs


def build(hp, spec) -> keras.Model:
    knobs = shared_knobs(hp)
    inputs = keras.Input(spec.input_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    count, scopes = layer_scopes(hp, "hidden_layers", 2, 4)
    for index, scope in enumerate(scopes):
        with hp.conditional_scope("hidden_layers", scope):
            units = hp.Int(f"units_{index}", 64, 512, step=64, default=256)
        if index >= count:
            continue
        if index and knobs["dropout"] > 0:
            x = keras.layers.Dropout(knobs["dropout"])(x)
        x = keras.layers.Dense(units, use_bias=not knobs["batch_norm"])(x)
        x = activate(x, knobs)
    return keras.Model(inputs, classifier_head(x, knobs, spec.num_classes), name="dfn")

"""Deep feed-forward network: flatten, then two or more dense hidden layers (a table's with knobs of its own)."""

from __future__ import annotations

import keras

from nnlab.models.layers import (activate, kernel_options, layer_scopes, model_input, output_head, shared_knobs,
                                 table_knobs)
from nnlab.space import COUNT, within


def build(hp, spec) -> keras.Model:
    knobs = table_knobs(hp) if spec.kind == "table" else shared_knobs(hp)
    inputs, x = model_input(spec)
    x = keras.layers.Flatten()(x)
    count, scopes = layer_scopes(hp, "hidden_layers", 2, 4)
    for index, scope in enumerate(scopes):
        with hp.conditional_scope("hidden_layers", scope):
            units = within(hp, COUNT).Int(f"units_{index}", 64, 512, step=64, default=256)
        if index >= count:
            continue
        if index and knobs["dropout"] > 0:
            x = keras.layers.Dropout(knobs["dropout"])(x)
        x = keras.layers.Dense(units, use_bias=not knobs["batch_norm"], **kernel_options(knobs))(x)
        x = activate(x, knobs)
    return keras.Model(inputs, output_head(x, knobs, spec, inputs, **kernel_options(knobs)), name="dfn")

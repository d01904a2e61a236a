"""Recurrent networks: a sequence (an image read row by row, or a window of a series) through one
to three SimpleRNN / LSTM / GRU layers, [bidirectional], -> [dense] -> the task's output.

The registry's names `rnn`, `lstm` and `gru` fix the cell (`build_rnn`, `build_lstm`,
`build_gru`); an experiment's `[space] cell = ["lstm", "gru"]` opens it into a choice.
"""

from __future__ import annotations

import keras

from nnlab.models.layers import layer_scopes, model_input, output_head
from nnlab.space import COUNT, FRACTION, OPTIONAL_COUNT, within

CELLS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def build(hp, spec, cell: str = "lstm") -> keras.Model:
    # Fixed, not searched: the registered name says which cell; `[space] cell = [...]` opens it.
    cell = hp.Fixed("cell", cell)
    if cell not in CELLS:
        raise ValueError(f"cell {cell!r} is not one of {', '.join(CELLS)}")
    inputs, x = model_input(spec)
    if spec.kind == "image":
        # H steps of W*C features: the model takes the same (N, 28, 28, 1) images as the CNN.
        height, width, channels = spec.input_shape
        x = keras.layers.Reshape((height, width * channels), name="rows")(x)
    # Figures below: 6 epochs on 4,500 MNIST images, tested on the official 10k (2 cores), and the
    # weekly CO2 series (windows of 52, early stopping), test RMSE; one seed each.
    # Dropout after each recurrent layer, default 0.2: BiLSTM-128 0.913 with it, 0.904 without.
    dropout = within(hp, FRACTION).Float("dropout", 0.0, 0.5, step=0.1, default=0.2)
    # One switch for all layers, default on: the reference's best over rows is a bidirectional GRU
    # (0.960, DESIGN.md); on 2 cores it costs little time (an epoch 8 s against 7 s for LSTM-128),
    # though in 6 epochs BiLSTM-128 did not beat LSTM-128 (0.913 against 0.921); on CO2 the
    # default BiLSTM-128 matched a 64-unit LSTM (0.383 ppm both).
    bidirectional = hp.Boolean("bidirectional", default=True)
    # Offered, not searched: a non-zero recurrent_dropout turns off the fused cuDNN kernel on a
    # GPU (several times slower). An experiment may open it: `[space] recurrent_dropout = [0.0, 0.3]`.
    recurrent_dropout = within(hp, FRACTION).Fixed("recurrent_dropout", 0.0)
    # One layer by default: two stacked LSTM-128 over rows took 5 times as long as one for 0.938
    # against 0.928 (DESIGN.md); three are offered for long series.
    count, scopes = layer_scopes(hp, "recurrent_layers", 1, 3, default=1)
    for index, scope in enumerate(scopes):
        with hp.conditional_scope("recurrent_layers", scope):
            # 128: the reference's width over MNIST rows (LSTM-128 0.928).
            units = within(hp, COUNT).Int(f"units_{index}", 32, 256, step=32, default=128)
        if index >= count:
            continue
        if index and dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
        layer = CELLS[cell](units, return_sequences=index < count - 1, recurrent_dropout=recurrent_dropout,
                            name=f"{cell}_{index}")
        x = keras.layers.Bidirectional(layer, name=f"bidirectional_{index}")(x) if bidirectional else layer(x)
    # 0 (none) by default: the last state already feeds a linear output in every reference run.
    dense_units = within(hp, OPTIONAL_COUNT).Int("dense_units", 0, 256, step=64, default=0)
    if dense_units:
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.Dense(dense_units, activation="relu")(x)
    # Gradient clipping by norm, read by the compile step (hypermodel.py: `hp.values.get("clipnorm")`,
    # 0.0: none). Default 1.0: recurrent gradients can explode; BiLSTM-128 0.913 with it, 0.881 without.
    hp.Choice("clipnorm", [0.0, 1.0, 5.0], default=1.0)
    return keras.Model(inputs, output_head(x, {"dropout": dropout}, spec, inputs), name=cell)


def build_rnn(hp, spec) -> keras.Model:
    return build(hp, spec, cell="rnn")


def build_lstm(hp, spec) -> keras.Model:
    return build(hp, spec, cell="lstm")


def build_gru(hp, spec) -> keras.Model:
    return build(hp, spec, cell="gru")

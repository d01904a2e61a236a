"""Pieces the builders share: the model's input and output as the data decides them, and the
searched activation / normalisation / dropout knobs (and the L2 weight decay an experiment may open).

`model_input` and `output_head` keep builders data-agnostic: the data's spec says what the raw
input is (an image, a window of a series), how the data set adapts it inside the model, and what
the task's output is (class probabilities, or a value in the data's own units).
"""

from __future__ import annotations

import keras

from nnlab.space import FRACTION, PENALTY, layer_count, within

ACTIVATIONS = ["relu", "tanh", "sigmoid"]
# The layer that scales raw pixels to [0, 1] (1 / pixel_max): nnlab.predict reads the range from it.
UNIT_RANGE_LAYER = "to_unit_range"
# A fine-tune's layer that scales its [0, 1] images back to its source's raw range (transfer.py).
SOURCE_RANGE_LAYER = "to_source_range"
# The champion's average of several models (nnlab.champion.average_model): its members' weight
# penalties are no loss of the average, which was never trained as one model.
AVERAGE_MODEL = "ensemble"


def shared_knobs(hp) -> dict:
    """The knobs every hidden-layer family searches under the same names."""
    return {
        "activation": hp.Choice("activation", ACTIVATIONS),
        "batch_norm": hp.Boolean("batch_norm", default=True),
        "dropout": within(hp, FRACTION).Float("dropout", 0.0, 0.5, step=0.1, default=0.3),
        "weight_decay": weight_decay(hp),
    }


def table_knobs(hp) -> dict:
    """The same knobs for a table of a few hundred rows, where a network of the image defaults
    loses to a linear model (benchmarks/table_knobs.py: diabetes, seeds 1-3, five networks of
    fixed knobs averaged, test RMSE): tanh first (relu 57.4, tanh 55.8, both with weight decay
    1e-2); no batch norm, whose batch statistics on 32 rows of a 300-row table are noise; weight
    decay searched, 1e-2 by default (tanh 56.1 without, 55.6 with 3e-2; Ridge 55.6). breast_cancer
    prefers none (0.9883 without, 0.9825 with 1e-2): the search chooses. The penalty weighs against
    a regression's squared error in its target's standard units (tasks/regression.py, loss_weight)."""
    return {
        "activation": hp.Choice("activation", ["tanh", "relu", "sigmoid"]),
        "batch_norm": hp.Fixed("batch_norm", False),
        "dropout": within(hp, FRACTION).Float("dropout", 0.0, 0.5, step=0.1, default=0.2),
        "weight_decay": within(hp, PENALTY).Choice("weight_decay", [0.0, 1e-3, 1e-2, 3e-2], default=1e-2),
    }


def weight_decay(hp) -> float:
    """L2 weight decay: `weight_decay * sum(w ** 2)` of every Dense and Conv kernel joins the
    loss. Fixed at 0 (no penalty, as before it was offered: dropout and batch norm regularise
    the default models) unless `[space]` opens it: `weight_decay = [0.0, 1e-4, 1e-3]` a choice,
    two numbers a range."""
    return within(hp, PENALTY).Fixed("weight_decay", 0.0)


def kernel_options(knobs: dict) -> dict:
    """What a Dense or Conv layer takes for the knobs' weight decay: an L2 penalty on its kernel
    where it is above 0, nothing otherwise (the layer as it was)."""
    decay = knobs.get("weight_decay", 0)
    return {"kernel_regularizer": keras.regularizers.L2(decay)} if decay else {}


def layer_scopes(hp, name: str, min_value: int, max_value: int, default: int | None = None) -> tuple[int, list[list[int]]]:
    """Search a layer count: (count, per possible layer index the counts under which it exists).

    Declaring every possible layer's own hyperparameters in `hp.conditional_scope(name,
    scopes[index])`, and building only the first `count` layers, makes the whole space visible
    from the first build (KerasTuner, and an experiment's [space] check, see all of it) while
    the layers a trial does not build stay inactive and are not logged as if they mattered.
    An experiment may search from one layer up to `max_value`, the layers declared.
    """
    count = within(hp, layer_count(max_value)).Int(name, min_value, max_value, default=default)
    return count, [list(range(index + 1, max_value + 1)) for index in range(max_value)]


def activate(x, knobs: dict):
    """[batch norm] -> activation; the layer before it leaves out its bias when batch norm is on."""
    if knobs["batch_norm"]:
        # Momentum 0.9, not 0.99: a short trial on a few thousand images takes a few hundred
        # steps, too few for the slower moving averages, and evaluation would see stale ones.
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
    return keras.layers.Activation(knobs["activation"])(x)


def model_input(spec):
    """(inputs, x): the model's input, taking the data as the user holds it, and what the body
    reads. A data set with its own input adapter (a table: one input per column) builds both. Images arrive in [0, 1] or are scaled there by their spec's `pixel_max`. A series spec with a `scale` is read relative to each window's own last value, in
    units of `scale` (learnt from the training part): a network fed raw levels of a trending
    series cannot extrapolate past the levels it trained on (DESIGN.md: test RMSE 1.46 ppm on
    raw CO2 levels, 0.39 relative to the last value). Stock layers only: safe-mode loading and
    `mlflow models serve` need no nnlab code."""
    if spec.adapter is not None:  # the data set's own (a table's columns, each encoded)
        return spec.adapter.inputs()
    inputs = keras.Input(spec.input_shape, name="image" if spec.kind == "image" else "window")
    x = inputs
    if spec.kind == "image" and spec.pixel_max != 1:  # raw pixels (the digits' 0-16) to [0, 1]
        x = keras.layers.Rescaling(1 / spec.pixel_max, name=UNIT_RANGE_LAYER)(x)
    if spec.scale is not None:  # in float32 under mixed precision too: float16 rounds 420 ppm to a quarter
        x = keras.layers.Subtract(name="relative_to_last", dtype="float32")([inputs, _last_step(inputs, spec, "last_step")])
        x = keras.layers.Rescaling(1 / spec.scale, name="scaled", dtype="float32")(x)
    return inputs, x


def pixel_max_of(model) -> float:
    """The raw pixel value the model takes for white: 1 / the scale of its `to_unit_range` layer
    (model_input's), looked for in the models inside it too (an average champion's members);
    none: 1."""
    for layer in model.layers:
        if layer.name == UNIT_RANGE_LAYER:
            return 1 / float(layer.scale)
        if layer.name == SOURCE_RANGE_LAYER:  # a fine-tune whose input took [0, 1]: the source's range is its own
            return 1.0
        if hasattr(layer, "layers"):  # a model within
            inner = pixel_max_of(layer)
            if inner != 1.0:
                return inner
    return 1.0


def _last_step(inputs, spec, name: str):
    """Each window's last step, (N, 1, features)."""
    return keras.layers.Cropping1D((spec.input_shape[0] - 1, 0), name=name, dtype="float32")(inputs)


def output_head(x, knobs: dict, spec, inputs, **dense_options):
    """The task's output after [dropout]: class probabilities, or one value in the data's units
    (mapped back from the scaled change relative to the window's last value, where the input
    was read that way). `dense_options` go to the output's Dense layer (a regulariser, say)."""
    if knobs.get("dropout", 0) > 0:
        x = keras.layers.Dropout(knobs["dropout"])(x)
    # The output in float32 under mixed precision too, as Keras' mixed-precision guide has it: a
    # float16 softmax feeds the loss rounded probabilities, and a value in the data's units (CO2's
    # 420 ppm) would be rounded to a quarter.
    dense_options = dict(dense_options, dtype="float32")
    if spec.task == "classification":
        return keras.layers.Dense(spec.num_classes, activation="softmax", name="probabilities", **dense_options)(x)
    if spec.target_scale is not None:  # predicted in the target's standard units, mapped back to its own
        mean, deviation = spec.target_scale
        x = keras.layers.Dense(1, name="standardised", **dense_options)(x)
        return keras.layers.Rescaling(deviation, offset=mean, name="prediction", dtype="float32")(x)
    if spec.scale is None:
        return keras.layers.Dense(1, name="forecast", **dense_options)(x)
    change = keras.layers.Rescaling(spec.scale, name="unscaled", dtype="float32")(
        keras.layers.Dense(1, name="scaled_change", **dense_options)(x))
    last = keras.layers.Flatten(name="last_value", dtype="float32")(_last_step(inputs, spec, "last_step_again"))
    return keras.layers.Add(name="forecast", dtype="float32")([last, change])

"""Transfer: a trained source model's body under a new head for the target's classes, the target's
raw input adapted inside the model (pixel range, size, channels).

`build(hp, spec, source)` is pure like every builder: the source (nnlab.source.Source) is read,
never changed; each build copies its body. The strategy decides what trains:

- feature-extraction: the body frozen, only the new head trains;
- fine-tune: the Keras two-phase recipe, the head first on the frozen body, then the top
  `unfreeze` layers of the body at `fine_tune_learning_rate` (hypermodel.TransferHyperModel
  runs the phases; `unfreeze_top` here says which layers);
- full: from the source's weights, everything trains;
- scratch: the same architecture from random weights, everything trains: what transfer buys is
  the difference.

The copied body runs in inference mode under every strategy but scratch (the Keras recipe):
batch normalisation keeps the source's statistics, which a few hundred target images would
only spoil, and the source's dropout and augmentation stay off. Scratch trains as the source
itself did, batch statistics, dropout and augmentation on.
"""

from __future__ import annotations

import keras

from nnlab.models import TRANSFER_STRATEGIES as STRATEGIES
from nnlab.models.layers import model_input, output_head

BASE_NAME = "source_base"


def head_index(model) -> int:
    """The position of the source's output layer: its last layer that holds weights."""
    return max(index for index, layer in enumerate(model.layers) if layer.weights)


def weighted_layers(base) -> list:
    """The body's layers that hold weights, input side first: what `unfreeze` counts."""
    return [layer for layer in base.layers if layer.weights]


def body_layer_count(source_model) -> int:
    return sum(1 for layer in source_model.layers[: head_index(source_model)] if layer.weights)


def unfreeze_top(base, count: int) -> None:
    """Make the top `count` weighted layers of the body trainable, the others frozen."""
    layers = weighted_layers(base)
    base.trainable = True  # a model's flag gates its layers'; each layer then says its own
    for index, layer in enumerate(layers):
        layer.trainable = index >= len(layers) - count


def frozen_layer_count(strategy: str, unfreeze: int | None, layers: int) -> int:
    """The body's frozen weighted layers once the strategy's last phase begins."""
    if strategy == "feature-extraction":
        return layers
    if strategy == "fine-tune":
        return layers - min(unfreeze, layers)
    return 0


def adapt_input(x, target_shape: tuple, source_shape: tuple, margin: int = 0):
    """The target's image (already in [0, 1]) as the source reads it: resized (bilinear) into
    the source's frame less `margin` pixels on each side, the margin black; grey repeated to
    colour or colour averaged to grey."""
    (height, width, channels), (source_height, source_width, source_channels) = target_shape, source_shape
    if (height, width) != (source_height, source_width):
        inner = (source_height - 2 * margin, source_width - 2 * margin)
        x = keras.layers.Resizing(*inner, interpolation="bilinear", name="resized")(x)
        if margin:
            x = keras.layers.ZeroPadding2D(margin, name="margin")(x)
    if channels != source_channels:
        if channels == 1:
            x = keras.layers.Concatenate(name="grey_as_colour")([x] * source_channels)
        elif source_channels == 1:
            x = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="colour_as_grey",
                                    kernel_initializer=keras.initializers.Constant(1 / channels))(x)
        else:
            raise ValueError(f"cannot adapt {channels} channels to the source's {source_channels}")
    return x


def cannot_adapt(spec, source_model) -> str | None:
    """Why the target's data cannot feed the source's body, or None."""
    if spec.task != "classification" or spec.kind != "image":
        return f"a fine-tune needs an image classification target, not {spec.kind} {spec.task}"
    source_shape = tuple(source_model.inputs[0].shape[1:])
    channels, source_channels = spec.input_shape[-1], source_shape[-1]
    if channels != source_channels and 1 not in (channels, source_channels):
        return f"its images have {channels} channels and the source's {source_channels}"
    return None


def build(hp, spec, source) -> keras.Model:
    if source is None:
        raise ValueError("the transfer family starts from a trained model: name one (python -m nnlab.finetune SOURCE TARGET)")
    problem = cannot_adapt(spec, source.model)
    if problem:
        raise ValueError(problem)
    layers = body_layer_count(source.model)
    strategy = hp.Choice("strategy", list(STRATEGIES), default="fine-tune")
    with hp.conditional_scope("strategy", ["fine-tune"]):
        # The whole body by default, as in the Keras recipe, at a tenth of the head's learning rate.
        hp.Int("unfreeze", 1, layers, default=layers)
    # The head's dropout, fixed unless an experiment's [space] opens it: with a few labels per
    # class a search has too little validation signal to spend trials on it.
    knobs = {"dropout": hp.Fixed("dropout", 0.2)}
    source_shape = tuple(source.model.inputs[0].shape[1:])
    # A resized target sits in the source's frame as MNIST's digits sit in theirs: a 20x20 box
    # in 28x28, a seventh of the frame black on each side. Measured, the default MNIST CNN to
    # the 8x8 digits, 10 labels per class, 3 seeds: feature extraction 0.823 when the digit fills
    # the frame, 0.894 in MNIST's box; full 0.914 and 0.925. `[space] margin = 0` fills it.
    margin = hp.Fixed("margin", round(source_shape[0] / 7)) if spec.input_shape[:2] != source_shape[:2] else 0

    copy = keras.models.clone_model(source.model)  # new layers, new variables: the source stays as it is
    if strategy != "scratch":
        copy.set_weights(source.model.get_weights())
    base = keras.Model(copy.inputs, copy.layers[head_index(copy)].input, name=BASE_NAME)
    base.trainable = strategy in ("full", "scratch")

    inputs, x = model_input(spec)
    x = adapt_input(x, spec.input_shape, source_shape, margin)
    x = base(x, training=None if strategy == "scratch" else False)
    return keras.Model(inputs, output_head(x, knobs, spec, inputs), name="transfer")

"""Transfer: a trained source model's body under a new head for the target's classes, the target's
raw input adapted inside the model (pixel range, size, channels).

`build(hp, spec, source)` is pure like every builder: the source (nnlab.source.Source) is read,
never changed; each build copies its body. The strategy decides what trains:

- feature-extraction: the body frozen, only the new head trains;
- fine-tune: the Keras two-phase recipe, the head first on the frozen body, then the top
  `unfreeze` layers of the body at `fine_tune_learning_rate` (TransferHyperModel, the family's
  policy below, runs the phases; `unfreeze_top` says which layers);
- full: from the source's weights, everything trains;
- scratch: the same architecture from random weights, everything trains: what transfer buys is
  the difference.

The copied body runs in inference mode under every strategy but scratch (the Keras recipe):
batch normalisation keeps the source's statistics, which a few hundred target images would
only spoil, and the source's dropout and augmentation stay off. Scratch trains as the source
itself did, batch statistics, dropout and augmentation on.

An average champion (champion.average_model: members of different hyperparameters, best first,
under one Average layer) has no single body. `source_members` says what of it is taken: "all"
(the default), every member's body side by side, their features concatenated under the one new
head (`unfreeze` then counts in each member's body), or "best", its best member's body alone.
Measured, the default search's average to the digits at 10 labels per class, 3 seeds
(BENCHMARKS.md, issue 26): fine-tune 0.955 with all against 0.942 with the best alone, feature
extraction 0.969 against 0.934: the members learnt different features, and the head uses them all.

`TransferHyperModel` is the family's compile and fit policy (a SearchHyperModel): the phases,
the learning rates by strategy, the source's lineage on every run and registered version.
"""

from __future__ import annotations

import keras

from nnlab.data.folders import INTERPOLATION
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import TRANSFER_SOURCE_MEMBERS as SOURCE_MEMBERS
from nnlab.models import TRANSFER_STRATEGIES as STRATEGIES
from nnlab.models.layers import SOURCE_RANGE_LAYER, model_input, output_head, pixel_max_of
from nnlab.space import FRACTION, LEARNING_RATE, Bounds, within

BASE_NAME = "source_base"
MEMBER_BODY_PREFIX = "member_body_"  # an average's bodies side by side inside the base
DEFAULT_SOURCE_MEMBERS = "all"


def head_index(model) -> int:
    """The position of the source's output layer: its last layer that holds weights."""
    return max(index for index, layer in enumerate(model.layers) if layer.weights)


def members(model) -> list:
    """An average champion's member models, best first, as champion.average_model orders them;
    any other model is its own one member."""
    if isinstance(model.layers[-1], keras.layers.Average):
        return [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return [model]


def member_trials(model) -> list[str]:
    """The trials an average champion's members were ("trial_05" -> "05"); [] for one model."""
    parts = members(model)
    return [part.name.removeprefix("trial_") for part in parts] if len(parts) > 1 else []


def taken_members(model, taken: str = DEFAULT_SOURCE_MEMBERS) -> list:
    """The members whose bodies a fine-tune takes: the best alone, or all of them."""
    parts = members(model)
    return parts if taken == "all" else parts[:1]


def weighted_layers(body) -> list:
    """A body's layers that hold weights, input side first: what `unfreeze` counts."""
    return [layer for layer in body.layers if layer.weights]


def bodies(base) -> list:
    """The bodies inside the base: an average's members side by side, else the base itself."""
    side_by_side = [layer for layer in base.layers if layer.name.startswith(MEMBER_BODY_PREFIX)]
    return side_by_side or [base]


def body_layer_count(source_model, taken: str = DEFAULT_SOURCE_MEMBERS) -> int:
    """The weighted layers below the head of each taken member (the fewest, where they differ)."""
    return min(sum(1 for layer in part.layers[: head_index(part)] if layer.weights)
               for part in taken_members(source_model, taken))


def unfreeze_top(base, count: int) -> None:
    """Make the top `count` weighted layers of each body trainable, the others frozen."""
    base.trainable = True  # a model's flag gates its layers'; each layer then says its own
    for body in bodies(base):
        layers = weighted_layers(body)
        for index, layer in enumerate(layers):
            layer.trainable = index >= len(layers) - count


def _body(part, strategy: str, name: str) -> keras.Model:
    """A copy of `part` cut below its head; the source's weights unless from scratch."""
    copy = keras.models.clone_model(part)  # new layers, new variables: the source stays as it is
    if strategy != "scratch":
        copy.set_weights(part.get_weights())
    return keras.Model(copy.inputs, copy.layers[head_index(copy)].input, name=name)


def source_base(parts: list, strategy: str, source_shape: tuple) -> keras.Model:
    """The body the new head reads: one member's, or several side by side, features concatenated."""
    if len(parts) == 1:
        return _body(parts[0], strategy, BASE_NAME)
    inputs = keras.Input(source_shape, name="source_image")
    features = [_body(part, strategy, f"{MEMBER_BODY_PREFIX}{index}")(inputs) for index, part in enumerate(parts)]
    return keras.Model(inputs, keras.layers.Concatenate(name="member_features")(features), name=BASE_NAME)


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
        # The resize training and nnlab.predict use (folders.INTERPOLATION), here inside the model.
        x = keras.layers.Resizing(*inner, interpolation=INTERPOLATION, name="resized")(x)
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
    # What of an average champion is taken: declared only where there is a choice.
    taken = (hp.Fixed("source_members", DEFAULT_SOURCE_MEMBERS) if member_trials(source.model)
             else DEFAULT_SOURCE_MEMBERS)
    if taken not in SOURCE_MEMBERS:
        raise ValueError(f"source_members takes {' or '.join(SOURCE_MEMBERS)}, not {taken!r}")
    layers = body_layer_count(source.model, taken)
    strategy = hp.Choice("strategy", list(STRATEGIES), default="fine-tune")
    with hp.conditional_scope("strategy", ["fine-tune"]):
        # The whole body by default, as in the Keras recipe, at a tenth of the head's learning rate.
        within(hp, Bounds(1, layers, why="the source's body has that many layers with weights")).Int(
            "unfreeze", 1, layers, default=layers)
    # The head's dropout, fixed unless an experiment's [space] opens it: with a few labels per
    # class a search has too little validation signal to spend trials on it.
    knobs = {"dropout": within(hp, FRACTION).Fixed("dropout", 0.2)}
    source_shape = tuple(source.model.inputs[0].shape[1:])
    # A resized target sits in the source's frame as MNIST's digits sit in theirs: a 20x20 box
    # in 28x28, a seventh of the frame black on each side. Measured, the default MNIST CNN to
    # the 8x8 digits, 10 labels per class, 3 seeds: feature extraction 0.823 when the digit fills
    # the frame, 0.894 in MNIST's box; full 0.914 and 0.925. `[space] margin = 0` fills it.
    most = (min(source_shape[:2]) - 1) // 2  # a pixel of the image at least
    margin = (within(hp, Bounds(0, most, why="the image needs a pixel of the source's frame")).Fixed(
        "margin", round(source_shape[0] / 7)) if spec.input_shape[:2] != source_shape[:2] else 0)

    base = source_base(taken_members(source.model, taken), strategy, source_shape)
    base.trainable = strategy in ("full", "scratch")

    inputs, x = model_input(spec)
    x = adapt_input(x, spec.input_shape, source_shape, margin)
    source_white = pixel_max_of(source.model)
    if source_white != 1:  # a source that scales raw pixels itself (its to_unit_range is in the body)
        x = keras.layers.Rescaling(source_white, name=SOURCE_RANGE_LAYER)(x)
    x = base(x, training=None if strategy == "scratch" else False)
    return keras.Model(inputs, output_head(x, knobs, spec, inputs), name="transfer")


class TransferHyperModel(SearchHyperModel):
    """The transfer family's policy: its strategies' phases, a second learning rate for
    fine-tuning, and the source's lineage on every run and version.

    fine-tune trains the new head on the frozen body for half the epochs (early stopping may end
    the phase sooner), then unfreezes the body's top `unfreeze` layers and recompiles at
    `fine_tune_learning_rate` for the other half. One History holds both phases; the tuner's
    callbacks (its best-epoch checkpoint, the run's metrics) see one run of epochs, and a
    trial_timeout covers both phases."""

    def __init__(self, builder, spec, batch_size: int, patience: int, source, **options):
        super().__init__(builder, spec, batch_size, patience, **options)
        self.source = source

    @classmethod
    def for_search(cls, builder, spec, batch_size: int, patience: int, source=None, tracking_uri=None, **options):
        return cls(builder, spec, batch_size, patience, source, **options)

    # The first learning rate's default, by strategy. Measured in a throwaway loop (the default
    # MNIST CNN to the digits resized to fill its frame, 10 labels per class, mean of 3 seeds;
    # BENCHMARKS.md, issue 11): a new head on frozen features learns best
    # fast, 0.823 at 1e-2 against 0.722 at 2e-3; training everything from the source's weights
    # wants small steps (full 0.914 at 1e-3, 0.901 at 2e-3); from random weights 1e-2 diverges
    # (scratch 0.262; 0.898 at 2e-3).
    LEARNING_RATES = {"feature-extraction": 1e-2, "fine-tune": 1e-2, "full": 1e-3, "scratch": 2e-3}

    def compile(self, hp, model: keras.Model) -> keras.Model:
        hp = self._narrowed(hp)
        # Declared with the default of the strategy of the first build (a fixed strategy's own).
        learning_rate = within(hp, LEARNING_RATE).Float("learning_rate", 1e-4, 3e-2, sampling="log",
                                                        default=self.LEARNING_RATES[hp.get("strategy")])
        with hp.conditional_scope("strategy", ["fine-tune"]):
            # A tenth of the head's by default: larger steps would undo what the source learnt
            # (0.819 with 2e-3 then 2e-4, 0.929 with 1e-2 then 1e-3).
            within(hp, LEARNING_RATE).Float("fine_tune_learning_rate", 1e-5, 3e-3, sampling="log", default=1e-3)
        return self._compiled(model, learning_rate)

    def fit(self, hp, model, *args, callbacks=None, epochs: int = 1, initial_epoch: int = 0, **kwargs):
        fit = super().fit
        if hp.get("strategy") != "fine-tune":
            return fit(hp, model, *args, callbacks=callbacks, epochs=epochs, initial_epoch=initial_epoch, **kwargs)
        head_epochs = max(1, (epochs - initial_epoch) // 2)
        first = fit(hp, model, *args, callbacks=callbacks, epochs=initial_epoch + head_epochs,
                    initial_epoch=initial_epoch, **kwargs)
        done = initial_epoch + len(first.epoch)
        deadline = self.timer.deadline if self.timer is not None else None
        if self.timer is not None and self.timer.stopped:
            return first  # out of time: no second phase
        unfreeze_top(model.get_layer(BASE_NAME), hp.get("unfreeze"))
        # Keras reads trainable flags when it compiles: recompile for them to count.
        self._compiled(model, hp.get("fine_tune_learning_rate"))
        second = fit(hp, model, *args, callbacks=callbacks, epochs=done + epochs - initial_epoch - head_epochs,
                     initial_epoch=done, deadline=deadline, **kwargs)
        merged = keras.callbacks.History()
        merged.set_model(model)
        merged.epoch = first.epoch + second.epoch
        merged.history = {key: first.history.get(key, []) + second.history.get(key, [])
                          for key in {**first.history, **second.history}}
        return merged

    def run_params(self, hp) -> dict:
        taken = hp.values.get("source_members", DEFAULT_SOURCE_MEMBERS)
        layers = body_layer_count(self.source.model, taken)
        return {"frozen_layers": frozen_layer_count(hp.get("strategy"), hp.values.get("unfreeze"), layers),
                "body_layers": layers}

    def lineage(self, hp) -> dict:
        tags = {**self.source.tags, "nnlab.strategy": hp.get("strategy"),
                "nnlab.frozen_layers": self.run_params(hp)["frozen_layers"]}
        trials = member_trials(self.source.model)
        if trials:  # an average source: which of its members' bodies this model holds
            taken = taken_members(self.source.model, hp.values.get("source_members", DEFAULT_SOURCE_MEMBERS))
            tags |= {"nnlab.source_average": ",".join(trials),
                     "nnlab.source_taken": ",".join(trials[:len(taken)])}  # the best first, as the average holds them
        return tags

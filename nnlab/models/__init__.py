"""Model families: a name -> one `Family` row (the kinds of data it takes, its builder, its
policy, its training defaults), and `get_builder(name)` -> `build(hp, spec) -> keras.Model`.

Each family lives in its own module (`nnlab/models/<name>.py`) exposing `build`; the recurrent
names `rnn`, `lstm` and `gru` share `recurrent.py`, the cell fixed by the name. Builders are
pure: they declare their search space on `hp` and return an uncompiled functional model; the
compile and fit policy is `nnlab.hypermodel`'s, or a family's own beside its builder (gan.py,
transfer.py). Modules are imported on first use so that naming a model (and checking a config)
does not import TensorFlow. A new family is its builder
plus one row (`register(Family(...))` from outside nnlab: tests/test_families.py).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Callable

@dataclass(frozen=True)
class Family:
    """One model family: everything nnlab knows of it before loading TensorFlow, in one row.
    A family is its builder's file plus one row here (or, from outside nnlab, `register`)."""

    name: str
    # Which kinds of input (DataSpec.kind) it can take: "image", "sequence", "table".
    kinds: tuple[str, ...]
    # `build(hp, spec) -> keras.Model`: "module:function" in this package (imported on first
    # use, so that naming a family loads no TensorFlow), or the function itself.
    builder: str | Callable
    # Its compile-and-fit policy (nnlab/hypermodel.py's SearchHyperModel or a subclass, beside
    # the builder where it is the family's own), as "module:Class" in this package or
    # "nnlab.module:Class"; its `for_search` makes it for a search.
    policy: str = "nnlab.hypermodel:SearchHyperModel"
    # Training settings whose default is the family's own (config.TRAINING_DEFAULTS otherwise).
    training_defaults: dict = field(default_factory=dict)
    # Where the builder came to build something else from the same hyperparameters, its version:
    # a search saved by the earlier builder is not resumed (its checkpoints would not load).
    architecture: int | None = None
    # Starts from a trained model (nnlab.source.Source), handed to its builder as `source`.
    needs_source: bool = False
    # Its own config checks, `check(config, named) -> a problem or None`, run when a config
    # loads (so loading no TensorFlow either); `named(key)` names a setting as the user gave it.
    check: Callable | None = None
    # A user's own builder (nnlab/builders.py): a digest of its code, so that a search saved by
    # other code is not resumed, and the builder as the user named it. None for the built-ins.
    code: str | None = None
    reference: str | None = None


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add (or replace) a family: `--model NAME` and `model = "NAME"` then search it."""
    FAMILIES[family.name] = family
    return family


def _gan_checks(config, named) -> str | None:
    if config.dataset != "mnist":
        return (f"{named('model', ' ')} is scored by fid_mnist, which judges MNIST digits: dataset mnist, "
                f"not {config.dataset}")
    if config.ensemble > 1:
        return (f"{named('ensemble')}: an average of generators' images is no generator's; the GAN family "
                "registers its best trial alone")
    if config.mixed_precision:
        # Keras scales the loss against float16 underflow in its own train_step only (the
        # LossScaleOptimizer it wraps around a compiled optimizer); the GAN's train_step steps
        # its two optimizers itself, unscaled. Refused rather than trained with vanishing gradients.
        return (f"{named('mixed_precision')}: model gan trains in float32 (its own train_step scales no loss "
                "against float16 underflow); jit_compile and steps_per_execution apply to it")
    return None


for _row in (
    # cnn 2: two convolutions a block by default (issue 15). A CNN needs an image's two spatial axes.
    # Its champion's members train on for 6 annealed epochs: on the default search's members, 6
    # gave 0.9902 in 103 s, 8 gave 0.9904 in 138 s, the 20 of the rule before 0.9912 in 287 s
    # (BENCHMARKS.md, issue 30: the default search in five minutes).
    Family("cnn", ("image",), "cnn:build", architecture=2, training_defaults={"final_epochs": 6}),
    # The others read an image as a flat vector (dfn, linear) or as a sequence of rows. A table's
    # encoded columns have no order a convolution or a recurrence could read: dfn and linear.
    # dfn 2: a table's knobs are its own (tanh first, no batch norm, weight decay searched; issue 32).
    Family("dfn", ("image", "sequence", "table"), "dfn:build", architecture=2),
    Family("linear", ("image", "sequence", "table"), "linear:build"),
    Family("rnn", ("image", "sequence"), "recurrent:build_rnn"),
    Family("lstm", ("image", "sequence"), "recurrent:build_lstm"),
    Family("gru", ("image", "sequence"), "recurrent:build_gru"),
    # A DCGAN draws images (nnlab/models/gan.py, its policy too; judged by fid_mnist). It learns
    # per step: 32 images a step gives it four times the steps of 128 on 5,000 images. Its
    # champion trains on longest (fid_mnist still falls after 30 epochs, measured in
    # BENCHMARKS.md), and the score of a few hundred samples is noisy from epoch to epoch. An
    # average of generators' images is no generator's: the best trial alone.
    Family("gan", ("image",), "gan:build", policy="gan:GANHyperModel",
           training_defaults={"batch_size": 32, "final_epochs": 40, "patience": 8, "ensemble": 0},
           check=_gan_checks),
    # A source's body reads images; nnlab.finetune names the source.
    Family("transfer", ("image",), "transfer:build", policy="transfer:TransferHyperModel", needs_source=True),
):
    register(_row)

# The built-in families, in the order commands list them.
MODEL_NAMES = tuple(FAMILIES)
SOURCE_FAMILIES = tuple(name for name, family in FAMILIES.items() if family.needs_source)
FAMILY_KINDS = {name: family.kinds for name, family in FAMILIES.items()}
ARCHITECTURES = {name: family.architecture for name, family in FAMILIES.items() if family.architecture is not None}
# What the transfer family does with its source (nnlab/models/transfer.py says each one).
TRANSFER_STRATEGIES = ("fine-tune", "feature-extraction", "full", "scratch")
# What the transfer family takes of an average champion: all members' bodies side by side, or its best member's.
TRANSFER_SOURCE_MEMBERS = ("best", "all")


def family_names(searchable_only: bool = False) -> list[str]:
    """Every family's name, registered ones included; `searchable_only`: those a search starts
    without a source model (the others, nnlab.finetune)."""
    return [name for name, family in FAMILIES.items() if not (searchable_only and family.needs_source)]


def families_for(kind: str) -> list[str]:
    """The model names that can take input of this kind ("image" or "sequence"), in FAMILIES order."""
    return [name for name, family in FAMILIES.items() if kind in family.kinds]


def _resolve(reference: str, package: str):
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module if module.startswith("nnlab") else f"{package}.{module}"), attribute)


def get_policy(name: str):
    """The family's policy class (a KerasTuner HyperModel); loads TensorFlow."""
    return _resolve(FAMILIES[name].policy, __name__)


def get_builder(name: str, source=None) -> Callable:
    """`build(hp, spec)` for the family; a family that needs a source gets `source` bound."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(FAMILIES)}")
    family = FAMILIES[name]
    builder = family.builder if callable(family.builder) else _resolve(family.builder, __name__)
    return functools.partial(builder, source=source) if family.needs_source else builder

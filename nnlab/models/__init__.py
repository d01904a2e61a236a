"""Model builders: a name -> `build(hp, spec) -> keras.Model` registry.

Each family lives in its own module (`nnlab/models/<name>.py`) exposing `build`; the recurrent
names `rnn`, `lstm` and `gru` share `recurrent.py`, the cell fixed by the name. Builders are
pure: they declare their search space on `hp` and return an uncompiled functional model; the
compile and fit policy lives in `nnlab.hypermodel`. Modules are imported on first use so that
naming a model (and checking a config) does not import TensorFlow.
"""

from __future__ import annotations

import functools
import importlib
from typing import Callable

MODEL_NAMES = ("cnn", "dfn", "linear", "rnn", "lstm", "gru", "gan", "transfer")
# Families that start from a trained model (nnlab.source.Source), handed to their builder as `source`.
SOURCE_FAMILIES = ("transfer",)
# Where a family's builder came to build something else from the same hyperparameters, its
# version here: a search saved by the earlier builder is not resumed (its checkpoints would not
# load into the new layers). cnn 2: two convolutions a block by default (issue 15).
ARCHITECTURES = {"cnn": 2}
# What the transfer family does with its source (nnlab/models/transfer.py says each one).
TRANSFER_STRATEGIES = ("fine-tune", "feature-extraction", "full", "scratch")
# What the transfer family takes of an average champion: its best member's body, or all side by side.
TRANSFER_SOURCE_MEMBERS = ("best", "all")

# Which kinds of input (DataSpec.kind) each family can take: a CNN needs an image's two spatial
# axes; the others read an image as a flat vector (dfn, linear) or as a sequence of rows. A
# table's encoded columns have no order a convolution or a recurrence could read: dfn and linear.
FAMILY_KINDS = {
    "cnn": ("image",),
    "dfn": ("image", "sequence", "table"),
    "linear": ("image", "sequence", "table"),
    "rnn": ("image", "sequence"),
    "lstm": ("image", "sequence"),
    "gru": ("image", "sequence"),
    "gan": ("image",),  # a DCGAN draws images (nnlab/models/gan.py; judged by fid_mnist)
    "transfer": ("image",),  # a source's body reads images; nnlab.finetune names the source
}

# name -> (module, builder function) where the two differ from (name, "build").
_BUILDERS = {"rnn": ("recurrent", "build_rnn"), "lstm": ("recurrent", "build_lstm"), "gru": ("recurrent", "build_gru")}


def families_for(kind: str) -> list[str]:
    """The model names that can take input of this kind ("image" or "sequence"), in MODEL_NAMES order."""
    return [name for name in MODEL_NAMES if kind in FAMILY_KINDS[name]]


def get_builder(name: str, source=None) -> Callable:
    """`build(hp, spec)` for the family; a family in SOURCE_FAMILIES gets `source` bound."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    module, function = _BUILDERS.get(name, (name, "build"))
    builder = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return functools.partial(builder, source=source) if name in SOURCE_FAMILIES else builder

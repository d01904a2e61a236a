"""Model builders: a name -> `build(hp, spec) -> keras.Model` registry.

Each family lives in its own module (`nnlab/models/<name>.py`) exposing `build`; the recurrent
names `rnn`, `lstm` and `gru` share `recurrent.py`, the cell fixed by the name. Builders are
pure: they declare their search space on `hp` and return an uncompiled functional model; the
compile and fit policy lives in `nnlab.hypermodel`. Modules are imported on first use so that
naming a model (and checking a config) does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Callable

MODEL_NAMES = ("cnn", "dfn", "linear", "rnn", "lstm", "gru")

# Which kinds of input (DataSpec.kind) each family can take: a CNN needs an image's two spatial
# axes; the others read an image as a flat vector (dfn, linear) or as a sequence of rows.
FAMILY_KINDS = {
    "cnn": ("image",),
    "dfn": ("image", "sequence"),
    "linear": ("image", "sequence"),
    "rnn": ("image", "sequence"),
    "lstm": ("image", "sequence"),
    "gru": ("image", "sequence"),
}

# name -> (module, builder function) where the two differ from (name, "build").
_BUILDERS = {"rnn": ("recurrent", "build_rnn"), "lstm": ("recurrent", "build_lstm"), "gru": ("recurrent", "build_gru")}


def families_for(kind: str) -> list[str]:
    """The model names that can take input of this kind ("image" or "sequence"), in MODEL_NAMES order."""
    return [name for name in MODEL_NAMES if kind in FAMILY_KINDS[name]]


def get_builder(name: str) -> Callable:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    module, function = _BUILDERS.get(name, (name, "build"))
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)

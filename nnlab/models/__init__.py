"""Model builders: a name -> `build(hp, spec) -> keras.Model` registry.

Each family lives in its own module (`nnlab/models/<name>.py`) exposing `build`. Builders are
pure: they declare their search space on `hp` and return an uncompiled functional model; the
compile and fit policy lives in `nnlab.hypermodel`. Modules are imported on first use so that
naming a model (and checking a config) does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Callable

MODEL_NAMES = ("cnn", "dfn", "linear")


def get_builder(name: str) -> Callable:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").build

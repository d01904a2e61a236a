"""Which compile-and-fit policy (a KerasTuner HyperModel, nnlab/hypermodel.py) each family
trains under: its row's (nnlab.models.Family.policy), made for a search."""

from __future__ import annotations

from nnlab.accelerators import Acceleration
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import get_policy


def make_hypermodel(family: str, builder, spec, batch_size: int, patience: int, source=None, tracking_uri=None, *,
                    accelerate: Acceleration | None = None, **options) -> SearchHyperModel:
    """The policy for `family`. `source`: the trained model a family that needs one starts from;
    `tracking_uri`: the store a family may read (the GAN's judge). `accelerate`: what every
    compile passes to Keras (None: Acceleration(), Keras' defaults); its mixed precision is the
    caller's to activate, before any model is built."""
    return get_policy(family).for_search(builder, spec, batch_size, patience, source=source,
                                         tracking_uri=tracking_uri, accelerate=accelerate, **options)

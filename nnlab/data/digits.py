"""digits: scikit-learn's 1,797 UCI handwritten digits, 8x8 pixels in 0-16, shipped offline.

The images stay as the user holds them (0-16, not rescaled): the spec's `pixel_max` tells the
model to scale them inside itself (models/layers.py), so a registered model takes raw rows of
`load_digits().images`.

scikit-learn is imported inside functions, when the data set loads: a config check needs none.
"""

from __future__ import annotations

import numpy as np

from nnlab.data.types import DataSpec, Dataset
from nnlab.data.mnist import _split
from nnlab.errors import DataError

DIGITS_PIXEL_MAX = 16.0  # load_digits' pixels count the set pixels of a 4x4 block: 0 to 16
TEST_FRACTION = 0.2  # 20% test, then validation_fraction of the rest
# The split is the same whatever the experiment's seed, which draws the labels of
# `labels_per_class` and trains: results over several seeds are scored on the same test images.
SPLIT_SEED = 0


def load_digits(data_dir=None, seed: int = 0, validation_fraction: float = 0.1) -> Dataset:
    """The digits as (N, 8, 8, 1) float32 in 0-16 with integer labels 0-9, split the same way
    for every `seed`."""
    if data_dir is not None:
        raise DataError("the digits data set ships with scikit-learn and reads no --data-dir")
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    rest, test = _split(images, labels, TEST_FRACTION, rng)
    train, validation = _split(*rest, validation_fraction, rng)
    return Dataset(
        name="digits",
        train=train,
        validation=validation,
        test=test,
        spec=DataSpec(input_shape=(8, 8, 1), num_classes=10, pixel_max=DIGITS_PIXEL_MAX),
        source=f"sklearn.datasets.load_digits (1,797 UCI 8x8 digits, pixels 0-16; {TEST_FRACTION:.0%} test, split seed {SPLIT_SEED})",
    )

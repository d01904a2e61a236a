"""How good generated images are, as an image classifier judges them.

`fid_mnist`: the Frechet distance between real and generated images in the feature space of an
MNIST classifier (the input of its output layer), as FID does with Inception's. Beside it,
what the classifier makes of the generated images: its mean confidence (the largest class
probability) and how many classes it finds among them (a generator that collapsed onto one or
two digits covers one or two).
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
from scipy import linalg

from nnlab.models.transfer import head_index, members

BATCH_SIZE = 256


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two sets of feature rows: the
    distance between the Gaussians fitted to them (0 for identical sets)."""
    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    covariance_a, covariance_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    with warnings.catch_warnings():
        # Features that never fire (dead ReLUs) make the product singular; sqrtm says so, and
        # its root is still the one FID takes, or not finite, and then nudged.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(covariance_a @ covariance_b)
        if not np.isfinite(root).all():  # as the FID reference code does
            offset = np.eye(len(covariance_a)) * 1e-6
            root = linalg.sqrtm((covariance_a + offset) @ (covariance_b + offset))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a + covariance_b - 2 * np.real(root))
    return float(max(distance, 0.0))  # rounding can take an exact match a hair below 0


class Judge:
    """An image classifier (a registered champion, say) used to score images: its features (the
    input of its output layer) and its class probabilities, from one pass. An average champion
    (champion.average_model) is judged by its first member's."""

    def __init__(self, classifier):
        classifier = members(classifier)[0]
        head = classifier.layers[head_index(classifier)]
        self.input_shape = tuple(classifier.inputs[0].shape[1:])
        # Its one input as itself, not a list of one: Keras on JAX and PyTorch warns at every
        # predict when a list-input model is handed a plain array.
        self.model = keras.Model(classifier.inputs[0], [head.input, classifier.outputs[0]], name="judge")

    def look(self, images) -> tuple[np.ndarray, np.ndarray]:
        """(features, class probabilities) of `images`, in the classifier's raw input units."""
        features, probabilities = self.model.predict(images, batch_size=BATCH_SIZE, verbose=0)
        return np.asarray(features), np.asarray(probabilities)

    def distance(self, real, generated) -> float:
        """fid_mnist between two sets of images."""
        return frechet_distance(self.look(real)[0], self.look(generated)[0])

    def scores(self, real_features: np.ndarray, images) -> dict:
        """fid_mnist of `images` against real images' features (looked at once, kept), the mean
        largest class probability (confidence) and the classes found at least once (coverage)."""
        features, probabilities = self.look(images)
        return {"fid_mnist": frechet_distance(real_features, features),
                "confidence": float(probabilities.max(axis=1).mean()),
                "coverage": int(len(np.unique(probabilities.argmax(axis=1))))}

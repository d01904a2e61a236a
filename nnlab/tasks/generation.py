"""Generation: a generator has no accuracy: its images are scored by how far they lie from
held-out real ones in an MNIST classifier's feature space (nnlab/quality.py), lower is better.
Its loss is its hypermodel's own (a GAN's two), it has no trivial baseline, and its champion is
drawn as a grid of what it draws.

nnlab.plots (matplotlib, pandas) is imported inside functions, the figure function, when it
draws, which `import nnlab.tasks` leaves out.
"""

from __future__ import annotations

from nnlab.tasks.base import ChampionFigure, Task
from nnlab.tasks.regression import Regression


def _samples(_model, dataset, predictions, title):
    from nnlab import plots

    return plots.sample_grid(predictions[:plots.SAMPLE_GRID], dataset.spec.pixel_max, f"{title}: generated from fixed latent vectors")


class Generation(Task):
    figures = (ChampionFigure("samples", _samples),)
    # How far from real digits, how sure the judge is of what it sees, how many digits it finds.
    headline = ("fid_mnist", "confidence", "coverage")
    counts = ("coverage",)

    def keras_metrics(self) -> list:
        return []  # what a GAN reports is its hypermodel's (its two losses, fid_mnist per epoch)

    # Its outputs are pixel values: where they are scored against targets, it is as regression
    # scores values (RMSE, and each example's mean squared error).
    score = Regression.score
    example_losses = Regression.example_losses


GENERATION = Generation("generation", metric="fid_mnist", direction="min", loss="binary_crossentropy")

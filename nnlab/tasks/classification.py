"""Classification: class probabilities scored by accuracy (higher is better) and trained on
their cross-entropy; its trivial baseline the training split's most frequent class; its
champion drawn as a confusion matrix, its worst mistakes and its first layer's weights.

nnlab.plots is imported inside functions, the figure functions, when they draw: it loads
matplotlib and pandas, which `import nnlab.tasks` leaves out.
"""

from __future__ import annotations

import numpy as np

from nnlab.tasks.base import ChampionFigure, Task


def _confusion_matrix(_model, dataset, predictions, title):
    from nnlab import plots

    return plots.confusion_matrix(dataset.test[1], predictions, title)


def _misclassified(_model, dataset, predictions, title):
    from nnlab import plots

    return plots.worst_misclassified(*dataset.test, predictions, title, pixel_max=dataset.spec.pixel_max)


def _first_layer_weights(model, _dataset, _predictions, title):
    from nnlab import plots

    return plots.first_layer_weights(model, title)


class Classification(Task):
    figures = (ChampionFigure("confusion_matrix", _confusion_matrix),
               ChampionFigure("misclassified", _misclassified, ("image",)),
               ChampionFigure("first_layer_weights", _first_layer_weights, ("image",)))
    headline = ("accuracy",)
    baseline_words = {"majority": "always the most frequent class"}

    @property
    def further_monitor(self) -> tuple[str, str]:
        """The validation loss, not the objective: accuracy on a few hundred images moves in
        steps of 0.002 and stalls for epochs while the loss still falls (BENCHMARKS.md, issue 15)."""
        return "val_loss", "min"

    def keras_metrics(self) -> list:
        return ["accuracy"]

    def score(self, targets: np.ndarray, predictions: np.ndarray) -> float:
        """The accuracy of class probabilities."""
        targets = np.asarray(targets)
        predictions = np.asarray(predictions)
        return float(np.mean(predictions.argmax(axis=-1) == targets.reshape(-1)))

    def example_losses(self, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Each example's cross-entropy, its probabilities clipped as Keras clips them."""
        targets = np.asarray(targets)
        predictions = np.asarray(predictions, dtype=float)
        chosen = predictions.reshape(len(targets), -1)[np.arange(len(targets)), targets.reshape(-1)]
        return -np.log(np.clip(chosen, 1e-7, 1.0))

    def trivial_baselines(self, dataset) -> dict:
        """The training split's most frequent class ("majority"), for every test example."""
        targets, count = dataset.train[1], len(dataset.test[1])
        majority = np.zeros((count, dataset.spec.num_classes), dtype=np.float32)
        majority[:, int(np.bincount(np.ravel(targets), minlength=dataset.spec.num_classes).argmax())] = 1
        return {"majority": majority}


CLASSIFICATION = Classification("classification", metric="accuracy", direction="max",
                                loss="sparse_categorical_crossentropy")

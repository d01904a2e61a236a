"""The linear member of a table's champion (issue 32): the no-hidden-layer model (softmax or
linear regression on the table's encoded columns) fit to its optimum, its L2 chosen on the
search's own folds, then fit on all the training and validation rows.

Trained by Adam for the epochs its folds choose, the no-hidden-layer family stays behind the
closed-form fits it matches in kind (BENCHMARKS.md, issue 32, sixth part); fit by scikit-learn
(lbfgs logistic regression, ridge's closed form, both installed with nnlab) it is the baseline a
statistician fits first, and on small tables it is often as good as the networks. The champion
step scores it on the folds the trials were scored on and averages it in where it ranks among
the members (nnlab.champion._refit). Its weights go into the family's own Keras model
(nnlab.models.linear): it loads, serves and predicts as any member does.

Keras, scikit-learn and pandas are imported inside functions: importing this module loads none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnlab.models import get_builder

# The L2 penalty on the mean loss (the loss + PENALTY * |weights|^2) tried on the folds: around
# scikit-learn's defaults on a few hundred rows (LogisticRegression's C = 1: 1 / (2 n), about
# 1e-3; Ridge's alpha = 1: 1 / n, about 3e-3), a factor of 3 a step, 30 either way.
PENALTIES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# The logit of a class the fitting rows did not hold: a probability of about 1e-13 beside the others.
ABSENT_LOGIT = -30.0


@dataclass(frozen=True)
class LinearMember:
    model: object  # a Keras model: the table's columns in, the task's output out
    penalty: float  # the L2 the folds chose
    fold_score: float  # its mean score over the folds at that penalty (the task's metric)


def unfitted(spec):
    """(the no-hidden-layer family's Keras model, nnlab.models.linear, without the L2 that only
    its training reads; the model of what its output layer reads: the columns, encoded)."""
    import keras
    import keras_tuner

    from nnlab.tabular import input_of

    hp = keras_tuner.HyperParameters()
    hp.Fixed("l2", 0.0)
    model = get_builder("linear")(hp, spec)
    flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    return model, keras.Model(input_of(model), flatten.output)


def encoded(reader, rows) -> np.ndarray:
    """`rows` (a table's DataFrame) as `reader` (unfitted's second model) reads them: (N, features)."""
    from nnlab.tabular import keras_inputs

    return np.asarray(reader.predict(keras_inputs(rows, reader), verbose=0), dtype=np.float64)


def fitted_weights(spec, features: np.ndarray, targets: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of the output Dense layer minimising the mean loss + penalty * |kernel|^2:
    class logits for a classification, the target in its standard units for a regression."""
    from sklearn.linear_model import LogisticRegression, Ridge

    rows = len(targets)
    if spec.task == "classification":
        # scikit-learn's objective is |w|^2 / 2 + C * (the summed loss): C = 1 / (2 n penalty).
        model = LogisticRegression(C=1 / (2 * penalty * rows), max_iter=10_000).fit(features, targets.ravel())
        # A class these rows lack (none should: the folds are stratified) gets no probability.
        present = model.classes_.astype(int)
        kernel, bias = np.zeros((features.shape[1], spec.num_classes)), np.full(spec.num_classes, ABSENT_LOGIT)
        if len(present) == 2:  # one logit difference, split evenly between the two softmax outputs
            kernel[:, present], bias[present] = np.hstack([-model.coef_.T, model.coef_.T]) / 2, [
                -model.intercept_[0] / 2, model.intercept_[0] / 2]
        else:
            kernel[:, present], bias[present] = model.coef_.T, model.intercept_
        return kernel, bias
    mean, deviation = spec.target_scale or (0.0, 1.0)
    model = Ridge(alpha=penalty * rows).fit(features, (targets.ravel() - mean) / deviation)
    return model.coef_.reshape(-1, 1), np.array([model.intercept_])


def predicted(spec, features: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """What the Keras model of `weights` outputs for `features`: probabilities, or values in the
    target's own units."""
    kernel, bias = weights
    outputs = features @ kernel + bias
    if spec.task == "classification":
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return outputs / outputs.sum(axis=1, keepdims=True)
    mean, deviation = spec.target_scale or (0.0, 1.0)
    return outputs * deviation + mean


def linear_member(spec, task, rows, targets: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> LinearMember:
    """The linear model of the PENALTY with the lowest mean loss over `folds` ((training rows,
    validation rows) of `rows`), fit on all of `rows`, with its mean fold score."""
    model, reader = unfitted(spec)
    features = encoded(reader, rows)
    losses, scores = {}, {}
    for penalty in PENALTIES:
        outputs = [(validation, predicted(spec, features[validation],
                                          fitted_weights(spec, features[train], targets[train], penalty)))
                   for train, validation in folds]
        losses[penalty] = np.mean([task.loss_of(targets[validation], output) for validation, output in outputs])
        scores[penalty] = float(np.mean([task.score(targets[validation], output) for validation, output in outputs]))
    penalty = min(PENALTIES, key=losses.get)
    output = next(layer for layer in model.layers if layer.name in ("probabilities", "standardised"))  # output_head's
    output.set_weights([weight.astype(np.float32) for weight in fitted_weights(spec, features, targets, penalty)])
    return LinearMember(model, penalty, scores[penalty])

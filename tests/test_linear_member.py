"""The linear member of a table's champion (nnlab/linear_member.py): the no-hidden-layer model
fit to its optimum by scikit-learn on the columns as the networks read them, its L2 chosen on the
search's folds, in a Keras model that predicts what scikit-learn's fit predicts."""

from __future__ import annotations

import numpy as np
import pytest

import nnlab
from nnlab.data import load_dataset
from nnlab.data.folds import fold_indices, joined
from nnlab.linear_member import PENALTIES, encoded, linear_member
from nnlab.tabular import keras_inputs
from nnlab.tasks import get_task


@pytest.mark.parametrize("table", ["breast_cancer", "wine", "diabetes"])
def test_the_member_predicts_what_scikit_learns_fit_predicts(table, tmp_path):
    """Two classes, three, and values: the same test predictions as LogisticRegression (C = 1 /
    (2 n L2)) or Ridge (alpha = n L2, on the target's standard units) fit on the encoded rows,
    the L2 the one of lowest mean fold loss; and the model saves and loads in Keras' safe mode."""
    import keras
    from sklearn.linear_model import LogisticRegression, Ridge

    dataset = load_dataset(table, {}, seed=3)
    spec, task = dataset.spec, get_task(dataset.spec.task)
    rows, targets = joined(dataset.train, dataset.validation)
    folds = fold_indices(targets, 5, spec.task, spec.kind, 3)
    member = linear_member(spec, task, rows, targets, folds)
    assert member.penalty in PENALTIES
    features, test_features = encoded(spec, rows), encoded(spec, dataset.test[0])
    if spec.task == "classification":
        fit = LogisticRegression(C=1 / (2 * member.penalty * len(targets)), max_iter=10_000).fit(features, targets)
        expected = fit.predict_proba(test_features)
    else:
        mean, deviation = spec.target_scale
        fit = Ridge(alpha=member.penalty * len(targets)).fit(features, (targets - mean) / deviation)
        expected = fit.predict(test_features).reshape(-1, 1) * deviation + mean
    member.model.save(tmp_path / "linear.keras")
    loaded = keras.saving.load_model(tmp_path / "linear.keras", safe_mode=True)
    predictions = loaded.predict(keras_inputs(dataset.test[0]), verbose=0)
    np.testing.assert_allclose(predictions, expected, rtol=1e-4, atol=1e-4 * (1 if spec.task == "classification" else 77))
    # Its fold score is the task's metric, averaged over the folds, in the metric's range.
    assert (0.5 < member.fold_score <= 1.0) if spec.task == "classification" else (40 < member.fold_score < 80)


def test_linear_member_needs_folds_to_choose_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(nnlab.NnlabError, match=r"^linear_member=True: the linear member is chosen on the search's folds; "
                                               r"this search has none \(set cross_validation to 2 or more\)$"):
        nnlab.search("wine", linear_member=True, cross_validation=0, max_trials=1, epochs=1, verbose=False)

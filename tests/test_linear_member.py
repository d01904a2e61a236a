"""The linear member of a table's champion (nnlab/linear_member.py): the no-hidden-layer model
fit to its optimum by scikit-learn on the columns as the networks read them, its L2 chosen on the
search's folds, in a Keras model that predicts what scikit-learn's fit predicts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import nnlab
from nnlab.data import load_dataset
from nnlab.data.folds import fold_indices, joined
from nnlab.linear_member import PENALTIES, encoded, linear_member, unfitted
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
    reader = unfitted(spec)[1]
    features, test_features = encoded(reader, rows), encoded(reader, dataset.test[0])
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


def test_it_joins_where_its_fold_score_ranks_among_the_members_and_not_below():
    """The gate: at least the last member's objective (equal counts: float32 curves differ in the
    last digits), with what it decided said and logged; for a regression, lower is better."""
    from types import SimpleNamespace

    from keras_tuner.src.engine.hyperparameters import HyperParameters
    from keras_tuner.src.engine.trial import Trial

    from nnlab.champion import _linear_member
    from nnlab.config import ExperimentConfig

    for table in ("wine", "diabetes"):
        dataset = load_dataset(table, {}, seed=3)
        task = get_task(dataset.spec.task)
        rows = joined(dataset.train, dataset.validation)
        config, tuner = ExperimentConfig(name=table, dataset=table, model="dfn", seed=3), SimpleNamespace(folds=5)
        fold_score = linear_member(dataset.spec, task, *rows, fold_indices(rows[1], 5, task.name, "table", 3)).fold_score
        worse = -1 if task.higher_is_better else 1
        for last_score, joins in ((fold_score, True), (fold_score + 1e-7, True), (fold_score - worse * 1e-3, False),
                                  (fold_score + worse * 1e-3, True)):
            members = [Trial(HyperParameters(), trial_id=trial_id) for trial_id in ("04", "07")]
            members[0].score, members[1].score = last_score - worse, last_score
            lines = []
            decided = _linear_member(config, tuner, SimpleNamespace(task=task), dataset, rows, members, lines.append)
            assert (decided["model"] is not None) == joins and decided["linear_member_joined"] == float(joins)
            said = " ".join(" ".join(lines).split())
            assert f"val_{task.metric} {fold_score:.4f} on the folds, trial 07's {last_score:.4f}, the last of 2 members: " \
                   + ("joins the average as one member more" if joins else "left out") in said
        # Not for the linear family's own search, nor without folds; asked for, it is considered.
        assert _linear_member(replace(config, model="linear"), tuner, SimpleNamespace(task=task), dataset, rows, members,
                              lines.append) == {}
        assert _linear_member(config, SimpleNamespace(folds=0), SimpleNamespace(task=task), dataset, rows, members,
                              lines.append) == {}
        assert "model" in _linear_member(replace(config, model="linear", linear_member=True), tuner,
                                         SimpleNamespace(task=task), dataset, rows, members, lines.append)


def test_a_class_the_rows_lack_gets_no_probability_and_the_others_scikit_learns():
    from types import SimpleNamespace

    from sklearn.linear_model import LogisticRegression

    from nnlab.linear_member import fitted_weights, predicted

    rows = np.random.default_rng(0).normal(size=(90, 4))
    spec = SimpleNamespace(task="classification", num_classes=4)
    for labels in (np.repeat([0, 2, 3], 30), np.repeat([1, 3], 45)):  # three of four classes, two of four
        present = np.unique(labels)
        probabilities = predicted(spec, rows, fitted_weights(spec, rows, labels, 1e-3))
        expected = LogisticRegression(C=1 / (2 * 1e-3 * 90), max_iter=10_000).fit(rows, labels).predict_proba(rows)
        np.testing.assert_allclose(probabilities[:, present], expected, atol=1e-9)
        assert probabilities[:, np.setdiff1d(np.arange(4), present)].max() < 1e-12


def test_the_networks_alone_are_scored_from_the_average_without_running_them_again():
    from nnlab.champion import _scored_apart
    from nnlab.tabular import keras_inputs

    dataset = load_dataset("wine", {}, seed=3)
    task = get_task(dataset.spec.task)
    rows, targets = joined(dataset.train, dataset.validation)
    member = linear_member(dataset.spec, task, rows, targets, fold_indices(targets, 5, task.name, "table", 3)).model
    alone = member.predict(keras_inputs(dataset.test[0]), verbose=0)
    networks = np.eye(3)[(dataset.test[1] + 1) % 3] * 0.6 + 0.4 / 3  # wrong on every row: accuracy 0
    average = 0.75 * networks + 0.25 * alone  # three trials' refits and the member's, each a quarter
    scored = _scored_apart(task, dataset.test, average, member, 0.25)
    assert scored == {"test_accuracy_networks": pytest.approx(0.0), "test_accuracy_linear": task.score(dataset.test[1], alone)}

"""The champion step every family and task shares: restore the search's best trial at its best
epoch, train it on, test it once, log it with its test metrics (and the data set's naive
baselines beside them), register it, and move the `champion` alias when it beats the holder,
as the task ranks them. The search (and later commands that train a model: fine-tuning, the
GAN) hands it a trained tuner; tracking.py does the MLflow side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from nnlab import plots
from nnlab.provenance import package_version

# Batches of the champion's test pass. Measured on 2 cores, 10,000 MNIST images: the default CNN
# 3.0 s in batches of 32 (Keras' default), 1.6 s of 256, 2.6 s of 1024; the default DFN 1.0,
# 0.35 and 0.23 s.
PREDICT_BATCH_SIZE = 256


@dataclass(frozen=True)
class Champion:
    record: object  # tracking.ChampionRecord
    test_metrics: dict
    figures: dict  # name -> a function that draws it


def register_champion(config, tuner, best_trial, hypermodel, dataset, tracker, echo, callbacks=()) -> Champion:
    """Restore the best trial at its best epoch, train it on, test it, log and register it."""
    import keras

    from nnlab.hypermodel import scores

    task = hypermodel.task
    model = tuner.get_best_models(1)[0]
    further_logs: list[tuple[int, dict]] = []
    if config.final_epochs:
        further = hypermodel.fit_further(
            best_trial.hyperparameters,
            model,
            dataset.train,
            dataset.validation,
            initial_epoch=best_trial.best_step + 1,
            epochs=config.final_epochs,
            # The champion's own curves go on the parent run, under the trials' names.
            callbacks=[*callbacks, keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: (tracker.log_metrics(logs, step=epoch + 1),
                                                  further_logs.append((epoch + 1, dict(logs)))))],
        )
        tracker.log_metrics(further)
        echo(f"Champion trial {best_trial.trial_id} trained on for {further['further_epochs']} epochs: "
             f"{task.objective} {further[f'start_{task.objective}']:.4f} -> {further[task.best_key]:.4f}")
    inputs, targets = dataset.test
    # One pass over the test split, in large batches, feeds the test metrics, the signature's
    # example and the figures.
    predictions = model.predict(inputs, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    test_metrics = {f"test_{name}": value for name, value in scores(model, targets, predictions).items()}
    # Beside them, and logged with them, the forecasts that are no model: has it learnt anything?
    test_metrics |= baseline_metrics(task, targets, test_metrics, dataset.baselines)
    record = tracker.log_champion(
        model,
        config.tuning_name,
        inputs[:8],
        predictions[:8],
        test_metrics,
        best_trial.trial_id,
        [f"{name}=={package_version(name)}" for name in ("tensorflow", "keras", "mlflow")],
        task=task,
        # Where the model came from and what it learnt on: a fine-tune's source and strategy,
        # the data set's options (its classes, labels per class).
        version_tags=hypermodel.lineage(best_trial.hyperparameters)
        | {f"nnlab.data.{key}": ",".join(map(str, value)) if isinstance(value, list) else value
           for key, value in config.data.items()},
    )
    title = f"champion (trial {best_trial.trial_id})"
    figures = {f"champion_{kind}": partial(FIGURES[kind], model, dataset, predictions, title)
               for kind in task.champion_figures}
    if further_logs:
        epochs, logs = zip(*further_logs)
        figures["champion_learning_curves"] = partial(
            plots.learning_curves, list(epochs), list(logs), task.objective, f"{title}, trained on from its best checkpoint")
    return Champion(record, test_metrics, figures)


def baseline_metrics(task, targets, test_metrics: dict, baselines: dict) -> dict:
    """The data set's forecasts that are no model (the naive ones of a series), scored on the
    test split like the champion: test_<metric>_<name> each, and the champion's score over the
    best of them (below 1: the model beats every naive forecast at RMSE)."""
    if not baselines:
        return {}
    scores = {name: task.score(targets, predictions) for name, predictions in baselines.items()}
    best = max(scores.values()) if task.higher_is_better else min(scores.values())
    metrics = {f"{task.test_key}_{name}": value for name, value in scores.items()}
    if best:
        metrics[f"{task.test_key}_over_best_baseline"] = test_metrics[task.test_key] / best
    return metrics


# ------------------------------------------------------------ what the champion is drawn as
# Each kind: (model, dataset, test predictions, title) -> Figure; the task names its kinds.


def _confusion_matrix(_model, dataset, predictions, title):
    return plots.confusion_matrix(dataset.test[1], predictions, title)


def _misclassified(_model, dataset, predictions, title):
    return plots.worst_misclassified(*dataset.test, predictions, title, pixel_max=dataset.spec.pixel_max)


def _first_layer_weights(model, _dataset, _predictions, title):
    return plots.first_layer_weights(model, title)


def _forecast(_model, dataset, predictions, title):
    return plots.forecast_against_actual(dataset.test_times, dataset.test[1], predictions, dataset.baselines,
                                         f"{title}: forecast on the test period")


def _residuals(_model, dataset, predictions, title):
    return plots.residual_histogram(dataset.test[1], predictions, f"{title}: test residuals")


FIGURES = {
    "confusion_matrix": _confusion_matrix,
    "misclassified": _misclassified,
    "first_layer_weights": _first_layer_weights,
    "forecast": _forecast,
    "residuals": _residuals,
}

"""The compile and fit policy around a pure builder: a KerasTuner HyperModel."""

from __future__ import annotations

import time

import keras
import keras_tuner

from nnlab.space import Narrowed
from nnlab.task import get_task

def scores(model, labels, predictions) -> dict:
    """What `model.evaluate(inputs, labels, return_dict=True)` gives (the compiled loss with any
    weight penalty, and the compiled metrics), from predictions already made: one pass over a
    split serves its scores and its figures."""
    model.reset_metrics()
    results = model.compute_metrics(None, labels, predictions, sample_weight=None)
    results["loss"] = model.compute_loss(y=labels, y_pred=predictions, training=False)
    model.reset_metrics()
    return {name: float(value) for name, value in results.items()}


class StopAt(keras.callbacks.Callback):
    """Stops training after the batch during which the clock passes `deadline` (time.monotonic),
    or `seconds` after training began. Keras still validates the epoch it stopped in."""

    def __init__(self, deadline: float | None = None, seconds: float | None = None):
        super().__init__()
        self.deadline, self.seconds = deadline, seconds
        self.stopped = False

    def on_train_begin(self, logs=None):
        if self.seconds is not None:
            ends = time.monotonic() + self.seconds
            self.deadline = ends if self.deadline is None else min(self.deadline, ends)

    def on_train_batch_end(self, batch, logs=None):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped = True
            self.model.stop_training = True


class SearchHyperModel(keras_tuner.HyperModel):
    """build(hp): the family's builder, compiled for the data's task with a searched learning rate
    (and the gradient clipping a builder declares); the experiment's `[space]` entries narrow
    what the builder declares.
    fit(hp, model, ...): fixed batch size, early stopping on the task's objective, stop on NaN,
    stop at the trial timeout."""

    def __init__(self, builder, spec, batch_size: int, patience: int, space: dict | None = None,
                 trial_timeout: float | None = None):
        super().__init__(name=getattr(builder, "__module__", "model").rsplit(".", 1)[-1])
        self.builder = builder
        self.spec = spec
        self.task = get_task(spec.task)
        self.batch_size = batch_size
        self.patience = patience
        self.space = space or {}
        self.trial_timeout = trial_timeout
        self.timer: StopAt | None = None  # the last trial's, to tell whether it ran out of time

    def build(self, hp) -> keras.Model:
        return self.compile(hp, self.architecture(hp))

    def architecture(self, hp) -> keras.Model:
        """The builder's model, uncompiled: a checkpoint's weights load into it without building
        an optimizer whose saved state would be skipped anyway (a third of a restore's time)."""
        return self.builder(self._narrowed(hp), self.spec)

    def compile(self, hp, model: keras.Model) -> keras.Model:
        hp = self._narrowed(hp)
        # Below 3e-4, Adam cannot get far in the few epochs a search gives a trial.
        learning_rate = hp.Float("learning_rate", 3e-4, 1e-2, sampling="log", default=2e-3)
        # A builder that declares `clipnorm` (the recurrent family: exploding gradients through
        # time) gets it here, where the optimizer is made; 0 means no clipping.
        clipnorm = hp.values.get("clipnorm") or None
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate, clipnorm=clipnorm),
            loss=self.task.loss,
            metrics=self.task.keras_metrics(),
        )
        return model

    def _narrowed(self, hp):
        return Narrowed(hp, self.space) if self.space else hp

    def fit(self, hp, model, *args, callbacks=None, restore_best_weights=False, timed=True, **kwargs):
        callbacks = list(callbacks or []) + [
            keras.callbacks.EarlyStopping(
                monitor=self.task.objective, mode=self.task.direction, patience=self.patience, restore_best_weights=restore_best_weights
            ),
            keras.callbacks.TerminateOnNaN(),
        ]
        self.timer = StopAt(seconds=self.trial_timeout) if timed and self.trial_timeout is not None else None
        if self.timer is not None:
            callbacks.append(self.timer)
        return model.fit(*args, batch_size=self.batch_size, callbacks=callbacks, **kwargs)

    def fit_further(self, hp, model, train, validation, initial_epoch: int, epochs: int, callbacks=()) -> dict:
        """Train a restored model on for up to `epochs` more epochs, as KerasTuner advises for the
        best model of a search; its new weights are kept only if they beat its starting objective."""
        task = self.task
        # evaluate() names the metric "accuracy"; fit() reports it on validation as "val_accuracy".
        start = model.evaluate(*validation, verbose=0, return_dict=True)[task.metric]
        weights = model.get_weights()
        history = self.fit(
            hp,
            model,
            *train,
            validation_data=validation,
            initial_epoch=initial_epoch,
            epochs=initial_epoch + epochs,
            # A lower learning rate once the objective stalls: the usual last stretch of training.
            callbacks=[*callbacks, keras.callbacks.ReduceLROnPlateau(monitor=task.objective, mode=task.direction, factor=0.3,
                                                                        patience=1)],
            restore_best_weights=True,
            timed=False,  # the trial timeout is for trials; the search's budget bounds this
            verbose=0,
        )
        values = history.history.get(task.objective, [])
        best = task.best(values) if values else start
        if not task.better(best, start):
            model.set_weights(weights)
            best = start
        return {f"start_{task.objective}": start, task.best_key: best, "further_epochs": len(history.epoch)}

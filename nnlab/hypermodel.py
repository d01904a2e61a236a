"""The compile and fit policy around a pure builder: a KerasTuner HyperModel. SearchHyperModel is
every family's unless the family has its own, a subclass beside its builder (nnlab/models/gan.py,
nnlab/models/transfer.py). TensorFlow's tf.data is imported inside functions, where a table's
rows are batched on the TensorFlow backend: the rest of the policy speaks Keras alone."""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass
from functools import partial

import keras
import keras_tuner
import numpy as np

from nnlab.accelerators import Acceleration
from nnlab.budget import format_duration
from nnlab.data.types import row_count
from nnlab.errors import NotAModel
from nnlab.models.layers import AVERAGE_MODEL
from nnlab.space import COUNT, LEARNING_RATE, Narrowed, within
from nnlab.tabular import keras_inputs
from nnlab.tasks import get_task

# Batches of a test pass. Measured on 2 cores, 10,000 MNIST images: the default CNN 3.0 s in
# batches of 32 (Keras' default), 1.6 s of 256, 2.6 s of 1024; the default DFN 1.0, 0.35 and 0.23 s.
PREDICT_BATCH_SIZE = 256

# The training knobs the compile and fit policy owns (issue 15), each fixed at nnlab's choice
# before they were offered (Adam, a constant rate, the experiment's batch size) unless an
# experiment's `[space]` opens it: `[space] optimizer = ["adam", "sgd"]`. One searched
# `learning_rate` serves every optimizer and schedule: an experiment that opens SGD may want to
# open that range upwards too (`[space] learning_rate = [1e-3, 1e-1]`).
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": partial(keras.optimizers.SGD, momentum=0.9, nesterov=True),
    "rmsprop": keras.optimizers.RMSprop,
}
# Each schedule starts at the searched learning rate and decays over the steps of the epochs a
# fit trains (fit sets its decay steps: the training rows, the batch size and the epochs are known
# there, not when the model compiles): cosine down to 0, inverse time down to a tenth
# (rate / (1 + 9 * step / steps)). Stock Keras schedules: a saved model loads without nnlab.
SCHEDULES = {
    "constant": None,
    "inverse_time": partial(keras.optimizers.schedules.InverseTimeDecay, decay_rate=9.0),
    "cosine": keras.optimizers.schedules.CosineDecay,
}
# A schedule's decay steps from compile until its first fit sets them (a model compiled and
# never trained, a champion restored with no further epochs, keeps these in its saved config).
UNFITTED_DECAY_STEPS = 1000


def make_optimizer(name: str, learning_rate: float, schedule: str = "constant", clipnorm: float | None = None):
    """The named optimizer at `learning_rate`, constant or scheduled, clipping gradients by norm
    where `clipnorm` says. A name it does not know is a ValueError naming the known ones (an
    experiment's `[space]` check turns it into the user's message)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} is not one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"learning_rate_schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
    if SCHEDULES[schedule] is not None:
        learning_rate = SCHEDULES[schedule](learning_rate, UNFITTED_DECAY_STEPS)
    return OPTIMIZERS[name](learning_rate, clipnorm=clipnorm)


def learning_rate_schedule(model):
    """The schedule of `model`'s optimizer, or None where its rate is constant (or where it has no
    single optimizer: a GAN's two are its own)."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under mixed precision: the wrapped one
    rate = getattr(optimizer, "_learning_rate", None)  # Keras keeps the schedule itself there
    return rate if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) else None


def scores(model, labels, predictions) -> dict:
    """What `model.evaluate(inputs, labels, return_dict=True)` gives (the compiled loss with any
    weight penalty, and the compiled metrics), from predictions already made: one pass over a
    split serves its scores and its figures. An average's loss is its predictions' alone: its
    members' penalties, summed by Keras (a table's 15 refits: a test_loss of 10 where the
    predictions' is 0.3), are no loss of a model never trained as one."""
    model.reset_metrics()
    results = model.compute_metrics(None, labels, predictions, sample_weight=None)
    results["loss"] = model.compute_loss(y=labels, y_pred=predictions, training=False)
    if model.name == AVERAGE_MODEL and model.losses:
        results["loss"] = results["loss"] - keras.ops.sum(keras.ops.stack(model.losses))
    model.reset_metrics()
    # convert_to_numpy: a PyTorch loss still holds its graph, and float() of it warns
    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in results.items()}


def _further_metrics(model, metrics: list) -> list:
    """The metrics a builder compiled `model` with besides the task's `metrics` (the same name is
    the task's): they are measured and logged with them."""
    def name(metric) -> str:
        return metric if isinstance(metric, str) else getattr(metric, "name", getattr(metric, "__name__", ""))

    # Keras keeps compile()'s arguments there as given (get_compile_config() gives them serialised).
    own = model._compile_config.config.get("metrics") if getattr(model, "_compile_config", None) else None
    if not isinstance(own, (list, tuple)):  # none, or one per output (a dict): the task's alone
        return []
    taken = {name(metric) for metric in metrics}
    return [metric for metric in own if name(metric) not in taken]


def _column_arrays(model, args, fit_options: dict) -> tuple[tuple, dict]:
    """(fit's arguments, its options) with a table's rows, and its validation rows, as one array
    per column, as `model` reads them (keras_inputs)."""
    validation = fit_options.get("validation_data")
    if validation is not None:
        fit_options = dict(fit_options, validation_data=(keras_inputs(validation[0], model), *validation[1:]))
    return (keras_inputs(args[0], model), *args[1:]), fit_options


def table_batches(rows, targets, batch_size: int, shuffle: bool):
    """(an endless tf.data stream of batches of a table's rows, one input per column, and the
    steps of one pass over them): Keras keeps one iterator over it for a whole fit, where rows
    handed over as arrays get a new one every epoch and every validation pass, 26 ms each for
    breast_cancer's 30 columns (15.8 of a search's 40.6 s in fit on 2 cores: BENCHMARKS.md, issue 32)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((keras_inputs(rows), targets))
    if shuffle:  # a new order every pass, as Keras shuffles arrays every epoch
        data = data.shuffle(len(targets), reshuffle_each_iteration=True)
    return data.batch(batch_size).repeat().prefetch(2), math.ceil(len(targets) / batch_size)


def built_before_tracing(model, inputs, targets) -> None:
    """Create the optimizer's and the compiled metrics' variables now, from two examples. Without
    a distribution strategy Keras creates them inside the first trace of the train (or test)
    step, and TensorFlow traces a function that created variables a second time: 0.5-0.7 s per
    fit of the default CNN or DFN on 2 cores, a tenth of a small trial."""
    model.optimizer.build(model.trainable_variables)  # does nothing once built
    examples, labels = keras_inputs(inputs[:2], model), targets[:2]
    model.compute_metrics(examples, labels, model(examples, training=False), sample_weight=None)
    model.reset_metrics()


@dataclass(frozen=True)
class Further:
    """What a champion's further training did (SearchHyperModel.fit_further): the objective at
    its start and at the epoch kept, and the monitored quantity that chose that epoch."""

    objective: str
    start: float
    kept: float
    monitored: str  # what chose the epoch kept (the task's further_monitor), e.g. val_loss
    start_monitored: float
    kept_monitored: float
    epochs: int  # the further epochs run
    kept_epoch: int | None  # the further epoch (1-based) whose weights were kept; None: the start's

    def metrics(self) -> dict:
        """What the search's run logs of it."""
        return {f"start_{self.objective}": self.start, f"best_{self.objective}": self.kept,
                "further_epochs": self.epochs}


class SaysProgress(keras.callbacks.Callback):
    """A line through `echo` while a model trains on, at an epoch's end once `every` seconds have
    passed since the last, and mid-epoch once `quiet` seconds have passed without one: the
    epoch, the monitored value, and the time left at the rate seen (`what` names the model)."""

    def __init__(self, echo, what: str, monitored: str, epochs: int, every: float = 30.0, quiet: float = 50.0):
        super().__init__()
        self.echo, self.what, self.monitored, self.epochs = echo, what, monitored, epochs
        self.every, self.quiet = every, quiet
        self.started = self.last = time.monotonic()
        self.first_epoch = self.epoch = 0
        self.seen = 0

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if not self.seen:
            self.first_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if now - self.last >= self.quiet:
            self.last = now
            self.echo(f"{self.what}: epoch {self.epoch - self.first_epoch + 1} of up to {self.epochs} "
                      f"still running ({format_duration(now - self.started)} so far)")

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1
        now = time.monotonic()
        if now - self.last < self.every or self.seen >= self.epochs:
            return
        self.last = now
        value = (logs or {}).get(self.monitored)
        left = (now - self.started) / self.seen * (self.epochs - self.seen)
        shown = f"  {self.monitored} {value:.4f}" if value is not None else ""
        self.echo(f"{self.what}: epoch {self.seen} of up to {self.epochs}{shown}  "
                  f"at most {format_duration(left)} left for it")


class CosineToZero(keras.callbacks.Callback):
    """A constant learning rate taken from its value at the fit's start down to zero along half
    a cosine over the fit's `epochs`, batch by batch (epoch by epoch where Keras does not know
    an epoch's steps), and put back at its end: the saved model's optimizer keeps the rate its
    trial trained with. A short run that ends at a rate near zero settles into its minimum; a
    rate halved when the loss stalls needs many epochs to get there (BENCHMARKS.md, issue 30)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = max(1, epochs)
        self.step, self.steps, self.start = 0, None, None

    def on_train_begin(self, logs=None):
        self.step = 0
        self.steps = self.params.get("steps")  # an epoch's, None for data of unknown length
        self.start = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _anneal(self, progress: float) -> None:
        self.model.optimizer.learning_rate = self.start * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def on_epoch_begin(self, epoch, logs=None):
        if not self.steps:
            self._anneal(self.step / self.epochs)
            self.step += 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps:
            self._anneal(self.step / (self.steps * self.epochs))
            self.step += 1

    def on_train_end(self, logs=None):
        self.model.optimizer.learning_rate = self.start


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
    (and the gradient clipping a builder declares), the optimizer and learning-rate schedule
    (Adam, constant, unless `[space]` opens them); the experiment's `[space]` entries narrow
    what the builder declares.
    fit(hp, model, ...): the experiment's batch size (unless `[space]` opens it), early stopping
    on the task's objective, stop on NaN, stop at the trial timeout.
    Every compile passes the experiment's `accelerate` settings (XLA, steps per execution)."""

    def __init__(self, builder, spec, batch_size: int, patience: int, space: dict | None = None,
                 trial_timeout: float | None = None, accelerate: Acceleration | None = None):
        function = getattr(builder, "func", builder)  # a family with a source comes as a partial
        super().__init__(name=getattr(function, "__module__", "model").rsplit(".", 1)[-1])
        self.builder = builder
        self.spec = spec
        self.task = get_task(spec.task)
        self.batch_size = batch_size
        self.patience = patience
        self.space = space or {}
        self.trial_timeout = trial_timeout
        self.accelerate = accelerate or Acceleration()
        self._compiled_by_builder = weakref.WeakSet()  # the models a builder returned compiled
        self.timer: StopAt | None = None  # the last trial's, to tell whether it ran out of time
        self.stop_by = None  # a time budget's: when every trial must have stopped (a callable, time.monotonic)
    # Whether a trial's fits can be scored on folds of the data (nnlab/data/folds.py) and the
    # champion refit on all of it: a GAN's trials are scored by a judge, not on validation rows.
    cross_validates = True
    # What scores a model besides the test split, where something does (a GAN's judge, "mnist-cnn/3"):
    # two versions' test scores compare only when both the split and this are the same.
    judged_by: str | None = None

    @classmethod
    def for_search(cls, builder, spec, batch_size: int, patience: int, source=None, tracking_uri=None, **options):
        """The policy for a search (policies.make_hypermodel): what a family's own policy needs
        beyond the shared one (a source model, the store) it takes here; the shared one, neither."""
        return cls(builder, spec, batch_size, patience, **options)

    def build(self, hp) -> keras.Model:
        model = self.compile(hp, self.architecture(hp))
        if self.own_fit is None:  # a HyperModel's own fit chooses its batch size itself
            self.batch_size_of(hp)  # declared with the model: the oracle and the [space] check see it
        return model

    def declaring(self, examples):
        """build(hp) for the `[space]` check: the model built, and where a HyperModel has its own
        fit, that fit run on `examples` (two training rows) with model.fit doing nothing, so that
        what it declares as it runs (KerasTuner's tutorials: `hp.Choice("batch_size", ...)`) is
        checked as a builder's hyperparameters are. Its error is left for the first trial to say."""
        def build(hp):
            model = self.build(hp)
            if self.own_fit is not None:
                model.fit = lambda *args, **kwargs: keras.callbacks.History()  # this one model's, not its class's
                rows = (examples, {"validation_data": examples, "epochs": 1})
                args, options = _column_arrays(model, *rows) if hasattr(examples[0], "columns") else rows
                try:
                    self.own_fit(hp, model, *args, callbacks=[], **options)
                except Exception:  # noqa: BLE001 - the user's code: the trial that runs it says what it raised
                    pass
            return model

        return build

    @property
    def own_fit(self):
        """A user's KerasTuner HyperModel's own `fit(hp, model, *args, **kwargs)`, if it has one
        (nnlab/builders.py), which trains its models in place of model.fit; else None."""
        return getattr(self.builder, "own_fit", None)

    def batch_size_of(self, hp) -> int:
        """The batch size a model built with `hp` trains in. Two tables, one name: the
        experiment's top-level `batch_size` (self.batch_size) is the default, the only value
        where `[space]` does not name it; `[space] batch_size = [32, 64, 128]` (a choice; two
        numbers would be a range) opens it, and for the search the `[space]` entry wins."""
        size = within(self._narrowed(hp), COUNT).Fixed("batch_size", self.batch_size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"batch_size {size!r} is not a whole number of at least 1")
        return size

    def architecture(self, hp) -> keras.Model:
        """The builder's model, uncompiled: a checkpoint's weights load into it without building
        an optimizer whose saved state would be skipped anyway (a third of a restore's time)."""
        self.accelerate.activate()  # after any clear_session: it forgets the dtype policy
        model = self.builder(self._narrowed(hp), self.spec)
        if not isinstance(model, keras.Model):  # a user's own builder (nnlab/builders.py)
            raise NotAModel(f"returned {type(model).__name__}, not a Keras model")
        if model.compiled:  # a KerasTuner-style builder's own compile, which compile() keeps
            self._compiled_by_builder.add(model)
        return model

    def compile(self, hp, model: keras.Model) -> keras.Model:
        if model in self._compiled_by_builder:  # its optimizer and loss train it
            return self._compiled_as_built(model)
        hp = self._narrowed(hp)
        # Below 3e-4, Adam cannot get far in the few epochs a search gives a trial.
        learning_rate = within(hp, LEARNING_RATE).Float("learning_rate", 3e-4, 1e-2, sampling="log", default=2e-3)
        # Fixed at Adam and a constant rate, as before they were offered, unless `[space]` opens
        # them: `[space] optimizer = ["adam", "sgd", "rmsprop"]`, `learning_rate_schedule =
        # ["constant", "cosine"]`.
        optimizer = hp.Fixed("optimizer", "adam")
        schedule = hp.Fixed("learning_rate_schedule", "constant")
        # A builder that declares `clipnorm` (the recurrent family: exploding gradients through
        # time) gets it here, where the optimizer is made; 0 means no clipping.
        return self._compiled(model, learning_rate, clipnorm=hp.values.get("clipnorm") or None, optimizer=optimizer,
                              schedule=schedule)

    def _compiled_as_built(self, model: keras.Model) -> keras.Model:
        """A model its builder compiled (KerasTuner's `build(hp)` usually does): its optimizer, at
        the rate it chose, and its loss are kept (before, nnlab's Adam replaced them, at the
        builder's own `learning_rate` if it declared one); the metrics are the task's, which the
        objective and the tracking read, and its own beside them; the experiment's acceleration
        applies."""
        metrics = self.task.keras_metrics()
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=metrics + _further_metrics(model, metrics),
                      **self.accelerate.compile_options())
        return model

    def _compiled(self, model: keras.Model, learning_rate: float, clipnorm: float | None = None,
                  optimizer: str = "adam", schedule: str = "constant") -> keras.Model:
        """The optimizer (Adam by default) at `learning_rate`, constant or scheduled, the task's
        loss and metrics, the experiment's acceleration."""
        model.compile(optimizer=make_optimizer(optimizer, learning_rate, schedule, clipnorm),
                      **self.task.compile_options(self.spec), **self.accelerate.compile_options())
        return model

    def _narrowed(self, hp):
        return Narrowed(hp, self.space) if self.space else hp

    def run_params(self, hp) -> dict:
        """What a trial's run records beside its hyperparameters, known before it trains."""
        return {}

    # What a family's policy may do differently (the GAN's, nnlab/models/gan.py, does).

    def prepare(self, dataset, tuning_root, echo, search=None) -> tuple[dict, dict]:
        """Before the search's run opens: what the family needs beyond the data, and (tags,
        metrics) for the search's run. `search`: run_search, for a family whose needs take a
        search of their own (the GAN's judge)."""
        return {}, {}

    def built_before_tracing(self, model, args) -> None:
        built_before_tracing(model, *args[:2])

    def validation_scores(self, model, validation) -> dict:
        """{val_<name>: value} of `model` on the validation split outside fit(), named as fit()
        reports them (evaluate() says "accuracy", fit() "val_accuracy")."""
        inputs, targets = validation
        logs = model.evaluate(keras_inputs(inputs, model), targets, verbose=0, return_dict=True)
        return {f"val_{name}": value for name, value in logs.items()}

    def validation_score(self, model, validation) -> float:
        """The objective of `model` on the validation split, outside fit()."""
        return self.validation_scores(model, validation)[self.task.objective]

    def further_patience(self) -> int:
        """Epochs the champion's further training waits for a better monitored value: twice a
        trial's; on a rate that falls to zero over the further epochs it rarely stops one."""
        return 2 * self.patience

    # The champion's further training anneals the learning rate to zero and keeps its last epoch
    # (fit_further); a family whose optimizers are its own (the GAN) keeps its best epoch instead.
    anneals_further = True

    def further_callbacks(self, epochs: int) -> list:
        """Callbacks of the champion's further training of `epochs` epochs: its constant learning
        rate annealed to zero over them (a scheduled rate: the schedule does it, fit_further)."""
        return [CosineToZero(epochs)]

    def test(self, model, test) -> tuple[dict, object, object]:
        """(test_<metric> scores, the inputs, the model's outputs for them) of one pass over the
        test split, in large batches: the outputs also feed the signature and the figures."""
        inputs, targets = test
        predictions = model.predict(keras_inputs(inputs, model), batch_size=PREDICT_BATCH_SIZE, verbose=0)
        return {f"test_{name}": value for name, value in scores(model, targets, predictions).items()}, inputs, predictions

    def exported(self, model) -> keras.Model:
        """What is logged and registered of a trained model."""
        return model

    def holder_score(self, registered, test) -> float:
        """A registered model (what `exported` gave, loaded back: the champion alias's holder,
        tested on other data) scored on `test` as this search's champion is: the task's metric."""
        inputs, targets = test
        predictions = registered.predict(keras_inputs(inputs, registered), batch_size=PREDICT_BATCH_SIZE, verbose=0)
        return self.task.score(targets, predictions)

    def epoch_figures(self, epoch: int) -> dict:
        """Figures for a trial's run after `epoch` (1-based): name -> a function that draws it."""
        return {}

    def lineage(self, hp) -> dict:
        """Tags for the registered version of a model trained with `hp`: where it came from."""
        return {}

    def fit(self, hp, model, *args, callbacks=None, restore_best_weights=False, timed=True, deadline=None,
            monitor: tuple[str, str] | None = None, patience: int | None = None, early_stopping: bool = True,
            **kwargs):
        # Early stopping on `monitor` (metric, mode) after `patience` epochs: the objective and
        # the trials' patience unless the champion's further training says otherwise; none for
        # a refit, which has no validation rows to watch.
        monitored, mode = monitor or (self.task.objective, self.task.direction)
        callbacks = list(callbacks or []) + [keras.callbacks.TerminateOnNaN()]
        if early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(monitor=monitored, mode=mode, patience=patience or self.patience,
                                                           restore_best_weights=restore_best_weights))
        # `deadline` (time.monotonic): a trial's later phase ends when its first one would have;
        # a time budget's end (`stop_by`) ends any trial.
        if timed and self.stop_by is not None:
            deadline = self.stop_by() if deadline is None else min(deadline, self.stop_by())
        self.timer = StopAt(deadline, self.trial_timeout) if timed and (deadline or self.trial_timeout) else None
        if self.timer is not None:
            callbacks.append(self.timer)
        self.built_before_tracing(model, args)
        if self.own_fit is not None:
            # Keras' default batch size where its fit sets none; known only once it has run.
            self._decay_over_this_fit(model, args, hp.values.get("batch_size", 32), kwargs)
            return self._fit_by_its_own(hp, model, args, callbacks, kwargs)
        batch_size = self.batch_size_of(hp)
        self._decay_over_this_fit(model, args, batch_size, kwargs)
        if args and hasattr(args[0], "columns"):  # a table's rows (a DataFrame)
            args, kwargs = self._table_inputs(model, args, batch_size, kwargs)
        else:
            kwargs["batch_size"] = batch_size
        return model.fit(*args, callbacks=callbacks, **kwargs)

    def _fit_by_its_own(self, hp, model, args, callbacks: list, fit_options: dict) -> keras.callbacks.History:
        """A HyperModel's own fit, called as KerasTuner calls it: the rows (a table's as one array
        per column), `validation_data`, the epochs and nnlab's callbacks, which it hands on to
        model.fit; no batch size: its fit chooses one (KerasTuner's tutorials:
        `hp.Choice("batch_size", ...)`), else Keras' 32."""
        if args and hasattr(args[0], "columns"):  # a table's rows (a DataFrame)
            args, fit_options = _column_arrays(model, args, fit_options)
        history = self.own_fit(self._narrowed(hp), model, *args, callbacks=callbacks, **fit_options)
        if not isinstance(history, keras.callbacks.History):
            raise TypeError(f"its fit() returned {type(history).__name__}, not what model.fit() returns (a History): "
                            "nnlab reads each epoch's scores from it")
        return history

    @staticmethod
    def _table_inputs(model, args, batch_size: int, fit_options: dict) -> tuple[tuple, dict]:
        """(fit's arguments, its options) for a table's rows (a DataFrame): batches of its columns
        by tf.data on TensorFlow, shuffled there; elsewhere one array per column as `model` reads
        them (tf.data needs TensorFlow, which a JAX or PyTorch install may lack)."""
        if keras.config.backend() != "tensorflow":
            args, options = _column_arrays(model, args, fit_options)
            return args, options | {"batch_size": batch_size}
        options, validation = dict(fit_options), fit_options.get("validation_data")
        train, options["steps_per_epoch"] = table_batches(args[0], args[1], batch_size, shuffle=True)
        if validation is not None:
            options["validation_data"], options["validation_steps"] = table_batches(
                *validation[:2], PREDICT_BATCH_SIZE, shuffle=False)
        return (train, *args[2:]), options | {"shuffle": False}  # shuffled by table_batches

    @staticmethod
    def _decay_over_this_fit(model, args, batch_size: int, fit_options: dict) -> None:
        """A scheduled learning rate decays over the steps of the epochs this fit trains: the
        trial's epochs (a Hyperband round's, from its initial epoch), or the champion's further
        epochs. Set on a fresh optimizer only, before its first step traces the schedule into
        the train function; one that has trained keeps the schedule it trained with."""
        schedule = learning_rate_schedule(model)
        if schedule is None or int(keras.ops.convert_to_numpy(model.optimizer.iterations)):
            return
        steps_per_epoch = fit_options.get("steps_per_epoch")
        if steps_per_epoch is None:
            rows = row_count(args[0]) if args else None
            if not rows:
                return  # not known here: the steps set when it compiled stand
            steps_per_epoch = math.ceil(rows / batch_size)
        epochs = fit_options.get("epochs", 1) - fit_options.get("initial_epoch", 0)
        schedule.decay_steps = max(1, steps_per_epoch * epochs)

    def refit(self, hp, train, epochs: int, further_epochs: int = 0, callbacks=()) -> keras.Model:
        """A model built afresh with `hp` and trained on `train` (all the training and validation
        rows) as the model chosen on validation was, with no validation split to stop it: its
        trial's `epochs`, then `further_epochs` with the learning rate annealed to zero (a
        constant rate; a scheduled one has run its schedule over the first part); with no further
        epochs, a constant rate is annealed to zero over the trial's epochs themselves."""
        model = self.build(hp)
        fit = partial(self.fit, hp, model, *train, early_stopping=False, timed=False, verbose=0)
        anneals = self.anneals_further and learning_rate_schedule(model) is None  # a constant rate it may anneal
        if not further_epochs and anneals:
            # No further epochs to settle in (a table's final_epochs is 0): the refit's own end
            # annealed, not a random point of a noisy descent (benchmarks/table_knobs.py refits,
            # seeds 1-3, the same members: diabetes RMSE 56.30 annealed against 56.87 constant;
            # breast_cancer 0.9766 against 0.9795; annealed and three times each, 56.01 and 0.9825).
            fit(epochs=epochs, callbacks=[*callbacks, CosineToZero(epochs)])
            return model
        history = fit(epochs=epochs, callbacks=list(callbacks))
        stopped = any(getattr(callback, "stopped", False) for callback in callbacks)
        if further_epochs and not stopped and anneals:
            done = len(history.epoch)
            fit(initial_epoch=done, epochs=done + further_epochs, callbacks=[*callbacks, CosineToZero(further_epochs)])
        return model

    def fit_further(self, hp, model, train, validation, initial_epoch: int, epochs: int, callbacks=()) -> Further:
        """Train a restored model on for up to `epochs` more epochs, as KerasTuner advises for the
        best model of a search. Its learning rate annealed over them (further_callbacks, or its
        own schedule), its last epoch's weights are kept: they are where the annealing settles,
        and the few hundred validation examples that would choose another epoch choose noise
        (BENCHMARKS.md, issue 30). A rate not annealed (a GAN's) keeps the epoch best on the
        task's `further_monitor`, and stops after `further_patience` epochs without a better one.
        Either way the weights are kept only if they beat the start on that metric."""
        task = self.task
        monitored, mode = task.further_monitor
        self.built_before_tracing(model, validation)
        if monitored == task.objective:
            start = start_monitored = self.validation_score(model, validation)
        else:
            scores = self.validation_scores(model, validation)
            start, start_monitored = scores[task.objective], scores[monitored]
        weights = model.get_weights()
        further_callbacks = self.further_callbacks(epochs)
        scheduled = learning_rate_schedule(model) is not None
        if scheduled:
            # A scheduled rate is the schedule's to lower: the restored model's fresh optimizer
            # starts it again at the trial's learning rate and decays it over these further
            # epochs (fit: `_decay_over_this_fit`).
            further_callbacks = [callback for callback in further_callbacks if not isinstance(callback, CosineToZero)]
        annealed = scheduled or self.anneals_further
        history = self.fit(
            hp,
            model,
            *train,
            validation_data=validation,
            initial_epoch=initial_epoch,
            epochs=initial_epoch + epochs,
            callbacks=[*callbacks, *further_callbacks],
            restore_best_weights=not annealed,
            monitor=(monitored, mode),
            patience=epochs + 1 if annealed else self.further_patience(),
            timed=False,  # the trial timeout is for trials; the search's budget bounds this
            verbose=0,
        )
        values = np.asarray(history.history.get(monitored, []), dtype=float)
        kept_index = None
        if np.isfinite(values).any():
            candidate = len(values) - 1 if annealed else int(np.nanargmin(values) if mode == "min" else np.nanargmax(values))
            better = values[candidate] < start_monitored if mode == "min" else values[candidate] > start_monitored
            if np.isfinite(values[candidate]) and (better or not np.isfinite(start_monitored)):
                kept_index = candidate
        if kept_index is None:
            model.set_weights(weights)
        kept = start if kept_index is None else float(history.history[task.objective][kept_index])
        return Further(task.objective, start, kept, monitored, start_monitored,
                       start_monitored if kept_index is None else float(values[kept_index]), len(history.epoch),
                       None if kept_index is None else kept_index + 1)

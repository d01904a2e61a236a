"""The GAN family in one file (the keras.io DCGAN example's shape): a DCGAN generator and
discriminator, the model that trains them against each other, and its search policy: what a
generator is scored by (the judge), the callback that scores it after each epoch, and how a
search trains, tests and registers one.

`build_generator(hp, spec)` and `build_discriminator(hp, spec)` are pure builders like every
family's: they declare their search space on `hp` and return uncompiled functional models.
`build(hp, spec)` puts both into a `GAN`, a keras.Model subclass with its own `train_step`,
still trained by `fit()`.

The generator makes images in the data's own units (MNIST's [0, 1], the digits' 0-16), so that
what it draws goes wherever a real image goes: into the discriminator, which scales its input
as every nnlab model does (layers.model_input), or into a classifier that scores it.

The class code (`class_code`, on unless `[space]` turns it off): the data's labels teach the
discriminator the classes too, and the generator is rewarded for images of the class its latent
vector names (an auxiliary-classifier GAN, Odena et al. 2017). Its first `num_classes`
coordinates name it: the largest wins, so that a plain normal latent vector draws every class
equally often, and a user who wants a 7 raises coordinate 7. Measured on 2 cores and the 5,000
shipped images (benchmarks/gan_class_code.py): an independent classifier is surer of the coded
generator's digits (mean confidence 0.85-0.94 against 0.79-0.80), which vary less within a digit.

The search policy (GANHyperModel, below the GAN):

- The judge: the registry's `mnist-cnn` champion, whose features fid_mnist is measured in
  (nnlab/quality.py). Without one nnlab trains a small CNN once, registers it as
  `mnist-judge-cnn`, and says so; the search's run names the judge it used (`nnlab.judge`).
- After every epoch the generator draws the same fixed latent vectors; fid_mnist against the
  validation images is the epoch's `val_fid_mnist` (the objective, lower is better: Hyperband
  and early stopping read it like any other), beside the judge's confidence and class coverage,
  and a grid of the first 64 goes on the trial's run (successive grids show progress).
- A loss that is not finite stops the fit, and the trial fails as any other would.
- The search's run gets the floor and ceiling to read every value against: real validation
  images against real training images, and an untrained generator.
- On TensorFlow (imported inside functions: JAX and PyTorch run the GAN without it), the GAN's
  train function runs with grappler's remapper off (`without_remapping`): on the
  discriminator's convolution, bias and LeakyReLU it fails, and TensorFlow logs an error line
  ("remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout ... LeakyReluGrad") for
  every trial. A failed pass leaves the graph as it was, so the GAN trains the same without it
  (measured: a 2-trial search's 49 metrics the same to the bit; about 70 us a step on 2 cores).
- Every score is of the GAN's average generator (GAN, above), and so is what is
  registered. The champion is tested on the test images, and its average generator registered:
  `nnlab.load_model("mnist-gan")` takes latent vectors and returns images in the data's units.
"""

from __future__ import annotations

import contextlib
from functools import partial

import keras
import keras_tuner
import numpy as np
from keras import ops

from nnlab import plots
from nnlab.config import ExperimentConfig
from nnlab.errors import ConfigError, TrackingError
from nnlab.hypermodel import SearchHyperModel
from nnlab.models import gan_training
from nnlab.models.layers import model_input
from nnlab.quality import Judge
from nnlab.space import COUNT, FRACTION, LEARNING_RATE, OPTIONAL_COUNT, within
from nnlab.tasks import GENERATION
from nnlab.tracking import load_registered_model, registered_version

LEAKY_SLOPE = 0.2  # the DCGAN paper's, and the keras.io example's
# Both networks' first widths. An epoch over 3,600 images at 32 a step took 6 s at 32 and 12 s
# at 64 on 2 cores, 80 s at 128 with a third discriminator block: 128 is left out, as a
# champion trained on for 40 epochs at that pace takes most of an hour.
WIDTHS = [16, 32, 64]
# The generator a GAN is judged and registered by is the running average of its weights
# (Yazici et al. 2019; ProGAN, StyleGAN and BigGAN sample from one): the trained generator
# itself jumps about with every step of the game. Half-life 140 steps, a little over an epoch.
AVERAGE_MOMENTUM = 0.995
CODE_SHARPNESS = 1e4  # softmax of the code coordinates times this: one-hot but for ties within 1e-3
CODE_SCALE = 3.0  # the one-hot's size beside the unit-variance noise coordinates


def class_code(hp, spec) -> int:
    """How many classes the latent vector's code names: the data's classes, or 0 without a code."""
    return spec.num_classes if hp.Fixed("class_code", True) and spec.num_classes else 0


def build_generator(hp, spec) -> keras.Model:
    """Latent vector -> image: a dense seed at a quarter of the image's size, optionally a plain
    convolution on it, then two transposed convolutions that double it, the second straight to
    the image's channels (the TensorFlow DCGAN tutorial's shape: no wide layer at full size,
    where a CPU spends most of a step)."""
    height, width, channels = spec.input_shape
    if height % 4 or width % 4:
        raise ValueError(f"the generator doubles a quarter-size seed twice: {height}x{width} is not a multiple of 4")
    latent_dim = hp.Choice("latent_dim", [32, 64, 128], default=64)
    filters = hp.Choice("generator_filters", WIDTHS, default=32)
    extra = within(hp, OPTIONAL_COUNT).Int("generator_extra_convolutions", 0, 1, default=0)
    # Batch normalisation steadies the generator in the DCGAN paper; searched, as small
    # generators also train without it.
    batch_norm = hp.Boolean("generator_batch_norm", default=True)

    def block(x, layer):
        x = layer(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
        return keras.layers.LeakyReLU(LEAKY_SLOPE)(x)

    classes = class_code(hp, spec)
    inputs = keras.Input((latent_dim,), name="latent")
    x = _coded(inputs, classes) if classes else inputs
    x = block(x, keras.layers.Dense(height // 4 * width // 4 * filters * 2, use_bias=not batch_norm))
    x = keras.layers.Reshape((height // 4, width // 4, filters * 2))(x)
    for _ in range(extra):
        x = block(x, keras.layers.Conv2D(filters * 2, 3, padding="same", use_bias=not batch_norm))
    x = block(x, keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=not batch_norm))
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="sigmoid", name="unit_range")(x)
    if spec.pixel_max != 1:
        x = keras.layers.Rescaling(spec.pixel_max, name="pixels")(x)
    return keras.Model(inputs, x, name="generator")


def _coded(latent, classes: int):
    """The latent vector with its first `classes` coordinates replaced by the one-hot of the
    largest of them (stock layers only: the generator loads in safe mode and serves)."""
    latent_dim = int(latent.shape[-1])
    column = keras.layers.Reshape((latent_dim, 1), name="latent_column")(latent)
    code = keras.layers.Flatten(name="code")(keras.layers.Cropping1D((0, latent_dim - classes))(column))
    noise = keras.layers.Flatten(name="noise")(keras.layers.Cropping1D((classes, 0))(column))
    one_hot = keras.layers.Softmax(name="class_one_hot")(keras.layers.Rescaling(CODE_SHARPNESS)(code))
    return keras.layers.Concatenate(name="coded_latent")([keras.layers.Rescaling(CODE_SCALE)(one_hot), noise])


def build_discriminator(hp, spec) -> keras.Model:
    """Image -> one logit, real against generated (and with the class code, one logit per
    class): strided convolutions with LeakyReLU and dropout, no batch normalisation (its batch
    statistics would tell real and generated batches apart by themselves)."""
    filters = hp.Choice("discriminator_filters", WIDTHS, default=32)
    blocks = within(hp, COUNT).Int("discriminator_blocks", 2, 3, default=2)
    dropout = within(hp, FRACTION).Float("discriminator_dropout", 0.0, 0.5, step=0.1, default=0.3)
    inputs, x = model_input(spec)
    for index in range(blocks):
        x = keras.layers.Conv2D(filters * 2**index, 4, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, name="real_logit")(x)
    if class_code(hp, spec):
        outputs = [outputs, keras.layers.Dense(spec.num_classes, name="class_logits")(x)]
    return keras.Model(inputs, outputs, name="discriminator")


def build(hp, spec) -> GAN:
    # One-sided label smoothing (real labelled 0.9, say) keeps the discriminator from growing
    # too sure of itself (Salimans et al. 2016); 0 turns it off.
    smoothing = hp.Choice("label_smoothing", [0.0, 0.1, 0.2], default=0.1)
    return GAN(build_generator(hp, spec), build_discriminator(hp, spec), label_smoothing=smoothing)


@contextlib.contextmanager
def without_remapping():
    """Grappler's remapper off for the TensorFlow functions called in the block (in this thread):
    it fuses a convolution, its bias and a LeakyReLU into one op, but LeakyReLU's gradient reads
    the bias' output, which the fusion removes, so the pass fails with an error on fd 2 (the C++
    log) and grappler goes on with the graph as it was. The option travels with each call (the
    call's config), so it is set around the call and the previous setting restored after."""
    import tensorflow as tf

    previous = tf.config.optimizer.get_experimental_options().get("remapping", True)
    tf.config.optimizer.set_experimental_options({"remapping": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": previous})


class GAN(keras.Model):
    """A generator and a discriminator, trained together by `fit(real_images[, labels])`: each
    batch, one generated batch as large as the real one, and from the discriminator's verdicts
    on both one step for each network (the TensorFlow DCGAN tutorial's update). With a class
    code (`classes`), the labels teach the discriminator the classes and the generator is also
    scored on whether its image shows the class its latent vector names. After each step
    `average_generator` moves towards the generator's new weights: it is what draws the images
    the GAN is judged and registered by. Calling the GAN generates with it: latent -> images."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, label_smoothing: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(name=kwargs.pop("name", "gan"), **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.average_generator = keras.models.clone_model(generator)
        self.average_generator.set_weights(generator.get_weights())
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.classes = int(discriminator.outputs[1].shape[-1]) if len(discriminator.outputs) > 1 else 0
        self.label_smoothing = float(label_smoothing)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.discriminator_loss = keras.metrics.Mean(name="discriminator_loss")
        self.generator_loss = keras.metrics.Mean(name="generator_loss")
        # Both networks are built functional models: so is the GAN (its weights save, load and count).
        self.built = True

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        super().compile(**kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        if keras.config.backend() == "jax":  # its trainer carries "the" optimizer's state through each step
            self.optimizer = gan_training.BothOptimizers(self)
        self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
        self.class_cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @property
    def metrics(self):
        return [self.discriminator_loss, self.generator_loss]

    def make_train_function(self, force=False):
        """Keras' train function (fit's, train_on_batch's), called `without_remapping` on TensorFlow."""
        if (self.train_function is not None and not force) or keras.config.backend() != "tensorflow":
            return super().make_train_function(force)
        super().make_train_function(force)
        train_function = self.train_function

        def quietly_optimised(iterator):
            with without_remapping():
                return train_function(iterator)

        self.train_function = quietly_optimised
        return quietly_optimised

    def call(self, latent, training=False):
        return self.average_generator(latent, training=training)

    def latent(self, count):
        return keras.random.normal((count, self.latent_dim), seed=self.seed_generator)

    average_momentum = AVERAGE_MOMENTUM

    def train_step(self, *args):
        """One step for each network (nnlab/models/gan_training.py: the same step on each
        backend). Keras calls train_step(data), on JAX train_step(state, data)."""
        step = {"jax": gan_training.jax_step, "torch": gan_training.torch_step}.get(
            keras.config.backend(), gan_training.tensorflow_step)
        return step(self, *args)

    def unpacked(self, data):
        """(real images, their labels or None) of a batch."""
        real, labels = (data[0], data[1]) if isinstance(data, tuple) else (data, None)
        if self.classes and labels is None:
            raise ValueError("a GAN with a class code trains on (images, labels)")
        return real, labels

    def game_losses(self, latent, labels, real_outputs, fake_outputs):
        """(the discriminator's loss, the generator's) from the discriminator's outputs for the
        real batch and the generated one: keras.ops alone, differentiated by the backend."""
        real_logits, real_classes = (real_outputs[0], real_outputs[1]) if self.classes else (real_outputs, None)
        fake_logits, fake_classes = (fake_outputs[0], fake_outputs[1]) if self.classes else (fake_outputs, None)
        discriminator_loss = (self.cross_entropy(ops.full_like(real_logits, 1.0 - self.label_smoothing), real_logits)
                              + self.cross_entropy(ops.zeros_like(fake_logits), fake_logits))
        generator_loss = self.cross_entropy(ops.ones_like(fake_logits), fake_logits)
        if self.classes:
            # Both networks want every image's class recognised: the real ones' labels and the
            # generated ones' named class (the paper's; measured, a lighter class term for the
            # generator, or none for the discriminator on generated images, let the generator
            # drop classes).
            named = ops.argmax(latent[:, : self.classes], axis=-1)
            class_loss = self.class_cross_entropy(named, fake_classes)
            discriminator_loss = discriminator_loss + self.class_cross_entropy(labels, real_classes) + class_loss
            generator_loss = generator_loss + class_loss
        return discriminator_loss, generator_loss

    def logged(self, discriminator_loss, generator_loss) -> dict:
        self.discriminator_loss.update_state(discriminator_loss)
        self.generator_loss.update_state(generator_loss)
        return {metric.name: metric.result() for metric in self.metrics}


# The search policy: the images every score is of, the callback that scores them, the judge.
SAMPLES = 500  # images generated and scored per epoch and at the test
LATENT_SEED = 0  # the fixed latent vectors: the same for every epoch and trial
JUDGES = ("mnist-cnn", "mnist-judge-cnn")  # looked for in this order; the second is nnlab's own
JUDGE_EPOCHS = 3


def generated(generator) -> tuple[np.ndarray, np.ndarray]:
    """(the fixed latent vectors, the generator's images for them): what every score is of."""
    latent_dim = int(generator.inputs[0].shape[-1])
    latent = np.random.default_rng(LATENT_SEED).normal(size=(SAMPLES, latent_dim)).astype("float32")
    return latent, generator.predict(latent, batch_size=256, verbose=0)


class Quality(keras.callbacks.Callback):
    """After each epoch, the generator's images for the fixed latent vectors scored against the
    validation images: val_fid_mnist, val_confidence, val_coverage go into the epoch's logs
    (it must come before the callbacks that read them). A loss that is not finite stops the fit."""

    def __init__(self, judge: Judge, real_features: np.ndarray, objective: str):
        super().__init__()
        self.judge, self.real_features, self.objective = judge, real_features, objective
        self.samples: np.ndarray | None = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        losses = [value for key, value in logs.items() if key.endswith("loss")]
        if not np.isfinite(np.asarray(losses, dtype=float)).all():
            logs[self.objective] = float("nan")
            self.model.stop_training = True
            return
        samples = generated(self.model.average_generator)[1]
        for name, value in self.judge.scores(self.real_features, samples).items():
            logs[f"val_{name}"] = value
        self.samples = samples[:plots.SAMPLE_GRID]


class GANHyperModel(SearchHyperModel):
    """build(hp): the GAN with two Adam optimizers (their learning rates and beta_1 searched).
    fit(hp, model, images, labels, validation_data=...): the GAN trains on the images (and the
    labels, where the generator has a class code), scored after each epoch by Quality; early
    stopping and the tuner read val_fid_mnist."""

    # Its trials are scored by the judge on generated images against the validation images'
    # features, prepared once: no folds, no refit.
    cross_validates = False

    def __init__(self, builder, spec, batch_size: int, patience: int, tracking_uri: str | None = None, **options):
        super().__init__(builder, spec, batch_size, patience, **options)
        self.task = GENERATION
        self.tracking_uri = tracking_uri
        self.judge: Judge | None = None
        self.real_features: np.ndarray | None = None
        self.quality: Quality | None = None

    @classmethod
    def for_search(cls, builder, spec, batch_size: int, patience: int, source=None, tracking_uri=None, **options):
        return cls(builder, spec, batch_size, patience, tracking_uri=tracking_uri, **options)

    def prepare(self, dataset, tuning_root, echo, search=None) -> tuple[dict, dict]:
        self.judge, tags = find_judge(dataset, self.tracking_uri, tuning_root, echo, search)
        self.judged_by = tags["nnlab.judge"]
        if self.judge.input_shape != tuple(self.spec.input_shape):
            raise ConfigError(f"fid_mnist judges images of {self.judge.input_shape} as {tags['nnlab.judge']} "
                              f"reads them; {dataset.name}'s are {tuple(self.spec.input_shape)}")
        real = dataset.validation[0]
        self.real_features = self.judge.look(real)[0]
        floor = self.judge.scores(self.real_features, dataset.train[0][: len(real)])["fid_mnist"]
        keras.utils.set_random_seed(0)
        untrained = self.builder(keras_tuner.HyperParameters(), self.spec).generator
        ceiling = self.judge.scores(self.real_features, generated(untrained)[1])["fid_mnist"]
        echo(f"fid_mnist against the {len(real)} validation images: real training images {floor:.2f}, "
             f"an untrained generator {ceiling:.2f} (judged by {tags['nnlab.judge']})")
        return tags, {"fid_mnist_real": floor, "fid_mnist_untrained": ceiling}

    def compile(self, hp, model):
        hp = self._narrowed(hp)
        # The DCGAN paper's Adam: 2e-4 and beta_1 0.5 for both networks.
        generator_rate = within(hp, LEARNING_RATE).Float("generator_learning_rate", 5e-5, 1e-3, sampling="log",
                                                         default=2e-4)
        discriminator_rate = within(hp, LEARNING_RATE).Float("discriminator_learning_rate", 5e-5, 1e-3,
                                                             sampling="log", default=2e-4)
        beta_1 = hp.Choice("beta_1", [0.5, 0.9], default=0.5)
        # XLA and steps per execution wrap the GAN's own train_step as they wrap Keras' (fit's
        # train function compiles and loops whatever train_step is): both apply. Mixed precision
        # does not: Keras scales the loss only in its own train_step, and nnlab.config refuses it
        # for model gan.
        model.compile(keras.optimizers.Adam(generator_rate, beta_1=beta_1),
                      keras.optimizers.Adam(discriminator_rate, beta_1=beta_1), **self.accelerate.compile_options())
        return model

    def fit(self, hp, model, *args, callbacks=None, validation_data=None, **kwargs):
        self.quality = Quality(self.judge, self.real_features, self.task.objective)
        # The images and their labels (a class code learns from them; a plain GAN reads the images alone).
        return super().fit(hp, model, *args, callbacks=[self.quality, *(callbacks or [])], **kwargs)

    def built_before_tracing(self, model, args) -> None:
        model.generator_optimizer.build(model.generator.trainable_variables)
        model.discriminator_optimizer.build(model.discriminator.trainable_variables)

    def validation_score(self, model, validation) -> float:
        return self.judge.scores(self.real_features, generated(model.average_generator)[1])["fid_mnist"]

    def further_patience(self) -> int:
        return self.patience  # a GAN's own (8) is already the champion's (its row in nnlab.models)

    anneals_further = False

    def further_callbacks(self, epochs: int) -> list:
        return []  # an annealed rate would be that of an optimizer neither network uses

    def test(self, model, test) -> tuple[dict, np.ndarray, np.ndarray]:
        latent, samples = generated(model.average_generator)
        scores = self.judge.scores(self.judge.look(test[0])[0], samples)
        return {f"test_{name}": value for name, value in scores.items()}, latent, samples

    def holder_score(self, registered, test) -> float:
        # The holder's generator judged by this search's judge against this test split: one
        # judge for both, as the champion's own test_fid_mnist.
        return self.judge.scores(self.judge.look(test[0])[0], generated(registered)[1])["fid_mnist"]

    def exported(self, model):
        return model.average_generator

    def epoch_figures(self, epoch: int) -> dict:
        if self.quality is None or self.quality.samples is None:
            return {}
        return {f"samples_epoch_{epoch:02d}": partial(plots.sample_grid, self.quality.samples, self.spec.pixel_max,
                                                      f"epoch {epoch}: the fixed latent vectors")}


def find_judge(dataset, tracking_uri: str | None, tuning_root, echo, search=None) -> tuple[Judge, dict]:
    """The classifier fid_mnist is measured with, and the tag that names it: the first of JUDGES
    registered with a champion, else a small CNN trained on `dataset` now by `search` (the
    pipeline's run_search, handed down: this module is below it) and registered."""
    found = _registered_judge(tracking_uri)
    if found is None:
        if search is None:
            raise ConfigError(f"no {' or '.join(JUDGES)} champion to judge generated digits by in {tracking_uri}")
        config = ExperimentConfig(name="mnist-judge", dataset="mnist", model="cnn", tuner="random", max_trials=1,
                                  epochs=JUDGE_EPOCHS, final_epochs=0, tracking_uri=tracking_uri)
        echo(f"No mnist-cnn champion to judge generated digits by: training the default CNN for {JUDGE_EPOCHS} "
             "epochs as one")
        result = search(config, dataset, tuning_root=tuning_root, echo=lambda _line: None)
        echo(f"  the judge: {result.registered_name} version {result.champion_version}, test accuracy "
             f"{result.test_metrics['test_accuracy']:.4f}")
        found = _registered_judge(tracking_uri)
    return found


def _registered_judge(tracking_uri: str | None) -> tuple[Judge, dict] | None:
    for name in JUDGES:
        try:
            version = registered_version(name, tracking_uri)
        except TrackingError:
            continue
        return Judge(load_registered_model(version.uri, tracking_uri)), {"nnlab.judge": f"{name}/{version.version}"}
    return None

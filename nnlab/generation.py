"""The GAN family's search policy (the builders are nnlab/models/gan.py): what a generator is
scored by, and how a search trains, tests and registers one.

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
- Every score is of the GAN's average generator (nnlab/models/gan.py), and so is what is
  registered. The champion is tested on the test images, and its average generator registered:
  `nnlab.load_model("mnist-gan")` takes latent vectors and returns images in the data's units.
"""

from __future__ import annotations

from functools import partial

import keras
import keras_tuner
import numpy as np

from nnlab import plots
from nnlab.config import ConfigError, ExperimentConfig
from nnlab.hypermodel import SearchHyperModel
from nnlab.quality import Judge
from nnlab.space import LEARNING_RATE, within
from nnlab.task import GENERATION

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

    def further_callbacks(self) -> list:
        return []  # ReduceLROnPlateau would cut the rate of an optimizer neither network uses

    def test(self, model, test) -> tuple[dict, np.ndarray, np.ndarray]:
        latent, samples = generated(model.average_generator)
        scores = self.judge.scores(self.judge.look(test[0])[0], samples)
        return {f"test_{name}": value for name, value in scores.items()}, latent, samples

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
        result = search(config, dataset, tuning_root=tuning_root, echo=lambda _line: None)
        echo(f"No mnist-cnn champion to judge generated digits by: trained the default CNN for {JUDGE_EPOCHS} "
             f"epochs (test accuracy {result.test_metrics['test_accuracy']:.4f}), registered as "
             f"{result.registered_name} version {result.champion_version}")
        found = _registered_judge(tracking_uri)
    return found


def _registered_judge(tracking_uri: str | None) -> tuple[Judge, dict] | None:
    from nnlab.tracking import TrackingError, load_registered_model, registered_version

    for name in JUDGES:
        try:
            version = registered_version(name, tracking_uri)
        except TrackingError:
            continue
        return Judge(load_registered_model(version.uri, tracking_uri)), {"nnlab.judge": f"{name}/{version.version}"}
    return None

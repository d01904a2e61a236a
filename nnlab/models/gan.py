"""GAN: a DCGAN generator and discriminator, and the model that trains them against each other.

`build_generator(hp, spec)` and `build_discriminator(hp, spec)` are pure builders like every
family's: they declare their search space on `hp` and return uncompiled functional models.
`build(hp, spec)` puts both into a `GAN`, a keras.Model subclass with its own `train_step`,
still trained by `fit()` on the real images alone (the keras.io DCGAN example's shape).

The generator makes images in the data's own units (MNIST's [0, 1], the digits' 0-16), so that
what it draws goes wherever a real image goes: into the discriminator, which scales its input
as every nnlab model does (layers.model_input), or into a classifier that scores it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nnlab.models.layers import model_input

LEAKY_SLOPE = 0.2  # the DCGAN paper's, and the keras.io example's


def build_generator(hp, spec) -> keras.Model:
    """Latent vector -> image: a dense seed at a quarter of the image's size, optionally a plain
    convolution on it, then two transposed convolutions that double it, the second straight to
    the image's channels (the TensorFlow DCGAN tutorial's shape: no wide layer at full size,
    where a CPU spends most of a step)."""
    height, width, channels = spec.input_shape
    if height % 4 or width % 4:
        raise ValueError(f"the generator doubles a quarter-size seed twice: {height}x{width} is not a multiple of 4")
    latent_dim = hp.Choice("latent_dim", [32, 64, 128], default=64)
    filters = hp.Choice("generator_filters", [32, 64, 128], default=64)
    extra = hp.Int("generator_extra_convolutions", 0, 1, default=0)
    # Batch normalisation steadies the generator in the DCGAN paper; searched, as small
    # generators also train without it.
    batch_norm = hp.Boolean("generator_batch_norm", default=True)

    def block(x, layer):
        x = layer(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
        return keras.layers.LeakyReLU(LEAKY_SLOPE)(x)

    inputs = keras.Input((latent_dim,), name="latent")
    x = block(inputs, keras.layers.Dense(height // 4 * width // 4 * filters * 2, use_bias=not batch_norm))
    x = keras.layers.Reshape((height // 4, width // 4, filters * 2))(x)
    for _ in range(extra):
        x = block(x, keras.layers.Conv2D(filters * 2, 3, padding="same", use_bias=not batch_norm))
    x = block(x, keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=not batch_norm))
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="sigmoid", name="unit_range")(x)
    if spec.pixel_max != 1:
        x = keras.layers.Rescaling(spec.pixel_max, name="pixels")(x)
    return keras.Model(inputs, x, name="generator")


def build_discriminator(hp, spec) -> keras.Model:
    """Image -> one logit, real against generated: strided convolutions with LeakyReLU and
    dropout, no batch normalisation (its batch statistics would tell real and generated
    batches apart by themselves)."""
    filters = hp.Choice("discriminator_filters", [32, 64, 128], default=64)
    blocks = hp.Int("discriminator_blocks", 2, 3, default=2)
    dropout = hp.Float("discriminator_dropout", 0.0, 0.5, step=0.1, default=0.3)
    inputs, x = model_input(spec)
    for index in range(blocks):
        x = keras.layers.Conv2D(filters * 2**index, 4, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="real_logit")(x), name="discriminator")


def build(hp, spec) -> GAN:
    # One-sided label smoothing (real labelled 0.9, say) keeps the discriminator from growing
    # too sure of itself (Salimans et al. 2016); 0 turns it off.
    smoothing = hp.Choice("label_smoothing", [0.0, 0.1, 0.2], default=0.1)
    return GAN(build_generator(hp, spec), build_discriminator(hp, spec), label_smoothing=smoothing)


class GAN(keras.Model):
    """A generator and a discriminator, trained in turns by `fit(real_images)`: each batch one
    discriminator step on the real batch and as many generated images, then one generator step
    towards images the discriminator calls real. Calling it generates: latent -> images."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, label_smoothing: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(name=kwargs.pop("name", "gan"), **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(generator.inputs[0].shape[-1])
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
        self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)

    @property
    def metrics(self):
        return [self.discriminator_loss, self.generator_loss]

    def call(self, latent, training=False):
        return self.generator(latent, training=training)

    def latent(self, count):
        return keras.random.normal((count, self.latent_dim), seed=self.seed_generator)

    def train_step(self, data):
        real = data[0] if isinstance(data, tuple) else data
        count = tf.shape(real)[0]
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(self.generator(self.latent(count), training=True), training=True)
            discriminator_loss = (self.cross_entropy(tf.fill(tf.shape(real_logits), 1.0 - self.label_smoothing), real_logits)
                                  + self.cross_entropy(tf.zeros_like(fake_logits), fake_logits))
        weights = self.discriminator.trainable_weights
        self.discriminator_optimizer.apply_gradients(zip(tape.gradient(discriminator_loss, weights), weights))
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(self.latent(count), training=True), training=True)
            generator_loss = self.cross_entropy(tf.ones_like(fake_logits), fake_logits)
        weights = self.generator.trainable_weights
        self.generator_optimizer.apply_gradients(zip(tape.gradient(generator_loss, weights), weights))
        self.discriminator_loss.update_state(discriminator_loss)
        self.generator_loss.update_state(generator_loss)
        return {metric.name: metric.result() for metric in self.metrics}

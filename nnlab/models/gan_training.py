"""The GAN's training step on each Keras backend (nnlab/models/gan.py's GAN.train_step calls the
one Keras runs). Keras 3 leaves gradients to the backend, as its guides to a custom train_step
do for each: TensorFlow's GradientTape, PyTorch's autograd, JAX's stateless functions.

Every backend takes the same step (the TensorFlow DCGAN tutorial's update): one generated batch
as large as the real one, both networks' losses from the discriminator's verdicts on both
batches (`GAN.game_losses`, keras.ops alone), one optimizer step for each network from those same
verdicts, then the average generator moved towards the generator's new weights.

The backends are imported inside functions: a machine with one of them may lack the others.
"""

from __future__ import annotations

import keras
from keras import ops


def average_momentum(steps, most: float):
    """The momentum of the generator's running average after `steps` steps, at most `most`
    (gan.AVERAGE_MOMENTUM): warmed up as TensorFlow's ExponentialMovingAverage with num_updates,
    as early on it would hold mostly the untrained weights."""
    steps = ops.cast(steps, "float32")
    return ops.minimum(most, (1.0 + steps) / (10.0 + steps))


def forward(gan, data):
    """(discriminator loss, generator loss) of one step: a generated batch as large as the real
    one and the discriminator's verdicts on both, with the backend's own variables (TensorFlow
    records it on tapes, PyTorch on its graph)."""
    real, labels = gan.unpacked(data)
    latent = gan.latent(ops.shape(real)[0])
    real_outputs = gan.discriminator(real, training=True)
    fake_outputs = gan.discriminator(gan.generator(latent, training=True), training=True)
    return gan.game_losses(latent, labels, real_outputs, fake_outputs)


def tensorflow_step(gan, data) -> dict:
    import tensorflow as tf

    with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
        discriminator_loss, generator_loss = forward(gan, data)
    for tape, loss, network, optimizer in (
            (discriminator_tape, discriminator_loss, gan.discriminator, gan.discriminator_optimizer),
            (generator_tape, generator_loss, gan.generator, gan.generator_optimizer)):
        weights = network.trainable_weights
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
    _move_average(gan)
    return gan.logged(discriminator_loss, generator_loss)


def torch_step(gan, data) -> dict:
    import torch

    discriminator_loss, generator_loss = forward(gan, data)
    # Each loss's gradient for its own network's weights, from the one forward pass (two tapes'
    # worth: the discriminator's loss keeps the graph for the generator's).
    discriminator_weights = gan.discriminator.trainable_weights
    generator_weights = gan.generator.trainable_weights
    discriminator_grads = torch.autograd.grad(discriminator_loss, [w.value for w in discriminator_weights],
                                              retain_graph=True)
    generator_grads = torch.autograd.grad(generator_loss, [w.value for w in generator_weights])
    with torch.no_grad():
        gan.discriminator_optimizer.apply(list(discriminator_grads), discriminator_weights)
        gan.generator_optimizer.apply(list(generator_grads), generator_weights)
        _move_average(gan)
    return gan.logged(discriminator_loss.detach(), generator_loss.detach())


def _move_average(gan) -> None:
    momentum = average_momentum(gan.generator_optimizer.iterations, gan.average_momentum)
    for average, weight in zip(gan.average_generator.weights, gan.generator.weights):
        average.assign(momentum * average + (1.0 - momentum) * weight)


class BothOptimizers:
    """What Keras' JAX trainer reads as a model's optimizer, for the GAN: the variables of the
    generator's optimizer, then the discriminator's. The trainer hands their values to each
    (jitted) train step and writes back what it returns, as it does for one optimizer."""

    def __init__(self, gan):
        self.gan = gan

    @property
    def variables(self) -> list:
        return [*self.gan.generator_optimizer.variables, *self.gan.discriminator_optimizer.variables]

    @property
    def built(self) -> bool:
        return self.gan.generator_optimizer.built and self.gan.discriminator_optimizer.built

    def build(self, _variables=None) -> None:
        """Each optimizer for its own network's weights (Keras asks with all the model's)."""
        self.gan.generator_optimizer.build(self.gan.generator.trainable_variables)
        self.gan.discriminator_optimizer.build(self.gan.discriminator.trainable_variables)


def jax_step(gan, state, data):
    """The same step as a pure function of the model's state (the JAX trainer's contract):
    (trainable, non-trainable, optimizer, metric values) in, (logs, the new state) out."""
    import jax

    trainable, non_trainable, optimizer_values, metric_values = (list(part) for part in state)
    real, labels = gan.unpacked(data)
    slot = _Slots(gan, trainable, non_trainable)
    with keras.StatelessScope(state_mapping=[(gan.seed_generator.state, slot.value(gan.seed_generator.state))]) as scope:
        latent = gan.latent(ops.shape(real)[0])
    slot.set(gan.seed_generator.state, scope.get_current_value(gan.seed_generator.state))
    generator, discriminator = gan.generator, gan.discriminator
    generator_state = slot.values(generator.non_trainable_variables)
    discriminator_state = slot.values(discriminator.non_trainable_variables)

    def losses(generator_weights, discriminator_weights):
        fake, new_generator_state = generator.stateless_call(generator_weights, generator_state, latent, training=True)
        real_outputs, middle = discriminator.stateless_call(discriminator_weights, discriminator_state, real,
                                                            training=True)
        fake_outputs, new_discriminator_state = discriminator.stateless_call(discriminator_weights, middle, fake,
                                                                             training=True)
        return (gan.game_losses(latent, labels, real_outputs, fake_outputs),
                (new_generator_state, new_discriminator_state))

    generator_weights = slot.values(generator.trainable_variables)
    discriminator_weights = slot.values(discriminator.trainable_variables)
    (discriminator_loss, generator_loss), pullback, (new_generator_state, new_discriminator_state) = jax.vjp(
        losses, generator_weights, discriminator_weights, has_aux=True)
    one, none = ops.ones_like(discriminator_loss), ops.zeros_like(generator_loss)
    discriminator_grads = pullback((one, none))[1]
    generator_grads = pullback((none, one))[0]
    count = len(gan.generator_optimizer.variables)
    generator_weights, generator_optimizer_values = gan.generator_optimizer.stateless_apply(
        optimizer_values[:count], generator_grads, generator_weights)
    discriminator_weights, discriminator_optimizer_values = gan.discriminator_optimizer.stateless_apply(
        optimizer_values[count:], discriminator_grads, discriminator_weights)
    for variables, values in ((generator.trainable_variables, generator_weights),
                              (generator.non_trainable_variables, new_generator_state),
                              (discriminator.trainable_variables, discriminator_weights),
                              (discriminator.non_trainable_variables, new_discriminator_state)):
        for variable, value in zip(variables, values):
            slot.set(variable, value)
    iterations = generator_optimizer_values[_index_of(gan.generator_optimizer.variables,
                                                      gan.generator_optimizer.iterations)]
    momentum = average_momentum(iterations, gan.average_momentum)
    for average, weight in zip(gan.average_generator.weights, generator.weights):
        slot.set(average, momentum * slot.value(average) + (1.0 - momentum) * slot.value(weight))
    logs, metric_values = _logged(gan, metric_values, discriminator_loss, generator_loss)
    optimizer_values = [*generator_optimizer_values, *discriminator_optimizer_values]
    return logs, (slot.trainable, slot.non_trainable, optimizer_values, metric_values)


def _logged(gan, metric_values: list, discriminator_loss, generator_loss):
    """GAN.logged without state: the loss means' new variables and the logs they give."""
    logs, new_values, start = {}, [], 0
    for metric, loss in zip(gan.metrics, (discriminator_loss, generator_loss)):
        own = metric_values[start: start + len(metric.variables)]
        start += len(metric.variables)
        own = metric.stateless_update_state(own, loss)
        logs[metric.name] = metric.stateless_result(own)
        new_values.extend(own)
    return logs, new_values


def _index_of(variables: list, wanted) -> int:
    return next(index for index, variable in enumerate(variables) if variable is wanted)


class _Slots:
    """The model's trainable and non-trainable values in the JAX trainer's order, read and
    written by variable."""

    def __init__(self, gan, trainable: list, non_trainable: list):
        self.trainable, self.non_trainable = trainable, non_trainable
        self.where = {id(variable): (self.trainable, index) for index, variable in enumerate(gan.trainable_variables)}
        self.where.update({id(variable): (self.non_trainable, index)
                           for index, variable in enumerate(gan.non_trainable_variables)})

    def value(self, variable):
        values, index = self.where[id(variable)]
        return values[index]

    def values(self, variables) -> list:
        return [self.value(variable) for variable in variables]

    def set(self, variable, value) -> None:
        values, index = self.where[id(variable)]
        values[index] = value

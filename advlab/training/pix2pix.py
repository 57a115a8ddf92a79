"""Pix2PixTrainer: a ``keras.Model`` that trains a generator against a conditional discriminator.

keras-io style: ``compile`` takes the two optimizers, ``train_step`` does one simultaneous
update of G and D, and ``keras.metrics.Mean`` trackers report every loss term. The loss
weights ``lambda_l1`` and ``lambda_perc`` are non-trainable variables, so a callback
(:class:`advlab.training.WeightSchedule`) can change them between epochs without retracing.

Distribution: build the trainer inside ``strategy.scope()`` and call ``fit`` as usual. Each
replica's loss is divided by the number of replicas before the gradient (the gradients are
summed across replicas), and batch norm is synchronised, so N devices compute what one does;
the same holds for N worker processes under ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``).
Mixed precision: wrap the optimizers in ``keras.optimizers.LossScaleOptimizer``;
``train_step`` scales the losses through ``optimizer.scale_loss``.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from advlab.training.losses import discriminator_loss, l1_loss, pix2pix_generator_loss

LOSS_NAMES = ("g_loss", "gan", "l1", "perc", "d_loss")


class Pix2PixTrainer(keras.Model):
    """Trains ``generator`` (x_adv -> x_pur in [0, 1]) against ``discriminator([x_adv, image])
    -> patch logits``; ``fit(x_adv, x_clean)`` takes the attacked images and their clean originals."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, perceptual=None,
                 lambda_l1: float = 100.0, lambda_perc: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.perceptual = perceptual
        self.lambda_l1 = keras.Variable(float(lambda_l1), trainable=False, name="lambda_l1")
        self.lambda_perc = keras.Variable(float(lambda_perc), trainable=False, name="lambda_perc")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in LOSS_NAMES}

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # fit() builds the model on a sample batch that Keras 3 first reduces across replicas, which
        # fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); G and D are built when
        # made, so there is nothing to build.
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def call(self, x_adv, training=False):
        return self.generator(x_adv, training=training)

    def build_optimizers(self):
        """Create the optimizers' slot variables now (needed before restoring a checkpoint)."""
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def compute_losses(self, x_adv, x_clean, training=True):
        """Forward pass of G and D; returns (generator loss dict, discriminator loss)."""
        x_adv = tf.convert_to_tensor(x_adv, tf.float32)
        x_clean = tf.convert_to_tensor(x_clean, tf.float32)
        x_pur = self.generator(x_adv, training=training)
        real = self.discriminator([x_adv, x_clean], training=training)
        fake = self.discriminator([x_adv, x_pur], training=training)
        g = pix2pix_generator_loss(fake, x_clean, x_pur, self.lambda_l1, self.lambda_perc,
                                   features=self.perceptual)
        return g, discriminator_loss(real, fake)

    def train_step(self, data):
        x_adv, x_clean = data[0], data[1]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            g, d_loss = self.compute_losses(x_adv, x_clean, training=True)
            g_scaled = self.g_optimizer.scale_loss(g["total"] / replicas)
            d_scaled = self.d_optimizer.scale_loss(d_loss / replicas)
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_scaled, g_vars), g_vars))
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_scaled, d_vars), d_vars))
        values = {"g_loss": g["total"], "gan": g["gan"], "l1": g["l1"], "perc": g["perc"],
                  "d_loss": d_loss}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return _for_workers({name: self.trackers[name].result() for name in LOSS_NAMES})

    def test_step(self, data):
        x_adv, x_clean = data[0], data[1]
        # evaluate() resets the trackers first, so the L1 tracker can be reused (-> "val_l1")
        self.trackers["l1"].update_state(l1_loss(x_clean, self.generator(x_adv, training=False)))
        return _for_workers({"l1": self.trackers["l1"].result()})


def _for_workers(logs: dict) -> dict:
    """Under several workers, Keras 3 averages a step's logs over all replicas with
    ``strategy.reduce("MEAN", value, axis=0)``, which needs an axis: give each scalar one."""
    extended = tf.distribute.get_strategy().extended
    if getattr(extended, "_in_multi_worker_mode", lambda: False)():   # Keras' own test for it
        return {name: value[None] for name, value in logs.items()}
    return logs

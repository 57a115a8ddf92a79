"""CAPGANTrainer: a ``keras.Model`` whose ``train_step`` trains CAP-GAN's two generators and two
discriminators at once (the networks and the purifier are in :mod:`advlab.purifiers.capgan`,
the loss terms in :mod:`advlab.training.losses`), and the published optimiser."""
from __future__ import annotations

import keras
import tensorflow as tf

from advlab.training.losses import cam_loss, kd_loss, l1_loss, lsgan_d_loss, lsgan_g_loss


class CAPGANTrainer(keras.Model):
    """Keras model with a custom ``train_step`` on aligned pairs ``(x_adv, x_clean)``."""

    def __init__(self, g_ac, g_ca, d_a, d_c, classifier, alpha: float = 0.7, temperature: float = 10.0,
                 w_adv: float = 1.0, w_cam: float = 1.0, w_rec: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise ValueError(f"need 0 <= alpha <= 1 and temperature > 0; got {alpha}, {temperature}.")
        self.g_ac, self.g_ca, self.d_a, self.d_c = g_ac, g_ca, d_a, d_c
        self.classifier = classifier
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.w_adv, self.w_cam, self.w_rec = float(w_adv), float(w_cam), float(w_rec)
        names = ("g_loss", "d_loss", "adv", "pixel", "cam", "feature")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.g_ac(x, training=training)[0]

    def generator_losses(self, x_a, x_c, training=True):
        """All generator terms for one batch (a dict of scalars; ``total`` is optimised)."""
        f = lambda t: self.classifier(t, training=False)  # noqa: E731
        fake_c, cam_ac_src, _ = self.g_ac(x_a, training=training)
        fake_a, cam_ca_src, _ = self.g_ca(x_c, training=training)
        rec_a = self.g_ca(fake_c, training=training)[0]
        rec_c = self.g_ac(fake_a, training=training)[0]
        id_c, cam_ac_tgt, _ = self.g_ac(x_c, training=training)
        id_a, cam_ca_tgt, _ = self.g_ca(x_a, training=training)
        dc_patch, dc_cam, _ = self.d_c(fake_c, training=training)
        da_patch, da_cam, _ = self.d_a(fake_a, training=training)
        adv = lsgan_g_loss(dc_patch) + lsgan_g_loss(dc_cam) + lsgan_g_loss(da_patch) + lsgan_g_loss(da_cam)
        pixel = l1_loss(rec_a, x_a) + l1_loss(rec_c, x_c) + l1_loss(id_c, x_c) + l1_loss(id_a, x_a)
        cam = cam_loss(cam_ac_src, cam_ac_tgt) + cam_loss(cam_ca_src, cam_ca_tgt)
        feature = (kd_loss(f(x_c), f(fake_c), self.temperature)
                   + kd_loss(f(x_a), f(fake_a), self.temperature))
        total = (self.w_adv * adv + self.w_cam * cam
                 + self.w_rec * (self.alpha * pixel + (1.0 - self.alpha) * feature))
        return {"total": total, "adv": adv, "pixel": pixel, "cam": cam, "feature": feature,
                "fake_c": fake_c, "fake_a": fake_a}

    def discriminator_loss(self, x_a, x_c, fake_a, fake_c, training=True):
        loss = 0.0
        for d, real, fake in ((self.d_c, x_c, fake_c), (self.d_a, x_a, fake_a)):
            r_patch, r_cam, _ = d(real, training=training)
            f_patch, f_cam, _ = d(fake, training=training)
            loss += lsgan_d_loss(r_patch, f_patch) + lsgan_d_loss(r_cam, f_cam)
        return loss

    def train_step(self, data):
        x_a, x_c = data
        g_vars = self.g_ac.trainable_variables + self.g_ca.trainable_variables
        d_vars = self.d_a.trainable_variables + self.d_c.trainable_variables
        with tf.GradientTape() as g_tape:
            g = self.generator_losses(x_a, x_c)
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g["total"], g_vars), g_vars))
        fake_a, fake_c = tf.stop_gradient(g["fake_a"]), tf.stop_gradient(g["fake_c"])
        with tf.GradientTape() as d_tape:
            d_loss = self.discriminator_loss(x_a, x_c, fake_a, fake_c)
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
        values = {"g_loss": g["total"], "d_loss": d_loss, "adv": g["adv"], "pixel": g["pixel"],
                  "cam": g["cam"], "feature": g["feature"]}
        for k, v in values.items():
            self.trackers[k].update_state(v)
        return {k: t.result() for k, t in self.trackers.items()}


def make_optimizer(steps: int, lr: float = 1e-4):
    """Adam(0.5, 0.999) with cosine decay from ``lr`` to 0 over ``steps`` steps (as published)."""
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, int(steps)))
    return keras.optimizers.Adam(schedule, beta_1=0.5, beta_2=0.999)

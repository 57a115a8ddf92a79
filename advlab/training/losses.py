"""Loss terms of the image-to-image purifiers, each a small function on tensors.

The residual cGAN (Zhang et al., arXiv 2504.01399) minimises

    G* = arg min_G max_D  L_cGAN(G, D) + lambda1 * L_L1(G) + lambda2 * L_perc(G)

with lambda1 = 100 and lambda2 = 1:

on pairs of an attacked image ``x_adv`` and its clean original ``x_clean``, with the purified
image ``x_pur = G(x_adv)``:

* ``L_cGAN``: binary cross-entropy on the discriminator's patch logits. The generator wants
  ``D(x_adv, x_pur)`` called real (:func:`generator_gan_loss`); the discriminator wants
  ``D(x_adv, x_clean)`` real and ``D(x_adv, x_pur)`` fake (:func:`discriminator_loss`).
* ``L_L1 = mean |x_clean - x_pur|`` (:func:`l1_loss`).
* ``L_perc = sum_k mean |V_k(x_clean) - V_k(x_pur)|`` over feature maps ``V_k`` of a fixed
  network (:func:`perceptual_loss`; backbones in :mod:`advlab.training.perceptual`).

(``y`` always means labels in advlab, so the clean target is ``x_clean``, never ``y``.)

CAP-GAN (Kang et al.) trains with least-squares GAN losses (:func:`lsgan_d_loss`,
:func:`lsgan_g_loss`), a CAM loss on its attention classifier (:func:`cam_loss`) and semantic
distillation from the target classifier (:func:`kd_loss`), beside the same :func:`l1_loss`.

All losses are means over the batch (and pixels/patches), so they do not depend on batch size.
Under a multi-device ``tf.distribute`` strategy the trainer divides by the number of replicas.
"""
from __future__ import annotations

from typing import Callable, Sequence

import keras
import tensorflow as tf

def _bce_logits(labels, logits):
    """Mean sigmoid cross-entropy, numerically stable, in float32."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


# ----------------------------------------------------------------------------- cGAN
def generator_gan_loss(fake_logits):
    """``-mean log sigmoid(D(x_adv, x_pur))``: the generator's non-saturating adversarial loss."""
    return _bce_logits(tf.ones_like(fake_logits, tf.float32), fake_logits)


def discriminator_loss(real_logits, fake_logits):
    """``BCE(real, 1) + BCE(fake, 0)`` on the patch logits (the pix2pix sum, not halved)."""
    return (_bce_logits(tf.ones_like(real_logits, tf.float32), real_logits)
            + _bce_logits(tf.zeros_like(fake_logits, tf.float32), fake_logits))


# ----------------------------------------------------------------------------- pixels
def l1_loss(x_clean, x_pur):
    """``mean |x_clean - x_pur|`` over batch, pixels and channels."""
    return tf.reduce_mean(tf.abs(tf.cast(x_clean, tf.float32) - tf.cast(x_pur, tf.float32)))


# ----------------------------------------------------------------------------- features
def perceptual_loss(features: Callable, x_clean, x_pur):
    """``sum_k mean |V_k(x_clean) - V_k(x_pur)|`` where ``features(images) -> [V_1, ..., V_K]``.

    ``features`` is a frozen feature extractor (see :mod:`advlab.training.perceptual`); no
    gradient is taken through the clean target's features.
    """
    f_true = features(x_clean)
    f_pred = features(x_pur)
    if not isinstance(f_true, (list, tuple)):
        f_true, f_pred = [f_true], [f_pred]
    return feature_distance([tf.stop_gradient(a) for a in f_true], f_pred)


def feature_distance(f_true: Sequence, f_pred: Sequence):
    """``sum_k mean |a_k - b_k|`` for two equal-length lists of feature maps."""
    if len(f_true) != len(f_pred):
        raise ValueError(f"feature lists differ in length: {len(f_true)} vs {len(f_pred)}")
    total = tf.constant(0.0, tf.float32)
    for a, b in zip(f_true, f_pred):
        total += tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))
    return total


def pix2pix_generator_loss(fake_logits, x_clean, x_pur, lambda_l1=100.0, lambda_perc=1.0,
                           features: Callable | None = None):
    """The generator objective as a dict: ``total``, ``gan``, ``l1``, ``perc`` (scalars).

    ``features=None`` (or ``lambda_perc == 0`` as a Python number) skips the perceptual term.
    """
    gan = generator_gan_loss(fake_logits)
    l1 = l1_loss(x_clean, x_pur)
    use_perc = features is not None and not (isinstance(lambda_perc, (int, float)) and lambda_perc == 0)
    perc = perceptual_loss(features, x_clean, x_pur) if use_perc else tf.constant(0.0, tf.float32)
    total = gan + tf.cast(lambda_l1, tf.float32) * l1 + tf.cast(lambda_perc, tf.float32) * perc
    return {"total": total, "gan": gan, "l1": l1, "perc": perc}


# ----------------------------------------------------------------------------- CAP-GAN


def lsgan_d_loss(real_logits, fake_logits):
    """Least-squares GAN discriminator loss: mean((D(real) - 1)^2) + mean(D(fake)^2)."""
    return tf.reduce_mean(tf.square(real_logits - 1.0)) + tf.reduce_mean(tf.square(fake_logits))


def lsgan_g_loss(fake_logits):
    """Least-squares GAN generator loss: mean((D(fake) - 1)^2)."""
    return tf.reduce_mean(tf.square(fake_logits - 1.0))


def cam_loss(source_logits, target_logits):
    """BCE(eta(source-domain images), 1) + BCE(eta(target-domain images), 0), on logits."""
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    return bce(tf.ones_like(source_logits), source_logits) + bce(tf.zeros_like(target_logits), target_logits)


def kd_loss(ref_logits, fake_logits, temperature: float = 10.0):
    """Semantic loss T^2 * KL(softmax(ref/T) || softmax(fake/T)), averaged over the batch.

    Zero exactly when the two logit vectors agree (up to a constant shift).
    """
    t = float(temperature)
    log_p = tf.nn.log_softmax(ref_logits / t, axis=-1)
    log_q = tf.nn.log_softmax(fake_logits / t, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
    return t * t * tf.reduce_mean(kl)

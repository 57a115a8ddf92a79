"""Adaptive (defence-aware) attacks: the attacker knows the purifier.

A purified classifier is the composition ``f(P(x))``. The purification papers mostly report
**gray-box** numbers: x_adv crafted on ``f`` alone, then purified. An attacker who knows ``P``
attacks the composition instead. How the gradient of ``f(P(x))`` is obtained names the mode:

* ``"exact"`` (**end-to-end white-box**): back-propagate through ``P`` itself. Only possible
  for differentiable purifiers (the learned ones).
* ``"bpda"`` (**BPDA**, Athalye, Carlini & Wagner 2018): run ``P`` forward, but use the
  identity in the backward pass, ``dP/dx ~= I``. Needed for JPEG, median filter, bit depth,
  TV minimisation and wavelet denoising; also applied to learned purifiers (CAP-GAN's
  "BPDA-I"), where it is usually *weaker* than the exact gradient.
* **EOT** (expectation over transformation): for a random purifier (``purifier.stochastic``)
  the model seen by the attack averages ``k`` independent purifications: it returns
  ``log mean_k softmax(f(P_k(x)))``, so the loss gradient is that of the expected
  probability over the purifier's randomness. On by default (``k = 10``) for random purifiers.

:func:`defended_model` builds that composition as a Keras model returning logits, so every
attack in :mod:`advlab.attacks` (PGD, MI-FGSM, AutoAttack ...) runs on it unchanged:
:func:`adaptive_attack` is ``attacks.attack(name, defended_model(...), x, y)``.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

GRADIENTS = ("exact", "bpda")


@tf.custom_gradient
def straight_through(x, y):
    """Forward: ``y`` (the purified image). Backward: the incoming gradient goes to ``x``
    unchanged (identity Jacobian) and nothing goes to ``y``."""
    def grad(dy):
        return dy, tf.zeros_like(dy)
    return tf.identity(y), grad


def _forward(purifier, x):
    """The purifier as a TF op, exact gradient where it has one."""
    fn = getattr(purifier, "differentiable_call", None)
    return fn(x) if fn is not None else purifier.purify_tensor(x)


def bpda(purifier):
    """``x -> P(x)`` as a TF function whose backward pass is the identity (BPDA)."""
    def op(x):
        return straight_through(x, tf.stop_gradient(_forward(purifier, x)))
    return op


def purify_op(purifier, gradient: str = "exact"):
    """``P`` as a TF function with the requested backward pass (``"exact"`` or ``"bpda"``)."""
    if gradient not in GRADIENTS:
        raise ValueError(f"Unknown gradient mode {gradient!r}; use one of {GRADIENTS}.")
    if gradient == "bpda":
        return bpda(purifier)
    if not getattr(purifier, "differentiable", True):
        raise ValueError(f"Purifier {purifier.name!r} is not differentiable; attack it with "
                         "gradient='bpda' (identity backward pass).")
    return lambda x: _forward(purifier, x)


class PurifiedClassifier(keras.layers.Layer):
    """``f(P(x))`` as one layer (logits), with optional EOT averaging over ``eot_samples``."""

    def __init__(self, purifier, classifier, gradient: str = "exact", eot_samples: int = 1, **kwargs):
        super().__init__(**kwargs)
        if int(eot_samples) < 1:
            raise ValueError(f"eot_samples must be >= 1, got {eot_samples}.")
        self.purifier, self.classifier = purifier, classifier
        self.op, self.gradient = purify_op(purifier, gradient), gradient
        self.eot_samples = int(eot_samples)

    def cache_identity(self) -> str:
        """What this layer computes beyond the classifier's weights (read by
        :func:`advlab.io.cache.weights_digest`): the purifier's content and the attack's gradient."""
        from advlab.io.cache import purifier_digest

        return f"purified:{purifier_digest(self.purifier)}|{self.gradient}|eot{self.eot_samples}"

    def call(self, x):
        if self.eot_samples == 1:
            return self.classifier(self.op(x), training=False)
        logp = [tf.nn.log_softmax(self.classifier(self.op(x), training=False), -1)
                for _ in range(self.eot_samples)]
        return tf.reduce_logsumexp(tf.stack(logp), axis=0) - math.log(self.eot_samples)

    def compute_output_spec(self, x):
        n_cls = self.classifier.output_shape[-1]
        return keras.KerasTensor((x.shape[0], n_cls), dtype="float32")


def defended_model(purifier, classifier, gradient: str = "exact", eot_samples: int | None = None,
                   name: str | None = None) -> keras.Model:
    """Purifier + classifier as one Keras model on [0, 1] images returning logits.

    ``eot_samples`` defaults to 10 for random purifiers, 1 otherwise.
    """
    if eot_samples is None:
        eot_samples = 10 if getattr(purifier, "stochastic", False) else 1
    inp = keras.Input(tuple(classifier.input_shape[1:]), name="x")
    out = PurifiedClassifier(purifier, classifier, gradient, eot_samples)(inp)
    label = name or f"{purifier.name}_{gradient}" + (f"_eot{eot_samples}" if eot_samples > 1 else "")
    return keras.Model(inp, out, name=label.replace(" ", "_").replace("-", "_"))


def mode_for(purifier, requested: str) -> str | None:
    """The gradient used for a white-box mode, or ``None`` when it does not apply.

    ``"e2e"`` needs a differentiable purifier; ``"bpda"`` applies to every purifier.
    """
    if requested == "e2e":
        return "exact" if getattr(purifier, "differentiable", True) else None
    if requested == "bpda":
        return "bpda"
    raise ValueError(f"Unknown white-box mode {requested!r}; use 'e2e' or 'bpda'.")


def adaptive_attack(name: str, purifier, classifier, x, y=None, *, gradient: str = "exact",
                    eot_samples: int | None = None, **params) -> np.ndarray:
    """Run attack ``name`` on the composition ``f(P(.))``; returns x_adv (not yet purified)."""
    from advlab import attacks

    model = defended_model(purifier, classifier, gradient, eot_samples)
    return attacks.attack(name, model, x, y, **params)


def loss_gradient(model, x, y) -> np.ndarray:
    """Gradient of the cross-entropy of ``model`` (logits) w.r.t. the input images."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
            tf.convert_to_tensor(y), model(x, training=False), from_logits=True))
    return tape.gradient(loss, x).numpy()

"""An attack designed for bit-depth reduction: PGD on the quantized image itself.

A quantizer ``q(x) = round(L x) / L`` (``L = 2**bits - 1``; 1 bit is binarization) has no useful
gradient, and BPDA (identity backward pass) only guesses one. But the set of images the attacker
can make the defence *see* is known exactly: pixel ``i`` can take any level between
``q(max(x_i - eps, 0))`` and ``q(min(x_i + eps, 1))`` (``round`` is monotone), independently of
the others. For MNIST at eps 0.3 and 1 bit, a pixel at 0 or 1 cannot move at all and a pixel in
(0.2, 0.8) can take both values. So the attack optimises the classifier directly over that box:

* relax the box: ``b = lo + (hi - lo) z`` with ``z`` in [0, 1]; sign steps on ``z`` of the C&W
  margin (or cross-entropy) of ``f(b)``, step size 0.5 decaying to 0 (cosine), restart 0 from
  the clean image's quantization, the others from uniform ``z``;
* after every step round ``b`` to the nearest level, evaluate ``f`` on that (the image the
  defence would see), and keep the first one that fools it, otherwise the highest-loss one;
* map it back to an input: ``x_adv = clip(b_q, x - eps, x + eps)``, which the quantizer sends to
  ``b_q`` exactly.

The suite then scores ``x_adv`` through the deployed purifier, so any mismatch can only weaken
this attack, never flatter the defence. Restarts run only on images no earlier restart fooled;
inputs are never modified.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from advlab.attacks.apgd import _as_fn, _mask, check_params, copy_inputs, per_example_loss


def quantized_box(x, eps: float, levels: int):
    """(lo, hi): per pixel, the lowest and highest quantized value reachable within eps."""
    lo = np.rint(np.clip(x - eps, 0.0, 1.0) * levels) / levels
    hi = np.rint(np.clip(x + eps, 0.0, 1.0) * levels) / levels
    return lo.astype(np.float32), hi.astype(np.float32)


def _build(fn, loss_name, levels):
    levels = float(levels)

    @tf.function(reduce_retracing=True)
    def run(x, y, lo, hi, z0, n_iter):
        width = hi - lo
        z = z0
        n = tf.shape(x)[0]
        fooled = tf.zeros([n], tf.bool)
        best_loss = tf.fill([n], -np.inf)
        b_found = tf.round((lo + width * z0) * levels) / levels
        b_best = b_found
        for t in tf.range(n_iter):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = per_example_loss(loss_name, fn(lo + width * z), y)
            grad = tape.gradient(loss, z)
            frac = tf.cast(t, tf.float32) / tf.cast(n_iter, tf.float32)
            alpha = 0.25 * (1.0 + tf.cos(math.pi * frac)) + 0.01
            z = tf.clip_by_value(z + alpha * tf.sign(grad), 0.0, 1.0)
            b_q = tf.round((lo + width * z) * levels) / levels     # what the defence would see
            logits = fn(b_q)
            q_loss = per_example_loss(loss_name, logits, y)
            new = tf.logical_and(tf.argmax(logits, -1) != y, tf.logical_not(fooled))
            b_found = tf.where(_mask(new, b_q), b_q, b_found)
            fooled = tf.logical_or(fooled, new)
            better = q_loss > best_loss
            b_best = tf.where(_mask(better, b_q), b_q, b_best)
            best_loss = tf.maximum(best_loss, q_loss)
        return tf.where(_mask(fooled, b_found), b_found, b_best), fooled, best_loss

    return run


def quantized_pgd(classifier, x, y, eps: float, levels: int = 1, *, loss: str = "cw", n_iter: int = 100,
                  restarts: int = 3, seed: int = 0, batch_size: int = 256, return_info: bool = False):
    """x_adv against ``q(x) = round(levels x) / levels`` + ``classifier`` (see the module doc).

    ``classifier``: the model *behind* the quantizer (Keras or a callable returning logits).
    With ``return_info`` also returns ``{"fooled", "accuracy_per_restart"}`` as :func:`apgd` does.
    """
    num_classes = getattr(classifier, "output_shape", (None, None))[-1]
    check_params(eps, n_iter, restarts, loss, num_classes=num_classes, batch_size=batch_size)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 1 <= levels <= 255:
        raise ValueError(f"levels must be an integer in 1..255 (2**bits - 1), got {levels!r}.")
    x, y = copy_inputs(x, y)
    lo, hi = quantized_box(x, float(eps), int(levels))
    width = hi - lo
    start = np.rint(x * levels) / levels
    z_clean = np.where(width > 0, (start - lo) / np.maximum(width, 1e-12), 0.0).astype(np.float32)
    run = _build(_as_fn(classifier), loss, int(levels))
    b_adv, fooled = start.astype(np.float32), np.zeros(len(x), bool)
    loss_best = np.full(len(x), -np.inf, np.float32)
    per_restart = []
    rng = np.random.default_rng(int(seed))
    for r in range(restarts):
        todo = np.flatnonzero(~fooled)
        for i in range(0, len(todo), batch_size):
            idx = todo[i:i + batch_size]
            z0 = z_clean[idx] if r == 0 else rng.random(x[idx].shape, dtype=np.float32)
            b, f, lb = (t.numpy() for t in run(tf.constant(x[idx]), tf.constant(y[idx]), tf.constant(lo[idx]),
                                               tf.constant(hi[idx]), tf.constant(z0), tf.constant(int(n_iter))))
            keep = f | (lb > loss_best[idx])
            b_adv[idx[keep]] = b[keep]
            loss_best[idx] = np.maximum(loss_best[idx], lb)
            fooled[idx] |= f
        per_restart.append(1.0 - float(fooled.mean()) if len(x) else float("nan"))
    x_adv = np.clip(b_adv, np.clip(x - eps, 0.0, 1.0), np.clip(x + eps, 0.0, 1.0)).astype(np.float32)
    if return_info:
        return x_adv, {"fooled": fooled, "accuracy_per_restart": per_restart}
    return x_adv

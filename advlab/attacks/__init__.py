"""Adversarial attacks behind one call: ``attack(name, model, x, y=None, **params) -> x_adv``.

>>> from advlab import attacks
>>> x_adv = attacks.attack("pgd", model, x, y, eps=0.3)          # doctest: +SKIP

* ``ATTACKS`` = ("fgsm", "bim", "pgd", "mifgsm", "cw", "deepfool", "autoattack"); extra: "square".
  :mod:`advlab.attacks.registry` documents which library backs each one and why.
* ``model`` is a Keras model taking images in [0, 1] and returning logits (all
  :mod:`advlab.classifiers` models do). A softmax output is refused (it weakens gradient attacks).
* ``x`` NHWC float in [0, 1]; ``y`` integer labels. Without ``y`` the attack uses the model's
  own predictions (avoids "label leaking"; Kurakin et al. 2017).
* Returns float32 numpy in [0, 1], same shape; inputs are never modified. Work is done in
  batches of ``batch_size`` with a progress bar; every parameter of
  :func:`default_params` can be overridden by keyword.

Cached adversarial datasets: :func:`adversarial_set` and :func:`composite`
(:mod:`advlab.attacks.datasets`).
"""
from __future__ import annotations

import numpy as np

from advlab.attacks.registry import ATTACKS, EXTRAS, REGISTRY, default_params, describe, norms
from advlab.attacks.validation import check_inputs, check_logits, check_name, check_params

__all__ = ["ATTACKS", "EXTRAS", "attack", "default_params", "describe", "norms", "evaluate",
           "adversarial_set", "composite", "AdversarialSet", "Composite", "CacheCorrupt"]


def _predict(model, x, batch_size):
    from advlab.classifiers import predict_labels

    return predict_labels(model, x, batch_size)


def attack(name: str, model, x, y=None, *, batch_size: int = 128, progress: bool = True,
           preset: str = "paper", seed: int = 0, allow_probabilities: bool = False,
           **params) -> np.ndarray:
    """Run attack ``name`` on ``x`` and return the adversarial images ``x_adv``.

    Args:
        name: one of :data:`ATTACKS` (or an extra such as ``"square"``).
        model: Keras classifier on [0, 1] images that returns logits.
        x: images (N, H, W, C) in [0, 1]; y: optional int labels (N,).
        batch_size: images per step; progress: show a tqdm bar.
        preset: "paper" (eps 16/255) or "mnist" (eps 0.3) defaults, see :func:`default_params`.
        seed: seeds the random parts (PGD's random start, AutoAttack/Square sampling).
        allow_probabilities: attack a model with softmax outputs anyway.
        **params: overrides, e.g. ``eps=0.1, nb_iter=20, eps_iter=0.01``.
    """
    key = check_name(name, tuple(REGISTRY))
    spec = REGISTRY[key]
    merged = default_params(key, preset)
    merged.update(check_params(key, dict(params), allowed=spec.defaults))
    check_params(key, merged, allowed=spec.defaults)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    x_arr, y_arr = check_inputs(model, x, y)
    if not allow_probabilities:
        check_logits(model, x_arr)
    if y_arr is None:
        y_arr = _predict(model, x_arr, batch_size)

    import tensorflow as tf
    from tqdm.auto import tqdm

    runner = spec.make_runner(model, merged, seed)
    out = np.empty_like(x_arr)
    starts = range(0, len(x_arr), batch_size)
    bar = tqdm(total=len(x_arr), desc=key, unit="img", disable=not progress, leave=True)
    try:
        for b, i in enumerate(starts):
            xb = x_arr[i:i + batch_size]
            yb = y_arr[i:i + batch_size]
            adv = np.asarray(runner(tf.constant(xb), tf.constant(yb), b), np.float32)
            if spec.norm == "linf":  # final projection: guards against float drift in libraries
                eps = np.float32(merged["eps"])
                adv = xb + np.clip(adv - xb, -eps, eps)
            out[i:i + len(xb)] = np.clip(adv, 0.0, 1.0)
            bar.update(len(xb))
    finally:
        bar.close()
    return out


def evaluate(model, x, x_adv, y, batch_size: int = 256) -> dict:
    """Accuracy on clean and adversarial images, success rate and perturbation norms.

    Success rate = fraction of the images the model classified correctly that the attack
    turned into a wrong class.
    """
    y = np.asarray(y).reshape(-1)
    clean = _predict(model, x, batch_size) == y
    adv = _predict(model, x_adv, batch_size) == y
    n = norms(x, x_adv)
    return {"n": int(len(y)), "clean_accuracy": float(clean.mean()),
            "adversarial_accuracy": float(adv.mean()),
            "success_rate": float((clean & ~adv).sum() / max(clean.sum(), 1)),
            "linf_mean": float(n["linf"].mean()), "linf_max": float(n["linf"].max()),
            "l2_mean": float(n["l2"].mean()), "l2_max": float(n["l2"].max())}


def __getattr__(name):  # the dataset helpers load lazily (they pull in hashing / file code)
    if name in ("adversarial_set", "composite", "AdversarialSet", "Composite", "CacheCorrupt"):
        from advlab.attacks import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'advlab.attacks' has no attribute {name!r}")

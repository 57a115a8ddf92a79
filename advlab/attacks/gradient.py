"""FGSM, BIM, PGD and MI-FGSM, backed by cleverhans ``tf2.attacks``, compiled with ``tf.function``.

What comes from cleverhans 4.0.0 and what is ours:

* FGSM   - ``fast_gradient_method`` as is, compiled.
* BIM / PGD - the loop of cleverhans' ``projected_gradient_descent``: each step is cleverhans'
  ``fast_gradient_method`` then cleverhans' ``clip_eta`` projection and a clip to [0, 1],
  compiled as one ``tf.function``. We drive the loop ourselves because (1) its
  ``sanity_checks=True`` path runs ``np.all`` on tensors, which breaks under numpy 2, and
  (2) its random start draws from unseeded ``tf.random`` ops, so the same seed gave different
  results. PGD's random start comes from a stateless RNG keyed by ``seed`` and the batch index.
  BIM is the same loop without the random start (Kurakin et al.).
* MI-FGSM - the body of cleverhans' ``momentum_iterative_method`` loop (its
  ``compute_gradient``, L1 normalisation, ``optimize_linear``, ``clip_eta``) as one compiled
  step; the library function itself defaults to ``sanity_checks=True`` (numpy 2 breakage).

Why a Python loop over a compiled step rather than one compiled loop: measured on 2 CPU cores
(MNIST CNN, 256 images, 40 steps) a ``tf.while_loop`` took 10.2 s, a fully unrolled
``tf.function`` 6.0 s and the Python loop over one compiled step 3.2 s (best of 3).
eps and the step size are tensor arguments, so changing them (e.g. the explorer's eps slider)
does not retrace.
"""
from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.momentum_iterative_method import loss_fn as mim_loss
from cleverhans.tf2.utils import clip_eta, compute_gradient, optimize_linear

_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _model_fn(model):
    return lambda t: model(t, training=False)


def _compiled(model, key, build):
    """One tf.function per (model, attack); kept as long as the model lives."""
    per_model = _COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build(_model_fn(model))
    return per_model[key]


def _sig(model):
    shape = (None,) + tuple(model.input_shape[1:])
    return [tf.TensorSpec(shape, tf.float32), tf.TensorSpec([None], tf.int64)]


def _build_fgsm(model):
    def build(fn):
        @tf.function(input_signature=_sig(model) + [tf.TensorSpec([], tf.float32)])
        def fgsm(x, y, eps):
            return fast_gradient_method(fn, x, eps, np.inf, clip_min=0.0, clip_max=1.0, y=y,
                                        sanity_checks=False)
        return fgsm
    return _compiled(model, "fgsm", build)


def _build_iterative(model):
    """One BIM / PGD step: x_{t+1} = clip_[0,1]( x + clip_eta( FGM(x_t, eps_iter) - x, eps ) )."""
    def build(fn):
        @tf.function(input_signature=_sig(model) + [_sig(model)[0]] + [tf.TensorSpec([], tf.float32)] * 2)
        def step(x, y, adv, eps, eps_iter):
            adv = fast_gradient_method(fn, adv, eps_iter, np.inf, clip_min=0.0, clip_max=1.0,
                                       y=y, sanity_checks=False)
            return tf.clip_by_value(x + clip_eta(adv - x, np.inf, eps), 0.0, 1.0)
        return step
    return _compiled(model, "iterative", build)


def _build_mifgsm(model):
    """One MI-FGSM step: the body of cleverhans' ``momentum_iterative_method`` loop."""
    def build(fn):
        @tf.function(input_signature=_sig(model) + [_sig(model)[0]] * 2 + [tf.TensorSpec([], tf.float32)] * 3)
        def step(x, y, adv, momentum, eps, eps_iter, decay):
            grad = compute_gradient(fn, mim_loss, adv, y, False)
            red_ind = list(range(1, len(grad.shape)))
            grad = grad / tf.math.maximum(tf.cast(1e-12, grad.dtype),
                                          tf.math.reduce_mean(tf.math.abs(grad), red_ind, keepdims=True))
            momentum = decay * momentum + grad
            adv = adv + optimize_linear(momentum, eps_iter, np.inf)
            adv = tf.clip_by_value(x + clip_eta(adv - x, np.inf, eps), 0.0, 1.0)
            return adv, momentum
        return step
    return _compiled(model, "mifgsm", build)


def make_fgsm(model, params, seed):
    fn = _build_fgsm(model)
    return lambda x, y, batch: fn(x, y, float(params["eps"])).numpy()


def _make_iterative(model, params, seed, random_start):
    fn = _build_iterative(model)
    eps = float(params["eps"])
    eps_t, step_t = tf.constant(eps, tf.float32), tf.constant(float(params["eps_iter"]), tf.float32)

    def run(x, y, batch):
        adv = x
        if random_start:
            eta0 = tf.random.stateless_uniform(x.shape, seed=[int(seed), int(batch)],
                                               minval=-eps, maxval=eps)
            adv = tf.clip_by_value(x + eta0, 0.0, 1.0)
        for _ in range(int(params["nb_iter"])):
            adv = fn(x, y, adv, eps_t, step_t)
        return adv.numpy()
    return run


def make_bim(model, params, seed):
    return _make_iterative(model, params, seed, random_start=False)


def make_pgd(model, params, seed):
    return _make_iterative(model, params, seed, random_start=bool(params.get("rand_init", True)))


def make_mifgsm(model, params, seed):
    fn = _build_mifgsm(model)
    consts = [tf.constant(float(params[k]), tf.float32) for k in ("eps", "eps_iter", "decay_factor")]

    def run(x, y, batch):
        adv, momentum = x, tf.zeros_like(x)
        for _ in range(int(params["nb_iter"])):
            adv, momentum = fn(x, y, adv, momentum, *consts)
        return adv.numpy()
    return run

"""FGSM, BIM, PGD and MI-FGSM, backed by cleverhans ``tf2.attacks``, compiled with ``tf.function``.

What comes from cleverhans 4.0.0 and what is ours:

* FGSM   - ``fast_gradient_method`` as is.
* MI-FGSM- ``momentum_iterative_method`` as is, but with ``sanity_checks=False``: its default
  ``True`` runs ``np.all`` on a list of symbolic tensors, which fails under numpy 2 / tf.function.
* BIM / PGD - the loop of cleverhans' ``projected_gradient_descent`` (FGM step with
  cleverhans' ``fast_gradient_method`` -> project with cleverhans' ``clip_eta`` -> clip to
  [0, 1]) written as a ``tf.while_loop`` here, for two reasons: (1) its ``sanity_checks=True``
  path breaks under numpy 2 (same ``np.all`` issue), and (2) its random start draws from
  unseeded ``tf.random`` ops inside the function, so two runs with the same seed differ. We
  draw PGD's random start from a stateless RNG keyed by ``seed`` and the batch index instead.
  BIM is the same loop without the random start (Kurakin et al.).

Every function is traced once per model and image shape: eps, step and iteration count are
tensor arguments, so changing them (e.g. the eps slider of the explorer) does not retrace.
"""
from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method
from cleverhans.tf2.utils import clip_eta

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
    """BIM / PGD loop: x_{t+1} = clip_[0,1]( x + clip_eta( FGM(x_t, eps_iter) - x, eps ) )."""
    def build(fn):
        @tf.function(input_signature=_sig(model) + [tf.TensorSpec([], tf.float32)] * 2
                     + [tf.TensorSpec([], tf.int32), _sig(model)[0]])
        def iterative(x, y, eps, eps_iter, nb_iter, eta0):
            adv = tf.clip_by_value(x + clip_eta(eta0, np.inf, eps), 0.0, 1.0)

            def body(i, adv):
                adv = fast_gradient_method(fn, adv, eps_iter, np.inf, clip_min=0.0, clip_max=1.0,
                                           y=y, sanity_checks=False)
                adv = tf.clip_by_value(x + clip_eta(adv - x, np.inf, eps), 0.0, 1.0)
                return i + 1, adv

            _, adv = tf.while_loop(lambda i, _: i < nb_iter, body, [tf.constant(0), adv])
            return adv
        return iterative
    return _compiled(model, "iterative", build)


def _build_mifgsm(model):
    def build(fn):
        @tf.function(input_signature=_sig(model) + [tf.TensorSpec([], tf.float32)] * 3
                     + [tf.TensorSpec([], tf.int32)])
        def mifgsm(x, y, eps, eps_iter, decay, nb_iter):
            return momentum_iterative_method(fn, x, eps=eps, eps_iter=eps_iter, nb_iter=nb_iter,
                                             norm=np.inf, clip_min=0.0, clip_max=1.0, y=y,
                                             decay_factor=decay, sanity_checks=False)
        return mifgsm
    return _compiled(model, "mifgsm", build)


def make_fgsm(model, params, seed):
    fn = _build_fgsm(model)
    return lambda x, y, batch: fn(x, y, float(params["eps"])).numpy()


def _make_iterative(model, params, seed, random_start):
    fn = _build_iterative(model)
    eps = float(params["eps"])

    def run(x, y, batch):
        if random_start:
            eta0 = tf.random.stateless_uniform(x.shape, seed=[int(seed), int(batch)],
                                               minval=-eps, maxval=eps)
        else:
            eta0 = tf.zeros(x.shape, tf.float32)
        return fn(x, y, eps, float(params["eps_iter"]), int(params["nb_iter"]), eta0).numpy()
    return run


def make_bim(model, params, seed):
    return _make_iterative(model, params, seed, random_start=False)


def make_pgd(model, params, seed):
    return _make_iterative(model, params, seed, random_start=bool(params.get("rand_init", True)))


def make_mifgsm(model, params, seed):
    fn = _build_mifgsm(model)
    return lambda x, y, batch: fn(x, y, float(params["eps"]), float(params["eps_iter"]),
                                  float(params["decay_factor"]), int(params["nb_iter"])).numpy()

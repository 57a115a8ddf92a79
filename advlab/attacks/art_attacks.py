"""DeepFool, AutoAttack and Square, backed by the Adversarial Robustness Toolbox (ART 1.20).

The Keras model is wrapped once per :func:`advlab.attacks.attack` call in ART's
``TensorFlowV2Classifier`` (logits out, ``clip_values=(0, 1)``, cross-entropy on logits).

AutoAttack here is **ART's** AutoAttack: APGD-CE, untargeted APGD-DLR, DeepFool and Square,
each run only on the images still classified correctly, keeping the first success within
``eps``. That set differs from Croce & Hein's standard AutoAttack (APGD-CE, targeted APGD-T,
FAB-T, Square), so numbers are not directly comparable with RobustBench. ART's default budgets
(100 APGD iterations x 5 restarts, 5000 Square queries x 5 restarts) are exposed as
``nb_iter``, ``restarts`` and ``square_queries``; APGD's initial step is 2 * eps as in the paper.
ART's AutoAttack imports ``multiprocess`` even when it runs serially (it is a dependency).
"""
from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():  # ART announces at import that optional PyTorch tools are missing
    warnings.filterwarnings("ignore", message="PyTorch not found")
    import art.attacks.evasion  # noqa: F401


def _art_classifier(model):
    import keras
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    class CompiledTFV2Classifier(TensorFlowV2Classifier):
        """ART's TF2 wrapper with a compiled all-class Jacobian.

        ART computes ``class_gradient(x)`` (all classes; what DeepFool asks for every
        iteration) with one eager forward + backward pass per class. Here it is one compiled
        ``batch_jacobian``; same numbers, several times faster. Other calls go to ART.
        """

        _jac = None

        def class_gradient(self, x, label=None, training_mode=False, **kwargs):
            if label is not None or training_mode or self.preprocessing_operations:
                return super().class_gradient(x, label=label, training_mode=training_mode, **kwargs)
            if self._jac is None:
                @tf.function(reduce_retracing=True)
                def jac(t):
                    with tf.GradientTape() as tape:
                        tape.watch(t)
                        logits = self.model(t, training=False)
                    return tape.batch_jacobian(logits, t)
                self._jac = jac
            return self._jac(tf.convert_to_tensor(x, tf.float32)).numpy()

    return CompiledTFV2Classifier(
        model=model, nb_classes=int(model.output_shape[-1]), input_shape=tuple(model.input_shape[1:]),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=(0.0, 1.0), preprocessing=None)


def _onehot(y, n):
    return np.eye(n, dtype=np.float32)[np.asarray(y)]


def _seeded(seed, batch, fn, *args, **kwargs):
    """Run ``fn`` with numpy's global RNG (which ART samples from) seeded by (seed, batch),
    then restore the caller's RNG state."""
    import tensorflow as tf

    state = np.random.get_state()
    np.random.seed((int(seed) * 100_003 + int(batch)) % 2**32)
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # ART's predict retraces for each batch size; the warning is noise
    try:
        return fn(*args, **kwargs)
    finally:
        logger.setLevel(level)
        np.random.set_state(state)


def make_deepfool(model, params, seed):
    from art.attacks.evasion import DeepFool

    clf = _art_classifier(model)
    atk = DeepFool(clf, max_iter=int(params["max_iter"]), epsilon=float(params["overshoot"]),
                   nb_grads=int(params["nb_grads"]), batch_size=128, verbose=False)

    # ART's DeepFool attacks the predicted class (it does not use y)
    return lambda x, y, batch: _seeded(seed, batch, atk.generate, np.asarray(x))


def _square(clf, eps, queries, restarts, batch_size=128):
    from art.attacks.evasion import SquareAttack

    return SquareAttack(estimator=clf, norm=np.inf, eps=eps, max_iter=int(queries), p_init=0.8,
                        nb_restarts=int(restarts), batch_size=batch_size, verbose=False)


def make_autoattack(model, params, seed):
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, DeepFool

    clf = _art_classifier(model)
    eps = float(params["eps"])
    n_cls = int(model.output_shape[-1])
    apgd = [AutoProjectedGradientDescent(estimator=clf, norm=np.inf, eps=eps, eps_step=2 * eps,
                                         max_iter=int(params["nb_iter"]), targeted=False,
                                         nb_random_init=int(params["restarts"]), batch_size=128,
                                         loss_type=loss, verbose=False)
            for loss in ("cross_entropy", "difference_logits_ratio")]
    members = apgd + [DeepFool(clf, max_iter=100, epsilon=1e-3, nb_grads=10, batch_size=128, verbose=False),
                      _square(clf, eps, params["square_queries"], params["restarts"])]
    atk = AutoAttack(estimator=clf, norm=np.inf, eps=eps, eps_step=2 * eps, attacks=members,
                     batch_size=128)

    return lambda x, y, batch: _seeded(seed, batch, atk.generate, np.asarray(x), y=_onehot(y, n_cls))


def make_square(model, params, seed):
    clf = _art_classifier(model)
    atk = _square(clf, float(params["eps"]), params["square_queries"], params["restarts"])
    n_cls = int(model.output_shape[-1])

    return lambda x, y, batch: _seeded(seed, batch, atk.generate, np.asarray(x), y=_onehot(y, n_cls))

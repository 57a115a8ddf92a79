"""The capstone's hidden defence (notebook 12): a pre-processing pipeline drawn from a seed at run
time, which the student diagnoses and attacks, and the lab's own strongest attack on it.

>>> defence = hidden_defence(seed=12)                                        # doctest: +SKIP
>>> defence.stages[0](tf.constant(x))                                        # doctest: +SKIP
>>> defended_accuracy(defence, classifier, x_adv, y)                         # doctest: +SKIP
>>> lab_attack(defence, classifier, x, y, eps=0.3)                           # doctest: +SKIP

:func:`hidden_defence` puts three stages in front of the classifier, in an order and with
parameters drawn from ``seed``: a light Gaussian blur (deterministic, differentiable), Gaussian
noise (random, differentiable) and a step that blocks gradients (bit-depth reduction, whose
``tf.round`` has no gradient, or a median filter computed outside autodiff, as a numpy
implementation would be). Each stage is an opaque TF op; :meth:`HiddenDefence.reveal` names them
once the exercise is done.

The defence declares what its authors would: ``differentiable = True`` (it is one TensorFlow
graph) and ``stochastic = False`` (they evaluated it on one seed). Both are claims to test, not
facts: the noise makes it random, the blocking stage makes its exact gradient zero, so
exact-gradient PGD without EOT sees a flat loss and overstates its robustness (gradient masking,
Athalye et al. 2018). :func:`lab_attack` is the attack its builder can run: exact gradients
through the differentiable stages, the straight-through (BPDA) gradient through the blocking one,
EOT over the noise, APGD with two losses, per-image worst case.

Accuracy of a random defence is an expectation: :func:`defended_accuracy` averages ``draws``
noise draws from a fixed seed (:meth:`HiddenDefence.fixed_draws`), so the same images always
give the same number and a student's number can be checked exactly.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from advlab.evaluation.transforms import check_images
from advlab.purifiers import Purifier

KINDS = ("blur", "noise", "bit_depth", "median")
BLOCKING = ("bit_depth", "median")   # the kinds through which no gradient flows
LAB_EOT = 8           # noise draws averaged per gradient in the lab's attack
LAB_ITERS = 30        # APGD steps per loss in the lab's attack
EVAL_DRAWS = 8        # noise draws averaged per accuracy


class Stage:
    """One opaque step of a :class:`HiddenDefence`: call it on an NHWC float tensor in [0, 1]."""

    def __init__(self, index: int, kind: str, param: float, generator=None):
        if kind not in KINDS:
            raise ValueError(f"Unknown stage kind {kind!r}; use one of {KINDS}.")
        if kind == "noise" and generator is None:
            raise ValueError("a noise stage needs its generator (a tf.random.Generator).")
        self.index, self._kind, self._param, self._generator = index, kind, float(param), generator

    def __call__(self, x):
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        if self._kind == "blur":
            return _depthwise(x, _gaussian_kernel(self._param))
        if self._kind == "noise":
            return tf.clip_by_value(x + self._param * self._generator.normal(tf.shape(x)), 0.0, 1.0)
        if self._kind == "bit_depth":
            levels = 2.0 ** self._param - 1.0
            return tf.round(x * levels) / levels
        return tf.stop_gradient(_median3(x))   # what a numpy median filter gives TF: no gradient

    def describe(self) -> str:
        unit = {"blur": "Gaussian blur 3x3, sigma {:g} px", "noise": "Gaussian noise, std {:g}",
                "bit_depth": "bit-depth reduction to {:g} bits", "median": "median filter {:g}x{:g}"}[self._kind]
        return unit.format(self._param, self._param)

    def __repr__(self) -> str:
        return f"<Stage {self.index} of a hidden defence>"


def _gaussian_kernel(sigma: float) -> np.ndarray:
    t = np.exp(-np.arange(-1, 2) ** 2 / (2 * sigma ** 2))
    k = np.outer(t, t)
    return (k / k.sum()).astype(np.float32)


def _depthwise(x, kernel):
    """``kernel`` (3x3) applied to every channel, reflect-padded so that the borders keep their level."""
    import tensorflow as tf

    c = x.shape[-1]
    w = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, c, 1)))
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, w, strides=[1, 1, 1, 1], padding="VALID")


def _median3(x):
    """3x3 median per channel (reflect-padded)."""
    import tensorflow as tf

    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    patches = tf.image.extract_patches(padded, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
    shape = tf.concat([tf.shape(x)[:3], [9, x.shape[-1]]], 0)   # (row, col, channel), channel fastest
    return tf.sort(tf.reshape(patches, shape), axis=3)[:, :, :, 4, :]


class HiddenDefence(Purifier):
    """Three stages applied in order (``stages``), a purifier like any other: ``defence(x)`` on numpy
    images draws fresh noise each call, as a deployed random defence does.

    ``differentiable`` and ``stochastic`` are the authors' claims (see the module docstring).
    """

    differentiable = True   # claimed: one TF graph
    stochastic = False      # claimed: evaluated on one seed

    def __init__(self, seed: int, stages, generator):
        self.seed, self.name = int(seed), f"hidden_defence_{int(seed)}"
        self.stages = tuple(stages)
        self._generator = generator

    def purify_tensor(self, x):
        for stage in self.stages:
            x = stage(x)
        return x

    @contextlib.contextmanager
    def fixed_draws(self, seed: int = 0):
        """Within the block the noise comes from ``seed`` (the same draws every time); the stream
        the defence had before continues afterwards."""
        saved = self._generator.state.numpy()
        self._generator.reset_from_seed(int(seed))
        try:
            yield self
        finally:
            self._generator.reset(saved)

    def reveal(self) -> list[str]:
        """What each stage is, in order (for after the diagnosis)."""
        return [f"stage {s.index}: {s.describe()}" for s in self.stages]


def hidden_defence(seed: int = 0) -> HiddenDefence:
    """A defence drawn from ``seed``: blur, noise and a gradient-blocking step in a random order."""
    import tensorflow as tf

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 31:
        raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}.")
    rng = np.random.default_rng([int(seed), 12])
    blocking = ("bit_depth", float(rng.choice([1, 2, 3]))) if rng.random() < 0.5 else ("median", 3.0)
    recipe = [("blur", float(rng.choice([0.5, 0.7]))), ("noise", float(rng.choice([0.1, 0.15, 0.2]))), blocking]
    generator = tf.random.Generator.from_seed(int(seed))
    stages = [Stage(i, *recipe[j], generator=generator) for i, j in enumerate(rng.permutation(3))]
    return HiddenDefence(seed, stages, generator)


def _check(defence, classifier, x, y):
    if not isinstance(defence, HiddenDefence):
        raise TypeError(f"defence must be a HiddenDefence (capstone.hidden_defence(seed)), "
                        f"got {type(defence).__name__}.")
    x = check_images(x, "x")
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
    if tuple(x.shape[1:]) != tuple(classifier.input_shape[1:]):
        raise ValueError(f"images of shape {x.shape[1:]} do not fit the classifier's input "
                         f"{classifier.input_shape[1:]}.")
    return x, y


def correct_fraction(defence, classifier, x, y, *, draws: int = EVAL_DRAWS, seed: int = 0) -> np.ndarray:
    """Per image, the fraction of ``draws`` noise draws (from ``seed``) that the defence + classifier
    classify correctly."""
    from advlab.classifiers import predict_labels

    x, y = _check(defence, classifier, x, y)
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}.")
    with defence.fixed_draws(seed):
        hits = [predict_labels(classifier, defence(x), 256) == y for _ in range(int(draws))]
    return np.mean(hits, axis=0)


def defended_accuracy(defence, classifier, x, y, *, draws: int = EVAL_DRAWS, seed: int = 0) -> float:
    """The defence's expected accuracy on ``x`` (a fraction): the mean of :func:`correct_fraction`."""
    return float(np.mean(correct_fraction(defence, classifier, x, y, draws=draws, seed=seed)))


class _Surrogate(Purifier):
    """The defence with BPDA's straight-through gradient on its gradient-blocking stage only."""

    stochastic = True

    def __init__(self, defence: HiddenDefence):
        self.defence, self.name = defence, f"{defence.name}_lab_surrogate"

    def purify_tensor(self, x):
        from advlab.evaluation.adaptive import straight_through

        for stage in self.defence.stages:
            x = straight_through(x, stage(x)) if stage._kind in BLOCKING else stage(x)
        return x


def lab_attack(defence, classifier, x, y, eps: float, *, eot_samples: int = LAB_EOT, n_iter: int = LAB_ITERS,
               seed: int = 0) -> np.ndarray:
    """The builder's strongest attack: APGD-CE on the stage-wise BPDA surrogate with EOT over
    ``eot_samples`` draws, then APGD-DLR (the C&W margin for two classes) on the images it left
    unbroken, keeping per image the candidate with the lower :func:`correct_fraction` (AutoAttack's
    cascade). Seeded: the same call gives the same ``x_adv``."""
    from advlab.attacks import apgd
    from advlab.evaluation.adaptive import defended_model

    x, y = _check(defence, classifier, x, y)
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.number)) or not math.isfinite(eps) \
            or not 0 <= eps <= 1:
        raise ValueError(f"eps must be a number in [0, 1], got {eps!r}.")
    model = defended_model(_Surrogate(defence), classifier, "exact", eot_samples)
    margin = "dlr" if classifier.output_shape[-1] >= 3 else "cw"
    with defence.fixed_draws(seed + 1):
        x_adv = apgd.apgd(model, x, y, float(eps), loss="ce", n_iter=n_iter, seed=seed)
        score = correct_fraction(defence, classifier, x_adv, y)
        left = np.flatnonzero(score > 0)
        if len(left):
            second = apgd.apgd(model, x[left], y[left], float(eps), loss=margin, n_iter=n_iter, seed=seed + 1)
            better = correct_fraction(defence, classifier, second, y[left]) < score[left]
            x_adv[left[better]] = second[better]
    return x_adv

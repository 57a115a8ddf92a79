"""APGD (Croce & Hein 2020) and PGD with restarts, L-inf, compiled TF, per-example best tracking.

Why our own: ART's AutoAttack runs a different attack set and is slow on CPU; the reference
AutoAttack needs PyTorch. Both attacks here take a model as a Keras model *or* any callable
``x -> logits`` (e.g. purifier + classifier, :func:`advlab.evaluation.adaptive.defended_model`),
so they run through a whole defence with exact, BPDA or EOT gradients.

APGD, one run of ``n_iter`` steps (Algorithm 1 of the paper):

* start at ``x + U(-eps, eps)`` (seeded, stateless), step size ``eta = 2 eps`` per example;
* step ``z = P(x_k + eta sign(grad))``, then with momentum ``alpha = 0.75`` (none on the first
  step) ``x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}))``;
* at the checkpoints ``w_j = ceil(p_j n_iter)``, ``p_0 = 0, p_1 = 0.22,
  p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, an example halves its step and restarts
  from its best point when the loss rose in fewer than ``rho = 0.75`` of the steps since the
  last checkpoint, or when neither its step nor its best loss changed since then.

Losses: ``"ce"`` (cross-entropy), ``"dlr"`` (difference of logits ratio, needs >= 3 classes)
and ``"cw"`` (C&W margin ``max_{i != y} z_i - z_y``). Each example keeps the first iterate
that the model misclassifies, otherwise its highest-loss iterate. Restarts run only on the
examples no earlier restart fooled, each with its own seed, so on a fixed seed more restarts
never raise accuracy. Inputs are never modified; outputs are float32 numpy in [0, 1].
"""
from __future__ import annotations

import math
import weakref

import numpy as np
import tensorflow as tf

LOSSES = ("ce", "dlr", "cw")

_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def check_params(eps, n_iter, restarts, loss, *, num_classes=None, step_size=None,
                 batch_size=256, rho=0.75, momentum=0.75) -> None:
    """Every parameter check of this module, in one place (clear ValueError/TypeError)."""
    for name, val in (("eps", eps), ("rho", rho), ("momentum", momentum)):
        if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {val!r}.")
        if not math.isfinite(float(val)):
            raise ValueError(f"{name} must be finite, got {val}.")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}.")
    if eps > 1:
        raise ValueError(f"eps={eps} is impossible for images in [0, 1] (max 1); for pixel values "
                         f"0-255 divide by 255.")
    for name, val in (("n_iter", n_iter), ("restarts", restarts), ("batch_size", batch_size)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {val!r}.")
    if not 0 < rho <= 1 or not 0 < momentum <= 1:
        raise ValueError(f"rho and momentum must lie in (0, 1], got rho={rho}, momentum={momentum}.")
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; use one of {LOSSES}.")
    if loss == "dlr" and num_classes is not None and num_classes < 3:
        raise ValueError(f"The DLR loss needs >= 3 classes (the model has {num_classes}); "
                         f"use loss='cw' (the C&W margin) instead.")
    if step_size is not None and (not math.isfinite(float(step_size)) or step_size <= 0):
        raise ValueError(f"step_size must be > 0, got {step_size}.")


def per_example_loss(name: str, logits, y):
    """The attack's loss per example (to be maximised)."""
    if name == "ce":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
    z_y = tf.gather(logits, y, batch_dims=1)
    z_other = tf.reduce_max(logits - 1e9 * tf.one_hot(y, tf.shape(logits)[-1]), axis=-1)
    if name == "cw":
        return z_other - z_y
    top = tf.sort(logits, axis=-1, direction="DESCENDING")
    return -(z_y - z_other) / (top[:, 0] - top[:, 2] + 1e-12)


def _as_fn(model):
    return (lambda t: model(t, training=False)) if hasattr(model, "trainable_variables") else model


def _mask(m, like):
    """Per-example boolean -> broadcastable to the image batch."""
    return tf.reshape(m, [-1] + [1] * (len(like.shape) - 1))


def _compiled(model, loss):
    """The compiled steps of ``model`` for ``loss``, kept as long as the model lives."""
    per_model = _COMPILED.setdefault(model, {})
    if loss not in per_model:
        per_model[loss] = _build(_as_fn(model), loss)
        for step in per_model[loss].values():   # one trace per model is the design, not a retrace:
            step._omit_frequent_tracing_warning = True   # TF would warn after five models
    return per_model[loss]


def _build(fn, loss_name):
    def loss_grad(x_adv, y):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            logits = fn(x_adv)
            loss = per_example_loss(loss_name, logits, y)
            total = tf.reduce_sum(loss)
        # a zero-gradient step (rounding, quantisation) yields zeros, not None: masked, not broken
        grad = tape.gradient(total, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, grad, logits

    def track(s, x_new, loss, grad, logits, y):
        """First misclassified iterate and the highest-loss iterate, per example."""
        wrong = tf.argmax(logits, -1, output_type=y.dtype) != y
        better = loss > s["loss_best"]
        return dict(s, fooled=s["fooled"] | wrong,
                    x_found=tf.where(_mask(wrong & ~s["fooled"], x_new), x_new, s["x_found"]),
                    x_best=tf.where(_mask(better, x_new), x_new, s["x_best"]),
                    grad_best=tf.where(_mask(better, x_new), grad, s["grad_best"]),
                    loss_best=tf.maximum(loss, s["loss_best"]))

    @tf.function(reduce_retracing=True)
    def init(x, y, x0):
        loss, grad, logits = loss_grad(x0, y)
        s = dict(x_adv=x0, x_old=x0, grad=grad, loss_prev=loss, loss_best=loss, x_best=x0,
                 grad_best=grad, fooled=tf.zeros_like(y, tf.bool), x_found=x)
        s = track(s, x0, loss, grad, logits, y)
        s["eta"] = 2.0 * tf.ones_like(loss)  # in units of eps
        s["n_incr"] = tf.zeros_like(loss)
        s["loss_best_last"] = s["loss_best"]
        s["reduced_last"] = tf.ones_like(y, tf.bool)
        return s

    @tf.function(reduce_retracing=True)
    def apgd_step(x, y, eps, s, alpha, check, k, rho):
        lo, hi = tf.maximum(x - eps, 0.0), tf.minimum(x + eps, 1.0)
        x_k = s["x_adv"]
        z = tf.clip_by_value(x_k + _mask(s["eta"] * eps, x) * tf.sign(s["grad"]), lo, hi)
        x_new = tf.clip_by_value(x_k + alpha * (z - x_k) + (1.0 - alpha) * (x_k - s["x_old"]), lo, hi)
        loss, grad, logits = loss_grad(x_new, y)
        s = track(s, x_new, loss, grad, logits, y)
        n_incr = s["n_incr"] + tf.cast(loss > s["loss_prev"], loss.dtype)
        # checkpoint: oscillating (too few increases), or no progress since the last reduction
        oscillating = n_incr <= k * rho
        stalled = ~s["reduced_last"] & (s["loss_best"] <= s["loss_best_last"])
        reduce = check & (oscillating | stalled)
        return dict(s, x_old=x_k, loss_prev=loss,
                    x_adv=tf.where(_mask(reduce, x), s["x_best"], x_new),
                    grad=tf.where(_mask(reduce, x), s["grad_best"], grad),
                    eta=tf.where(reduce, s["eta"] / 2.0, s["eta"]),
                    n_incr=tf.where(check, tf.zeros_like(n_incr), n_incr),
                    reduced_last=tf.where(check, reduce, s["reduced_last"]),
                    loss_best_last=tf.where(check, s["loss_best"], s["loss_best_last"]))

    @tf.function(reduce_retracing=True)
    def pgd_step(x, y, eps, s, step_size):
        x_new = tf.clip_by_value(s["x_adv"] + step_size * tf.sign(s["grad"]),
                                 tf.maximum(x - eps, 0.0), tf.minimum(x + eps, 1.0))
        loss, grad, logits = loss_grad(x_new, y)
        return dict(track(s, x_new, loss, grad, logits, y), x_adv=x_new, grad=grad)

    return {"init": init, "apgd": apgd_step, "pgd": pgd_step}


def checkpoints(n_iter: int) -> list[int]:
    """The iterations after which APGD checks its progress (the paper's ``w_j``)."""
    p, out = [0.0, 0.22], []
    while p[-1] < 1:
        out.append(math.ceil(round(p[-1] * n_iter, 6)))  # 0.57 * 100 is 57.000000000000007
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({w for w in out if 0 < w <= n_iter})


def _random_start(x, eps, seed):
    eta = tf.random.stateless_uniform(tf.shape(x), seed=seed, minval=-eps, maxval=eps)
    return tf.clip_by_value(x + eta, 0.0, 1.0)


def _run_batch(steps, x, y, eps, seed, kind, n_iter, step_size, rho, momentum):
    x, y = tf.constant(x), tf.constant(y)
    eps_t = tf.constant(eps, tf.float32)
    s = steps["init"](x, y, _random_start(x, eps_t, seed))
    if kind == "apgd":
        marks = set(checkpoints(n_iter))
        last, rho_t = 0, tf.constant(rho, tf.float32)
        for i in range(n_iter):
            check = (i + 1) in marks
            s = steps["apgd"](x, y, eps_t, s, tf.constant(1.0 if i == 0 else momentum, tf.float32),
                              tf.constant(check), tf.constant(float(i + 1 - last)), rho_t)
            last = i + 1 if check else last
    else:
        step_t = tf.constant(step_size, tf.float32)
        for _ in range(n_iter):
            s = steps["pgd"](x, y, eps_t, s, step_t)
    x_adv = tf.where(_mask(s["fooled"], x), s["x_found"], s["x_best"])
    return x_adv.numpy(), s["fooled"].numpy(), s["loss_best"].numpy()


def copy_inputs(x, y):
    """float32 copies of images (checked finite, in [0, 1]) and int64 labels of the same count."""
    x = np.array(x, np.float32, copy=True)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
        raise ValueError("x must hold finite images in [0, 1].")
    return x, y


def _attack(kind, model, x, y, eps, loss, n_iter, restarts, seed, batch_size, step_size=None,
            rho=0.75, momentum=0.75, return_info=False):
    num_classes = getattr(model, "output_shape", (None, None))[-1]
    check_params(eps, n_iter, restarts, loss, num_classes=num_classes, step_size=step_size,
                 batch_size=batch_size, rho=rho, momentum=momentum)
    x, y = copy_inputs(x, y)
    x_adv, fooled = x.copy(), np.zeros(len(x), bool)
    loss_best = np.full(len(x), -np.inf, np.float32)
    per_restart = []
    steps = _compiled(model, loss) if len(x) else None
    for r in range(restarts):
        todo = np.flatnonzero(~fooled)
        for b, i in enumerate(range(0, len(todo), batch_size)):
            idx = todo[i:i + batch_size]
            adv, f, lb = _run_batch(steps, x[idx], y[idx], float(eps), [int(seed), r * 100_003 + b],
                                    kind, int(n_iter), step_size, rho, momentum)
            keep = f | (lb > loss_best[idx])  # a success, or a higher loss than earlier restarts
            x_adv[idx[keep]] = adv[keep]
            loss_best[idx] = np.maximum(loss_best[idx], lb)
            fooled[idx] |= f
        per_restart.append(1.0 - float(fooled.mean()) if len(x) else float("nan"))
    # final projection guards against float drift
    x_adv = np.clip(x + np.clip(x_adv - x, -eps, eps), 0.0, 1.0).astype(np.float32)
    if return_info:
        return x_adv, {"fooled": fooled, "accuracy_per_restart": per_restart}
    return x_adv


def apgd(model, x, y, eps: float, *, loss: str = "ce", n_iter: int = 100, restarts: int = 1,
         seed: int = 0, batch_size: int = 256, rho: float = 0.75, momentum: float = 0.75,
         return_info: bool = False):
    """APGD (L-inf) on ``model`` (Keras model or callable returning logits); returns ``x_adv``.

    With ``return_info`` also returns ``{"fooled": per-example bool (as judged by ``model``),
    "accuracy_per_restart": [...]}``.
    """
    return _attack("apgd", model, x, y, eps, loss, n_iter, restarts, seed, batch_size,
                   rho=rho, momentum=momentum, return_info=return_info)


def pgd(model, x, y, eps: float, *, loss: str = "cw", n_iter: int = 100, restarts: int = 1,
        step_size: float | None = None, seed: int = 0, batch_size: int = 256,
        return_info: bool = False):
    """PGD (L-inf, random start, fixed step) with restarts and per-example best tracking.

    ``step_size`` defaults to ``2.5 eps / n_iter`` (Madry et al.: enough to cross the ball).
    The default loss is the C&W margin, which does not saturate like cross-entropy.
    """
    if step_size is None:
        step_size = 2.5 * float(eps) / max(int(n_iter), 1) if eps > 0 else 1.0
    return _attack("pgd", model, x, y, eps, loss, n_iter, restarts, seed, batch_size,
                   step_size=step_size, return_info=return_info)


def make_apgd(model, params, seed):
    """Batch runner for :func:`advlab.attacks.attack` (``attack("apgd", ...)``)."""
    def run(x, y, batch):
        return apgd(model, np.asarray(x), np.asarray(y), float(params["eps"]), loss=params["loss"],
                    n_iter=int(params["nb_iter"]), restarts=int(params["restarts"]),
                    seed=int(seed) * 1_000_003 + int(batch), batch_size=max(len(x), 1))
    return run

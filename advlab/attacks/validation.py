"""Input and parameter checks for every attack, in one place (ART's ``_check_params`` style).

Each check raises ``ValueError`` (or ``TypeError``) with a message that says what was wrong and
how to fix it. :func:`check_inputs` returns fresh float32 copies, so attacks never touch the
caller's arrays.
"""
from __future__ import annotations

import math

import numpy as np

# Numeric parameters that must be >= 0, and counts that must be positive integers. The L-inf
# budget eps is also bounded by 1 (the whole pixel range) in check_params.
_NONNEG = ("eps", "eps_iter", "lr", "initial_const", "confidence", "overshoot", "decay_factor")
_POSITIVE_INT = ("nb_iter", "steps", "binary_search_steps", "max_iter", "restarts", "nb_grads",
                 "square_queries")


def check_name(name: str, known) -> str:
    """Normalise an attack name; unknown names list the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"Attack name must be a string, got {type(name).__name__}.")
    key = name.strip().lower().replace("-", "").replace("_", "").replace("&", "")
    aliases = {"mim": "mifgsm", "cwl2": "cw", "carliniwagner": "cw", "carliniwagnerl2": "cw",
               "aa": "autoattack"}
    key = aliases.get(key, key)
    if key not in known:
        raise ValueError(f"Unknown attack {name!r}. Known attacks: {', '.join(known)}.")
    return key


def check_params(name: str, params: dict, allowed) -> dict:
    """Refuse unknown parameter names and impossible values (e.g. eps < 0 or eps > 1)."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"{name}: unknown parameter(s) {unknown}; this attack accepts {sorted(allowed)}.")
    for key, val in params.items():
        if key in _NONNEG or key in _POSITIVE_INT:
            if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name}: {key} must be a number, got {val!r}.")
            if not math.isfinite(float(val)):
                raise ValueError(f"{name}: {key} must be finite, got {val}.")
        if key in _NONNEG and val < 0:
            raise ValueError(f"{name}: {key} must be >= 0, got {val}.")
        if key in _POSITIVE_INT and (int(val) != val or val < 1):
            raise ValueError(f"{name}: {key} must be a positive integer, got {val}.")
    eps = params.get("eps")
    if eps is not None and eps > 1:
        raise ValueError(
            f"{name}: eps={eps} is impossible for images in [0, 1] (max 1). If you think in pixel "
            f"values 0-255, divide by 255 (e.g. eps=16/255).")
    if "eps_iter" in params and eps is not None and params["eps_iter"] > eps > 0 and name != "fgsm":
        raise ValueError(f"{name}: step eps_iter={params['eps_iter']} is larger than eps={eps}.")
    return params


def check_inputs(model, x, y=None, num_classes: int | None = None):
    """Check images (and labels) against ``model``; return float32 copies ``(x, y)``.

    * ``x`` must be a non-empty batch (NHWC, rank 4) with the model's height/width/channels,
      finite, and in [0, 1] (0-255 images are refused with a hint).
    * ``y`` (optional) must hold one integer label per image, within the model's classes.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"Images must be a real numeric array, got dtype {arr.dtype}.")
    if arr.ndim != 4:
        hint = (" (one image? add a batch axis: x[None]; grey images without a channel axis? "
                "use x[..., None])") if arr.ndim == 3 else ""
        raise ValueError(f"Images must be a 4-D batch (N, height, width, channels); got shape "
                         f"{arr.shape}{hint}.")
    if arr.size == 0:
        raise ValueError(f"Images are an empty batch (shape {arr.shape}): there is nothing to attack. "
                         f"Pass at least one image (check the slice or limit that produced x).")
    expected = tuple(model.input_shape[1:]) if model is not None else (None,) * 3
    for got, want, what in zip(arr.shape[1:], expected, ("height", "width", "channels")):
        if want is not None and got != want:
            raise ValueError(f"Images have shape {arr.shape[1:]} but the model expects {expected}: "
                             f"wrong {what} ({got} instead of {want}).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"Images contain NaN or inf ({int(np.sum(~np.isfinite(arr)))} values).")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:
        hint = " They look like 0-255 pixels: divide by 255." if hi > 1.5 and lo >= 0 else ""
        raise ValueError(f"Images must be in [0, 1]; got values in [{lo:.4g}, {hi:.4g}].{hint}")
    x_out = np.array(arr, dtype=np.float32, copy=True)
    y_out = None
    if y is not None:
        lab = np.asarray(y)
        if lab.ndim == 2 and lab.shape[0] == len(arr) and lab.shape[1] > 1:
            lab = lab.argmax(-1)  # one-hot labels
        lab = lab.reshape(-1) if lab.ndim <= 1 else lab
        if lab.ndim != 1 or len(lab) != len(arr):
            raise ValueError(f"Labels must hold one class per image: {len(arr)} images but labels "
                             f"of shape {np.shape(y)}.")
        if not np.issubdtype(lab.dtype, np.integer):
            if not np.all(np.mod(lab, 1) == 0):
                raise ValueError("Labels must be integer class indices.")
        lab = lab.astype(np.int64)
        n_cls = num_classes or (model.output_shape[-1] if model is not None else None)
        if lab.size and (lab.min() < 0 or (n_cls is not None and lab.max() >= n_cls)):
            raise ValueError(f"Labels must be class indices in [0, {n_cls}); got [{lab.min()}, {lab.max()}].")
        y_out = lab
    return x_out, y_out


def check_logits(model, x_probe, tol: float = 1e-3) -> None:
    """Refuse a model whose outputs look like probabilities (softmax) instead of logits.

    Gradient attacks on a softmax output saturate (vanishing gradients), which silently makes
    them look weak. Rebuild the model without the final softmax (advlab classifiers return
    logits), or pass ``allow_probabilities=True`` to :func:`advlab.attacks.attack` to proceed.
    """
    import tensorflow as tf

    if len(x_probe) == 0:
        return
    out = np.asarray(model(tf.convert_to_tensor(x_probe[:16]), training=False))
    if out.ndim != 2:
        raise ValueError(f"The model must return (batch, classes) logits; it returned shape {out.shape}.")
    if out.shape[1] < 2:
        raise ValueError("The model must return one logit per class (at least 2 classes).")
    if np.all(out >= 0) and np.all(out <= 1) and np.allclose(out.sum(-1), 1.0, atol=tol):
        raise ValueError(
            "The model returns probabilities (non-negative rows summing to 1), not logits. Gradient "
            "attacks on softmax outputs saturate and silently look weak. Remove the final softmax "
            "(e.g. keras.Model(model.input, model.layers[-1].input) when the softmax is its own "
            "layer, or rebuild with activation=None), or pass allow_probabilities=True.")

"""How well a purifier defends a classifier: accuracy, image quality and speed, saved as JSON.

For each attack we report the classifier's accuracy on clean, attacked and purified images,
and how far attacked / purified images are from the clean ones (PSNR, SSIM, MAE). Two more
numbers keep a defence honest: the accuracy on *clean* images passed through the purifier (a
purifier must not hurt normal use) and the milliseconds per image it costs (batched, after a
warm-up call, median of a few repeats).

>>> result = evaluate_purifier(model, purifier, x, y, {"fgsm": x_fgsm, "pgd": x_pgd})  # doctest: +SKIP
>>> save_evaluation(result, "mnist_eval", folder=run_dir)                             # doctest: +SKIP
"""
from __future__ import annotations

import math
import time

import numpy as np

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; capped so that means stay finite


def _pair(a, b):
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"image arrays differ in shape: {a.shape} vs {b.shape}.")
    if a.ndim != 4:
        raise ValueError(f"expected NHWC image batches, got shape {a.shape}.")
    return a, b


def mae(x, y) -> np.ndarray:
    """Mean absolute error per image."""
    x, y = _pair(x, y)
    return np.abs(x - y).reshape(len(x), -1).mean(1)


def psnr(x, y, max_val: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio per image in dB (capped at ``PSNR_CAP_DB``)."""
    x, y = _pair(x, y)
    mse = np.square(x.astype(np.float64) - y).reshape(len(x), -1).mean(1)
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(max_val ** 2 / mse)
    return np.minimum(value, PSNR_CAP_DB)


def error_by_tone(x, x_pur, dark: float = 0.05, bright: float = 0.95) -> dict:
    """Where a restoration's squared error lies, by the tone of the *clean* pixel: ``dark``
    (``x <= dark``, e.g. MNIST's background), ``bright`` (``x >= bright``) and ``mid`` (the rest:
    stroke edges and textures). For each tone: its share of the pixels, its share of the summed
    squared error, and ``psnr_without_<tone>``, the mean PSNR had those pixels been restored
    exactly, which bounds what fixing that tone alone could gain.

    Pixel and error shares are pooled over the batch (for RGB, over channel values); with no
    error at all every share is 0. ``psnr_without_<tone>`` is a mean of per-image PSNRs capped at
    ``PSNR_CAP_DB``, so an image whose whole error lies in that tone counts as the cap."""
    x, x_pur = _pair(x, x_pur)
    if not 0.0 <= dark < bright <= 1.0:
        raise ValueError(f"need 0 <= dark < bright <= 1, got dark={dark}, bright={bright}.")
    err = np.square(x_pur.astype(np.float64) - x)
    total = err.sum()
    out = {}
    for tone, mask in (("dark", x <= dark), ("mid", (x > dark) & (x < bright)), ("bright", x >= bright)):
        out[f"pixels_{tone}"] = float(mask.mean())
        out[f"mse_share_{tone}"] = float(err[mask].sum() / total) if total > 0 else 0.0
        out[f"psnr_without_{tone}"] = float(psnr(np.where(mask, x, x_pur), x).mean())
    return out


def ssim(x, y, max_val: float = 1.0, batch_size: int = 512) -> np.ndarray:
    """Structural similarity per image (``tf.image.ssim``, Gaussian window up to 11 px)."""
    import tensorflow as tf

    x, y = _pair(x, y)
    size = min(11, x.shape[1], x.shape[2])
    out = [tf.image.ssim(x[i:i + batch_size], y[i:i + batch_size], max_val, filter_size=size).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def ms_per_image(purifier, x, batch_size: int = 256, warmup: int = 1, repeats: int = 3) -> float:
    """Milliseconds per image to purify ``x`` in batches of ``batch_size``: one warm-up pass
    (graph tracing, memory allocation) is not timed; the median of ``repeats`` passes is."""
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise ValueError("need at least one image to time the purifier.")
    for _ in range(warmup):
        purifier(x[:batch_size], batch_size=batch_size)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        purifier(x, batch_size=batch_size)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) / len(x) * 1000.0)


def _quality(prefix: str, a, b) -> dict:
    return {f"psnr_{prefix}": float(np.mean(psnr(a, b))), f"ssim_{prefix}": float(np.mean(ssim(a, b))),
            f"mae_{prefix}": float(np.mean(mae(a, b)))}


def evaluate_purifier(model, purifier, x, y, x_adv_by_attack: dict, *, batch_size: int = 256,
                      timing: bool = True, train_info: dict | None = None, name: str | None = None,
                      per_image: dict | None = None) -> dict:
    """Evaluate ``purifier`` in front of ``model`` on clean ``x, y`` and each attack's images.

    ``x_adv_by_attack`` maps an attack name to ``x_adv`` (aligned with ``x``) or to a tuple
    ``(x_adv, x_clean, y)`` for attacks evaluated on a subset (e.g. C&W on 1,000 images).
    Accuracies are fractions in [0, 1]. ``train_info`` (e.g. ``purifier.info``) adds training
    time and epochs to the result. ``per_image``, a dict, receives each set's per-image
    correctness through the purifier (``"clean"`` and the attacks: boolean arrays), which
    :func:`compare_purifiers` takes as ``known`` instead of purifying again.
    """
    from advlab.classifiers import predict_labels

    x, _ = _pair(x, x)
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
    if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
        raise ValueError("x must hold finite images in [0, 1].")
    correct = lambda images, labels: predict_labels(model, images, batch_size) == labels  # noqa: E731
    acc = lambda images, labels: float(np.mean(correct(images, labels)))  # noqa: E731
    per_image = {} if per_image is None else per_image

    x_pur = purifier(x, batch_size=batch_size)
    per_image["clean"] = correct(x_pur, y)
    result = {"purifier": name or getattr(purifier, "name", "purifier"), "n": int(len(x)),
              "clean_accuracy": acc(x, y), "clean_through_purifier": float(np.mean(per_image["clean"])),
              **_quality("clean_through_purifier", x_pur, x), "attacks": {}}
    for attack, value in x_adv_by_attack.items():
        x_adv, x_ref, y_ref = value if isinstance(value, tuple) else (value, x, y)
        x_adv, x_ref = _pair(x_adv, x_ref)
        if not np.all(np.isfinite(x_adv)) or x_adv.min() < 0 or x_adv.max() > 1:
            raise ValueError(f"x_adv of {attack!r} must hold finite images in [0, 1].")
        y_ref = np.asarray(y_ref).reshape(-1)
        x_pur = purifier(x_adv, batch_size=batch_size)
        per_image[attack] = correct(x_pur, y_ref)
        result["attacks"][attack] = {
            "n": int(len(x_adv)), "clean_accuracy": acc(x_ref, y_ref),
            "attacked_accuracy": acc(x_adv, y_ref), "purified_accuracy": float(np.mean(per_image[attack])),
            **_quality("attacked", x_adv, x_ref), **_quality("purified", x_pur, x_ref)}
    if timing:
        result["ms_per_image"] = ms_per_image(purifier, x[:max(batch_size, 1)], batch_size=batch_size)
        result["timing_batch_size"] = int(min(batch_size, len(x)))
    if train_info:
        result["train_time_s"] = train_info.get("train_time_s")
        result["train_epochs"] = train_info.get("epochs")
    return result


def mcnemar(correct_a, correct_b) -> dict:
    """Two defences' per-image results on the same images (boolean arrays): both accuracies, the
    images only one of them gets right, and the exact two-sided McNemar p-value (binomial on those
    discordant images). Paired, it resolves differences that two 95 % intervals cannot."""
    a, b = (np.asarray(c, bool).reshape(-1) for c in (correct_a, correct_b))
    if len(a) != len(b) or not len(a):
        raise ValueError(f"need two non-empty results on the same images, got {len(a)} and {len(b)}.")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    k, m = min(only_a, only_b), only_a + only_b
    p = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m) if m else 1.0
    return {"n": int(len(a)), "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
            "difference": float(a.mean() - b.mean()), "only_a": only_a, "only_b": only_b, "mcnemar_p": p}


def compare_purifiers(model, purifier_a, purifier_b, x, y, x_adv_by_attack: dict, *, batch_size: int = 256,
                      known: dict | None = None) -> dict:
    """Two purifiers in front of one ``model``, image by image on the same clean and attacked
    images (``x_adv_by_attack`` as in :func:`evaluate_purifier`): ``{"clean": mcnemar(...),
    attack: mcnemar(...), ...}`` with ``a`` = ``purifier_a``. The attacks' threat model is theirs
    (gray-box when they were crafted on ``model`` alone). ``known``: ``purifier_b``'s per-image
    correctness from :func:`evaluate_purifier` (its ``per_image``), so only ``a`` runs."""
    from advlab.classifiers import predict_labels

    def correct(purifier, images, labels):
        return predict_labels(model, purifier(images, batch_size=batch_size), batch_size) == labels

    y = np.asarray(y).reshape(-1)
    sets = {"clean": (x, y), **{a: (v[0], v[2]) if isinstance(v, tuple) else (v, y) for a, v in x_adv_by_attack.items()}}
    out = {}
    for name, (images, labels) in sets.items():
        images, _ = _pair(images, images)
        labels = np.asarray(labels).reshape(-1)
        b = known[name] if known is not None and name in known else correct(purifier_b, images, labels)
        if len(b) != len(labels):
            raise ValueError(f"known[{name!r}] has {len(b)} results for {len(labels)} images.")
        out[name] = mcnemar(correct(purifier_a, images, labels), b)
    return out


def rows(result: dict) -> list[dict]:
    """The result as table rows: one for clean images, one per attack (accuracies in %)."""
    pct = lambda v: None if v is None else round(100.0 * v, 2)  # noqa: E731
    out = [{"images": "clean", "n": result["n"], "no_defence_%": pct(result["clean_accuracy"]),
            "purified_%": pct(result["clean_through_purifier"]),
            "psnr_purified": round(result["psnr_clean_through_purifier"], 2)}]
    for attack, r in result["attacks"].items():
        out.append({"images": attack, "n": r["n"], "no_defence_%": pct(r["attacked_accuracy"]),
                    "purified_%": pct(r["purified_accuracy"]), "psnr_attacked": round(r["psnr_attacked"], 2),
                    "psnr_purified": round(r["psnr_purified"], 2), "ssim_purified": round(r["ssim_purified"], 3),
                    "mae_purified": round(r["mae_purified"], 4)})
    return out


def save_evaluation(result: dict, name: str, folder=None, config=None) -> dict:
    """Save ``result`` as ``name.json`` and its :func:`rows` as ``name.csv``; returns both paths.
    ``config``: the run's config, whose digest goes into the JSON's provenance block."""
    from advlab.io.results import save_csv, save_json

    return {"json": save_json(result, name, folder, config=config), "csv": save_csv(rows(result), name, folder)}

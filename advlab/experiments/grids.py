"""Before/after pictures of a defence: what the attack changed and what the purifier restored.

* :func:`before_after_grid`: one row per image, columns
  clean | attacked | perturbation x10 | purified | \\|purified - clean\\|, with the classifier's
  predicted label under each image (red when wrong) and the PSNR to the clean image;
* :func:`restoration_quality`: mean PSNR and MAE of attacked vs restored images per attack
  (the residual-cGAN paper's Fig. 4), and :func:`quality_bars` to plot them;
* :func:`save_before_after_grids`: one grid PNG per attack in figures/.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

COLUMNS = ("clean", "attacked", "perturbation x10", "purified", "|purified - clean|")


def psnr_per_image(a, b) -> np.ndarray:
    """PSNR in dB of each image pair (:func:`advlab.evaluation.psnr`, capped at 100 dB)."""
    from advlab.evaluation import psnr

    return psnr(a, b)


def mae_per_image(a, b) -> np.ndarray:
    """Mean absolute error of each image pair (:func:`advlab.evaluation.mae`)."""
    from advlab.evaluation import mae

    return mae(a, b)


def _label(k, class_names):
    k = int(k)
    return str(class_names[k]) if class_names is not None and k < len(class_names) else str(k)


def before_after_grid(x, x_adv, x_pur, y, pred_clean, pred_adv, pred_pur, *, n: int = 5,
                      class_names: Sequence[str] | None = None, amplify: float = 10.0,
                      title: str | None = None, cell: float = 1.6):
    """The five-column before/after figure for the first ``n`` images (returns the figure)."""
    import matplotlib.pyplot as plt

    from advlab.viz import _show

    x, x_adv, x_pur = (np.asarray(v, np.float32) for v in (x, x_adv, x_pur))
    if not (x.shape == x_adv.shape == x_pur.shape):
        raise ValueError(f"x, x_adv, x_pur must share a shape: {x.shape}, {x_adv.shape}, {x_pur.shape}")
    n = min(int(n), len(x))
    if n < 1:
        raise ValueError("need at least one image")
    y = np.asarray(y)
    psnr_adv, psnr_pur = psnr_per_image(x[:n], x_adv[:n]), psnr_per_image(x[:n], x_pur[:n])
    fig, axes = plt.subplots(n, len(COLUMNS), figsize=(cell * len(COLUMNS), cell * n + 0.5), squeeze=False)
    for i in range(n):
        delta = x_adv[i] - x[i]
        diff = np.abs(x_pur[i] - x[i])
        tiles = (
            (x[i], {}, f"pred {_label(pred_clean[i], class_names)}", pred_clean[i] == y[i]),
            (x_adv[i], {}, f"pred {_label(pred_adv[i], class_names)} · {psnr_adv[i]:.1f} dB", pred_adv[i] == y[i]),
            (np.clip(0.5 + amplify * delta, 0, 1), {}, f"L∞ {np.abs(delta).max():.3f}", None),
            (x_pur[i], {}, f"pred {_label(pred_pur[i], class_names)} · {psnr_pur[i]:.1f} dB", pred_pur[i] == y[i]),
            (diff.mean(axis=-1) if diff.shape[-1] > 1 else diff, {"cmap": "magma", "vmax": max(float(diff.max()), 1e-3)},
             f"MAE {diff.mean():.3f}", None),
        )
        for j, (img, kw, caption, correct) in enumerate(tiles):
            ax = axes[i, j]
            _show(ax, img, **kw)
            ax.set_xlabel(caption, fontsize=7, color="black" if correct is None or correct else "crimson")
            if i == 0:
                ax.set_title(COLUMNS[j] if j != 2 else f"perturbation x{amplify:g}", fontsize=9)
        axes[i, 0].set_ylabel(f"true {_label(y[i], class_names)}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _predict(predict_fn, classifier, x):
    if predict_fn is not None:
        return np.asarray(predict_fn(classifier, x))
    from advlab import classifiers

    return np.asarray(classifiers.predict_labels(classifier, x))


def save_before_after_grids(classifier, purifier: Callable, x, y, x_adv_by_attack: Mapping[str, np.ndarray], *,
                            n: int = 5, prefix: str = "grid", class_names: Sequence[str] | None = None,
                            predict_fn: Callable | None = None, folder: str | Path | None = None,
                            close: bool = True) -> dict[str, Path]:
    """One before/after grid per attack, saved as ``<prefix>_<attack>.png``; returns the paths.

    ``predict_fn(classifier, x) -> labels`` defaults to :func:`advlab.classifiers.predict_labels`.
    """
    import matplotlib.pyplot as plt

    from advlab.viz import savefig

    x, y = np.asarray(x)[:n], np.asarray(y)[:n]
    pred_clean = _predict(predict_fn, classifier, x)
    paths = {}
    for attack, x_adv in x_adv_by_attack.items():
        x_adv = np.asarray(x_adv)[:n]
        x_pur = np.asarray(purifier(x_adv))
        fig = before_after_grid(x, x_adv, x_pur, y, pred_clean, _predict(predict_fn, classifier, x_adv),
                                _predict(predict_fn, classifier, x_pur), n=n, class_names=class_names,
                                title=f"{attack}: before / after purification")
        paths[attack] = savefig(fig, f"{prefix}_{attack}", folder)
        if close:
            plt.close(fig)
    return paths


def restoration_quality(x, x_adv_by_attack: Mapping[str, np.ndarray], purifier: Callable) -> list[dict]:
    """Mean PSNR (dB) and MAE of attacked and of restored images vs the clean ones, per attack,
    and where the restored images' error lies: ``mse_share_mid`` (the share of squared error on
    mid-tone clean pixels, i.e. edges and textures) and ``psnr_without_mid`` (the PSNR had those
    pixels been restored exactly; :func:`advlab.evaluation.error_by_tone`)."""
    from advlab.evaluation import error_by_tone

    x = np.asarray(x)
    rows = []
    for attack, x_adv in x_adv_by_attack.items():
        x_adv = np.asarray(x_adv)
        x_pur = np.asarray(purifier(x_adv))
        rows.append({"attack": attack,
                     "psnr_attacked": float(psnr_per_image(x, x_adv).mean()),
                     "psnr_restored": float(psnr_per_image(x, x_pur).mean()),
                     "mae_attacked": float(mae_per_image(x, x_adv).mean()),
                     "mae_restored": float(mae_per_image(x, x_pur).mean())})
        tones = error_by_tone(x, x_pur)
        rows[-1].update({k: tones[k] for k in ("pixels_mid", "mse_share_mid", "psnr_without_mid")})
    return rows


def quality_bars(rows: Sequence[Mapping], title: str = ""):
    """Grouped bars per attack: PSNR (left) and MAE (right), attacked vs restored."""
    import matplotlib.pyplot as plt

    names = [r["attack"] for r in rows]
    pos = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.3 * len(names) + 4), 3.4))
    for ax, metric, unit in ((axes[0], "psnr", "PSNR (dB), higher = closer"), (axes[1], "mae", "MAE, lower = closer")):
        ax.bar(pos - 0.2, [r[f"{metric}_attacked"] for r in rows], 0.4, label="attacked", color="tab:red")
        ax.bar(pos + 0.2, [r[f"{metric}_restored"] for r in rows], 0.4, label="restored", color="tab:green")
        ax.set_xticks(pos, names, rotation=30, ha="right")
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

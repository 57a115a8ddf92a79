"""Residual-block ablation (the residual-cGAN paper's Table V, Fig. 6-7).

How many residual blocks does the generator need? For each count the purifier is trained
with the same data and epochs; we record its final L1, perceptual and adversarial (generator)
losses, seconds per epoch, parameter count and defended accuracy per attack. The paper finds
7 blocks the knee: gains taper after it while training time keeps rising; 0 blocks (a plain
U-Net-like encoder-decoder) loses a few points.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from advlab.experiments.runstate import Checkpoint, default_accuracy_fn, progress_bar

PAPER_BLOCKS = (0, 1, 3, 5, 7, 9, 11, 13, 15)
STAT_KEYS = ("l1", "perceptual", "gen_loss", "seconds_per_epoch")


def _n_params(purifier) -> int | None:
    model = getattr(purifier, "model", None)
    return int(model.count_params()) if model is not None and hasattr(model, "count_params") else None


def residual_block_ablation(train_fn: Callable[..., tuple], classifier, x_test, y_test,
                            x_adv_by_attack: Mapping[str, np.ndarray], *,
                            blocks: Sequence[int] = PAPER_BLOCKS, seeds: Sequence[int] | None = None,
                            accuracy_fn: Callable | None = None,
                            checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Train one purifier per block count (per seed, when ``seeds`` is given) and measure it.

    ``train_fn(blocks) -> (purifier, stats)`` (with ``seeds``: ``train_fn(blocks, seed)``) where
    ``stats`` holds the final-epoch ``l1``, ``perceptual``, ``gen_loss`` and
    ``seconds_per_epoch`` (missing keys are recorded as None). ``x_adv_by_attack`` maps attack
    names to attacked versions of ``x_test``. Returns one row per block count (and seed: a
    ``seed`` column; :func:`seed_summary` gives mean and spread per count): the stats,
    ``n_params``, ``clean`` and one accuracy column per attack, and ``mean_attacked``.
    """
    blocks = [int(b) for b in blocks]
    if not blocks or any(b < 0 for b in blocks) or len(set(blocks)) != len(blocks):
        raise ValueError(f"blocks must be distinct non-negative integers, got {blocks}")
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct integers (at least one), got {seeds}")
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    for name, xa in x_adv_by_attack.items():
        if np.shape(xa) != x_test.shape:
            raise ValueError(f"x_adv_by_attack[{name!r}] has shape {np.shape(xa)}, expected {x_test.shape}")
    accuracy_fn = accuracy_fn or default_accuracy_fn
    attacks = list(x_adv_by_attack)
    runs = [(b, None) for b in blocks] if seeds is None else [(b, s) for b in blocks for s in seeds]
    state = Checkpoint(checkpoint, {"kind": "ablation", "blocks": blocks, "attacks": attacks,
                                    "n": int(len(x_test)), **({"seeds": seeds} if seeds is not None else {})})
    bar = progress_bar(len(runs), "ablation", progress)
    for b, seed in runs:
        key = (b,) if seed is None else (b, seed)
        if not state.has(*key):
            purifier, stats = train_fn(b) if seed is None else train_fn(b, seed)
            row = {"blocks": b, **({} if seed is None else {"seed": seed}),
                   **{k: (None if stats.get(k) is None else float(stats[k])) for k in STAT_KEYS},
                   "n_params": _n_params(purifier),
                   "clean": float(accuracy_fn(classifier, np.asarray(purifier(x_test)), y_test))}
            for a in attacks:
                row[a] = float(accuracy_fn(classifier, np.asarray(purifier(np.asarray(x_adv_by_attack[a]))), y_test))
            row["mean_attacked"] = float(np.mean([row[a] for a in attacks])) if attacks else None
            state.put(*key, row)
        bar.update(1)
    bar.close()
    return [state.get(*((b,) if seed is None else (b, seed))) for b, seed in runs]


def seed_summary(rows: Sequence[Mapping]) -> list[dict]:
    """One row per block count from the per-seed rows of :func:`residual_block_ablation`: for
    each measured column its mean, sample standard deviation (0 with one seed), min and max,
    and ``n_seeds``; ``n_params`` as it is (it does not depend on the seed)."""
    by_blocks: dict[int, list] = {}
    for r in rows:
        by_blocks.setdefault(int(r["blocks"]), []).append(r)
    skip = {"blocks", "seed", "n_params"}
    out = []
    for b in sorted(by_blocks):
        group = by_blocks[b]
        row = {"blocks": b, "n_seeds": len(group), "seeds": [g.get("seed") for g in group],
               "n_params": group[0].get("n_params")}
        for col in [k for k in group[0] if k not in skip]:
            vals = [g[col] for g in group if g.get(col) is not None]
            if not vals:
                row[col] = None
                continue
            arr = np.asarray(vals, float)
            row.update({col: float(arr.mean()), f"{col}_std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                        f"{col}_min": float(arr.min()), f"{col}_max": float(arr.max())})
        out.append(row)
    return out


def plot_ablation(rows: Sequence[Mapping], title: str = ""):
    """Three panels vs block count: losses, seconds per epoch, defended accuracy per attack."""
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["blocks"])
    b = [r["blocks"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    for key, style in (("l1", "-o"), ("perceptual", "-s"), ("gen_loss", "-^")):
        vals = [r.get(key) for r in rows]
        if any(v is not None for v in vals):
            ax.plot(b, [np.nan if v is None else v for v in vals], style, label=key, markersize=4)
    ax.set(xlabel="residual blocks", ylabel="final-epoch loss", title="losses")
    ax.legend(fontsize=8)
    axes[1].plot(b, [np.nan if r.get("seconds_per_epoch") is None else r["seconds_per_epoch"] for r in rows], "-o")
    axes[1].set(xlabel="residual blocks", ylabel="seconds per epoch", title="training time")
    ax = axes[2]
    skip = {"blocks", "n_params", "mean_attacked", "n_seeds", "seeds", "seed", *STAT_KEYS}
    seeds = rows[0].get("n_seeds", 1)
    for key in [k for k in rows[0] if k not in skip and not k.endswith(("_std", "_min", "_max"))]:
        spread = [100 * r.get(f"{key}_std", 0.0) for r in rows]
        ax.errorbar(b, [100 * r[key] for r in rows], yerr=spread if any(spread) else None, fmt="-o", label=key,
                    markersize=4, capsize=3)
    ax.set(xlabel="residual blocks", ylabel="accuracy (%)",
           title="defended accuracy" + (f" (mean +- sd of {seeds} seeds)" if seeds > 1 else ""))
    ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xticks(b)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

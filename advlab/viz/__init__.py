"""Figures: image grids, heatmaps and curves. Every figure is saved through :func:`savefig`."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from advlab.io.results import output_path


def savefig(fig, name: str, folder: str | Path | None = None, dpi: int = 120) -> Path:
    """The one way the lab saves a figure: PNG into ``figures/`` (or ``folder``). Returns the path."""
    path = output_path(name, ".png", folder)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _show(ax, img, vmin=0.0, vmax=1.0, cmap=None):
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    ax.imshow(img, cmap=cmap or ("gray" if img.ndim == 2 else None), vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(columns: Mapping[str, np.ndarray], captions: Mapping[str, Sequence[str]] | None = None,
               n: int | None = None, title: str | None = None, cell: float = 1.4,
               diverging: Sequence[str] = ()):
    """Rows = images, columns = named versions (e.g. clean | adversarial | purified).

    ``columns`` maps a column title to an array of N images (NHWC). ``captions`` maps a column
    title to N strings printed under each tile. Columns named in ``diverging`` hold signed
    values (perturbations) and are drawn centred on grey.
    """
    names = list(columns)
    n_rows = min(len(v) for v in columns.values()) if n is None else n
    fig, axes = plt.subplots(n_rows, len(names), figsize=(cell * len(names), cell * n_rows + 0.4),
                             squeeze=False)
    for j, col in enumerate(names):
        for i in range(n_rows):
            ax = axes[i, j]
            img = np.asarray(columns[col][i])
            if col in diverging:
                img = np.clip(0.5 + img, 0, 1)
            _show(ax, img)
            if i == 0:
                ax.set_title(col, fontsize=9)
            if captions and col in captions:
                ax.set_xlabel(captions[col][i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def labelled_grid(x: np.ndarray, labels: Sequence[str], n_cols: int = 10, title: str | None = None,
                  cell: float = 1.2):
    """A simple grid of images with one label each (dataset previews)."""
    n = len(x)
    n_rows = int(np.ceil(n / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows + 0.3), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < n:
            _show(ax, x[k])
            ax.set_title(str(labels[k]), fontsize=8)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def heatmap(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str],
            title: str = "", fmt: str = "{:.1f}", cmap: str = "viridis", ax=None, center=None):
    """An annotated matrix (e.g. the generalizability matrix)."""
    values = np.asarray(values, dtype=float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.9 * len(col_labels) + 2, 0.6 * len(row_labels) + 1.5))
    else:
        fig = ax.figure
    kwargs = {}
    if center is not None:
        span = np.nanmax(np.abs(values - center)) or 1.0
        kwargs = {"vmin": center - span, "vmax": center + span}
    im = ax.imshow(values, cmap=cmap, aspect="auto", **kwargs)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                r, g, b, _ = im.cmap(im.norm(values[i, j]))      # text readable on the cell's colour
                ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def line_plot(x: Sequence, series: Mapping[str, Sequence[float]], xlabel: str, ylabel: str,
              title: str = "", ax=None, styles: Mapping[str, str] | None = None):
    """One line per named series (e.g. accuracy vs iterations, one line per eps)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    for name, ys in series.items():
        ax.plot(x, ys, (styles or {}).get(name, "-o"), label=name, markersize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

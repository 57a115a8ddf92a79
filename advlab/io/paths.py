"""Where the lab writes: figures/results, caches and run folders. Never the current directory.

* Figures and their JSON/CSV tables go to ``figures/`` at the repository root when advlab runs
  from a checkout, else ``~/advlab/figures``. Override with ``ADVLAB_FIGURES_DIR``.
* Trained classifiers and adversarial sets are cached in ``.cache/`` at the repository root
  (or ``~/.cache/advlab``). Override with ``ADVLAB_CACHE_DIR``. Entries are named and written
  by :mod:`advlab.io.cache` (their lock files in ``.cache/locks``).
"""
from __future__ import annotations

import os
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parents[1]  # advlab/


def repo_root() -> Path | None:
    """The checkout holding this package, or ``None`` when advlab is installed elsewhere."""
    root = _PKG_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def _dir(env: str, in_repo: str, fallback: Path) -> Path:
    if os.environ.get(env):
        path = Path(os.environ[env]).expanduser()
    else:
        root = repo_root()
        path = root / in_repo if root is not None else fallback
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    """Folder for figures and the JSON/CSV tables beside them (created on demand)."""
    return _dir("ADVLAB_FIGURES_DIR", "figures", Path.home() / "advlab" / "figures")


def cache_dir(*parts: str) -> Path:
    """Folder for cached models and adversarial sets (created on demand)."""
    path = _dir("ADVLAB_CACHE_DIR", ".cache", Path.home() / ".cache" / "advlab").joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path

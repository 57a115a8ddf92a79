"""advlab: a TensorFlow lab for adversarial attacks and image-to-image purification defences.

Importing the package is cheap: it reads no files and does not import TensorFlow.
Submodules are imported on first attribute access (``advlab.io.data``, ``advlab.attacks`` ...).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "config", "io", "classifiers", "attacks", "purifiers", "training", "evaluation",
    "experiments", "viz", "cli",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"advlab.{name}")
    raise AttributeError(f"module 'advlab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))

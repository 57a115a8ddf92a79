"""One helper that seeds every random number generator the lab uses, and the determinism switch.

Same seed, same machine, same library versions: the attacks' adversarial sets are bitwise
equal and a training run gives the same numbers (tests/test_determinism.py). TensorFlow may
still pick kernels whose floating-point sums run in a varying order (GPU convolutions,
multi-threaded reductions); ``deterministic=True`` or ``ADVLAB_DETERMINISTIC=1`` asks it for
deterministic kernels only (slower; ops without one then raise an error instead of differing).
"""
from __future__ import annotations

import os
import random

import numpy as np

DETERMINISTIC_ENV = "ADVLAB_DETERMINISTIC"


def deterministic_requested() -> bool:
    """Whether ``$ADVLAB_DETERMINISTIC`` asks for deterministic TensorFlow ops (1/true/yes/on)."""
    value = os.environ.get(DETERMINISTIC_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"${DETERMINISTIC_ENV}={os.environ[DETERMINISTIC_ENV]!r} is not a switch; "
                     f"use 1 (on) or 0 (off).")


def set_seed(seed: int = 0, deterministic: bool | None = None) -> None:
    """Seed Python, NumPy, TensorFlow and Keras with ``seed``.

    ``deterministic=True`` also turns on TensorFlow's op determinism
    (``tf.config.experimental.enable_op_determinism()``, for the rest of the process);
    ``None`` (default) follows ``$ADVLAB_DETERMINISTIC``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}.")
    random.seed(int(seed))
    np.random.seed(int(seed))
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.random.set_seed(int(seed))
    if deterministic is None:
        deterministic = deterministic_requested()
    if deterministic:
        tf.config.experimental.enable_op_determinism()

"""One helper that seeds every random number generator the lab uses."""
from __future__ import annotations

import random

import numpy as np


def set_seed(seed: int = 0, deterministic_ops: bool = False) -> None:
    """Seed Python, NumPy, TensorFlow and Keras.

    ``deterministic_ops=True`` also asks TensorFlow for deterministic kernels (slower; useful
    when comparing runs bit for bit).
    """
    random.seed(seed)
    np.random.seed(seed)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()

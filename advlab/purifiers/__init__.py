"""Purifiers: every defence is a map x -> x_pur on images in [0, 1] with one common interface.

A purifier is any object with

* ``__call__(x) -> x_pur``: NHWC float images in [0, 1] in, same shape and range out. Accepts
  numpy arrays (returns numpy) or tensors (returns tensors, differentiable where possible);
* ``name``: a short label used in tables;
* ``differentiable``: whether gradients flow through ``__call__`` (False for JPEG, median ...;
  attacks then need BPDA);
* ``stochastic``: whether two calls on the same input differ (attacks then need EOT).

A trained purifier also carries what its training left (declared on :class:`Purifier`, empty
for one that was never trained here): ``history`` (one dict per epoch), ``info`` (the run's
``train_info.json``: seconds, epochs, config, folder), ``train_seconds``, ``trainer`` (the
Keras trainer, for more epochs; ``None`` once dropped) and ``source`` (the folder it was loaded
from).

:class:`KerasPurifier` wraps a trained image-to-image Keras model (the residual cGAN's
generator, the autoencoder); :class:`Identity` is "no defence".
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np


class Purifier:
    """Base class: subclasses implement :meth:`purify_tensor` (TF) or override ``__call__``."""

    name: str = "purifier"
    differentiable: bool = True
    stochastic: bool = False
    # what training leaves (set by the trainer or loader on the instance; read-only defaults)
    history: Sequence[dict] = ()
    info: Mapping = MappingProxyType({})
    train_seconds: float | None = None
    trainer: object = None
    source: str | None = None

    def purify_tensor(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x, batch_size: int = 256):
        import tensorflow as tf

        if isinstance(x, np.ndarray):
            from advlab.evaluation.transforms import check_images

            x = check_images(x)
            out = [np.asarray(self.purify_tensor(tf.convert_to_tensor(x[i:i + batch_size], tf.float32)))
                   for i in range(0, len(x), batch_size)]
            return np.concatenate(out).astype(np.float32) if out else x.astype(np.float32)
        return self.purify_tensor(x)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class Identity(Purifier):
    """No defence: returns its input."""

    name = "none"

    def purify_tensor(self, x):
        return x


class KerasPurifier(Purifier):
    """Wraps a Keras image-to-image model whose input and output are images in [0, 1]."""

    def __init__(self, model, name: str | None = None, stochastic: bool = False, jit_compile: bool = False):
        self.model = model
        self.name = name or model.name
        self.stochastic = stochastic
        self.jit_compile = bool(jit_compile)     # XLA for inference (benchmarks/purify_latency.py measures it)
        self._fn = None

    def purify_tensor(self, x):
        import tensorflow as tf

        if self._fn is None:
            model = self.model
            # one graph for every batch size (a fixed signature, the clip inside): a call costs
            # one dispatch, which is what batch-1 latency (the widgets) is made of
            spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
            self._fn = tf.function(lambda t: tf.clip_by_value(model(t, training=False), 0.0, 1.0),
                                   input_signature=[spec], jit_compile=self.jit_compile)
            # one trace per purifier is the design; TF counts the traces of every purifier's
            # function together (same code) and would warn of retracing after five purifiers
            self._fn._omit_frequent_tracing_warning = True
        if x.dtype != tf.float32:
            x = tf.cast(x, tf.float32)
        return self._fn(x)

    def differentiable_call(self, x):
        """The purifier as a differentiable TF op (for end-to-end attacks)."""
        import tensorflow as tf

        return tf.clip_by_value(self.model(x, training=False), 0.0, 1.0)

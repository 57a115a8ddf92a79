"""Inference-time export of a trained image-to-image model: batch norm folded into convolutions.

At inference a batch-norm layer is a fixed per-channel affine map, ``gamma * (z - mean) /
sqrt(var + eps) + beta``; when ``z`` is a convolution's output it can be absorbed into that
convolution's kernel and bias, which removes one pass over every feature map and one op per
layer. :func:`fold_batchnorm` returns a copy of the model with every such pair folded (the
same outputs in inference mode, up to float round-off); the model given is not changed.
A folded model is for inference and attacks (its gradients are exact); train the original.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

CONVS = (layers.Conv2D, layers.Conv2DTranspose)


@keras.saving.register_keras_serializable(package="advlab")
class FoldedBatchNorm(layers.Layer):
    """Where a batch norm was before it was folded into the convolution before it: the identity
    (it takes batch norm's call arguments, so the model's graph is unchanged)."""

    def call(self, inputs, training=None, mask=None):
        return inputs


def _foldable(model: keras.Model) -> dict:
    """``{conv name: BN layer}`` for each batch norm whose input is a convolution's output that
    nothing else reads."""
    readers = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for parent in node.parent_nodes:
                readers.setdefault(parent.operation.name, []).append(layer)
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        parents = layer._inbound_nodes[0].parent_nodes
        if len(parents) != 1 or not isinstance(parents[0].operation, CONVS):
            continue
        conv = parents[0].operation
        if len(readers.get(conv.name, [])) == 1 and layer.axis in (-1, [-1], [3], 3):
            pairs[conv.name] = layer
    return pairs


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """Kernel and bias of ``conv`` followed by ``bn`` (inference mode) as one convolution."""
    kernel = np.asarray(conv.kernel)
    bias = np.asarray(conv.bias) if conv.use_bias else np.zeros(conv.filters, kernel.dtype)
    gamma = np.asarray(bn.gamma) if bn.scale else np.ones(conv.filters, kernel.dtype)
    beta = np.asarray(bn.beta) if bn.center else np.zeros(conv.filters, kernel.dtype)
    scale = gamma / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    # the output channel is the kernel's last axis for Conv2D, the third for Conv2DTranspose
    shape = (1, 1, conv.filters, 1) if isinstance(conv, layers.Conv2DTranspose) else (1, 1, 1, conv.filters)
    return [kernel * scale.reshape(shape), (bias - np.asarray(bn.moving_mean)) * scale + beta]


def fold_batchnorm(model: keras.Model, name: str | None = None) -> keras.Model:
    """A copy of ``model`` with each convolution -> batch norm pair folded into one convolution
    (the batch norm becomes a :class:`FoldedBatchNorm`, the identity). Inference outputs match ``model(x, training=False)``."""
    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential):
        raise TypeError(f"fold_batchnorm needs a functional Keras model (as the lab's builders make), "
                        f"got {type(model).__name__}.")
    pairs = _foldable(model)
    folded_bns = {bn.name for bn in pairs.values()}

    def clone(layer):
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        if layer.name in folded_bns:
            return FoldedBatchNorm(name=layer.name)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        if not layer.weights:                      # inputs, activations, the folded batch norms
            continue
        old = model.get_layer(layer.name)
        layer.set_weights(_folded_weights(old, pairs[layer.name]) if layer.name in pairs else old.get_weights())
    one = len(copy.inputs) == 1 and len(copy.outputs) == 1      # keep a single tensor's call structure
    return keras.Model(copy.input if one else copy.inputs, copy.output if one else copy.outputs,
                       name=name or f"{model.name}_folded")


def count_layers(model: keras.Model, kind=layers.BatchNormalization) -> int:
    """How many layers of ``kind`` ``model`` has (e.g. to check a fold left none)."""
    return sum(isinstance(layer, kind) for layer in model.layers)

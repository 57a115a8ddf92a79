"""Building blocks of the residual cGAN: the residual block and pix2pix down/up-sampling blocks.

All blocks are plain functions on Keras tensors (functional API), as in the TensorFlow pix2pix
tutorial, so the built models print readable summaries and save as ``.keras`` files.

Batch normalisation is ``synchronized=True``: with one device this is ordinary batch norm; under
a multi-device ``tf.distribute`` strategy the statistics are those of the global batch, so
training on N devices computes the same losses as on one device. Its momentum is 0.9 rather
than Keras' 0.99 so that the moving statistics used at inference are usable after a short
(smoke-scale) training run as well; long runs are insensitive to it.
"""
from __future__ import annotations

import keras
from keras import layers

_INIT_STD = 0.02  # pix2pix / DCGAN initialisation N(0, 0.02)


def _init():
    return keras.initializers.RandomNormal(0.0, _INIT_STD)


BN_MOMENTUM = 0.9  # moving statistics settle within ~50 steps (Keras' 0.99 needs ~500)


def _bn(name: str | None):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=True, name=name)


def residual_block(x, filters: int, name: str, alpha: float = 0.2):
    """``y = F(x, W) + x`` with ``F`` = conv3x3 -> BN -> LeakyReLU -> conv3x3 -> BN.

    The identity shortcut needs ``x`` to already have ``filters`` channels; spatial size is
    kept. Stacking ``n`` of these after a downsampling conv is what turns pix2pix's U-Net into
    the paper's residual U-Net (``n = 0`` gives back plain pix2pix).
    """
    h = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=_init(),
                      name=f"{name}_conv1")(x)
    h = _bn(f"{name}_bn1")(h)
    h = layers.LeakyReLU(alpha, name=f"{name}_act")(h)
    h = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=_init(),
                      name=f"{name}_conv2")(h)
    h = _bn(f"{name}_bn2")(h)
    return layers.Add(name=f"{name}_add")([x, h])


def residual_stack(x, filters: int, n: int, name: str):
    """``n`` residual blocks in a row (``n = 0`` returns ``x`` unchanged)."""
    for i in range(n):
        x = residual_block(x, filters, name=f"{name}_res{i}")
    return x


def downsample(x, filters: int, name: str, batchnorm: bool = True, strides: int = 2,
               padding: str = "same"):
    """pix2pix encoder block: conv 4x4 (stride 2) -> [BN] -> LeakyReLU(0.2)."""
    x = layers.Conv2D(filters, 4, strides=strides, padding=padding, use_bias=not batchnorm,
                      kernel_initializer=_init(), name=f"{name}_conv")(x)
    if batchnorm:
        x = _bn(f"{name}_bn")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def upsample(x, filters: int, name: str, dropout: float = 0.0):
    """pix2pix decoder block: transposed conv 4x4 (stride 2) -> BN -> [Dropout] -> ReLU."""
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                               kernel_initializer=_init(), name=f"{name}_deconv")(x)
    x = _bn(f"{name}_bn")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_act")(x)


def residual_block_model(input_shape=(8, 8, 16), name: str = "residual_block") -> keras.Model:
    """One residual block as its own small model (for showing and testing the block)."""
    inp = keras.Input(input_shape, name="x")
    return keras.Model(inp, residual_block(inp, input_shape[-1], name="block"), name=name)

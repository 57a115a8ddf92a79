"""The residual cGAN purifier (Zhang, Yao, Sakurai, Saitoh, arXiv 2504.01399).

A pix2pix conditional GAN translates an attacked image ``x`` back to its clean version ``y``:

* **Generator**: the pix2pix U-Net (encoder: conv 4x4 stride 2 + BN + LeakyReLU; decoder:
  transposed conv + BN + ReLU; skip connections), with ``residual_blocks`` residual blocks
  ``y = F(x) + x`` after each downsampling level of the encoder (paper: 7; 0 = plain pix2pix).
  The U-Net halves the side down to 1x1 (at most 8 times, as pix2pix at 256x256), so the side
  is padded up to a power of two inside the model (28 -> 32 for MNIST) and cropped back.
* **Discriminator**: a PatchGAN conditioned on ``x`` (it sees ``[x, y]`` stacked), every conv
  followed by ``residual_blocks`` residual blocks; it outputs a grid of real/fake logits, one
  per overlapping patch (30x30 for 256x256 inputs, 6x6 for 32x32, 5x5 for 28x28).

Choices the paper leaves open (all knobs of :class:`CGANConfig`, defined in :mod:`advlab.config`;
the sizes per budget are in :mod:`advlab.budgets`):

* Images are [0, 1] outside; inside, the generator works on [-1, 1] and ends in ``tanh`` as
  pix2pix does, mapped back by ``(t + 1) / 2``, so outputs are always valid images.
* Adam(2e-4, beta_1 = 0.5), the pix2pix/DCGAN setting, for both networks.
* Batch size 64 (pix2pix used 1 on 400 images; with 10^5 pairs a batch keeps CPU/GPU busy and
  BN statistics stable); decoder dropout 0.5 in the three innermost levels, as pix2pix.
"""
from __future__ import annotations

import math

import keras
from keras import layers

from advlab.config import SCHEDULES, CGANConfig  # noqa: F401  (public API: the purifier's config)
from advlab.purifiers import KerasPurifier
from advlab.purifiers.blocks import downsample, residual_stack, upsample
from advlab.training.pix2pix import Pix2PixTrainer  # noqa: F401  (public API)

MAX_DOWNSAMPLINGS = 8


def padded_side(input_shape) -> int:
    """Side the generator works at: the next power of two (28 -> 32); clear error if unsupported."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {shape}.")
    h, w, c = shape
    if h != w:
        raise ValueError(f"The residual cGAN needs square images, got {h}x{w}; resize or crop first.")
    if c not in (1, 3):
        raise ValueError(f"Images must have 1 or 3 channels, got {c}.")
    if h < 16:
        raise ValueError(f"Images of side {h} are too small (minimum 16).")
    side = 1 << (int(h) - 1).bit_length()
    if side - h > h // 4:
        raise ValueError(f"Side {h} would need padding to {side} (> 25% padding); resize the images "
                         f"to a power of two (e.g. 256 for ImageNet) or to 28 (padded to 32).")
    return side


def build_generator(input_shape, residual_blocks: int = 7, base_filters: int = 64,
                    max_filters: int = 512, dropout: float = 0.5, name: str | None = None) -> keras.Model:
    """Residual U-Net generator: images in [0, 1] -> images in [0, 1] of the same shape."""
    CGANConfig(residual_blocks=residual_blocks, base_filters=base_filters, max_filters=max_filters,
               dropout=dropout)                                    # checks the values
    side = padded_side(input_shape)
    h, _, channels = input_shape
    pad = side - h
    depth = min(MAX_DOWNSAMPLINGS, int(math.log2(side)))
    filters = [min(base_filters * 2 ** i, max_filters) for i in range(depth)]

    inp = keras.Input(input_shape, name="x")
    t = layers.Rescaling(2.0, offset=-1.0, name="to_tanh_range")(inp)
    if pad:
        t = layers.ZeroPadding2D(((pad // 2, pad - pad // 2),) * 2, name="pad")(t)
    skips = []
    for i, f in enumerate(filters):
        t = downsample(t, f, name=f"enc{i}", batchnorm=i > 0)
        t = residual_stack(t, f, residual_blocks, name=f"enc{i}")
        skips.append(t)
    for j, i in enumerate(reversed(range(depth - 1))):
        t = upsample(t, filters[i], name=f"dec{i}", dropout=dropout if j < 3 else 0.0)
        t = layers.Concatenate(name=f"skip{i}")([t, skips[i]])
    t = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="out_deconv",
                               kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02))(t)
    t = layers.Activation("tanh", dtype="float32", name="tanh")(t)
    if pad:
        t = layers.Cropping2D(((pad // 2, pad - pad // 2),) * 2, name="crop")(t)
    out = layers.Rescaling(0.5, offset=0.5, dtype="float32", name="to_unit_range")(t)
    return keras.Model(inp, out, name=name or f"residual_unet_r{residual_blocks}")


def build_discriminator(input_shape, residual_blocks: int = 7, base_filters: int = 64,
                        name: str | None = None) -> keras.Model:
    """Residual PatchGAN: ``[x, y]`` (condition, candidate; [0, 1]) -> patch logits (N, P, P, 1)."""
    CGANConfig(residual_blocks=residual_blocks, base_filters=base_filters,
               max_filters=max(base_filters, 512))                 # checks the values
    side = padded_side(input_shape)
    n_down = max(1, min(3, int(math.log2(side)) - 3))      # 3 for 256 (70x70 patches), 2 for 32
    x_in = keras.Input(input_shape, name="x")
    y_in = keras.Input(input_shape, name="y")
    t = layers.Concatenate(name="condition")([x_in, y_in])
    t = layers.Rescaling(2.0, offset=-1.0, name="to_tanh_range")(t)
    f = base_filters
    for i in range(n_down):
        f = base_filters * 2 ** i
        t = downsample(t, f, name=f"d{i}", batchnorm=i > 0)
        t = residual_stack(t, f, residual_blocks, name=f"d{i}")
    t = layers.ZeroPadding2D(name="pad1")(t)
    t = downsample(t, f * 2, name="d_last", strides=1, padding="valid")
    t = residual_stack(t, f * 2, residual_blocks, name="d_last")
    t = layers.ZeroPadding2D(name="pad2")(t)
    out = layers.Conv2D(1, 4, padding="valid", dtype="float32", name="patch_logits",
                        kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02))(t)
    return keras.Model([x_in, y_in], out, name=name or f"residual_patchgan_r{residual_blocks}")


def build_models(input_shape, config: CGANConfig):
    """Generator and discriminator for ``config`` (respects its mixed-precision policy)."""
    padded_side(input_shape)
    disc_blocks = config.residual_blocks if config.disc_residual_blocks is None else config.disc_residual_blocks
    previous = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        gen = build_generator(input_shape, config.residual_blocks, config.base_filters,
                              config.max_filters, config.dropout)
        disc = build_discriminator(input_shape, disc_blocks, config.disc_filters)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return gen, disc


def make_trainer(input_shape, config: CGANConfig, perceptual=None, jit_compile=False) -> Pix2PixTrainer:
    """Models + optimizers compiled into a :class:`Pix2PixTrainer` (call inside a strategy scope).

    ``jit_compile`` (XLA) is off by default: on CPU its compile time outweighs the gain for short runs.
    """
    gen, disc = build_models(input_shape, config)
    trainer = Pix2PixTrainer(gen, disc, perceptual=perceptual, lambda_l1=config.lambda_l1,
                             lambda_perc=config.lambda_perc, name="pix2pix_trainer")

    def adam():
        opt = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1)
        return keras.optimizers.LossScaleOptimizer(opt) if config.mixed_precision == "mixed_float16" else opt

    trainer.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=jit_compile)
    trainer.build_optimizers()  # slot variables now, in the strategy's scope (not lazily in a replica)
    return trainer


def as_purifier(generator: keras.Model, name: str = "residual_cgan", fold: bool = False,
                jit_compile: bool = False) -> KerasPurifier:
    """Wrap a trained generator as the lab's :class:`~advlab.purifiers.Purifier`; ``fold``: with
    batch norm folded into its convolutions (:func:`advlab.purifiers.export.fold_batchnorm`, the
    same images, fewer ops), ``jit_compile``: purify through XLA."""
    if fold:
        from advlab.purifiers.export import fold_batchnorm

        generator = fold_batchnorm(generator)
    return KerasPurifier(generator, name=name, jit_compile=jit_compile)


def load_purifier(path, name: str = "residual_cgan") -> KerasPurifier:
    """Load a generator saved by :func:`advlab.training.train_purifier` (``generator.keras``)."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        path = path / "generator.keras"
    from advlab.io.models import load_model

    generator = load_model(path, what="purifier (trained generator)",
                           rebuild=f"Train one with `python -m advlab train ... --out {path.parent}`.")
    return as_purifier(generator, name=name)

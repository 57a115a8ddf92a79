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

Choices the paper leaves open (all knobs of :class:`CGANConfig`):

* Images are [0, 1] outside; inside, the generator works on [-1, 1] and ends in ``tanh`` as
  pix2pix does, mapped back by ``(t + 1) / 2``, so outputs are always valid images.
* Adam(2e-4, beta_1 = 0.5), the pix2pix/DCGAN setting, for both networks.
* Batch size 64 (pix2pix used 1 on 400 images; with 10^5 pairs a batch keeps CPU/GPU busy and
  BN statistics stable); decoder dropout 0.5 in the three innermost levels, as pix2pix.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import keras
from keras import layers

from advlab.config import CPU_PURIFIER_TRAINING, PURIFIER_SIZES
from advlab.purifiers import KerasPurifier
from advlab.purifiers.blocks import downsample, residual_stack, upsample
from advlab.training.pix2pix import Pix2PixTrainer  # noqa: F401  (public API)

MAX_DOWNSAMPLINGS = 8
SCHEDULES = ("constant", "multistep")
# Network sizes for ``CGANConfig.for_scale(cfg, size=...)`` at full scale. "paper" is pix2pix's
# width (64 -> 512 filters) with the paper's 7 residual blocks in G and D: 93.6M generator
# parameters, about 0.29 s per pair per epoch on a 2-core CPU, so hundreds of CPU-hours for
# 180k pairs. "cpu" keeps the architecture (U-Net depth, 7 residual blocks per encoder level,
# residual PatchGAN) but narrows it (32 -> 128 filters, 8.7M parameters) and gives the
# discriminator 1 residual block per conv: measured 9.9 ms per pair at batch 64 on 28x28
# (benchmarks/train_step_time.py), i.e. ~30x faster, so a full MNIST run fits in an hour.
SIZES = PURIFIER_SIZES
# The paper's Table I protocol (one purifier on the FGSM + PGD + C&W composite, eps 0.3, 40
# iterations, the full 10k test set) as measured on a 2-core CPU (figures/full/README.md):
# * the "cpu" networks; 3 epochs of batch 64 at Adam 5e-4 (pix2pix's 2e-4 was tuned for batch 1),
#   the last epoch at half the rate (pix2pix's linear decay over the second half);
# * clean training images per attack: all of them (the paper's 60k) for FGSM, which crafts them
#   in 26 s; the first 20,000 for PGD-40 (174 s) and 1,000 for C&W (127 s), because training time
#   is the bound: 81k pairs x 3 epochs train in 44 min. FGSM on 20k instead of 60k images scored
#   98.54 % on FGSM, 60k 98.70 %;
# * the perceptual term in the target classifier's feature space, weight 100. VGG19's ImageNet
#   weights are not on this machine, and weight 1 (the paper's, calibrated for VGG19) made the
#   term ~6 % of the generator loss; 100 (the versatile paper's first-phase weight) measured
#   +1.2 points on FGSM and PGD (97.27 -> 98.54 / 97.39 -> 98.58 %). The choice is explicit so a
#   run gives the same result with or without internet.
# C&W is evaluated on the first 1,000 test images. ``python -m advlab train --scale full
# --budget cpu`` and notebook 03 use it.
TABLE_I_CPU = {"size": "cpu", "n_train": None, "train_subset": {"pgd": 20000, "cw": 1000}, "cw_test": 1000,
               "epochs": 3, "batch_size": CPU_PURIFIER_TRAINING["batch_size"],
               "learning_rate": CPU_PURIFIER_TRAINING["learning_rate"], "lr_decay_start": 0.5,
               "perceptual": "classifier", "lambda_perc": 100.0}
# The TABLE_I_CPU entries that are CGANConfig fields (and, by the same names, ``python -m advlab train`` flags).
TABLE_I_CPU_CONFIG = ("epochs", "batch_size", "learning_rate", "lr_decay_start", "perceptual", "lambda_perc")


@dataclass(frozen=True)
class CGANConfig:
    """Architecture and optimisation knobs of the residual cGAN (defaults = paper / pix2pix)."""

    residual_blocks: int = 7
    disc_residual_blocks: int | None = None   # None: same as residual_blocks
    base_filters: int = 64
    max_filters: int = 512
    disc_filters: int = 64
    dropout: float = 0.5
    lambda_l1: float = 100.0
    lambda_perc: float = 1.0
    schedule: str = "constant"                # "multistep": versatile-defence 40/30/30 schedule
    learning_rate: float = 2e-4
    lr_decay_start: float | None = None       # e.g. 0.5: pix2pix's linear decay over the last half
    beta_1: float = 0.5
    batch_size: int = 64
    epochs: int = 20
    perceptual: str = "auto"                  # see advlab.training.perceptual.make_perceptual
    mixed_precision: str | None = None        # None | "mixed_float16" | "mixed_bfloat16"

    def replace(self, **changes) -> "CGANConfig":
        return replace(self, **changes)

    @classmethod
    def for_scale(cls, cfg, size: str = "paper") -> "CGANConfig":
        """Defaults for a :class:`~advlab.config.LabConfig`: its residual blocks, purifier epochs
        and batch size, with the paper's widths and Adam(2e-4, 0.5) at ``full`` scale.

        At ``smoke`` scale a notebook must train in about a minute on a CPU, so: 16 instead of 64
        base filters in G and D, batch 32 and learning rate 1e-3 (the smoke preset trains 4 epochs). Measured on
        700 MNIST pairs (FGSM-like noise): inference MAE to the clean images 0.028 after 4 such
        epochs, against 0.33-0.45 after 2 epochs at 2e-4 / batch 64 (the generator still outputs
        nearly grey images then).

        ``size`` picks the network width at full scale from :data:`SIZES` (``"paper"`` or the
        CPU-sized ``"cpu"``); smoke scale always uses its own small networks.
        """
        if size not in SIZES:
            raise ValueError(f"Unknown purifier size {size!r}; choose one of {sorted(SIZES)}.")
        if cfg.scale == "smoke":
            return cls(residual_blocks=cfg.residual_blocks, epochs=cfg.purifier_epochs, batch_size=32,
                       base_filters=16, disc_filters=16, learning_rate=1e-3)
        return cls(residual_blocks=cfg.residual_blocks, epochs=cfg.purifier_epochs, batch_size=cfg.batch_size,
                   **SIZES[size])

    def to_dict(self) -> dict:
        return asdict(self)


def _check_params(config: CGANConfig, input_shape=None) -> None:
    """The one place the purifier's configuration and input shape are validated."""
    ints = {"residual_blocks": 0, "base_filters": 1, "max_filters": 1, "disc_filters": 1,
            "batch_size": 1, "epochs": 1}
    for name, low in ints.items():
        v = getattr(config, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"CGANConfig.{name} must be an integer >= {low}, got {v!r}.")
    if config.disc_residual_blocks is not None and (
            not isinstance(config.disc_residual_blocks, int) or config.disc_residual_blocks < 0):
        raise ValueError(f"CGANConfig.disc_residual_blocks must be None or an integer >= 0, "
                         f"got {config.disc_residual_blocks!r}.")
    if config.max_filters < config.base_filters:
        raise ValueError(f"max_filters ({config.max_filters}) < base_filters ({config.base_filters}).")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}.")
    for name in ("lambda_l1", "lambda_perc"):
        v = getattr(config, name)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}.")
    if not (config.learning_rate > 0 and 0 <= config.beta_1 < 1):
        raise ValueError(f"need learning_rate > 0 and 0 <= beta_1 < 1, got "
                         f"{config.learning_rate}, {config.beta_1}.")
    if config.lr_decay_start is not None and not (
            isinstance(config.lr_decay_start, (int, float)) and 0.0 <= config.lr_decay_start < 1.0):
        raise ValueError(f"lr_decay_start must be None or in [0, 1), got {config.lr_decay_start!r}.")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {config.schedule!r}; choose one of {SCHEDULES}.")
    if config.mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
        raise ValueError(f"mixed_precision must be None, 'mixed_float16' or 'mixed_bfloat16', "
                         f"got {config.mixed_precision!r}.")
    if input_shape is not None:
        padded_side(input_shape)


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
    cfg = CGANConfig(residual_blocks=residual_blocks, base_filters=base_filters,
                     max_filters=max_filters, dropout=dropout)
    _check_params(cfg, input_shape)
    h, _, channels = input_shape
    side = padded_side(input_shape)
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
    cfg = CGANConfig(residual_blocks=residual_blocks, base_filters=base_filters,
                     max_filters=max(base_filters, 512))
    _check_params(cfg, input_shape)
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
    _check_params(config, input_shape)
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


@dataclass(frozen=True)
class TableIProtocol:
    """Sizes of one Table I run: clean training images per attack (``n_train``; ``None`` = all),
    smaller subsets for some attacks (``train_subset``), C&W test images, and the purifier's
    :class:`CGANConfig`."""

    n_train: int | None
    train_subset: dict
    cw_test: int
    config: CGANConfig
    budget: str

    def train_images(self, attack: str) -> int | None:
        """How many of the clean training images ``attack`` is crafted on (``None`` = all)."""
        return self.train_subset.get(attack, self.n_train)


def table_i_protocol(cfg, budget: str | None = None) -> TableIProtocol:
    """The Table I protocol at ``cfg``'s scale: tiny at smoke scale; at full scale the paper's
    sizes (``budget="paper"``) or :data:`TABLE_I_CPU` (``"cpu"``; see
    :func:`advlab.config.resolve_budget` for the default)."""
    from advlab.config import resolve_budget

    if cfg.scale == "smoke":
        return TableIProtocol(300, {"cw": 100}, 50, CGANConfig.for_scale(cfg), "smoke")
    budget = resolve_budget(budget)
    if budget == "paper":
        return TableIProtocol(cfg.n_train, {}, 1000, CGANConfig.for_scale(cfg), budget)
    t = TABLE_I_CPU
    config = CGANConfig.for_scale(cfg, size=t["size"]).replace(**{k: t[k] for k in TABLE_I_CPU_CONFIG})
    return TableIProtocol(t["n_train"], dict(t["train_subset"]), t["cw_test"], config, budget)


def as_purifier(generator: keras.Model, name: str = "residual_cgan") -> KerasPurifier:
    """Wrap a trained generator as the lab's :class:`~advlab.purifiers.Purifier`."""
    return KerasPurifier(generator, name=name)


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

"""Residual U-Net generator and residual PatchGAN: shapes, block counts, the block itself, errors."""
from __future__ import annotations

import numpy as np
import pytest

from advlab.purifiers import residual_cgan as rc
from advlab.purifiers.blocks import residual_block_model


def _count(model, suffix: str) -> int:
    return sum(1 for layer in model.layers if layer.name.endswith(suffix))


@pytest.mark.parametrize("side, channels, patches", [(28, 1, 5), (32, 3, 6), (256, 3, 30)])
def test_shapes_and_range(side, channels, patches):
    blocks = 1 if side < 256 else 0
    gen = rc.build_generator((side, side, channels), residual_blocks=blocks, base_filters=4, max_filters=16)
    disc = rc.build_discriminator((side, side, channels), residual_blocks=blocks, base_filters=4)
    x = np.random.default_rng(0).random((2, side, side, channels), dtype=np.float32)
    x_pur = np.asarray(gen(x, training=False))
    assert x_pur.shape == x.shape
    assert x_pur.min() >= 0.0 and x_pur.max() <= 1.0
    assert np.asarray(disc([x, x_pur])).shape == (2, patches, patches, 1)
    # 28 is padded to 32 inside the generator and cropped back
    names = [layer.name for layer in gen.layers]
    assert ("pad" in names and "crop" in names) == (side == 28)


def test_unet_depth_reaches_one_by_one():
    gen = rc.build_generator((32, 32, 1), residual_blocks=0, base_filters=4, max_filters=8)
    assert gen.get_layer("enc4_act").output.shape[1:3] == (1, 1)      # 32 -> 1 in 5 halvings
    gen256 = rc.build_generator((256, 256, 3), residual_blocks=0, base_filters=2, max_filters=4)
    assert gen256.get_layer("enc7_act").output.shape[1:3] == (1, 1)   # pix2pix's 8 levels


@pytest.mark.parametrize("blocks", [0, 1, 3])
def test_residual_block_count_honoured(blocks):
    gen = rc.build_generator((28, 28, 1), residual_blocks=blocks, base_filters=4, max_filters=8)
    disc = rc.build_discriminator((28, 28, 1), residual_blocks=blocks, base_filters=4)
    assert _count(gen, "_add") == 5 * blocks    # 5 encoder levels for 28 -> 32
    assert _count(disc, "_add") == 3 * blocks   # 2 strided convs + 1 stride-1 conv, each followed
    assert _count(gen, "_conv1") == 5 * blocks


def test_residual_block_is_identity_plus_residual():
    block = residual_block_model((6, 6, 4))
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 4)).astype(np.float32)
    y = np.asarray(block(x, training=False))
    assert not np.allclose(y, x)
    bn = block.get_layer("block_bn2")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([np.zeros_like(gamma), np.zeros_like(beta), mean, var])   # F(x) == 0
    np.testing.assert_allclose(np.asarray(block(x, training=False)), x, atol=1e-6)


def test_build_models_uses_config_and_disc_blocks():
    cfg = rc.CGANConfig(residual_blocks=2, disc_residual_blocks=0, base_filters=4, max_filters=8,
                        disc_filters=4)
    gen, disc = rc.build_models((28, 28, 1), cfg)
    assert _count(gen, "_add") == 10 and _count(disc, "_add") == 0


@pytest.mark.parametrize("shape, match", [
    ((28, 32, 1), "square"), ((28, 28, 2), "channels"), ((12, 12, 1), "too small"),
    ((100, 100, 3), "padding"), ((28, 28), "height, width, channels"),
])
def test_bad_shapes_raise(shape, match):
    with pytest.raises(ValueError, match=match):
        rc.build_generator(shape, residual_blocks=0)


@pytest.mark.parametrize("field, value, match", [
    ("residual_blocks", -1, "residual_blocks"), ("residual_blocks", 1.5, "residual_blocks"),
    ("dropout", 1.0, "dropout"), ("lambda_l1", -1.0, "lambda_l1"), ("lambda_perc", float("nan"), "lambda_perc"),
    ("schedule", "cosine", "schedule"), ("mixed_precision", "fp8", "mixed_precision"),
    ("learning_rate", 0.0, "learning_rate"), ("max_filters", 2, "max_filters"), ("batch_size", 0, "batch_size"),
])
def test_bad_configs_raise_on_construction(field, value, match):
    with pytest.raises(ValueError, match=match):
        rc.CGANConfig(base_filters=4).replace(**{field: value})


def test_purifier_wrapper_numpy_in_numpy_out_without_mutation():
    gen = rc.build_generator((28, 28, 1), residual_blocks=0, base_filters=4, max_filters=8)
    purifier = rc.as_purifier(gen)
    x = np.random.default_rng(2).random((5, 28, 28, 1), dtype=np.float32)
    before = x.copy()
    x_pur = purifier(x, batch_size=2)
    assert isinstance(x_pur, np.ndarray) and x_pur.shape == x.shape and x_pur.dtype == np.float32
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(x_pur, np.asarray(gen(x, training=False)), atol=1e-5)


def test_load_purifier_missing_gives_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="advlab train"):
        rc.load_purifier(tmp_path)


def test_config_for_scale_and_budget():
    from advlab.config import get_config

    full = rc.CGANConfig.for_scale(get_config("full"))
    assert (full.base_filters, full.disc_filters, full.residual_blocks, full.learning_rate) == (64, 64, 7, 2e-4)
    assert full.epochs == get_config("full").purifier_epochs and full.batch_size == get_config("full").batch_size
    smoke = rc.CGANConfig.for_scale(get_config("smoke"), "cpu")           # smoke has its own networks
    assert smoke.base_filters == 16 and smoke.batch_size == 32 and smoke.epochs >= 4
    cpu = rc.CGANConfig.for_scale(get_config("full"), "cpu")
    assert (cpu.base_filters, cpu.max_filters, cpu.disc_filters, cpu.disc_residual_blocks) == (32, 128, 32, 1)
    assert cpu.residual_blocks == 7                      # the paper's generator blocks are kept
    gen, disc = rc.build_models((28, 28, 1), cpu)
    assert gen.count_params() < 10_000_000               # 8.7M, against 93.6M at the paper's width
    with pytest.raises(ValueError, match="Unknown budget"):
        rc.CGANConfig.for_scale(get_config("full"), "huge")


def test_table_i_run_by_scale_and_budget():
    from advlab.config import get_config, resolve

    smoke = resolve("smoke", job="table1")
    assert smoke.purifier == rc.CGANConfig.for_scale(get_config("smoke")) and smoke.budget == "smoke"
    cpu = resolve("full", "cpu", job="table1")
    assert cpu.protocol.train_images("cw") == 1000 and cpu.protocol.train_images("pgd") == 20000
    assert cpu.protocol.train_images("fgsm") is None and cpu.protocol.n_train is None   # FGSM: every image
    assert cpu.protocol.cw_test == 1000
    assert (cpu.purifier.base_filters, cpu.purifier.epochs, cpu.purifier.residual_blocks) == (32, 3, 7)
    assert (cpu.purifier.perceptual, cpu.purifier.lambda_perc, cpu.purifier.lambda_l1) == ("classifier", 100.0, 100.0)
    assert cpu.purifier.lr_decay_start == 0.5
    paper = resolve("full", "paper", job="table1")
    assert paper.protocol.n_train is None and paper.purifier.base_filters == 64 and paper.purifier.max_filters == 512
    assert paper.protocol.train_images("cw") is None and paper.purifier.lambda_perc == 1.0   # the paper's weights

"""CAP-GAN: loss terms against hand-computed values, networks, one real training step."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from advlab.purifiers import capgan
from advlab.training import losses


def test_lsgan_losses_by_hand():
    real = tf.constant([[1.0, 0.5], [0.0, 2.0]])
    fake = tf.constant([[0.0, 1.0], [0.5, -1.0]])
    # D: mean((r-1)^2) = (0 + .25 + 1 + 1)/4 ; mean(f^2) = (0 + 1 + .25 + 1)/4
    assert float(losses.lsgan_d_loss(real, fake)) == pytest.approx(2.25 / 4 + 2.25 / 4)
    # G: mean((f-1)^2) = (1 + 0 + .25 + 4)/4
    assert float(losses.lsgan_g_loss(fake)) == pytest.approx(5.25 / 4)


def test_l1_and_cam_by_hand():
    assert float(losses.l1_loss(tf.constant([0.0, 1.0]), tf.constant([0.5, 0.0]))) == pytest.approx(0.75)
    src, tgt = tf.constant([[2.0]]), tf.constant([[-1.0]])
    # BCE(1, sigmoid(2)) + BCE(0, sigmoid(-1)) = log(1+e^-2) + log(1+e^-1)
    assert float(losses.cam_loss(src, tgt)) == pytest.approx(np.log1p(np.exp(-2)) + np.log1p(np.exp(-1)), rel=1e-5)


def test_kd_loss_by_hand_and_zero_when_logits_match():
    ref = np.array([[2.0, 0.0, -1.0]], np.float32)
    fake = np.array([[0.0, 1.0, 0.0]], np.float32)
    t = 10.0
    p = np.exp(ref / t) / np.exp(ref / t).sum()
    q = np.exp(fake / t) / np.exp(fake / t).sum()
    expected = t * t * np.sum(p * np.log(p / q))
    assert float(losses.kd_loss(ref, fake, t)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.kd_loss(ref, ref, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.kd_loss(ref, ref + 3.0, t)) == pytest.approx(0.0, abs=1e-5)   # shift-invariant
    assert float(losses.kd_loss(ref, fake, 1.0)) != pytest.approx(expected)


def test_cam_attention_uses_eta_weights():
    layer = capgan.CAMAttention()
    h = tf.random.stateless_uniform((2, 5, 5, 4), seed=[0, 1])
    attended, logits, heat = layer(h)
    assert attended.shape == (2, 5, 5, 4) and logits.shape == (2, 2) and heat.shape == (2, 5, 5, 1)
    gap = tf.reduce_mean(h, axis=[1, 2]) @ layer.w_gap
    np.testing.assert_allclose(logits[:, :1], gap, rtol=1e-5)


def test_networks_shapes():
    g = capgan.build_generator((28, 28, 1), base_filters=8, n_res=1)
    d = capgan.build_discriminator((28, 28, 1), base_filters=8)
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    out, cam, heat = g(x)
    assert out.shape == x.shape and cam.shape == (2, 2) and heat.shape == (2, 7, 7, 1)
    assert 0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1
    patch, dcam, _ = d(x)
    assert patch.shape == (2, 7, 7, 1) and dcam.shape == (2, 2)


def _tiny_trainer():
    keras.utils.set_random_seed(0)
    clf = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    g = lambda n: capgan.build_generator((16, 16, 1), base_filters=4, n_res=1, name=n)  # noqa: E731
    d = lambda n: capgan.build_discriminator((16, 16, 1), base_filters=4, name=n)      # noqa: E731
    tr = capgan.CAPGANTrainer(g("g_ac"), g("g_ca"), d("d_a"), d("d_c"), clf)
    tr.compile(capgan.make_optimizer(10), capgan.make_optimizer(10))
    return tr, clf


def test_generator_objective_is_the_documented_mix():
    tr, _ = _tiny_trainer()
    rng = np.random.default_rng(0)
    x_a, x_c = (rng.random((4, 16, 16, 1), dtype=np.float32) for _ in range(2))
    g = tr.generator_losses(x_a, x_c, training=False)
    expected = (g["adv"] + g["cam"] + 10.0 * (0.7 * g["pixel"] + 0.3 * g["feature"]))
    assert float(g["total"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(g["feature"]) >= 0


def test_train_step_updates_both_players_not_the_classifier():
    tr, clf = _tiny_trainer()
    rng = np.random.default_rng(0)
    x_a, x_c = (tf.constant(rng.random((4, 16, 16, 1), dtype=np.float32)) for _ in range(2))
    before = {n: [v.numpy().copy() for v in m.trainable_variables]
              for n, m in (("g", tr.g_ac), ("d", tr.d_c), ("f", clf))}
    logs = tr.train_step((x_a, x_c))
    assert set(logs) == {"g_loss", "d_loss", "adv", "pixel", "cam", "feature"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    changed = {n: any(not np.array_equal(a, b.numpy()) for a, b in zip(vs, m.trainable_variables))
               for (n, vs), m in zip(before.items(), (tr.g_ac, tr.d_c, clf))}
    assert changed == {"g": True, "d": True, "f": False}


def test_optimizer_is_the_published_one():
    opt = capgan.make_optimizer(100)
    assert opt.beta_1 == 0.5 and opt.beta_2 == 0.999
    sched = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    assert float(sched(0)) == pytest.approx(1e-4) and float(sched(100)) == pytest.approx(0.0, abs=1e-9)


def test_train_save_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    x_c = rng.random((8, 16, 16, 1), dtype=np.float32)
    x_a = np.clip(x_c + 0.2 * np.sign(rng.standard_normal(x_c.shape)), 0, 1).astype(np.float32)
    clf = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    out = tmp_path / "capgan"
    p = capgan.train_capgan(x_a, x_c, clf, epochs=1, batch_size=4, base_filters=4, n_res=1,
                            out_dir=out, run_eagerly=True)
    pur = p(x_a)
    assert pur.shape == x_a.shape and 0 <= pur.min() and pur.max() <= 1 and p.train_seconds > 0
    assert p.attention(x_a[:2]).shape == (2, 4, 4, 1)
    loaded = capgan.load_capgan(out)                     # a finished run is loaded, not retrained
    np.testing.assert_allclose(loaded(x_a), pur, atol=1e-5)
    again = capgan.train_capgan(x_a, x_c, clf, epochs=1, batch_size=4, base_filters=4, n_res=1, out_dir=out)
    assert again.train_seconds == pytest.approx(p.train_seconds)

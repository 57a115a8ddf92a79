"""Convolutional auto-encoder purifier: shape/range, skips, latent noise train-only or EOT."""
import numpy as np
import pytest

from advlab.purifiers import autoencoder as ae


@pytest.fixture(scope="module")
def pairs(mnist_sample):
    x = mnist_sample[0][:64]
    rng = np.random.default_rng(0)
    x_adv = np.clip(x + 0.3 * np.sign(rng.standard_normal(x.shape)), 0, 1).astype(np.float32)
    return x_adv, x


def test_u_shape_with_skips():
    model = ae.build_autoencoder((28, 28, 1), filters=(8, 16), latent_filters=16)
    assert model.output_shape == (None, 28, 28, 1)
    assert sum(type(l).__name__ == "Concatenate" for l in model.layers) == 2   # one skip per level
    assert model.get_layer("latent").output.shape[1:3] == (7, 7)
    with pytest.raises(ValueError, match="divisible"):
        ae.build_autoencoder((30, 30, 1), filters=(8, 16))


def test_latent_noise_only_in_training():
    layer = ae.LatentNoise(0.5)
    z = np.zeros((4, 3, 3, 2), np.float32)
    assert np.array_equal(np.asarray(layer(z, training=False)), z)
    noisy = np.asarray(layer(z, training=True))
    assert 0.3 < noisy.std() < 0.7
    model = ae.build_autoencoder((28, 28, 1), filters=(8, 16), latent_filters=16, noise_std=1.0)
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    # the noise reaches the output in training mode
    assert not np.allclose(model(x, training=True), model(x, training=True))


def test_trained_purifier_keeps_shape_range_and_learns(pairs):
    x_adv, x = pairs
    before = x_adv.copy()
    model = ae.build_autoencoder((28, 28, 1), filters=(8, 16), latent_filters=16)
    mse_untrained = np.mean((np.asarray(model(x_adv, training=False)) - x) ** 2)
    p = ae.train_autoencoder(x_adv, x, epochs=20, batch_size=16, lr=1e-3, model=model)
    out = p(x_adv)
    assert out.shape == x.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    np.testing.assert_array_equal(x_adv, before)
    assert not p.stochastic and p.differentiable and p.train_seconds > 0
    np.testing.assert_array_equal(p(x_adv[:4]), p(x_adv[:4]))          # deterministic at inference
    assert np.mean((out - x) ** 2) < 0.7 * mse_untrained                 # it learned to reconstruct


def test_noise_at_inference_is_stochastic_and_eot_averages(pairs):
    x_adv, x = pairs
    p = ae.train_autoencoder(x_adv[:16], x[:16], epochs=1, batch_size=16, filters=(8, 16),
                             noise_std=1.0, noise_at_inference=True)
    assert p.stochastic
    a, b = p(x_adv[:4]), p(x_adv[:4])
    assert not np.allclose(a, b)
    eot = p.purify_eot(x_adv[:4], samples=20)
    # the EOT average varies far less between calls than single draws do
    assert np.abs(eot - p.purify_eot(x_adv[:4], samples=20)).mean() < 0.5 * np.abs(a - b).mean()


def test_bad_pairs():
    x = np.zeros((4, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="aligned"):
        ae.train_autoencoder(x, x[:2], epochs=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ae.train_autoencoder(x + 2, x, epochs=1)


def test_noisy_copy_and_save_load(pairs, tmp_path):
    x_adv, x = pairs
    p = ae.train_autoencoder(x_adv[:16], x[:16], epochs=1, batch_size=16, filters=(8, 16))
    noisy = ae.with_inference_noise(p, stddev=1.0)
    assert noisy.stochastic and not p.stochastic
    assert not np.allclose(noisy(x_adv[:2]), noisy(x_adv[:2]))
    np.testing.assert_array_equal(p(x_adv[:2]), p(x_adv[:2]))          # the original is untouched
    ae.save_autoencoder(p, tmp_path / "ae")
    loaded = ae.load_autoencoder(tmp_path / "ae")
    np.testing.assert_allclose(loaded(x_adv[:4]), p(x_adv[:4]), atol=1e-6)
    assert ae.load_autoencoder(tmp_path / "missing") is None

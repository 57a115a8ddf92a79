"""Every validation error of advlab.attacks, with its message (checked before any attack work)."""
from __future__ import annotations

import numpy as np
import pytest

from advlab import attacks


@pytest.fixture(scope="module")
def batch(mnist_sample):
    _, _, x, y = mnist_sample
    return x[:8].copy(), y[:8].copy()


def run(model, x, y=None, name="fgsm", **kw):
    return attacks.attack(name, model, x, y, progress=False, **kw)


def test_unknown_attack_lists_known(mnist_cnn, batch):
    with pytest.raises(ValueError, match=r"Unknown attack 'jsma'\. Known attacks: fgsm, bim, pgd, mifgsm, cw"):
        run(mnist_cnn, *batch, name="jsma")


def test_aliases(mnist_cnn, batch):
    x_adv = run(mnist_cnn, *batch, name="MI-FGSM", nb_iter=1, eps_iter=0.01, eps=0.01)
    assert x_adv.shape == batch[0].shape


def test_images_0_255_refused(mnist_cnn, batch):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*0-255 pixels: divide by 255"):
        run(mnist_cnn, batch[0] * 255, batch[1])


def test_negative_images_refused(mnist_cnn, batch):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        run(mnist_cnn, batch[0] - 0.5, batch[1])


def test_wrong_rank(mnist_cnn, batch):
    with pytest.raises(ValueError, match=r"4-D batch.*add a batch axis"):
        run(mnist_cnn, batch[0][0], batch[1][:1])
    with pytest.raises(ValueError, match=r"4-D batch"):
        run(mnist_cnn, batch[0][..., 0, 0], batch[1])


def test_wrong_channels_and_size(mnist_cnn, batch):
    rgb = np.repeat(batch[0], 3, axis=-1)
    with pytest.raises(ValueError, match=r"wrong channels \(3 instead of 1\)"):
        run(mnist_cnn, rgb, batch[1])
    with pytest.raises(ValueError, match=r"wrong height \(32 instead of 28\)"):
        run(mnist_cnn, np.zeros((2, 32, 32, 1), np.float32))


def test_nan_and_inf(mnist_cnn, batch):
    x = batch[0].copy()
    x[0, 0, 0, 0] = np.nan
    x[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(2 values\)"):
        run(mnist_cnn, x, batch[1])


def test_labels_wrong_length_or_range(mnist_cnn, batch):
    with pytest.raises(ValueError, match=r"one class per image: 8 images"):
        run(mnist_cnn, batch[0], batch[1][:5])
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\)"):
        run(mnist_cnn, batch[0], np.full(8, 12))


def test_one_hot_labels_accepted(mnist_cnn, batch):
    onehot = np.eye(10)[batch[1]]
    a = run(mnist_cnn, batch[0], onehot, eps=0.1)
    b = run(mnist_cnn, batch[0], batch[1], eps=0.1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("eps, message", [(-0.1, r"eps must be >= 0"),
                                          (8.0, r"eps=8.0 is impossible.*divide by 255"),
                                          (float("nan"), r"eps must be finite")])
def test_impossible_eps(mnist_cnn, batch, eps, message):
    with pytest.raises(ValueError, match=message):
        run(mnist_cnn, *batch, name="pgd", eps=eps)


def test_bad_iteration_params(mnist_cnn, batch):
    with pytest.raises(ValueError, match=r"nb_iter must be a positive integer"):
        run(mnist_cnn, *batch, name="bim", nb_iter=0)
    with pytest.raises(ValueError, match=r"eps_iter=0.5 is larger than eps=0.1"):
        run(mnist_cnn, *batch, name="pgd", eps=0.1, eps_iter=0.5)
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['nb_iter'\]"):
        run(mnist_cnn, *batch, name="fgsm", nb_iter=3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        attacks.attack("fgsm", mnist_cnn, *batch, batch_size=0)
    with pytest.raises(ValueError, match="Unknown preset"):
        attacks.default_params("fgsm", "imagenet")


def test_probabilities_instead_of_logits(mnist_cnn, batch):
    import keras

    soft = keras.Sequential([mnist_cnn, keras.layers.Softmax()])
    with pytest.raises(ValueError, match=r"returns probabilities .* not logits"):
        run(soft, *batch)
    x_adv = run(soft, *batch, allow_probabilities=True, eps=0.1)  # explicit opt-in still runs
    assert x_adv.shape == batch[0].shape


def test_empty_batch_refused(mnist_cnn):
    with pytest.raises(ValueError, match=r"empty batch \(shape \(0, 28, 28, 1\)\)"):
        run(mnist_cnn, np.zeros((0, 28, 28, 1), np.float32), np.zeros(0, np.int64))

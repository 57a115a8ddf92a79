"""The capstone's hidden defence (notebook 12): seeded, one random and one gradient-blocking stage,
reproducible accuracies, and a lab attack that stays in the eps ball and beats exact-gradient PGD."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from advlab.attacks import apgd
from advlab.evaluation import adaptive, capstone


def _tiny_classifier():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, activation="tanh"),
                             keras.layers.Flatten(), keras.layers.Dense(3)], name="tiny_capstone_f")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (6, 12, 12, 1)).astype(np.float32)


def _probe(stage, x):
    """(output differs between two calls, gradient is zero everywhere) for one stage."""
    t = tf.constant(x)
    differ = not np.array_equal(stage(t).numpy(), stage(t).numpy())
    with tf.GradientTape() as tape:
        tape.watch(t)
        total = tf.reduce_sum(stage(t) * tf.range(1.0, t.shape[1] + 1.0)[None, :, None, None])
    grad = tape.gradient(total, t, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return differ, not np.any(grad.numpy())


@pytest.mark.parametrize("seed", range(6))
def test_every_defence_has_one_random_and_one_blocking_stage(seed, images):
    defence = capstone.hidden_defence(seed)
    probes = [_probe(s, images) for s in defence.stages]
    assert [d for d, _ in probes].count(True) == 1
    assert [b for _, b in probes].count(True) == 1
    assert [i for i, (d, b) in enumerate(probes) if d and b] == [], "the random stage has a gradient"
    out = defence(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1


def test_the_seed_is_the_defence():
    assert capstone.hidden_defence(3).reveal() == capstone.hidden_defence(3).reveal()
    orders = {tuple(r.split(": ")[1].split(",")[0] for r in capstone.hidden_defence(s).reveal()) for s in range(12)}
    assert len(orders) >= 3, f"the seed barely changes the order of the stages: {orders}"


def test_fixed_draws_repeat_and_leave_the_stream_as_it_was(images):
    a, b = capstone.hidden_defence(4), capstone.hidden_defence(4)
    with a.fixed_draws(7):
        first = a(images)
    with a.fixed_draws(7):
        again = a(images)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(a(images), b(images))    # a's stream continues where it was
    assert not np.array_equal(a(images), a(images)), "two calls of a random defence should differ"


def test_accuracy_is_reproducible_and_the_mean_of_the_fractions(images):
    f, defence = _tiny_classifier(), capstone.hidden_defence(1)
    y = np.argmax(f(images).numpy(), -1)
    before = images.copy()
    fractions = capstone.correct_fraction(defence, f, images, y, draws=4)
    assert fractions.shape == (len(images),) and set(np.unique(fractions * 4)) <= {0, 1, 2, 3, 4}
    assert capstone.defended_accuracy(defence, f, images, y, draws=4) == pytest.approx(fractions.mean())
    assert capstone.defended_accuracy(defence, f, images, y) == capstone.defended_accuracy(defence, f, images, y)
    np.testing.assert_array_equal(images, before)


def test_exact_gradients_are_masked_and_the_lab_attack_is_not(images):
    f, defence = _tiny_classifier(), capstone.hidden_defence(2)
    y = np.argmax(f(images).numpy(), -1)
    exact = adaptive.defended_model(defence, f, "exact")
    t = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(t)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, exact(t)))
    grad = tape.gradient(loss, t, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    assert not np.any(grad.numpy()), "the claim differentiable=True should hide a zero gradient"

    eps, before = 0.3, images.copy()
    naive = capstone.defended_accuracy(defence, f, apgd.pgd(exact, images, y, eps, loss="ce", n_iter=5, seed=0), y)
    x_adv = capstone.lab_attack(defence, f, images, y, eps, eot_samples=2, n_iter=10)
    np.testing.assert_array_equal(images, before)
    assert x_adv.shape == images.shape and x_adv.dtype == np.float32
    assert np.abs(x_adv - images).max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    lab = capstone.defended_accuracy(defence, f, x_adv, y)
    assert lab < naive, f"the lab's attack ({lab:.2f}) should beat exact-gradient PGD ({naive:.2f})"
    np.testing.assert_array_equal(x_adv, capstone.lab_attack(defence, f, images, y, eps, eot_samples=2, n_iter=10))


def test_bad_inputs_are_named(images):
    f, defence = _tiny_classifier(), capstone.hidden_defence(0)
    y = np.zeros(len(images), int)
    for seed in (-1, True, 2.5, 2 ** 31):
        with pytest.raises(ValueError, match="seed"):
            capstone.hidden_defence(seed)
    with pytest.raises(TypeError, match="HiddenDefence"):
        capstone.defended_accuracy(object(), f, images, y)
    with pytest.raises(ValueError, match="labels"):
        capstone.defended_accuracy(defence, f, images, y[:2])
    with pytest.raises(ValueError, match="draws"):
        capstone.correct_fraction(defence, f, images, y, draws=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        capstone.defended_accuracy(defence, f, images * 2, y)
    with pytest.raises(ValueError, match="eps"):
        capstone.lab_attack(defence, f, images, y, 1.5)
    with pytest.raises(ValueError, match="input"):
        capstone.defended_accuracy(defence, f, np.zeros((2, 8, 8, 1), np.float32), y[:2])
    with pytest.raises(ValueError, match="kind"):
        capstone.Stage(0, "sharpen", 1.0)
    with pytest.raises(ValueError, match="generator"):
        capstone.Stage(0, "noise", 0.1)

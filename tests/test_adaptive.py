"""BPDA, EOT and end-to-end white-box wrappers."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from advlab.evaluation import adaptive
from advlab.purifiers import Identity, KerasPurifier, classical


def _tiny_classifier(shape=(28, 28, 1)):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(shape), keras.layers.Conv2D(4, 3, activation="tanh"),
                             keras.layers.Flatten(), keras.layers.Dense(10)], name="tiny_f")


def _tiny_purifier(shape=(28, 28, 1)):
    keras.utils.set_random_seed(1)
    inp = keras.Input(shape)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(inp)
    out = keras.layers.Conv2D(shape[-1], 3, padding="same", activation="sigmoid")(h)
    return KerasPurifier(keras.Model(inp, out), name="tiny_p")


@pytest.fixture(scope="module")
def x(mnist_sample):
    return mnist_sample[2][:4].copy(), mnist_sample[3][:4].copy()


@pytest.mark.parametrize("name", ["median", "jpeg", "bit_depth", "wavelet"])
def test_bpda_backward_is_identity(name, x):
    p = classical.build_classical(name)
    t = tf.constant(x[0])
    w = tf.constant(np.random.default_rng(0).standard_normal(x[0].shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(t)
        out = adaptive.bpda(p)(t)
        loss = tf.reduce_sum(out * w)
    np.testing.assert_allclose(out.numpy(), p(x[0]), atol=1e-6)    # forward = the purifier
    np.testing.assert_array_equal(tape.gradient(loss, t).numpy(), w.numpy())   # d/dx = I


def test_bpda_model_gradient_is_classifier_gradient_at_purified_point(x):
    f = _tiny_classifier()
    p = classical.spatial_smoothing(3)
    g_bpda = adaptive.loss_gradient(adaptive.defended_model(p, f, "bpda"), x[0], x[1])
    g_at_pur = adaptive.loss_gradient(f, p(x[0]), x[1])
    np.testing.assert_allclose(g_bpda, g_at_pur, rtol=1e-5, atol=1e-7)


def test_exact_gradient_goes_through_the_learned_purifier(x):
    f, p = _tiny_classifier(), _tiny_purifier()
    exact = adaptive.loss_gradient(adaptive.defended_model(p, f, "exact"), x[0], x[1])
    ident = adaptive.loss_gradient(adaptive.defended_model(p, f, "bpda"), x[0], x[1])
    assert np.abs(exact).sum() > 0
    assert not np.allclose(exact, ident, atol=1e-6)       # not the identity's gradient
    # ... and it is the chain rule through P: compare with an explicit composition
    xt = tf.constant(x[0])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        logits = f(tf.clip_by_value(p.model(xt), 0.0, 1.0))
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(x[1], logits, from_logits=True))
    np.testing.assert_allclose(exact, tape.gradient(loss, xt).numpy(), rtol=1e-4, atol=1e-6)


def test_exact_mode_refused_for_non_differentiable(x):
    with pytest.raises(ValueError, match="bpda"):
        adaptive.defended_model(classical.jpeg_compression(50), _tiny_classifier(), "exact")
    assert adaptive.mode_for(classical.jpeg_compression(50), "e2e") is None
    assert adaptive.mode_for(_tiny_purifier(), "e2e") == "exact"
    with pytest.raises(ValueError, match="gradient"):
        adaptive.purify_op(Identity(), "spsa")


def test_eot_averages_probabilities_of_random_purifier(x):
    class Noisy(Identity):
        name, stochastic = "noisy", True

        def purify_tensor(self, t):
            return tf.clip_by_value(t + tf.random.normal(tf.shape(t), stddev=0.2), 0.0, 1.0)

    f = _tiny_classifier()
    m = adaptive.defended_model(Noisy(), f)              # EOT on by default for random purifiers
    assert m.layers[-1].eot_samples == 10
    out = np.asarray(m(x[0]))
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, rtol=1e-5)   # log of mean probabilities
    single = adaptive.defended_model(Noisy(), f, eot_samples=1)
    spread_single = np.std([np.asarray(single(x[0])) for _ in range(4)], axis=0).mean()
    spread_eot = np.std([np.asarray(m(x[0])) for _ in range(4)], axis=0).mean()
    assert spread_eot < spread_single
    assert adaptive.defended_model(Identity(), f).layers[-1].eot_samples == 1
    with pytest.raises(ValueError, match="eot_samples"):
        adaptive.defended_model(Noisy(), f, eot_samples=0)


def test_identity_defence_matches_plain_classifier(x):
    f = _tiny_classifier()
    m = adaptive.defended_model(Identity(), f)
    np.testing.assert_allclose(m(x[0]), f(x[0]), rtol=1e-6)
    assert m.input_shape == f.input_shape


def test_adaptive_attack_runs_through_the_attack_library(mnist_cnn, x):
    p = _tiny_purifier()
    x_adv = adaptive.adaptive_attack("fgsm", p, mnist_cnn, x[0], x[1], gradient="exact",
                                     eps=0.3, progress=False)
    assert x_adv.shape == x[0].shape and 0 <= x_adv.min() and x_adv.max() <= 1
    assert np.abs(x_adv - x[0]).max() <= 0.3 + 1e-6
    # FGSM through the composition moves along the sign of the end-to-end gradient
    g = adaptive.loss_gradient(adaptive.defended_model(p, mnist_cnn, "exact"), x[0], x[1])
    moved = (x_adv != x[0]) & (g != 0)
    assert np.mean(np.sign(x_adv - x[0])[moved] == np.sign(g)[moved]) > 0.99


def test_a_defended_model_never_shares_the_bare_classifiers_cache_key():
    """Cached attack sets are keyed by the target's weights digest; the purifier is not a Keras
    weight of the defended model, so the digest must add it (and the gradient mode)."""
    from advlab.io.cache import weights_digest

    f, p = _tiny_classifier(), _tiny_purifier()
    other = _tiny_purifier()
    other.model.set_weights([w + 0.01 for w in other.model.get_weights()])
    exact = weights_digest(adaptive.defended_model(p, f))
    assert exact != weights_digest(f)                                          # the bug: these were equal
    assert exact == weights_digest(adaptive.defended_model(p, f, name="renamed"))   # content, not names
    assert exact != weights_digest(adaptive.defended_model(other, f))
    assert exact != weights_digest(adaptive.defended_model(p, f, gradient="bpda"))
    assert exact != weights_digest(adaptive.defended_model(p, f, eot_samples=4))
    median = classical.build_classical("median")
    assert weights_digest(adaptive.defended_model(median, f, gradient="bpda")) != \
        weights_digest(adaptive.defended_model(classical.build_classical("jpeg"), f, gradient="bpda"))

"""Classical pre-processing purifiers: shape, range, no mutation, what each one does."""
import numpy as np
import pytest

from advlab.purifiers import classical


@pytest.fixture(scope="module")
def x(mnist_sample):
    return mnist_sample[2][:8].copy()


@pytest.mark.parametrize("name", classical.CLASSICAL)
def test_keeps_shape_range_and_input(name, x):
    p = classical.build_classical(name, **classical.mnist_defaults()[name])
    before = x.copy()
    out = p(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_array_equal(x, before)          # input not mutated
    assert not p.differentiable
    assert p.stochastic == (name == "tvm")


def test_rgb_batches_work():
    rng = np.random.default_rng(0)
    x = rng.random((3, 16, 16, 3), dtype=np.float32)
    for name in classical.CLASSICAL:
        out = classical.build_classical(name)(x)
        assert out.shape == x.shape and 0.0 <= out.min() and out.max() <= 1.0


def test_what_they_compute(x):
    one_bit = classical.feature_squeezing(bits=1)(x)
    assert set(np.unique(one_bit)) <= {0.0, 1.0}
    np.testing.assert_array_equal(one_bit, (x >= 0.5).astype(np.float32))
    # A single bright pixel in a dark image is removed by the median filter.
    spike = np.zeros((1, 9, 9, 1), np.float32)
    spike[0, 4, 4, 0] = 1.0
    assert classical.spatial_smoothing(3)(spike).max() == 0.0
    # Wavelet denoising reduces Gaussian noise on a smooth grey image.
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    smooth = (0.3 + 0.4 * xx * yy)[None, ..., None].repeat(2, 0).astype(np.float32)
    noisy = np.clip(smooth + rng.normal(0, 0.08, smooth.shape), 0, 1).astype(np.float32)
    den = classical.WaveletDenoise()(noisy)
    assert np.abs(den - smooth).mean() < 0.8 * np.abs(noisy - smooth).mean()
    # JPEG at low quality changes the image, at quality 100 barely.
    assert np.abs(classical.jpeg_compression(10)(x) - x).mean() > np.abs(classical.jpeg_compression(100)(x) - x).mean()


def test_tensor_path_has_no_gradient(x):
    import tensorflow as tf

    t = tf.constant(x[:2])
    with tf.GradientTape() as tape:
        tape.watch(t)
        out = classical.spatial_smoothing(3)(t)
        loss = tf.reduce_sum(out)
    assert out.shape == t.shape
    np.testing.assert_allclose(out.numpy(), classical.spatial_smoothing(3)(x[:2]))
    assert tape.gradient(loss, t) is None     # hence BPDA


def test_bad_input_and_params():
    p = classical.spatial_smoothing(3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        p(np.full((1, 8, 8, 1), 2.0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        p(np.full((1, 8, 8, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="channels"):
        p(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="float"):
        p(np.zeros((1, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="Unknown classical"):
        classical.build_classical("gaussian")
    with pytest.raises(ValueError, match="bits"):
        classical.feature_squeezing(0)
    with pytest.raises(ValueError, match="quality"):
        classical.jpeg_compression(0)


def test_rounded_bits_is_feature_squeezing_in_tf_with_a_zero_gradient():
    import tensorflow as tf

    from advlab.purifiers.classical import RoundedBits, feature_squeezing

    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    x0 = x.copy()
    rounded = RoundedBits(3)
    np.testing.assert_allclose(rounded(x), feature_squeezing(3)(x), atol=1e-6)
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        out = tf.reduce_sum(rounded.purify_tensor(t))
    grad = tape.gradient(out, t, unconnected_gradients=tf.UnconnectedGradients.ZERO)   # as attacks ask
    assert np.all(grad.numpy() == 0) and np.array_equal(x, x0)
    with pytest.raises(ValueError, match="bits"):
        RoundedBits(0)


# ------------------------------------------------------------- TVM: ART's objective, batched

def test_tvm_matches_arts_total_var_min(mnist_sample):
    """Same masks (same NumPy seed), same objective and gradient as ART's per-image scipy loop;
    the batched L-BFGS lands where ART's L-BFGS-B does, with an objective no worse on average."""
    from art.defences.preprocessor import TotalVarMin as ArtTVM
    from advlab.purifiers.classical import TotalVarMin
    from advlab.purifiers.tvm import minimize_tv, tv_gradient, tv_objective

    x = mnist_sample[2][:24].copy()
    ours = TotalVarMin(prob=0.3, lamb=0.5, max_iter=10)
    np.random.seed(3)
    masks = ours.draw_masks(x)
    np.random.seed(3)
    x_art = ArtTVM(prob=0.3, lamb=0.5, max_iter=10, clip_values=(0.0, 1.0))(x.copy())[0]
    np.random.seed(3)
    x_ours = ours(x)                                   # draws the same masks itself
    assert np.abs(x_ours - x_art).mean() < 0.01
    sl = lambda a: a[..., 0].astype(np.float32)       # noqa: E731
    obj = lambda z: np.asarray(tv_objective(sl(z), sl(x), sl(masks), 0.5))   # noqa: E731
    f_start, f_art = obj(x), obj(x_art)
    f_ours = np.asarray(tv_objective(minimize_tv(sl(x), sl(masks)), sl(x), sl(masks), 0.5))
    assert (f_ours < f_start).all()                   # every image moved downhill
    assert f_ours.mean() <= 1.01 * f_art.mean()
    # the objective and its gradient are ART's, term by term, on a random point
    z = np.random.default_rng(0).random((28, 28))
    xi, mi = sl(x)[0].astype(np.float64), sl(masks)[0].astype(np.float64)
    batch = lambda a: a[None].astype(np.float32)     # noqa: E731
    np.testing.assert_allclose(float(tv_objective(batch(z), batch(xi), batch(mi), 0.5)[0]),
                               ArtTVM._loss_func(z.ravel(), xi, mi, 2, 0.5), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(tv_gradient(batch(z), batch(xi), batch(mi), 0.5))[0].ravel(),
                               ArtTVM._deri_loss_func(z.ravel(), xi, mi, 2, 0.5), rtol=1e-3, atol=1e-4)


def test_tvm_is_random_and_checks_its_parameters(x):
    from advlab.purifiers.classical import TotalVarMin

    p = TotalVarMin()
    assert not np.array_equal(p(x[:2]), p(x[:2]))     # a new mask per call
    for bad in ({"prob": 0.0}, {"prob": 1.5}, {"lamb": -1.0}, {"max_iter": 0}, {"memory": 2.5}):
        with pytest.raises(ValueError):
            TotalVarMin(**bad)

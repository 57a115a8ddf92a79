"""Classical pre-processing defences behind the common :class:`~advlab.purifiers.Purifier` interface.

Three come from ART (``art.defences.preprocessor``), one (TVM) is ART's objective batched in
TF, and one is scikit-image's:

* ``bit_depth`` - :class:`FeatureSqueezing` (Xu et al. 2018): round each pixel to ``2**bits``
  levels. Piecewise constant, so its true gradient is zero almost everywhere.
* ``median`` - :class:`SpatialSmoothing`: a ``k x k`` median filter.
* ``jpeg`` - :class:`JpegCompression` at a given quality.
* ``tvm`` - total-variation minimisation (Guo et al. 2018): drop a random subset of pixels and
  reconstruct the image by minimising total variation. ART's ``TotalVarMin`` objective, solved
  for the whole batch at once (:mod:`advlab.purifiers.tvm`). Random (``stochastic = True``).
* ``wavelet`` - ``skimage.restoration.denoise_wavelet`` (BayesShrink soft thresholding), the
  "WD" in the residual-cGAN paper's ImageNet comparison.

None is differentiable: called on a tensor they run through ``tf.numpy_function`` and stop
gradients. Use :func:`advlab.evaluation.adaptive.bpda` to attack them (identity backward pass).
"""
from __future__ import annotations

import numpy as np

from advlab.purifiers import Purifier, tvm
from advlab.evaluation.transforms import check_images


class NumpyPurifier(Purifier):
    """A purifier implemented in numpy: batched on arrays, ``tf.numpy_function`` on tensors."""

    differentiable = False

    def purify_numpy(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x, batch_size: int = 256):
        if isinstance(x, np.ndarray):
            x = check_images(x)
            out = [self.purify_numpy(x[i:i + batch_size].copy()) for i in range(0, len(x), batch_size)]
            out = np.concatenate(out) if out else x.copy()
            return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(x.shape)
        return self.purify_tensor(x)

    def purify_tensor(self, x):
        import tensorflow as tf

        y = tf.numpy_function(lambda a: self(np.asarray(a, np.float32)), [x], tf.float32,
                              stateful=self.stochastic)
        return tf.ensure_shape(y, x.shape)


class ArtPurifier(NumpyPurifier):
    """Any ART ``Preprocessor`` (called as ``pre(x)[0]``) as a lab purifier."""

    def __init__(self, preprocessor, name: str, stochastic: bool = False):
        self.pre = preprocessor
        self.name = name
        self.stochastic = stochastic

    def purify_numpy(self, x):
        return np.asarray(self.pre(x)[0], np.float32)


def feature_squeezing(bits: int = 4) -> ArtPurifier:
    """Bit-depth reduction to ``bits`` bits per channel (MNIST: 1 bit is the classic choice)."""
    from art.defences.preprocessor import FeatureSqueezing

    if not 1 <= int(bits) <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}.")
    purifier = ArtPurifier(FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=int(bits)), f"bit_depth_{bits}")
    purifier.quantization_levels = 2 ** int(bits) - 1   # round(L x) / L: the attack designed for it reads L
    return purifier


class RoundedBits(Purifier):
    """:func:`feature_squeezing` as a TF op (the same output): ``tf.round`` has no gradient in
    TensorFlow (an attack reads it as zero), so exact-gradient attacks on it show gradient masking."""

    def __init__(self, bits: int = 4):
        if not 1 <= int(bits) <= 8:
            raise ValueError(f"bits must be in 1..8, got {bits}.")
        self.levels = self.quantization_levels = 2 ** int(bits) - 1
        self.name = f"bit_depth_{bits}_tf"
        self.stochastic = False

    def purify_tensor(self, x):
        import tensorflow as tf

        return tf.round(x * self.levels) / self.levels


def spatial_smoothing(window: int = 3) -> ArtPurifier:
    """Median filter over a ``window x window`` neighbourhood."""
    from art.defences.preprocessor import SpatialSmoothing

    if int(window) < 2:
        raise ValueError(f"window must be >= 2, got {window}.")
    return ArtPurifier(SpatialSmoothing(window_size=int(window), clip_values=(0.0, 1.0)), f"median_{window}")


def jpeg_compression(quality: int = 50) -> ArtPurifier:
    """JPEG encode/decode at ``quality`` (1..100)."""
    from art.defences.preprocessor import JpegCompression

    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}.")
    return ArtPurifier(JpegCompression(clip_values=(0.0, 1.0), quality=int(quality)), f"jpeg_{quality}")


def total_variation(prob: float = 0.3, lamb: float = 0.5, max_iter: int = 10) -> "TotalVarMin":
    """TVM (Guo et al. 2018): keep each pixel with probability ``prob``, minimise TV (random)."""
    return TotalVarMin(prob=prob, lamb=lamb, max_iter=int(max_iter))


class TotalVarMin(NumpyPurifier):
    """TVM with ART's parameters and objective, solved for the whole batch at once (see module doc).

    Random (a new pixel mask per call), not differentiable: attack it with BPDA + EOT.
    """

    stochastic = True

    def __init__(self, prob: float = 0.3, lamb: float = 0.5, max_iter: int = 10, memory: int = 10):
        if not 0.0 < float(prob) <= 1.0:
            raise ValueError(f"prob must be in (0, 1], got {prob}.")
        if float(lamb) < 0:
            raise ValueError(f"lamb must be >= 0, got {lamb}.")
        for key, val in (("max_iter", max_iter), ("memory", memory)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{key} must be a positive integer, got {val!r}.")
        self.prob, self.lamb, self.max_iter, self.memory = float(prob), float(lamb), max_iter, memory
        self.name = "tvm"

    def draw_masks(self, x: np.ndarray) -> np.ndarray:
        """One Bernoulli(prob) keep-mask per image, drawn as ART draws it (global NumPy generator)."""
        return np.stack([(np.random.rand(*xi.shape) < self.prob) for xi in x]).astype(np.float32)

    def purify_numpy(self, x, mask=None):
        mask = self.draw_masks(x) if mask is None else np.asarray(mask, np.float32)
        n, h, w, c = x.shape
        to_slices = lambda a: np.moveaxis(a, -1, 1).reshape(n * c, h, w)   # noqa: E731
        z = tvm.minimize_tv(to_slices(x), to_slices(mask), self.lamb, self.max_iter, self.memory)
        z = np.moveaxis(z.reshape(n, c, h, w), 1, -1)
        return np.clip(z, 0.0, 1.0).astype(np.float32)


class WaveletDenoise(NumpyPurifier):
    """scikit-image ``denoise_wavelet`` per image (BayesShrink, soft threshold).

    ``sigma=None`` lets scikit-image estimate the noise level per image.
    """

    def __init__(self, sigma: float | None = None, wavelet: str = "db1", method: str = "BayesShrink"):
        if sigma is not None and sigma <= 0:
            raise ValueError(f"sigma must be positive or None, got {sigma}.")
        self.sigma, self.wavelet, self.method = sigma, wavelet, method
        self.name = "wavelet"

    def purify_numpy(self, x):
        from skimage.restoration import denoise_wavelet

        out = np.empty_like(x)
        for i, img in enumerate(x):
            out[i] = denoise_wavelet(img, sigma=self.sigma, wavelet=self.wavelet, method=self.method,
                                     mode="soft", channel_axis=-1, rescale_sigma=True)
        return out


CLASSICAL = ("bit_depth", "median", "jpeg", "tvm", "wavelet")


def build_classical(name: str, **params) -> NumpyPurifier:
    """One classical defence by name (see ``CLASSICAL``) with its own parameters."""
    makers = {"bit_depth": feature_squeezing, "median": spatial_smoothing, "jpeg": jpeg_compression,
              "tvm": total_variation, "wavelet": WaveletDenoise}
    if name not in makers:
        raise ValueError(f"Unknown classical defence {name!r}; choose one of {CLASSICAL}.")
    return makers[name](**params)


def mnist_defaults() -> dict[str, dict]:
    """Parameters used in the comparison for 28x28 grey digits (bit depth 1 as in Xu et al.)."""
    return {"bit_depth": {"bits": 1}, "median": {"window": 3}, "jpeg": {"quality": 50},
            "tvm": {"prob": 0.3, "lamb": 0.5, "max_iter": 10}, "wavelet": {}}

"""Property-based tests (Hypothesis) of the validation layer, plus a fixed catalogue of bad inputs
that feeds the README table.

Property: for random shapes, dtypes, value ranges, NaNs and parameter values, each entry point
either raises a clear ``ValueError``/``TypeError`` or returns float32 images of the input's shape
in [0, 1] (attacks: within the L-inf budget ``eps``), and never modifies its input.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advlab import attacks
from advlab.evaluation.transforms import check_images
from bad_inputs import record

SETTINGS = dict(deadline=None, database=None,   # no .hypothesis folder: tests write nothing in the checkout
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
DTYPES = ("float32", "float64", "float16", "uint8", "int32", "bool", "complex64", "object")
_TRIED: dict[str, int] = {}


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(3, 3, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)], name="tiny")


@st.composite
def images(draw, shapes, allow_empty=True):
    """A random array: shape from ``shapes``, a random dtype, values in a random range, maybe NaNs."""
    shape = draw(st.sampled_from(shapes))
    if allow_empty and draw(st.integers(0, 9)) == 0:
        shape = (0,) + tuple(shape[1:])
    dtype = draw(st.sampled_from(DTYPES))
    lo, hi = sorted(draw(st.sampled_from([(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (-0.5, 1.0), (0.0, 255.0),
                                          (0.2, 0.8), (1.0, 1.5)])))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.uniform(lo, hi, shape)
    if dtype in ("float32", "float64", "float16") and x.size and draw(st.integers(0, 5)) == 0:
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
    if dtype in ("uint8", "int32"):
        x = np.round(x)
    return x.astype(dtype) if dtype != "object" else x.astype(object)


def _count(name: str) -> None:
    _TRIED[name] = _TRIED.get(name, 0) + 1


def _check_output(x_in, before, out, eps=None):
    np.testing.assert_array_equal(x_in, before)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == np.shape(x_in)
    if out.size:
        assert out.min() >= 0.0 and out.max() <= 1.0
    if eps is not None and out.size:
        assert np.abs(out - np.asarray(x_in, np.float32)).max() <= eps + 1e-6


ATTACK_SHAPES = [(2, 28, 28, 1), (1, 28, 28, 1), (3, 28, 28, 1), (2, 28, 28, 3), (2, 27, 28, 1), (28, 28, 1),
                 (2, 28, 28), (4, 2, 28, 28, 1)]
EPS = [0.0, 0.05, 0.3, 1.0, -0.1, 1.5, float("nan"), "0.1", None, True]


@settings(max_examples=40, **SETTINGS)
@given(x=images(ATTACK_SHAPES), name=st.sampled_from(["fgsm", "pgd"]), eps=st.sampled_from(EPS),
       nb_iter=st.sampled_from([1, 2, 0, 2.5, -1]), labels=st.sampled_from(["none", "ok", "short", "range"]))
def test_attack_validates_or_returns_images_in_budget(tiny_model, x, name, eps, nb_iter, labels):
    _count("attack")
    before = x.copy()
    n = x.shape[0] if x.ndim else 0
    y = {"none": None, "ok": np.arange(n) % 10, "short": np.zeros(max(n - 1, 0), np.int64),
         "range": np.full(n, 12)}[labels]
    params = {} if eps is None else {"eps": eps}
    if name == "pgd":
        params.update(nb_iter=nb_iter, eps_iter=0.01)
    try:
        out = attacks.attack(name, tiny_model, x, y, progress=False, **params)
    except (ValueError, TypeError) as err:
        assert str(err), "an error must say what was wrong"
        np.testing.assert_array_equal(x, before)
        return
    _check_output(x, before, out, eps=attacks.default_params(name, "paper").get("eps") if eps is None else eps)


IMAGE_SHAPES = [(2, 8, 8, 1), (1, 6, 6, 3), (3, 5, 7, 1), (2, 8, 8, 2), (2, 1, 8, 8), (8, 8, 1), (2, 8, 8, 4)]


@settings(max_examples=40, **SETTINGS)
@given(x=images(IMAGE_SHAPES))
def test_check_images_accepts_only_valid_batches(x):
    _count("check_images")
    before = x.copy()
    try:
        out = check_images(x)
    except (ValueError, TypeError) as err:
        assert str(err)
        return
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32 and out.shape == x.shape


@pytest.fixture(scope="module")
def purifiers():
    import keras

    from advlab.purifiers import KerasPurifier
    from advlab.purifiers.classical import build_classical

    keras.utils.set_random_seed(5)
    grey = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 3, padding="same"),
                             keras.layers.Activation("sigmoid")], name="tiny_purifier")
    return {"keras (1 channel)": KerasPurifier(grey), "median": build_classical("median", window=3),
            "bit_depth": build_classical("bit_depth", bits=2), "jpeg": build_classical("jpeg", quality=50)}


@settings(max_examples=50, **SETTINGS)
@given(x=images(IMAGE_SHAPES), which=st.sampled_from(["keras (1 channel)", "median", "bit_depth", "jpeg"]))
def test_purifiers_validate_or_return_images(purifiers, x, which):
    _count("purifiers")
    if which.startswith("keras") and x.ndim == 4 and x.shape[-1] != 1:
        x = x[..., :1]                       # the tiny Keras purifier is built for grey images
    before = x.copy()
    try:
        out = purifiers[which](x)
    except (ValueError, TypeError) as err:
        assert str(err)
        np.testing.assert_array_equal(x, before)
        return
    _check_output(x, before, out)


def test_report_how_many_cases_hypothesis_tried():
    """Printed with ``-s``; the numbers go into the coordinator's report."""
    print({k: v for k, v in sorted(_TRIED.items())})
    assert all(v > 0 for v in _TRIED.values())


# ------------------------------------------------------------------------ the README's catalogue
def _x(shape=(2, 28, 28, 1), value=0.5, dtype=np.float32):
    return np.full(shape, value, dtype)


ATTACK_CASES = {
    "images in 0-255 (float)": dict(x=_x(value=200.0)),
    "uint8 images 0-255": dict(x=_x(value=200, dtype=np.uint8)),
    "images containing NaN": dict(x=np.where(np.eye(28)[None, ..., None] > 0, np.nan, 0.5).repeat(2, 0)),
    "one image without a batch axis (28, 28, 1)": dict(x=_x((28, 28, 1))),
    "grey images without a channel axis (N, 28, 28)": dict(x=_x((2, 28, 28))),
    "RGB images for a grey model": dict(x=_x((2, 28, 28, 3))),
    "an empty batch (0 images)": dict(x=_x((0, 28, 28, 1))),
    "labels of the wrong length": dict(x=_x(), y=np.zeros(3, np.int64)),
    "labels outside the classes": dict(x=_x(), y=np.array([3, 12])),
    "eps = 16 (pixel units)": dict(x=_x(), eps=16),
    "eps < 0": dict(x=_x(), eps=-0.1),
    "eps as a string": dict(x=_x(), eps="0.1"),
    "an unknown attack name": dict(x=_x(), name="jsma"),
    "an unknown attack parameter": dict(x=_x(), steps_size=0.1),
    "PGD with nb_iter = 0": dict(x=_x(), name="pgd", nb_iter=0),
    "complex images": dict(x=_x().astype(np.complex64)),
}


@pytest.mark.parametrize("given_", sorted(ATTACK_CASES))
def test_catalogue_attack(tiny_model, given_):
    case = dict(ATTACK_CASES[given_])
    x, y, name = case.pop("x"), case.pop("y", None), case.pop("name", "fgsm")
    before = x.copy()
    with pytest.raises((ValueError, TypeError)) as err:
        attacks.attack(name, tiny_model, x, y, progress=False, **case)
    np.testing.assert_array_equal(x, before)
    record(given_, err.value, call=f"attacks.attack({name!r}, ...)")


PURIFIER_CASES = {
    "channels-first images (N, C, H, W)": _x((2, 1, 8, 8)),
    "integer images": _x((2, 8, 8, 1), 1, np.int64),
    "images outside [0, 1]": _x((2, 8, 8, 1), 1.5),
    "images containing inf": np.where(np.eye(8)[None, ..., None] > 0, np.inf, 0.5).repeat(2, 0),
    "a single image (8, 8, 3)": _x((8, 8, 3)),
}


@pytest.mark.parametrize("given_", sorted(PURIFIER_CASES))
def test_catalogue_purifier(purifiers, given_):
    x = PURIFIER_CASES[given_]
    before = x.copy()
    with pytest.raises(ValueError) as err:
        purifiers["median"](x)
    np.testing.assert_array_equal(x, before)
    record(given_, err.value, call="purifier(x)")

"""Each loss term against values computed by hand on tiny tensors; perceptual backbone choice."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from advlab.training import losses, perceptual


def softplus(z):
    return math.log1p(math.exp(z))


def test_generator_gan_loss_by_hand():
    fake = np.array([[[[0.0]], [[2.0]]]], np.float32)          # two patch logits
    # -log sigmoid(z) = log(1 + e^-z)
    expected = (softplus(-0.0) + softplus(-2.0)) / 2
    assert float(losses.generator_gan_loss(fake)) == pytest.approx(expected, rel=1e-6)


def test_discriminator_loss_by_hand():
    real = np.array([1.0, -1.0], np.float32)
    fake = np.array([0.5, -3.0], np.float32)
    # real wants label 1: log(1+e^-z); fake wants label 0: log(1+e^z)
    expected = (softplus(-1.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
    assert float(losses.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)


def test_l1_by_hand():
    y = np.array([[[[0.0], [1.0]], [[0.5], [0.25]]]], np.float32)
    g = np.array([[[[0.5], [1.0]], [[0.0], [0.0]]]], np.float32)
    assert float(losses.l1_loss(y, g)) == pytest.approx((0.5 + 0 + 0.5 + 0.25) / 4)


def test_perceptual_by_hand():
    # V_1 = 2x, V_2 = per-image mean: loss = mean|2y - 2g| + mean|mean(y) - mean(g)|
    features = lambda t: [2.0 * t, keras.ops.mean(t, axis=(1, 2, 3))]  # noqa: E731
    y = np.array([[[[1.0], [0.0]]], [[[0.0], [0.0]]]], np.float32)    # (2, 1, 2, 1)
    g = np.array([[[[0.0], [0.0]]], [[[1.0], [1.0]]]], np.float32)
    expected = (2 * 1 + 0 + 2 * 1 + 2 * 1) / 4 + (abs(0.5 - 0) + abs(0 - 1)) / 2
    assert float(losses.perceptual_loss(features, y, g)) == pytest.approx(expected)


def test_feature_distance_length_mismatch():
    with pytest.raises(ValueError, match="length"):
        losses.feature_distance([np.zeros(2)], [])


def test_generator_objective_combines_terms():
    fake = np.zeros((1, 2, 2, 1), np.float32)
    y = np.zeros((1, 2, 2, 1), np.float32)
    g = np.full((1, 2, 2, 1), 0.1, np.float32)
    features = lambda t: [t]  # noqa: E731
    out = losses.pix2pix_generator_loss(fake, y, g, lambda_l1=100.0, lambda_perc=1.0, features=features)
    assert float(out["gan"]) == pytest.approx(math.log(2))
    assert float(out["l1"]) == pytest.approx(0.1) and float(out["perc"]) == pytest.approx(0.1)
    assert float(out["total"]) == pytest.approx(math.log(2) + 100 * 0.1 + 0.1, rel=1e-5)
    no_perc = losses.pix2pix_generator_loss(fake, y, g, features=None)
    assert float(no_perc["perc"]) == 0.0


def _tiny_classifier():
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inp)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(8, activation="relu", name="d1")(h)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(h), name="tiny")


def test_classifier_features_exclude_logits(capsys):
    fx = perceptual.make_perceptual("classifier", (28, 28, 1), classifier=_tiny_classifier())
    assert "target classifier" in capsys.readouterr().out
    feats = fx(np.zeros((2, 28, 28, 1), np.float32))
    assert [tuple(f.shape) for f in feats] == [(2, 26, 26, 4), (2, 8)]
    assert not fx.model.trainable


def test_vgg19_random_only_when_explicit(capsys):
    with pytest.raises(perceptual.PerceptualUnavailable, match="random"):
        perceptual.vgg19_features((28, 28, 1), weights=None)
    fx = perceptual.make_perceptual("vgg19-random", (28, 28, 1))
    assert "RANDOM" in capsys.readouterr().out
    feats = fx(np.zeros((1, 28, 28, 1), np.float32))        # gray -> RGB, 28 -> 32
    assert len(feats) == 15 and feats[0].shape == (1, 32, 32, 64)


def test_auto_falls_back_to_classifier_loudly(monkeypatch, capsys):
    def offline(*a, **k):
        raise perceptual.PerceptualUnavailable("no internet")

    monkeypatch.setattr(perceptual, "vgg19_features", offline)
    fx = perceptual.make_perceptual("auto", (28, 28, 1), classifier=_tiny_classifier())
    assert "NOTICE" in capsys.readouterr().out and "tiny" in fx.description
    with pytest.raises(perceptual.PerceptualUnavailable, match="classifier="):
        perceptual.make_perceptual("auto", (28, 28, 1))


@pytest.mark.parametrize("spec, kwargs, error, match", [
    ("classifier", {}, ValueError, "needs the target classifier"),
    ("resnet", {}, ValueError, "Unknown perceptual"),
    ("/nonexistent/vgg19.h5", {}, perceptual.PerceptualUnavailable, "not found"),
])
def test_bad_perceptual_specs(spec, kwargs, error, match):
    with pytest.raises(error, match=match):
        perceptual.make_perceptual(spec, (28, 28, 1), **kwargs)


def test_classifier_features_of_wrapped_backbone():
    """A keras.applications-style target: preprocessing layers, then a backbone giving logits."""
    inner_in = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, name="b1")(inner_in)
    h = keras.layers.Conv2D(6, 3, name="b2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    inner = keras.Model(inner_in, keras.layers.Dense(10, name="logits")(h), name="backbone")
    outer_in = keras.Input((32, 32, 3))
    resized = keras.layers.Resizing(16, 16, name="resize")(outer_in)
    wrapper = keras.Model(outer_in, inner(resized), name="wrapped")
    fx = perceptual.classifier_features(wrapper)
    feats = fx(np.zeros((2, 32, 32, 3), np.float32))
    assert "backbone" in fx.description and all(len(f.shape) == 4 for f in feats)
    assert feats[-1].shape == (2, 12, 12, 6)                 # ends at the backbone's last feature map

"""advlab.classifiers: architectures return logits on [0, 1] inputs, train/save/load, cache."""
from __future__ import annotations

import numpy as np
import pytest

from advlab import classifiers
from advlab.classifiers.archs import build_classifier


@pytest.mark.parametrize("arch", ["mnist_cnn", "mnist_lenet", "mnist_mlp"])
def test_mnist_archs_return_logits(arch):
    model = build_classifier(arch)
    assert model.input_shape == (None, 28, 28, 1)
    out = np.asarray(model(np.random.default_rng(0).random((4, 28, 28, 1), np.float32)))
    assert out.shape == (4, 10)
    assert not np.allclose(out.sum(-1), 1.0), "outputs look like probabilities, expected logits"


def test_mnist_archs_are_different():
    counts = {a: build_classifier(a).count_params() for a in ("mnist_cnn", "mnist_lenet", "mnist_mlp")}
    assert len(set(counts.values())) == 3, counts


def test_cifar_resnet_shapes():
    model = build_classifier("cifar_resnet")
    assert model.input_shape == (None, 32, 32, 3)
    assert np.asarray(model(np.zeros((2, 32, 32, 3), np.float32))).shape == (2, 10)


@pytest.mark.parametrize("arch", ["inceptionv3", "resnet50v2", "inceptionresnetv2"])
def test_imagenet_wrappers_without_weights(arch, capsys):
    # Stand-in: ImageNet weights cannot be downloaded here, so the wrappers are built with
    # weights=None (architecture, resizing and [-1, 1] preprocessing are what is tested).
    print(f"{arch}: built with weights=None (offline stand-in for the pretrained model)")
    model = build_classifier(arch, input_shape=(32, 32, 3), num_classes=10, weights=None)
    out = np.asarray(model(np.random.default_rng(0).random((1, 32, 32, 3), np.float32)))
    assert out.shape == (1, 10) and np.all(np.isfinite(out))
    scale = model.get_layer("to_minus1_1")
    assert np.allclose(np.asarray(scale(np.array([[0.0, 0.5, 1.0]], np.float32))), [[-1.0, 0.0, 1.0]])
    assert "resize" in [layer.name for layer in model.layers]
    assert "weights=None" in capsys.readouterr().out


def test_imagenet_wrapper_at_a_reduced_side_keeps_its_parameters():
    # the stand-in side of notebook 05: no resize layer, the same 25.6 M parameters as at 224
    model = build_classifier("resnet50v2", input_shape=(64, 64, 3), num_classes=1000, side=64)
    assert "resize" not in [layer.name for layer in model.layers]
    assert model.count_params() == 25_613_800
    assert np.asarray(model(np.zeros((1, 64, 64, 3), np.float32))).shape == (1, 1000)
    with pytest.raises(ValueError, match="native side 224"):
        build_classifier("resnet50v2", input_shape=(64, 64, 3), num_classes=1000, weights="imagenet", side=64)
    with pytest.raises(ValueError, match="side applies to the ImageNet"):
        build_classifier("mnist_cnn", side=32)


def test_build_errors():
    with pytest.raises(ValueError, match="Unknown classifier architecture 'vgg'.*mnist_cnn"):
        build_classifier("vgg")
    with pytest.raises(ValueError, match="RGB"):
        build_classifier("resnet50v2", input_shape=(64, 64, 1))
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_classifier("mnist_cnn", weights="imagenet")


def test_trained_fixture_predicts(mnist_cnn, mnist_sample):
    _, _, x_te, y_te = mnist_sample
    labels = classifiers.predict_labels(mnist_cnn, x_te[:50], batch_size=16)
    assert labels.dtype == np.int64 and labels.shape == (50,)
    acc = classifiers.accuracy(mnist_cnn, x_te, y_te)
    assert 0.9 <= acc <= 1.0
    with pytest.raises(ValueError, match="labels"):
        classifiers.accuracy(mnist_cnn, x_te[:5], y_te[:4])


def test_save_load_roundtrip_and_errors(mnist_cnn, mnist_sample, tmp_path):
    x = mnist_sample[2][:20]
    path = classifiers.save_classifier(mnist_cnn, tmp_path / "m.keras", metadata={"note": "test"})
    loaded = classifiers.load_classifier(path, input_shape=(28, 28, 1), num_classes=10)
    np.testing.assert_allclose(classifiers.predict_logits(loaded, x), classifiers.predict_logits(mnist_cnn, x),
                               atol=1e-5)
    assert classifiers.fingerprint(loaded) == classifiers.fingerprint(mnist_cnn)
    with pytest.raises(FileNotFoundError, match="No classifier checkpoint"):
        classifiers.load_classifier(tmp_path / "missing.keras")
    with pytest.raises(classifiers.CheckpointMismatch, match=r"expects inputs \(28, 28, 1\), not \(32, 32, 3\)"):
        classifiers.load_classifier(path, input_shape=(32, 32, 3))
    with pytest.raises(classifiers.CheckpointMismatch, match="predicts 10 classes, not 1000"):
        classifiers.load_classifier(path, num_classes=1000)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(classifiers.CheckpointMismatch, match="corrupt"):
        classifiers.load_classifier(bad)


def test_get_classifier_trains_once_then_loads(capsys):
    from advlab.config import get_config

    cfg = get_config("smoke", n_train=256, n_test=100, classifier_epochs=1, seed=3)
    first = classifiers.get_classifier("mnist", cfg, arch="mnist_mlp", verbose=True)
    out = capsys.readouterr().out
    assert "trained mnist_mlp" in out and "clean test accuracy" in out
    second = classifiers.get_classifier("mnist", cfg, arch="mnist_mlp", verbose=True)
    assert "loaded mnist_mlp" in capsys.readouterr().out
    assert classifiers.fingerprint(first) == classifiers.fingerprint(second)


def test_imagenet_without_internet_says_how_to_proceed(monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.applications, "ResNet50V2", offline)
    with pytest.raises(RuntimeError, match=r"pretrained ImageNet weights of resnet50v2.*weights=None"):
        classifiers.get_classifier("imagenet", arch="resnet50v2")

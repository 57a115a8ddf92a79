"""Target classifiers: build, train, save/load, and one cached :func:`get_classifier` for notebooks.

Every classifier takes NHWC images in [0, 1] and returns logits (see
:mod:`advlab.classifiers.archs` for the architectures). Trained models are cached in
``cache_dir("classifiers")`` under a :func:`advlab.io.cache.cache_key` of everything that changes
them (the training images' content, arch, epochs, batch size, seed), so all notebooks share one
training; two kernels asking at once train once (the second waits for the file lock, then loads).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from advlab.classifiers.archs import ARCHS, build_classifier  # noqa: F401  (re-exported)

DEFAULT_ARCH = {"mnist": "mnist_cnn", "fashion_mnist": "mnist_cnn", "cifar10": "cifar_resnet",
                "imagenet": "inceptionv3"}


class CheckpointMismatch(ValueError):
    """A saved classifier exists but is not the model that was asked for."""


def _compile(model, learning_rate: float = 3e-3, total_steps: int | None = None):
    """Adam + cross-entropy on logits; the learning rate follows a cosine decay over the run."""
    import keras

    lr = learning_rate
    if total_steps:
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def train_classifier(model, x, y, epochs: int, batch_size: int = 128, validation_data=None,
                     verbose="auto", learning_rate: float = 3e-3, seed: int | None = 0):
    """Train ``model`` (logits out) with Adam + cross-entropy; returns the Keras ``History``.

    An uncompiled model is compiled with Adam (``learning_rate`` decayed by a cosine schedule
    over the ``epochs``); a model you compiled yourself is trained as is. Prints the wall-clock
    training time. ``x`` in [0, 1] NHWC, ``y`` integer labels.
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"Training images must be in [0, 1]; got range [{x.min():.3g}, {x.max():.3g}].")
    if seed is not None:
        from advlab.io.seeding import set_seed
        set_seed(seed)
    if not getattr(model, "compiled", False):
        _compile(model, learning_rate, total_steps=int(epochs) * -(-len(x) // int(batch_size)))
    start = time.perf_counter()
    history = model.fit(x, y, epochs=int(epochs), batch_size=int(batch_size),
                        validation_data=validation_data, verbose=verbose, shuffle=True)
    seconds = time.perf_counter() - start
    history.history["train_seconds"] = seconds
    print(f"[advlab.classifiers] trained {model.name} on {len(x)} images for {epochs} epoch(s) "
          f"in {seconds:.1f} s")
    return history


def save_classifier(model, path, metadata: dict | None = None) -> Path:
    """Save ``model`` as a ``.keras`` file (plus ``<name>.json`` metadata if given)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Classifier files end in .keras, got {path.name!r}.")
    from advlab.io.cache import save_json_atomic, save_model_atomic

    if metadata is not None:      # first, so a model file on disk always has its metadata
        save_json_atomic(path.with_suffix(".json"), metadata)
    return save_model_atomic(model, path)


def load_classifier(path, input_shape=None, num_classes: int | None = None, compile: bool = False):
    """Load a ``.keras`` classifier; check its input shape / number of classes if given.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointMismatch` when the file
    is unreadable or holds a different model than expected.
    """
    from advlab.io.models import ModelFileCorrupt, load_model

    path = Path(path)
    rebuild = "Train one with advlab.classifiers.get_classifier() or train_classifier() + save_classifier()."
    try:
        model = load_model(path, what="classifier checkpoint", rebuild=rebuild, compile=compile)
    except ModelFileCorrupt as err:
        raise CheckpointMismatch(str(err)) from err
    got_shape = tuple(model.input_shape[1:])
    if input_shape is not None and got_shape != tuple(input_shape):
        raise CheckpointMismatch(f"{path} expects inputs {got_shape}, not {tuple(input_shape)}.")
    got_classes = model.output_shape[-1]
    if num_classes is not None and got_classes != num_classes:
        raise CheckpointMismatch(f"{path} predicts {got_classes} classes, not {num_classes}.")
    return model


def predict_logits(model, x, batch_size: int = 256) -> np.ndarray:
    """Logits of ``model`` on ``x`` in batches (inference mode)."""
    import tensorflow as tf

    x = np.asarray(x, np.float32)
    out = [np.asarray(model(tf.convert_to_tensor(x[i:i + batch_size]), training=False))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def predict_labels(model, x, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices (int64)."""
    return predict_logits(model, x, batch_size).argmax(-1).astype(np.int64)


def accuracy(model, x, y, batch_size: int = 256) -> float:
    """Fraction of ``x`` classified as ``y``, in [0, 1]."""
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
    if len(y) == 0:
        return float("nan")
    return float(np.mean(predict_labels(model, x, batch_size) == y))


def fingerprint(model) -> str:
    """A short hash of a model's shapes and weights, not its name (:func:`advlab.io.cache.weights_digest`)."""
    from advlab.io.cache import weights_digest

    return weights_digest(model)


def checkpoint_path(dataset: str, arch: str, x, y, epochs: int, batch_size: int, seed: int) -> Path:
    """Where the classifier trained on ``(x, y)`` with these settings is cached: a readable
    ``<dataset>_<arch>_`` prefix and the content key (the images and labels, not their name)."""
    from advlab.io.cache import array_digest, cache_key
    from advlab.io.paths import cache_dir

    key = cache_key(kind="classifier", dataset=dataset, arch=arch, data=array_digest(x, y),
                    epochs=int(epochs), batch_size=int(batch_size), seed=int(seed))
    return cache_dir("classifiers") / f"{dataset}_{arch}_{key}.keras"


def get_classifier(dataset: str, cfg=None, arch: str | None = None, retrain: bool = False,
                   verbose: bool = True):
    """A trained classifier for ``dataset`` at the scale of ``cfg`` (cached on disk).

    The first call trains on ``cfg.n_train`` images from ``cfg.data_source`` for
    ``cfg.classifier_epochs`` epochs, reports clean test accuracy and training time, and saves
    the model; later calls (any notebook) load it. ImageNet models are the pretrained
    ``keras.applications`` weights (downloaded by Keras; needs internet once).
    """
    from advlab.io import data
    from advlab.config import get_config

    cfg = cfg or get_config()
    ds = data.info(dataset)
    arch = (arch or DEFAULT_ARCH[ds.name]).lower()
    if ds.name == "imagenet":
        try:
            return build_classifier(arch, input_shape=ds.image_shape, num_classes=1000, weights="imagenet")
        except Exception as err:  # keras raises a bare Exception for a failed download
            if isinstance(err, ValueError) and "Unknown classifier" in str(err):
                raise
            raise RuntimeError(
                f"Could not get the pretrained ImageNet weights of {arch} ({type(err).__name__}: {err}). "
                "Keras downloads them once (needs internet) into ~/.keras/models. Offline, build the "
                f"untrained wrapper with build_classifier({arch!r}, weights=None) and say so.") from err
    x, y = data.load(ds.name, "train", source=cfg.data_source, limit=cfg.n_train, verbose=verbose)
    path = checkpoint_path(ds.name, arch, x, y, cfg.classifier_epochs, cfg.batch_size, cfg.seed)

    def load():
        if not path.is_file():
            return None
        try:
            model = load_classifier(path, input_shape=ds.image_shape, num_classes=ds.num_classes)
        except CheckpointMismatch as err:
            print(f"[advlab.classifiers] {err} Retraining.")
            return None
        if verbose:
            meta = path.with_suffix(".json")
            acc = json.loads(meta.read_text()).get("test_accuracy") if meta.is_file() else None
            print(f"[advlab.classifiers] loaded {arch} for {ds.name} from {path}"
                  + (f" (clean test accuracy {acc:.2%})" if acc is not None else ""))
        return model

    def train():
        from advlab.io.seeding import set_seed

        x_te, y_te = data.load(ds.name, "test", source=cfg.data_source, limit=cfg.n_test, verbose=verbose)
        set_seed(cfg.seed)   # the initial weights too: a classifier trained again is the same model
        model = build_classifier(arch, input_shape=ds.image_shape, num_classes=ds.num_classes)
        hist = train_classifier(model, x, y, epochs=cfg.classifier_epochs, batch_size=cfg.batch_size,
                                verbose=2 if verbose else 0, seed=cfg.seed)
        acc = accuracy(model, x_te, y_te)
        if verbose:
            print(f"[advlab.classifiers] {arch} on {ds.name}: clean test accuracy {acc:.2%} "
                  f"on {len(y_te)} test images")
        save_classifier(model, path, metadata={
            "dataset": ds.name, "arch": arch, "source": cfg.data_source, "n_train": len(x),
            "epochs": cfg.classifier_epochs, "seed": cfg.seed, "test_accuracy": acc,
            "n_test": len(y_te), "train_seconds": hist.history["train_seconds"],
            "fingerprint": fingerprint(model)})
        return model

    from advlab.io.cache import get_or_compute

    return get_or_compute(path, train, load, refresh=retrain)


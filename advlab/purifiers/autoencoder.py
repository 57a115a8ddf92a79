"""Convolutional auto-encoder purifier ("Defense Against Adversarial Attacks using Convolutional
Auto-Encoders", arXiv 2312.03520).

A U-shaped encoder-decoder with skip connections maps an adversarial image back to its clean
version. It is trained with the mean squared error between the *clean* image and the
reconstruction of its *adversarial* version. Random Gaussian noise is added to the latent code
(the bottleneck) during training only, so the decoder learns to ignore small latent
perturbations, which is what the adversarial perturbation becomes after encoding.

The noise lives in :class:`LatentNoise`: on when ``training=True``, off at inference by default.
``noise_at_inference=True`` keeps it on at test time; the purifier is then random
(``stochastic = True``) and honest evaluation must average over draws (EOT, see
:mod:`advlab.evaluation.adaptive`); :meth:`AutoencoderPurifier.purify_eot` averages explicitly.
"""
from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from advlab.purifiers import KerasPurifier

MODEL_FILE = "autoencoder.keras"


@keras.saving.register_keras_serializable(package="advlab")
class LatentNoise(layers.Layer):
    """Adds N(0, stddev^2) noise when training (or always, if ``always_on``)."""

    def __init__(self, stddev: float = 0.1, always_on: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.stddev = float(stddev)
        self.always_on = bool(always_on)

    def call(self, z, training=None):
        if self.stddev > 0 and (training or self.always_on):
            return z + tf.random.normal(tf.shape(z), stddev=self.stddev, dtype=z.dtype)
        return z

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "always_on": self.always_on}


def _conv(x, filters, strides=1, name=None):
    # Instance norm, not batch norm: the purifier behaves the same on one image as in a batch,
    # and tiny training runs do not suffer from stale moving averages. Without any
    # normalisation, training on small sets collapsed to an all-black output (saturated sigmoid).
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", name=name)(x)
    x = layers.GroupNormalization(groups=-1, epsilon=1e-5)(x)
    return layers.LeakyReLU(0.2)(x)


def build_autoencoder(input_shape=(28, 28, 1), filters=(32, 64), latent_filters: int = 128,
                      noise_std: float = 0.1, noise_at_inference: bool = False,
                      name: str = "conv_autoencoder") -> keras.Model:
    """U-shaped conv auto-encoder with skip connections; images in [0, 1] in and out (sigmoid).

    Each encoder level halves the resolution with a stride-2 conv; the decoder mirrors it with
    transposed convs and concatenates the encoder feature map of the same size (the skip).
    Height and width must be divisible by ``2 ** len(filters)``.
    """
    h, w, c = input_shape
    k = 2 ** len(filters)
    if h % k or w % k:
        raise ValueError(f"input height/width {h}x{w} must be divisible by {k} for {len(filters)} levels.")
    inp = keras.Input(input_shape, name="x")
    x, skips = inp, []
    for i, f in enumerate(filters):
        x = _conv(x, f)
        skips.append(x)
        x = _conv(x, f, strides=2)
    z = _conv(x, latent_filters, name="latent")
    z = LatentNoise(noise_std, always_on=noise_at_inference, name="latent_noise")(z)
    x = z
    for f, skip in zip(reversed(filters), reversed(skips)):
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skip])
        x = _conv(x, f)
    out = layers.Conv2D(c, 1, activation="sigmoid", name="x_pur")(x)
    return keras.Model(inp, out, name=name)


class AutoencoderPurifier(KerasPurifier):
    """The trained auto-encoder as a purifier (random if its latent noise stays on)."""

    def __init__(self, model, name: str = "autoencoder", train_seconds: float | None = None):
        noise = [l for l in model.layers if isinstance(l, LatentNoise)]
        super().__init__(model, name=name, stochastic=any(l.always_on and l.stddev > 0 for l in noise))
        self.train_seconds = train_seconds

    def purify_eot(self, x, samples: int = 10, batch_size: int = 256) -> np.ndarray:
        """Average of ``samples`` random purifications (equals one call when deterministic)."""
        n = samples if self.stochastic else 1
        return np.mean([self(x, batch_size=batch_size) for _ in range(n)], axis=0).astype(np.float32)


def train_autoencoder(x_adv, x_clean, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3,
                      validation_split: float = 0.0, noise_std: float = 0.1,
                      noise_at_inference: bool = False, filters=(32, 64), seed: int = 0,
                      verbose: int = 0, model: keras.Model | None = None, out_dir=None) -> AutoencoderPurifier:
    """Fit the auto-encoder on pairs (adversarial -> clean) with MSE; returns the purifier.

    ``x_adv`` and ``x_clean`` are aligned NHWC batches in [0, 1] (e.g. from
    ``advlab.attacks.composite``). Training time is kept on ``purifier.train_seconds``.
    With ``out_dir`` (a :class:`~advlab.training.runfolder.RunFolder`) the model and optimizer are
    checkpointed every epoch, an interrupted run resumes there, and a finished run is loaded
    (as :func:`load_autoencoder` does) instead of retrained; a folder holding another run
    (other pairs or settings) raises ``ValueError``.
    """
    from advlab.evaluation.transforms import check_images
    from advlab.io.cache import array_digest, weights_digest
    from advlab.training.runfolder import RunFolder

    x_adv, x_clean = check_images(x_adv, "x_adv"), check_images(x_clean, "x_clean")
    if x_adv.shape != x_clean.shape:
        raise ValueError(f"x_adv {x_adv.shape} and x_clean {x_clean.shape} must be aligned pairs.")
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "validation_split": validation_split,
                "noise_std": noise_std, "noise_at_inference": noise_at_inference, "filters": list(filters),
                "seed": seed}
    keras.utils.set_random_seed(seed)
    model = model or build_autoencoder(x_adv.shape[1:], filters=filters, noise_std=noise_std,
                                       noise_at_inference=noise_at_inference)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    fit = dict(epochs=epochs, batch_size=batch_size, shuffle=True, validation_split=validation_split,
               verbose=verbose)
    if out_dir is None:
        start = time.perf_counter()
        model.fit(x_adv, x_clean, **fit)
        return AutoencoderPurifier(model, train_seconds=time.perf_counter() - start)
    run = RunFolder(out_dir, {"learner": "autoencoder", "config": settings, "initial_weights": weights_digest(model),
                              "data": {"shape": list(x_adv.shape), "digest": array_digest(x_adv, x_clean)}})
    with run.lock():
        run.check_or_write_fingerprint()
        done = load_autoencoder(run.path)
        if done is not None:
            return done
        initial_epoch, callbacks = run.resumable(
            {"model": model, "optimizer": model.optimizer}, extra={"config": settings, "pairs": len(x_adv)},
            build=lambda: model.optimizer.build(model.trainable_variables))
        model.fit(x_adv, x_clean, initial_epoch=initial_epoch, callbacks=callbacks, **fit)
        run.save_model(model, MODEL_FILE)
        return AutoencoderPurifier(model, train_seconds=run.train_info().get("train_time_s"))


def with_inference_noise(purifier: AutoencoderPurifier, stddev: float | None = None) -> AutoencoderPurifier:
    """A copy of a trained auto-encoder whose latent noise stays on at test time (random
    purifier; evaluate it with EOT). Same weights; ``stddev`` defaults to the training value."""
    clone = keras.models.clone_model(purifier.model)
    clone.set_weights(purifier.model.get_weights())
    noise = clone.get_layer("latent_noise")
    noise.always_on = True
    if stddev is not None:
        noise.stddev = float(stddev)
    return AutoencoderPurifier(clone, name=f"{purifier.name}_noisy", train_seconds=purifier.train_seconds)


def save_autoencoder(purifier: AutoencoderPurifier, folder) -> None:
    """``autoencoder.keras`` + ``train_info.json`` in ``folder`` (a run folder)."""
    from advlab.training.runfolder import RunFolder

    run = RunFolder(folder)
    run.save_model(purifier.model, MODEL_FILE)
    run.record_wall_clock(purifier.train_seconds or 0.0, fresh=True)


def load_autoencoder(folder, name: str = "autoencoder") -> AutoencoderPurifier | None:
    """The purifier saved in ``folder`` (:func:`save_autoencoder`, a finished
    :func:`train_autoencoder` run), or ``None`` if ``folder`` has none."""
    from advlab.training.runfolder import RunFolder

    run = RunFolder(folder)
    path = run.finished_model(MODEL_FILE)
    if path is None:
        return None
    from advlab.io.models import load_model

    model = load_model(path, what="auto-encoder purifier",
                       rebuild="Delete the folder and train it again with train_autoencoder().")
    return AutoencoderPurifier(model, name=name, train_seconds=run.train_info().get("train_time_s"))

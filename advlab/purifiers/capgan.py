"""CAP-GAN: cycle-consistent attentional purification (Kang, Tran, Cho, Kim).

Two domains: A = adversarial images, C = clean images. A CycleGAN-style pair of generators
``T_AC`` (the purifier) and ``T_CA`` is trained with two discriminators ``D_A`` and ``D_C``.
Every network has the U-GAT-IT shape used by the paper:

* an **encoder** (convs, stride-2 downsampling, residual blocks);
* an **auxiliary domain classifier** ``eta`` on globally average- and max-pooled features
  (:class:`CAMAttention`). Its weights, one per feature channel, re-weight the feature map
  (class activation map, CAM); the weighted maps summed over channels are the attention
  heatmap;
* a **decoder** (generators: residual blocks and upsampling back to an image in [0, 1]) or a
  **conv classifier** (discriminators: patch logits).

Losses (checked against hand-computed values in the tests):

* LSGAN adversarial loss on patch and CAM logits of both discriminators;
  (the loss functions live in :mod:`advlab.training.losses`)
* ``L_pixel`` = cycle L1 + identity L1 in both domains;
* CAM loss: ``eta`` of a generator says 1 for images from its source domain, 0 for images
  already in its target domain (binary cross-entropy on logits);
* ``L_feature``: semantic distillation from the target classifier ``f``,
  ``T^2 * KL(softmax(f(x)/T) || softmax(f(x_fake)/T))``, in both domains: clean vs
  ``T_AC(x_adv)`` and adversarial vs ``T_CA(x_clean)`` (the pairs are aligned, since the
  adversarial domain is made by attacking the clean images);
* generator objective ``w_adv L_adv + w_cam L_cam + w_rec (alpha L_pixel + (1 - alpha) L_feature)``,
  alpha = 0.7 and T = 10 as in the paper. ``w_*`` are not given in the paper's summary; the
  defaults (1, 1, 10) follow U-GAT-IT's relative scale of adversarial vs reconstruction terms.

Optimiser as published: Adam(beta_1 = 0.5, beta_2 = 0.999), lr 1e-4 with cosine decay, batch 128.
"""
from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from advlab.purifiers import KerasPurifier
from advlab.training.capgan import CAPGANTrainer, make_optimizer  # noqa: F401  (public API)

# ---------------------------------------------------------------- networks


@keras.saving.register_keras_serializable(package="advlab")
class CAMAttention(layers.Layer):
    """Auxiliary domain classifier eta and CAM attention (U-GAT-IT).

    Returns ``(attended_features, cam_logits [N, 2], heatmap [N, H, W, 1])``: eta's logits from
    the average- and max-pooled branches, and the feature map re-weighted by eta's weights.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, shape):
        c = shape[-1]
        self.w_gap = self.add_weight(shape=(c, 1), initializer="glorot_uniform", name="w_gap")
        self.w_gmp = self.add_weight(shape=(c, 1), initializer="glorot_uniform", name="w_gmp")
        self.fuse = layers.Conv2D(c, 1, name="fuse")
        self.fuse.build(tuple(shape[:-1]) + (2 * c,))

    def call(self, h):
        gap_logit = tf.matmul(tf.reduce_mean(h, axis=[1, 2]), self.w_gap)
        gmp_logit = tf.matmul(tf.reduce_max(h, axis=[1, 2]), self.w_gmp)
        h_gap = h * tf.reshape(self.w_gap, [1, 1, 1, -1])
        h_gmp = h * tf.reshape(self.w_gmp, [1, 1, 1, -1])
        attended = tf.nn.leaky_relu(self.fuse(tf.concat([h_gap, h_gmp], -1)), 0.2)
        heatmap = tf.reduce_sum(attended, axis=-1, keepdims=True)
        return attended, tf.concat([gap_logit, gmp_logit], -1), heatmap


def _norm_act(x, act="relu"):
    x = layers.GroupNormalization(groups=-1, epsilon=1e-5)(x)  # instance norm
    return layers.ReLU()(x) if act == "relu" else layers.LeakyReLU(0.2)(x)


def _res_block(x, filters):
    y = _norm_act(layers.Conv2D(filters, 3, padding="same", use_bias=False)(x))
    y = layers.GroupNormalization(groups=-1, epsilon=1e-5)(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
    return layers.Add()([x, y])


def build_generator(input_shape=(28, 28, 1), base_filters: int = 32, n_down: int = 2,
                    n_res: int = 2, name: str = "capgan_generator") -> keras.Model:
    """Encoder -> CAM attention -> decoder. Outputs ``[x_fake, cam_logits, heatmap]``."""
    h_, w_, c = input_shape
    if h_ % 2 ** n_down or w_ % 2 ** n_down:
        raise ValueError(f"image size {h_}x{w_} must be divisible by {2 ** n_down}.")
    inp = keras.Input(input_shape, name="x")
    h = _norm_act(layers.Conv2D(base_filters, 7, padding="same", use_bias=False)(inp))
    f = base_filters
    for _ in range(n_down):
        f *= 2
        h = _norm_act(layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False)(h))
    for _ in range(n_res):
        h = _res_block(h, f)
    h, cam_logits, heatmap = CAMAttention(name="eta")(h)
    for _ in range(n_res):
        h = _res_block(h, f)
    for _ in range(n_down):
        f //= 2
        h = layers.UpSampling2D(interpolation="nearest")(h)
        h = _norm_act(layers.Conv2D(f, 3, padding="same", use_bias=False)(h))
    out = layers.Conv2D(c, 7, padding="same", activation="sigmoid", name="x_fake")(h)
    return keras.Model(inp, [out, cam_logits, heatmap], name=name)


def build_discriminator(input_shape=(28, 28, 1), base_filters: int = 32, n_down: int = 2,
                        name: str = "capgan_discriminator") -> keras.Model:
    """Encoder -> CAM attention -> conv classifier. Outputs ``[patch_logits, cam_logits, heatmap]``."""
    inp = keras.Input(input_shape, name="x")
    h, f = inp, base_filters
    for _ in range(n_down):
        h = layers.LeakyReLU(0.2)(layers.Conv2D(f, 4, strides=2, padding="same")(h))
        f *= 2
    h = layers.LeakyReLU(0.2)(layers.Conv2D(f, 3, padding="same")(h))
    h, cam_logits, heatmap = CAMAttention(name="eta")(h)
    patch = layers.Conv2D(1, 4, padding="same", name="patch_logits")(h)
    return keras.Model(inp, [patch, cam_logits, heatmap], name=name)


class CAPGANPurifier(KerasPurifier):
    """The A -> C generator as a purifier (deterministic, differentiable)."""

    def __init__(self, generator, name: str = "cap_gan", train_seconds: float | None = None):
        purifier = keras.Model(generator.inputs, generator.outputs[0], name=generator.name + "_purifier")
        super().__init__(purifier, name=name)
        self.generator = generator
        self.train_seconds = train_seconds

    def attention(self, x) -> np.ndarray:
        """The generator's CAM heatmap for ``x`` (where the purifier looks)."""
        return np.asarray(self.generator(np.asarray(x, np.float32), training=False)[2])


def load_capgan(folder, name: str = "cap_gan") -> CAPGANPurifier | None:
    """The purifier saved by a finished :func:`train_capgan` run in ``folder``, else ``None``."""
    from advlab.training.runfolder import RunFolder

    run = RunFolder(folder)
    path = run.finished_model("generator.keras")
    if path is None:
        return None
    from advlab.io.models import load_model

    gen = load_model(path, what="CAP-GAN generator",
                     rebuild="Delete the folder and train it again with train_capgan().")
    return CAPGANPurifier(gen, name=name, train_seconds=run.train_info().get("train_time_s"))


def train_capgan(x_adv, x_clean, classifier, epochs: int = 2, batch_size: int = 128, lr: float = 1e-4,
                 base_filters: int = 32, n_res: int = 2, alpha: float = 0.7, temperature: float = 10.0,
                 seed: int = 0, verbose: int = 0, out_dir=None, run_eagerly: bool = False,
                 **weights) -> CAPGANPurifier:
    """Train CAP-GAN on aligned pairs and return the A -> C generator as a purifier.

    ``classifier`` is the target model f (frozen, returns logits). ``weights`` may set
    ``w_adv``, ``w_cam``, ``w_rec``. With ``out_dir`` (a :class:`~advlab.training.runfolder.RunFolder`),
    all networks and optimizers are checkpointed after every epoch and an interrupted run
    resumes there; a finished run writes ``generator.keras`` and ``train_info.json`` (training
    seconds summed over sessions) and is loaded, not retrained. A folder holding another run
    (other data, settings or classifier) raises ``ValueError``.
    """
    from advlab.evaluation.transforms import check_images
    from advlab.io.cache import array_digest, weights_digest
    from advlab.training.runfolder import RunFolder

    x_adv, x_clean = check_images(x_adv, "x_adv"), check_images(x_clean, "x_clean")
    if x_adv.shape != x_clean.shape:
        raise ValueError(f"x_adv {x_adv.shape} and x_clean {x_clean.shape} must be aligned pairs.")
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "base_filters": base_filters,
                "n_res": n_res, "alpha": alpha, "temperature": temperature, "seed": seed, **weights}
    if out_dir is None:
        return _train(x_adv, x_clean, classifier, settings, run_eagerly, verbose, run=None)
    run = RunFolder(out_dir, {"learner": "cap_gan", "config": settings, "classifier": weights_digest(classifier),
                              "data": {"shape": list(x_adv.shape), "digest": array_digest(x_adv, x_clean)}})
    with run.lock():
        run.check_or_write_fingerprint()
        done = load_capgan(run.path)
        return done or _train(x_adv, x_clean, classifier, settings, run_eagerly, verbose, run=run)


def _train(x_adv, x_clean, classifier, settings: dict, run_eagerly: bool, verbose: int, run) -> CAPGANPurifier:
    s = dict(settings)
    epochs, batch_size, lr, seed = s.pop("epochs"), s.pop("batch_size"), s.pop("lr"), s.pop("seed")
    base_filters, n_res = s.pop("base_filters"), s.pop("n_res")
    keras.utils.set_random_seed(seed)
    shape = x_adv.shape[1:]
    trainer = CAPGANTrainer(
        build_generator(shape, base_filters, n_res=n_res, name="g_ac"),
        build_generator(shape, base_filters, n_res=n_res, name="g_ca"),
        build_discriminator(shape, base_filters, name="d_a"),
        build_discriminator(shape, base_filters, name="d_c"),
        classifier, **s)
    steps = epochs * int(np.ceil(len(x_adv) / batch_size))
    trainer.compile(g_optimizer=make_optimizer(steps, lr), d_optimizer=make_optimizer(steps, lr),
                    run_eagerly=run_eagerly)
    ds = (tf.data.Dataset.from_tensor_slices((x_adv, x_clean)).shuffle(len(x_adv), seed=seed)
          .batch(batch_size).prefetch(2))
    initial_epoch, callbacks = 0, []
    if run is not None:
        def build():        # optimizer variables are made lazily; a restore needs them now
            for opt, nets in ((trainer.g_optimizer, (trainer.g_ac, trainer.g_ca)),
                              (trainer.d_optimizer, (trainer.d_a, trainer.d_c))):
                opt.build(nets[0].trainable_variables + nets[1].trainable_variables)

        initial_epoch, callbacks = run.resumable(
            dict(g_ac=trainer.g_ac, g_ca=trainer.g_ca, d_a=trainer.d_a, d_c=trainer.d_c,
                 g_opt=trainer.g_optimizer, d_opt=trainer.d_optimizer), build=build,
            extra={"config": settings, "pairs": len(x_adv)})
    start = time.perf_counter()
    trainer.fit(ds, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    if run is not None:
        run.save_model(trainer.g_ac, "generator.keras")
        seconds = run.train_info().get("train_time_s", seconds)
    return CAPGANPurifier(trainer.g_ac, train_seconds=seconds)

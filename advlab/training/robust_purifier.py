"""A purifier trained through the classifier: adversarial fine-tuning of an image-to-image model.

>>> purifier = train_robust_purifier(generator, classifier, x, y, RobustPurifierConfig(), run_dir=d)  # doctest: +SKIP

Each batch, x_adv is crafted **end to end** through ``f(G(.))`` (FGSM + random start, or
PGD-k; eps ramped up from 0), then ``G`` is updated on

    CE(f(G(x_adv)), y) + lambda_l1 * L1(G(x_adv), x)
        + lambda_clean * (CE(f(G(x)), y) + lambda_l1 * L1(G(x), x))

so it learns to undo the attacks that *know it* while staying an image restorer (the L1
terms) and harmless on clean images (the clean term). The classifier is frozen unless
``train_classifier`` (joint training, its own optimizer). ``G`` is typically the residual
cGAN's generator (:func:`advlab.purifiers.residual_cgan.build_generator`, or a trained one)
or the autoencoder; the caller's models are copied, never modified. Checkpointed and
resumable in ``run_dir`` like :func:`advlab.training.adversarial.train_adversarial`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from advlab.training.adversarial import ATTACKS, RampedEps, check_config, copy_model, craft, fit_resumable


@dataclass(frozen=True)
class RobustPurifierConfig:
    attack: str = "fgsm_rs"         # "fgsm_rs" or "pgd"
    eps: float = 0.3
    epochs: int = 1
    ramp_epochs: float = 0.5
    pgd_steps: int = 7
    fgsm_alpha: float = 1.25
    lambda_l1: float = 10.0
    lambda_clean: float = 1.0
    train_classifier: bool = False
    learning_rate: float = 1e-4
    classifier_learning_rate: float = 1e-4
    batch_size: int = 64
    warmup_steps: int = 0     # G alone first: L1(G(x + noise), x), so a fresh G starts as a restorer
    seed: int = 0

    def __post_init__(self):
        check_config(self.attack, ATTACKS, self.eps, self.epochs, self.ramp_epochs, self.pgd_steps,
                     self.learning_rate, self.batch_size)
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}.")
        if self.lambda_l1 < 0 or self.lambda_clean < 0:
            raise ValueError(f"lambda_l1 and lambda_clean must be >= 0, got {self.lambda_l1}, {self.lambda_clean}.")

    def replace(self, **changes) -> "RobustPurifierConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


LOSS_NAMES = ("loss", "ce_adv", "l1_adv", "ce_clean", "l1_clean", "adv_accuracy", "eps")


class RobustPurifierTrainer(keras.Model):
    """keras-io style trainer of ``generator`` against attacks through ``classifier(generator(.))``."""

    def __init__(self, generator: keras.Model, classifier: keras.Model, config: RobustPurifierConfig, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.classifier, self.config = generator, classifier, config
        self.eps = RampedEps(config.eps)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in LOSS_NAMES}

    def compile(self, optimizer, classifier_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        if self.config.train_classifier and classifier_optimizer is None:
            raise ValueError("train_classifier=True needs a classifier_optimizer.")
        self.classifier_optimizer = classifier_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.classifier(tf.clip_by_value(self.generator(x, training=training), 0.0, 1.0), training=False)

    def optimizers_and_variables(self) -> dict:
        out = {"optimizer": (self.optimizer, self.generator.trainable_variables)}
        if self.config.train_classifier:
            out["classifier_optimizer"] = (self.classifier_optimizer, self.classifier.trainable_variables)
        return out

    def compute_losses(self, x, y, x_adv, training=True) -> dict:
        cfg = self.config
        ce = lambda logits: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))  # noqa: E731
        train_f = training and cfg.train_classifier
        x_pur = tf.clip_by_value(self.generator(x_adv, training=training), 0.0, 1.0)
        logits_adv = self.classifier(x_pur, training=train_f)
        out = {"ce_adv": ce(logits_adv), "l1_adv": tf.reduce_mean(tf.abs(x_pur - x)),
               "ce_clean": tf.constant(0.0), "l1_clean": tf.constant(0.0)}
        if cfg.lambda_clean > 0:
            x_pc = tf.clip_by_value(self.generator(x, training=training), 0.0, 1.0)
            out["ce_clean"] = ce(self.classifier(x_pc, training=train_f))
            out["l1_clean"] = tf.reduce_mean(tf.abs(x_pc - x))
        out["loss"] = (out["ce_adv"] + cfg.lambda_l1 * out["l1_adv"]
                       + cfg.lambda_clean * (out["ce_clean"] + cfg.lambda_l1 * out["l1_clean"]))
        out["adv_accuracy"] = tf.reduce_mean(tf.cast(tf.argmax(logits_adv, -1) == y, tf.float32))
        return out

    def train_step(self, data):
        cfg = self.config
        x, y = tf.convert_to_tensor(data[0], tf.float32), tf.cast(data[1], tf.int64)
        step = self.optimizer.iterations
        eps = self.eps(step)
        seed = tf.stack([tf.constant(cfg.seed, tf.int64), tf.cast(step, tf.int64)])
        pipeline = lambda t: self.classifier(  # noqa: E731
            tf.clip_by_value(self.generator(t, training=False), 0.0, 1.0), training=False)
        x_adv = craft(pipeline, x, y, eps, cfg.attack, cfg.pgd_steps, seed, cfg.fgsm_alpha)
        with tf.GradientTape(persistent=cfg.train_classifier) as tape:
            losses = self.compute_losses(x, y, x_adv)
        g_vars = self.generator.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(losses["loss"], g_vars), g_vars))
        if cfg.train_classifier:
            c_vars = self.classifier.trainable_variables
            self.classifier_optimizer.apply_gradients(zip(tape.gradient(losses["loss"], c_vars), c_vars))
            del tape
        losses["eps"] = eps
        for name in LOSS_NAMES:
            self.trackers[name].update_state(losses[name])
        return {k: t.result() for k, t in self.trackers.items()}


def train_robust_purifier(generator: keras.Model, classifier: keras.Model, x, y,
                          config: RobustPurifierConfig | None = None, *, run_dir=None, verbose: int = 1,
                          name: str = "robust_purifier", callbacks=(), resume: bool = True):
    """Fine-tune a copy of ``generator`` through (a copy of) ``classifier``.

    Returns ``(purifier, classifier)``: the :class:`advlab.purifiers.KerasPurifier` and the
    classifier to put behind it (the jointly trained copy when ``train_classifier``, else the
    caller's own). ``run_dir`` gets checkpoints, ``history.csv``, ``config.json`` and
    ``generator.keras`` (+ ``classifier.keras`` when trained jointly). ``callbacks`` get the
    trainer as ``self.model`` (its ``call`` is the whole pipeline); ``resume=False`` starts afresh.
    """
    from advlab.purifiers import KerasPurifier

    config = config or RobustPurifierConfig()
    if not isinstance(config, RobustPurifierConfig):
        raise TypeError(f"config must be a RobustPurifierConfig, got {type(config).__name__}.")
    if tuple(generator.output_shape[1:]) != tuple(classifier.input_shape[1:]):
        raise ValueError(f"The generator returns {generator.output_shape[1:]} but the classifier takes "
                         f"{classifier.input_shape[1:]}.")
    keras.utils.set_random_seed(config.seed)
    g = copy_model(generator)
    f = copy_model(classifier) if config.train_classifier else classifier  # frozen: only G is updated
    if config.warmup_steps:   # repeated on resume too (seconds), then overwritten by the checkpoint
        warm_up(g, x, config)
    trainer = RobustPurifierTrainer(g, f, config)
    trainer.compile(keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
                    keras.optimizers.Adam(config.classifier_learning_rate) if config.train_classifier else None)
    models = {"generator": g, **({"classifier": f} if config.train_classifier else {})}
    fit_resumable(trainer, models, x, y, config, epochs=config.epochs, ramp_epochs=config.ramp_epochs,
                  run_dir=run_dir, verbose=verbose, seed=config.seed, callbacks=callbacks, resume=resume)
    if run_dir is not None:
        from advlab.io.cache import save_model_atomic

        save_model_atomic(g, Path(run_dir) / "generator.keras")
        if config.train_classifier:
            save_model_atomic(f, Path(run_dir) / "classifier.keras")
    return KerasPurifier(g, name=name), f


def warm_up(generator: keras.Model, x, config: RobustPurifierConfig) -> float:
    """``config.warmup_steps`` Adam steps of ``generator`` alone on L1(G(x + u), x), u uniform in
    [-eps, eps]: a fresh generator becomes a denoiser before any classifier sees its output (joint
    training would otherwise fit the classifier to a random G's images). Returns the last L1."""
    import numpy as np

    opt = keras.optimizers.Adam(config.learning_rate, beta_1=0.5)
    eps = tf.constant(config.eps, tf.float32)

    @tf.function
    def step(xb, seed):
        noisy = tf.clip_by_value(xb + tf.random.stateless_uniform(tf.shape(xb), seed, -1.0, 1.0) * eps, 0.0, 1.0)
        with tf.GradientTape() as tape:
            l1 = tf.reduce_mean(tf.abs(tf.clip_by_value(generator(noisy, training=True), 0.0, 1.0) - xb))
        opt.apply_gradients(zip(tape.gradient(l1, generator.trainable_variables), generator.trainable_variables))
        return l1

    rng = np.random.default_rng(config.seed)
    x = np.asarray(x, np.float32)
    l1 = float("nan")
    for i in range(config.warmup_steps):
        batch = x[rng.integers(0, len(x), config.batch_size)]
        l1 = float(step(tf.constant(batch), tf.constant([config.seed, i], tf.int64)))
    return l1

"""Adversarial-training baselines for the target classifier: PGD (Madry), FGSM + random start
(Wong et al. 2020) and TRADES (Zhang et al. 2019), as a keras-io style ``train_step``.

>>> robust = train_adversarial(classifier, x, y, AdversarialConfig(method="fgsm_rs"), run_dir=d)  # doctest: +SKIP

* ``"pgd"``: each batch is replaced by PGD-``pgd_steps`` (random start, step
  ``2.5 eps / steps``) on the current weights, cross-entropy on it (Madry et al. 2018).
* ``"fgsm_rs"``: one FGSM step of ``1.25 eps`` from a uniform random start (Wong et al.): about
  ``pgd_steps`` times cheaper than PGD.
* ``"trades"``: ``CE(f(x), y) + beta KL(f(x) || f(x_adv))`` with x_adv from PGD on the KL.

``front="binarize"`` trains the classifier behind a fixed purifier, 1-bit depth reduction
(``round(x)``, the comparison's ``bit_depth`` defence): the attack in each batch differentiates
through it with the straight-through (BPDA) gradient, the one the robustness suite attacks it
with, and the classifier learns on binarized images. The saved classifier is the one *behind* the
purifier; deploy and evaluate it as ``bit_depth`` + classifier.

eps grows linearly from 0 to ``eps`` over the first ``ramp_epochs`` (MNIST at 0.3 does not train
without it); the ramp follows the optimizer's step counter, so a resumed run continues it. The
caller's classifier is never modified: a copy is trained and returned, usable wherever the lab
takes a classifier (logits out). With ``run_dir`` the weights, optimizer and epoch are
checkpointed after every epoch (``tf.train.CheckpointManager``) and a rerun resumes.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

METHODS = ("pgd", "fgsm_rs", "trades")
ATTACKS = ("pgd", "fgsm_rs")
LR_SCHEDULES = ("constant", "cosine")
FRONTS = ("none", "binarize")   # a fixed purifier the classifier is trained behind


@dataclass(frozen=True)
class AdversarialConfig:
    method: str = "fgsm_rs"
    eps: float = 0.3
    epochs: int = 8
    ramp_epochs: float = 3.0
    pgd_steps: int = 7
    fgsm_alpha: float = 1.25       # FGSM step in units of eps (Wong et al.)
    trades_beta: float = 6.0
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # "cosine": decays to 0 over the run (the last epochs consolidate)
    batch_size: int = 128
    seed: int = 0
    front: str = "none"            # "binarize": behind 1-bit depth reduction, attacked with BPDA

    def __post_init__(self):
        check_config(self.method, METHODS, self.eps, self.epochs, self.ramp_epochs, self.pgd_steps,
                     self.learning_rate, self.batch_size)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Unknown lr_schedule {self.lr_schedule!r}; use one of {LR_SCHEDULES}.")
        if self.front not in FRONTS:
            raise ValueError(f"Unknown front {self.front!r}; use one of {FRONTS}.")

    def replace(self, **changes) -> "AdversarialConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["front"] == "none":    # only when set: run folders made before the field still resume
            del d["front"]
        return d


def check_config(method, methods, eps, epochs, ramp_epochs, steps, learning_rate, batch_size) -> None:
    """The checks shared by the adversarial-training configs (clear ValueError)."""
    if method not in methods:
        raise ValueError(f"Unknown method {method!r}; use one of {methods}.")
    if not 0 <= eps <= 1:
        raise ValueError(f"eps must lie in [0, 1], got {eps}.")
    for name, val in (("epochs", epochs), ("pgd_steps", steps), ("batch_size", batch_size)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {val!r}.")
    if ramp_epochs < 0 or learning_rate <= 0:
        raise ValueError(f"ramp_epochs must be >= 0 and learning_rate > 0 (got {ramp_epochs}, {learning_rate}).")


def craft(model_fn, x, y, eps, method: str, steps: int, seed, fgsm_alpha: float = 1.25, loss_fn=None):
    """x_adv in the L-inf ball around ``x`` (TF ops, usable inside ``train_step``).

    ``model_fn(x) -> logits``; ``loss_fn(logits) -> per-example loss`` to maximise (default
    cross-entropy with ``y``). ``seed`` is a stateless seed (shape [2]).
    """
    if loss_fn is None:
        loss_fn = lambda logits: tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)  # noqa: E731
    lo, hi = tf.maximum(x - eps, 0.0), tf.minimum(x + eps, 1.0)
    x_adv = tf.clip_by_value(x + tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0) * eps, lo, hi)
    n, step = (1, fgsm_alpha * eps) if method == "fgsm_rs" else (steps, 2.5 * eps / steps)
    for _ in range(n):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            total = tf.reduce_sum(loss_fn(model_fn(x_adv)))
        grad = tape.gradient(total, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        x_adv = tf.clip_by_value(x_adv + step * tf.sign(grad), lo, hi)
    return tf.stop_gradient(x_adv)


def straight_through_binarize(x):
    """``round(x)`` forward, identity backward: 1-bit depth reduction (the ``bit_depth``
    defence's output, ties to even as NumPy's ``rint``) with the BPDA gradient."""
    return x + tf.stop_gradient(tf.round(x) - x)


def front_fn(front: str):
    """The fixed purifier a classifier is trained behind, as a TF function (see ``FRONTS``)."""
    if front not in FRONTS:
        raise ValueError(f"Unknown front {front!r}; use one of {FRONTS}.")
    return straight_through_binarize if front == "binarize" else (lambda x: x)


class RampedEps:
    """eps at a training step: linear from 0 to ``eps`` over ``ramp_steps`` optimizer steps."""

    def __init__(self, eps: float):
        self.eps = float(eps)
        self.ramp_steps = keras.Variable(1.0, trainable=False, name="ramp_steps")

    def __call__(self, iterations):
        return self.eps * tf.minimum(1.0, tf.cast(iterations + 1, tf.float32) / self.ramp_steps)


class AdversarialTrainer(keras.Model):
    """Trains ``classifier`` on adversarial batches (keras-io custom ``train_step``)."""

    def __init__(self, classifier: keras.Model, config: AdversarialConfig, **kwargs):
        super().__init__(**kwargs)
        self.classifier, self.config = classifier, config
        self.front = front_fn(config.front)
        self.eps = RampedEps(config.eps)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "adv_accuracy", "eps")}
        self.val_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return list(self.trackers.values()) + [self.val_accuracy]

    def call(self, x, training=False):
        """The deployed defence: the front (if any), then the classifier."""
        return self.classifier(self.front(x), training=training)

    def optimizers_and_variables(self) -> dict:
        """What :func:`fit_resumable` checkpoints besides the models."""
        return {"optimizer": (self.optimizer, self.classifier.trainable_variables)}

    def adversarial_loss(self, x, y, eps, seed, training=True):
        """(loss, logits on x_adv) of the configured method; x_adv crafted on the current weights."""
        cfg = self.config
        fn = lambda t: self.classifier(self.front(t), training=False)  # noqa: E731
        if cfg.method == "trades":
            p_clean = tf.stop_gradient(tf.nn.softmax(fn(x)))
            kl = lambda logits: tf.reduce_sum(  # noqa: E731
                p_clean * (tf.math.log(p_clean + 1e-12) - tf.nn.log_softmax(logits)), -1)
            x_adv = craft(fn, x, y, eps, "pgd", cfg.pgd_steps, seed, loss_fn=kl)
            logits_clean = self.classifier(self.front(x), training=training)
            logits_adv = self.classifier(self.front(x_adv), training=training)
            p = tf.nn.softmax(logits_clean)
            robust = tf.reduce_sum(p * (tf.nn.log_softmax(logits_clean) - tf.nn.log_softmax(logits_adv)), -1)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits_clean)
                                  + cfg.trades_beta * robust)
            return loss, logits_adv
        x_adv = craft(fn, x, y, eps, cfg.method, cfg.pgd_steps, seed, cfg.fgsm_alpha)
        logits_adv = self.classifier(self.front(x_adv), training=training)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits_adv)), logits_adv

    def train_step(self, data):
        x, y = data[0], tf.cast(data[1], tf.int64)
        step = self.optimizer.iterations
        eps = self.eps(step)
        seed = tf.stack([tf.constant(self.config.seed, tf.int64), tf.cast(step, tf.int64)])
        with tf.GradientTape() as tape:
            loss, logits_adv = self.adversarial_loss(x, y, eps, seed)
        variables = self.classifier.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        correct = tf.cast(tf.argmax(logits_adv, -1) == y, tf.float32)
        for name, value in (("loss", loss), ("adv_accuracy", tf.reduce_mean(correct)), ("eps", eps)):
            self.trackers[name].update_state(value)
        return {k: t.result() for k, t in self.trackers.items()}

    def test_step(self, data):
        self.val_accuracy.update_state(data[1], self(data[0], training=False))
        return {"accuracy": self.val_accuracy.result()}


def fit_resumable(trainer: keras.Model, models: dict, x, y, config, *, epochs: int, ramp_epochs: float,
                  run_dir=None, validation_data=None, verbose: int = 1, seed: int = 0, callbacks=(),
                  resume: bool = True) -> int:
    """Fit ``trainer`` (compiled; with an ``eps`` :class:`RampedEps` and an
    ``optimizers_and_variables()`` method) on ``(x, y)``; with ``run_dir`` it trains in a
    :class:`~advlab.training.runfolder.RunFolder` (fingerprint of the config and the data,
    a checkpoint of ``models`` and the optimizers after each epoch, train info, the folder's lock)
    and resumes from there. Returns the epochs trained now. A finished run continued with more
    ``epochs`` resumes too: the epoch count is not part of the fingerprint. ``callbacks`` run
    before the checkpoint, so the logs they add reach history.csv."""
    from advlab.training import CSVLog

    x = np.array(x, np.float32, copy=True)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
    if len(x) == 0:
        raise ValueError("x holds no images.")
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    trainer.eps.ramp_steps.assign(max(1.0, ramp_epochs * steps_per_epoch))
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
          .batch(config.batch_size))
    if run_dir is None:
        trainer.fit(ds, epochs=epochs, validation_data=validation_data, callbacks=list(callbacks),
                    verbose=verbose, shuffle=False)
        return epochs
    from advlab.io.cache import array_digest
    from advlab.training.runfolder import RunFolder

    optimizers = dict((name, opt) for name, (opt, _) in trainer.optimizers_and_variables().items())

    def build():  # slot variables must exist before a restore
        for opt, variables in trainer.optimizers_and_variables().values():
            opt.build(variables)

    settings = {k: v for k, v in config.to_dict().items() if k != "epochs"}
    run = RunFolder(run_dir, {"config": settings, "data": array_digest(x, y)})
    with run.lock():
        run.check_or_write_fingerprint(resume=resume)   # resume=False: a fresh start in run_dir
        start, own = run.resumable({**models, **optimizers}, build=build, extra={"config": config.to_dict()})
        if start >= epochs:
            return 0
        trainer.fit(ds, epochs=epochs, initial_epoch=start, validation_data=validation_data,
                    callbacks=[*callbacks, *own, CSVLog(run.path, append=start > 0)], verbose=verbose,
                    shuffle=False)  # ds shuffles
    return epochs - start


def copy_model(model: keras.Model) -> keras.Model:
    """An independent copy (same architecture and weights): training it leaves ``model`` as is."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def train_adversarial(classifier: keras.Model, x, y, config: AdversarialConfig | None = None, *,
                      run_dir=None, validation_data=None, verbose: int = 1, callbacks=(),
                      resume: bool = True) -> keras.Model:
    """Adversarially train a copy of ``classifier``; returns it (logits out).

    ``run_dir``: checkpoints, ``history.csv``, ``run.json`` (config and data digest) and the final ``classifier.keras``;
    rerunning with the same ``run_dir`` and config resumes (finished runs return at once).
    ``callbacks``: extra Keras callbacks (e.g. a per-epoch robustness probe).
    """
    config = config or AdversarialConfig()
    if not isinstance(config, AdversarialConfig):
        raise TypeError(f"config must be an AdversarialConfig, got {type(config).__name__}.")
    keras.utils.set_random_seed(config.seed)
    model = copy_model(classifier)
    trainer = AdversarialTrainer(model, config)
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        total_steps = config.epochs * math.ceil(len(x) / config.batch_size)
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps))
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
    fit_resumable(trainer, {"classifier": model}, x, y, config, epochs=config.epochs,
                  ramp_epochs=config.ramp_epochs, run_dir=run_dir, validation_data=validation_data,
                  verbose=verbose, seed=config.seed, callbacks=callbacks, resume=resume)
    if run_dir is not None:
        from advlab.io.cache import save_model_atomic

        save_model_atomic(model, Path(run_dir) / "classifier.keras")
    return model

"""Training callbacks (side effects live here, always with an explicit output folder) and the
one-call :func:`train_purifier` for the residual cGAN.

* :class:`WeightSchedule`: the versatile-defence multi-step loss weights (40% / 30% / 30% of
  the epochs with lambda_perc = 100 / 50 / 1, lambda_l1 = 100), set at the start of each epoch.
* :class:`Checkpointer`: ``tf.train.Checkpoint`` of generator, discriminator, both optimizers
  (moments and step count) and the epoch; :meth:`Checkpointer.restore` resumes a run.
* :class:`SampleGrid`: attacked | purified | clean grid of fixed images after each epoch.
* :class:`CSVLog`: per-epoch losses in ``history.csv`` (one history across resumes).
* :class:`WallClock`: training time summed across resumed sessions, saved in ``train_info.json``.

The run folder itself (fingerprint, lock, checkpoints, train info) is
:class:`advlab.training.runfolder.RunFolder`, shared with the other learners.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from advlab.training.runfolder import Checkpoint, RunFolder, WallClockCallback

VERSATILE_PHASES = (
    (0.4, {"lambda_l1": 100.0, "lambda_perc": 100.0}),
    (0.3, {"lambda_l1": 100.0, "lambda_perc": 50.0}),
    (0.3, {"lambda_l1": 100.0, "lambda_perc": 1.0}),
)


def scheduled_weights(epoch: int, epochs: int, phases=VERSATILE_PHASES) -> dict:
    """Loss weights for 0-based ``epoch`` of ``epochs``: phase k covers epochs below
    ``round(epochs * (f_1 + ... + f_k))`` (100 epochs: 0-39, 40-69, 70-99 as in the paper)."""
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} outside [0, {epochs}).")
    total = sum(f for f, _ in phases)
    if not np.isclose(total, 1.0):
        raise ValueError(f"schedule fractions must sum to 1, got {total}.")
    end = 0.0
    for fraction, weights in phases:
        end += fraction
        if epoch < round(epochs * end):
            return dict(weights)
    return dict(phases[-1][1])


class WeightSchedule(keras.callbacks.Callback):
    """Sets ``model.lambda_l1`` / ``model.lambda_perc`` at the start of every epoch."""

    def __init__(self, epochs: int, phases=VERSATILE_PHASES):
        super().__init__()
        self.epochs, self.phases = int(epochs), phases
        scheduled_weights(0, self.epochs, phases)  # validates

    def on_epoch_begin(self, epoch, logs=None):
        for name, value in scheduled_weights(epoch, self.epochs, self.phases).items():
            getattr(self.model, name).assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lambda_l1"] = float(self.model.lambda_l1.numpy())
            logs["lambda_perc"] = float(self.model.lambda_perc.numpy())


def decayed_learning_rate(epoch: int, epochs: int, base: float, start: float) -> float:
    """pix2pix's schedule: ``base`` for the first ``start`` fraction of the epochs, then linearly
    down to ``base / (n_decay + 1)`` on the last epoch (never 0, so every epoch still learns)."""
    if not 0.0 <= start < 1.0:
        raise ValueError(f"lr_decay_start must be in [0, 1), got {start}.")
    first = int(round(start * epochs))
    if epoch < first:
        return float(base)
    n_decay = epochs - first
    return float(base) * (1.0 - (epoch - first + 1) / (n_decay + 1))


class LearningRateDecay(keras.callbacks.Callback):
    """Sets both optimizers' learning rate at the start of every epoch (see
    :func:`decayed_learning_rate`); the rate used is logged as ``lr``."""

    def __init__(self, epochs: int, base: float, start: float = 0.5):
        super().__init__()
        self.epochs, self.base, self.start = int(epochs), float(base), float(start)
        decayed_learning_rate(0, self.epochs, self.base, self.start)  # validates

    def on_epoch_begin(self, epoch, logs=None):
        lr = decayed_learning_rate(epoch, self.epochs, self.base, self.start)
        for opt in (self.model.g_optimizer, self.model.d_optimizer):
            inner = getattr(opt, "inner_optimizer", opt)       # LossScaleOptimizer under float16
            inner.learning_rate = lr
        self._lr = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self._lr


class Checkpointer(Checkpoint):
    """Checkpoint G, D, both optimizers and the epoch into ``folder`` (keeps the last ``keep``),
    numbered by the generator's step (:class:`advlab.training.runfolder.Checkpoint`).

    ``every_steps`` also saves inside long epochs; a resumed run then repeats the rest of the
    interrupted epoch with the saved weights and optimizer state.
    """

    def __init__(self, folder, trainer, keep: int = 2, every_steps: int | None = None):
        super().__init__(folder, dict(generator=trainer.generator, discriminator=trainer.discriminator,
                                      g_optimizer=trainer.g_optimizer, d_optimizer=trainer.d_optimizer),
                         build=trainer.build_optimizers, step=lambda: trainer.g_optimizer.iterations.numpy(),
                         keep=keep, every_steps=every_steps)


class SampleGrid(keras.callbacks.Callback):
    """Saves an attacked | purified | clean grid of ``x_adv`` into ``folder`` every ``every`` epochs."""

    def __init__(self, folder, x_adv, x_clean, every: int = 1, prefix: str = "samples"):
        super().__init__()
        self.folder, self.every, self.prefix = Path(folder), max(1, int(every)), prefix
        self.x_adv, self.x_clean = np.asarray(x_adv), np.asarray(x_clean)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        import matplotlib.pyplot as plt

        from advlab import viz

        x_pur = np.asarray(self.model.generator(self.x_adv, training=False))
        fig = viz.image_grid({"attacked": self.x_adv, "purified": x_pur, "clean": self.x_clean},
                             title=f"epoch {epoch + 1}")
        viz.savefig(fig, f"{self.prefix}_epoch{epoch + 1:03d}", folder=self.folder)
        plt.close(fig)


class CSVLog(keras.callbacks.Callback):
    """Per-epoch logs into ``folder/history.csv``; with ``append`` the rows of an earlier
    (interrupted) session are kept, so a resumed run has one history."""

    def __init__(self, folder, append: bool = True):
        super().__init__()
        self.folder = Path(folder)
        self.rows = read_history(self.folder) if append else []

    def on_epoch_end(self, epoch, logs=None):
        from advlab.io.results import save_csv

        self.rows = [r for r in self.rows if int(r.get("epoch", -1)) != epoch + 1]
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        save_csv(self.rows, "history", folder=self.folder)


def read_history(folder) -> list[dict]:
    """Rows of ``folder/history.csv`` as dicts of floats (empty list if none)."""
    import csv

    path = Path(folder) / "history.csv"
    if not path.is_file():
        return []
    with path.open() as fh:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
    for row in rows:
        row["epoch"] = int(row.get("epoch", 0))
    return rows


class WallClock(WallClockCallback):
    """Accumulates training seconds and epochs into ``folder/train_info.json`` after each epoch."""

    def __init__(self, folder, extra: dict | None = None):
        super().__init__(RunFolder(folder), extra)


# ----------------------------------------------------------------------------- one call
def _check_pairs(x_adv, x_clean) -> None:
    for name, a in (("x_adv", x_adv), ("x_clean", x_clean)):
        if not isinstance(a, np.ndarray) or a.ndim != 4:
            raise ValueError(f"{name} must be a 4-D NHWC numpy array, got {type(a).__name__} "
                             f"{getattr(a, 'shape', '')}.")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf.")
        if a.size and (a.min() < 0.0 or a.max() > 1.0):
            raise ValueError(f"{name} must hold images in [0, 1], found [{a.min():.3g}, {a.max():.3g}].")
    if x_adv.shape != x_clean.shape:
        raise ValueError(f"x_adv {x_adv.shape} and x_clean {x_clean.shape} must have the same shape.")
    if len(x_adv) == 0:
        raise ValueError("no training pairs given.")


def _fingerprint(x_adv, x_clean, config) -> dict:
    from advlab.io.cache import array_digest

    arch = {k: v for k, v in config.to_dict().items() if k not in ("epochs",)}
    return {"config": arch, "data": {"shape": list(x_adv.shape), "digest": array_digest(x_adv, x_clean)}}


def _upgrade(old: dict, x_adv, x_clean, defaults) -> dict:
    """``run.json`` of an older advlab in today's form: config fields added since then get their
    defaults, and the old data digest (SHA-1 of a subsample) stands for these pairs if it matches."""
    import hashlib

    from advlab.io.cache import array_digest

    fields = {k: v for k, v in defaults.to_dict().items() if k != "epochs"}
    config = {**{k: v for k, v in fields.items() if k not in old.get("config", {})}, **old.get("config", {})}
    data = old.get("data", {})
    if "sha1_subsample" in data and data.get("shape") == list(x_adv.shape):
        step = max(1, len(x_adv) // 256)
        legacy = hashlib.sha1(x_adv[::step].tobytes() + x_clean[::step].tobytes()).hexdigest()[:16]
        if data["sha1_subsample"] == legacy:
            data = {"shape": data["shape"], "digest": array_digest(x_adv, x_clean)}
    return {**old, "config": config, "data": data}


def train_purifier(x_adv, x_clean, config, out_dir=None, *, classifier=None, resume: bool = True,
                   strategy=None, validation=None, samples: int = 8, checkpoint_every_steps: int | None = None,
                   callbacks=(), tensorboard_dir=None, verbose: int = 1, **removed):
    """Train the residual cGAN on ``(x_adv, x_clean)`` pairs and return a ``KerasPurifier``.

    Args:
        x_adv, x_clean: float32 NHWC arrays in [0, 1], same shape (never modified).
        config: the :class:`~advlab.config.CGANConfig` to train, all of it (architecture,
            optimiser, epochs, batch size), e.g. ``advlab.config.resolve(scale, budget,
            job="table1").purifier`` or ``config.replace(epochs=3)``.
        out_dir: run folder for checkpoints, ``history.csv``, sample grids, ``train_info.json``,
            ``run.json`` and the final ``generator.keras``. Default: ``cache_dir("purifiers", <hash>)``.
        classifier: the target model, needed for ``perceptual="classifier"``.
        resume: continue from the last checkpoint in ``out_dir`` (a finished run returns at once).
            ``resume=False`` starts over and overwrites the folder's checkpoints and history.
        strategy: a ``tf.distribute.Strategy`` (default: the current one, i.e. one device).
        validation: optional ``(x_adv_val, x_clean_val)`` for a ``val_l1`` column.
        callbacks: extra Keras callbacks, run after the lab's own (checkpoints, logs, schedules).
        tensorboard_dir: also log losses to TensorBoard in this folder (``tensorboard --logdir``).
    """
    from advlab.config import CGANConfig
    from advlab.purifiers.residual_cgan import padded_side

    if removed:
        raise TypeError(f"train_purifier() takes one CGANConfig; set {sorted(removed)} on it instead, "
                        f"e.g. config.replace({', '.join(f'{k}=...' for k in sorted(removed))}).")
    if not isinstance(config, CGANConfig):
        raise TypeError(f"train_purifier() needs a CGANConfig as its third argument, got {type(config).__name__} "
                        "(a LabConfig no longer sizes the purifier: use advlab.config.resolve(...).purifier "
                        "or CGANConfig.for_scale(cfg)).")
    _check_pairs(x_adv, x_clean)
    padded_side(x_adv.shape[1:])
    if tensorboard_dir is not None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ImportError("tensorboard_dir needs the tensorboard package: pip install tensorboard")
    fingerprint = _fingerprint(x_adv, x_clean, config)
    run = RunFolder(out_dir, fingerprint) if out_dir is not None else RunFolder.in_cache(fingerprint, "purifiers")
    with run.lock():
        return _train_in(run, x_adv, x_clean, config, classifier, resume, strategy, validation, samples,
                         checkpoint_every_steps, callbacks, tensorboard_dir, verbose)


def _train_in(run, x_adv, x_clean, config, classifier, resume, strategy, validation, samples,
              checkpoint_every_steps, callbacks, tensorboard_dir, verbose):
    from advlab.config import CGANConfig
    from advlab.purifiers.residual_cgan import as_purifier, make_trainer
    from advlab.training.perceptual import make_perceptual

    run.check_or_write_fingerprint(resume, upgrade=lambda old: _upgrade(old, x_adv, x_clean, CGANConfig()))
    out = run.path

    from advlab.io.seeding import set_seed

    set_seed(config.seed)   # same seed: same initial weights, batch order and dropout
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        perceptual = (make_perceptual(config.perceptual, x_adv.shape[1:], classifier=classifier)
                      if config.lambda_perc > 0 or config.schedule == "multistep" else None)
        trainer = make_trainer(x_adv.shape[1:], config, perceptual=perceptual)
    ckpt = Checkpointer(out, trainer, every_steps=checkpoint_every_steps)
    initial_epoch = ckpt.restore() if resume else 0
    if initial_epoch:
        print(f"[advlab.training] resuming {out} from epoch {initial_epoch} (step {ckpt.step}).")
    own = [ckpt, CSVLog(out, append=initial_epoch > 0),
           run.wall_clock({"config": config.to_dict()}, fresh=initial_epoch == 0)]
    if config.schedule == "multistep":
        own.insert(0, WeightSchedule(config.epochs))
    if config.lr_decay_start is not None:
        own.insert(0, LearningRateDecay(config.epochs, config.learning_rate, config.lr_decay_start))
    if samples:
        own.append(SampleGrid(out, x_adv[:samples], x_clean[:samples]))
    if tensorboard_dir is not None:
        own.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    if initial_epoch < config.epochs:
        trainer.fit(x_adv, x_clean, batch_size=config.batch_size, epochs=config.epochs,
                    initial_epoch=initial_epoch, callbacks=own + list(callbacks), validation_data=validation,
                    shuffle=True, verbose=verbose)
    elif verbose:
        print(f"[advlab.training] {out} already trained for {initial_epoch} epochs; loaded it.")
    run.save_model(trainer.generator, "generator.keras")
    info = run.train_info()
    info.update(out_dir=str(out), perceptual=perceptual.description if perceptual else "none")
    purifier = as_purifier(trainer.generator)
    purifier.history, purifier.info, purifier.trainer = read_history(out), info, trainer
    purifier.train_seconds, purifier.source = info.get("train_time_s"), str(out)
    return purifier

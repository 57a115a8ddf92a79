"""The residual cGAN's training callbacks; side effects live here, always with an explicit
output folder (the keras-io pattern). :func:`advlab.training.train_purifier` puts them together.

* :class:`WeightSchedule`: the versatile-defence multi-step loss weights (40% / 30% / 30% of
  the epochs with lambda_perc = 100 / 50 / 1, lambda_l1 = 100), set at the start of each epoch.
* :class:`LearningRateDecay`: pix2pix's linear decay to 0 over the last epochs.
* :class:`Checkpointer`: ``tf.train.Checkpoint`` of generator, discriminator, both optimizers
  (moments and step count) and the epoch; :meth:`Checkpointer.restore` resumes a run.
* :class:`SampleGrid`: attacked | purified | clean grid of fixed images after each epoch.
* :class:`CSVLog`: per-epoch losses in ``history.csv`` (one history across resumes).
* :class:`WallClock`: training time summed across resumed sessions, saved in ``train_info.json``.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

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

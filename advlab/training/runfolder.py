"""One run-folder mechanism for every learner (residual cGAN, auto-encoder, CAP-GAN).

A run folder holds one training run and lets an interrupted run resume:

* ``run.json`` - the run's *fingerprint* (its config and a digest of its training data):
  :meth:`RunFolder.check_or_write_fingerprint` refuses to resume a folder that holds another run;
* ``ckpt-*`` / ``checkpoint`` - ``tf.train`` checkpoints of the networks, optimizers and epoch,
  written after every epoch (and every ``every_steps`` steps) by :class:`Checkpoint`;
* ``train_info.json`` - training seconds summed over sessions, epochs done and the learner's own
  details (:meth:`RunFolder.record_wall_clock`, :meth:`RunFolder.wall_clock` as a callback);
* the finished model (``generator.keras``, ``autoencoder.keras``), saved atomically
  (:meth:`RunFolder.save_model`); :meth:`RunFolder.finished_model` finds it.

:meth:`RunFolder.lock` is the folder's file lock (:func:`advlab.io.cache.cache_lock`): two
processes training the same run train it once; the second waits, then loads the result.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

RUN_FILE = "run.json"
INFO_FILE = "train_info.json"


class RunFolder:
    """The folder ``out`` of one training run identified by ``fingerprint`` (plain data)."""

    def __init__(self, out: str | Path, fingerprint: dict | None = None):
        from advlab.io.cache import canonical_json

        self.path = Path(out)
        self.fingerprint = None if fingerprint is None else json.loads(canonical_json(fingerprint))

    @classmethod
    def in_cache(cls, fingerprint: dict, *parts: str) -> "RunFolder":
        """A run folder in ``cache_dir(*parts)`` named by the fingerprint's content key."""
        from advlab.io.cache import cache_key
        from advlab.io.paths import cache_dir

        return cls(cache_dir(*parts) / cache_key(run=fingerprint), fingerprint)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ identity
    def saved_fingerprint(self) -> dict | None:
        path = self.path / RUN_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def check_or_write_fingerprint(self, resume: bool = True,
                                   upgrade: Callable[[dict], dict] | None = None) -> None:
        """Make sure the folder holds this run: with ``resume``, a saved fingerprint must equal
        this one (``upgrade(saved)`` first fills in fields added since it was written), else
        ``ValueError``; without, the folder's checkpoints, history and train info are removed.
        Then ``run.json`` is written."""
        from advlab.io.cache import save_json_atomic

        if self.fingerprint is None:
            raise ValueError("This RunFolder was made without a fingerprint; pass RunFolder(out, fingerprint).")
        self.path.mkdir(parents=True, exist_ok=True)
        saved = self.saved_fingerprint() if resume else None
        if saved is not None:
            saved = upgrade(saved) if upgrade is not None else saved
            if saved != self.fingerprint:
                raise ValueError(f"{self.path} holds a run with another configuration or data:\n"
                                 f"  saved: {saved}\n  now:   {self.fingerprint}\n"
                                 "Use another out_dir or resume=False to start over.")
        if not resume:
            self.clear()
        save_json_atomic(self.path / RUN_FILE, self.fingerprint)

    def clear(self) -> None:
        """Remove checkpoints, history and train info (a fresh start in the same folder)."""
        for stale in [*self.path.glob("ckpt-*"), self.path / "checkpoint", self.path / "history.csv",
                      self.path / INFO_FILE]:
            stale.unlink(missing_ok=True)

    def lock(self, timeout: float = -1):
        """The folder's file lock: ``with run.lock(): ...`` (see :func:`advlab.io.cache.cache_lock`)."""
        from advlab.io.cache import cache_lock

        return cache_lock(self.path, timeout=timeout)

    # ------------------------------------------------------------------ train info
    def train_info(self) -> dict:
        """``train_info.json`` (``{}`` if none yet)."""
        path = self.path / INFO_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def record_wall_clock(self, seconds: float, epochs: int | None = None, fresh: bool = False,
                          **extra) -> dict:
        """Add ``seconds`` to the run's training time (start from 0 when ``fresh``), set
        ``epochs`` done and ``extra`` fields; write ``train_info.json``; return it."""
        from advlab.io.cache import save_json_atomic
        from advlab.io.results import _jsonable

        info = {} if fresh else self.train_info()
        info["train_time_s"] = float(info.get("train_time_s", 0.0)) + float(seconds)
        if epochs is not None:
            info["epochs"] = int(epochs)
        info.update(_jsonable(extra))
        self.path.mkdir(parents=True, exist_ok=True)
        save_json_atomic(self.path / INFO_FILE, info)
        return info

    def wall_clock(self, extra: dict | None = None, fresh: bool = False) -> "WallClockCallback":
        """A callback that records each epoch's seconds (see :meth:`record_wall_clock`)."""
        return WallClockCallback(self, extra, fresh)

    def resumable(self, objects: dict, *, build: Callable[[], None] | None = None, keep: int = 1,
                  extra: dict | None = None) -> tuple[int, list]:
        """``(initial_epoch, callbacks)`` for a ``fit`` that resumes in this folder: the latest
        checkpoint of ``objects`` is restored, and the callbacks checkpoint every epoch and
        record its wall-clock seconds (``extra`` goes into ``train_info.json``)."""
        ckpt = Checkpoint(self.path, objects, build=build, keep=keep)
        initial_epoch = ckpt.restore()
        return initial_epoch, [ckpt, self.wall_clock(extra, fresh=initial_epoch == 0)]

    # ------------------------------------------------------------------ models
    def save_model(self, model, name: str) -> Path:
        """``model`` as ``name`` (a ``.keras`` file) in the folder, written atomically."""
        from advlab.io.cache import save_model_atomic

        return save_model_atomic(model, self.path / name)

    def finished_model(self, name: str) -> Path | None:
        """The finished model file ``name`` with its ``train_info.json``, or ``None``."""
        path = self.path / name
        return path if path.is_file() and (self.path / INFO_FILE).is_file() else None


class WallClockCallback(keras.callbacks.Callback):
    """Adds each epoch's wall-clock seconds to ``train_info.json`` of ``run`` (across resumes)."""

    def __init__(self, run: RunFolder, extra: dict | None = None, fresh: bool = False):
        super().__init__()
        self.run, self.extra, self._fresh = run, dict(extra or {}), fresh
        self._t0 = None

    @property
    def info(self) -> dict:
        return self.run.train_info()

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.run.record_wall_clock(time.perf_counter() - self._t0, epochs=epoch + 1, fresh=self._fresh,
                                   **self.extra)
        self._fresh = False


class Checkpoint(keras.callbacks.Callback):
    """``tf.train`` checkpoints of ``objects`` (networks, optimizers) and the epoch in ``folder``,
    after every epoch and, with ``every_steps``, inside long epochs (keeps the last ``keep``).

    ``build()`` creates the optimizers' variables before a restore (they are made lazily);
    ``step()`` is the global step used to number the checkpoints (default: a counter).
    """

    def __init__(self, folder, objects: dict, *, build: Callable[[], None] | None = None,
                 step: Callable[[], int] | None = None, keep: int = 2, every_steps: int | None = None):
        super().__init__()
        self.folder = Path(folder)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.ckpt = tf.train.Checkpoint(**objects, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.folder), max_to_keep=keep)
        self.every_steps = every_steps
        self._build, self._step = build, step

    @property
    def step(self) -> int | None:
        return None if self._step is None else int(self._step())

    def restore(self) -> int:
        """Restore the latest checkpoint, if any; returns the epoch to continue from (0 if none)."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        if self._build is not None:
            self._build()
        self.ckpt.restore(latest).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    def save(self, epoch: int) -> str:
        self.epoch.assign(epoch)
        return self.manager.save(checkpoint_number=self.step)

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self.step is not None and self.step % self.every_steps == 0:
            self.save(int(self.epoch.numpy()))

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)

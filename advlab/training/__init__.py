"""How the residual cGAN is trained: the one-call :func:`train_purifier` (a run folder that
resumes, the callbacks of :mod:`advlab.training.callbacks`, the trainer of
:mod:`advlab.training.pix2pix`). The run folder itself (fingerprint, lock, checkpoints, train
info) is :class:`advlab.training.runfolder.RunFolder`, shared with the other learners.
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from advlab.training.runfolder import INFO_FILE, RUN_FILE, RunFolder
from advlab.training.callbacks import (VERSATILE_PHASES, CSVLog, Checkpointer, LearningRateDecay,  # noqa: F401
                                       SampleGrid, WallClock, WeightSchedule, decayed_learning_rate,
                                       read_history, scheduled_weights)


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
        strategy: a ``tf.distribute.Strategy`` (default: the current one, i.e. one device). Under
            ``MultiWorkerMirroredStrategy`` every worker calls this with the same arguments; the
            chief writes ``out_dir``, the other workers a scratch folder they delete.
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
    strategy = strategy or tf.distribute.get_strategy()
    if not strategy.extended.should_checkpoint:
        # A non-chief worker of a multi-worker strategy takes every step and every save (a save
        # may need collectives) but writes into a scratch copy of the run folder, deleted when it
        # returns: the chief alone writes `run`, and the workers never wait on its lock.
        with _worker_copy(run, resume) as scratch:
            purifier = _train_in(scratch, x_adv, x_clean, config, classifier, resume, strategy, validation,
                                 samples, checkpoint_every_steps, callbacks,
                                 None if tensorboard_dir is None else scratch.path / "tensorboard", verbose)
        purifier.source = purifier.info["out_dir"] = str(run.path)
        return purifier
    with run.lock():
        return _train_in(run, x_adv, x_clean, config, classifier, resume, strategy, validation, samples,
                         checkpoint_every_steps, callbacks, tensorboard_dir, verbose)


@contextlib.contextmanager
def _worker_copy(run: RunFolder, resume: bool):
    """A temporary run folder for a non-chief worker, holding the chief's checkpoints, history and
    train info when resuming (so every worker restores the same epoch; this needs ``run`` on a
    filesystem all workers see, as Keras' BackupAndRestore does)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="advlab-worker-") as tmp:
        if resume and run.path.is_dir():
            for name in ("checkpoint", "history.csv", INFO_FILE, RUN_FILE):
                if (run.path / name).is_file():
                    shutil.copy2(run.path / name, tmp)
            for path in run.path.glob("ckpt-*"):
                shutil.copy2(path, tmp)
        yield RunFolder(tmp, run.fingerprint)


def _train_in(run, x_adv, x_clean, config, classifier, resume, strategy, validation, samples,
              checkpoint_every_steps, callbacks, tensorboard_dir, verbose):
    from advlab.config import CGANConfig
    from advlab.purifiers.residual_cgan import as_purifier, make_trainer
    from advlab.training.perceptual import make_perceptual

    run.check_or_write_fingerprint(resume, upgrade=lambda old: _upgrade(old, x_adv, x_clean, CGANConfig()))
    out = run.path

    from advlab.io.seeding import set_seed

    set_seed(config.seed)   # same seed: same initial weights, batch order and dropout
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

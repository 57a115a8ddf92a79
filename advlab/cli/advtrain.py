"""``advlab advtrain``: an adversarially trained target classifier (the baseline defence).

Trains a fresh ``--arch`` classifier on ``--dataset`` with PGD (Madry et al.), FGSM + random
start (Wong et al. 2020) or TRADES through :func:`advlab.training.adversarial.train_adversarial`,
eps ramped up from 0 over ``--ramp-epochs``. The last ``--holdout`` training images are kept out
of training: after every epoch a PGD probe on them reports their clean and robust accuracy, the
early warning of catastrophic overfitting (the robust accuracy collapsing while the training
accuracy climbs, as FGSM training at MNIST eps 0.3 can). ``--out`` holds the checkpoints (rerun
the same command to resume), ``history.csv``, ``classifier.keras``, ``run_config.json`` and
``advtrain.json`` (clean test accuracy, training time); evaluate the result with
``advlab robustness --defence none --classifier-run OUT``.
"""
from __future__ import annotations

import json
import time

from advlab.cli import common

METHODS = {"pgd": "pgd", "fgsm-rs": "fgsm_rs", "trades": "trades"}
DATASETS = ("mnist", "fashion_mnist", "cifar10")
SUMMARY = "advtrain.json"


def register(sub) -> None:
    p = common.add_command(sub, "advtrain", "adversarially train a classifier (PGD, FGSM + random start, TRADES)", [
        "advlab advtrain --dataset mnist --scale full --method pgd --steps 7 --epochs 10 --arch mnist_madry "
        "--lr-schedule cosine --out runs/mnist_adv_pgd",
        "advlab advtrain --dataset mnist --scale smoke --method fgsm-rs --epochs 1 --out runs/adv_smoke"],
        description=__doc__.split("\n\n")[1])
    common.add_shared(p, "dataset", "scale", "out", "seed", "data_dir", "quiet", "eps", "n_train", "epochs", "resume",
                      dataset={"choices": DATASETS},
                      out={"required": True, "help": "run folder (checkpoints, history, classifier.keras)"},
                      eps={"default": 0.3, "help": "L-inf training budget (default: %(default)s)"},
                      n_train={"help": "training images, the held-out ones included (default: the scale's)"},
                      epochs={"default": 8, "help": "training epochs (default: %(default)s)"})
    p.add_argument("--method", default="pgd", choices=tuple(METHODS), help="default: %(default)s")
    p.add_argument("--steps", type=int, default=7, help="PGD steps per batch (pgd, trades; default: %(default)s)")
    p.add_argument("--arch", default=None, help="a name in advlab.classifiers.archs.ARCHS, e.g. mnist_madry "
                                                "(default: the dataset's target architecture)")
    p.add_argument("--ramp-epochs", type=float, default=3.0, help="eps ramp-up length (default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's (default: %(default)s)")
    p.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"), help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=128, help="default: %(default)s")
    p.add_argument("--trades-beta", type=float, default=6.0, help="TRADES's robustness weight (default: %(default)s)")
    p.add_argument("--holdout", type=int, default=1000, help="held-out training images probed after each epoch "
                                                             "(0: no probe; default: %(default)s)")
    p.add_argument("--probe-steps", type=int, default=20, help="PGD steps of the probe (default: %(default)s)")
    p.set_defaults(run=cmd_advtrain)


def _config(args, seed: int):
    from advlab.training.adversarial import AdversarialConfig

    try:
        return AdversarialConfig(method=METHODS[args.method], eps=args.eps, epochs=args.epochs,
                                 ramp_epochs=args.ramp_epochs, pgd_steps=args.steps,
                                 trades_beta=args.trades_beta, learning_rate=args.learning_rate,
                                 lr_schedule=args.lr_schedule, batch_size=args.batch_size, seed=seed)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err


def _probe(classifier_of, x, y, eps: float, steps: int, quiet: bool):
    """A Keras callback: clean and PGD-``steps`` accuracy on held-out images after each epoch."""
    import keras
    import numpy as np

    from advlab.attacks import apgd

    class RobustnessProbe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model = classifier_of(self.model)
            clean = float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), -1) == y))
            x_adv = apgd.pgd(model, x, y, eps, loss="ce", n_iter=steps, restarts=1, seed=epoch)
            robust = float(np.mean(np.argmax(model.predict(x_adv, batch_size=256, verbose=0), -1) == y))
            if logs is not None:
                logs.update(holdout_accuracy=clean, holdout_pgd_accuracy=robust)
            if not quiet:
                print(f"\n[advtrain] epoch {epoch + 1}: held-out clean {clean:.2%}, PGD-{steps} {robust:.2%} "
                      f"(eps {eps:g}, {len(y)} images)", flush=True)

    return RobustnessProbe()


def cmd_advtrain(args) -> dict:
    from advlab import classifiers
    from advlab.io import data
    from advlab.io.results import save_json
    from advlab.training.adversarial import train_adversarial

    out = args.out
    if args.holdout < 0 or args.probe_steps < 1:
        raise SystemExit(f"error: --holdout must be >= 0 and --probe-steps >= 1 (got {args.holdout}, "
                         f"{args.probe_steps})")
    _config(args, 0)    # bad flags fail before anything is written or removed
    if not args.resume:
        for name in ("classifier.keras", SUMMARY):   # checkpoints and history: train_adversarial(resume=False)
            (out / name).unlink(missing_ok=True)
    run = common.start(args, "scale", folder=out)
    cfg = run.cfg
    config = _config(args, cfg.seed)
    ds = data.info(args.dataset)
    arch = args.arch or classifiers.DEFAULT_ARCH[ds.name]
    if arch not in classifiers.ARCHS:
        raise SystemExit(f"error: unknown --arch {arch!r}; choose from {classifiers.ARCHS}")
    x, y = data.load(ds.name, "train", source=cfg.data_source, limit=cfg.n_train, verbose=not args.quiet)
    x_test, y_test = data.load(ds.name, "test", source=cfg.data_source, limit=cfg.n_test, verbose=not args.quiet)
    if args.holdout >= len(x):
        raise SystemExit(f"error: --holdout {args.holdout} leaves no training images out of {len(x)}")
    n_fit = len(x) - args.holdout
    callbacks = [_probe(lambda trainer: trainer.classifier, x[n_fit:], y[n_fit:], config.eps,
                        args.probe_steps, args.quiet)] if args.holdout else []
    model = classifiers.build_classifier(arch, input_shape=x.shape[1:], num_classes=ds.num_classes)
    print(f"[advtrain] {config.method} on {n_fit} {ds.name} images ({args.holdout} held out), {arch} "
          f"({model.count_params():,} parameters), eps {config.eps:g}, {config.epochs} epochs", flush=True)
    t0 = time.perf_counter()
    try:
        robust = train_adversarial(model, x[:n_fit], y[:n_fit], config, run_dir=out,
                                   verbose=0 if args.quiet else 2, callbacks=callbacks,
                                   resume=args.resume)
    except ValueError as err:   # another run's checkpoints in --out
        raise SystemExit(f"error: {err} (or pass --no-resume to overwrite it)") from err
    seconds = time.perf_counter() - t0
    summary_path = out / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if not summary.get("finished"):   # the session that finished the run (an interrupted one is not counted)
        summary["train_seconds"] = seconds
    acc = classifiers.accuracy(robust, x_test, y_test)
    summary.update(finished=True, method=config.method, arch=arch, parameters=int(robust.count_params()),
                   n_train=n_fit, holdout=args.holdout, n_test=len(y_test), clean_test_accuracy=acc,
                   config=config.to_dict())   # the command line is in the provenance block
    save_json(summary, SUMMARY, folder=out)
    print(f"[advtrain] clean test accuracy {acc:.2%} on {len(y_test)} images; training "
          f"{summary['train_seconds'] / 60:.1f} min; saved {out / 'classifier.keras'}")
    return summary

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

With ``--purifier WIDTH`` the defence trained is a purifier in front of the classifier (the
classifier of ``--init DIR``, or else the dataset's cached target classifier): a fresh residual
cGAN generator of that width, trained by
:func:`advlab.training.robust_purifier.train_robust_purifier` against PGD or FGSM + random start
crafted **through generator and classifier** (``--joint``: the classifier is fine-tuned with it).
``OUT`` then holds ``generator.keras`` and ``classifier.keras``; evaluate with
``advlab robustness --defence residual_cgan --purifier-run OUT --classifier-run OUT``.

With ``--front binarize`` the classifier is trained behind a fixed purifier, 1-bit depth
reduction (the comparison's ``bit_depth`` defence), the training attack crafted through it with
the straight-through (BPDA) gradient; evaluate with
``advlab robustness --defence bit_depth --classifier-run OUT``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from advlab.cli import common

METHODS = {"pgd": "pgd", "fgsm-rs": "fgsm_rs", "trades": "trades"}
# generator widths of --purifier (advlab.purifiers.residual_cgan.build_generator's filters)
PURIFIER_WIDTHS = {"narrow": dict(base_filters=16, max_filters=64), "cpu": dict(base_filters=32, max_filters=128)}
DATASETS = ("mnist", "fashion_mnist", "cifar10")
FRONTS = ("none", "binarize")   # advlab.training.adversarial.FRONTS (not imported: keeps --help light)
FRONT_DEFENCE = {"binarize": "bit_depth"}   # the comparison defence each front deploys as
SUMMARY = "advtrain.json"


def register(sub) -> None:
    p = common.add_command(sub, "advtrain", "adversarially train a classifier (PGD, FGSM + random start, TRADES)", [
        "advlab advtrain --dataset mnist --scale full --method pgd --steps 7 --epochs 10 --arch mnist_madry "
        "--lr-schedule cosine --out runs/mnist_adv_pgd",
        "advlab advtrain --dataset mnist --scale smoke --method fgsm-rs --epochs 1 --out runs/adv_smoke",
        "advlab advtrain --dataset mnist --scale full --method pgd --init runs/mnist_adv_pgd --purifier narrow "
        "--joint --epochs 4 --ramp-epochs 0.5 --out runs/mnist_robust_pur",
        "advlab advtrain --dataset mnist --scale full --method pgd --front binarize --arch mnist_madry "
        "--lr-schedule cosine --out runs/mnist_adv_bin"],
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
    p.add_argument("--front", default="none", choices=FRONTS,
                   help="train behind a fixed purifier: binarize = 1-bit depth reduction, the bit_depth "
                        "defence, attacked with BPDA (default: %(default)s)")
    p.add_argument("--init", type=Path, default=None, metavar="DIR",
                   help="start from DIR/classifier.keras (e.g. an `advlab advtrain` run) instead of a fresh --arch")
    g = p.add_argument_group("a purifier trained through the classifier")
    g.add_argument("--purifier", default=None, choices=tuple(PURIFIER_WIDTHS),
                   help="train a residual cGAN generator of this width in front of the classifier")
    g.add_argument("--residual-blocks", type=int, default=1, help="per encoder level (default: %(default)s)")
    g.add_argument("--joint", action="store_true", help="fine-tune the classifier together with the purifier")
    g.add_argument("--lambda-l1", type=float, default=10.0, help="weight of L1(G(x_adv), x) (default: %(default)s)")
    g.add_argument("--lambda-clean", type=float, default=1.0,
                   help="weight of the clean-image terms (default: %(default)s)")
    g.add_argument("--warmup-steps", type=int, default=300,
                   help="steps of the fresh generator alone on noisy -> clean L1 first (default: %(default)s)")
    g.add_argument("--classifier-learning-rate", type=float, default=1e-4,
                   help="--joint: the classifier's Adam rate (default: %(default)s)")
    p.set_defaults(run=cmd_advtrain)


def _config(args, seed: int):
    from advlab.training.adversarial import AdversarialConfig
    from advlab.training.robust_purifier import RobustPurifierConfig

    try:
        if args.purifier:
            if args.method == "trades":
                raise ValueError("--purifier trains against pgd or fgsm-rs, not trades")
            if args.front != "none":
                raise ValueError("--front and --purifier are two different defences; pass one")
            return RobustPurifierConfig(attack=METHODS[args.method], eps=args.eps, epochs=args.epochs,
                                        ramp_epochs=args.ramp_epochs, pgd_steps=args.steps,
                                        lambda_l1=args.lambda_l1, lambda_clean=args.lambda_clean,
                                        train_classifier=args.joint, learning_rate=args.learning_rate,
                                        classifier_learning_rate=args.classifier_learning_rate,
                                        batch_size=args.batch_size, warmup_steps=args.warmup_steps, seed=seed)
        if args.joint:
            raise ValueError("--joint needs --purifier")
        return AdversarialConfig(method=METHODS[args.method], eps=args.eps, epochs=args.epochs,
                                 ramp_epochs=args.ramp_epochs, pgd_steps=args.steps,
                                 trades_beta=args.trades_beta, learning_rate=args.learning_rate,
                                 lr_schedule=args.lr_schedule, batch_size=args.batch_size, seed=seed,
                                 front=args.front)
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

    out = args.out
    if args.holdout < 0 or args.probe_steps < 1:
        raise SystemExit(f"error: --holdout must be >= 0 and --probe-steps >= 1 (got {args.holdout}, "
                         f"{args.probe_steps})")
    _config(args, 0)    # bad flags fail before anything is written or removed
    if not args.resume:
        for name in ("classifier.keras", "generator.keras", SUMMARY):   # checkpoints and history: train_adversarial(resume=False)
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
    model = _initial_classifier(args, ds, arch, run.classifier or cfg, x.shape[1:])
    if args.init is not None:   # the architecture is the loaded model's, whatever --arch says
        arch = json.loads((args.init / SUMMARY).read_text()).get("arch", model.name) \
            if (args.init / SUMMARY).is_file() else model.name
    method = config.attack if args.purifier else config.method   # the two configs name it differently
    print(f"[advtrain] {method} on {n_fit} {ds.name} images "
          f"({args.holdout} held out), {arch} ({model.count_params():,} parameters)"
          f"{f' behind a {args.purifier} purifier' if args.purifier else ''}, eps {config.eps:g}, "
          f"{config.epochs} epochs", flush=True)
    # the probe attacks what the run defends: the classifier, or purifier + classifier (the trainer's call)
    behind = bool(args.purifier) or args.front != "none"     # the classifier is deployed behind a purifier
    probed = (lambda trainer: trainer) if behind else (lambda trainer: trainer.classifier)
    callbacks = [_probe(probed, x[n_fit:], y[n_fit:], config.eps, args.probe_steps, args.quiet)] if args.holdout else []
    t0 = time.perf_counter()
    try:
        robust = _train(args, config, model, x[:n_fit], y[:n_fit], out, callbacks)
    except ValueError as err:   # another run's checkpoints in --out
        raise SystemExit(f"error: {err} (or pass --no-resume to overwrite it)") from err
    seconds = time.perf_counter() - t0
    summary_path = out / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if not summary.get("finished"):   # the session that finished the run (an interrupted one is not counted)
        summary["train_seconds"] = seconds
    acc = classifiers.accuracy(robust, x_test, y_test)
    summary.update(finished=True, method=method, arch=arch,
                   parameters=int(robust.count_params()), purifier=args.purifier, init=str(args.init or ""),
                   front=args.front, deploy_as=FRONT_DEFENCE.get(args.front),
                   n_train=n_fit, holdout=args.holdout, n_test=len(y_test), clean_test_accuracy=acc,
                   config=config.to_dict())   # the command line is in the provenance block
    save_json(summary, SUMMARY, folder=out)
    print(f"[advtrain] clean test accuracy {acc:.2%} on {len(y_test)} images"
          f"{' (purifier + classifier)' if behind else ''}; training "
          f"{summary['train_seconds'] / 60:.1f} min; saved {out / 'classifier.keras'}")
    return summary


def _initial_classifier(args, ds, arch: str, cfg, input_shape):
    from advlab import classifiers

    if args.init is not None:
        path = args.init / "classifier.keras"
        if not path.is_file():
            raise SystemExit(f"error: --init {args.init}: {path} does not exist")
        return classifiers.load_classifier(path)
    if args.purifier:   # the classifier every notebook defends (cached; trained once if missing)
        return classifiers.get_classifier(ds.name, cfg, arch=arch, verbose=not args.quiet)
    return classifiers.build_classifier(arch, input_shape=input_shape, num_classes=ds.num_classes)


def _train(args, config, model, x, y, out, callbacks):
    """The trained defence as one Keras model (purifier + classifier with --purifier)."""
    import keras

    from advlab.training.adversarial import train_adversarial

    verbose = 0 if args.quiet else 2
    if not args.purifier:
        classifier = train_adversarial(model, x, y, config, run_dir=out, verbose=verbose, callbacks=callbacks,
                                       resume=args.resume)
        if args.front == "none":
            return classifier
        inp = keras.Input(x.shape[1:])   # the deployed defence: round(x) (bit_depth, 1 bit), then f
        return keras.Model(inp, classifier(keras.ops.round(inp)), name="binarize_classifier")
    from advlab.io.cache import save_model_atomic
    from advlab.purifiers.residual_cgan import build_generator
    from advlab.training.robust_purifier import train_robust_purifier

    keras.utils.set_random_seed(config.seed)
    generator = build_generator(x.shape[1:], residual_blocks=args.residual_blocks, **PURIFIER_WIDTHS[args.purifier])
    purifier, classifier = train_robust_purifier(generator, model, x, y, config, run_dir=out, verbose=verbose,
                                                 callbacks=callbacks, resume=args.resume)
    save_model_atomic(classifier, out / "classifier.keras")   # frozen or fine-tuned: the one behind G
    inp = keras.Input(x.shape[1:])
    pipeline = classifier(keras.ops.clip(purifier.model(inp), 0.0, 1.0))
    return keras.Model(inp, pipeline, name="purifier_classifier")

"""``advlab classifier | attack``: the target classifier, and adversarial sets crafted against it.

``classifier`` trains (or loads from the cache) the scale's target classifier and reports its
clean test accuracy. ``attack`` crafts one adversarial set per attack against that classifier
with :func:`advlab.attacks.adversarial_set` (cached, resumable chunk by chunk) and prints the
accuracy before and after.
"""
from __future__ import annotations

from advlab.cli import common

CLASSIFIER_DATASETS = ("mnist", "fashion_mnist", "cifar10")


def register(sub) -> None:
    clf = common.add_command(sub, "classifier", "train (or load) the target classifier and report its accuracy", [
        "advlab classifier --dataset mnist --scale full          # 12 epochs on 60k images, cached",
        "advlab classifier --dataset fashion_mnist --arch mnist_lenet --retrain"])
    common.add_shared(clf, "dataset", "scale", "seed", "data_dir", "quiet",
                      dataset={"choices": CLASSIFIER_DATASETS})
    clf.add_argument("--arch", default=None, help="a name in advlab.classifiers.archs.ARCHS, e.g. mnist_lenet "
                                                  "(default: the dataset's)")
    clf.add_argument("--epochs", dest="classifier_epochs", type=int, default=None,
                     help="classifier training epochs (default: the scale's)")
    clf.add_argument("--retrain", action="store_true", help="train again even if a cached model exists")
    clf.set_defaults(run=cmd_classifier)

    att = common.add_command(sub, "attack", "craft adversarial sets against the cached classifier and save them", [
        "advlab attack --dataset mnist --attacks pgd --eps 0.3 --n 1000 --scale full",
        "advlab attack --dataset fashion_mnist --attacks fgsm,cw --split train --out runs/fmnist_adv"])
    common.add_shared(att, "dataset", "scale", "seed", "data_dir", "quiet", "attacks", "eps",
                      dataset={"choices": CLASSIFIER_DATASETS}, attacks={"default": "pgd"})
    common.add_shared(att, "out", out={"help": "folder for the sets and run_config.json "
                                              "(default: the cache, .cache/adversarial)"})
    att.add_argument("--split", default="test", choices=("train", "test"))
    att.add_argument("--n", type=int, default=None, help="attack the first N images (default: the scale's n_test "
                                                         "or n_train)")
    att.set_defaults(run=cmd_attack)


def cmd_classifier(args):
    from advlab import classifiers

    run = common.start(args, "scale")
    return classifiers.get_classifier(args.dataset, run.classifier, arch=args.arch, retrain=args.retrain)


def cmd_attack(args) -> dict:
    from advlab import attacks, classifiers
    from advlab.io import data

    names = common.attack_names(args.attacks)
    if args.n is not None and args.n < 1:
        raise SystemExit(f"error: --n must be a positive integer, got {args.n}")
    run = common.start(args, "scale", folder=args.out)
    cfg = run.cfg
    model = classifiers.get_classifier(args.dataset, run.classifier)
    limit = args.n or (cfg.n_test if args.split == "test" else cfg.n_train)
    x, y = data.load(args.dataset, args.split, source=cfg.data_source, limit=limit)
    preset = "mnist" if args.dataset in ("mnist", "fashion_mnist") else "paper"
    summary = {}
    for name in names:
        params = {"eps": args.eps} if args.eps is not None and "eps" in attacks.default_params(name, preset) else {}
        adv = attacks.adversarial_set(args.dataset, args.split, name, model, x, y, preset=preset, cfg=cfg,
                                      folder=args.out, seed=cfg.seed, progress=not args.quiet, **params)
        res = adv.meta["results"]
        summary[name] = {"path": str(adv.path), **res}
        print(f"[advlab] {name} on {len(y)} {args.dataset}/{args.split} images: accuracy "
              f"{res['clean_accuracy']:.2%} -> {res['adversarial_accuracy']:.2%} "
              f"(mean L-inf {res['linf_mean']:.3f}); saved in {adv.path}")
    return summary

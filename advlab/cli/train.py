"""``advlab train | evaluate``: the Table I protocol on one dataset, in a run folder.

``train`` gets the target classifier (cached, see :func:`advlab.classifiers.get_classifier`),
crafts the composite adversarial training set (cached in ``OUT/adv/`` chunk by chunk, so an
interrupted run does not recompute finished work), trains the residual cGAN with checkpoints in
``OUT`` (rerun the same command to resume) and, unless ``--no-eval``, evaluates it. The run is
one :class:`advlab.config.RunConfig` (``resolve(job="table1")``: the numbers of ``--budget`` are
in advlab/budgets.py, and every flag given replaces one of them), printed first and saved as
``OUT/run_config.json``; ``advlab train --config OUT/run_config.json --out NEW`` repeats it.
``evaluate`` loads ``OUT/generator.keras`` and the run's config and writes
``OUT/evaluation.json`` and ``.csv``. Attack and training times go to ``OUT/timings.json``.
``record`` (:mod:`advlab.cli.record`) copies a finished run's results into ``figures/full/``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from advlab.cli import common

SHARED = ("dataset", "scale", "budget", "out", "data_dir", "quiet", "attacks", "eps", "n_test")
# the flags that size a train run: all of them are in run_config.json, so --config takes none
SIZING = ("dataset", "scale", "budget", "seed", "attacks", "eps", "n_train", "n_test", "cw_subset", "test_subset",
          "batch_size", "size", "epochs", "perceptual", "residual_blocks", "base_filters", "max_filters", "disc_blocks",
          "learning_rate", "lr_decay_start", "train_subset", "lambda_l1", "lambda_perc", "schedule",
          "mixed_precision", "clean_pairs")
DEFAULT_DATASET = "mnist"


def register(sub) -> None:
    train = common.add_command(sub, "train", "craft adversarial pairs, train (or resume) a purifier, evaluate", [
        "advlab train --dataset mnist --scale full --budget cpu --out runs/mnist_full   # ~1 h on 2 CPU cores",
        "advlab train --dataset mnist --scale full --budget paper --out runs/mnist_paper  # GPU-sized",
        "advlab train --dataset mnist --scale smoke --out runs/smoke --tensorboard runs/smoke/tb",
        "advlab train --config runs/mnist_full/run_config.json --out runs/mnist_again   # the same run again"],
        description=__doc__.split("\n\n")[1])
    _add_run_flags(train)
    common.add_shared(train, "seed", "n_train", "resume", "size", "epochs", "perceptual")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--residual-blocks", type=int, default=None)
    train.add_argument("--base-filters", type=int, default=None)
    train.add_argument("--max-filters", type=int, default=None)
    train.add_argument("--disc-blocks", type=int, default=None, help="residual blocks per discriminator conv")
    train.add_argument("--learning-rate", type=float, default=None)
    train.add_argument("--lr-decay-start", type=float, default=None, metavar="FRACTION",
                       help="linear learning-rate decay after this fraction of the epochs (pix2pix: 0.5)")
    train.add_argument("--train-subset", default=None, metavar="ATTACK=N[,ATTACK=N]",
                       help="train on the first N clean images only for these attacks, e.g. cw=1000 "
                            "(C&W costs ~0.13 s per MNIST image on 2 CPU cores)")
    train.add_argument("--clean-pairs", type=int, default=None, metavar="N",
                       help="also train on the first N clean training images as clean -> clean pairs, so "
                            "the purifier leaves clean images alone (default: 0, the papers')")
    train.add_argument("--lambda-l1", type=float, default=None, help="L1 weight (paper: 100)")
    train.add_argument("--lambda-perc", type=float, default=None,
                       help="perceptual weight (paper: 1 with VGG19; the cpu budget: 100 with the classifier)")
    train.add_argument("--schedule", default=None, choices=("constant", "multistep"),
                       help="multistep: the versatile paper's 40/30/30 %% schedule of the loss weights")
    train.add_argument("--mixed-precision", default=None, choices=("mixed_float16", "mixed_bfloat16"))
    train.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                       help="log losses to TensorBoard in DIR (view with `tensorboard --logdir DIR`)")
    train.add_argument("--no-eval", dest="evaluate", action="store_false", help="train only")
    train.add_argument("--config", type=Path, default=None, metavar="FILE",
                       help="repeat the run saved in FILE (a run_config.json, or its folder): every number "
                            "comes from it, so no flag that sizes the run may be given with it")
    train.set_defaults(run=cmd_train)

    evaluate = common.add_command(sub, "evaluate", "evaluate the purifier saved in --out", [
        "advlab evaluate --dataset mnist --scale full --budget cpu --out runs/mnist_full",
        "advlab evaluate --dataset mnist --attacks fgsm,pgd --scale smoke --out runs/smoke --cw-subset 100",
        "advlab evaluate --dataset mnist --scale full --budget fast --out runs/new --against runs/old"],
        description="Evaluates the run in --out as OUT/run_config.json says it was trained (the same classifier, "
                    "attacks and test images); --attacks, --eps, --n-test and --cw-subset change what is "
                    "evaluated, --dataset, --scale and --budget must match the run.")
    _add_run_flags(evaluate)
    evaluate.add_argument("--config", type=Path, default=None, metavar="FILE",
                          help="the run config to evaluate with (default: OUT/run_config.json)")
    evaluate.add_argument("--against", type=Path, default=None, metavar="RUN",
                          help="also purify the same test images with RUN's generator and compare the two "
                               "image by image (exact McNemar test), saved under 'paired' in the evaluation")
    evaluate.set_defaults(run=cmd_evaluate)


def _add_run_flags(p) -> None:
    common.add_shared(p, *SHARED, out={"required": True, "help": "run folder (checkpoints, logs, results)"},
                      dataset={"default": None, "help": f"default: {DEFAULT_DATASET}"},
                      attacks={"default": None, "help": "comma-separated attack names (default: the paper's "
                                                        "fgsm,pgd,cw)"})
    p.add_argument("--cw-subset", type=int, default=None, help="evaluate C&W on the first N test images only")
    p.add_argument("--test-subset", default=None, metavar="ATTACK=N[,ATTACK=N]",
                   help="evaluate these slow attacks on the first N test images only, e.g. "
                        "deepfool=1000,autoattack=1000 (C&W: --cw-subset)")


def _timings(out: Path, **new) -> dict:
    from advlab.io.cache import save_json_atomic

    path = out / "timings.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(new)
    save_json_atomic(path, data)
    return data


def _with_dataset(args) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "dataset": args.dataset or DEFAULT_DATASET})


def _load(path: Path):
    """The table1 :class:`~advlab.config.RunConfig` saved at ``path`` (a file or its folder)."""
    from advlab.config import RunConfig

    try:
        run = RunConfig.load(path)
    except (OSError, ValueError, TypeError) as err:
        raise SystemExit(f"error: cannot read a run config from {path}: {err}") from err
    if run.job != "table1" or run.dataset is None:
        raise SystemExit(f"error: {path} holds a {run.job!r} run (dataset {run.dataset}); "
                         "advlab train and evaluate repeat a 'table1' run of one dataset")
    return run


def train_run(args):
    """The run ``advlab train`` does: the ``--config`` file's, else the flags resolved."""
    if args.config is None:
        return common.resolve_run(_with_dataset(args), "table1")
    given = [f"--{d.replace('_', '-')}" for d in SIZING if getattr(args, d, None) is not None]
    if given:
        raise SystemExit(f"error: --config {args.config} is the whole run; leave out {' '.join(given)} "
                         "(or give no --config, and every flag)")
    return _load(args.config)


def evaluation_run(args):
    """The run ``advlab evaluate`` evaluates: ``--config`` or ``OUT/run_config.json`` (what was
    trained), with the evaluation flags given; a folder without one: the flags resolved."""
    from advlab.config import CONFIG_FILE

    source = args.config or (args.out / CONFIG_FILE if (args.out / CONFIG_FILE).is_file() else None)
    if source is None:
        return common.resolve_run(_with_dataset(args), "table1"), True
    run = _load(source)
    checks = {"dataset": run.dataset, "scale": run.scale, **({"budget": run.budget} if run.scale == "full" else {})}
    for name, value in checks.items():
        if getattr(args, name) not in (None, value):
            raise SystemExit(f"error: the run in {source} has --{name} {value}, not {getattr(args, name)}")
    protocol = common.given(args, {"cw_subset": "cw_test", "eps": "eps"})
    if args.attacks:
        protocol["attacks"] = tuple(common.attack_names(args.attacks))
    if args.test_subset is not None:
        attacks = protocol.get("attacks", run.protocol.attacks)
        protocol["test_subset"] = common.evaluation_subsets(args.test_subset, attacks)
    cfg = run.cfg.replace(n_test=args.n_test) if args.n_test is not None else run.cfg
    return run.replace(cfg=cfg, protocol=run.protocol.replace(**protocol)), False


def _classifier(run):
    """The scale's target classifier (``run.classifier``: ``--n-train`` sizes the purifier's pairs only)."""
    from advlab import classifiers

    return classifiers.get_classifier(run.dataset, run.classifier)


def adversarial(out: Path, split: str, name: str, model, x, y, run, progress: bool = True):
    """``x_adv`` for one attack via :func:`advlab.attacks.adversarial_set`, cached chunk by chunk
    in ``out/adv/`` (an interrupted attack resumes); its seconds go into ``timings.json``."""
    from advlab import attacks

    preset = "mnist" if run.dataset in ("mnist", "fashion_mnist") else "paper"
    eps = run.protocol.eps
    params = {"eps": eps} if eps is not None and "eps" in attacks.default_params(name, preset) else {}
    adv_set = attacks.adversarial_set(run.dataset, split, name, model, x, y, preset=preset, cfg=run.cfg,
                                      folder=out / "adv", progress=progress, seed=run.cfg.seed, **params)
    _timings(out, **{f"attack_{split}_{name}_s": adv_set.meta["results"]["seconds"]})
    return adv_set.x_adv


def check_tensorboard(folder: Path | None) -> None:
    """Refuse ``--tensorboard`` before the long attacks when the tensorboard package is missing."""
    import importlib.util

    if folder is not None and importlib.util.find_spec("tensorboard") is None:
        raise SystemExit("error: --tensorboard needs the tensorboard package: pip install tensorboard "
                         "(or pip install -e '.[dev]')")


def cmd_train(args) -> dict | None:
    import numpy as np

    from advlab.io import data
    from advlab.training import train_purifier

    check_tensorboard(args.tensorboard)
    run = common.start(args, "table1", folder=args.out, run=train_run(args))
    protocol = run.protocol
    model = _classifier(run)
    x, y = data.load(run.dataset, "train", source=run.cfg.data_source, limit=protocol.n_train)
    pairs = {}
    for a in protocol.attacks:
        k = protocol.train_subset.get(a)
        pairs[a] = (adversarial(args.out, "train", a, model, x[:k], y[:k], run, not args.quiet), x[:k])
    if protocol.clean_pairs:
        pairs["clean"] = (x[:protocol.clean_pairs], x[:protocol.clean_pairs])
    x_adv = np.concatenate([p[0] for p in pairs.values()])
    x_clean = np.concatenate([p[1] for p in pairs.values()])
    print(f"[advlab] training pairs per attack: { {a: len(c) for a, (_, c) in pairs.items()} }")
    t0 = time.perf_counter()
    purifier = train_purifier(x_adv, x_clean, run.purifier, args.out, classifier=model, resume=args.resume,
                              tensorboard_dir=args.tensorboard, verbose=2 if args.quiet else 1)
    session = time.perf_counter() - t0
    previous = json.loads((args.out / "timings.json").read_text()).get("train_sessions_s", [])
    _timings(args.out, train_session_s=session, train_sessions_s=previous + [session],
             train_time_total_s=purifier.info.get("train_time_s"), n_pairs=int(len(x_adv)))
    return _evaluate(args, run, model) if args.evaluate else None


def cmd_evaluate(args) -> dict:
    run, fresh = evaluation_run(args)
    return _evaluate(args, common.start(args, "table1", folder=args.out if fresh else None, run=run))


def _evaluate(args, run, model=None) -> dict:
    from advlab import evaluation
    from advlab.experiments import paper_results
    from advlab.io import data
    from advlab.purifiers.residual_cgan import load_purifier

    cfg, protocol = run.cfg, run.protocol
    model = model or _classifier(run)
    purifier = load_purifier(args.out)
    against = getattr(args, "against", None)
    baseline = load_purifier(against) if against is not None else None    # a bad path fails before the work
    x, y = data.load(run.dataset, "test", source=cfg.data_source, limit=cfg.n_test)
    by_attack = {}
    for a in protocol.attacks:
        k = min(protocol.test_images(a) or len(x), len(x))
        x_adv = adversarial(args.out, "test", a, model, x[:k], y[:k], run, not args.quiet)
        by_attack[a] = x_adv if k == len(x) else (x_adv, x[:k], y[:k])
    info_path = args.out / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    per_image = {}
    result = evaluation.evaluate_purifier(model, purifier, x, y, by_attack, train_info=info, per_image=per_image)
    if baseline is not None:    # `a` is the other run, `b` this one, on this run's images and classifier
        result["paired"] = {"against": str(against), "sets": evaluation.compare_purifiers(
            model, baseline, purifier, x, y, by_attack, known=per_image)}
    # what was evaluated, beside the numbers (an evaluate run may differ from the trained one)
    result.update(dataset=run.dataset, scale=cfg.scale, run_config=run.to_dict())
    paths = evaluation.save_evaluation(result, "evaluation", folder=args.out, config=run)
    print(f"\n[advlab] defended accuracy is GRAY-BOX: the attacks were crafted against the classifier "
          f"alone, without the purifier, so it is not robustness. The attacker who knows the purifier: "
          f"`advlab robustness --defence residual_cgan --purifier-run {args.out} --dataset {run.dataset} "
          f"--scale {cfg.scale}` (notebooks 10 and 11).")
    if cfg.scale == "smoke":
        print(f"[advlab] SMOKE SCALE ({len(x)} test images, tiny training): a check that the pipeline runs, "
              f"not a result; --scale full for numbers to set beside the paper's.")
    common.print_rows(evaluation.rows(result))
    if run.dataset in paper_results.TABLE_I:
        print(f"\npaper (gray-box) vs this run ({paper_results.CITATION}):")
        common.print_rows(paper_results.compare_table_i(result, run.dataset))
    if "paired" in result:
        print(f"\nimage by image against {against} (the same images, gray-box attacks):")
        common.print_rows([{"images": name, "n": t["n"], f"{against.name}_%": round(100 * t["accuracy_a"], 2),
                            "this_run_%": round(100 * t["accuracy_b"], 2), "only_there": t["only_a"],
                            "only_here": t["only_b"], "mcnemar_p": f"{t['mcnemar_p']:.3g}"}
                           for name, t in result["paired"]["sets"].items()])
    print(f"\n[advlab] saved {paths['json']} and {paths['csv']}")
    return result


"""Command line for long runs: ``python -m advlab train|evaluate ...`` (also ``advlab ...``).

    python -m advlab train --dataset mnist --scale full --budget paper --out runs/mnist_paper  # GPU-sized
    python -m advlab train --dataset mnist --scale full --budget cpu --out runs/mnist_full     # 2 CPU cores

At full scale the budget (``--budget``, else ``$ADVLAB_BUDGET``, else ``paper`` with a GPU and
``cpu`` without; see :func:`advlab.config.resolve_budget`) fills the size flags left out; the
``cpu`` values are :data:`advlab.purifiers.residual_cgan.TABLE_I_CPU`.
    python -m advlab evaluate --dataset mnist --attacks fgsm,pgd,cw --scale full --out runs/mnist_full

``train`` gets the target classifier (cached, see :func:`advlab.classifiers.get_classifier`),
crafts the composite adversarial training set (cached in ``OUT/adv/`` chunk by chunk, so an
interrupted run does not recompute finished work), trains the residual cGAN with
checkpoints in ``OUT`` (rerun the same command to resume) and, unless ``--no-eval``,
evaluates it. ``evaluate`` loads ``OUT/generator.keras`` and writes ``OUT/evaluation.json`` and
``.csv``. Attack and training times are saved in ``OUT/timings.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagenet")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--attacks", default="fgsm,pgd,cw", help="comma-separated attack names (default: %(default)s)")
    p.add_argument("--scale", default=None, choices=("smoke", "full"), help="default: $ADVLAB_SCALE or smoke")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs, results)")
    p.add_argument("--n-train", type=int, default=None, help="clean training images per attack")
    p.add_argument("--n-test", type=int, default=None, help="test images attacked and evaluated")
    p.add_argument("--eps", type=float, default=None, help="L-inf budget (default: 0.3 MNIST-like, 16/255 else)")
    p.add_argument("--cw-subset", type=int, default=None, help="evaluate C&W on the first N test images only")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--budget", default=None, choices=("paper", "cpu"),
                   help="full scale only: 'cpu' fills every size flag you leave out from "
                        "advlab.purifiers.residual_cgan.TABLE_I_CPU (about 55 min for MNIST on 2 CPU cores); "
                        "default: $ADVLAB_BUDGET, else paper with a GPU, cpu without")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m advlab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="craft adversarial pairs, train (or resume) a purifier, evaluate")
    _add_common(train)
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--residual-blocks", type=int, default=None)
    train.add_argument("--size", default=None, choices=("paper", "cpu"),
                       help="network width at full scale: the paper's (64->512 filters, hundreds of "
                            "CPU-hours) or CPU-sized (32->128, D with 1 residual block); default: the budget's")
    train.add_argument("--base-filters", type=int, default=None)
    train.add_argument("--max-filters", type=int, default=None)
    train.add_argument("--disc-blocks", type=int, default=None, help="residual blocks per discriminator conv")
    train.add_argument("--learning-rate", type=float, default=None)
    train.add_argument("--lr-decay-start", type=float, default=None, metavar="FRACTION",
                       help="linear learning-rate decay after this fraction of the epochs (pix2pix: 0.5)")
    train.add_argument("--train-subset", default=None, metavar="ATTACK=N[,ATTACK=N]",
                       help="train on the first N clean images only for these attacks, e.g. cw=1000 "
                            "(C&W costs ~0.13 s per MNIST image on 2 CPU cores)")
    train.add_argument("--perceptual", default=None,
                       help="auto | vgg19 | classifier | none | vgg19-random | PATH to VGG19 weights "
                            "(default: the budget's; auto = VGG19 if its weights load, else the classifier)")
    train.add_argument("--lambda-l1", type=float, default=None, help="L1 weight (paper: 100)")
    train.add_argument("--lambda-perc", type=float, default=None,
                       help="perceptual weight (paper: 1 with VGG19; the cpu budget: 100 with the classifier)")
    train.add_argument("--schedule", default="constant", choices=("constant", "multistep"),
                       help="multistep: the versatile paper's 40/30/30 %% schedule of the loss weights")
    train.add_argument("--mixed-precision", default=None, choices=("mixed_float16", "mixed_bfloat16"))
    train.add_argument("--no-resume", dest="resume", action="store_false", help="start over in --out")
    train.add_argument("--no-eval", dest="evaluate", action="store_false")
    evaluate = sub.add_parser("evaluate", help="evaluate the purifier saved in --out")
    _add_common(evaluate)
    return parser


def _apply_budget(args) -> None:
    """At full scale with budget ``cpu``, fill the size flags left out from ``TABLE_I_CPU``."""
    from advlab.config import get_config, resolve_budget

    if get_config(args.scale).scale != "full":
        return
    budget = resolve_budget(args.budget)
    if budget != "cpu":
        return
    from advlab.purifiers.residual_cgan import TABLE_I_CPU as T, TABLE_I_CPU_CONFIG

    names = _attack_names(args.attacks)
    subset = ",".join(f"{a}={n}" for a, n in T["train_subset"].items() if a in names) or None
    defaults = {"n_train": T["n_train"], "cw_subset": T["cw_test"], "size": T["size"], "train_subset": subset,
                **{k: T[k] for k in TABLE_I_CPU_CONFIG}}
    for key, value in defaults.items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, value)


def _config(args):
    from advlab.config import get_config

    overrides = {k: v for k, v in {"n_train": args.n_train, "n_test": args.n_test, "batch_size": args.batch_size,
                                   "purifier_epochs": getattr(args, "epochs", None),
                                   "residual_blocks": getattr(args, "residual_blocks", None)}.items()
                 if v is not None}
    return get_config(args.scale, **overrides)


def _classifier(args):
    """The scale's target classifier: ``--n-train`` sizes the purifier's pairs, not the classifier."""
    from advlab import classifiers
    from advlab.config import classifier_config

    return classifiers.get_classifier(args.dataset, classifier_config(_config(args)))


def _attack_names(spec: str) -> list[str]:
    from advlab.attacks import ATTACKS, EXTRAS

    names = [a.strip().lower() for a in spec.split(",") if a.strip()]
    unknown = [a for a in names if a not in ATTACKS + EXTRAS]
    if not names or unknown:
        raise SystemExit(f"error: unknown attack(s) {unknown or spec!r}; choose from {ATTACKS + EXTRAS}")
    return names


def _subsets(spec: str | None, names: list[str]) -> dict[str, int]:
    """``"cw=1000,pgd=20000"`` -> ``{"cw": 1000, "pgd": 20000}`` (attacks must be among ``names``)."""
    out = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        name, _, n = item.partition("=")
        name = name.strip().lower()
        if name not in names or not n.strip().isdigit() or int(n) < 1:
            raise SystemExit(f"error: --train-subset item {item!r} must be ATTACK=N with ATTACK in {names} "
                             f"and N a positive integer")
        out[name] = int(n)
    return out


def _timings(out: Path, **new) -> dict:
    path = out / "timings.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(new)
    from advlab.io.cache import save_json_atomic

    save_json_atomic(path, data)
    return data


def adversarial(out: Path, split: str, name: str, model, x, y, args, cfg) -> np.ndarray:
    """``x_adv`` for one attack via :func:`advlab.attacks.adversarial_set`, cached chunk by chunk
    in ``out/adv/`` (an interrupted attack resumes); its seconds go into ``timings.json``."""
    from advlab import attacks

    preset = "mnist" if args.dataset in ("mnist", "fashion_mnist") else "paper"
    params = {}
    if args.eps is not None and "eps" in attacks.default_params(name, preset):
        params["eps"] = args.eps
    adv_set = attacks.adversarial_set(args.dataset, split, name, model, x, y, preset=preset, cfg=cfg,
                                      folder=out / "adv", progress=not args.quiet, **params)
    _timings(out, **{f"attack_{split}_{name}_s": adv_set.meta["results"]["seconds"]})
    return adv_set.x_adv


def cmd_train(args) -> dict | None:
    from advlab.io import data
    from advlab.purifiers.residual_cgan import CGANConfig
    from advlab.training import train_purifier

    cfg = _config(args)
    names = _attack_names(args.attacks)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"[advlab] train: {args.dataset}, attacks {names}, {cfg}")
    model = _classifier(args)
    x, y = data.load(args.dataset, "train", source=cfg.data_source, limit=cfg.n_train)
    subset = _subsets(args.train_subset, names)
    pairs = [(adversarial(args.out, "train", n, model, x[:subset.get(n)], y[:subset.get(n)], args, cfg),
              x[:subset.get(n)]) for n in names]
    x_adv = np.concatenate([a for a, _ in pairs])
    x_clean = np.concatenate([c for _, c in pairs])
    print(f"[advlab] training pairs per attack: { {n: len(c) for n, (_, c) in zip(names, pairs)} }")
    overrides = {k: v for k, v in {"base_filters": args.base_filters, "max_filters": args.max_filters,
                                   "disc_residual_blocks": args.disc_blocks, "learning_rate": args.learning_rate,
                                   "lr_decay_start": args.lr_decay_start, "lambda_l1": args.lambda_l1,
                                   "lambda_perc": args.lambda_perc,
                                   "epochs": args.epochs, "batch_size": args.batch_size}.items() if v is not None}
    config = CGANConfig.for_scale(cfg, size=args.size or "paper")
    t0 = time.perf_counter()
    purifier = train_purifier(x_adv, x_clean, cfg, args.out, config=config, classifier=model,
                              perceptual=args.perceptual or "auto",
                              schedule=args.schedule, mixed_precision=args.mixed_precision,
                              resume=args.resume, verbose=2 if args.quiet else 1, **overrides)
    session = time.perf_counter() - t0
    previous = json.loads((args.out / "timings.json").read_text()).get("train_sessions_s", [])
    _timings(args.out, train_session_s=session, train_sessions_s=previous + [session],
             train_time_total_s=purifier.info.get("train_time_s"), n_pairs=int(len(x_adv)))
    return cmd_evaluate(args, cfg=cfg, model=model) if args.evaluate else None


def cmd_evaluate(args, cfg=None, model=None) -> dict:
    from advlab.io import data
    from advlab import evaluation
    from advlab.experiments import paper_results
    from advlab.purifiers.residual_cgan import load_purifier

    cfg = cfg or _config(args)
    names = _attack_names(args.attacks)
    model = model or _classifier(args)
    purifier = load_purifier(args.out)
    x, y = data.load(args.dataset, "test", source=cfg.data_source, limit=cfg.n_test)
    by_attack = {}
    for n in names:
        k = len(x) if n != "cw" or args.cw_subset is None else min(args.cw_subset, len(x))
        x_adv = adversarial(args.out, "test", n, model, x[:k], y[:k], args, cfg)
        by_attack[n] = x_adv if k == len(x) else (x_adv, x[:k], y[:k])
    info_path = args.out / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    result = evaluation.evaluate_purifier(model, purifier, x, y, by_attack, train_info=info)
    result["dataset"], result["scale"] = args.dataset, cfg.scale
    paths = evaluation.save_evaluation(result, "evaluation", folder=args.out)
    _print_rows(evaluation.rows(result))
    if args.dataset in paper_results.TABLE_I:
        print(f"\npaper vs this run ({paper_results.CITATION}):")
        _print_rows(paper_results.compare_table_i(result, args.dataset))
    print(f"\n[advlab] saved {paths['json']} and {paths['csv']}")
    return result


def _print_rows(rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(width[c]) for c in cols))


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _apply_budget(args)
    COMMANDS[args.command](args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

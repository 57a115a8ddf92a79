"""``advlab train | evaluate | record``: the Table I protocol on one dataset, in a run folder.

``train`` gets the target classifier (cached, see :func:`advlab.classifiers.get_classifier`),
crafts the composite adversarial training set (cached in ``OUT/adv/`` chunk by chunk, so an
interrupted run does not recompute finished work), trains the residual cGAN with checkpoints in
``OUT`` (rerun the same command to resume) and, unless ``--no-eval``, evaluates it.
``evaluate`` loads ``OUT/generator.keras`` and writes ``OUT/evaluation.json`` and ``.csv``.
Attack and training times go to ``OUT/timings.json``, the resolved configuration to
``OUT/run_config.json``. The sizes come from :func:`advlab.purifiers.residual_cgan.table_i_protocol`
(at full scale with ``--budget cpu``: ``TABLE_I_CPU``); every flag given replaces one of them.
``record`` copies a finished run's results into ``figures/full/``.
"""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

from advlab.cli import common

SHARED = ("dataset", "scale", "budget", "out", "seed", "data_dir", "quiet", "attacks", "eps", "n_train", "n_test")


def register(sub) -> None:
    train = common.add_command(sub, "train", "craft adversarial pairs, train (or resume) a purifier, evaluate", [
        "advlab train --dataset mnist --scale full --budget cpu --out runs/mnist_full   # ~1 h on 2 CPU cores",
        "advlab train --dataset mnist --scale full --budget paper --out runs/mnist_paper  # GPU-sized",
        "advlab train --dataset mnist --scale smoke --out runs/smoke --tensorboard runs/smoke/tb"],
        description=__doc__.split("\n\n")[1])
    _add_run_flags(train)
    common.add_shared(train, "resume", "size", "epochs", "perceptual")
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
    train.add_argument("--lambda-l1", type=float, default=None, help="L1 weight (paper: 100)")
    train.add_argument("--lambda-perc", type=float, default=None,
                       help="perceptual weight (paper: 1 with VGG19; the cpu budget: 100 with the classifier)")
    train.add_argument("--schedule", default=None, choices=("constant", "multistep"),
                       help="multistep: the versatile paper's 40/30/30 %% schedule of the loss weights")
    train.add_argument("--mixed-precision", default=None, choices=("mixed_float16", "mixed_bfloat16"))
    train.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                       help="log losses to TensorBoard in DIR (view with `tensorboard --logdir DIR`)")
    train.add_argument("--no-eval", dest="evaluate", action="store_false", help="train only")
    train.set_defaults(run=cmd_train)

    evaluate = common.add_command(sub, "evaluate", "evaluate the purifier saved in --out", [
        "advlab evaluate --dataset mnist --scale full --budget cpu --out runs/mnist_full",
        "advlab evaluate --dataset mnist --attacks fgsm,pgd --scale smoke --out runs/smoke --cw-subset 100"])
    _add_run_flags(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    record = common.add_command(sub, "record", "copy a finished train run's results into figures/full/", [
        "advlab record runs/mnist_full --name table1_mnist_cpu"],
        description="Writes NAME.json (evaluation, timings, training info, run config, the command) and "
                    "NAME.csv (the per-attack rows beside the paper's Table I) into figures/full/.")
    record.add_argument("run_folder", type=Path, metavar="RUN", help="the --out folder of `advlab train`")
    record.add_argument("--name", required=True, help="file name stem in figures/full/")
    record.add_argument("--command", default=None,
                        help="the command that produced the run (default: the one in RUN/run_config.json)")
    record.add_argument("--note", default="")
    record.set_defaults(run=cmd_record)


def _add_run_flags(p) -> None:
    common.add_shared(p, *SHARED, out={"required": True, "help": "run folder (checkpoints, logs, results)"})
    p.add_argument("--cw-subset", type=int, default=None, help="evaluate C&W on the first N test images only")
    p.add_argument("--batch-size", type=int, default=None)


def _timings(out: Path, **new) -> dict:
    path = out / "timings.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(new)
    from advlab.io.cache import save_json_atomic

    save_json_atomic(path, data)
    return data


def _classifier(args, cfg):
    """The scale's target classifier: ``--n-train`` sizes the purifier's pairs, not the classifier."""
    from advlab import classifiers
    from advlab.config import classifier_config

    return classifiers.get_classifier(args.dataset, classifier_config(cfg))


def adversarial(out: Path, split: str, name: str, model, x, y, args, cfg):
    """``x_adv`` for one attack via :func:`advlab.attacks.adversarial_set`, cached chunk by chunk
    in ``out/adv/`` (an interrupted attack resumes); its seconds go into ``timings.json``."""
    from advlab import attacks

    preset = "mnist" if args.dataset in ("mnist", "fashion_mnist") else "paper"
    params = {"eps": args.eps} if args.eps is not None and "eps" in attacks.default_params(name, preset) else {}
    adv_set = attacks.adversarial_set(args.dataset, split, name, model, x, y, preset=preset, cfg=cfg,
                                      folder=out / "adv", progress=not args.quiet, seed=cfg.seed, **params)
    _timings(out, **{f"attack_{split}_{name}_s": adv_set.meta["results"]["seconds"]})
    return adv_set.x_adv


def _callbacks(train_purifier, tensorboard: Path | None) -> dict:
    """``{"callbacks": [TensorBoard(DIR)]}`` for ``--tensorboard DIR`` (nothing without it)."""
    if tensorboard is None:
        return {}
    if "callbacks" not in inspect.signature(train_purifier).parameters:
        raise SystemExit("error: --tensorboard needs advlab.training.train_purifier(..., callbacks=...), "
                         "which this version of advlab does not have yet")
    import keras

    return {"callbacks": [keras.callbacks.TensorBoard(str(tensorboard))]}


def cmd_train(args) -> dict | None:
    import numpy as np

    from advlab.io import data
    from advlab.training import train_purifier

    attacks = common.attack_names(args.attacks)
    extra = _callbacks(train_purifier, args.tensorboard)
    run = common.start(args, "table1", folder=args.out)
    cfg, protocol = run.cfg, run.plan
    model = _classifier(args, cfg)
    x, y = data.load(args.dataset, "train", source=cfg.data_source, limit=protocol.n_train)
    pairs = {}
    for a in attacks:
        k = protocol.train_subset.get(a)
        pairs[a] = (adversarial(args.out, "train", a, model, x[:k], y[:k], args, cfg), x[:k])
    x_adv = np.concatenate([p[0] for p in pairs.values()])
    x_clean = np.concatenate([p[1] for p in pairs.values()])
    print(f"[advlab] training pairs per attack: { {a: len(c) for a, (_, c) in pairs.items()} }")
    t0 = time.perf_counter()
    purifier = train_purifier(x_adv, x_clean, cfg, args.out, config=protocol.config, classifier=model,
                              resume=args.resume, verbose=2 if args.quiet else 1, **extra)
    session = time.perf_counter() - t0
    previous = json.loads((args.out / "timings.json").read_text()).get("train_sessions_s", [])
    _timings(args.out, train_session_s=session, train_sessions_s=previous + [session],
             train_time_total_s=purifier.info.get("train_time_s"), n_pairs=int(len(x_adv)))
    return _evaluate(args, run, model) if args.evaluate else None


def cmd_evaluate(args) -> dict:
    return _evaluate(args, common.start(args, "table1", folder=args.out))


def _evaluate(args, run, model=None) -> dict:
    from advlab import evaluation
    from advlab.experiments import paper_results
    from advlab.io import data
    from advlab.purifiers.residual_cgan import load_purifier

    cfg, protocol = run.cfg, run.plan
    attacks = common.attack_names(args.attacks)
    model = model or _classifier(args, cfg)
    purifier = load_purifier(args.out)
    x, y = data.load(args.dataset, "test", source=cfg.data_source, limit=cfg.n_test)
    by_attack = {}
    for a in attacks:
        k = len(x) if a != "cw" or protocol.cw_test is None else min(protocol.cw_test, len(x))
        x_adv = adversarial(args.out, "test", a, model, x[:k], y[:k], args, cfg)
        by_attack[a] = x_adv if k == len(x) else (x_adv, x[:k], y[:k])
    info_path = args.out / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    result = evaluation.evaluate_purifier(model, purifier, x, y, by_attack, train_info=info)
    result["dataset"], result["scale"] = args.dataset, cfg.scale
    paths = evaluation.save_evaluation(result, "evaluation", folder=args.out)
    common.print_rows(evaluation.rows(result))
    if args.dataset in paper_results.TABLE_I:
        print(f"\npaper vs this run ({paper_results.CITATION}):")
        common.print_rows(paper_results.compare_table_i(result, args.dataset))
    print(f"\n[advlab] saved {paths['json']} and {paths['csv']}")
    return result


def cmd_record(args) -> dict:
    from advlab import evaluation
    from advlab.experiments import paper_results
    from advlab.io import results
    from advlab.io.paths import figures_dir

    def load(name):
        path = args.run_folder / name
        return json.loads(path.read_text()) if path.is_file() else None

    ev = load("evaluation.json")
    if ev is None:
        raise SystemExit(f"error: {args.run_folder} has no evaluation.json; run `advlab evaluate --out "
                         f"{args.run_folder} ...` first")
    run_config = load(common.RUN_CONFIG)
    command = args.command or (run_config or {}).get("command")
    if not command:
        raise SystemExit(f"error: {args.run_folder} has no {common.RUN_CONFIG} naming its command; "
                         "pass --command \"advlab train ...\"")
    record = {"command": command, "note": args.note, "evaluation": ev, "timings": load("timings.json"),
              "train_info": load("train_info.json"), "run_config": run_config}
    folder = figures_dir() / "full"
    rows = evaluation.rows(ev)
    if ev.get("dataset") in paper_results.TABLE_I:
        rows = paper_results.compare_table_i(ev, ev["dataset"])
    paths = {"json": results.save_json(record, args.name, folder=folder),
             "csv": results.save_csv(rows, args.name, folder=folder)}
    for path in paths.values():
        print(path)
    return paths

"""``advlab experiment NAME``: regenerate one of the papers' tables or figures on real data.

Results (JSON/CSV/PNG) go to ``--out`` (default: figures/, or $ADVLAB_FIGURES_DIR) beside the
run's ``run_config.json``; adversarial sets, purifiers and per-cell progress are cached in
.cache/experiments (or $ADVLAB_CACHE_DIR): if a run is interrupted, run the same command again
and it resumes. The run is ``advlab.config.resolve(job="experiments")`` (the ``--budget`` numbers
are in advlab/budgets.py), with the flags given as overrides.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from advlab.cli import common

EXPERIMENTS = {
    "matrix": "Table III: attack-specific and versatile purifiers x test attacks (accuracy, G)",
    "transfer": "Table IV: purifiers defending other classifier architectures",
    "sweeps": "Fig. 5: accuracy over PGD / MI-FGSM iterations and eps",
    "ablation": "Table V / Fig. 6-7: how many residual blocks",
    "grids": "Fig. 4: before/after image grids, PSNR / MAE per attack",
}


def register(sub) -> None:
    p = common.add_command(sub, "experiment", "regenerate a table or figure of the papers (matrix, transfer, "
                                              "sweeps, ablation, grids, all)", [
        "advlab experiment matrix --dataset mnist --scale full --budget cpu   # Table III + versatile row",
        "advlab experiment sweeps --dataset mnist --scale full --purifier-run runs/mnist_full   # Fig. 5",
        "advlab experiment transfer --dataset mnist --scale full --budget fast --arch mnist_lenet   # the reverse",
        "advlab experiment all --dataset mnist --scale full --estimate       # time probes, no run"],
        description=__doc__.split("\n\n")[1])
    p.add_argument("experiment", choices=tuple(EXPERIMENTS) + ("all",),
                   help="; ".join(f"{k}: {v}" for k, v in EXPERIMENTS.items()) + "; all: each in turn")
    common.add_shared(p, "dataset", "scale", "budget", "out", "seed", "estimate", "data_dir", "quiet",
                      "n_train", "n_test", "epochs", "perceptual", "size", "purifier_run",
                      dataset={"choices": ("mnist", "fashion_mnist", "cifar10")},
                      out={"help": "folder for the results (default: figures/ or $ADVLAB_FIGURES_DIR)"},
                      purifier_run={"help": "sweeps / grids / transfer: defend with the generator of `advlab train "
                                            "--out DIR` instead of training the plan's versatile purifier"})
    p.add_argument("--arch", default=None, metavar="ARCH",
                   help="transfer: the classifier the purifier is trained against (default: the dataset's, "
                        "mnist_cnn for MNIST); another one, e.g. mnist_lenet, gives the reverse direction")
    p.add_argument("--test-attacks", default=None, help="grids: comma-separated attacks (default: the plan's seven)")
    p.add_argument("--blocks", default=None, metavar="B,B,...",
                   help="ablation: the residual-block counts (default: the plan's, 0-15)")
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="ablation: train each block count once per purifier seed and report mean and spread "
                        "(default: one run, the config's seed)")
    p.set_defaults(run=cmd_experiment)


def cmd_experiment(args) -> dict:
    if args.purifier_run and args.experiment not in ("sweeps", "grids", "transfer"):
        raise SystemExit("error: --purifier-run applies to the sweeps, grids and transfer experiments only")
    if args.arch is not None:
        if args.experiment != "transfer" or args.estimate:
            raise SystemExit("error: --arch applies to a transfer run only (the other tables are named "
                             "without it, and --estimate probes the default classifier)")
        if args.purifier_run:
            raise SystemExit("error: --arch with --purifier-run: a train run's purifier was trained against the "
                             "dataset's default classifier, so the table would name the wrong source")
        from advlab.classifiers.archs import ARCHS   # imports keras: the run needs it next anyway

        if args.arch not in ARCHS:
            raise SystemExit(f"error: --arch {args.arch!r} is not a classifier architecture; choose one of {ARCHS}")
    from advlab.io.paths import figures_dir

    with common.environment(ADVLAB_FIGURES_DIR=args.out.resolve() if args.out else None):
        run = common.start(args, "experiments", folder=None if args.estimate else figures_dir())
        todo = tuple(EXPERIMENTS) if args.experiment == "all" else (args.experiment,)
        if args.estimate:
            return _estimate(args.dataset, run, todo)
        return _run(args, run, todo)


def _run(args, run, todo) -> dict:
    from advlab.experiments import pipeline, tables
    from advlab.io.paths import figures_dir

    lab = pipeline.prepare(args.dataset, run.cfg, arch=args.arch, verbose=not args.quiet)
    progress = not args.quiet
    runners = {"matrix": partial(tables.run_matrix, progress=progress),
               "transfer": partial(tables.run_transfer, progress=progress),
               "sweeps": partial(tables.run_sweeps, progress=progress),
               "ablation": partial(tables.run_ablation, progress=progress),
               "grids": tables.run_grids}
    if args.purifier_run:
        from advlab.purifiers.residual_cgan import load_purifier

        run_name = purifier_run_name(args.purifier_run)
        purifier = load_purifier(args.purifier_run, name=f"M_{run_name}")
        print(f"[advlab] defending with {purifier.name} from {args.purifier_run}")
        runners.update({k: partial(runners[k], purifier=purifier) for k in ("sweeps", "grids")})
        runners["transfer"] = partial(runners["transfer"], purifier=purifier, tag=run_name)
    if args.test_attacks:
        runners["grids"] = partial(runners["grids"], attacks=tuple(common.attack_names(args.test_attacks)))
    outputs = {}
    for what in todo:
        t0 = time.perf_counter()
        outputs[what] = out = runners[what](lab, run.plan)
        print(f"\n== {what} done in {time.perf_counter() - t0:.0f} s; results in {figures_dir()}")
        if what == "matrix":
            print(out.to_frame("accuracy").to_string())
            print(out.to_frame("G").to_string())
    return outputs


def purifier_run_name(path) -> str:
    """The run folder's name, which names the purifier and the transfer table it makes (the
    folder's, also when ``path`` is its ``generator.keras``)."""
    path = Path(path).resolve()
    name = (path.parent if path.is_file() else path).name
    if not name:
        raise SystemExit(f"error: --purifier-run {path} has no folder name to name the results after")
    return name


def _estimate(dataset: str, run, todo) -> dict[str, list[dict]]:
    """Probe timings on a smoke-scale lab run with the run's attack settings, scaled to its sizes."""
    from advlab.config import get_config
    from advlab.experiments import estimate, pipeline
    from advlab.io import data

    cfg, plan, epochs = run.cfg, run.plan, run.purifier.epochs
    probe = pipeline.prepare(dataset, get_config("smoke", seed=cfg.seed), verbose=False)
    counts = {}
    for split, paper in (("train", 60000), ("test", 10000)):
        try:
            counts[split] = len(data.load(dataset, split, source=cfg.data_source, verbose=False)[1])
        except Exception as err:  # no full data here: use the paper's sizes
            counts[split] = paper
            print(f"({dataset} {split} not available: {err.__class__.__name__}; assuming {paper})")
    n_train = min(cfg.n_train or counts["train"], counts["train"])
    n_test = min(cfg.n_test or counts["test"], counts["test"])
    probe.cfg = cfg            # attack parameters / iterations of the target scale
    found = {}
    for what in todo:
        t0 = time.perf_counter()
        found[what] = rows = estimate.estimate(what, probe, plan, n_train, n_test, epochs)
        print(f"\n== {what}: estimated run time at scale {cfg.scale} ({n_train} train / {n_test} test images, "
              f"{epochs} purifier epochs), probes took {time.perf_counter() - t0:.0f} s")
        for r in rows:
            print(f"  {r['time']:>10}  {r['part']}")
    return found

#!/usr/bin/env python
"""Regenerate one of the papers' tables/figures on real data in one command.

    python scripts/run_experiment.py matrix   --dataset mnist --scale full   # Table III + versatile row
    python scripts/run_experiment.py transfer --dataset mnist --scale full   # Table IV
    python scripts/run_experiment.py sweeps   --dataset mnist --scale full   # Fig. 5
    python scripts/run_experiment.py ablation --dataset mnist --scale full   # Table V / Fig. 6-7
    python scripts/run_experiment.py grids    --dataset mnist --scale full   # Fig. 4 + before/after grids
    python scripts/run_experiment.py matrix --scale full --estimate           # time probes, no run
    python scripts/run_experiment.py all --dataset mnist --scale full --budget cpu  # sized for a 2-core CPU

Results (JSON/CSV/PNG) go to figures/ (or $ADVLAB_FIGURES_DIR); adversarial sets, purifiers and
per-cell progress are cached in .cache/experiments (or $ADVLAB_CACHE_DIR): if a run is
interrupted, run the same command again and it resumes. ``--data-dir`` points at the IDX files
of the full MNIST / Fashion-MNIST (sets $ADVLAB_DATA_DIR).
"""
from __future__ import annotations

import argparse
import os
from functools import partial
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXPERIMENTS = ("matrix", "transfer", "sweeps", "ablation", "grids")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=EXPERIMENTS + ("all",))
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist", "cifar10"))
    p.add_argument("--scale", default=None, help="smoke | full (default: $ADVLAB_SCALE, else smoke)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset files (sets ADVLAB_DATA_DIR)")
    p.add_argument("--n-train", type=int, default=None, help="override cfg.n_train (training pairs per attack)")
    p.add_argument("--n-test", type=int, default=None, help="override cfg.n_test")
    p.add_argument("--epochs", type=int, default=None, help="override cfg.purifier_epochs")
    p.add_argument("--perceptual", default=None, help="auto | vgg19 | classifier | none | <VGG19 weights file>")
    p.add_argument("--narrow", action="store_true",
                   help="narrow purifiers (16-64 filters instead of the paper's 64-512): ~10x cheaper on a CPU")
    p.add_argument("--budget", default=None, choices=("paper", "cpu"),
                   help="full scale only; cpu: full-strength attacks and protocols sized for a 2-core CPU "
                        "(advlab.experiments.pipeline.CPU_BUDGET: CPU-sized networks, 2,000 training pairs, "
                        "1,000 test images); explicit --n-train/--n-test/--epochs still win. "
                        "Default: $ADVLAB_BUDGET, else paper with a GPU, cpu without")
    p.add_argument("--purifier-run", default=None, metavar="DIR",
                   help="sweeps / grids: defend with the generator of `python -m advlab train --out DIR` "
                        "instead of training the plan's versatile purifier")
    p.add_argument("--test-attacks", default=None, help="grids: comma-separated attacks (default: the plan's seven)")
    p.add_argument("--estimate", action="store_true", help="time short probes and print the expected run time")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.data_dir:
        os.environ["ADVLAB_DATA_DIR"] = str(Path(args.data_dir).resolve())
    from advlab.config import get_config
    from advlab.experiments import pipeline, tables

    overrides = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test),
                                   ("purifier_epochs", args.epochs)) if v is not None}
    cfg, plan = pipeline.configure(args.scale, args.budget, **overrides)
    if args.perceptual:
        plan = plan.replace(perceptual=args.perceptual)
    if args.narrow:
        plan = plan.replace(purifier_kwargs=dict(pipeline.NARROW))
    grid_attacks = (tuple(a.strip().lower() for a in args.test_attacks.split(",") if a.strip())
                    if args.test_attacks else None)
    if args.purifier_run and args.experiment not in ("sweeps", "grids"):
        raise SystemExit("error: --purifier-run applies to the sweeps and grids experiments only")
    print(cfg)
    print(plan)
    todo = EXPERIMENTS if args.experiment == "all" else (args.experiment,)

    if args.estimate:
        from advlab.io import data
        from advlab.experiments import estimate

        probe = pipeline.prepare(args.dataset, get_config("smoke", seed=cfg.seed), verbose=False)
        counts = {}
        for split in ("train", "test"):
            try:
                counts[split] = len(data.load(args.dataset, split, source=cfg.data_source, verbose=False)[1])
            except Exception as err:  # no full data here: use the paper's sizes
                counts[split] = {"train": 60000, "test": 10000}[split]
                print(f"({args.dataset} {split} not available: {err.__class__.__name__}; assuming {counts[split]})")
        n_train = min(cfg.n_train or counts["train"], counts["train"])
        n_test = min(cfg.n_test or counts["test"], counts["test"])
        probe.cfg = cfg            # attack parameters / iterations of the target scale
        for what in todo:
            t0 = time.perf_counter()
            rows = estimate.estimate(what, probe, plan, n_train, n_test, cfg.purifier_epochs)
            print(f"\n== {what}: estimated run time at scale {cfg.scale} ({n_train} train / {n_test} test images, "
                  f"{cfg.purifier_epochs} purifier epochs), probes took {time.perf_counter() - t0:.0f} s")
            for r in rows:
                print(f"  {r['time']:>10}  {r['part']}")
        return 0

    lab = pipeline.prepare(args.dataset, cfg)
    runners = {"matrix": tables.run_matrix, "transfer": tables.run_transfer, "sweeps": tables.run_sweeps,
               "ablation": tables.run_ablation, "grids": tables.run_grids}
    if args.purifier_run:
        from advlab.purifiers.residual_cgan import load_purifier

        purifier = load_purifier(args.purifier_run, name="M_tableI")
        print(f"defending with {purifier.name} from {args.purifier_run}")
        runners.update({k: partial(runners[k], purifier=purifier) for k in ("sweeps", "grids")})
    if grid_attacks:
        runners["grids"] = partial(runners["grids"], attacks=grid_attacks)
    for what in todo:
        t0 = time.perf_counter()
        out = runners[what](lab, plan)
        print(f"\n== {what} done in {time.perf_counter() - t0:.0f} s; results in {os.environ.get('ADVLAB_FIGURES_DIR', 'figures/')}")
        if what == "matrix":
            print(out.to_frame("accuracy").to_string())
            print(out.to_frame("G").to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())

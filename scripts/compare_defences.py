#!/usr/bin/env python
"""The defence comparison (notebook 10's table) in one command.

    python scripts/compare_defences.py --dataset mnist --scale full          # the full MNIST table
    python scripts/compare_defences.py --dataset fashion_mnist --scale full
    python scripts/compare_defences.py --scale smoke --defences none,median,autoencoder

Writes figures/10_defences_<dataset>_<scale>.csv (rows = defences, columns = clean and
<mode>:<attack> accuracies in %, PSNR, ms/image, training seconds), ..._cells.csv (one row per
cell with the number of images it used), .json and .png. Adversarial sets, trained purifiers and
finished cells are cached under .cache/ (or $ADVLAB_CACHE_DIR): rerun the same command after an
interruption and it continues. Full scale = the 60k training images, the first --n-eval test
images (default 1,000), PGD/MI-FGSM with 40 iterations at eps 0.3.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    p.add_argument("--scale", default=None, help="smoke | full (default: $ADVLAB_SCALE, else smoke)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset files (sets ADVLAB_DATA_DIR)")
    p.add_argument("--n-eval", type=int, default=None, help="test images per cell (full default: 1000)")
    p.add_argument("--n-adaptive", type=int, default=None, help="images per e2e/BPDA cell")
    p.add_argument("--defences", default=None, help="comma-separated subset of advlab.comparison.DEFENCES")
    p.add_argument("--adaptive-attacks", default=None, help="e.g. pgd,mifgsm,autoattack")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.data_dir:
        os.environ["ADVLAB_DATA_DIR"] = str(Path(args.data_dir).resolve())
    from advlab import comparison
    from advlab.config import get_config
    from advlab.experiments.pipeline import prepare

    cfg = get_config(args.scale)
    overrides = {}
    if args.n_eval is not None:
        overrides["n_eval"] = args.n_eval
    if args.n_adaptive is not None:
        overrides["n_adaptive"] = args.n_adaptive
    if args.defences:
        names = tuple(d.strip() for d in args.defences.split(",") if d.strip())
        unknown = [d for d in names if d not in comparison.DEFENCES]
        if unknown:
            raise SystemExit(f"error: unknown defence(s) {unknown}; choose from {comparison.DEFENCES}")
        overrides["defences"] = names
    if args.adaptive_attacks:
        overrides["adaptive_attacks"] = tuple(a.strip() for a in args.adaptive_attacks.split(","))
    plan = comparison.plan_for(cfg, **overrides)
    t0 = time.perf_counter()
    lab = prepare(args.dataset, cfg, verbose=not args.quiet)
    result = comparison.run_comparison(lab, plan, progress=not args.quiet)
    paths = result.save()
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(result.to_frame().round(1))
    print(f"\n{result.meta['n_eval']} test images per cell (e2e/BPDA cells: see {paths['cells_csv'].name}); "
          f"{time.perf_counter() - t0:.0f} s")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

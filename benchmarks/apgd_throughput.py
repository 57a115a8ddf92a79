"""End-to-end APGD throughput (purifier + classifier), beside the limit measured in the same run.

The stage timed is the robustness evaluation's ``apgd-ce``: APGD with the cross-entropy loss
through the residual cGAN generator + the MNIST CNN, exact gradients. The limit is the time of
the same number of forward+backward passes of the same composition on the same batches (one
compiled gradient of the loss w.r.t. the input per APGD step, plus the one of the start): an APGD
step cannot be cheaper than one such pass. The generator's weights are random: the time of a
pass does not depend on them. Defaults are the Table I generator's "cpu" size (7 residual
blocks, 32 base filters, at most 128: 8.7 M parameters); ``--blocks 1 --filters 8`` gives a
quick run, ``--filters 64 --max-filters 512`` the paper's width.

    cd /work/main && .venv/bin/python benchmarks/apgd_throughput.py [--n 256 --iters 20]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _limits import best_of, fwd_bwd_limit  # noqa: E402  (benchmarks/ is on sys.path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256, help="images attacked")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--iters", type=int, default=20, help="APGD steps")
    p.add_argument("--blocks", type=int, default=7, help="residual blocks of the generator")
    p.add_argument("--filters", type=int, default=32, help="base filters of the generator")
    p.add_argument("--max-filters", type=int, default=128, help="widest layer of the generator")
    p.add_argument("--repeats", type=int, default=2, help="timings per measurement (best is kept)")
    args = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from advlab import classifiers
    from advlab.attacks import apgd
    from advlab.config import get_config
    from advlab.evaluation.adaptive import defended_model
    from advlab.io import data
    from advlab.purifiers.residual_cgan import as_purifier, build_generator

    cfg = get_config("smoke")
    classifier = classifiers.get_classifier("mnist", cfg, verbose=False)
    generator = build_generator((28, 28, 1), residual_blocks=args.blocks, base_filters=args.filters,
                                max_filters=args.max_filters)
    pipeline = defended_model(as_purifier(generator), classifier, "exact")
    x, y = data.load("mnist", "test", source="sample", verbose=False)
    reps = -(-args.n // len(x))
    x, y = np.concatenate([x] * reps)[:args.n], np.concatenate([y] * reps)[:args.n].astype(np.int64)
    bs, iters = args.batch_size, args.iters
    print(f"residual U-Net ({generator.count_params():,} parameters) + MNIST CNN "
          f"({classifier.count_params():,}), {len(x)} images, batch {bs}, APGD-CE {iters} steps, "
          f"1 restart, TF {tf.__version__}, {os.cpu_count()} CPUs visible")

    # restarts only revisit unbroken images; one restart times the stage's per-step cost
    run = lambda: apgd.apgd(pipeline, x, y, 0.3, loss="ce", n_iter=iters, restarts=1, batch_size=bs)  # noqa: E731
    run()  # trace once
    t_apgd = best_of(run, args.repeats)

    t_lim = fwd_bwd_limit(pipeline, x, y, bs, iters + 1, args.repeats)
    out = {"apgd_images_per_s": len(x) / t_apgd, "limit_images_per_s": len(x) / t_lim,
           "apgd_s": t_apgd, "limit_s": t_lim, "ratio": t_apgd / t_lim,
           "fwd_bwd_passes_per_s": len(x) * (iters + 1) / t_lim}
    print(f"APGD-CE-{iters} end to end (advlab):  {out['apgd_images_per_s']:8.1f} images/s  ({t_apgd:.2f} s)")
    print(f"limit: {iters + 1} fwd+bwd passes:        {out['limit_images_per_s']:8.1f} images/s  ({t_lim:.2f} s)")
    print(f"ratio APGD time / limit time:      {out['ratio']:8.2f}")
    print(f"fwd+bwd image-passes per second:   {out['fwd_bwd_passes_per_s']:8.1f}")
    return out


if __name__ == "__main__":
    main()

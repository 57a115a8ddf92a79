"""PGD-40 throughput on the MNIST CNN, beside the limit measured in the same run.

The limit is the time of 40 forward+backward passes of the same model on the same batches
(one compiled ``tf.function`` gradient of the loss w.r.t. the input, called 40 times): an L-inf
PGD step cannot be cheaper than one such pass. The ratio shows how much the attack loop
(projection, clipping, random start, Python/TF overhead) costs on top. For reference the script
also times the peers on the same model, data and batch: cleverhans' own eager
``projected_gradient_descent`` loop and ART's ``ProjectedGradientDescent`` (numpy loop around
``TensorFlowV2Classifier.loss_gradient``), each with its ratio to advlab's PGD.

    cd /work/main && .venv/bin/python benchmarks/attack_throughput.py [--n 1024 --batch-size 256]
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
    p.add_argument("--n", type=int, default=1024, help="images attacked")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3, help="timings per measurement (best is kept)")
    p.add_argument("--skip-eager", action="store_true", help="skip the cleverhans eager reference")
    p.add_argument("--skip-art", action="store_true", help="skip ART's ProjectedGradientDescent")
    args = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from advlab import attacks, classifiers
    from advlab.io import data
    from advlab.config import get_config

    cfg = get_config("smoke")
    model = classifiers.get_classifier("mnist", cfg, verbose=False)
    x, y = data.load("mnist", "test", source="sample", verbose=False)
    reps = -(-args.n // len(x))
    x, y = np.concatenate([x] * reps)[:args.n], np.concatenate([y] * reps)[:args.n]
    bs, iters = args.batch_size, args.iters
    params = dict(eps=0.3, eps_iter=0.01, nb_iter=iters)
    print(f"MNIST CNN ({model.count_params():,} parameters), {len(x)} images, batch {bs}, "
          f"{iters} iterations, TF {tf.__version__}, {os.cpu_count()} CPUs visible")

    run_pgd = lambda: attacks.attack("pgd", model, x, y, batch_size=bs, progress=False, **params)  # noqa: E731
    run_pgd()  # trace once
    t_pgd = best_of(run_pgd, args.repeats)

    t_lim = fwd_bwd_limit(model, x, y, bs, iters, args.repeats)
    out = {"pgd_images_per_s": len(x) / t_pgd, "limit_images_per_s": len(x) / t_lim,
           "pgd_s": t_pgd, "limit_s": t_lim, "ratio": t_pgd / t_lim}
    print(f"PGD-{iters} (advlab, compiled):      {out['pgd_images_per_s']:8.1f} images/s  ({t_pgd:.2f} s)")
    print(f"limit: {iters} fwd+bwd passes:        {out['limit_images_per_s']:8.1f} images/s  ({t_lim:.2f} s)")
    print(f"ratio PGD time / limit time:      {out['ratio']:8.2f}")

    if not args.skip_eager:
        from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

        fn = lambda t: model(t, training=False)  # noqa: E731

        def eager():
            for i in range(0, len(x), bs):
                xb, yb = tf.constant(x[i:i + bs]), tf.constant(y[i:i + bs])
                projected_gradient_descent(fn, xb, 0.3, 0.01, iters, np.inf, clip_min=0.0, clip_max=1.0,
                                           y=yb, rand_init=True, sanity_checks=False).numpy()
        eager()
        t_eager = best_of(eager, 1)
        out["cleverhans_eager_images_per_s"] = len(x) / t_eager
        print(f"cleverhans PGD, eager loop:       {len(x) / t_eager:8.1f} images/s  ({t_eager:.2f} s)"
              f"  time / advlab's: {t_eager / t_pgd:.2f}")

    if not args.skip_art:
        from advlab.attacks.art_attacks import _art_classifier  # imports ART with its warnings filtered
        from art.attacks.evasion import ProjectedGradientDescent

        art_pgd = ProjectedGradientDescent(_art_classifier(model), norm=np.inf, eps=0.3, eps_step=0.01,
                                           max_iter=iters, batch_size=bs, num_random_init=1, verbose=False)
        onehot = np.eye(int(model.output_shape[-1]), dtype=np.float32)[y]
        t_art = best_of(lambda: art_pgd.generate(x, y=onehot), 1)
        out["art_images_per_s"] = len(x) / t_art
        out["art_over_advlab"] = t_art / t_pgd
        print(f"ART ProjectedGradientDescent:     {len(x) / t_art:8.1f} images/s  ({t_art:.2f} s)"
              f"  time / advlab's: {t_art / t_pgd:.2f}")
    return out


if __name__ == "__main__":
    main()

"""How long would a full-scale residual cGAN run take on this machine? Times a few training
steps (after the traced first step) and the attacks that make the training set, then
extrapolates. Nothing is trained to completion.

    python benchmarks/train_step_time.py                                    # paper architecture
    python benchmarks/train_step_time.py --blocks 1 --filters 16 --n-train 10000 --epochs 5

Times are for the target classifier ``mnist_cnn`` (untrained weights: the cost of a forward /
backward pass does not depend on them) and the perceptual backbone given (default: the
classifier's features, the offline choice; ``vgg19-random`` costs what VGG19 would).
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--size", default="paper", choices=("paper", "cpu"),
                   help="network widths of this budget in advlab.budgets (default: %(default)s)")
    p.add_argument("--filters", type=int, default=None, help="base filters (default: the size's)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--perceptual", default="classifier")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--n-train", type=int, default=60000, help="clean images per attack")
    p.add_argument("--n-attacks", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--attacks", default="fgsm,pgd,cw", help="attacks to time ('' to skip)")
    p.add_argument("--attack-images", type=int, default=128)
    args = p.parse_args(argv)

    from advlab import attacks, classifiers
    from advlab.config import get_config
    from advlab.training.perceptual import make_perceptual
    from advlab.config import CGANConfig
    from advlab.purifiers.residual_cgan import make_trainer

    model = classifiers.build_classifier("mnist_cnn")
    rng = np.random.default_rng(0)
    y = rng.random((args.batch, 28, 28, 1), dtype=np.float32)
    x = np.clip(y + rng.normal(0, 0.1, y.shape), 0, 1).astype(np.float32)
    config = CGANConfig.for_scale(get_config("full"), args.size).replace(
        residual_blocks=args.blocks, batch_size=args.batch, perceptual=args.perceptual)
    if args.filters is not None:
        config = config.replace(base_filters=args.filters)
    fx = make_perceptual(args.perceptual, (28, 28, 1), classifier=model)
    trainer = make_trainer((28, 28, 1), config, perceptual=fx)
    t0 = time.perf_counter()
    trainer.train_on_batch(x, y)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_on_batch(x, y)
    per_step = (time.perf_counter() - t0) / args.steps
    pairs = args.n_train * args.n_attacks
    steps_per_epoch = -(-pairs // args.batch)
    out = {"config": config.to_dict(), "first_step_s": first, "s_per_step": per_step,
           "ms_per_pair": per_step / args.batch * 1000, "pairs": pairs, "steps_per_epoch": steps_per_epoch,
           "epoch_h": steps_per_epoch * per_step / 3600, "total_h": steps_per_epoch * per_step * args.epochs / 3600}
    print(f"train step (batch {args.batch}, {args.blocks} blocks, size {args.size}, {config.base_filters}->"
          f"{config.max_filters} filters, D {config.disc_residual_blocks} blocks, perceptual "
          f"{args.perceptual}): first {first:.1f} s (tracing), then {per_step:.2f} s/step "
          f"= {out['ms_per_pair']:.1f} ms per pair")
    print(f"{pairs} pairs x {args.epochs} epochs: {out['epoch_h']:.2f} h per epoch, {out['total_h']:.1f} h total")

    cfg = get_config("full")
    xa = rng.random((args.attack_images, 28, 28, 1), dtype=np.float32)
    ya = rng.integers(0, 10, args.attack_images)
    for name in [a for a in args.attacks.split(",") if a]:
        params = attacks.default_params(name, "mnist", cfg=cfg)
        attacks.attack(name, model, xa[:8], ya[:8], progress=False, **params)        # warm-up / tracing
        t0 = time.perf_counter()
        attacks.attack(name, model, xa, ya, progress=False, **params)
        ms = (time.perf_counter() - t0) / len(xa) * 1000
        out[f"attack_{name}_ms_per_image"] = ms
        out[f"attack_{name}_h_for_n_train"] = ms * args.n_train / 3.6e6
        print(f"{name} {params}: {ms:.1f} ms/image -> {ms * args.n_train / 3.6e6:.2f} h for {args.n_train} images")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()

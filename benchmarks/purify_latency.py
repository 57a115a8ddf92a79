"""Purification latency of the residual cGAN generator beside its FLOP count and the machine's
measured matmul FLOP rate (all in one run, so the numbers can be compared).

    python benchmarks/purify_latency.py                      # 28x28x1, 7 residual blocks, 64 filters
    python benchmarks/purify_latency.py --side 32 --channels 3 --blocks 0

Latency is the median of ``--repeats`` timed passes after one warm-up pass, through
``KerasPurifier`` (a compiled ``tf.function``), at batch 1 and batch 256. FLOPs count
multiply-adds x 2 of the convolutions and transposed convolutions (batch norm, activations and
additions are ignored; they are < 1% here). The generator weights are random: latency does
not depend on them.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def generator_flops(model) -> int:
    """Forward FLOPs per image of the convolutions in ``model``."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * h * w * k * c_in * layer.filters
        elif isinstance(layer, layers.Conv2D):
            _, h, w, _ = layer.output.shape
            c_in = layer.input.shape[-1]
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * h * w * k * c_in * layer.filters
    return int(total)


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    f().numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f().numpy()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times))


def time_purifier(purifier, x, batch_size: int, repeats: int) -> float:
    from advlab.evaluation import ms_per_image

    return ms_per_image(purifier, x, batch_size=batch_size, warmup=1, repeats=repeats)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--size", default="paper", choices=("paper", "cpu"),
                   help="widths of this budget in advlab.budgets (default: %(default)s)")
    p.add_argument("--filters", type=int, default=None, help="base filters (default: the size's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", default="1,256")
    args = p.parse_args(argv)

    import tensorflow as tf

    from advlab.config import CGANConfig, get_config
    from advlab.purifiers.residual_cgan import as_purifier, build_generator

    widths = CGANConfig.for_scale(get_config("full"), args.size)
    base = widths.base_filters if args.filters is None else args.filters
    top = max(widths.max_filters, base)
    gen = build_generator((args.side, args.side, args.channels), residual_blocks=args.blocks,
                          base_filters=base, max_filters=top)
    purifier = as_purifier(gen)
    flops = generator_flops(gen)
    rate = matmul_flops_per_s()
    x = np.random.default_rng(0).random((256, args.side, args.side, args.channels), dtype=np.float32)
    result = {"input": [args.side, args.side, args.channels], "residual_blocks": args.blocks,
              "size": args.size, "base_filters": base, "max_filters": top, "params": int(gen.count_params()),
              "gflop_per_image": flops / 1e9, "matmul_gflop_per_s": rate / 1e9,
              "threads": {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
                          "cpus": os.cpu_count()}}
    print(f"generator {gen.name}: {gen.count_params() / 1e6:.1f} M parameters, "
          f"{flops / 1e9:.3f} GFLOP per image (convolutions)")
    print(f"matmul 2048x2048 float32: {rate / 1e9:.1f} GFLOP/s on this machine now")
    for bs in (int(b) for b in args.batches.split(",")):
        n = bs if bs > 1 else 32            # batch 1: time 32 single-image calls
        ms = time_purifier(purifier, x[:n], batch_size=bs, repeats=args.repeats)
        achieved = flops / (ms / 1000) / 1e9
        result[f"ms_per_image_batch{bs}"] = ms
        result[f"gflop_per_s_batch{bs}"] = achieved
        print(f"batch {bs:4d}: {ms:8.2f} ms/image  ->  {achieved:6.1f} GFLOP/s achieved "
              f"({achieved / (rate / 1e9):.0%} of the matmul rate)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

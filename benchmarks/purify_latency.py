"""Purification latency of the residual cGAN generator beside its FLOP count and the machine's
measured matmul FLOP rate (all in one run, so the numbers can be compared).

    python benchmarks/purify_latency.py                      # 28x28x1, 7 residual blocks, 64 filters
    python benchmarks/purify_latency.py --side 32 --channels 3 --blocks 0
    python benchmarks/purify_latency.py --presets            # every Table I preset, + the Pareto figure

Latency is the median of ``--repeats`` timed passes after one warm-up pass, through
``KerasPurifier`` (a compiled ``tf.function``), at batch 1 and batch 256. FLOPs count
multiply-adds x 2 of the convolutions and transposed convolutions (batch norm, activations and
additions are ignored; they are < 1% here). The generator weights are random: latency does
not depend on them.

``--presets`` times the generator of every Table I preset (``PRESETS``: a budget and flags,
as ``advlab train --budget B [--residual-blocks N]`` builds it) as trained, with batch norm folded into
its convolutions (:func:`advlab.purifiers.export.fold_batchnorm`), and folded under XLA
(``jit_compile``), beside the matmul rate
measured before and after, and writes ``purify_latency_presets.json`` and a figure of each
preset's gray-box defended accuracy (its committed ``figures/full/table1_mnist_<preset>.json``
record) against ms/image: the Pareto front of the presets.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


# preset -> (budget, purifier overrides): what `advlab train --dataset mnist --scale full --budget B`
# trains, with flags such as --residual-blocks 3 for the overrides
PRESETS = {"paper": ("paper", {}), "cpu": ("cpu", {}), "cpu_3blocks": ("cpu", {"residual_blocks": 3}),
           "fast": ("fast", {})}
RECORD = "table1_mnist_{}.json"        # a preset's committed Table I run in figures/full/
TARGET_MS = 0.2                        # ms/image at batch 256 a preset should reach


def preset_generator(preset: str, input_shape=(28, 28, 1)):
    """The (untrained) generator ``preset`` trains, and its resolved run config."""
    from advlab.config import resolve
    from advlab.purifiers.residual_cgan import build_generator

    budget, overrides = PRESETS[preset]
    run = resolve("full", budget, job="table1", dataset="mnist",
                  **{f"purifier__{k}" if k in ("residual_blocks", "batch_size") else k: v for k, v in overrides.items()})
    c = run.purifier
    return build_generator(input_shape, residual_blocks=c.residual_blocks, base_filters=c.base_filters,
                           max_filters=c.max_filters, name=f"G_{preset}"), run


def time_one(gen, x, batches, repeats: int, n_single: int, jit_compile: bool = False) -> dict:
    """ms/image and achieved GFLOP/s of ``gen`` at each batch size (batch 1: ``n_single`` calls)."""
    from advlab.purifiers.residual_cgan import as_purifier

    purifier, flops, out = as_purifier(gen, jit_compile=jit_compile), generator_flops(gen), {}
    for bs in batches:
        ms = time_purifier(purifier, x[:bs if bs > 1 else n_single], batch_size=bs, repeats=repeats)
        out[f"ms_per_image_batch{bs}"] = ms
        out[f"gflop_per_s_batch{bs}"] = flops / (ms / 1000) / 1e9
    return out


def defended(preset: str) -> dict | None:
    """Gray-box accuracies (%) of ``preset``'s committed Table I record, or None."""
    from advlab.io.paths import figures_dir

    path = figures_dir() / "full" / RECORD.format(preset)
    if not path.is_file():
        return None
    ev = json.loads(path.read_text())["evaluation"]
    acc = {a: 100 * r["purified_accuracy"] for a, r in ev["attacks"].items()}
    return {"record": path.name, "clean_through_purifier": 100 * ev["clean_through_purifier"], **acc,
            "mean_attacked": float(np.mean(list(acc.values()))),
            "psnr": {a: r["psnr_purified"] for a, r in ev["attacks"].items()}}


def pareto_figure(rows: dict, folder):
    """Mean gray-box defended accuracy against ms/image (batch 256, folded) per preset."""
    import matplotlib.pyplot as plt

    from advlab import viz

    pts = sorted((r["folded"]["ms_per_image_batch256"], r["defended"]["mean_attacked"], name)
                 for name, r in rows.items() if r.get("defended") and "ms_per_image_batch256" in r["folded"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    front, best = [], -1.0
    for ms, acc, name in pts:
        ax.plot(ms, acc, "o", color="C0")
        ax.annotate(name, (ms, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if acc > best:
            front.append((ms, acc))
            best = acc
    if front:
        ax.step(*zip(*front), where="post", color="C1", alpha=0.6, label="Pareto front")
    ax.axvline(TARGET_MS, ls="--", color="gray", lw=0.8, label=f"{TARGET_MS} ms/image (issue 16's target)")
    ax.legend(fontsize=8)
    if pts:           # at least a 2-point span: differences of tenths are within the records' noise
        accs = [a for _, a, _ in pts]
        mid, half = (max(accs) + min(accs)) / 2, max(1.0, (max(accs) - min(accs)) / 2 + 0.3)
        ax.set_ylim(mid - half, mid + half)
    ax.set_xlabel("ms per image (batch 256, BN folded, this CPU)")
    ax.set_ylabel("mean defended accuracy, FGSM/PGD/C&W (%)")
    ax.set_title("Table I presets, MNIST, gray-box", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return viz.savefig(fig, "purify_latency_presets", folder=folder)


def main_presets(args) -> dict:
    """Every preset, trained and folded, in one run (see the module docstring)."""
    from advlab.io.paths import figures_dir
    from advlab.io.results import save_json
    from advlab.purifiers.export import fold_batchnorm

    started = time.time()
    names = [n.strip() for n in args.presets.split(",") if n.strip()] if args.presets != "all" else list(PRESETS)
    unknown = sorted(set(names) - set(PRESETS))
    if unknown or not names:
        raise SystemExit(f"error: unknown preset(s) {unknown}; choose from {list(PRESETS)}")
    batches = [int(b) for b in args.batches.split(",")]
    x = np.random.default_rng(0).random((max(batches), 28, 28, 1), dtype=np.float32)
    rate_before = matmul_flops_per_s() / 1e9
    print(f"matmul 2048x2048 float32: {rate_before:.1f} GFLOP/s on this machine now")
    rows = {}
    for name in names:
        gen, run = preset_generator(name)
        flops = generator_flops(gen)
        folded = fold_batchnorm(gen)
        xb = x[:8]
        gap = float(np.max(np.abs(np.asarray(gen(xb, training=False)) - np.asarray(folded(xb, training=False)))))
        row = {"budget": PRESETS[name][0], "overrides": PRESETS[name][1], "residual_blocks": run.purifier.residual_blocks,
               "base_filters": run.purifier.base_filters, "max_filters": run.purifier.max_filters,
               "params": int(gen.count_params()), "gflop_per_image": flops / 1e9, "fold_max_abs_diff": gap,
               "trained": time_one(gen, x, batches, args.repeats, args.single),
               "folded": time_one(folded, x, batches, args.repeats, args.single),
               "folded_xla": time_one(folded, x, batches, args.repeats, args.single, jit_compile=True),
               "defended": defended(name)}
        rows[name] = row
        print(f"{name:>12}: {flops / 1e9:.3f} GFLOP/image, {row['params'] / 1e6:.2f} M parameters; "
              + "; ".join(f"batch {bs}: {row['trained'][f'ms_per_image_batch{bs}']:.3f} ms/image, folded "
                          f"{row['folded'][f'ms_per_image_batch{bs}']:.3f}, folded + XLA "
                          f"{row['folded_xla'][f'ms_per_image_batch{bs}']:.3f}" for bs in batches)
              + (f"; gray-box mean {row['defended']['mean_attacked']:.2f} %" if row["defended"] else
                 "; no committed Table I record"))
    rate_after = matmul_flops_per_s() / 1e9
    for row in rows.values():
        for kind in ("trained", "folded", "folded_xla"):
            for bs in batches:
                row[kind][f"of_matmul_rate_batch{bs}"] = row[kind][f"gflop_per_s_batch{bs}"] / rate_before
    result = {"matmul_gflop_per_s": {"before": rate_before, "after": rate_after}, "batches": batches,
              "repeats": args.repeats, "batch1_calls": args.single, "cpus": os.cpu_count(),
              "presets": rows}
    folder = Path(args.out) if args.out else figures_dir() / "full"
    path = save_json(result, "purify_latency_presets", folder, started=started)
    print(f"matmul after: {rate_after:.1f} GFLOP/s; wrote {path}")
    if 256 in batches and any(r["defended"] for r in rows.values()):
        print(f"figure: {pareto_figure(rows, folder)}")
    return result


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
    p.add_argument("--presets", nargs="?", const="all", default=None, metavar="NAMES",
                   help=f"time the Table I presets instead (comma-separated, of {list(PRESETS)}; default all)")
    p.add_argument("--single", type=int, default=64, help="--presets: batch-1 calls timed per pass")
    p.add_argument("--out", default=None, help="--presets: output folder (default: <figures>/full)")
    args = p.parse_args(argv)
    if args.presets is not None:
        return main_presets(args)

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

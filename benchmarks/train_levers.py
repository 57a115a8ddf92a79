"""What makes Table I's purifier training faster on this machine? Each lever of issue 16 timed
alone against the ``cpu`` budget's Table I purifier, in one run, beside the machine's float32 and
bfloat16 matmul rates measured in the same run.

    python benchmarks/train_levers.py                    # every lever, ~6 min on 2 cores
    python benchmarks/train_levers.py --steps 3 --levers baseline,blocks1 --out /tmp/levers.json
    python benchmarks/train_levers.py --quick --steps 1 --out /tmp/levers.json    # a dry run, ~1 min
    python benchmarks/train_levers.py --levers baseline,paper --steps 5 --out figures/full/train_levers_paper.json
    python benchmarks/train_levers.py --levers baseline --steps 5 --no-onednn --out /tmp/no_onednn.json

A lever is one change of the budget's ``CGANConfig`` (fewer residual blocks, a narrower
network, no residual blocks in the discriminator, bf16 mixed precision) or of how it is compiled
(XLA ``jit_compile``); ``paper`` goes the other way, to the papers' widths. Each is built and
trained through ``make_trainer`` as ``advlab train`` builds it, on random pairs (the cost of a step does not depend on the data): the first step's
seconds (graph tracing, and XLA compilation) and the median ms of ``--steps`` more. The speed-up
is the baseline's ms per training pair over the lever's, and ``est_train_min`` what the Table I
recipe's steps (``--pairs`` x the budget's epochs, at the lever's batch) would take at that rate. Accuracy is not measured here:
figures/full/table1_*.json records the runs that check a recipe keeps Table I.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_check import time_training  # noqa: E402  (benchmarks/)
from purify_latency import generator_flops  # noqa: E402

# lever name -> (CGANConfig changes, jit_compile)
LEVERS = {
    "baseline": ({}, False),
    "blocks3": ({"residual_blocks": 3}, False),
    "blocks1": ({"residual_blocks": 1}, False),
    "disc_blocks0": ({"disc_residual_blocks": 0}, False),
    "narrow": ({"base_filters": 16, "max_filters": 64, "disc_filters": 16}, False),
    # the `fast` budget: 3 blocks at the narrow width (D with as many blocks as G)
    "fast": ({"residual_blocks": 3, "base_filters": 16, "max_filters": 64, "disc_filters": 16,
              "disc_residual_blocks": None}, False),
    "batch128": ({"batch_size": 128}, False),            # fewer, larger steps: less per-step overhead
    "bf16": ({"mixed_precision": "mixed_bfloat16"}, False),
    "xla": ({}, True),
    # the other way: the `paper` budget's widths (CGANConfig's defaults, 64 -> 512 filters, D with as
    # many blocks as G), what a CPU would pay per pair for the papers' networks
    "paper": ({"base_filters": 64, "max_filters": 512, "disc_filters": 64, "disc_residual_blocks": None}, False),
}


def matmul_rate(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` (best of ``repeats``, after one traced call)."""
    import tensorflow as tf

    from _limits import best_of

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    f = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    f().numpy()
    return 2 * n ** 3 / best_of(lambda: f().numpy(), repeats)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levers", default=",".join(LEVERS), help=f"comma-separated, of {list(LEVERS)}")
    p.add_argument("--steps", type=int, default=15, help="timed steps per lever (after the first)")
    p.add_argument("--pairs", type=int, default=81000, help="training pairs of the recipe (Table I cpu: 81k)")
    p.add_argument("--perceptual", default="classifier")
    p.add_argument("--quick", action="store_true", help="the smoke budget's small networks, batch 4: a dry run")
    p.add_argument("--out", default=None, help="JSON file (default: <figures>/full/train_levers_cpu.json)")
    p.add_argument("--no-onednn", action="store_true",
                   help="TF_ENABLE_ONEDNN_OPTS=0 for this run (the only way to silence TF's oneDNN notice; "
                        "advlab leaves oneDNN on, this measures what turning it off costs)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.levers.split(",") if n.strip()]
    unknown = sorted(set(names) - set(LEVERS))
    if unknown or not names:
        p.error(f"unknown lever(s) {unknown}; choose from {list(LEVERS)}")
    if args.steps < 1 or args.pairs < 1:
        p.error("--steps and --pairs must be >= 1")
    started = time.time()
    if args.no_onednn:          # read once, when TensorFlow is first imported (just below)
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"

    import keras

    from advlab import classifiers
    from advlab.config import resolve
    from advlab.io.paths import figures_dir
    from advlab.io.results import save_json

    run = (resolve(scale="smoke", job="table1", dataset="mnist") if args.quick
           else resolve(scale="full", budget="cpu", job="table1", dataset="mnist"))
    base = run.purifier.replace(batch_size=4) if args.quick else run.purifier
    classifier = classifiers.build_classifier("mnist_cnn")   # untrained: the cost does not depend on weights
    rates = {dtype: matmul_rate(dtype, 256 if args.quick else 2048) / 1e9 for dtype in ("float32", "bfloat16")}
    print(f"matmul 2048x2048: float32 {rates['float32']:.0f} GFLOP/s, bfloat16 {rates['bfloat16']:.0f} GFLOP/s "
          f"on this machine now")
    rows = {}
    previous = keras.mixed_precision.global_policy()
    try:
        for name in names:
            changes, jit = LEVERS[name]
            config = base.replace(**changes)
            r, gen = time_training(config, args.steps, args.perceptual, classifier, jit_compile=jit)
            steps = -(-args.pairs // config.batch_size) * config.epochs
            r.update(changes=changes, jit_compile=jit, generator_gflop_per_image=generator_flops(gen) / 1e9,
                     generator_params=int(gen.count_params()), recipe_steps=steps,
                     ms_per_pair_step=r["ms_per_step"] / config.batch_size,
                     est_train_min=steps * r["ms_per_step"] / 60000)
            rows[name] = r
            print(f"{name:>13}: first step {r['first_step_s']:5.1f} s, then {r['ms_per_step']:6.1f} ms/step "
                  f"(batch {config.batch_size}); G {r['generator_gflop_per_image']:.3f} GFLOP/image; "
                  f"recipe ~{r['est_train_min']:.1f} min; losses finite: {r['losses_finite']}")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if "baseline" in rows:          # per training pair, so a larger batch compares fairly
        for r in rows.values():
            r["speedup"] = rows["baseline"]["ms_per_pair_step"] / r["ms_per_pair_step"]
        print("speed-up over the baseline: " + ", ".join(f"{k} {r['speedup']:.2f}x" for k, r in rows.items()))
    result = {"quick": args.quick, "matmul_gflop_per_s": rates, "bf16_matmul_speedup": rates["bfloat16"] / rates["float32"],
              "batch": base.batch_size, "steps": args.steps, "pairs": args.pairs, "epochs": base.epochs,
              "perceptual": args.perceptual, "cpus": os.cpu_count(), "onednn": onednn, "levers": rows}
    out = Path(args.out) if args.out else figures_dir() / "full" / "train_levers_cpu.json"
    path = save_json(result, out.stem, out.parent, config=run, started=started)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()

"""ms/image of every classical defence, and the batched TVM beside ART's per-image TotalVarMin loop.

    python benchmarks/classical_latency.py                     # 256 real MNIST images (the embedded sample)
    python benchmarks/classical_latency.py --n 64 --repeats 1 --out /tmp/classical.json

An adaptive evaluation calls a non-differentiable defence once per attack step (BPDA), times the
EOT samples when it is random, so its cost is the evaluation's. Each figure is the median of
``--repeats`` timed calls on the same ``--n`` images after one warm-up call (which traces the XLA
program of the batched TVM). For TVM both solvers see the same pixel masks (the same NumPy seed)
and the mean objective each reaches is reported beside its time, so the speed-up is not bought
with a worse minimisation. The matmul rate measured in the same run says how busy the CPU was.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def _median_ms(fn, x, repeats: int, seed: int = 0) -> tuple[float, np.ndarray]:
    np.random.seed(seed)
    out = fn(x)                                               # warm-up (and XLA tracing)
    times = []
    for _ in range(repeats):
        np.random.seed(seed)
        t0 = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)) / len(x), out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256, help="images per call (one batch)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per defence (median kept)")
    p.add_argument("--out", default=None, help="JSON file for the results (default: none written)")
    args = p.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        p.error("--n and --repeats must be >= 1")

    from art.defences.preprocessor import TotalVarMin as ArtTVM
    from purify_latency import matmul_flops_per_s

    from advlab.io import data
    from advlab.io.results import save_json
    from advlab.purifiers import classical
    from advlab.purifiers.tvm import tv_objective

    started = time.time()
    x, _ = data.load("mnist", "test", source="sample", verbose=False)
    x = np.concatenate([x] * -(-args.n // len(x)))[:args.n]
    gflops = matmul_flops_per_s() / 1e9
    print(f"{len(x)} MNIST images per call, median of {args.repeats}; float32 matmul {gflops:.0f} GFLOP/s now")
    rows = {}
    for name in classical.CLASSICAL:
        purifier = classical.build_classical(name, **classical.mnist_defaults()[name])
        ms, out = _median_ms(purifier, x, args.repeats)
        rows[name] = {"ms_per_image": ms}
        if name == "tvm":
            d = classical.mnist_defaults()["tvm"]
            art = ArtTVM(prob=d["prob"], lamb=d["lamb"], max_iter=d["max_iter"], clip_values=(0.0, 1.0))
            ms_art, out_art = _median_ms(lambda a: art(a)[0], x, args.repeats)
            np.random.seed(0)
            masks = purifier.draw_masks(x)                    # the masks both calls above drew
            obj = lambda z: float(np.mean(tv_objective(z[..., 0], x[..., 0], masks[..., 0], d["lamb"])))  # noqa: E731
            rows[name].update(art_ms_per_image=ms_art, speedup_over_art=ms_art / ms,
                              objective={"input": obj(x), "art": obj(out_art), "batched": obj(out)},
                              mean_abs_difference_to_art=float(np.abs(out - out_art).mean()))
        print(f"  {name:<9} {ms:8.3f} ms/image" + (
            f"   (ART's loop {rows[name]['art_ms_per_image']:.3f} ms/image: {rows[name]['speedup_over_art']:.1f}x; "
            f"objective {rows[name]['objective']['art']:.3f} ART vs {rows[name]['objective']['batched']:.3f} batched)"
            if name == "tvm" else ""))
    result = {"n": len(x), "repeats": args.repeats, "matmul_gflop_per_s": gflops, "defences": rows}
    if args.out:
        out = Path(args.out)
        save_json(result, out.stem, out.parent, config=vars(args), started=started)
    return result


if __name__ == "__main__":
    main()

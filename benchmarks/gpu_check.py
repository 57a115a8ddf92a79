"""The GPU path, checked once: the device, the GPU-relevant tests, paper-width residual cGAN
training steps in float32 and under mixed precision, and purification latency, in one JSON.

    python benchmarks/gpu_check.py                                   # on a GPU machine
    python benchmarks/gpu_check.py --quick --no-tests --out /tmp/gc.json   # a CPU dry run, < 1 min

Training: ``--steps`` steps of the Table I purifier at the ``paper`` budget's widths
(``advlab.config.resolve(scale="full", budget="paper", job="table1")``; ``--quick``: the smoke
budget's), on random image pairs, through ``make_trainer`` as ``advlab train`` builds it, once in
float32 and once with ``CGANConfig.mixed_precision`` (``mixed_float16`` on a GPU,
``mixed_bfloat16`` on a CPU). The median ms/step excludes the first (traced) step; every step's
losses must be finite and the generator's output, the patch logits and the losses float32.
Purification: ms/image at batch 1 and 256 of each trained generator (benchmarks/purify_latency.py's
timing), beside its FLOPs and the matmul rate. Without a GPU the script still runs, and says
loudly in stdout and in the JSON that its numbers are CPU numbers. Exit status 1 if a check failed.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from purify_latency import generator_flops, matmul_flops_per_s, time_purifier  # noqa: E402  (benchmarks/)

NO_GPU = "no GPU: CPU numbers, not a GPU check"
TESTS = ("tests/test_residual_cgan.py", "tests/test_training.py", "tests/test_attacks.py")


def device_report() -> dict:
    """TensorFlow's devices, the GPUs' names and compute capability, and the versions."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:    # the pytest subprocess and this process share the GPU: allocate on demand
        tf.config.experimental.set_memory_growth(gpu, True)
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    return {"gpu": bool(gpus), "tensorflow": tf.__version__, "keras": keras.__version__,
            "physical_devices": [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()],
            "gpus": [{"name": d.get("device_name", g.name), "compute_capability": d.get("compute_capability")}
                     for g, d in zip(gpus, details)],
            "built_with_cuda": tf.test.is_built_with_cuda()}


def run_tests(tests, timeout_s: float) -> dict:
    """``pytest -x -q tests`` at smoke scale in a subprocess: return code, counts, seconds."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-x", "-q", *tests]
    env = {**os.environ, "ADVLAB_SCALE": "smoke", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        partial = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else err.stdout or ""
        code, out = None, f"{partial}\ntimed out after {timeout_s:.0f} s"
    return {"command": " ".join(cmd[1:]), "returncode": code, "seconds": time.perf_counter() - t0,
            **pytest_counts(out), "ok": code == 0, "tail": None if code == 0 else out[-3000:]}


def pytest_counts(output: str) -> dict:
    """Passed / failed / errors / skipped from pytest's summary line (``3 passed, 1 error in 2s``)."""
    found = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", output)}
    return {"passed": found.get("passed", 0), "failed": found.get("failed", 0),
            "errors": found.get("errors", 0) + found.get("error", 0), "skipped": found.get("skipped", 0)}


def time_training(config, steps: int, perceptual: str, classifier, jit_compile: bool = False) -> tuple[dict, object]:
    """``steps`` + 1 training steps of ``config``'s trainer; returns (result, generator)."""
    import keras

    from advlab.io.seeding import set_seed
    from advlab.purifiers.residual_cgan import make_trainer
    from advlab.training.perceptual import make_perceptual

    set_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    y = rng.random((config.batch_size, 28, 28, 1), dtype=np.float32)
    x = np.clip(y + rng.normal(0, 0.1, y.shape), 0, 1).astype(np.float32)
    fx = make_perceptual(perceptual, (28, 28, 1), classifier=classifier, verbose=False)
    trainer = make_trainer((28, 28, 1), config, perceptual=fx, jit_compile=jit_compile)
    gen, disc = trainer.generator, trainer.discriminator
    g, d_loss = trainer.compute_losses(x[:2], y[:2], training=False)
    dtypes = {"generator_output": gen.output.dtype, "discriminator_output": disc.output.dtype,
              "g_loss": g["total"].dtype.name, "d_loss": d_loss.dtype.name,
              "compute": sorted({layer.dtype_policy.compute_dtype for layer in gen.layers})}
    t0 = time.perf_counter()
    losses = [trainer.train_on_batch(x, y, return_dict=True)]
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(trainer.train_on_batch(x, y, return_dict=True))
        times.append(time.perf_counter() - t0)
    finite = all(np.isfinite(float(v)) for step in losses for v in step.values())
    not_float32 = [k for k in ("generator_output", "discriminator_output", "g_loss", "d_loss")
                   if str(dtypes[k]) != "float32"]
    return {"policy": config.mixed_precision or "float32", "first_step_s": first,
            "ms_per_step": float(np.median(times) * 1000), "ms_per_pair": float(np.median(times) * 1000 / len(x)),
            "losses_finite": finite, "final_losses": {k: float(v) for k, v in losses[-1].items()},
            "dtypes": {k: v if isinstance(v, list) else str(v) for k, v in dtypes.items()},
            "not_float32": not_float32, "global_policy_after": keras.mixed_precision.global_policy().name}, gen


def latency(gen, batches, repeats: int, n_single: int) -> dict:
    """ms/image of ``gen`` as a purifier at each batch size (batch 1: ``n_single`` calls)."""
    from advlab.purifiers.residual_cgan import as_purifier

    purifier = as_purifier(gen)
    x = np.random.default_rng(0).random((max(batches), 28, 28, 1), dtype=np.float32)
    return {f"ms_per_image_batch{bs}": time_purifier(purifier, x[:bs if bs > 1 else n_single], batch_size=bs,
                                                      repeats=repeats) for bs in batches}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="timed training steps per precision")
    p.add_argument("--batch", type=int, default=None, help="training batch (default: the budget's)")
    p.add_argument("--perceptual", default="classifier", help="perceptual backbone (default: the offline one)")
    p.add_argument("--quick", action="store_true", help="the smoke budget's widths, tiny batches: a dry run")
    p.add_argument("--no-tests", action="store_true", help="skip the pytest run")
    p.add_argument("--tests", nargs="+", default=list(TESTS), help="test files run through pytest")
    p.add_argument("--test-timeout", type=float, default=1800.0, help="seconds before pytest is stopped")
    p.add_argument("--out", default=None, help="JSON file (default: <figures>/full/gpu_check.json)")
    args = p.parse_args(argv)
    if args.steps < 1 or (args.batch is not None and args.batch < 1):
        p.error("--steps and --batch must be >= 1")
    started = time.time()

    import keras

    from advlab import classifiers
    from advlab.config import resolve
    from advlab.io.paths import figures_dir
    from advlab.io.results import save_json

    device = device_report()
    warning = None if device["gpu"] else NO_GPU
    print(f"device: {device['physical_devices']} {[g['name'] for g in device['gpus']]}; "
          f"TensorFlow {device['tensorflow']}, Keras {device['keras']}")
    if warning:
        print(f"\n*** {warning.upper()} ***\n")
    result = {"gpu": device["gpu"], "warning": warning, "quick": args.quick, "device": device}

    result["tests"] = {"ran": False} if args.no_tests else {"ran": True, **run_tests(args.tests, args.test_timeout)}
    if result["tests"]["ran"]:
        t = result["tests"]
        print(f"tests: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, {t['skipped']} skipped "
              f"in {t['seconds']:.0f} s ({'ok' if t['ok'] else 'FAILED'})")

    run = (resolve(scale="smoke", job="table1") if args.quick
           else resolve(scale="full", budget="paper", job="table1"))
    batch = args.batch or (4 if args.quick else run.purifier.batch_size)
    mixed = "mixed_float16" if device["gpu"] else "mixed_bfloat16"
    classifier = classifiers.build_classifier("mnist_cnn")   # untrained: the cost does not depend on weights
    batches = (1, 16) if args.quick else (1, 256)
    repeats, n_single = (1, 4) if args.quick else (3, 32)
    base = run.purifier.replace(batch_size=batch)
    training, purification, flops = {}, {}, None
    previous = keras.mixed_precision.global_policy()
    try:
        for policy in (None, mixed):
            r, gen = time_training(base.replace(mixed_precision=policy), args.steps, args.perceptual, classifier)
            training[r["policy"]] = r
            flops = flops or generator_flops(gen)
            ms = purification[r["policy"]] = latency(gen, batches, repeats, n_single)
            print(f"train {r['policy']:>14}: first step {r['first_step_s']:.1f} s, then {r['ms_per_step']:.1f} "
                  f"ms/step (batch {batch}), losses finite: {r['losses_finite']}, dtypes {r['dtypes']}; purify "
                  + ", ".join(f"{v:.3f} {k.replace('_per_image_', '/image ')}" for k, v in ms.items()))
            if r["not_float32"]:
                print(f"!!! under {r['policy']} these are not float32: {r['not_float32']}")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    speedup = training["float32"]["ms_per_step"] / training[mixed]["ms_per_step"]
    print(f"{mixed} vs float32: {speedup:.2f}x the speed")
    result["training"] = {"budget": "smoke" if args.quick else "paper", "config": base.to_dict(),
                          "perceptual": args.perceptual, "batch": batch, "steps": args.steps,
                          "mixed_policy": mixed, "mixed_speedup": speedup, **training}
    result["purification"] = {"gflop_per_image": flops / 1e9,
                              "matmul_gflop_per_s": matmul_flops_per_s(512 if args.quick else 2048) / 1e9,
                              **purification}
    failed = ([] if args.no_tests or result["tests"]["ok"] else ["tests"]) + [
        f"{k}: {'losses not finite' if not r['losses_finite'] else 'not float32: ' + ', '.join(r['not_float32'])}"
        for k, r in training.items() if not r["losses_finite"] or r["not_float32"]]
    result["failed_checks"] = failed
    out = Path(args.out) if args.out else figures_dir() / "full" / "gpu_check.json"
    path = save_json(result, out.name, out.parent, config=run, started=started)
    print(f"{'FAILED: ' + '; '.join(failed) if failed else 'all checks passed'}"
          f"{' (' + warning + ')' if warning else ''}; wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

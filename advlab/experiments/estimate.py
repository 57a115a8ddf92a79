"""How long will a full-scale table take on this machine? Time small probes, extrapolate.

Probes (each a few seconds to a minute): every attack on a few test images with the plan's
parameters; one purifier epoch on a few hundred pairs at the full architecture (after a
warm-up epoch, so graph tracing is not counted); purifier inference. The estimate multiplies
per-image costs by the image counts of the protocol and says which part dominates. It is an
order-of-magnitude guide (CPU load from other jobs changes it), not a promise.
"""
from __future__ import annotations

import time

import numpy as np

from advlab.experiments.pipeline import Lab, Plan


def seconds_per_image_attack(lab: Lab, attack: str, n: int = 32, **params) -> float:
    x, y = lab.x_test[:n], lab.y_test[:n]
    from advlab import attacks

    merged = lab.attack_params(attack, **params)
    attacks.attack(attack, lab.classifier, x[:2], y[:2], progress=False, **merged)   # warm-up / trace
    t0 = time.perf_counter()
    attacks.attack(attack, lab.classifier, x, y, progress=False, batch_size=lab.cfg.batch_size, **merged)
    return (time.perf_counter() - t0) / len(x)


def purifier_costs(lab: Lab, plan: Plan, blocks: int, n_pairs: int = 64) -> dict:
    """Seconds per training pair per epoch and per purified image, at ``blocks`` residual blocks."""
    from advlab.experiments.pipeline import resolve_perceptual
    from advlab.training.perceptual import make_perceptual
    from advlab.purifiers.residual_cgan import CGANConfig, as_purifier, make_trainer

    x = lab.x_train[:n_pairs]
    x_adv = np.clip(x + np.random.default_rng(0).uniform(-0.3, 0.3, x.shape).astype(np.float32), 0, 1)
    config = CGANConfig.for_scale(lab.cfg).replace(residual_blocks=blocks, **plan.purifier_kwargs)   # as trained
    config = config.replace(batch_size=min(config.batch_size, max(len(x) // 2, 1)))   # probe: 2 batches
    spec = resolve_perceptual(plan.perceptual, verbose=False)
    perceptual = make_perceptual(spec, x.shape[1:], classifier=lab.classifier, verbose=False)
    trainer = make_trainer(x.shape[1:], config, perceptual=perceptual)
    trainer.fit(x_adv[:config.batch_size], x[:config.batch_size], batch_size=config.batch_size, epochs=1, verbose=0)
    t0 = time.perf_counter()
    trainer.fit(x_adv, x, batch_size=config.batch_size, epochs=1, verbose=0)
    train = (time.perf_counter() - t0) / len(x)
    purifier = as_purifier(trainer.generator)
    purifier(x_adv[:8])
    t0 = time.perf_counter()
    purifier(x_adv)
    out = {"train_s_per_pair_epoch": train, "purify_s_per_image": (time.perf_counter() - t0) / len(x)}
    print(f"  probe: purifier with {blocks} blocks: {1000 * train:.1f} ms per pair per epoch, "
          f"{1000 * out['purify_s_per_image']:.2f} ms per purified image", flush=True)
    return out


def _fmt(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def estimate(what: str, lab: Lab, plan: Plan, n_train: int, n_test: int, epochs: int,
             probe_images: int = 32) -> list[dict]:
    """Rows ``{part, seconds, time}`` for ``what`` in matrix | transfer | sweeps | ablation | grids.

    Probes print as they go; tracing the paper-width generator alone takes ~2 min on 2 CPU cores.
    Sweeps assume the purifier is already trained (by the matrix run).
    """
    rows = []
    attack_cost = {}

    def cost(attack, **params):
        key = (attack, tuple(sorted(params.items())))
        if key not in attack_cost:
            attack_cost[key] = seconds_per_image_attack(lab, attack, probe_for(attack), **params)
            print(f"  probe: {attack} {params or ''} {attack_cost[key] * 1000:.1f} ms/image", flush=True)
        return attack_cost[key]

    slow = {"cw", "deepfool", "autoattack"}
    probe_for = lambda a: max(probe_images // 4, 4) if a in slow else probe_images  # noqa: E731
    if what in ("matrix", "transfer", "grids"):
        pur = purifier_costs(lab, plan, lab.cfg.residual_blocks)
        train_attacks = plan.train_attacks
        for a in train_attacks if what == "matrix" else ([] if what == "grids" else train_attacks):
            rows.append({"part": f"attack {a} on {n_train} training images", "seconds": cost(a) * n_train})
        if what == "matrix":
            for a in plan.test_attacks:
                rows.append({"part": f"attack {a} on {n_test} test images", "seconds": cost(a) * n_test})
        n_pur = len(train_attacks) + 1 if what == "matrix" else 1
        rows.append({"part": f"train {n_pur} purifier(s), {epochs} epochs x {n_train} pairs",
                     "seconds": n_pur * epochs * n_train * pur["train_s_per_pair_epoch"]})
        n_eval = (n_pur * (len(plan.test_attacks) + 1)) if what == "matrix" else len(plan.test_attacks)
        rows.append({"part": f"purify {n_eval} x {n_test} test images", "seconds": n_eval * n_test * pur["purify_s_per_image"]})
        if what == "transfer":
            for a in plan.transfer_attacks:
                rows.append({"part": f"attack {a} on {n_test} test images x {len(plan.transfer_archs)} classifiers",
                             "seconds": cost(a) * n_test * len(plan.transfer_archs)})
        if what == "grids":
            for a in plan.test_attacks:
                rows.append({"part": f"attack {a} on {n_test} test images", "seconds": cost(a) * n_test})
    elif what == "sweeps":
        n = n_test if plan.sweep_n is None else min(plan.sweep_n, n_test)
        for a in plan.sweep_attacks:
            per_iter = cost(a, nb_iter=10) / 10
            total_iters = len(plan.sweep_eps) * sum(plan.sweep_iterations) + len(plan.eps_grid) * lab.cfg.attack_iters
            rows.append({"part": f"{a}: {total_iters} image-iterations x {n} images", "seconds": per_iter * total_iters * n})
    elif what == "ablation":
        epochs = plan.ablation_epochs or epochs       # the ablation trains for its own epochs
        lo, hi = min(plan.ablation_blocks), max(plan.ablation_blocks)
        c_lo = purifier_costs(lab, plan, lo)["train_s_per_pair_epoch"]
        c_hi = purifier_costs(lab, plan, hi)["train_s_per_pair_epoch"]
        seeds = len(plan.ablation_seeds or (None,))
        for b in plan.ablation_blocks:
            c = c_lo + (c_hi - c_lo) * (b - lo) / max(hi - lo, 1)
            rows.append({"part": f"train {b}-block purifier{f' x {seeds} seeds' if seeds > 1 else ''}, "
                                 f"{epochs} epochs x {n_train} pairs", "seconds": c * epochs * n_train * seeds})
        for a in plan.ablation_attacks:
            rows.append({"part": f"attack {a} on {n_train} train + {n_test} test images",
                         "seconds": cost(a) * (n_train + n_test)})
    else:
        raise ValueError(f"unknown experiment {what!r}")
    total = sum(r["seconds"] for r in rows)
    rows.append({"part": "TOTAL", "seconds": total})
    for r in rows:
        r["time"] = _fmt(r["seconds"])
    return rows

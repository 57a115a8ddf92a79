"""``advlab compare``: the defence comparison (notebook 10's table) in one command.

Writes ``10_defences_<dataset>_<scale>.csv`` (rows = defences, columns = clean and
``<mode>:<attack>`` accuracies in %, PSNR, ms/image, training seconds), ``..._cells.csv`` (one
row per cell with the number of images it used), ``.json`` and ``run_config.json`` into ``--out``
(default: figures/). Adversarial sets, trained purifiers and finished cells are cached under
.cache/ (or $ADVLAB_CACHE_DIR): rerun the same command after an interruption and it continues.
Full scale = the 60k training images, the first ``--n-eval`` test images (default 1,000),
PGD/MI-FGSM with 40 iterations at eps 0.3. The run is ``advlab.config.resolve(job="comparison")``
(the ``--budget`` numbers are in advlab/budgets.py), with the flags given as overrides.
"""
from __future__ import annotations

import time

from advlab.cli import common

DATASETS = ("mnist", "fashion_mnist")      # classical.mnist_defaults() tunes the filters for these


def register(sub) -> None:
    p = common.add_command(sub, "compare", "compare every defence in every evaluation mode (notebook 10's table)", [
        "advlab compare --dataset mnist --scale full --budget cpu --purifier-run runs/mnist_full",
        "advlab compare --dataset fashion_mnist --scale full --estimate",
        "advlab compare --scale smoke --defences none,median,autoencoder"],
        description=__doc__.split("\n\n")[1])
    common.add_shared(p, "dataset", "scale", "budget", "out", "seed", "estimate", "data_dir", "quiet",
                      dataset={"choices": DATASETS},
                      out={"help": "folder for the results (default: figures/ or $ADVLAB_FIGURES_DIR)"})
    add_defence_flags(p)
    p.add_argument("--n-eval", type=int, default=None, help="test images per cell (full default: 1000)")
    p.add_argument("--n-adaptive", type=int, default=None, help="images per e2e/BPDA cell")
    p.add_argument("--defences", default=None, help="comma-separated subset of advlab.evaluation.comparison.DEFENCES")
    p.add_argument("--adaptive-attacks", default=None, help="e.g. pgd,mifgsm,autoattack")
    p.set_defaults(run=cmd_compare)


def add_defence_flags(p) -> None:
    """The flags that decide how the defences are built (shared with ``advlab robustness``)."""
    common.add_shared(p, "size", "purifier_run", "n_train",
                      purifier_run={"help": "use the residual cGAN of `advlab train --out DIR` instead of "
                                            "training one"},
                      n_train={"help": "training images for the learned defences (default: all; cpu budget: 10000)"})


def cmd_compare(args) -> dict:
    from advlab.io.paths import figures_dir

    with common.environment(ADVLAB_FIGURES_DIR=args.out.resolve() if args.out else None):
        run = common.start(args, "comparison", folder=None if args.estimate else figures_dir())
        if args.estimate:
            rows = estimate(args.dataset, run.cfg, run.plan)
            for r in sorted(rows, key=lambda r: -r["seconds"]):
                print(f"{r['seconds'] / 3600:8.2f} h  {r['part']}")
            print(f"total ≈ {sum(r['seconds'] for r in rows) / 3600:.1f} h on this machine (order of magnitude; "
                  "CPU load from other jobs changes it)")
            return {"estimate": rows}
        return _run(args, run)


def _run(args, run) -> dict:
    import pandas as pd

    from advlab.evaluation import comparison
    from advlab.experiments.pipeline import prepare

    t0 = time.perf_counter()
    lab = prepare(args.dataset, run.cfg, verbose=not args.quiet)
    result = comparison.run_comparison(lab, run.plan, progress=not args.quiet)
    paths = result.save()
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(result.to_frame().round(1))
    print(f"\n{result.meta['n_eval']} test images per cell (e2e/BPDA cells: see {paths['cells_csv'].name}); "
          f"{time.perf_counter() - t0:.0f} s")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return paths


def _timed(fn, repeat_fn=None):
    fn()                                   # warm-up: graph tracing is not counted
    t0 = time.perf_counter()
    (repeat_fn or fn)()
    return time.perf_counter() - t0


def estimate(dataset: str, cfg, plan, probe: int = 16) -> list[dict]:
    """Expected seconds of each part of a comparison run, from short probes on this machine.

    Per-image attack costs on the bare classifier (advlab.experiments.estimate); per-pair
    training costs of each learned purifier at its full architecture (one timed epoch after a
    warm-up); adaptive attacks timed as PGD through every defence for 4 iterations, scaled
    to the plan's iterations and, for MI-FGSM/AutoAttack, by their cost ratio to PGD on the
    bare classifier. Classifier training and the attacks cached by other runs are included,
    so a machine that already ran notebooks 06-09 needs less. Untrained networks are timed
    (run time does not depend on the weights).
    """
    import dataclasses

    import numpy as np

    from advlab.evaluation import adaptive
    from advlab import attacks, evaluation
    from advlab.io import data
    from advlab.experiments import estimate as est
    from advlab.experiments.pipeline import plan as exp_plan
    from advlab.purifiers import autoencoder, capgan, classical, KerasPurifier, Identity, residual_cgan

    from advlab.config import get_config
    from advlab.experiments.pipeline import prepare

    smoke = get_config("smoke")
    lab0 = prepare(dataset, smoke, verbose=False)       # a small trained classifier is enough to time
    lab = dataclasses.replace(lab0, cfg=cfg)
    n_train = len(data.load(dataset, "train", source=cfg.data_source, limit=cfg.n_train, verbose=False)[1])
    n_eval = plan.n_eval or 10000
    rows, cost = [], {}

    def attack_cost(a):
        if a not in cost:
            cost[a] = est.seconds_per_image_attack(lab, a, probe)
            print(f"  probe: {a} {1000 * cost[a]:.1f} ms/image", flush=True)
        return cost[a]

    # the composite sets: the residual cGAN's three attacks (unless --purifier-run brings a trained one),
    # the auto-encoder's and CAP-GAN's on the whole subset; the versatile composite runs each of
    # its attacks on its own slice of the first versatile_pairs images (cached whole-split sets reused)
    n_vers = min(plan.versatile_pairs or n_train, n_train)
    images = {}
    for a in (() if plan.cgan_run else plan.cgan_attacks) + plan.learned_attacks + plan.capgan_attacks:
        images[a] = n_train
    for a in plan.versatile_attacks:
        images.setdefault(a, n_vers // len(plan.versatile_attacks))
    for a, n in images.items():
        rows.append({"part": f"attack {a} on {n} training images (cached, shared)", "seconds": attack_cost(a) * n})
    for a in dict.fromkeys(plan.gray_attacks + (plan.channel_attack,)):
        rows.append({"part": f"attack {a} on {n_eval} test images", "seconds": attack_cost(a) * n_eval})
    kw = exp_plan(cfg, purifier_kwargs=plan.purifier_kwargs)       # the residual cGAN / pix2pix it trains
    epochs = plan.purifier_epochs or cfg.purifier_epochs
    trained = {"versatile_pix2pix": (0, n_vers, plan.versatile_epochs or epochs)}
    if not plan.cgan_run:
        trained["residual_cgan"] = (cfg.residual_blocks, n_train, epochs)
    for name, (blocks, pairs, n_epochs) in trained.items():
        c = est.purifier_costs(lab, kw, blocks)
        rows.append({"part": f"train {name} ({blocks} blocks, {n_epochs} epochs, {pairs} pairs)",
                     "seconds": c["train_s_per_pair_epoch"] * pairs * n_epochs})
    x, xa = lab.x_train[:512], np.clip(lab.x_train[:512] + 0.2, 0, 1)
    ae = autoencoder.build_autoencoder(x.shape[1:])
    ae.compile("adam", "mse")
    secs = _timed(lambda: ae.fit(xa[:128], x[:128], epochs=1, verbose=0), lambda: ae.fit(xa, x, epochs=1, verbose=0))
    rows.append({"part": f"train autoencoder ({plan.ae_epochs} epochs, {n_train} pairs)",
                 "seconds": secs / len(x) * n_train * plan.ae_epochs})
    n_cap = min(plan.capgan_pairs or n_train, n_train)
    tr = capgan.CAPGANTrainer(*(capgan.build_generator(x.shape[1:], plan.capgan_filters, name=n) for n in ("a", "b")),
                              *(capgan.build_discriminator(x.shape[1:], plan.capgan_filters, name=n) for n in ("c", "d")),
                              lab.classifier)
    tr.compile(capgan.make_optimizer(10), capgan.make_optimizer(10))
    secs = _timed(lambda: tr.fit(xa[:128], x[:128], batch_size=128, epochs=1, verbose=0),
                  lambda: tr.fit(xa[:256], x[:256], batch_size=128, epochs=1, verbose=0))
    rows.append({"part": f"train cap_gan ({plan.capgan_epochs} epochs, {n_cap} pairs)",
                 "seconds": secs / 256 * n_cap * plan.capgan_epochs})
    print(f"  probe: cap_gan {1000 * secs / 256:.1f} ms per pair per epoch", flush=True)
    # adaptive attacks: PGD through each defence, 4 iterations, then scaled
    shape = x.shape[1:]
    sizes = {k: v for k, v in kw.purifier_kwargs.items() if k in ("base_filters", "max_filters")}
    stand_ins = {"none": Identity(),
                 "residual_cgan": KerasPurifier(residual_cgan.build_generator(shape, cfg.residual_blocks, **sizes)),
                 "versatile_pix2pix": KerasPurifier(residual_cgan.build_generator(shape, 0, **sizes)),
                 "autoencoder": autoencoder.AutoencoderPurifier(ae),
                 "cap_gan": capgan.CAPGANPurifier(capgan.build_generator(shape, plan.capgan_filters))}
    stand_ins["autoencoder_noisy"] = autoencoder.with_inference_noise(stand_ins["autoencoder"])
    pgd = lab.attack_params("pgd")
    ratio = {a: attack_cost(a) / attack_cost("pgd") for a in plan.adaptive_attacks}
    for name in plan.defences:
        p = stand_ins.get(name) or classical.build_classical(name, **classical.mnist_defaults()[name])
        eot = plan.eot_samples if p.stochastic else 1
        xs, ys = lab.x_test[:32], lab.y_test[:32]
        for mode in ("e2e", "bpda"):
            g = adaptive.mode_for(p, mode)
            if g is None:
                continue
            model = adaptive.defended_model(p, lab.classifier, g, eot)     # traced once, timed on reuse
            per_iter = _timed(lambda: attacks.attack("pgd", model, xs, ys, progress=False, batch_size=32,
                                                     **{**pgd, "nb_iter": 4})) / len(xs) / 4
            ms = evaluation.ms_per_image(p, lab.x_test[:64], repeats=1)      # the runner's rule
            n_adv = plan.n_adaptive if ms * eot <= plan.slow_ms else plan.n_adaptive_slow
            for a in plan.adaptive_attacks:
                rows.append({"part": f"{mode} {a} through {name} on {min(n_adv or n_eval, n_eval)} images",
                             "seconds": per_iter * pgd["nb_iter"] * ratio[a] * min(n_adv or n_eval, n_eval)})
        print(f"  probe: PGD step through {name}: {1000 * per_iter:.2f} ms/image", flush=True)
    return rows

"""The defence comparison: every purifier on the same attacked images, under every threat model.

Rows are defences, columns are ``<mode>:<attack>`` accuracies (fractions; :meth:`Comparison.to_frame`
shows them in %) plus PSNR, ms/image and
training time. Modes (named in every column):

* ``gray-box``   - x_adv crafted on the classifier alone, then purified (the papers' setting);
* ``e2e``        - end-to-end white-box: the attack differentiates through purifier + classifier
  (learned purifiers only; empty for non-differentiable ones);
* ``bpda``       - the same attack with the purifier's backward pass replaced by the identity
  (all defences; "BPDA-I" for learned ones);
* random purifiers (TV minimisation, the noisy auto-encoder) are attacked with EOT in ``e2e`` and
  ``bpda`` (``eot_samples`` draws, see :mod:`advlab.evaluation.adaptive`);
* ``save-png`` / ``save-jpeg`` / ``print-scan`` - the gray-box x_adv of ``channel_attack`` goes
  through the image channel of :mod:`advlab.evaluation.transforms` before purification.

``run_comparison(lab, plan)`` returns a :class:`Comparison` (wide table + long per-cell rows with
the number of images of each cell) and saves ``10_defences_<dataset>_<scale>.{csv,json,png}``.
Per-cell results are checkpointed, so an interrupted full run resumes where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from advlab.config import CHANNELS, CLASSICAL, DEFENCES, LEARNED, ComparisonPlan, resolve  # noqa: F401  (public API)


def plan_for(cfg, **overrides) -> ComparisonPlan:
    """The paper-budget :class:`ComparisonPlan` at ``cfg.scale`` with some fields changed (a run
    passes its own: ``advlab.config.resolve(scale, budget, job="comparison").plan``)."""
    return resolve(cfg.scale, "paper", job="comparison").plan.replace(**overrides)


# ---------------------------------------------------------------- building the defences


def build_defence(name: str, lab, plan: ComparisonPlan):
    """Return ``(purifier, train_seconds)`` for defence ``name`` (learned ones trained once, cached)."""
    from advlab.io.paths import cache_dir
    from advlab.purifiers import Identity, classical

    if name == "none":
        return Identity(), 0.0
    if name in CLASSICAL:
        return classical.build_classical(name, **classical.mnist_defaults()[name]), 0.0
    if name == "residual_cgan" and plan.cgan_run:    # a trained generator: needs no data or classifier
        return _from_run(plan.cgan_run, name)
    if name in ("residual_cgan", "versatile_pix2pix"):
        from advlab.experiments.pipeline import resolve_perceptual

        kw = {"perceptual": "auto", **plan.purifier_kwargs}
        kw["perceptual"] = resolve_perceptual(kw["perceptual"], lab.verbose)
        if name == "residual_cgan":
            p, stats = lab.purifier(plan.cgan_attacks, epochs=plan.purifier_epochs, return_stats=True, **kw)
        else:   # the versatile defence: 0 residual blocks (pix2pix), multi-step schedule, composite
            p, stats = lab.purifier(plan.versatile_attacks, residual_blocks=0, return_stats=True,
                                    epochs=plan.versatile_epochs or plan.purifier_epochs,
                                    n_pairs=plan.versatile_pairs, schedule="multistep", **kw)
        p.name = name
        secs = stats.get("seconds_per_epoch")
        return p, (secs * stats["epochs"] if secs is not None else float("nan"))
    if name not in LEARNED:
        raise ValueError(f"Unknown defence {name!r}; choose from {DEFENCES}.")
    params = lambda attacks: {a: lab.attack_params(a) for a in attacks}  # noqa: E731
    key = lab.content_key(attacks=plan.learned_attacks, attack_params=params(plan.learned_attacks),
                          epochs=plan.ae_epochs)
    cap_key = lab.content_key(attacks=plan.capgan_attacks, attack_params=params(plan.capgan_attacks),
                              epochs=plan.capgan_epochs, pairs=plan.capgan_pairs, filters=plan.capgan_filters)
    if name.startswith("autoencoder"):
        from advlab.purifiers import autoencoder as ae

        folder = cache_dir("experiments", "defences", f"ae_{lab.dataset}_ep{plan.ae_epochs}_{key}")
        p = ae.load_autoencoder(folder)
        if p is None:
            x_adv, x_clean = lab.training_pairs(plan.learned_attacks)
            p = ae.train_autoencoder(x_adv, x_clean, epochs=plan.ae_epochs, batch_size=lab.cfg.batch_size,
                                     seed=lab.cfg.seed, verbose=2 if lab.verbose else 0, out_dir=folder)
        if name == "autoencoder_noisy":
            p = ae.with_inference_noise(p)
        p.name = name
        return p, p.train_seconds
    from advlab.purifiers import capgan

    folder = cache_dir("experiments", "defences", f"capgan_{lab.dataset}_ep{plan.capgan_epochs}_{cap_key}")
    x_adv, x_clean = ((None, None) if capgan.load_capgan(folder)
                      else lab.training_pairs(plan.capgan_attacks, limit=plan.capgan_pairs))
    if x_adv is None:
        p = capgan.load_capgan(folder)
    else:
        p = capgan.train_capgan(x_adv, x_clean, lab.classifier, epochs=plan.capgan_epochs,
                                batch_size=128, base_filters=plan.capgan_filters, seed=lab.cfg.seed,
                                out_dir=folder, verbose=2 if lab.verbose else 0,
                                run_eagerly=plan.capgan_eager)
    return p, p.train_seconds


def _from_run(folder, name: str):
    """The generator of a ``python -m advlab train --out FOLDER`` run and its training seconds."""
    from pathlib import Path

    from advlab.purifiers.residual_cgan import load_purifier

    purifier = load_purifier(folder, name=name)
    info = Path(folder) / "train_info.json"
    secs = json.loads(info.read_text()).get("train_time_s") if info.is_file() else None
    purifier.source = str(folder)
    return purifier, (float("nan") if secs is None else float(secs))


# ---------------------------------------------------------------- the run


@dataclass
class Comparison:
    """Wide table (one row per defence) and long cells (defence, mode, attack, n, accuracy)."""

    dataset: str
    scale: str
    rows: list
    cells: list
    meta: dict

    def to_frame(self, percent: bool = True):
        """The wide table for display: accuracy columns in % (``percent=False``: fractions, as saved)."""
        import pandas as pd

        frame = pd.DataFrame(self.rows).set_index("defence")
        if percent:
            acc = [c for c in frame.columns if ":" in c]
            frame[acc] = frame[acc].astype(float) * 100
        return frame

    def save(self, name: str | None = None) -> dict:
        from advlab.io import results

        name = name or f"10_defences_{self.dataset}_{self.scale}"
        return {"csv": results.save_csv(self.rows, name),
                "cells_csv": results.save_csv(self.cells, name + "_cells"),
                "json": results.save_json({"meta": self.meta, "rows": self.rows, "cells": self.cells}, name)}


def _accuracy(model, purifier, x, y, batch_size):
    from advlab.classifiers import predict_labels

    return float(np.mean(predict_labels(model, purifier(x, batch_size=batch_size), batch_size) == y))


def _state(lab, plan: ComparisonPlan, x, y):
    """The resume file of a comparison: keyed by the content of the test images, classifier,
    config and the evaluation settings (not the defences: each defence's cells are keyed by its
    own content, :func:`defence_key`, so adding one keeps the others)."""
    from advlab.experiments.pipeline import checkpoint_path
    from advlab.io.cache import array_digest

    evaluation = {k: getattr(plan, k) for k in ("n_adaptive", "n_adaptive_slow", "slow_ms", "eot_samples",
                                                "print_scan_strength", "channel_attack")}
    attacks = plan.gray_attacks + plan.adaptive_attacks + (plan.channel_attack,)
    key = lab.content_key(("test",), images=array_digest(x, y), evaluation=evaluation,
                          attack_params={a: lab.attack_params(a) for a in attacks})
    path = checkpoint_path(f"10_defences_{lab.dataset}_{lab.arch}_{lab.cfg.scale}_{key}")
    return path, (json.loads(path.read_text()) if path.is_file() else {})


def defence_key(name: str, purifier) -> str:
    """A defence's cells in the resume file: its name and its content (weights, or settings for a
    classical one), so two ``--cgan-run`` folders never share resumed cells."""
    from advlab.io.cache import purifier_digest

    return f"{name}:{purifier_digest(purifier)}"


def run_comparison(lab, plan: ComparisonPlan | None = None, progress: bool = True, save: bool = True) -> Comparison:
    """Fill the defence table for ``lab`` (see the module docstring); resumable per cell."""
    from tqdm.auto import tqdm

    from advlab.evaluation import adaptive, transforms
    from advlab import evaluation
    from advlab.io.cache import save_json_atomic

    plan = plan or plan_for(lab.cfg)
    n = len(lab.x_test) if plan.n_eval is None else min(plan.n_eval, len(lab.x_test))
    x, y, f, bs = lab.x_test[:n], lab.y_test[:n], lab.classifier, lab.cfg.batch_size
    gray = {a: lab.adversarial(a)[:n] for a in dict.fromkeys(plan.gray_attacks + (plan.channel_attack,))}
    channelled = {c: transforms.apply(c, gray[plan.channel_attack], seed=lab.cfg.seed,
                                      strength=plan.print_scan_strength) for c in plan.channels}
    state_path, state = _state(lab, plan, x, y)
    cells, rows = [], []
    bar = tqdm(plan.defences, desc="defences", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        purifier, train_s = build_defence(name, lab, plan)
        resume_key = defence_key(name, purifier)
        done = state.get(resume_key, {})
        row = {"defence": name}

        def cell(mode, attack, n_used, compute, note=""):
            key = f"{mode}:{attack}"
            if key not in done:
                t0 = time.perf_counter()
                done[key] = {"acc": compute(), "n": n_used, "note": note, "seconds": time.perf_counter() - t0}
                state[resume_key] = done
                save_json_atomic(state_path, state, indent=1)
            row[key] = done[key]["acc"]
            cells.append({"defence": name, "mode": mode, "attack": attack, **done[key]})

        cell("clean", "none", n, lambda: _accuracy(f, purifier, x, y, bs))
        for a in plan.gray_attacks:
            cell("gray-box", a, n, lambda a=a: _accuracy(f, purifier, gray[a], y, bs))
        ms = evaluation.ms_per_image(purifier, x[:min(n, 256)], batch_size=bs, repeats=1)
        eot = plan.eot_samples if purifier.stochastic else 1
        n_adv = plan.n_adaptive if ms * eot <= plan.slow_ms else plan.n_adaptive_slow
        n_adv = n if n_adv is None else min(n_adv, n)
        for mode in ("e2e", "bpda"):
            gradient = adaptive.mode_for(purifier, mode)
            for a in plan.adaptive_attacks:
                if gradient is None:
                    row[f"{mode}:{a}"] = float("nan")
                    cells.append({"defence": name, "mode": mode, "attack": a, "acc": None, "n": 0,
                                  "note": "n/a: purifier not differentiable (see bpda)", "seconds": 0.0})
                    continue
                note = f"gradient={gradient}" + (f", EOT-{eot}" if eot > 1 else "")

                def run(a=a, gradient=gradient):
                    x_adv = adaptive.adaptive_attack(a, purifier, f, x[:n_adv], y[:n_adv], gradient=gradient,
                                                     eot_samples=eot, batch_size=bs, progress=False,
                                                     seed=lab.cfg.seed, **lab.attack_params(a))
                    return _accuracy(f, purifier, x_adv, y[:n_adv], bs)
                cell(mode, a, n_adv, run, note)
        for c in plan.channels:
            cell(c, plan.channel_attack, n, lambda c=c: _accuracy(f, purifier, channelled[c], y, bs))
        x_pur = purifier(gray[plan.channel_attack], batch_size=bs)
        row["psnr_db"] = float(np.mean(evaluation.psnr(x_pur, x)))
        row["ms_per_image"] = ms
        row["train_s"] = float(train_s) if train_s is not None else float("nan")
        row["stochastic"] = bool(purifier.stochastic)
        row["eot_samples"] = int(eot)          # e2e/bpda columns of random purifiers are EOT attacks
        rows.append(row)
    meta = {"dataset": lab.dataset, "scale": lab.cfg.scale, "classifier": lab.arch, "n_eval": n,
            "plan": {k: v for k, v in plan.__dict__.items()}, "preset": lab.preset,
            "psnr": f"purified gray-box {plan.channel_attack} vs clean",
            "accuracy": "fraction of test images classified correctly after purification"}
    result = Comparison(lab.dataset, lab.cfg.scale, rows, cells, meta)
    if save:
        result.save()
        from advlab import viz

        fig = plot_comparison(result)
        viz.savefig(fig, f"10_defences_{lab.dataset}_{lab.cfg.scale}")
    return result


def plot_comparison(result: Comparison):
    """The table as an annotated heatmap: rows = defences, columns = clean and mode:attack."""
    from advlab import viz

    frame = result.to_frame()
    cols = [c for c in frame.columns if ":" in c or c == "clean:none"]
    values = frame[cols].astype(float).to_numpy()
    labels = [c.replace("clean:none", "clean") for c in cols]
    fig = viz.heatmap(values, list(frame.index), labels, fmt="{:.0f}",
                      title=f"Accuracy (%) - {result.dataset}, {result.scale}, n={result.meta['n_eval']}",
                      cmap="RdYlGn")
    fig.set_size_inches(0.75 * len(labels) + 3, 0.45 * len(frame) + 2)
    return fig

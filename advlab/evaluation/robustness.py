"""One adaptive robustness evaluation for any defence: per-example worst case over an attack suite.

>>> report = evaluate_robustness(purifier, classifier, x, y, eps=0.3)            # doctest: +SKIP
>>> report.worst_case["accuracy"], report.flags["gradient_masking"]["raised"]    # doctest: +SKIP
>>> report.save("robustness_mnist", folder=run_dir)                             # doctest: +SKIP

A defence is ``x -> f(P(x))``: a purifier ``P`` (an :class:`advlab.purifiers.Purifier`, a
Keras image-to-image model, or ``None`` for the classifier alone) in front of ``classifier``.
Every number is L-inf at ``eps`` and names its threat model. The stages (``"standard"`` suite;
``"quick"`` has the same stages with fewer steps and restarts, for smoke runs and CI):

* ``clean``: accuracy of the deployed defence on ``x``.
* ``apgd-ce``, ``apgd-dlr``: APGD (Croce & Hein 2020) with restarts, white-box through
  purifier + classifier: exact gradients where the purifier is differentiable, BPDA (identity
  backward pass) where it is not, EOT over ``eot_samples`` >= 20 purifications where it is
  random. DLR needs >= 3 classes; with two the C&W margin is used.
* ``pgd-cw``: PGD with >= 100 steps, restarts and the C&W margin loss, same gradients;
  ``pgd-cw-short`` the same with a fifth of the steps and one restart (a sanity check).
* ``bpda-pgd``: PGD with the BPDA gradient, for differentiable purifiers (for the others
  every white-box stage already is BPDA).
* ``quantized-pgd``: for bit-depth reduction (a purifier with ``quantization_levels``), the
  attack designed for it: PGD over the quantized images the attacker can reach
  (:mod:`advlab.attacks.quantized`), with ``pgd_iters`` steps and ``pgd_restarts`` restarts.
* ``transfer``: x_adv crafted by APGD-CE on the bare classifier, then defended (the gray-box
  number the purification papers report).
* ``square``: Square (score-based, gradient-free; ART's) on the whole pipeline, on the first
  ``square_n`` images.

Worst case: an image counts as robust only if the defence classifies it correctly clean and
under every stage that ran on it. Sanity checks from Carlini et al. 2019, reported as flags,
never hidden: ``gradient_masking`` (a BPDA, transfer or black-box stage beats the exact
white-box ones), ``more_steps_raise_accuracy`` (the short PGD is stronger than the long one),
``accuracy_not_vanishing`` (APGD at eps 0.5 / 1.0 leaves accuracy above ``vanish_tolerance``).
Accuracy of a random defence is measured on one draw per image (the deployed system).

Resumable: with ``out`` each finished stage is written to a checkpoint keyed by content digests
of the defence and classifier weights, x, y, eps, seed and the suite; rerunning skips it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advlab.experiments.runstate import Checkpoint
from advlab.io.cache import array_digest, cache_key, purifier_digest, weights_digest
from advlab.config import Frozen
from advlab.evaluation.robust_stages import run_stage
from advlab.evaluation.robust_report import (RobustnessReport, StageResult, pack_bits, sanity_flags,  # noqa: F401
                                             unpack_bits, wilson_interval)

@dataclass(frozen=True)
class SuiteConfig(Frozen):
    """The budget of every stage: one object is the evaluation (nanoGPT style)."""

    name: str = "standard"
    apgd_iters: int = 100
    apgd_restarts: int = 3
    pgd_iters: int = 100
    pgd_restarts: int = 3
    pgd_short_iters: int = 20
    bpda_iters: int = 100
    transfer_iters: int = 100
    eot_samples: int = 20
    square_queries: int = 5000
    square_n: int = 100
    sanity_eps: tuple = (0.5, 1.0)
    sanity_iters: int = 20
    masking_tolerance: float = 0.01
    vanish_tolerance: float = 0.05
    batch_size: int = 256

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SUITES = {
    "standard": SuiteConfig(),
    "quick": SuiteConfig(name="quick", apgd_iters=20, apgd_restarts=2, pgd_iters=20, pgd_restarts=2,
                         pgd_short_iters=5, bpda_iters=20, transfer_iters=20, square_queries=200,
                         square_n=16, sanity_iters=10),
}


# --------------------------------------------------------------------------- the evaluation

def _as_purifier(defence):
    from advlab.purifiers import Identity, KerasPurifier

    if defence is None:
        return Identity()
    if hasattr(defence, "purify_tensor"):
        return defence
    if hasattr(defence, "trainable_variables") and callable(defence):
        return KerasPurifier(defence)
    raise TypeError(f"defence must be a purifier (advlab.purifiers.Purifier), a Keras image-to-image "
                    f"model or None (the classifier alone); got {type(defence).__name__}.")


def _check(classifier, x, y, eps, suite, n):
    from advlab.attacks.validation import check_inputs

    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(f"Unknown suite {suite!r}; use one of {tuple(SUITES)} or a SuiteConfig.")
        suite = SUITES[suite]
    elif not isinstance(suite, SuiteConfig):
        raise TypeError(f"suite must be a name {tuple(SUITES)} or a SuiteConfig, got {type(suite).__name__}.")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(eps)):
        raise TypeError(f"eps must be a finite number, got {eps!r}.")
    if not 0 <= eps <= 1:
        raise ValueError(f"eps must lie in [0, 1] (images in [0, 1]), got {eps}.")
    if y is None:
        raise ValueError("y (the true labels) is required: robustness is measured against them.")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n must be a positive integer (images to evaluate) or None, got {n!r}.")
    if suite.eot_samples < 20:
        raise ValueError(f"eot_samples must be >= 20 (got {suite.eot_samples}); fewer leaves EOT noisy.")
    x, y = check_inputs(classifier, x, y)
    if n is not None:
        x, y = x[:n], y[:n]
    if len(x) == 0:
        raise ValueError("x holds no images.")
    return x, y, suite


def evaluate_robustness(defence, classifier, x, y, eps: float, suite="standard", *, n: int | None = None,
                        seed: int = 0, out=None, resume: bool = True, name: str | None = None,
                        sanity: bool = True, cascade: bool = False, verbose: bool = True) -> RobustnessReport:
    """Per-example worst-case accuracy of ``defence`` + ``classifier`` over the suite's attacks.

    Args:
        defence: a purifier, a Keras image-to-image model, or ``None`` (the classifier alone).
        classifier: Keras model on [0, 1] images returning logits.
        x, y: images (N, H, W, C) in [0, 1] and integer labels; ``n`` keeps the first ``n``.
        eps: the L-inf budget; suite: ``"standard"``, ``"quick"`` or a :class:`SuiteConfig`.
        seed: seeds every random start (same seed, same numbers).
        out: folder for the per-stage checkpoint (``None``: nothing is written); ``resume``
            reuses finished stages of the same run found there.
        sanity: run the eps 0.5 / 1.0 check; name: the defence's label (default its name).
        cascade: attack each stage only on the images still robust after the earlier ones
            (:mod:`advlab.evaluation.robust_stages`; AutoAttack's standard version does the
            same): the same worst case for a fraction of the cost when a defence breaks early;
            each stage's own accuracy is then over the images it attacked, and the large-eps
            sanity check attacks only the worst case's survivors (nested balls: an image broken
            at ``eps`` is broken at every larger eps).
    Returns a :class:`RobustnessReport`; save it with ``report.save(name, folder)``.
    """
    from advlab.attacks import apgd as A
    from advlab.evaluation import adaptive

    purifier = _as_purifier(defence)
    x, y, cfg = _check(classifier, x, y, eps, suite, n)
    eps = float(eps)
    n_cls = int(classifier.output_shape[-1])
    identity = type(purifier).__name__ == "Identity"
    differentiable = bool(getattr(purifier, "differentiable", True))
    stochastic = bool(getattr(purifier, "stochastic", False))
    gradient = "exact" if differentiable else "bpda"
    eot = cfg.eot_samples if stochastic else 1
    label = name or getattr(purifier, "name", "defence")
    bs = cfg.batch_size

    white_threat = ("white-box, classifier alone" if identity else
                    f"white-box adaptive, {'exact gradients' if differentiable else 'BPDA'} "
                    f"through purifier + classifier" + (f", EOT over {eot}" if eot > 1 else ""))
    if identity:
        pipeline = classifier
    else:
        pipeline = adaptive.defended_model(purifier, classifier, gradient, eot)
    cache = {}

    def bpda_pipeline():
        if "bpda" not in cache:
            cache["bpda"] = adaptive.defended_model(purifier, classifier, "bpda", eot)
        return cache["bpda"]

    key = cache_key(kind="robustness", defence=purifier_digest(purifier), classifier=weights_digest(classifier),
                    data=array_digest(x, y), eps=float(eps), seed=int(seed), suite=cfg.to_dict(),
                    sanity=bool(sanity), **({"cascade": True} if cascade else {}))
    path = Path(out) / f"robustness_{key[:16]}.state.json" if out is not None else None
    if path is not None and not resume:
        path.unlink(missing_ok=True)
    store = Checkpoint(path, {"key": key}, verbose=verbose)   # finished stages, saved as they finish
    dlr = "dlr" if n_cls >= 3 else "cw"

    # (name, attack description, threat model, fn(xs, ys) -> (x_adv, params), pool: None = all images)
    plan = [("clean", "none", "no attack", lambda xs, ys: (xs, {}), None)]
    plan.append(("apgd-ce", f"APGD-CE {cfg.apgd_iters} steps x {cfg.apgd_restarts} restarts", white_threat,
                 lambda xs, ys: _with_info(A.apgd(pipeline, xs, ys, eps, loss="ce", n_iter=cfg.apgd_iters,
                                                  restarts=cfg.apgd_restarts, seed=seed, batch_size=bs,
                                                  return_info=True)), None))
    plan.append(("apgd-dlr", f"APGD-{dlr.upper()} {cfg.apgd_iters} steps x {cfg.apgd_restarts} restarts",
                 white_threat,
                 lambda xs, ys: _with_info(A.apgd(pipeline, xs, ys, eps, loss=dlr, n_iter=cfg.apgd_iters,
                                                  restarts=cfg.apgd_restarts, seed=seed + 1, batch_size=bs,
                                                  return_info=True)), None))
    plan.append(("pgd-cw", f"PGD-{cfg.pgd_iters} C&W margin x {cfg.pgd_restarts} restarts", white_threat,
                 lambda xs, ys: _with_info(A.pgd(pipeline, xs, ys, eps, loss="cw", n_iter=cfg.pgd_iters,
                                                 restarts=cfg.pgd_restarts, seed=seed + 2, batch_size=bs,
                                                 return_info=True)), None))
    plan.append(("pgd-cw-short", f"PGD-{cfg.pgd_short_iters} C&W margin x 1 restart", white_threat,
                 lambda xs, ys: _with_info(A.pgd(pipeline, xs, ys, eps, loss="cw", n_iter=cfg.pgd_short_iters,
                                                 restarts=1, seed=seed + 2, batch_size=bs, return_info=True)),
                 None))
    if not identity and differentiable:
        plan.append(("bpda-pgd", f"PGD-{cfg.bpda_iters} C&W margin, BPDA", "white-box adaptive, BPDA "
                     "(identity backward pass through the purifier)" + (f", EOT over {eot}" if eot > 1 else ""),
                     lambda xs, ys: _with_info(A.pgd(bpda_pipeline(), xs, ys, eps, loss="cw",
                                                     n_iter=cfg.bpda_iters, restarts=1, seed=seed + 3,
                                                     batch_size=bs, return_info=True)), None))
    levels = getattr(purifier, "quantization_levels", None)
    if levels:
        from advlab.attacks.quantized import quantized_pgd

        plan.append(("quantized-pgd", f"PGD-{cfg.pgd_iters} C&W margin on the quantized image "
                     f"x {cfg.pgd_restarts} restarts", "white-box adaptive, designed for the defence "
                     f"(optimises the {int(levels) + 1}-level image it sees directly)",
                     lambda xs, ys: _with_info(quantized_pgd(classifier, xs, ys, eps, int(levels), loss="cw",
                                                             n_iter=cfg.pgd_iters, restarts=cfg.pgd_restarts,
                                                             seed=seed + 6, batch_size=bs, return_info=True)),
                     None))
    if not identity:
        plan.append(("transfer", f"APGD-CE {cfg.transfer_iters} steps on the bare classifier",
                     "gray-box transfer (crafted on the classifier alone, then defended)",
                     lambda xs, ys: _with_info(A.apgd(classifier, xs, ys, eps, loss="ce",
                                                      n_iter=cfg.transfer_iters, restarts=1, seed=seed + 4,
                                                      batch_size=bs, return_info=True)), None))
    sub = np.arange(min(cfg.square_n, len(x)))
    plan.append(("square", f"Square {cfg.square_queries} queries (ART), first {len(sub)} images",
                 "black-box score-based on the whole pipeline",
                 lambda xs, ys: (_square(pipeline, xs, ys, eps, cfg.square_queries, seed), {}), sub))

    robust = np.ones(len(x), bool)   # correct clean and under every stage so far
    stages = []
    for stage_name, attack, threat, fn, pool in plan:
        s = run_stage(store, stage_name, attack, threat, fn, pool, x, y, purifier, classifier, bs, verbose,
                      robust if cascade else None)
        stages.append(s)
        robust[np.arange(len(x)) if s.indices is None else s.indices] &= s.correct

    sanity_rows = []
    if sanity:
        alive = robust.copy()          # cascade: the large-eps attacks need only the survivors
        for e in cfg.sanity_eps:
            res = run_stage(store, f"sanity-eps{e:g}", f"APGD-CE {cfg.sanity_iters} steps at eps {e:g}",
                            white_threat,
                            lambda xs, ys, e=e: _with_info(A.apgd(pipeline, xs, ys, float(e), loss="ce",
                                                                  n_iter=cfg.sanity_iters, restarts=1,
                                                                  seed=seed + 5, batch_size=bs,
                                                                  return_info=True)),
                            None, x, y, purifier, classifier, bs, verbose, alive if cascade else None)
            if cascade:
                alive[res.indices] &= res.correct
            sanity_rows.append({"eps": float(e), "accuracy": float(alive.mean()) if cascade else res.accuracy,
                                "n": len(x), "attacked": res.n, "seconds": res.seconds,
                                "threat_model": white_threat})

    k = int(robust.sum())
    worst = {"accuracy": k / len(x), "ci95": list(wilson_interval(k, len(x))), "n": len(x),
             "over": [s.name for s in stages],
             "weakest_stage": _strongest(stages[1:], cascade),
             "robust": pack_bits(robust), "data": array_digest(x, y)}   # per image: paired comparisons
    flags = sanity_flags(stages, sanity_rows, cfg, cascade=cascade)
    suite_dict = {**cfg.to_dict(), **({"cascade": True} if cascade else {})}
    return RobustnessReport(defence=label, classifier=classifier.name, eps=eps, suite=suite_dict,
                            n=len(x), seed=int(seed), stages=stages, worst_case=worst, flags=flags,
                            sanity=sanity_rows)


def _with_info(result):
    x_adv, info = result
    return x_adv, {"accuracy_per_restart": info["accuracy_per_restart"]}


def _strongest(stages, cascade: bool) -> str:
    """The attack stage with the lowest accuracy; in cascade mode the one that broke most images
    (the accuracies there are over different images)."""
    if cascade:
        return max(stages, key=lambda s: s.broken).name
    return min(stages, key=lambda s: s.accuracy).name


def _square(model, x, y, eps, queries, seed):
    from advlab import attacks

    if eps == 0:
        return x.copy()
    return attacks.attack("square", model, x, y, eps=eps, square_queries=int(queries), restarts=1,
                          seed=seed, progress=False, batch_size=128)

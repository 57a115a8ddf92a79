"""The attack registry: which library backs each attack, its norm, and its default parameters.

==========  ======================  ====================================================
name        backed by               notes
==========  ======================  ====================================================
fgsm        cleverhans tf2          ``fast_gradient_method``
bim         cleverhans tf2 (+loop)  cleverhans FGM step + ``clip_eta``, compiled, looped
pgd         cleverhans tf2 (+loop)  as BIM plus a seeded uniform random start
mifgsm      cleverhans tf2 (+loop)  ``momentum_iterative_method``'s step, compiled, looped
cw          advlab (TF)             batched, compiled C&W-L2 (see :mod:`advlab.attacks.cw`)
deepfool    ART                     ``DeepFool`` on a ``TensorFlowV2Classifier``
autoattack  ART                     ``AutoAttack``: APGD-CE, APGD-DLR, DeepFool, Square
square      ART (extra)             ``SquareAttack``, score-based black box
apgd        advlab (TF, extra)      APGD-CE / DLR / C&W margin, restarts (:mod:`.apgd`)
==========  ======================  ====================================================

Why not the libraries' own C&W: cleverhans' ``CarliniWagnerL2`` uses the Keras-2 optimizer API
(breaks under Keras 3) and, with only that patched, returns the images unchanged; ART's
``CarliniL2Method`` ran 466 s for 100 MNIST images and left accuracy at 99%.

ART's AutoAttack set differs from Croce & Hein's "standard" AutoAttack (APGD-CE, APGD-T,
FAB-T, Square): ART runs APGD-CE, untargeted APGD-DLR, DeepFool and Square. Numbers from it
are not directly comparable with the RobustBench leaderboard.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_EPS = 16 / 255  # the papers' L-inf budget on [0, 1] images; MNIST presets use 0.3


@dataclass(frozen=True)
class AttackSpec:
    name: str
    title: str
    library: str
    norm: str                 # "linf" (bounded by eps) or "l2" (minimises the L2 norm)
    deterministic: bool       # same inputs and seed -> same output (random parts are seeded)
    defaults: dict = field(default_factory=dict)
    loader: str = ""          # "module:function" that makes a batch runner (imported lazily)
    mnist: dict = field(default_factory=dict)   # overrides for the MNIST-style preset

    def make_runner(self, model, params, seed):
        import importlib

        module, func = self.loader.split(":")
        return getattr(importlib.import_module(f"advlab.attacks.{module}"), func)(model, params, seed)


_LINF_MNIST = {"eps": 0.3}

REGISTRY: dict[str, AttackSpec] = {s.name: s for s in (
    AttackSpec("fgsm", "FGSM (Goodfellow et al. 2015)", "cleverhans 4.0.0", "linf", True,
               {"eps": DEFAULT_EPS}, "gradient:make_fgsm", _LINF_MNIST),
    AttackSpec("bim", "BIM (Kurakin et al. 2017)", "cleverhans 4.0.0", "linf", True,
               {"eps": DEFAULT_EPS, "eps_iter": 0.01, "nb_iter": 40}, "gradient:make_bim", _LINF_MNIST),
    AttackSpec("pgd", "PGD (Madry et al. 2018)", "cleverhans 4.0.0", "linf", True,
               {"eps": DEFAULT_EPS, "eps_iter": 0.01, "nb_iter": 40, "rand_init": True},
               "gradient:make_pgd", _LINF_MNIST),
    AttackSpec("mifgsm", "MI-FGSM (Dong et al. 2018)", "cleverhans 4.0.0", "linf", True,
               {"eps": DEFAULT_EPS, "eps_iter": 0.01, "nb_iter": 40, "decay_factor": 1.0},
               "gradient:make_mifgsm", _LINF_MNIST),
    AttackSpec("cw", "C&W-L2 (Carlini & Wagner 2017)", "advlab (TensorFlow)", "l2", True,
               {"steps": 100, "binary_search_steps": 5, "lr": 0.1, "initial_const": 1.0,
                "confidence": 0.0}, "cw:make_cw"),
    AttackSpec("deepfool", "DeepFool (Moosavi-Dezfooli et al. 2016)", "ART 1.20", "l2", True,
               {"max_iter": 50, "overshoot": 0.02, "nb_grads": 10}, "art_attacks:make_deepfool"),
    AttackSpec("autoattack", "AutoAttack, ART's set (Croce & Hein 2020)", "ART 1.20", "linf", True,
               {"eps": DEFAULT_EPS, "nb_iter": 100, "restarts": 1, "square_queries": 5000},
               "art_attacks:make_autoattack", _LINF_MNIST),
    AttackSpec("square", "Square Attack (Andriushchenko et al. 2020)", "ART 1.20", "linf", True,
               {"eps": DEFAULT_EPS, "square_queries": 5000, "restarts": 1},
               "art_attacks:make_square", _LINF_MNIST),
    AttackSpec("apgd", "APGD (Croce & Hein 2020)", "advlab (TensorFlow)", "linf", True,
               {"eps": DEFAULT_EPS, "nb_iter": 100, "restarts": 1, "loss": "ce"},
               "apgd:make_apgd", _LINF_MNIST),
)}

ATTACKS = ("fgsm", "bim", "pgd", "mifgsm", "cw", "deepfool", "autoattack")
EXTRAS = ("square", "apgd")
PRESETS = ("paper", "mnist")


def default_params(name: str, preset: str = "paper", cfg=None) -> dict:
    """Default parameters of ``name``.

    ``preset="paper"``: L-inf eps = 16/255, 40 iterations of step 0.01 (the purification papers).
    ``preset="mnist"``: eps = 0.3 for the L-inf attacks (the MNIST-style tables).
    ``cfg`` (a :class:`~advlab.config.LabConfig`) scales the iteration budgets: iterative L-inf
    attacks use ``cfg.attack_iters`` (DeepFool at most that many), C&W uses ``cfg.cw_steps``,
    and at smoke scale Square gets ``100 * cfg.attack_iters`` queries (so smoke runs stay short).
    """
    from advlab.attacks.validation import check_name

    key = check_name(name, tuple(REGISTRY))
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {PRESETS}.")
    spec = REGISTRY[key]
    params = dict(spec.defaults)
    if preset == "mnist":
        params.update(spec.mnist)
    if cfg is not None:
        if "nb_iter" in params:
            params["nb_iter"] = int(cfg.attack_iters)
        if "max_iter" in params:
            params["max_iter"] = min(int(params["max_iter"]), int(cfg.attack_iters))
        if "steps" in params:
            params["steps"] = int(cfg.cw_steps)
        if "square_queries" in params and cfg.scale == "smoke":
            params["square_queries"] = 100 * int(cfg.attack_iters)
    if "eps_iter" in params and "eps" in params:
        # 40 x 0.01 covers eps=0.3; for short runs keep the step large enough to reach eps.
        params["eps_iter"] = float(max(params["eps_iter"], params["eps"] / params.get("nb_iter", 40) * 1.25)
                                   if cfg is not None else params["eps_iter"])
        params["eps_iter"] = min(params["eps_iter"], params["eps"])
    return params


def describe() -> list[dict]:
    """One row per attack: name, title, backing library, norm, default (paper) parameters."""
    return [{"attack": s.name, "title": s.title, "library": s.library, "norm": s.norm,
             "deterministic": s.deterministic, "defaults": s.defaults}
            for s in REGISTRY.values()]


def norms(x, x_adv) -> dict[str, np.ndarray]:
    """Per-image L-inf and L2 norms of the perturbation."""
    d = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
    return {"linf": np.abs(d).max(1) if d.size else np.zeros(len(x)),
            "l2": np.sqrt((d ** 2).sum(1))}

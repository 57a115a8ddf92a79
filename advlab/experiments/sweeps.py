"""Robustness sweeps (the residual-cGAN paper's Fig. 5): is the defence flat in attack strength?

:func:`iteration_sweep` attacks with PGD / MI-FGSM at 10..100 iterations for several eps and
records accuracy without defence and through the purifier; :func:`eps_sweep` varies eps at a
fixed iteration count. Both return *tidy rows* (one per attack, eps, iterations, defence), save
nothing themselves (use :func:`save_sweep`) and resume from a checkpoint.

Step size: the papers fix ``eps_iter`` = 0.01, which makes the iteration count meaningless
when eps is small (one step already reaches the boundary). Here the step scales with the
budget, so more iterations really mean a stronger search: PGD/BIM use Madry et al.'s
``2.5 * eps / nb_iter``, MI-FGSM its paper's ``eps / nb_iter``. Pass ``step_fn`` to change it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from advlab.experiments.runstate import Checkpoint, default_accuracy_fn, progress_bar

from advlab.config import MNIST_EPS, PAPER_EPS, PAPER_ITERATIONS  # noqa: F401  (the plans' defaults)


def default_step(attack: str, eps: float, nb_iter: int) -> float:
    """Step size per iteration: ``eps / nb_iter`` for MI-FGSM, ``2.5 eps / nb_iter`` otherwise,
    never larger than eps (one step cannot usefully leave the eps-ball)."""
    return eps / nb_iter if attack in ("mifgsm", "mi_fgsm", "mim") else min(eps, 2.5 * eps / nb_iter)


def eps_label(eps: float) -> str:
    """``2/255`` for multiples of 1/255 below 0.1, else the decimal (``0.3``)."""
    k = eps * 255
    return f"{int(round(k))}/255" if eps < 0.1 and abs(k - round(k)) < 1e-6 else f"{eps:g}"


def _strength_attack_fn(name, model, x, y, eps, nb_iter, eps_iter):
    from advlab import attacks

    return attacks.attack(name, model, x, y, progress=False, eps=eps, nb_iter=nb_iter, eps_iter=eps_iter)


def _check(x, y, eps_values, iterations):
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"x ({len(x)}) and y ({len(y)}) must be non-empty and match")
    for e in eps_values:
        if not 0 < float(e) <= 1:
            raise ValueError(f"eps must be in (0, 1] for images in [0, 1], got {e}")
    for n in iterations:
        if int(n) < 1:
            raise ValueError(f"iteration counts must be >= 1, got {n}")
    return x, y


def _measure(state, key, classifier, purifier, x_adv, y, accuracy_fn):
    """Accuracy without / with the purifier for one attacked set (both cached in ``state``)."""
    if not state.has(*key, "none"):
        state.put(*key, "none", float(accuracy_fn(classifier, x_adv, y)))
    if purifier is not None and not state.has(*key, "defended"):
        state.put(*key, "defended", float(accuracy_fn(classifier, np.asarray(purifier(x_adv)), y)))


def iteration_sweep(classifier, purifier, x, y, *, attacks: Sequence[str] = ("pgd", "mifgsm"),
                    iterations: Sequence[int] = PAPER_ITERATIONS,
                    eps_values: Sequence[float] = PAPER_EPS + MNIST_EPS,
                    attack_fn: Callable | None = None, accuracy_fn: Callable | None = None,
                    step_fn: Callable[[str, float, int], float] = default_step,
                    checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Accuracy vs attack iterations, one series per (attack, eps, defence).

    ``attack_fn(name, model, x, y, eps, nb_iter, eps_iter) -> x_adv`` (default: advlab.attacks).
    ``purifier=None`` records only the undefended accuracy. Rows:
    ``{attack, eps, eps_label, nb_iter, eps_iter, defence ("none"|"defended"), accuracy}``.
    """
    x, y = _check(x, y, eps_values, iterations)
    attack_fn = attack_fn or _strength_attack_fn
    accuracy_fn = accuracy_fn or default_accuracy_fn
    state = Checkpoint(checkpoint, {"kind": "iterations", "attacks": list(attacks), "n": int(len(x)),
                                    "iterations": [int(i) for i in iterations],
                                    "eps": [float(e) for e in eps_values]})
    rows = []
    bar = progress_bar(len(attacks) * len(eps_values) * len(iterations), "iteration sweep", progress)
    for a in attacks:
        for eps in eps_values:
            for n in iterations:
                step = float(step_fn(a, float(eps), int(n)))
                key = (a, float(eps), int(n))
                need = not state.has(*key, "none") or (purifier is not None and not state.has(*key, "defended"))
                if need:
                    x_adv = np.asarray(attack_fn(a, classifier, x, y, eps=float(eps), nb_iter=int(n), eps_iter=step))
                    _measure(state, key, classifier, purifier, x_adv, y, accuracy_fn)
                for d in ("none", "defended") if purifier is not None else ("none",):
                    rows.append({"attack": a, "eps": float(eps), "eps_label": eps_label(float(eps)),
                                 "nb_iter": int(n), "eps_iter": step, "defence": d,
                                 "accuracy": state.get(*key, d)})
                bar.update(1)
    bar.close()
    return rows


def eps_sweep(classifier, purifier, x, y, *, attacks: Sequence[str] = ("pgd", "mifgsm"),
              eps_values: Sequence[float] = (0.0, 2 / 255, 5 / 255, 10 / 255, 0.1, 0.2, 0.3),
              nb_iter: int = 40, attack_fn: Callable | None = None, accuracy_fn: Callable | None = None,
              step_fn: Callable[[str, float, int], float] = default_step,
              checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Accuracy vs eps at a fixed iteration count (eps = 0 is the clean accuracy).

    Rows: ``{attack, eps, eps_label, nb_iter, defence, accuracy}``.
    """
    positive = [e for e in eps_values if float(e) > 0]
    x, y = _check(x, y, positive, [nb_iter])
    attack_fn = attack_fn or _strength_attack_fn
    accuracy_fn = accuracy_fn or default_accuracy_fn
    state = Checkpoint(checkpoint, {"kind": "eps", "attacks": list(attacks), "n": int(len(x)),
                                    "nb_iter": int(nb_iter), "eps": [float(e) for e in eps_values]})
    rows = []
    bar = progress_bar(len(attacks) * len(eps_values), "eps sweep", progress)
    for a in attacks:
        for eps in eps_values:
            key = (a, float(eps), int(nb_iter))
            if not state.has(*key, "none") or (purifier is not None and not state.has(*key, "defended")):
                x_adv = x if float(eps) == 0 else np.asarray(attack_fn(
                    a, classifier, x, y, eps=float(eps), nb_iter=int(nb_iter),
                    eps_iter=float(step_fn(a, float(eps), int(nb_iter)))))
                _measure(state, key, classifier, purifier, x_adv, y, accuracy_fn)
            for d in ("none", "defended") if purifier is not None else ("none",):
                rows.append({"attack": a, "eps": float(eps), "eps_label": eps_label(float(eps)) if eps else "0",
                             "nb_iter": int(nb_iter), "defence": d, "accuracy": state.get(*key, d)})
            bar.update(1)
    bar.close()
    return rows


def plot_iteration_sweep(rows: Sequence[Mapping], title: str = ""):
    """One panel per (attack, defence); x = iterations, one line per eps (Fig. 5 layout)."""
    import matplotlib.pyplot as plt

    from advlab.viz import line_plot

    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    defences = list(dict.fromkeys(r["defence"] for r in rows))
    fig, axes = plt.subplots(len(attacks), len(defences), figsize=(4.2 * len(defences), 3.2 * len(attacks)),
                             squeeze=False, sharey=True)
    for i, a in enumerate(attacks):
        for j, d in enumerate(defences):
            sub = [r for r in rows if r["attack"] == a and r["defence"] == d]
            iters = sorted({r["nb_iter"] for r in sub})
            series = {}
            for lab in dict.fromkeys(r["eps_label"] for r in sub):
                acc = {r["nb_iter"]: 100 * r["accuracy"] for r in sub if r["eps_label"] == lab}
                series[f"eps {lab}"] = [acc[n] for n in iters]
            name = "no defence" if d == "none" else "defended"
            line_plot(iters, series, "attack iterations", "accuracy (%)", f"{a.upper()}: {name}", ax=axes[i, j])
            axes[i, j].set_ylim(-2, 102)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_eps_sweep(rows: Sequence[Mapping], title: str = ""):
    """Accuracy vs eps, one line per (attack, defence)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for a in dict.fromkeys(r["attack"] for r in rows):
        for d in dict.fromkeys(r["defence"] for r in rows):
            sub = sorted((r for r in rows if r["attack"] == a and r["defence"] == d), key=lambda r: r["eps"])
            ax.plot([r["eps"] for r in sub], [100 * r["accuracy"] for r in sub],
                    "-o" if d == "defended" else "--x", markersize=4,
                    label=f"{a.upper()} {'defended' if d == 'defended' else 'no defence'}")
    ax.set_xlabel("eps (L-inf, images in [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_sweep(rows: Sequence[Mapping], name: str, fig=None, folder: str | Path | None = None,
               config=None) -> dict[str, Path]:
    """Save ``<name>.json`` / ``<name>.csv`` (and ``<name>.png`` if ``fig``) into figures/;
    ``config`` (the run's config) is digested into the JSON's provenance block."""
    from advlab.io import results
    from advlab import viz

    out = {"json": results.save_json(list(rows), name, folder, config=config),
           "csv": results.save_csv(rows, name, folder)}
    if fig is not None:
        out["png"] = viz.savefig(fig, name, folder)
    return out

"""Pictures and tables of attacks: the clean | adversarial | perturbation grid and the results table."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def _names(labels, class_names):
    return [str(class_names[int(k)]) if class_names is not None else str(int(k)) for k in labels]


def example_grid(model, x, x_adv, y, n: int = 6, class_names: Sequence[str] | None = None,
                 title: str | None = None, amplify: float | None = None):
    """Rows = images; columns clean | adversarial | perturbation (amplified, grey = 0).

    Captions give the true label and the model's prediction on each version ("3 -> 8" marks a
    successful attack). ``amplify`` defaults to the factor that makes the largest change of the
    shown images fill the grey scale.
    """
    from advlab.classifiers import predict_labels
    from advlab.viz import image_grid

    n = min(int(n), len(x))
    x, x_adv, y = np.asarray(x[:n]), np.asarray(x_adv[:n]), np.asarray(y[:n])
    delta = x_adv - x
    peak = float(np.abs(delta).max()) if delta.size else 0.0
    amp = amplify or (0.5 / peak if peak > 0 else 1.0)
    p_clean, p_adv = predict_labels(model, x), predict_labels(model, x_adv)
    t, pc, pa = (_names(v, class_names) for v in (y, p_clean, p_adv))
    pert = f"perturbation x{amp:.0f}" if amp >= 1.5 else f"perturbation x{amp:.2f}"
    norms_ = np.sqrt((delta.reshape(n, -1) ** 2).sum(1))
    captions = {"clean": [f"true {a}, pred {b}" for a, b in zip(t, pc)],
                "adversarial": [f"pred {b}" + (" ✗" if b != a else "") for a, b in zip(t, pa)],
                pert: [f"L2 {v:.2f}" for v in norms_]}
    return image_grid({"clean": x, "adversarial": x_adv, pert: delta * amp}, captions=captions,
                      title=title, diverging=[pert])


def results_row(adv_set) -> dict:
    """One row of the results table from an :class:`~advlab.attacks.datasets.AdversarialSet`."""
    r = adv_set.meta["results"]
    return {"attack": adv_set.attack, "n": r["n"], "clean_acc": round(r["clean_accuracy"], 4),
            "adv_acc": round(r["adversarial_accuracy"], 4), "success_rate": round(r["success_rate"], 4),
            "linf_mean": round(r["linf_mean"], 4), "linf_max": round(r["linf_max"], 4),
            "l2_mean": round(r["l2_mean"], 3), "s_per_1000": round(r["seconds_per_1000"], 2)}


def results_table(sets: Mapping[str, object] | Sequence[object]) -> list[dict]:
    """Rows for several sets (a dict name -> set, or a list)."""
    items = sets.values() if isinstance(sets, Mapping) else sets
    return [results_row(s) for s in items]


def format_table(rows: Sequence[Mapping]) -> str:
    """A plain-text table (for printing in notebooks and scripts)."""
    if not rows:
        return "(empty)"
    cols = list(rows[0])
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])

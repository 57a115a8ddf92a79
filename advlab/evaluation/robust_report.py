"""What a robustness evaluation returns and what its numbers mean: accuracy per stage with its
95 % interval, the per-example worst case and the sanity flags of one defence
(:class:`RobustnessReport`, :func:`sanity_flags`), with its table, figure and files. Built by
:func:`advlab.evaluation.robustness.evaluate_robustness`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WHITE_BOX = ("apgd-ce", "apgd-dlr", "pgd-cw", "pgd-cw-short")
OTHERS = ("bpda-pgd", "quantized-pgd", "transfer", "square")


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``k / n`` (``(nan, nan)`` for ``n = 0``)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class StageResult:
    name: str
    attack: str
    threat_model: str
    accuracy: float
    n: int
    seconds: float
    params: dict = field(default_factory=dict)
    correct: np.ndarray | None = field(default=None, repr=False)   # per example, aligned with indices
    indices: np.ndarray | None = field(default=None, repr=False)   # None: every image

    @property
    def broken(self) -> int:
        """Images this stage attacked and fooled."""
        return self.n - int(np.sum(self.correct))

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(int(np.sum(self.correct)), self.n) if self.correct is not None else (math.nan,) * 2

    def row(self) -> dict:
        lo, hi = self.interval
        return {"stage": self.name, "attack": self.attack, "threat_model": self.threat_model,
                "accuracy": self.accuracy, "ci95_low": lo, "ci95_high": hi, "n": self.n,
                "seconds": round(self.seconds, 3),
                "seconds_per_image": round(self.seconds / max(self.n, 1), 5)}


@dataclass
class RobustnessReport:
    """Accuracy per stage, per-example worst case and sanity flags of one defence."""

    defence: str
    classifier: str
    eps: float
    suite: dict
    n: int
    seed: int
    stages: list
    worst_case: dict
    flags: dict
    sanity: list

    @property
    def threat_model(self) -> str:
        return f"L-inf eps={self.eps:g}, adaptive (attacker knows defence {self.defence!r})"

    def stage(self, name: str) -> StageResult:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"No stage {name!r}; stages: {[s.name for s in self.stages]}.")

    def rows(self) -> list[dict]:
        out = [{"defence": self.defence, "eps": self.eps, **s.row()} for s in self.stages]
        w = self.worst_case
        out.append({"defence": self.defence, "eps": self.eps, "stage": "worst-case",
                    "attack": f"per-example worst case over {w['over']}",
                    "threat_model": self.threat_model, "accuracy": w["accuracy"],
                    "ci95_low": w["ci95"][0], "ci95_high": w["ci95"][1], "n": self.n,
                    "seconds": round(sum(s.seconds for s in self.stages), 3),
                    "seconds_per_image": None})
        return out

    def to_dict(self) -> dict:
        return {"defence": self.defence, "classifier": self.classifier, "eps": self.eps,
                "threat_model": self.threat_model, "suite": self.suite, "n": self.n, "seed": self.seed,
                "stages": [dict(s.row(), params=s.params) for s in self.stages],
                "worst_case": self.worst_case, "flags": self.flags, "sanity": self.sanity}

    def __str__(self) -> str:
        lines = [f"{self.defence} on {self.classifier}: {self.threat_model}, n={self.n}"]
        for r in self.rows():
            lines.append(f"  {r['stage']:<13} {100 * r['accuracy']:6.2f} %  "
                         f"[{100 * r['ci95_low']:5.1f}, {100 * r['ci95_high']:5.1f}]  "
                         f"n={r['n']:<5} {r['seconds']:8.1f} s  ({r['threat_model']})")
        for r in self.sanity:
            lines.append(f"  sanity: eps {r['eps']:g} -> {100 * r['accuracy']:.2f} % (should be ~0)")
        raised = [k for k, v in self.flags.items() if v["raised"]]
        lines.append(f"  flags raised: {', '.join(raised) if raised else 'none'}")
        return "\n".join(lines)

    def figure(self):
        """Accuracy per stage with 95 % intervals; the worst case as a line; flags in the title."""
        import matplotlib.pyplot as plt

        rows = [r for r in self.rows() if r["stage"] != "worst-case"]
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(rows) + 1.5))
        acc = np.array([100 * r["accuracy"] for r in rows])
        err = np.array([[100 * (r["accuracy"] - r["ci95_low"]), 100 * (r["ci95_high"] - r["accuracy"])]
                        for r in rows]).T.clip(min=0)   # at 0 % or 100 % float rounding leaves -1e-15
        ax.barh(range(len(rows)), acc, xerr=err, color="tab:blue", alpha=0.8, capsize=3)
        ax.set_yticks(range(len(rows)), [f"{r['stage']} (n={r['n']})" for r in rows])
        ax.invert_yaxis()
        ax.axvline(100 * self.worst_case["accuracy"], color="tab:red", ls="--",
                   label=f"worst case {100 * self.worst_case['accuracy']:.1f} %")
        ax.set_xlim(0, 100)
        ax.set_xlabel(f"accuracy (%), L-inf eps = {self.eps:g}")
        raised = [k for k, v in self.flags.items() if v["raised"]]
        ax.set_title(f"{self.defence}: " + (f"FLAGS: {', '.join(raised)}" if raised else "no flag raised"),
                     fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig

    def save(self, name: str | None = None, folder=None) -> dict:
        """``name.json`` (everything), ``name.csv`` (:meth:`rows`) and ``name.png`` (:meth:`figure`)."""
        import matplotlib.pyplot as plt

        from advlab.io.results import save_csv, save_json
        from advlab.viz import savefig

        name = name or f"robustness_{self.defence}"
        paths = {"json": save_json(self.to_dict(), name, folder), "csv": save_csv(self.rows(), name, folder)}
        fig = self.figure()
        paths["png"] = savefig(fig, name, folder)
        plt.close(fig)
        return paths


def pack_bits(correct) -> str:
    """Per-example booleans as a compact string for the JSON checkpoint."""
    return "".join("1" if c else "0" for c in correct)


def unpack_bits(bits: str) -> np.ndarray:
    return np.array([c == "1" for c in bits], bool)


def paired_comparison(a, b) -> dict:
    """Two defences' worst cases on the same images, compared image by image.

    ``a``, ``b``: :class:`RobustnessReport` objects or their saved JSON (``report.json``). Returns
    both accuracies, the images only one of them keeps, and the exact two-sided McNemar p-value
    (binomial on those discordant images): a difference the 95 % intervals cannot resolve may
    still be significant when the same images are attacked.
    """
    wa, wb = (r.worst_case if hasattr(r, "worst_case") else r["worst_case"] for r in (a, b))
    if "robust" not in wa or "robust" not in wb:
        raise ValueError("a report saved before per-image results were recorded; rerun its "
                         "`advlab robustness` command (finished stages are read from the checkpoint)")
    if wa.get("data") != wb.get("data") or len(wa["robust"]) != len(wb["robust"]):
        raise ValueError("the two reports attacked different images (data digests or counts differ); "
                         "a paired comparison needs the same x and y")
    from advlab.evaluation import mcnemar

    test = mcnemar(unpack_bits(wa["robust"]), unpack_bits(wb["robust"]))
    return {**{k: v for k, v in test.items() if k not in ("only_a", "only_b")},
            "only_a_robust": test["only_a"], "only_b_robust": test["only_b"]}


def summary_table(records, comparison: dict | None = None) -> list[dict]:
    """One row per defence from saved reports: the robustness table of a set of records.

    ``records``: a mapping ``label -> report`` (a :class:`RobustnessReport` or its saved JSON), in
    the order of the table. Each row: the label, classifier, n, suite, every stage's accuracy (%)
    and cost (seconds; a stage the defence did not get is empty), the per-example worst case with
    its 95 % interval, the strongest stage and the flags raised. Accuracies are under the threat
    model of each stage (the JSON names it); the worst case is the defence's robustness.

    ``comparison``: a saved defence comparison (``advlab compare``'s JSON). A report whose defence
    is a row of it, in front of the comparison's classifier, gets that row's clean, gray-box, e2e
    and BPDA columns beside its own (the attacker who does not know the defence beside the one
    who does); other rows leave them empty.
    """
    stages, rows = [], []
    side = _comparison_columns(comparison)
    for label, rec in records.items():
        rec = rec.to_dict() if hasattr(rec, "to_dict") else rec
        for st in rec["stages"]:
            if st["stage"] not in stages:
                stages.append(st["stage"])
        w = rec["worst_case"]
        suite = rec["suite"]["name"] + (" (cascade)" if rec["suite"].get("cascade") else "")
        row = {"defence": label, "classifier": rec["classifier"], "n": rec["n"], "suite": suite,
               "eps": rec["eps"]}
        row.update(side["rows"].get((rec["defence"], rec["classifier"]), {}))
        row.update({f"{st['stage']} %": None if st["accuracy"] is None or st["accuracy"] != st["accuracy"]
                    else round(100 * st["accuracy"], 2) for st in rec["stages"]})   # None: a cascade left nothing
        row.update({"worst case %": round(100 * w["accuracy"], 2), "ci95 low %": round(100 * w["ci95"][0], 2),
                    "ci95 high %": round(100 * w["ci95"][1], 2), "strongest stage": w["weakest_stage"],
                    "flags": ", ".join(k for k, v in rec["flags"].items() if v["raised"]) or "none",
                    "attack minutes": round(sum(st["seconds"] for st in rec["stages"]) / 60, 2)})
        row.update({f"{st['stage']} s": round(st["seconds"], 1) for st in rec["stages"]})
        rows.append(row)
    columns = (["defence", "classifier", "n", "suite", "eps"] + side["columns"] + [f"{s} %" for s in stages]
               + ["worst case %", "ci95 low %", "ci95 high %", "strongest stage", "flags", "attack minutes"]
               + [f"{s} s" for s in stages])
    return [{c: r.get(c) for c in columns} for r in rows]


def _comparison_columns(comparison: dict | None) -> dict:
    """``{"columns": [...], "rows": {(defence, classifier): {column: %}}}`` of a saved comparison:
    its accuracy columns (clean, gray-box, e2e, BPDA), named ``comparison <mode>:<attack> %``."""
    if comparison is None:
        return {"columns": [], "rows": {}}
    meta = comparison["meta"]
    scale = 1.0 if "percent" in meta["accuracy"] else 100.0      # older records saved percentages
    keep = [k for k in comparison["rows"][0] if k.split(":")[0] in ("clean", "gray-box", "e2e", "bpda")]
    columns = [f"comparison {k} %" for k in keep]
    rows = {(r["defence"], meta["classifier"]): {f"comparison {k} %": None if r[k] is None or r[k] != r[k]
                                                 else round(scale * r[k], 2) for k in keep}
            for r in comparison["rows"]}
    return {"columns": columns, "rows": rows}


def sanity_flags(stages, sanity_rows, cfg, cascade: bool = False) -> dict:
    """Carlini et al. 2019's sanity checks on finished stages, each ``{"raised": bool, ...,
    "meaning": ...}``: reported with every result, never hidden. In cascade mode a later stage
    saw only the earlier stages' survivors, so a check counts the images it alone broke."""
    by = {s.name: s for s in stages}
    white = [by[n] for n in WHITE_BOX if n in by]
    others = [by[n] for n in OTHERS if n in by]
    flags = {}
    beaten = []
    for s in others:
        if cascade:   # every image it attacked survived every white-box stage
            if s.broken > cfg.masking_tolerance * s.params.get("pool", s.n):
                beaten.append({"stage": s.name, "images_only_it_breaks": s.broken, "of": s.params.get("pool")})
            continue
        # compare on the same images (Square runs on a subset)
        idx = np.arange(len(by["clean"].correct)) if s.indices is None else s.indices
        white_acc = float(np.mean(np.logical_and.reduce([w.correct[idx] for w in white])))
        if s.accuracy < white_acc - cfg.masking_tolerance:
            beaten.append({"stage": s.name, "accuracy": s.accuracy, "white_box_accuracy": white_acc})
    flags["gradient_masking"] = {
        "raised": bool(beaten), "beaten_by": beaten,
        "meaning": "a BPDA, designed (quantized-pgd), transfer or black-box attack beats the generic "
                   "white-box attacks: their gradients are masked or only approximate, so the "
                   "white-box numbers alone overstate robustness"}
    short, long_ = by.get("pgd-cw-short"), by.get("pgd-cw")
    if cascade:   # the short run attacked the long run's survivors
        raised = short is not None and short.broken > cfg.masking_tolerance * len(by["clean"].correct)
    else:
        raised = short is not None and long_ is not None and long_.accuracy > short.accuracy + cfg.masking_tolerance
    flags["more_steps_raise_accuracy"] = {
        "raised": bool(raised),
        "short": None if short is None else short.accuracy, "long": None if long_ is None else long_.accuracy,
        "meaning": "more PGD steps and restarts gave a higher accuracy: the attack is not converging"}
    restart_up = [s.name for s in white if s.params.get("accuracy_per_restart")
                  and np.any(np.diff(s.params["accuracy_per_restart"]) > 0)]
    flags["more_restarts_raise_accuracy"] = {
        "raised": bool(restart_up), "stages": restart_up,
        "meaning": "an extra restart raised the attack's own accuracy (only possible for random defences)"}
    if sanity_rows:
        top = max(sanity_rows, key=lambda r: r["eps"])
        flags["accuracy_not_vanishing"] = {
            "raised": bool(top["accuracy"] > cfg.vanish_tolerance), "eps": top["eps"],
            "accuracy": top["accuracy"],
            "meaning": "an unbounded-ish attack (large eps) fails to reach ~0 accuracy: gradients "
                       "are masked or the attack is broken"}
    return flags

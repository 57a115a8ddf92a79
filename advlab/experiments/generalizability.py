"""Generalizability: does a purifier trained on attack A also defend against attack B?

The papers' metric is ``G = 1 - acc(B) / acc(A)``: the relative drop in defended accuracy when
a purifier trained on attack A meets attack B instead. ``G = 0`` means B is defended exactly as
well as A; lower is better; a *negative* G means B is defended *better* than the attack the
purifier was trained on.

:func:`generalizability_matrix` fills the papers' Table III: one purifier per training attack
(rows) x test attacks (columns, usually including one no purifier saw, DeepFool), plus optional
extra rows such as the *versatile* model trained on the composite of all attacks, and the
"none" row (no defence). :func:`transfer_table` fills Table IV: one purifier, attacks made
against other classifiers.

Everything here takes callables (``train_fn``, ``attack_fn``, ``accuracy_fn``) so it runs on
tiny stand-ins in tests and on the real attacks/purifiers in notebooks and scripts. Results are
checkpointed cell by cell (``checkpoint=``) so an interrupted full-scale run resumes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from advlab.experiments.runstate import Checkpoint, default_accuracy_fn, default_attack_fn, progress_bar

NONE_ROW = "none"
CLEAN_COL = "clean"


def g_metric(acc_b, acc_a):
    """Generalizability ``G = 1 - acc_b / acc_a`` (scalars or arrays; fractions or percentages).

    ``acc_a`` is the purifier's accuracy on the attack it was trained on, ``acc_b`` on another
    attack. Raises ``ValueError`` for negative accuracies or ``acc_a == 0`` (G is undefined).
    """
    a = np.asarray(acc_a, dtype=float)
    b = np.asarray(acc_b, dtype=float)
    if np.any(~np.isfinite(a)) or np.any(~np.isfinite(b)):
        raise ValueError("accuracies must be finite numbers")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError(f"accuracies must be non-negative, got acc_b={acc_b!r}, acc_a={acc_a!r}")
    if np.any(a == 0):
        raise ValueError("G is undefined when the purifier's accuracy on its own attack is 0")
    g = 1.0 - b / a
    return float(g) if g.ndim == 0 else g


@dataclass
class GeneralizabilityTable:
    """Accuracy (in [0, 1]) and G per (purifier row, test column).

    ``rows``: purifier names (training attacks, extras like "versatile", and "none");
    ``columns``: "clean" and the test attacks. ``g[i, j]`` is NaN where G is undefined (the
    "none" row, extra rows without an own attack, the clean column, zero own accuracy).
    """

    rows: list[str]
    columns: list[str]
    acc: np.ndarray
    g: np.ndarray
    meta: dict = field(default_factory=dict)

    def cell(self, row: str, column: str) -> float:
        return float(self.acc[self.rows.index(row), self.columns.index(column)])

    @property
    def attack_columns(self) -> list[str]:
        return [c for c in self.columns if c != CLEAN_COL]

    def mean_defended(self, row: str, columns: Sequence[str] | None = None) -> float:
        """Mean accuracy of one row over the attack columns (or the given ones)."""
        cols = list(columns) if columns is not None else self.attack_columns
        return float(np.mean([self.cell(row, c) for c in cols]))

    def own_attack_accuracy(self) -> dict[str, float]:
        """Each attack-specific purifier on its own attack (the matrix diagonal)."""
        return {r: self.cell(r, r) for r in self.rows if r in self.columns}

    def versatile_vs_specific(self, row: str = "versatile") -> list[dict]:
        """The versatile paper's comparison: ``row`` vs the purifier trained on each attack."""
        out = []
        for attack, own in self.own_attack_accuracy().items():
            v = self.cell(row, attack)
            out.append({"attack": attack, row: v, "attack_specific": own, "difference": v - own})
        return out

    def to_rows(self) -> list[dict]:
        """Tidy rows: one per cell (purifier, test_attack, accuracy, G)."""
        return [{"purifier": r, "test_attack": c, "accuracy": float(self.acc[i, j]),
                 "G": (None if not np.isfinite(self.g[i, j]) else float(self.g[i, j]))}
                for i, r in enumerate(self.rows) for j, c in enumerate(self.columns)]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "columns": self.columns, "accuracy": self.acc, "G": self.g,
                "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Mapping) -> "GeneralizabilityTable":
        acc = np.array(d["accuracy"], dtype=float)
        g = np.array([[np.nan if v is None else v for v in row] for row in d["G"]], dtype=float)
        return cls(list(d["rows"]), list(d["columns"]), acc, g.reshape(acc.shape), dict(d.get("meta", {})))

    def save(self, name: str, folder: str | Path | None = None) -> dict[str, Path]:
        """Write ``<name>.json`` (the whole table) and ``<name>.csv`` (tidy rows) into figures/."""
        from advlab.io import results

        return {"json": results.save_json(self.to_dict(), name, folder),
                "csv": results.save_csv(self.to_rows(), name, folder)}

    def to_frame(self, what: str = "accuracy"):
        """A pandas DataFrame of accuracy (in %) or G, for display in notebooks."""
        import pandas as pd

        values = self.acc * 100 if what == "accuracy" else self.g
        return pd.DataFrame(values, index=self.rows, columns=self.columns).round(3 if what == "G" else 1)


def _g_matrix(rows, columns, acc) -> np.ndarray:
    g = np.full(acc.shape, np.nan)
    for i, r in enumerate(rows):
        if r not in columns:
            continue
        own = acc[i, columns.index(r)]
        if not own > 0:
            continue
        for j, c in enumerate(columns):
            if c != CLEAN_COL:
                g[i, j] = g_metric(acc[i, j], own)
    return g


def generalizability_matrix(train_fn: Callable[[str], Callable], classifier, x_test, y_test,
                            train_attacks: Sequence[str], test_attacks: Sequence[str], *,
                            attack_fn: Callable | None = None, accuracy_fn: Callable | None = None,
                            extra_rows: Mapping[str, Callable[[], Callable]] | None = None,
                            include_clean: bool = True, include_none: bool = True,
                            checkpoint: str | Path | None = None, progress: bool = True,
                            meta: Mapping | None = None) -> GeneralizabilityTable:
    """Fill the attack-specific x test-attack matrix (the papers' Table III).

    * ``train_fn(attack) -> purifier``: trains (or loads from cache) the purifier for one
      training attack; called only for rows that still have cells to compute.
    * ``attack_fn(name, classifier, x, y) -> x_adv``: default :func:`advlab.attacks.attack`.
    * ``accuracy_fn(classifier, x, y) -> float in [0, 1]``: default
      :func:`advlab.classifiers.accuracy`.
    * ``extra_rows``: ``{row name: () -> purifier}``, e.g. ``{"versatile": ...}``; their G is
      undefined (no own attack) but :meth:`GeneralizabilityTable.versatile_vs_specific` compares
      them with the attack-specific rows.
    * ``checkpoint``: JSON file storing finished cells; a rerun skips them (and skips training
      rows that are complete).
    """
    train_attacks, test_attacks = list(train_attacks), list(test_attacks)
    if not train_attacks and not extra_rows:
        raise ValueError("need at least one training attack or extra row")
    if not test_attacks:
        raise ValueError("need at least one test attack")
    for names, what in ((train_attacks, "train_attacks"), (test_attacks, "test_attacks")):
        if len(set(names)) != len(names) or CLEAN_COL in names or NONE_ROW in names:
            raise ValueError(f"{what} must be distinct attack names (not 'clean'/'none'): {names}")
    x_test = np.asarray(x_test)
    y_test = np.asarray(y_test)
    if len(x_test) != len(y_test) or len(x_test) == 0:
        raise ValueError(f"x_test ({len(x_test)}) and y_test ({len(y_test)}) must be non-empty and match")
    attack_fn = attack_fn or default_attack_fn
    accuracy_fn = accuracy_fn or default_accuracy_fn
    extra_rows = dict(extra_rows or {})

    columns = ([CLEAN_COL] if include_clean else []) + test_attacks
    builders: dict[str, Callable[[], Callable]] = {a: (lambda a=a: train_fn(a)) for a in train_attacks}
    builders.update(extra_rows)
    rows = list(builders) + ([NONE_ROW] if include_none else [])

    fingerprint = {"rows": rows, "columns": columns, "n_images": int(len(x_test))}
    state = Checkpoint(checkpoint, fingerprint)
    adv_cache: dict[str, np.ndarray] = {}

    def inputs(col: str) -> np.ndarray:
        if col == CLEAN_COL:
            return x_test
        if col not in adv_cache:
            adv_cache[col] = np.asarray(attack_fn(col, classifier, x_test, y_test))
            if adv_cache[col].shape != x_test.shape:
                raise ValueError(f"attack {col!r} returned shape {adv_cache[col].shape}, expected {x_test.shape}")
        return adv_cache[col]

    bar = progress_bar(total=len(rows) * len(columns), desc="generalizability", enabled=progress)
    for r in rows:
        todo = [c for c in columns if not state.has(r, c)]
        bar.update(len(columns) - len(todo))
        if not todo:
            continue
        purifier = None if r == NONE_ROW else builders[r]()
        for c in todo:
            x_in = inputs(c)
            x_pur = x_in if purifier is None else np.asarray(purifier(x_in))
            state.put(r, c, float(accuracy_fn(classifier, x_pur, y_test)))
            bar.update(1)
    bar.close()

    acc = np.array([[state.get(r, c) for c in columns] for r in rows], dtype=float)
    info = {"n_images": int(len(x_test)), "train_attacks": train_attacks, "test_attacks": test_attacks,
            "unseen_attacks": [a for a in test_attacks if a not in train_attacks]}
    info.update(dict(meta or {}))
    return GeneralizabilityTable(rows, columns, acc, _g_matrix(rows, columns, acc), info)


def transfer_table(purifier, targets: Mapping[str, object], x, y, attacks: Sequence[str], *,
                   source: str = "A", attack_fn: Callable | None = None,
                   accuracy_fn: Callable | None = None, include_clean: bool = True,
                   checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Cross-model transfer (the papers' Table IV).

    ``purifier`` was trained on adversarial examples made against classifier ``source``;
    ``targets`` maps names to *other* classifiers (include the source too for reference).
    Each attack is made against each target classifier itself (white-box on the target, the
    purifier unknown to the attacker), and the target's accuracy is measured without and with
    the purifier. Returns tidy rows ``{source, target, attack, no_defence, defence}``.
    """
    if not targets:
        raise ValueError("targets must name at least one classifier")
    attack_fn = attack_fn or default_attack_fn
    accuracy_fn = accuracy_fn or default_accuracy_fn
    x, y = np.asarray(x), np.asarray(y)
    cols = ([CLEAN_COL] if include_clean else []) + list(attacks)
    state = Checkpoint(checkpoint, {"source": source, "targets": list(targets), "attacks": cols,
                                    "n_images": int(len(x))})
    bar = progress_bar(total=len(targets) * len(cols), desc="transfer", enabled=progress)
    for target, model in targets.items():
        for a in cols:
            if not state.has(target, a):
                x_in = x if a == CLEAN_COL else np.asarray(attack_fn(a, model, x, y))
                state.put(target, a, {"no_defence": float(accuracy_fn(model, x_in, y)),
                                      "defence": float(accuracy_fn(model, np.asarray(purifier(x_in)), y))})
            bar.update(1)
    bar.close()
    return [{"source": source, "target": t, "attack": a, **state.get(t, a)} for t in targets for a in cols]


def transfer_frame(rows: Sequence[Mapping]):
    """Pivot transfer rows into the paper's layout: attack x target, cells 'no defence / defence' (%)."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    df["cell"] = [f"{100 * a:.1f} / {100 * b:.1f}" for a, b in zip(df["no_defence"], df["defence"])]
    order = list(dict.fromkeys(df["attack"]))
    return df.pivot(index="attack", columns="target", values="cell").reindex(order)


def plot_matrix(table: GeneralizabilityTable, title: str = ""):
    """Two annotated heatmaps side by side: accuracy (%) and G (centred on 0, lower is better)."""
    import matplotlib.pyplot as plt

    from advlab.viz import heatmap

    g_rows = [r for r in table.rows if r in table.columns]
    g_cols = table.attack_columns
    g = np.array([[table.g[table.rows.index(r), table.columns.index(c)] for c in g_cols] for r in g_rows])
    fig, axes = plt.subplots(1, 2, figsize=(1.0 * (len(table.columns) + len(g_cols)) + 5,
                                            0.55 * len(table.rows) + 2.2),
                             gridspec_kw={"width_ratios": [len(table.columns), max(len(g_cols), 1)]})
    labels = [f"M_{r}" if r in table.columns else r for r in table.rows]
    heatmap(100 * table.acc, labels, table.columns, title="accuracy (%)", ax=axes[0], cmap="viridis")
    if g_rows:
        heatmap(g, [f"M_{r}" for r in g_rows], g_cols, title="G = 1 - acc(B)/acc(A)", fmt="{:.3f}",
                cmap="RdBu_r", center=0.0, ax=axes[1])
    else:
        axes[1].axis("off")
    for ax in axes:
        ax.set_xlabel("test attack")
    axes[0].set_ylabel("purifier (trained on)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_transfer(rows: Sequence[Mapping], title: str = ""):
    """One panel per target classifier: accuracy per attack without and with the purifier (%)."""
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(r["target"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    fig, axes = plt.subplots(1, len(targets), figsize=(0.9 * len(attacks) * len(targets) + 2, 3.4),
                             sharey=True, squeeze=False)
    pos = np.arange(len(attacks))
    for ax, target in zip(axes[0], targets):
        cell = {r["attack"]: r for r in rows if r["target"] == target}
        for shift, key, label in ((-0.2, "no_defence", "no defence"), (0.2, "defence", "purified")):
            ax.bar(pos + shift, [100 * cell[a][key] for a in attacks], 0.4, label=label)
        ax.set_xticks(pos, attacks, rotation=45)
        ax.set_title(target + (" (source)" if rows and target == rows[0]["source"] else ""))
    axes[0][0].set_ylabel("accuracy (%)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper right", ncol=2, fontsize="small")
    fig.suptitle(title or " ")
    fig.tight_layout()
    return fig

"""How the robustness suite runs one stage (:func:`run_stage`).

Two modes, one checkpoint. By default a stage attacks every image of its pool (all images, or
Square's first ``square_n``) in one call and is saved when it finishes. In *cascade* mode (the
way AutoAttack's standard version saves time) a stage attacks only the images of its pool that
are still robust after the earlier stages, in chunks of ``CHUNK`` images, each saved as it
finishes, so a run killed inside a long stage resumes at its next chunk. The per-example worst
case is the same quantity either way (an image already broken stays broken); a cascade stage's
own accuracy is over the images it attacked, which its row says.
"""
from __future__ import annotations

import time

import numpy as np

from advlab.evaluation.robust_report import StageResult, pack_bits, unpack_bits

CHUNK = 256   # images per checkpointed piece of a cascade stage


def predict(purifier, classifier, x, batch_size):
    """Labels of the deployed defence (one purification per image)."""
    from advlab.classifiers import predict_labels

    return predict_labels(classifier, purifier(x, batch_size=batch_size), batch_size)


def run_stage(store, name, attack, threat, fn, pool, x, y, purifier, classifier, bs, verbose,
              robust=None) -> StageResult:
    """One stage: ``fn(xs, ys) -> (x_adv, params)`` on the images of ``pool`` (``None``: all).

    ``robust``: the cascade mask (images robust so far); ``None`` runs the whole pool at once.
    """
    saved = store.get(name) if store.has(name) else None
    if saved is None:
        if robust is None:
            t0 = time.perf_counter()
            xs, ys = (x, y) if pool is None else (x[pool], y[pool])
            x_adv, params = fn(xs, ys)
            correct = predict(purifier, classifier, x_adv, bs) == ys
            saved = {"attack": attack, "threat_model": threat, "correct": pack_bits(correct),
                     "indices": None if pool is None else [int(i) for i in pool],
                     "seconds": time.perf_counter() - t0, "params": params}
        else:
            saved = _cascade(store, name, attack, threat, fn, pool, x, y, purifier, classifier, bs, verbose,
                             robust)
        store.put(name, saved)
    correct = unpack_bits(saved["correct"])
    res = StageResult(name=name, attack=saved["attack"], threat_model=saved["threat_model"],
                      accuracy=float(correct.mean()) if len(correct) else float("nan"), n=len(correct),
                      seconds=float(saved["seconds"]), params=saved["params"], correct=correct,
                      indices=None if saved["indices"] is None else np.array(saved["indices"], int))
    if verbose:
        print(f"[robustness] {name:<13} {100 * res.accuracy:6.2f} %  n={res.n}  {res.seconds:.1f} s")
    return res


def _cascade(store, name, attack, threat, fn, pool, x, y, purifier, classifier, bs, verbose, robust) -> dict:
    base = np.arange(len(x)) if pool is None else np.asarray(pool, int)
    idx = base[robust[base]]
    parts = []
    n_chunks = -(-len(idx) // CHUNK)
    for k in range(n_chunks):
        part = idx[k * CHUNK:(k + 1) * CHUNK]
        key = f"{name}#{k}"
        got = store.get(key) if store.has(key) else None
        if got is None or got["indices"] != part.tolist():   # earlier stages changed: not this piece
            t0 = time.perf_counter()
            x_adv, params = fn(x[part], y[part])
            correct = predict(purifier, classifier, x_adv, bs) == y[part]
            got = {"indices": part.tolist(), "correct": pack_bits(correct),
                   "seconds": time.perf_counter() - t0, "params": params}
            store.put(key, got)
            if verbose and n_chunks > 1:
                print(f"[robustness] {name}: chunk {k + 1}/{n_chunks} done ({got['seconds']:.1f} s)")
        parts.append(got)
    correct = np.concatenate([unpack_bits(p["correct"]) for p in parts]) if parts else np.zeros(0, bool)
    params = {"cascade": True, "pool": len(base), "attacked": len(idx)}
    per_restart = [p["params"].get("accuracy_per_restart") for p in parts]
    if per_restart and all(per_restart):   # weighted by chunk size: the stage's own curve
        sizes = np.array([len(p["indices"]) for p in parts], float)
        params["accuracy_per_restart"] = [float(v) for v in (np.array(per_restart).T @ sizes) / sizes.sum()]
    pool_text = "images" if pool is None else f"first {len(base)} images"
    return {"attack": f"{attack} (cascade: the {len(idx)} of the {pool_text} still robust)",
            "threat_model": threat, "correct": pack_bits(correct), "indices": idx.tolist(),
            "seconds": float(sum(p["seconds"] for p in parts)), "params": params}

"""Adversarial datasets: generated once, cached on disk, resumable, and combined into composites.

:func:`adversarial_set` attacks ``x`` in chunks and stores each finished chunk immediately
(compressed ``.npz``), so an interrupted generation (kernel restart, Ctrl-C) continues where it
stopped. A JSON file beside the arrays records what made them: attack and full parameters,
dataset and split, a digest of the full content of the clean images and labels, a digest of
the model's weights, seed, chunk/batch sizes and library versions (the *identity*, which must
match for the cache to be reused; the folder is named by its :func:`advlab.io.cache.cache_key`,
so a copy of ``x`` finds the set and other images of the same name never do), plus the results
(success rate, accuracies, mean/max L-inf and L2 norms, seconds). Every array file's SHA-256 is
recorded, so a corrupted or truncated file is detected (and regenerated, or
:class:`CacheCorrupt` raised with ``strict=True``). Files are written atomically and a set is
made under a file lock: two processes asking for the same set attack once, the second waits
and loads it.

:func:`composite` is the papers' versatile training set D = U D_i: the union of several
attacks' sets, remembering which attack made each example.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

FORMAT = 2          # 2: keyed by advlab.io.cache (full data digest, weights digest)


class CacheCorrupt(RuntimeError):
    """A cached adversarial set exists but its files fail their checksum or cannot be read."""


@dataclass(frozen=True)
class AdversarialSet:
    """``x_adv`` for clean ``x`` (labels ``y``) made by ``attack``, with its metadata."""

    attack: str
    x_adv: np.ndarray
    x: np.ndarray
    y: np.ndarray
    params: dict
    meta: dict = field(repr=False)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.y)


class Composite(NamedTuple):
    """The union of several adversarial sets; ``attack[i]`` names the attack of example ``i``."""

    x_adv: np.ndarray
    x_clean: np.ndarray
    y: np.ndarray
    attack: np.ndarray


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_versions() -> dict:
    """Versions of the libraries an adversarial set depends on (part of its identity)."""
    from advlab.io.provenance import package_versions

    return {k: v for k, v in package_versions().items() if k != "advlab"}


def _write_json(path: Path, obj) -> None:
    from advlab.io.cache import save_json_atomic

    save_json_atomic(path, obj, sort_keys=True)


def _save_npz(path: Path, **arrays) -> str:
    from advlab.io.cache import save_npz_atomic

    return _file_sha(save_npz_atomic(path, **arrays))


def _load_npz(path: Path, sha: str, key: str) -> np.ndarray:
    if not path.is_file():
        raise CacheCorrupt(f"{path} is missing.")
    if _file_sha(path) != sha:
        raise CacheCorrupt(f"{path} fails its SHA-256 check (truncated or modified).")
    try:
        with np.load(path) as f:
            return f[key]
    except Exception as err:
        raise CacheCorrupt(f"{path} cannot be read ({err}).") from err


def adversarial_set(dataset: str, split: str, attack: str, model, x, y, *, preset: str = "paper",
                    cfg=None, cache: bool = True, chunk_size: int = 512, batch_size: int = 128,
                    seed: int = 0, progress: bool = True, strict: bool = False,
                    folder: str | Path | None = None, verbose: bool = True, only_cached: bool = False,
                    **params) -> AdversarialSet | None:
    """Attack ``x`` with ``attack`` (defaults of ``preset``/``cfg`` + ``params``), cached on disk.

    ``dataset``/``split`` name the data in the metadata and the file name. With ``cache=False``
    nothing is read or written. The cache folder is ``cache_dir("adversarial")`` (or ``folder``).
    ``only_cached=True`` returns the finished cached set, or ``None`` without attacking.
    """
    from advlab import attacks as A
    from advlab.attacks.validation import check_name, check_params, check_inputs
    from advlab.io.cache import array_digest, cache_key, cache_lock, weights_digest

    name = check_name(attack, tuple(A.REGISTRY))
    merged = A.default_params(name, preset, cfg=cfg)
    merged.update(check_params(name, dict(params), allowed=A.REGISTRY[name].defaults))
    x, y = check_inputs(model, x, y)
    if y is None:
        raise ValueError("adversarial_set needs the true labels y (the set stores them).")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    identity = {"format": FORMAT, "attack": name, "params": merged, "dataset": str(dataset),
                "split": str(split), "n": int(len(x)), "data_digest": array_digest(x, y),
                "model_fingerprint": weights_digest(model),
                "seed": int(seed), "chunk_size": int(chunk_size), "batch_size": int(batch_size),
                "versions": library_versions()}
    identity = json.loads(json.dumps(identity))  # normalise (tuples -> lists, numpy -> python)
    key = cache_key(**identity)
    n_chunks = -(-len(x) // chunk_size)

    def attack_chunk(k):
        sl = slice(k * chunk_size, (k + 1) * chunk_size)
        return A.attack(name, model, x[sl], y[sl], batch_size=batch_size, progress=progress,
                        seed=seed * 1_000_003 + k, **merged)

    def log(msg):
        if verbose:
            print(f"[advlab.attacks] {msg}")

    t0 = time.perf_counter()
    if not cache:
        x_adv = np.concatenate([attack_chunk(k) for k in range(n_chunks)]) if n_chunks else x.copy()
        return _finish(name, x_adv, x, y, merged, identity, model, time.perf_counter() - t0, None, None)

    from advlab.io.paths import cache_dir

    root = Path(folder) if folder is not None else cache_dir("adversarial")
    path = root / f"{dataset}_{split}_{name}_{key}"
    meta_path = path / "meta.json"
    quiet = lambda msg: None  # noqa: E731  (the first look, without the lock, reports nothing)

    def finished(report, strict_now):
        """``(set, meta)``: the finished set, or ``None`` and the resumable metadata (or None)."""
        meta = None
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError:
                meta = None
                _corrupt(f"{meta_path} is not valid JSON", strict_now, report)
            if meta is not None and meta.get("identity") != identity:
                report(f"cache {path.name}: metadata does not match this request; regenerating")
                meta = None
        if meta is not None and meta.get("complete"):
            try:
                x_adv = _load_npz(path / "x_adv.npz", meta["files"]["x_adv.npz"], "x_adv")
                if x_adv.shape != x.shape:
                    raise CacheCorrupt(f"{path / 'x_adv.npz'} holds shape {x_adv.shape}, expected {x.shape}.")
                return AdversarialSet(name, x_adv, x, y, merged, meta, path), meta
            except CacheCorrupt as err:
                _corrupt(str(err), strict_now, report)
                meta = None
        return None, meta

    def generate(meta) -> AdversarialSet:
        """Attack the chunks not in ``path`` yet (resuming ``meta``); write the finished set."""
        if meta is None:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            meta = {"identity": identity, "complete": False, "files": {}, "seconds": 0.0}
            _write_json(meta_path, meta)

        done = sum(1 for f in meta["files"] if f.startswith("chunk_"))
        if done:
            log(f"resuming {name}: {done}/{n_chunks} chunks already done in {path.name}")
        chunks = []
        for k in range(n_chunks):
            fname = f"chunk_{k:05d}.npz"
            if fname in meta["files"]:
                try:
                    chunks.append(_load_npz(path / fname, meta["files"][fname], "x_adv"))
                    continue
                except CacheCorrupt as err:
                    _corrupt(str(err), strict, log)
            tc = time.perf_counter()
            adv = attack_chunk(k)
            meta["files"][fname] = _save_npz(path / fname, x_adv=adv)
            meta["seconds"] = meta.get("seconds", 0.0) + time.perf_counter() - tc
            _write_json(meta_path, meta)
            chunks.append(adv)
        x_adv = np.concatenate(chunks) if chunks else x.copy()
        out = _finish(name, x_adv, x, y, merged, identity, model, meta["seconds"], path, meta)
        meta["files"] = {"x_adv.npz": _save_npz(path / "x_adv.npz", x_adv=x_adv)}
        meta.update(complete=True, results=out.meta["results"])
        _write_json(meta_path, meta)
        for k in range(n_chunks):
            (path / f"chunk_{k:05d}.npz").unlink(missing_ok=True)
        log(f"{name} on {len(x)} {dataset}/{split} images: success rate "
            f"{out.meta['results']['success_rate']:.1%}, {meta['seconds']:.1f} s, cached in {path}")
        return AdversarialSet(name, x_adv, x, y, merged, meta, path)

    found, _ = finished(quiet, False)
    if found is None and not only_cached:
        with cache_lock(path):
            found, meta = finished(log, strict)      # another process may have made it meanwhile
            if found is None:
                return generate(meta)
    if found is not None:
        log(f"loaded {name} set from cache {path.name} "
            f"(success rate {found.meta['results']['success_rate']:.1%})")
    return found


def _corrupt(message: str, strict: bool, log) -> None:
    if strict:
        raise CacheCorrupt(message + " Delete the folder or call with strict=False to regenerate.")
    log(f"CORRUPT CACHE: {message}; regenerating the affected part")


def _finish(name, x_adv, x, y, params, identity, model, seconds, path, meta) -> AdversarialSet:
    from advlab import attacks as A

    results = A.evaluate(model, x, x_adv, y) if len(x) else {}
    results["seconds"] = float(seconds)
    results["seconds_per_1000"] = float(seconds) / max(len(x), 1) * 1000
    meta = dict(meta or {"identity": identity})
    meta["results"] = results
    return AdversarialSet(name, x_adv, x, y, params, meta, path)


def composite(sets, shuffle: bool = False, seed: int = 0, per_attack: int | None = None) -> Composite:
    """The union D = U D_i of adversarial sets (a list of :class:`AdversarialSet`, or a dict
    name -> set / ``(x_adv, x_clean, y)`` tuple). ``per_attack`` keeps the first k of each;
    ``shuffle`` mixes the attacks (seeded). Returns ``Composite(x_adv, x_clean, y, attack)``."""
    items: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    pairs = sets.items() if isinstance(sets, dict) else [(None, s) for s in sets]
    for label, s in pairs:
        if isinstance(s, AdversarialSet):
            items.append((label or s.attack, s.x_adv, s.x, s.y))
        elif isinstance(s, Sequence) and len(s) == 3 and label is not None:
            items.append((label, *(np.asarray(a) for a in s)))
        else:
            raise TypeError("composite() takes AdversarialSet objects, or a dict mapping attack name "
                            f"to an AdversarialSet or an (x_adv, x_clean, y) tuple; got {type(s).__name__}.")
    if not items:
        raise ValueError("composite() needs at least one adversarial set.")
    shapes = {a[1].shape[1:] for a in items}
    if len(shapes) != 1:
        raise ValueError(f"All sets must hold images of one shape; got {sorted(map(str, shapes))}.")
    for label, xa, xc, yy in items:
        if not (len(xa) == len(xc) == len(yy)):
            raise ValueError(f"Set {label!r}: x_adv, x_clean and y lengths differ "
                             f"({len(xa)}, {len(xc)}, {len(yy)}).")
    if per_attack is not None:
        items = [(lab, xa[:per_attack], xc[:per_attack], yy[:per_attack]) for lab, xa, xc, yy in items]
    x_adv = np.concatenate([i[1] for i in items]).astype(np.float32)
    x_clean = np.concatenate([i[2] for i in items]).astype(np.float32)
    y = np.concatenate([np.asarray(i[3]).reshape(-1) for i in items]).astype(np.int64)
    names = np.concatenate([np.full(len(i[1]), i[0]) for i in items]).astype(str)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(y))
        x_adv, x_clean, y, names = x_adv[order], x_clean[order], y[order], names[order]
    return Composite(x_adv, x_clean, y, names)

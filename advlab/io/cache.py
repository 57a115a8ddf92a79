"""One cache key and one write path for every cache and resume file in advlab.

Keys: a cache entry is named by what it is made of, never by a name or an object's identity.
:func:`cache_key` hashes its keyword parts as canonical JSON; the parts are plain settings or
the digests below, so two arrays with the same content (a copy) share an entry and two arrays
with the same name but other content never do.

* :func:`array_digest` - the full bytes of one or more arrays, with dtype and shape;
* :func:`weights_digest` - a Keras model's weights (and input/output shapes), not its name;
* :func:`config_digest` - a config object (dataclass, ``to_dict()``, mapping) as canonical JSON;
* :func:`purifier_digest` - a purifier's weights, or its settings when it has none.

Writes: :func:`atomic_write` writes into a uniquely named temporary file in the entry's own
folder (``tempfile.mkstemp``) and renames it over the entry (``os.replace``), so a reader sees
the old file or the new one, never half of one, and two writers never share a temporary file.
:func:`save_json_atomic`, :func:`save_text_atomic`, :func:`save_npz_atomic` and
:func:`save_model_atomic` are the usual cases. :func:`cache_lock` is a file lock per entry
(the ``filelock`` package; lock files in ``cache_dir("locks")``) and :func:`get_or_compute` the
pattern built on it: two processes asking for the same entry compute it once; the second waits
for the lock, then loads it.

Changing how a key is made changes every entry's name: caches written by an older advlab are
not found and are recomputed (their files can be deleted).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import numpy as np

T = TypeVar("T")
DIGEST_SIZE = 8          # bytes: 16 hex digits


# ----------------------------------------------------------------------------- keys
def plain(obj):
    """``obj`` as JSON-able plain data with a stable form (tuples -> lists, numpy -> Python,
    arrays -> their digest); ``TypeError`` for anything else."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if hasattr(obj, "to_dict") and callable(obj.to_dict) and not isinstance(obj, Mapping):
        return plain(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [plain(v) for v in obj]
        return sorted(items, key=repr) if isinstance(obj, (set, frozenset)) else items
    if isinstance(obj, np.ndarray):
        return {"array": array_digest(obj)}
    if isinstance(obj, np.generic):
        return plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"Cannot make a cache key from a {type(obj).__name__}; pass plain settings, "
                    f"arrays or the digest of the object (array_digest, weights_digest, config_digest).")


def canonical_json(obj) -> str:
    """``obj`` as JSON with sorted keys and no spaces: equal settings give equal text."""
    return json.dumps(plain(obj), sort_keys=True, separators=(",", ":"))


def _hex(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).hexdigest()


def config_digest(obj) -> str:
    """Digest of a config object (dataclass, object with ``to_dict()``, mapping, plain data)."""
    return _hex(canonical_json(obj).encode())


def cache_key(**parts) -> str:
    """The key of one cache entry: a digest of its named ``parts`` (settings and digests)."""
    if not parts:
        raise ValueError("cache_key() needs at least one keyword part, e.g. cache_key(kind='x', data=...).")
    return config_digest(parts)


def array_digest(*arrays) -> str:
    """Digest of the full content of ``arrays`` (dtype, shape and every byte; order matters)."""
    if not arrays:
        raise ValueError("array_digest() needs at least one array.")
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def row_digests(*arrays) -> list[str]:
    """One :func:`array_digest` per row (first axis) of ``arrays`` taken together, e.g. of
    ``(x, y)``: finds the rows of one dataset inside another, whatever the slice or order."""
    n = {len(a) for a in arrays}
    if len(n) != 1:
        raise ValueError(f"row_digests() needs arrays of one length, got {sorted(n)}.")
    return [array_digest(*(a[i] for a in arrays)) for i in range(n.pop())]


def weights_digest(model) -> str:
    """Digest of a Keras model's input/output shapes and weights (not its name), and of what its
    layers compute beyond their weights: a layer with a ``cache_identity()`` method (e.g. the
    purifier + classifier layer of :func:`advlab.evaluation.adaptive.defended_model`, whose
    purifier Keras does not track) adds that, so a defended model never shares the bare
    classifier's cached attacks."""
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    h.update(f"{getattr(model, 'input_shape', None)}|{getattr(model, 'output_shape', None)}".encode())
    for w in model.weights:
        h.update(array_digest(np.asarray(w)).encode())
    for identity in _layer_identities(model):
        h.update(identity.encode())
    return h.hexdigest()


def _layer_identities(model) -> list[str]:
    out = []
    for layer in getattr(model, "layers", ()) or ():
        identity = getattr(layer, "cache_identity", None)
        if callable(identity):
            out.append(identity())
        out += _layer_identities(layer)
    return out


def purifier_digest(purifier) -> str:
    """A purifier's content: its Keras model's weights (learned purifiers), else its class and
    settings (classical ones), so two purifiers of one name never share cached results."""
    model = getattr(purifier, "model", None)
    if model is not None and hasattr(model, "weights"):
        return weights_digest(model)
    return config_digest(_settings(purifier, depth=2))


def _settings(obj, depth: int) -> dict:
    """Class name and plain public attributes of ``obj``, and of its attributes that are objects
    themselves (e.g. the ART preprocessor inside a classical purifier), ``depth`` levels deep."""
    out = {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    for k, v in sorted(vars(obj).items()) if hasattr(obj, "__dict__") else ():
        if k.startswith("_"):
            continue
        try:
            out[k] = plain(v)
        except TypeError:
            if depth > 1 and hasattr(v, "__dict__"):
                out[k] = _settings(v, depth - 1)
    return out


# ----------------------------------------------------------------------------- writes
@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask (read once: reading it means setting it for a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Write ``path`` all at once: ``writer(tmp)`` writes a uniquely named temporary file in
    ``path``'s folder (same suffix, so Keras and NumPy accept it), which then replaces ``path``.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        writer(tmp)
        if tmp.is_file():      # flush to disk before the rename makes it visible
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())     # mkstemp makes 0600; a cache is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_json_atomic(path: str | Path, obj, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """``obj`` (plain JSON data) as JSON, written atomically."""
    return save_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def save_npz_atomic(path: str | Path, **arrays) -> Path:
    """``np.savez_compressed(path, **arrays)``, written atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"Array files end in .npz, got {path.name!r}.")
    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def save_model_atomic(model, path: str | Path) -> Path:
    """``model.save(path)`` (a ``.keras`` file), written atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Keras model files end in .keras, got {path.name!r}.")
    return atomic_write(path, lambda tmp: model.save(tmp))


# ----------------------------------------------------------------------------- locks
def lock_path(path: str | Path) -> Path:
    """The lock file of cache entry ``path`` (a file or a folder). Locks live together in
    ``cache_dir("locks")``, named by the entry's absolute path, so the folders users look at hold
    only their entries; processes share a lock when they share ``ADVLAB_CACHE_DIR``."""
    from advlab.io.paths import cache_dir

    path = Path(path).resolve()
    return cache_dir("locks") / f"{path.name}.{_hex(str(path.parent).encode())}.lock"


@contextlib.contextmanager
def cache_lock(path: str | Path, timeout: float = -1):
    """A file lock for cache entry ``path``: ``with cache_lock(path): ...``.

    One lock object per path and process, re-entrant, so a job that locks an entry and calls
    another that locks it again does not wait for itself. ``timeout`` seconds (default: wait as
    long as it takes, e.g. while another process trains a model) then ``filelock.Timeout``.
    The operating system releases the lock when its process dies, even by ``kill -9``.
    """
    from filelock import FileLock

    lock = lock_path(path)
    with FileLock(str(lock), is_singleton=True).acquire(timeout=timeout):
        yield lock


def get_or_compute(path: str | Path, compute: Callable[[], T], load: Callable[[], T | None], *,
                   refresh: bool = False, timeout: float = -1) -> T:
    """The cache entry at ``path``: ``load()`` if it is there, else ``compute()`` once.

    ``load()`` returns the entry or ``None`` when it is missing or unusable; ``compute()`` makes
    the entry, writes it (with the atomic helpers above) and returns it. Computing happens under
    :func:`cache_lock`, and ``load()`` is tried again once the lock is held, so a second process
    that asked while the first was computing waits and then loads the finished entry.
    ``refresh=True`` computes anew (still under the lock).
    """
    if not refresh:
        found = load()
        if found is not None:
            return found
    with cache_lock(path, timeout=timeout):
        if not refresh:
            found = load()
            if found is not None:
                return found
        return compute()


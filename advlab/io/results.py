"""Save tables and figures beside each other so every table can be regenerated."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from advlab.io.paths import figures_dir


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def output_path(name: str, suffix: str, folder: str | Path | None = None) -> Path:
    """``folder/name`` with ``suffix`` (default folder: figures/), the folder created."""
    folder = Path(folder) if folder is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(name).name
    return folder / (name if name.endswith(suffix) else name + suffix)


def save_json(obj, name: str, folder: str | Path | None = None, *, config=None, started=None) -> Path:
    """Write ``obj`` (numpy values allowed) as pretty JSON into ``folder`` (default figures/).

    The file carries one more key, ``provenance`` (:func:`advlab.io.provenance.provenance`):
    command line, digest of ``config`` (the run's resolved config, if the caller has one),
    git commit, package versions, device, and start (``started``, default: when the process
    started) and end time. A list is saved as ``{"rows": [...], "provenance": {...}}``.
    :func:`load_json` returns ``obj`` as it was given, without the block.
    """
    from advlab.io.cache import save_text_atomic
    from advlab.io.provenance import provenance

    data = _jsonable(obj)
    block = provenance(config=config, started=started)
    if isinstance(data, dict):
        if "provenance" in data:
            raise ValueError("save_json adds the key 'provenance' itself; rename that key of obj.")
        data = {**data, "provenance": block}
    else:
        data = {"rows": data, "provenance": {**block, "wrapped": "rows"}}
    path = output_path(name, ".json", folder)
    return save_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def load_json(name: str, folder: str | Path | None = None):
    """What :func:`save_json` was given (its ``provenance`` block left out; see
    :func:`advlab.io.provenance.read_provenance`)."""
    data = json.loads(output_path(name, ".json", folder).read_text())
    if isinstance(data, dict) and isinstance(data.get("provenance"), dict):
        block = data.pop("provenance")
        if block.get("wrapped") == "rows" and set(data) == {"rows"}:
            return data["rows"]
    return data


def committed(name: str):
    """A full-scale result committed in the checkout's ``figures/full/`` (JSON parsed, CSV as a
    list of row dicts), or ``None`` with a note where there is none (an installed copy has no
    checkout): what the notebooks print beside their smoke-scale numbers."""
    from advlab.io.paths import repo_root

    root = repo_root()
    path = root / "figures" / "full" / name if root is not None else None
    if path is None or not path.is_file():
        print(f"{name}: not found (full-scale results live in figures/full/ of a checkout)")
        return None
    if path.suffix == ".json":
        return load_json(path.stem, path.parent)
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def save_csv(rows: Iterable[Mapping], name: str, folder: str | Path | None = None) -> Path:
    """Write a list of dicts as CSV (columns in first-seen order)."""
    rows = [dict(_jsonable(r)) for r in rows]
    path = output_path(name, ".csv", folder)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    from advlab.io.cache import atomic_write

    return atomic_write(path, write)

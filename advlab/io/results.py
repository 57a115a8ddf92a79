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


def save_json(obj, name: str, folder: str | Path | None = None) -> Path:
    """Write ``obj`` (numpy values allowed) as pretty JSON into ``folder`` (default figures/)."""
    path = output_path(name, ".json", folder)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def load_json(name: str, folder: str | Path | None = None):
    return json.loads(output_path(name, ".json", folder).read_text())


def save_csv(rows: Iterable[Mapping], name: str, folder: str | Path | None = None) -> Path:
    """Write a list of dicts as CSV (columns in first-seen order)."""
    rows = [dict(_jsonable(r)) for r in rows]
    path = output_path(name, ".csv", folder)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path

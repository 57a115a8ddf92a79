"""Resumable experiment state: finished cells are written to a JSON checkpoint as they complete.

Full-scale tables take hours on a CPU; if a run is interrupted, rerunning the same command
loads the checkpoint and computes only the missing cells. A checkpoint remembers a
*fingerprint* of the run (rows, columns, number of images, ...); a checkpoint from a
different run is not reused (a message says so) and is overwritten. The file's name is chosen
by content (:meth:`advlab.experiments.pipeline.Lab.content_key`), and every write is atomic
(:func:`advlab.io.cache.save_json_atomic`).
"""
from __future__ import annotations

import json
from pathlib import Path


class Checkpoint:
    """A flat ``{key: value}`` store saved after every :meth:`put` (no-op when ``path`` is None)."""

    def __init__(self, path: str | Path | None, fingerprint: dict, verbose: bool = True):
        from advlab.io.results import _jsonable

        self.path = Path(path) if path is not None else None
        self.fingerprint = _jsonable(fingerprint)
        self.cells: dict[str, object] = {}
        if self.path is not None and self.path.is_file():
            saved = json.loads(self.path.read_text())
            if saved.get("fingerprint") == self.fingerprint:
                self.cells = dict(saved.get("cells", {}))
                if verbose and self.cells:
                    print(f"Resuming from {self.path}: {len(self.cells)} finished cell(s).")
            elif verbose:
                print(f"Checkpoint {self.path} belongs to a different run; starting afresh.")

    @staticmethod
    def _key(parts) -> str:
        return "|".join(str(p) for p in parts)

    def has(self, *key) -> bool:
        return self._key(key) in self.cells

    def get(self, *key):
        return self.cells[self._key(key)]

    def put(self, *key_and_value) -> None:
        *key, value = key_and_value
        self.cells[self._key(key)] = value
        if self.path is not None:
            from advlab.io.cache import save_json_atomic
            from advlab.io.results import _jsonable

            save_json_atomic(self.path, _jsonable({"fingerprint": self.fingerprint, "cells": self.cells}))

    def __len__(self) -> int:
        return len(self.cells)


def default_attack_fn(name: str, model, x, y):
    """``advlab.attacks.attack`` with its default parameters."""
    from advlab import attacks

    return attacks.attack(name, model, x, y, progress=False)


def default_accuracy_fn(model, x, y) -> float:
    from advlab import classifiers

    return float(classifiers.accuracy(model, x, y))


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar (auto: widget in notebooks, text in terminals), or a silent stand-in."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    # leave=True: a closed notebook widget bar that is removed breaks on page reload ("model not found")
    return tqdm(total=total, desc=desc, leave=True)

"""Normalise committed notebooks: python3 kernelspec, no outputs, no execution counts,
no authoring-tool metadata. Run before committing notebooks:

    python scripts/normalize_notebooks.py notebooks/*.ipynb
"""
from __future__ import annotations

import sys

import nbformat

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def normalize(path: str) -> bool:
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    after = nbformat.writes(nb)
    if after != before:
        nbformat.write(nb, path)
    return after != before


if __name__ == "__main__":
    changed = [p for p in sys.argv[1:] if normalize(p)]
    print(f"normalised {len(changed)} of {len(sys.argv) - 1} notebooks")

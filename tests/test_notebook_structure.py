"""Every notebook is a course unit: learning goals, run times, a parameters cell, exercises
with collapsed solutions and checks, no outputs, figures only through advlab.viz.savefig."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist_and_are_numbered():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), "two notebooks share a number"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_a_course_unit(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    cells = nb.cells
    intro = cells[0]
    assert intro.cell_type == "markdown" and intro.source.startswith(f"# {path.name[:2]} ·")
    assert "## What you will learn" in intro.source
    assert re.search(r"\*\*Run time:\*\*.*smoke.*full", intro.source), "run time at each scale"

    code = [c for c in cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "SCALE" in params[0].source

    heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source]
    assert heads, "notebook ends with an Exercises section"
    tail = cells[heads[0]:]
    solutions = [c for c in tail if "solution" in c.metadata.get("tags", [])]
    checks = [c for c in tail if "check" in c.metadata.get("tags", [])]
    assert 2 <= len(solutions) <= 4, f"{len(solutions)} exercises"
    assert len(checks) == len(solutions)
    for sol in solutions:
        assert sol.metadata.get("jupyter", {}).get("source_hidden") is True, "collapse solutions"
    for chk in checks:
        assert "assert" in chk.source

    for c in code:
        src = c.source
        assert not re.search(r"\.savefig\(", src) or "viz.savefig" in src, "save figures via advlab.viz.savefig"
        assert "import *" not in src
        assert not re.search(r"keras\.(Sequential|layers\.)", src) or path.name.startswith("02"), \
            "notebooks build models through advlab, not inline"

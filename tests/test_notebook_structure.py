"""Every notebook is a course unit: learning goals, run times, a parameters cell, exercises
with collapsed solutions and checks, no outputs, figures only through advlab.viz.savefig."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edition)


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

    for c in code:  # a figure cell does not print savefig's return value (a PosixPath)
        last = c.source.rstrip().splitlines()[-1] if c.source.strip() else ""
        assert not (last.startswith("viz.savefig(") and not last.endswith(";")), \
            f"end the figure cell with ';': {last}"


CHECK_CANNOT_FAIL = re.compile(r"assert\s+(-?\s*100|0(\.0)?)\s*<=?\s*\w+\s*<=?\s*(100|1(\.0)?)\b")

@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_unit_is_gradable_and_ends_with_questions_and_reading(path):
    nb = nbformat.read(path, as_version=4)
    assert nbformat.writes(edition.mark(nb, path.stem)) == nbformat.writes(nb), \
        f"nbgrader metadata out of date: python scripts/student_edition.py --mark {path.relative_to(ROOT)}"
    head = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    for cell in nb.cells[head:]:
        r = edition.role(cell)
        if r == "solution":
            assert edition.BEGIN in cell.source and edition.END in cell.source, "mark the answer"
        if r == "check":
            assert not CHECK_CANNOT_FAIL.search(cell.source), "a range check cannot fail"
    answers = [c for c in nb.cells if edition.role(c) == "answers"]
    assert len(answers) == 1 and answers[0].cell_type == "markdown"
    assert answers[0].metadata.get("jupyter", {}).get("source_hidden") is True
    questions = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Questionnaire" in c.source)
    assert nb.cells[questions + 1] is answers[0], "the answers follow the questionnaire"
    assert len(re.findall(r"^\d+\. ", nb.cells[questions].source, re.M)) >= 5, "at least 5 questions"
    reading = [c for c in nb.cells if c.cell_type == "markdown" and "## Further reading" in c.source]
    assert reading and len(re.findall(r"arxiv\.org/abs/\d{4}\.\d{4,5}", reading[0].source)) >= 3


def test_student_edition_stubs_every_solution_and_drops_the_answers(tmp_path):
    before = {p: p.read_text() for p in NOTEBOOKS}
    edition.main([str(p) for p in NOTEBOOKS] + ["--out", str(tmp_path)])
    for path in NOTEBOOKS:
        teacher = nbformat.read(path, as_version=4)
        student = nbformat.read(tmp_path / path.name, as_version=4)
        roles = [edition.role(c) for c in student.cells]
        assert "answers" not in roles
        assert roles.count("solution") == roles.count("check") == [edition.role(c) for c in teacher.cells].count("check")
        for cell in student.cells:
            if edition.role(cell) == "solution":
                assert "### BEGIN SOLUTION" not in cell.source
                assert "# YOUR CODE HERE" in cell.source and "raise NotImplementedError()" in cell.source
                assert not cell.metadata.get("jupyter", {}).get("source_hidden")
        assert path.read_text() == before[path], "the instructor edition is not modified"
        # up to the first exercise the student runs the instructor's cells, which
        # tests/test_exercises.py executes (and then every stub, solution and check after them)
        head = lambda nb: [(c.cell_type, c.source) for c in nb.cells[:next(  # noqa: E731
            i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source)]]
        assert head(student) == head(teacher)

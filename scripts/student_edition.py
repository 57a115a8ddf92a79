"""Write the student edition of the course: every solution replaced by nbgrader's stub.

    python scripts/student_edition.py [--out build/student] [notebooks/01_attacks.ipynb ...]
    python scripts/student_edition.py --mark notebooks/*.ipynb      # (re)write nbgrader metadata

``notebooks/`` is the instructor edition. Its exercise cells are tagged, and the tags are the
one source of truth:

* ``solution`` (code): the answer, between ``### BEGIN SOLUTION`` and ``### END SOLUTION``.
  The student edition replaces what lies between the markers with ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()`` (nbgrader's ``ClearSolutions``; a cell without markers is
  replaced whole) and shows the cell, which the instructor edition collapses.
* ``check`` (code): asserts the answer against a reference it computes itself; kept as is,
  so a student runs it to see whether the answer is right.
* ``answers`` (markdown): the questionnaire's answers; dropped from the student edition.

``--mark`` writes the matching ``nbgrader`` cell metadata (solution cells: ungraded answer
cells; checks: locked autograded tests worth 1 point; answers: a manually graded answer cell,
which ``nbgrader generate_assignment`` empties to "YOUR ANSWER HERE"), so an instructor can also
release and grade the course with nbgrader. This script needs only nbformat, not advlab.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
ROLES = ("solution", "check", "answers")


def role(cell) -> str | None:
    """The cell's exercise role (``solution``, ``check``, ``answers``) from its tags, or None."""
    found = [t for t in cell.metadata.get("tags", []) if t in ROLES]
    if len(found) > 1:
        raise ValueError(f"a cell has more than one role tag {found}; keep one of {ROLES}")
    return found[0] if found else None


def stub_source(source: str) -> str:
    """``source`` with every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block replaced by
    the stub, indented like the BEGIN marker; the whole cell when it has no markers."""
    lines = source.splitlines()
    if not any(line.strip() == BEGIN for line in lines):
        return STUB
    out, inside = [], False
    for line in lines:
        if line.strip() == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN!r} in:\n{source}")
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + s for s in STUB.splitlines()]
        elif line.strip() == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r} in:\n{source}")
    return "\n".join(out)


def grade_id(path_stem: str, cell_role: str, number: int) -> str:
    return f"{path_stem[:2]}_ex{number}_{cell_role}"


def nbgrader_metadata(cell_role: str, gid: str) -> dict:
    """nbgrader's cell metadata (schema 3) for one role. A check is an autograded test; the
    answers become a manually graded answer cell (nbgrader wants markdown answers graded)."""
    locked = cell_role == "check"
    graded = cell_role in ("check", "answers")
    meta = {"grade": graded, "grade_id": gid, "locked": locked, "schema_version": 3,
            "solution": not locked, "task": False}
    if graded:
        meta["points"] = 1
    return meta


def mark(nb, stem: str):
    """Return a copy of ``nb`` whose role-tagged cells carry nbgrader metadata. Solutions and
    checks are numbered in order (the k-th check grades the k-th solution)."""
    nb = copy.deepcopy(nb)
    counts = dict.fromkeys(ROLES, 0)
    for cell in nb.cells:
        r = role(cell)
        if r is None:
            cell.metadata.pop("nbgrader", None)
            continue
        counts[r] += 1
        cell.metadata["nbgrader"] = nbgrader_metadata(r, grade_id(stem, r, counts[r]))
    return nb


def student(nb):
    """The student edition of one instructor notebook (a new object; ``nb`` is not changed)."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        r = role(cell)
        if r == "answers":
            continue
        if r == "solution":
            cell.source = stub_source(cell.source)
            cell.metadata.get("jupyter", {}).pop("source_hidden", None)
            if not cell.metadata.get("jupyter", True):
                cell.metadata.pop("jupyter")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    nb.cells = cells
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="instructor notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student")
    parser.add_argument("--mark", action="store_true",
                        help="write nbgrader metadata into the given notebooks instead")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.mark:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            marked = mark(nb, path.stem)
            if nbformat.writes(marked) != nbformat.writes(nb):
                nbformat.write(marked, path)
                print(f"marked {path}")
        return 0
    if args.out.resolve() == (ROOT / "notebooks").resolve():
        raise SystemExit("--out must not be notebooks/: that is the instructor edition")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        edition = student(nb)
        nbformat.validate(edition)
        nbformat.write(edition, args.out / path.name)
        n = sum(role(c) == "solution" for c in nb.cells)
        print(f"{path.name}: {n} solutions stubbed")
    print(f"student edition in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

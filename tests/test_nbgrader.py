"""nbgrader accepts the instructor edition: ``nbgrader generate_assignment`` releases every
notebook, and its release has exactly the code cells of ``make student``'s edition (solutions
stubbed the same way, checks kept, locked and graded), with the questionnaire's answers emptied."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edition)


def test_generate_assignment_releases_what_make_student_writes(tmp_path):
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    course, unit = tmp_path / "course", "advlab"
    (course / "source" / unit).mkdir(parents=True)
    for path in notebooks:
        shutil.copy(path, course / "source" / unit / path.name)
    # nbgrader runs its database migrations with the `alembic` script of the same environment
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", unit,
                           f"--CourseDirectory.root={course}", "--force"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    student = tmp_path / "student"
    edition.main([str(p) for p in notebooks] + ["--out", str(student)])
    for path in notebooks:
        released = nbformat.read(course / "release" / unit / path.name, as_version=4)
        ours = nbformat.read(student / path.name, as_version=4)
        code = lambda nb: [c.source for c in nb.cells if c.cell_type == "code"]  # noqa: E731
        assert code(released) == code(ours), path.name
        checks = [c for c in released.cells if edition.role(c) == "check"]
        assert checks and all(c.metadata["nbgrader"]["locked"] and c.metadata["nbgrader"]["points"] == 1
                              for c in checks)
        answers = [c for c in released.cells if edition.role(c) == "answers"]
        assert len(answers) == 1 and answers[0].source.strip() == "YOUR ANSWER HERE"

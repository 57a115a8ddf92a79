"""Every notebook runs on Colab: its Colab cell is current, does nothing elsewhere, and on Colab
clones and installs the repository named in pyproject.toml; the README links each notebook."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("colab", ROOT / "scripts" / "colab.py")
colab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab)


def test_every_notebook_and_the_readme_are_current(capsys):
    assert colab.main(["--check"]) == 0, capsys.readouterr().out
    repo = colab.repository()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cell = nbformat.read(path, as_version=4).cells[1]
        assert cell.metadata["tags"] == ["colab"] and repo in cell.source
        assert f"[Colab]({colab.colab_link(repo, path.name)})" in (ROOT / "README.md").read_text()


def _cell():
    return nbformat.read(ROOT / "notebooks" / "01_attacks.ipynb", as_version=4).cells[1].source


def test_the_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    path = list(sys.path)
    exec(_cell(), {})
    assert calls == [] and sys.path == path


def test_on_colab_the_cell_clones_installs_and_imports_without_a_restart(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    exec(_cell(), {})
    assert calls[0][:2] == ["git", "clone"] and colab.repository() in calls[0] and calls[0][-1] == colab.CLONE
    assert calls[1][1:] == ["-m", "pip", "install", "--quiet", "-e", colab.CLONE]
    assert sys.path[0] == colab.CLONE
    exec(_cell(), {})  # run again (Run All twice): nothing more to do
    assert len(calls) == 2


def test_the_script_is_idempotent_and_names_what_is_stale(tmp_path, capsys):
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    nb_path = tmp_path / "notebooks" / "01_attacks.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.pop(1)  # the Colab cell lost
    nbformat.write(nb, nb_path)
    assert colab.main(["--check"], root=tmp_path) == 1
    assert "notebooks/01_attacks.ipynb" in capsys.readouterr().out
    assert colab.main([], root=tmp_path) == 0
    assert colab.main(["--check"], root=tmp_path) == 0
    assert nb_path.read_text() == (ROOT / "notebooks" / "01_attacks.ipynb").read_text()


def test_a_bad_repository_address_is_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[project.urls]\nRepository = "git@github.com:a/b"\n')
    with pytest.raises(ValueError, match="https://github.com/OWNER/NAME"):
        colab.repository(tmp_path)

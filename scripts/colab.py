"""Make every notebook runnable on Google Colab, and link each one from the README.

    python scripts/colab.py           # (re)write the Colab cell of every notebook and the README links
    python scripts/colab.py --check   # exit 1, naming what is out of date (tests/test_colab.py)

The repository comes from one place, ``[project.urls] Repository`` in pyproject.toml; a fork
changes that line and reruns this script. Each notebook's second cell (tagged ``colab``)
clones the repository and installs its dependencies when, and only when, it runs on Colab
(which ships TensorFlow), so the notebook can read the committed ``figures/full/`` results
there too. Everywhere else the cell does nothing. Needs only nbformat, not advlab.
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TAG = "colab"
CLONE = "/content/advlab"

CELL = '''\
# On Google Colab only: fetch the lab and install what it needs (elsewhere this does nothing).
import sys
if "google.colab" in sys.modules and "{clone}" not in sys.path:
    import os, subprocess
    if not os.path.isdir("{clone}"):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "{repo}", "{clone}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", "{clone}"], check=True)
    sys.path.insert(0, "{clone}")  # importable now, without restarting the runtime'''


def repository(root: Path = ROOT) -> str:
    """The GitHub address of the repository, from pyproject.toml."""
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    url = meta.get("urls", {}).get("Repository", "")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"pyproject.toml [project.urls] Repository must be https://github.com/OWNER/NAME, got {url!r}")
    return url


def colab_link(repo: str, notebook: str) -> str:
    return repo.replace("https://github.com/", "https://colab.research.google.com/github/") + \
        f"/blob/main/notebooks/{notebook}"


def cell_source(repo: str) -> str:
    return CELL.format(repo=repo, clone=CLONE)


def with_colab_cell(nb, repo: str):
    """``nb`` with its Colab cell (the second cell, after the title) present and current."""
    cells = [c for c in nb.cells if TAG not in c.metadata.get("tags", [])]
    cell = nbformat.v4.new_code_cell(cell_source(repo), metadata={"tags": [TAG]})
    cell.pop("id", None)
    old = next((c for c in nb.cells if TAG in c.metadata.get("tags", [])), None)
    if old is not None and "id" in old:
        cell["id"] = old["id"]  # keep the id, so a rerun changes nothing
    elif "id" in nb.cells[0]:
        cell["id"] = "colab-setup"
    nb.cells = cells[:1] + [cell] + cells[1:]
    return nb


def readme_with_links(text: str, repo: str, notebooks: list[str]) -> str:
    """The README with an "Open in Colab" column in the course table (one row per notebook)."""
    out, header = [], "| # | notebook | topic | run it on |"
    for line in text.splitlines():
        m = re.match(r"\| (\d\d) \| `(\d\d_[a-z0-9_]+\.ipynb)` \| (.*?) \|(?: \[Colab\]\(.*\) \|)?$", line)
        if m and m.group(2) in notebooks:
            line = f"| {m.group(1)} | `{m.group(2)}` | {m.group(3)} | [Colab]({colab_link(repo, m.group(2))}) |"
        elif line == "| # | notebook | topic |":
            line = header
        elif line == "|---|---|---|" and out and out[-1] == header:
            line = "|---|---|---|---|"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    repo = repository(root)
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        nb = with_colab_cell(nb, repo)
        if nbformat.writes(nb) != before:
            stale.append(path)
            if not args.check:
                nbformat.write(nb, path)
    readme = root / "README.md"
    text = readme.read_text()
    new = readme_with_links(text, repo, [p.name for p in paths])
    missing = [p.name for p in paths if colab_link(repo, p.name) not in new]
    if missing:
        raise SystemExit(f"README.md's course table has no row for {missing}: add one like "
                         "| 12 | `12_name.ipynb` | topic | and rerun")
    if new != text:
        stale.append(readme)
        if not args.check:
            readme.write_text(new)
    if stale:
        names = ", ".join(str(p.relative_to(root)) for p in stale)
        print(f"{'out of date' if args.check else 'rewrote'}: {names}"
              + (" (run: python scripts/colab.py)" if args.check else ""))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())

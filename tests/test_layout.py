"""The package's shape: the README's layout section names every module, imports form no circle,
modules stay short, and the top level stays small."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "advlab"
MAX_LINES = 300
TOP_LEVEL = {"__init__.py", "__main__.py", "config.py", "budgets.py", "cli", "io", "classifiers", "attacks",
             "purifiers", "training", "evaluation", "experiments", "viz"}


def modules() -> dict[str, Path]:
    """``{"advlab.io.data": path, "advlab.io": path/__init__.py, ...}`` for every module."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def layout_entries() -> set[str]:
    """Paths named in the README's layout tree, e.g. ``advlab/io/data.py``."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    tree = section.split("```", 2)[1]
    entries, stack = set(), []
    for line in tree.splitlines():
        m = re.match(r"^( *)([\w.]+/?|\S+\.py)(\s|$)", line)
        if not m:
            continue
        depth, name = len(m.group(1)) // 2, m.group(2)
        stack = stack[:depth] + [name]
        entries.add("".join(stack).rstrip("/"))
    return entries


def test_readme_layout_names_every_module_and_nothing_else():
    named = {e for e in layout_entries() if e.startswith("advlab/") and e.endswith(".py")}
    actual = {str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")}
    assert not actual - named, f"modules missing from README.md's Layout section: {sorted(actual - named)}"
    assert not named - actual, f"README.md's Layout names modules that do not exist: {sorted(named - actual)}"


def test_top_level_is_short():
    top = {p.name for p in PKG.iterdir() if p.name != "__pycache__" and (p.suffix == ".py" or p.is_dir())}
    top.discard("sample_data")
    assert top <= TOP_LEVEL, f"new top-level entries {sorted(top - TOP_LEVEL)}: put them in a role folder"


def import_edges() -> dict[str, set[str]]:
    """Module -> the advlab modules it imports anywhere in its body (function-level too)."""
    mods = modules()
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        package = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for n in names:
                # a package's __init__ importing its own submodules is how packages re-export
                if n in mods and n != m and not (p.name == "__init__.py" and n.startswith(m + ".")):
                    edges[m].add(n)
    return edges


def test_no_import_circle():
    edges = import_edges()

    def reaches(start, goal):
        seen, todo = set(), list(edges[start])
        while todo:
            n = todo.pop()
            if n == goal:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(edges[n])
        return False

    circles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not circles, f"import circles: {circles}"


def test_modules_stay_short_or_say_why():
    long = []
    for name, p in modules().items():
        text = p.read_text()
        n = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n > MAX_LINES and "longer than 300 lines because" not in doc.lower():
            long.append(f"{p.relative_to(ROOT)} ({n} lines)")
    assert not long, ("split these modules, or say at the top of the docstring why they are "
                      f"'longer than 300 lines because ...': {long}")

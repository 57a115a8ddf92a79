"""Provenance of saved results, and the ``figures/full/README.md`` written from it.

Every JSON that :func:`advlab.io.results.save_json` writes carries a ``provenance`` block
(:func:`provenance`): the command line, the digest of the run's resolved config, the git commit
of the checkout (and whether it had uncommitted changes), package versions, the device, and
when the job started and finished. No host name or user name is recorded.

``python -m advlab.io.provenance figures/full`` regenerates ``figures/full/README.md`` from those
blocks: one row per result file with its command, commit, date and config digest. Files written
before provenance existed are listed apart; the hand-written notes about them are kept in
``NOTES.md`` in the same folder, which the README includes as it is.
"""
from __future__ import annotations

import functools
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

PACKAGES = (("advlab", ("advlab",)), ("tensorflow", ("tensorflow", "tensorflow-cpu")),
            ("keras", ("keras",)), ("numpy", ("numpy",)), ("cleverhans", ("cleverhans",)),
            ("art", ("adversarial-robustness-toolbox",)))
FIELDS = ("command", "config_digest", "git", "versions", "device", "python", "started", "finished")
NOTES = "NOTES.md"
_IMPORTED_AT = time.time()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def process_start() -> float:
    """When this process started (seconds since the epoch); Linux reads ``/proc``, elsewhere
    the time advlab's provenance module was first imported."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])                  # field 22 of stat(5): start time, clock ticks after boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


def command_line() -> str:
    """The command that made this process (``python -m advlab train ...``), the notebook's name
    inside a Jupyter kernel when Jupyter says it, else ``"interactive"``."""
    argv = list(getattr(sys, "orig_argv", None) or sys.argv)
    if _in_kernel(argv):
        return os.environ.get("JPY_SESSION_NAME") or "interactive"
    if not argv or argv == [""] or argv[-1:] == ["-i"] or (len(argv) == 1 and sys.flags.interactive):
        return "interactive"
    argv[0] = Path(argv[0]).name
    return shlex.join(argv)


def _in_kernel(argv) -> bool:
    """A Jupyter kernel runs this process (not merely: something imported ipykernel)."""
    if any("ipykernel" in a for a in argv[:3]):
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and type(shell).__module__.startswith("ipykernel")


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """``{"commit": sha, "dirty": bool}`` of the checkout advlab runs from, or
    ``{"commit": "not a checkout", "dirty": None}`` (installed package, no git, git too slow)."""
    from advlab.io.paths import repo_root

    root = repo_root()
    git = shutil.which("git")
    if root is None or git is None:
        return {"commit": "not a checkout", "dirty": None}
    try:
        run = functools.partial(subprocess.run, cwd=root, capture_output=True, text=True, timeout=5)
        head = run([git, "rev-parse", "HEAD"])
        if head.returncode != 0:
            return {"commit": "not a checkout", "dirty": None}
        status = run([git, "status", "--porcelain", "--untracked-files=no"])
        return {"commit": head.stdout.strip(),
                "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "not a checkout", "dirty": None}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    """Installed versions of advlab and the libraries its results depend on (``None``: absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name, dists in PACKAGES:
        out[name] = None
        for dist in dists:
            try:
                out[name] = version(dist)
                break
            except PackageNotFoundError:
                continue
    if out["advlab"] is None:        # a checkout that was never pip-installed
        import advlab

        out["advlab"] = advlab.__version__
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=1)
def device() -> dict:
    """CPU model and core count, and the GPUs visible: TensorFlow's list when TensorFlow is
    already imported (it is never imported for this), else ``nvidia-smi``'s, if present."""
    gpus: list[str] = []
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        try:
            gpus = [g.name for g in tf.config.list_physical_devices("GPU")]
        except Exception:        # a half-initialised TensorFlow must not break saving a result
            gpus = []
    elif shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=5)
            gpus = [g.strip() for g in out.stdout.splitlines() if g.strip()] if out.returncode == 0 else []
        except (OSError, subprocess.SubprocessError):
            gpus = []
    return {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system(), "gpus": gpus}


def provenance(config=None, started: float | datetime | None = None) -> dict:
    """The provenance block of a result saved now (see the module docstring).

    ``config``: the run's resolved config (any object :func:`advlab.io.cache.config_digest`
    takes), or ``None``. ``started``: when the job began (default: when the process started).
    """
    from advlab.io.cache import config_digest

    if isinstance(started, datetime):
        started = started.timestamp()
    return {"command": command_line(),
            "config_digest": None if config is None else config_digest(config),
            "git": dict(git_state()),
            "versions": dict(package_versions()),
            "device": dict(device()),
            "python": platform.python_version(),
            "started": _iso(process_start() if started is None else float(started)),
            "finished": _iso(time.time())}


# ----------------------------------------------------------------------------- the README
def read_provenance(path: str | Path) -> dict | None:
    """The provenance block of one saved JSON file, or ``None`` if it has none."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    block = data.get("provenance") if isinstance(data, dict) else None
    return block if isinstance(block, dict) else None


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def readme(folder: str | Path) -> str:
    """The text of ``folder/README.md``: a table of the result files with a provenance block,
    then the files written before provenance, then ``NOTES.md`` as it is."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of results.")
    files = sorted(folder.glob("*.json"))
    with_block = [(p, read_provenance(p)) for p in files]
    recorded = [(p, b) for p, b in with_block if b is not None]
    before = [p for p, b in with_block if b is None]
    from advlab.io.paths import repo_root

    root = repo_root()
    try:
        label = folder.resolve().relative_to(root.resolve()).as_posix() if root else folder.name
    except ValueError:
        label = folder.name
    lines = [f"# {label}: saved results and how they were made", "",
             f"Generated by `python -m advlab.io.provenance {label}` from the `provenance` "
             "block in each JSON file; do not edit by hand (notes go in "
             f"[`{NOTES}`]({NOTES})). Other files (CSV, PNG) beside a JSON file share its stem "
             "and come from the same run.", ""]
    if recorded:
        lines += ["## Results with provenance", "",
                  "| file | command | commit | finished (UTC) | config digest | versions | device |",
                  "|---|---|---|---|---|---|---|"]
        for path, b in recorded:
            git = b.get("git") or {}
            commit = str(git.get("commit", "?"))
            commit = (commit[:10] + (" (dirty)" if git.get("dirty") else "")) if len(commit) == 40 else commit
            v = b.get("versions") or {}
            versions = ", ".join(f"{k} {v[k]}" for k in ("advlab", "tensorflow", "keras") if v.get(k))
            dev = b.get("device") or {}
            gpus = dev.get("gpus") or []
            where = f"{dev.get('cpu', '?')}" + (f", GPU: {', '.join(gpus)}" if gpus else ", no GPU")
            lines.append(f"| `{path.name}` | `{_cell(b.get('command'))}` | {_cell(commit)} | "
                         f"{_cell(b.get('finished', '?'))} | {_cell(b.get('config_digest') or '-')} | "
                         f"{_cell(versions)} | {_cell(where)} |")
        lines.append("")
    if before:
        lines += ["## Written before provenance", "",
                  "These files carry no `provenance` block; what is known about how they were made "
                  f"is in the notes below ([`{NOTES}`]({NOTES})).", ""]
        lines += [f"- `{p.name}`" for p in before]
        lines.append("")
    notes = folder / NOTES
    if notes.is_file():
        lines += ["## Notes", "", notes.read_text().strip(), ""]
    return "\n".join(lines)


def write_readme(folder: str | Path) -> Path:
    """Regenerate ``folder/README.md`` (see :func:`readme`); returns its path."""
    from advlab.io.cache import save_text_atomic

    return save_text_atomic(Path(folder) / "README.md", readme(folder))


def main(argv=None) -> None:
    """``python -m advlab.io.provenance FOLDER...``: regenerate each folder's README.md."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m advlab.io.provenance", description=main.__doc__)
    p.add_argument("folders", nargs="+", help="folders of saved results, e.g. figures/full")
    for folder in p.parse_args(argv).folders:
        try:
            print(write_readme(folder))
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()

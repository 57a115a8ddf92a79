"""Does `pip install advlab[cpu,dev]` resolve on the platforms people use? Writes requirements/PLATFORMS.md.

    python scripts/check_platforms.py          # needs the package index; downloads metadata only

For each target, pip resolves advlab's requirements from wheels only (`--only-binary=:all:`,
`--platform`, `--python-version`) with `--dry-run`, so nothing is installed and no wheel is
downloaded where the index serves metadata files. pip evaluates environment markers against the
interpreter running it, not against `--platform`, so advlab's own markers are evaluated here for
the target (with `packaging`) and the requirements are passed to pip without them. Markers
inside the dependencies' metadata are still evaluated by pip for this machine; PLATFORMS.md says so.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "requirements" / "PLATFORMS.md"
LOCK = "requirements/linux-x86_64-py3.11-cpu.txt"      # the tested machine's lock file
TENSORFLOWS = ("tensorflow", "tensorflow-cpu")
SHOWN = TENSORFLOWS + ("keras", "numpy", "scipy", "scikit-image", "adversarial-robustness-toolbox")

# Marker environments (the values these platforms' CPython reports).
LINUX_X86 = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
             "platform_machine": "x86_64"}
LINUX_ARM = {**LINUX_X86, "platform_machine": "aarch64"}
MAC_ARM = {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
           "platform_machine": "arm64"}
MAC_X86 = {**MAC_ARM, "platform_machine": "x86_64"}
WINDOWS = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
           "platform_machine": "AMD64"}


def manylinux(arch: str, glibc_minor: int) -> list[str]:
    """The manylinux tags a glibc 2.<glibc_minor> system accepts, newest first. pip takes a
    `--platform` literally, so a system's whole ladder has to be spelled out."""
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for minor in range(glibc_minor, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy:
            tags.append(f"{legacy[minor]}_{arch}")
    return tags


@dataclass(frozen=True)
class Target:
    name: str
    env: dict
    platforms: tuple[str, ...]
    python: str = "3.11"
    extras: tuple[str, ...] = ("cpu", "dev")
    constraints: str = ""       # a lock file, relative to the checkout
    note: str = ""


TARGETS = (
    Target("Linux x86_64, glibc 2.28 (this machine's kind)", LINUX_X86, tuple(manylinux("x86_64", 28))),
    Target("Linux x86_64, glibc 2.28, Python 3.12", LINUX_X86, tuple(manylinux("x86_64", 28)), python="3.12"),
    Target("Linux x86_64, glibc 2.28, gpu extra", LINUX_X86, tuple(manylinux("x86_64", 28)), extras=("gpu", "dev")),
    Target("Linux aarch64, glibc 2.28", LINUX_ARM, tuple(manylinux("aarch64", 28))),
    Target("Linux aarch64, manylinux2014 only (glibc 2.17)", LINUX_ARM, ("manylinux2014_aarch64",)),
    Target("macOS 11 arm64", MAC_ARM, ("macosx_11_0_arm64",),
           note="TensorFlow >= 2.16 and SciPy >= 1.11 publish macOS arm64 wheels for macOS 12 and "
                "later only (pip names the first it misses), so no release of advlab's "
                "requirements installs on macOS 11; the next row is the oldest macOS that works."),
    Target("macOS 12 arm64", MAC_ARM, ("macosx_12_0_arm64",)),
    Target("macOS 14 x86_64", MAC_X86, ("macosx_14_0_x86_64",)),
    Target("Windows AMD64", WINDOWS, ("win_amd64",)),
    # Does the tested machine's lock also hold elsewhere? (Its pins for Linux-only packages are
    # simply unused there.)
    Target("Linux x86_64, glibc 2.28, with the lock", LINUX_X86, tuple(manylinux("x86_64", 28)),
           constraints=LOCK),
    Target("Linux aarch64, glibc 2.28, with the lock", LINUX_ARM, tuple(manylinux("aarch64", 28)),
           constraints=LOCK),
    Target("macOS 12 arm64, with the lock", MAC_ARM, ("macosx_12_0_arm64",), constraints=LOCK),
    Target("Windows AMD64, with the lock", WINDOWS, ("win_amd64",), constraints=LOCK),
)


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def dependency_digest(meta: dict) -> str:
    """Digest of what decides a resolution: requires-python and every requirement list.
    tests/test_packaging.py compares it with PLATFORMS.md to notice a stale report."""
    wanted = {"requires-python": meta["requires-python"], "dependencies": meta["dependencies"],
              "optional-dependencies": meta["optional-dependencies"]}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


def requirements_for(meta: dict, extras, env: dict, python: str) -> list[str]:
    """advlab's requirements with its extras, markers evaluated for `env`, markers dropped."""
    env = {**env, "python_version": python, "python_full_version": f"{python}.0"}
    chosen = []
    for extra in ("",) + tuple(extras):
        for spec in meta["dependencies"] if not extra else meta["optional-dependencies"][extra]:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({**env, "extra": extra}):
                req.marker = None
                chosen.append(str(req))
    return chosen


def resolve(target: Target, meta: dict) -> dict:
    reqs = requirements_for(meta, target.extras, target.env, target.python)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "report.json")
        cmd = ["pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
               "--python-version", target.python, *[f"--platform={p}" for p in target.platforms],
               "--target", "TMP/target", "--report", "TMP/report.json"]
        cmd += ["-c", target.constraints] if target.constraints else []
        run = [a.replace("TMP", tmp) for a in cmd] + reqs
        done = subprocess.run([sys.executable, "-m", *run], capture_output=True, text=True, cwd=ROOT)
        result = {"target": target, "command": cmd + ["<requirements>"], "reqs": reqs,
                  "ok": done.returncode == 0}
        if done.returncode == 0:
            items = json.loads(report.read_text())["install"]
            result["pins"] = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
            result["wheels"] = {canonicalize_name(i["metadata"]["name"]): i["download_info"]["url"].rsplit("/", 1)[-1]
                                for i in items}
        else:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            result["error"] = " / ".join(errors) or done.stderr.strip().splitlines()[-1]
    return result


def render(results: list[dict], meta: dict) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Where advlab's dependencies resolve",
        "",
        f"Generated by `python scripts/check_platforms.py` on {when} against the package index, from",
        f"pyproject.toml with dependency digest `{dependency_digest(meta)}` (requires-python "
        f"`{meta['requires-python']}`). Rerun it after changing a requirement;",
        "tests/test_packaging.py fails while this digest is stale.",
        "",
        "Each row is one `pip install --dry-run --only-binary=:all:` (wheels only, nothing installed).",
        "advlab's own markers (the `cpu` extra's TensorFlow choice) are evaluated for the target;",
        "markers inside the dependencies' metadata are evaluated by pip for the machine running the",
        "check (Linux x86_64, CPython 3.11), so a platform-only dependency of a dependency (for",
        "example one needed on Windows alone) may be missing from a row.",
        "",
        "| target | extras | result | TensorFlow wheel | " + " | ".join(SHOWN[2:]) + " | packages |",
        "|---|---|---|---|" + "---|" * (len(SHOWN) - 2) + "---|",
    ]
    for r in results:
        t = r["target"]
        if r["ok"]:
            tf = next((n for n in TENSORFLOWS if n in r["pins"]), None)
            wheel = f"`{r['wheels'][tf]}`" if tf else "none"
            cells = [f"{r['pins'].get(n, '-')}" for n in SHOWN[2:]]
            lines.append(f"| {t.name} | {','.join(t.extras)} | resolves | {wheel} | "
                         + " | ".join(cells) + f" | {len(r['pins'])} |")
        else:
            lines.append(f"| {t.name} | {','.join(t.extras)} | **fails**: {r['error']} | |"
                         + " |" * (len(SHOWN) - 2) + " |")
    notes = [f"- {r['target'].name}: {r['target'].note}" for r in results if r["target"].note]
    lines += ["", *notes] if notes else []
    lines += ["", "## Commands", "",
              "`<requirements>` is the list after each command (advlab's requirements, markers evaluated).", ""]
    for r in results:
        lines += [f"**{r['target'].name}**", "```", shlex.join(r["command"]), "```",
                  "requirements: " + ", ".join(f"`{q}`" for q in r["reqs"]), ""]
    return "\n".join(lines)


def main() -> int:
    meta = project()
    results = []
    for target in TARGETS:
        print(f"resolving {target.name} ...", flush=True)
        results.append(resolve(target, meta))
        r = results[-1]
        print("  " + (f"{len(r['pins'])} packages" if r["ok"] else f"fails: {r['error']}"), flush=True)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render(results, meta) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

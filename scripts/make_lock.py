"""Write the lock file (a pip constraints file) of the environment this interpreter runs in.

    .venv-cpu/bin/python scripts/make_lock.py --extras cpu,dev   # what `make lock` runs

pip resolves `advlab[<extras>]` from wheels as if nothing were installed, held to the versions
this environment has, and every package of that resolution is pinned with `==`. Packages the
environment has but advlab does not need are left out; a requirement it lacks gets the newest
release that fits. The resolution is for Python X.Y.0, so the lock installs on every X.Y.z: an
installed version that needs a newer micro release is not held. The file is named after the
platform, the Python version and the TensorFlow flavour, requirements/<platform>-py<X.Y>-<flavour>.txt,
which is where the Makefile looks for it. Needs the package index (metadata only, no wheels).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import distributions
from pathlib import Path

from packaging.markers import default_environment
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_platforms import project, requirements_for  # noqa: E402  (sibling scripts)
from check_python import platform_tag  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLAVOURS = ("cpu", "tf", "gpu")
# Not held at the environment's versions (what `pip freeze` leaves out, and advlab itself):
# a venv's own old setuptools must not pin what TensorFlow and the build need.
NOT_HELD = {"advlab", "pip", "setuptools", "wheel", "distribute"}
PYTHON = "%d.%d" % sys.version_info[:2]      # the lock is resolved for PYTHON.0


def lock_path(extras: list[str]) -> Path:
    flavours = [e for e in extras if e in FLAVOURS]
    if len(flavours) != 1:
        raise ValueError(f"--extras must name exactly one TensorFlow flavour of {FLAVOURS}, got {extras}")
    return ROOT / "requirements" / f"{platform_tag()}-{flavours[0]}.txt"


def resolve(extras: list[str]) -> dict[str, str]:
    """{name: version} of everything advlab[extras] needs in an empty environment of this
    platform and Python X.Y.0, held to this environment's versions where they fit."""
    held = [f"{d.metadata['Name']}=={d.version}" for d in distributions()
            if d.metadata["Name"] and canonicalize_name(d.metadata["Name"]) not in NOT_HELD
            and SpecifierSet(d.metadata.get("Requires-Python") or "").contains(f"{PYTHON}.0")]
    reqs = requirements_for(project(), extras, default_environment(), PYTHON)
    with tempfile.TemporaryDirectory() as tmp:
        constraints, report = Path(tmp, "installed.txt"), Path(tmp, "report.json")
        constraints.write_text("\n".join(held) + "\n")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run",
                        "--ignore-installed", "--only-binary=:all:", "--python-version", PYTHON,
                        "--report", str(report), "-c", str(constraints), *reqs], check=True)
        items = json.loads(report.read_text())["install"]
    pins = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in items}
    return dict(sorted(pins.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="cpu,dev", help="advlab extras to lock (default cpu,dev)")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    out = lock_path(extras)
    pins = resolve(extras)
    header = [
        f"# Lock file for advlab[{','.join(extras)}] on {platform_tag()}: a pip constraints file.",
        f"# Used by `make install`; by hand: pip install -c {out.relative_to(ROOT).as_posix()} "
        f"-e \".[{','.join(extras)}]\"",
        f"# Resolved for Python {PYTHON}.0 (so it installs on every micro release) by "
        "scripts/make_lock.py, holding the versions",
        f"# of a Python {platform.python_version()} environment; rewrite it with `make lock`.",
    ]
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(header + [f"{name}=={version}" for name, version in pins.items()]) + "\n")
    print(f"{out.relative_to(ROOT)}: {len(pins)} packages pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main())

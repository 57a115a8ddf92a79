"""Packaging: which TensorFlow each extra picks per platform, the Python range and its check,
the lock files, the Makefile's recipes, the licence. Offline and fast (`make -n` only)."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
TENSORFLOWS = {"tensorflow", "tensorflow-cpu"}
LOCKS = sorted((ROOT / "requirements").glob("*-py*-*.txt"))


def _script(name):
    """scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_advlab_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module        # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


check_python = _script("check_python")
check_platforms = _script("check_platforms")

ENVS = {"Linux x86_64": check_platforms.LINUX_X86, "Linux aarch64": check_platforms.LINUX_ARM,
        "macOS arm64": check_platforms.MAC_ARM, "macOS x86_64": check_platforms.MAC_X86,
        "Windows AMD64": check_platforms.WINDOWS}
# tensorflow-cpu has wheels for Linux x86_64 and Windows AMD64 only.
CPU_WHEEL = {"Linux x86_64": "tensorflow-cpu", "Windows AMD64": "tensorflow-cpu"}


def _selected(specs, env, extra=""):
    """The requirements of `specs` whose markers hold in `env` (a partial marker environment)."""
    full = {**default_environment(), **env, "extra": extra}
    reqs = [Requirement(s) for s in specs]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(full)]


def _tensorflows(extra, env):
    chosen = _selected(PROJECT["optional-dependencies"][extra], env, extra)
    return [canonicalize_name(r.name) for r in chosen if canonicalize_name(r.name) in TENSORFLOWS]


@pytest.mark.parametrize("extra", ["cpu", "tf", "gpu"])
@pytest.mark.parametrize("platform", list(ENVS))
def test_each_extra_selects_exactly_one_tensorflow(platform, extra):
    expected = CPU_WHEEL.get(platform, "tensorflow") if extra == "cpu" else "tensorflow"
    assert _tensorflows(extra, ENVS[platform]) == [expected]


def test_gpu_extra_brings_cuda_and_the_rest_brings_no_tensorflow():
    (gpu,) = map(Requirement, PROJECT["optional-dependencies"]["gpu"])
    assert gpu.extras == {"and-cuda"}
    others = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]
    assert not {canonicalize_name(Requirement(s).name) for s in others} & TENSORFLOWS


def test_cpu_markers_are_exact_complements():
    # Not only the five platforms above: on any OS and machine one wheel, never two or none.
    for sys_platform in ("linux", "win32", "darwin", "freebsd14", "cygwin"):
        for machine in ("x86_64", "AMD64", "aarch64", "arm64", "ARM64", "i686", "ppc64le"):
            env = {"sys_platform": sys_platform, "platform_machine": machine}
            assert len(_tensorflows("cpu", env)) == 1, env


def test_environment_yml_has_the_same_tensorflow_lines():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    in_yml = [str(Requirement(p)) for p in pip
              if not p.startswith("-") and canonicalize_name(Requirement(p).name) in TENSORFLOWS]
    assert in_yml == [str(Requirement(s)) for s in PROJECT["optional-dependencies"]["cpu"]]


# -- the Python range -------------------------------------------------------------------------

def test_requires_python_covers_what_the_tests_and_the_locks_need():
    spec = SpecifierSet(PROJECT["requires-python"])
    assert Version("3.10") not in spec                # the tests read pyproject with tomllib
    assert Version(".".join(map(str, sys.version_info[:3]))) in spec
    for lock in LOCKS:
        python = re.search(r"-py(\d+\.\d+)-", lock.name).group(1)
        assert Version(python) in spec, lock.name


def test_check_python_agrees_with_packaging():
    spec = PROJECT["requires-python"]
    assert check_python.requires_python() == spec
    for minor in range(6, 15):
        for micro in (0, 9):
            version = (3, minor, micro)
            expected = Version("3.%d.%d" % (minor, micro)) in SpecifierSet(spec)
            assert check_python.supported(version, spec) == expected, version
    assert check_python.supported((3, 12), ">=3.11,<3.12.1")      # a shorter tuple is padded
    with pytest.raises(ValueError, match="cannot read the clause '~=3.11'.*'>=3.11,<3.13'"):
        check_python.supported((3, 11, 0), "~=3.11")


def test_check_python_names_the_fix(monkeypatch, capsys):
    assert check_python.main([]) == 0                                 # this interpreter is fine
    monkeypatch.setattr(check_python, "requires_python", lambda: "<3.0")
    assert check_python.main([]) == 1
    err = capsys.readouterr().err
    assert "advlab needs Python <3.0" in err and "PYTHON=python3.11" in err
    assert check_python.main(["--platform-tag"]) == 0
    tag = capsys.readouterr().out.strip()
    assert tag == f"{sys.platform}-{check_python.platform.machine()}-py%d.%d" % sys.version_info[:2]


# -- the Makefile (dry runs) ------------------------------------------------------------------

def _make(*args):
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    # -B prints every recipe even where the venv already exists; -n runs none of them.
    # without the caller's make settings: under `make test WORKERS=4` they reach this make too
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "WORKERS"}}
    return subprocess.run(["make", "-n", "-B", "--no-print-directory", f"PYTHON={sys.executable}", *args],
                          cwd=ROOT, capture_output=True, text=True, env=env)


def test_make_install_checks_python_first_and_uses_the_lock():
    out = _make("install")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    check = next(i for i, l in enumerate(lines) if l.endswith("scripts/check_python.py"))
    venv = next(i for i, l in enumerate(lines) if "-m venv .venv-cpu" in l)
    assert check < venv
    pip = next(l for l in lines if "pip install" in l and "-e" in l)
    lock = ROOT / "requirements" / f"{check_python.platform_tag()}-cpu.txt"
    assert (f"-c requirements/{lock.name}" in pip) == lock.is_file()
    assert pip.endswith('-e ".[cpu,dev]"')


def test_each_flavour_gets_its_own_venv():
    out = _make("install", "TF=gpu")
    assert out.returncode == 0, out.stderr
    assert "-m venv .venv-gpu" in out.stdout and '-e ".[gpu,dev]"' in out.stdout
    # nothing is created in or installed into the cpu flavour's venv (the interpreter that makes
    # the new venv may itself live in one, as under `make test`)
    assert not any(line.startswith(".venv-cpu/") or "-m venv .venv-cpu" in line for line in out.stdout.splitlines())
    bad = _make("install", "TF=cuda")
    assert bad.returncode != 0 and "TF must be cpu, tf or gpu (got 'cuda')" in bad.stderr


def test_make_test_runs_the_readme_command_and_latest_skips_the_lock():
    command = "-m pytest -p no:cacheprovider -n 2 --dist worksteal --nbmake --nbmake-timeout=1200 tests notebooks"
    assert (ROOT / "README.md").read_text().count(f"python {command}") == 2   # Linux/macOS and Windows
    out = _make("test")
    assert out.returncode == 0 and f".venv-cpu/bin/python {command}" in out.stdout
    latest = _make("test-latest")
    assert latest.returncode == 0, latest.stderr
    pip = next(l for l in latest.stdout.splitlines() if "pip install" in l and "-e" in l)
    assert pip.startswith(".venv-cpu-latest/bin/python") and " -c " not in pip
    assert "--upgrade --upgrade-strategy eager" in pip
    assert f".venv-cpu-latest/bin/python {command}" in latest.stdout
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export ADVLAB_SCALE=smoke" in ci and "make install" in ci and "\nmake test\n" in ci


# -- lock files, licence, the platform report -------------------------------------------------

@pytest.mark.parametrize("lock", LOCKS, ids=[p.name for p in LOCKS])
def test_lock_file_pins_every_requirement(lock):
    sys_platform, machine, python, flavour = re.fullmatch(
        r"(\w+)-(\w+)-py(\d+\.\d+)-(\w+)\.txt", lock.name).groups()
    pins = {}
    for line in lock.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==" and req.marker is None and not req.extras, line
            name = canonicalize_name(req.name)
            assert name not in pins, f"{name} pinned twice"
            pins[name] = Version(spec.version)
    assert "advlab" not in pins
    env = {"sys_platform": sys_platform, "platform_machine": machine, "python_version": python}
    wanted = (_selected(PROJECT["dependencies"], env)
              + _selected(PROJECT["optional-dependencies"][flavour], env, flavour)
              + _selected(PROJECT["optional-dependencies"]["dev"], env, "dev"))
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{lock.name} does not pin {name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} breaks {req}"


def test_there_is_a_lock_for_the_tested_machine():
    assert ROOT / "requirements" / "linux-x86_64-py3.11-cpu.txt" in LOCKS


def test_license_file_matches_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 The advlab authors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    # An SPDX `license` string needs setuptools >= 77 (PEP 639).
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains("76.9")


def test_platform_report_is_current_and_says_the_default_extra_resolves():
    report = (ROOT / "requirements" / "PLATFORMS.md").read_text()
    assert f"`{check_platforms.dependency_digest(PROJECT)}`" in report, \
        "pyproject's requirements changed: rerun python scripts/check_platforms.py"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.splitlines() if line.startswith("| ")}
    for target, wheel in [("Linux aarch64, glibc 2.28", "tensorflow-"),
                          ("Linux aarch64, manylinux2014 only (glibc 2.17)", "tensorflow-"),
                          ("macOS 12 arm64", "tensorflow-"),
                          ("Linux x86_64, glibc 2.28 (this machine's kind)", "tensorflow_cpu-"),
                          ("Windows AMD64", "tensorflow_cpu-")]:
        assert f"| resolves | `{wheel}" in rows[target], target


def test_gitignore_keeps_every_venv_out():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = [".venv/", ".venv-cpu/", ".venv-gpu/", ".venv-tf-latest/"]
    out = subprocess.run(["git", "check-ignore", *names], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.split() == names

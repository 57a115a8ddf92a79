"""Is this interpreter one advlab supports? `make` asks before it creates a virtual environment.

    python3 scripts/check_python.py                 # exit 0, or 1 with a message naming the fix
    python3 scripts/check_python.py --platform-tag  # e.g. linux-x86_64-py3.11 (names lock files)

The range is read from `requires-python` in pyproject.toml, so it is written down once. This
file runs under whatever `python3` a newcomer has, possibly an old one, so it needs nothing
outside the standard library and no syntax newer than Python 3.6.
"""
import operator
import platform
import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}


def requires_python(pyproject=PYPROJECT):
    """The `requires-python` string of pyproject.toml, e.g. '>=3.11,<3.13'."""
    match = re.search(r'^requires-python\s*=\s*"([^"]+)"', Path(pyproject).read_text(), re.M)
    if match is None:
        raise ValueError("{} has no requires-python line".format(pyproject))
    return match.group(1)


def supported(version, spec):
    """Whether `version` (a tuple such as (3, 11, 7)) satisfies `spec` (e.g. '>=3.11,<3.13').

    Only comma-separated comparisons of release numbers are understood (no wildcards, no
    pre-releases); anything else raises ValueError, so a new form in pyproject.toml is noticed.
    """
    version = tuple(version)[:3]
    for clause in spec.split(","):
        match = re.fullmatch(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*", clause)
        if match is None:
            raise ValueError("scripts/check_python.py cannot read the clause {!r} of requires-python "
                             "{!r}; write it as comparisons like '>=3.11,<3.13'".format(clause, spec))
        op, bound = match.groups()
        bound = tuple(int(p) for p in bound.split("."))
        width = max(len(bound), 3)
        if not _OPS[op](_pad(version, width), _pad(bound, width)):
            return False
    return True


def _pad(numbers, width):
    return tuple(numbers) + (0,) * (width - len(numbers))


def platform_tag():
    """`<sys.platform>-<machine>-py<X.Y>`, the key of this interpreter's lock files."""
    return "{}-{}-py{}.{}".format(sys.platform, platform.machine(), *sys.version_info[:2])


def main(argv):
    if argv == ["--platform-tag"]:
        print(platform_tag())
        return 0
    if argv:
        print("usage: check_python.py [--platform-tag]", file=sys.stderr)
        return 2
    spec = requires_python()
    if supported(sys.version_info, spec):
        return 0
    print("advlab needs Python {} but {} is Python {}.\n"
          "Install a supported Python and point make at it, e.g. `make install PYTHON=python3.11`."
          .format(spec, sys.executable, platform.python_version()), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

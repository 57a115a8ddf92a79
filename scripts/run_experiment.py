#!/usr/bin/env python
"""Alias of ``advlab experiment`` for old command lines (see ``advlab experiment --help``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's advlab, installed or not
from advlab.cli import alias  # noqa: E402

if __name__ == "__main__":
    sys.exit(alias("experiment"))

"""The ``advlab`` command: one entry point for every long job (also ``python -m advlab``).

    advlab classifier --dataset mnist --scale full                              # the target classifier
    advlab attack --dataset mnist --attacks pgd --eps 0.3 --scale full          # an adversarial set
    advlab train --dataset mnist --scale full --budget cpu --out runs/mnist_full  # Table I protocol
    advlab evaluate --dataset mnist --scale full --budget cpu --out runs/mnist_full
    advlab experiment matrix --dataset mnist --scale full --budget cpu          # Tables III-V, Fig. 4-5
    advlab compare --dataset mnist --scale full --purifier-run runs/mnist_full  # notebook 10's table
    advlab robustness --defence median --suite quick --eps 0.3                  # one defence, many attacks
    advlab advtrain --dataset mnist --scale full --method pgd --out runs/mnist_adv  # adversarial training
    advlab tour                                                                 # every notebook

Each subcommand lives in its own module here (``train``: train/evaluate/record, ``attack``:
classifier/attack, ``experiment``, ``compare``, ``robustness``, ``advtrain``, ``tour``); the flags they share
are defined once in :mod:`advlab.cli.common`, which is also the one place flags become a run's
:class:`advlab.config.RunConfig` (:func:`advlab.cli.common.resolve_run`: ``config.resolve`` with
the flags as overrides), printed and saved as ``run_config.json``. The command line itself goes
into the provenance block of every result JSON (:mod:`advlab.io.provenance`).
Importing this package is cheap: the lab's modules load when a command runs.
"""
from __future__ import annotations

import argparse
import sys

from advlab.cli import advtrain, attack, common, compare, experiment, record, robustness, tour, train

# the order of `advlab --help`
MODULES = (attack, train, record, experiment, compare, robustness, advtrain, tour)
# flags the old scripts had under another name; only the aliases (alias()) translate them
RENAMED = {"--cgan-run": ("--purifier-run",), "--narrow": ("--size", "narrow")}


def build_parser() -> argparse.ArgumentParser:
    from advlab import __version__

    parser = argparse.ArgumentParser(
        prog="advlab", description=__doc__.split("\n\n")[0], allow_abbrev=False,
        epilog="examples:\n" + __doc__.split("\n\n")[1] + "\n\n`advlab COMMAND --help` explains each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"advlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``advlab ARGV`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    data_dir = getattr(args, "data_dir", None)
    with common.environment(ADVLAB_DATA_DIR=data_dir.resolve() if data_dir else None):
        status = args.run(args)
    return status if isinstance(status, int) else 0


def alias(command: str, argv: list[str] | None = None) -> int:
    """``advlab COMMAND ARGV`` for an old entry point (``scripts/*.py``), its renamed flags translated."""
    new = []
    for arg in sys.argv[1:] if argv is None else argv:
        flag, eq, value = arg.partition("=")
        if flag in RENAMED:
            print(f"[advlab] {flag} is now {' '.join(RENAMED[flag])}", file=sys.stderr)
            new += [*RENAMED[flag][:-1], RENAMED[flag][-1] + eq + value] if eq else list(RENAMED[flag])
        else:
            new.append(arg)
    return main([command, *new])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``python -m advlab.classifiers DATASET [flags]``: alias of ``advlab classifier --dataset DATASET``."""
import sys

from advlab.cli import main

argv = sys.argv[1:]
sys.exit(main(["classifier", *(["--dataset"] if argv and not argv[0].startswith("-") else []), *argv]))

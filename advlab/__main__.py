"""``python -m advlab ...``: the ``advlab`` command (see :mod:`advlab.cli`)."""
import sys

from advlab.cli import main

sys.exit(main())

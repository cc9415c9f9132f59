"""``python -m symopt.cli``: the ``symopt`` command."""

import sys

from symopt.cli import main

sys.exit(main())

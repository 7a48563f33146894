"""``python -m ddnsr``: the same as the ``ddnsr`` command."""

import sys

from ddnsr.cli import main

sys.exit(main())

"""``python -m ddnsr``: the same as the ``ddnsr`` command."""

import sys

from .cli import main

sys.exit(main())

"""``python -m ddnsr.cli``: the same as ``ddnsr`` (torchrun launches it this way)."""

import sys

from ddnsr.cli import main

sys.exit(main())

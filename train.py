"""The official training script's interface: ``python train.py -source_name track1 -target_type div2k``.

A thin wrapper around ``ddnsr train --source S --target T`` (the paper preset by default); any further
``ddnsr train`` option may follow, e.g. ``python train.py -source_name track2 -target_type cleanup
--preset cpu``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from ddnsr.cli import main as ddnsr_main
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from ddnsr.cli import main as ddnsr_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-source_name", required=True, choices=("track1", "track2"))
    parser.add_argument("-target_type", required=True, choices=("div2k", "cleanup", "mixed", "canon"))
    args, rest = parser.parse_known_args(argv)
    return ddnsr_main(["train", "--source", args.source_name, "--target", args.target_type, *rest])


if __name__ == "__main__":
    sys.exit(main())

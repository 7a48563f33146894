"""The official clean-up script's interface: ``python clean_up.py -input_dir I -output_dir O``.

Halves every image of I with bicubic interpolation into O (see :mod:`ddnsr.datasets.cleanup`; the same as
``ddnsr clean-up -i I -o O``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from ddnsr import cli
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from ddnsr import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-input_dir", required=True, help="folder of source photos")
    parser.add_argument("-output_dir", required=True, help="folder for the halved PNGs")
    args = parser.parse_args(argv)
    return cli.main(["clean-up", "-i", args.input_dir, "-o", args.output_dir])


if __name__ == "__main__":
    sys.exit(main())

"""The official DDNSR test script's interface: ``python test.py -model_path M -input_dir I -output_dir O``.

Upscales every image of I x4 with the reconstruction model M into O as PNG: the same code as
``ddnsr upscale I -o O --model M``. Any further options are passed on to ``ddnsr upscale`` (for example
``--tile 256``, ``--device cpu``, ``--recursive``; see ``ddnsr upscale --help``).
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Other options go to ddnsr upscale.")
    parser.add_argument("-model_path", required=True,
                        help="reconstruction model (.safetensors, .pth, .h5) or bundled name")
    parser.add_argument("-input_dir", required=True, help="folder of LR images")
    parser.add_argument("-output_dir", required=True, help="folder for the x4 PNGs")
    args, rest = parser.parse_known_args(argv)
    return cli.main(["upscale", args.input_dir, "-o", args.output_dir, "--model", args.model_path, *rest])


if __name__ == "__main__":
    sys.exit(main())

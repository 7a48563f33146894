"""``ddnsr clean-up``: the official "cleaned-up" Track 2 target (each photo halved, bicubic)."""

from __future__ import annotations

import argparse

from ddnsr.datasets.cleanup import clean_up


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``clean-up`` sub-command to a ``ddnsr`` parser's sub-parsers."""
    parser = subparsers.add_parser(
        "clean-up",
        help="make the 'cleaned-up' Track 2 target (bicubic x0.5 of each photo)",
        description="Halve every image of a folder with OpenCV-equivalent bicubic interpolation and write "
        "lossless PNGs with the same names (the official clean_up.py).",
    )
    parser.add_argument("-i", "--input-dir", required=True, help="folder of source photos")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the halved PNGs (created)")
    parser.add_argument("--skip-existing", action="store_true", help="keep outputs that already exist")
    parser.add_argument(
        "--truncate", action="store_true",
        help="round down like the official tf.cast (half a level darker on average) instead of to nearest",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``clean-up`` with parsed arguments; exit status 1 when a file was skipped."""
    report = clean_up(
        args.input_dir, args.output_dir, skip_existing=args.skip_existing, truncate=args.truncate,
        progress=not args.no_progress,
    )
    print(
        f"clean-up: {len(report.written)} written to {args.output_dir}, "
        f"{len(report.existing)} already there, "
        f"{len(report.failed)} unreadable skipped"
    )
    return 1 if report.failed else 0

"""``ddnsr data ntire2020``: the NTIRE 2020 archives, downloaded and unpacked in the records.json layout."""

from __future__ import annotations

import argparse

from ddnsr.datasets.ntire2020 import ARCHIVES, fetch_ntire2020


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data`` with its ``ntire2020`` sub-command to a ``ddnsr`` parser's sub-parsers."""
    data = subparsers.add_parser("data", help="download and prepare training data")
    sub = data.add_subparsers(dest="data_command", required=True)
    parser = sub.add_parser(
        "ntire2020",
        help="download the NTIRE 2020 Real-World SR archives into the records.json layout",
        description="Download (resuming), check and unpack the five NTIRE 2020 RWSR archives of the DDNSR "
        "README into the records.json layout under --root, then make the cleaned-up Track 2 target.",
    )
    parser.add_argument("--root", required=True, help="data root: the records folders are made under it")
    parser.add_argument("--records", help="records.json giving the layout (default: the official one)")
    parser.add_argument("--base-url", help="fetch <BASE_URL>/<name>.zip instead of the official URLs")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these archives: " + ", ".join(
        a.name for a in ARCHIVES))
    parser.add_argument("--keep-archives", action="store_true", help="keep the .zip files after unpacking")
    parser.add_argument("--no-cleanup", action="store_true", help="do not make the cleaned-up Track 2 target")
    parser.add_argument("--retries", type=int, default=3, help="further attempts after a cut transfer (3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data: failure (60)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or messages")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``data ntire2020`` with parsed arguments."""
    folders = fetch_ntire2020(
        args.root, records=args.records, base_url=args.base_url, only=args.only,
        keep_archives=args.keep_archives, cleanup=not args.no_cleanup, retries=args.retries,
        timeout=args.timeout, progress=not args.no_progress,
    )
    for name, folder in folders.items():
        print(f"{name}: {folder}")
    return 0

"""The ``ddnsr`` command: one sub-command per task, each registered by its module.

Errors the user can fix (a bad file, a bad setting) print one line on stderr and exit with 1 (2 for
usage errors); tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from ddnsr.errors import DdnsrError, one_line

# modules that provide ``register(subparsers)``; each adds its sub-command(s)
COMMAND_MODULES = (
    "ddnsr.cli.info",
    "ddnsr.cli.upscale",
    "ddnsr.cli.serve",
    "ddnsr.cli.export",
    "ddnsr.cli.train",
    "ddnsr.cli.evaluate",
    "ddnsr.cli.cleanup",
    "ddnsr.cli.data",
)


#: Library setting names (:attr:`ddnsr.errors.DdnsrError.settings`) whose flag is not ``--`` + the name
#: with ``_`` as ``-``.
FLAGS = {"output_dir": "-o", "pairs_dir": "--pairs", "container": "--video-ext", "segment_seconds": "--segment",
         "frames_dir": "--frames"}


def flag_message(exc: BaseException) -> str:
    """The one-line message of ``exc`` with each setting it names written as its command-line flag."""
    text = one_line(exc)
    for name in getattr(exc, "settings", ()):
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flag, text)
    return text


def build_parser() -> argparse.ArgumentParser:
    from ddnsr import __version__

    parser = argparse.ArgumentParser(
        prog="ddnsr",
        description="Real-world x4 super-resolution learned from unpaired photos (DDNSR in PyTorch).",
    )
    parser.add_argument("--version", action="version", version=f"ddnsr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("ddnsr: interrupted", file=sys.stderr)
        return 130
    except (DdnsrError, OSError) as exc:  # a user can fix these; anything else is a bug: traceback
        print(f"ddnsr {args.command}: error: {flag_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

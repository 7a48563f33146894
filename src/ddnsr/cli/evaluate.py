"""``ddnsr evaluate``: score x4 SR models (and bicubic) on a folder of LR images, with or without HR.

::

    ddnsr evaluate --lr DIR [--hr DIR] [--model M ...] [--degrader D ...] [-o REPORT_DIR]

Parses the flags into :class:`ddnsr.evaluation.settings.Settings` (whose defaults are the flags'
defaults), calls :func:`ddnsr.evaluation.folders.evaluate` and prints where the report is. What is
scored and how: :mod:`ddnsr.evaluation.scoring`; the report files: :mod:`ddnsr.evaluation.report`.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ddnsr.evaluation.settings import NIQE_CHANNELS, Settings

__all__ = ["command_line", "register", "run", "settings_from"]

_DEFAULT = Settings()


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to a ``ddnsr`` parser's sub-parsers."""
    p = subparsers.add_parser(
        "evaluate",
        help="score SR models and bicubic on LR images (PSNR/SSIM/LPIPS with HR, NIQE/PIQE), write a report",
        description="Run bicubic and each --model on every image of --lr, score the x4 results (against --hr when "
        "given) and write report.md, per_image.csv, results.json and crop pictures to -o. --degrader adds the "
        "degradation-fidelity table of D models. Unreadable, unpaired, wrongly sized or too small files are "
        "reported and skipped.",
    )
    p.add_argument("--model", action="append", default=[], metavar="M",
                   help="bundled model name or model file (repeatable; none: bicubic only)")
    p.add_argument("--label", action="append", default=None, metavar="L",
                   help="row label of each --model, in order (default: the name or file stem)")
    p.add_argument("--lr", required=True, metavar="DIR", help="folder of LR images")
    p.add_argument("--hr", metavar="DIR", help="folder of the HR partners (same names, or _LR4/_HR/x4 tokens)")
    p.add_argument("--degrader", action="append", default=[], metavar="D",
                   help="degradation model (name or file) for the degradation-fidelity table (repeatable; needs --hr)")
    p.add_argument("--degrader-label", action="append", default=None, metavar="L", help="row label of each --degrader")
    p.add_argument("-o", "--output", default="evaluation", metavar="REPORT_DIR",
                   help="report folder (default: evaluation/)")
    p.add_argument("--json", metavar="F", help="also write results.json to F")
    p.add_argument("--crops", type=int, default=_DEFAULT.crops, metavar="N",
                   help=f"images with side-by-side crops (default {_DEFAULT.crops})")
    p.add_argument("--crop-size", type=int, default=_DEFAULT.crop_size, metavar="PX",
                   help=f"crop size in HR pixels (default {_DEFAULT.crop_size})")
    p.add_argument("--niqe-channel", choices=NIQE_CHANNELS, default=_DEFAULT.niqe_channel,
                   help="NIQE on MATLAB rgb2gray (default, as niqe_release) or BT.601 Y (BasicSR)")
    p.add_argument("--no-lpips", action="store_true", help="do not compute LPIPS even if its backbone is present")
    p.add_argument("--device", default=_DEFAULT.device, help=f"device for the models (default {_DEFAULT.device})")
    p.add_argument("--precision", default=_DEFAULT.precision, help=f"model precision (default {_DEFAULT.precision})")
    p.add_argument("--tile", type=int, default=_DEFAULT.tile, metavar="PX", help="tile size for large images")
    p.add_argument("--seed", type=int, default=_DEFAULT.seed,
                   help=f"seed for the degradation models (default {_DEFAULT.seed})")
    p.add_argument("--max-pixels", type=_pixel_limit, default=_DEFAULT.max_pixels, metavar="N",
                   help=f"skip images with more pixels, refused before decoding (default {_DEFAULT.max_pixels:_}; "
                        "0: no limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _pixel_limit(text: str) -> int | None:
    """``--max-pixels``: a whole number of at least 0; 0 means no limit (None)."""
    from ddnsr.cli.types import non_negative

    return non_negative(text) or None


def settings_from(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` of parsed arguments (SettingError for impossible values)."""
    return Settings(crops=args.crops, crop_size=args.crop_size, niqe_channel=args.niqe_channel,
                    use_lpips=not args.no_lpips, device=args.device, precision=args.precision, tile=args.tile,
                    seed=args.seed, progress=not args.no_progress, max_pixels=args.max_pixels)


def command_line(args: argparse.Namespace) -> str:
    """The ``ddnsr evaluate`` command line equivalent to parsed ``args`` (for the report)."""
    parts = ["ddnsr", "evaluate"]
    given = (("--model", args.model), ("--label", args.label), ("--lr", [args.lr]), ("--hr", [args.hr]),
             ("--degrader", args.degrader), ("--degrader-label", args.degrader_label), ("-o", [args.output]),
             ("--json", [args.json]))
    for flag, values in given:
        parts += [item for value in values or [] if value is not None for item in (flag, value)]
    for key, value in settings_from(args).changed().items():
        if key in ("use_lpips", "progress"):
            continue  # switches, below (progress does not change the results)
        parts += [f"--{key.replace('_', '-')}", "0" if value is None else str(value)]
    if args.no_lpips:
        parts.append("--no-lpips")
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Run ``ddnsr evaluate`` with parsed arguments; print where the report is."""
    from ddnsr.evaluation.folders import evaluate

    results = evaluate(args.model, args.lr, args.hr, degraders=args.degrader, labels=args.label,
                       degrader_labels=args.degrader_label, out_dir=args.output, json_path=args.json,
                       settings=settings_from(args), command=command_line(args))
    print(f"evaluate: {results['n_images']} image(s) evaluated, {len(results['problems'])} file problem(s); "
          f"report: {Path(args.output) / 'report.md'}")
    return 0

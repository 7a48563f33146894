"""``evaluate``: a folder of LR images (and one of HR partners) -> the scores and the report of ``ddnsr evaluate``.

It composes the pieces: :func:`~ddnsr.evaluation.pairing.pairs_from_folders` pairs the files,
:func:`~ddnsr.evaluation.scoring.evaluate_sr` scores bicubic and each model,
:func:`~ddnsr.evaluation.scoring.evaluate_degradation` scores bicubic /4 and each degrader on the pairs
scored, :func:`results_document` gathers everything (the content of ``results.json``) and
:func:`~ddnsr.evaluation.report.write_report` writes ``report.md``, ``per_image.csv``,
``degradation.csv`` (with degraders), ``results.json`` and ``crops/*.png``.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ddnsr.errors import DataError, SettingError
from ddnsr.evaluation.pairing import pairs_from_folders
from ddnsr.evaluation.report import CROP_ZOOM, json_text, write_report
from ddnsr.evaluation.scoring import (
    BICUBIC_DOWN,
    BICUBIC_UP,
    CROP_BORDER,
    SCALE,
    Problem,
    Scores,
    degrader_method,
    evaluate_degradation,
    evaluate_sr,
    load_lpips,
    unique_labels,
    upscaler_method,
)
from ddnsr.evaluation.settings import DEFAULT, Settings
from ddnsr.files import atomic_write

__all__ = ["conventions", "evaluate", "print_skip", "results_document"]


def print_skip(file: str, reason: str, prefix: str = "ddnsr evaluate") -> None:
    """Say on stderr (between progress-bar updates) that ``file`` was skipped and why."""
    tqdm.write(f"{prefix}: skipped {file}: {reason}", file=sys.stderr)


def conventions(settings: Settings, lpips_note: str, lpips_used: bool, degradation: bool) -> dict[str, str]:
    """The conventions section of the report: how each number was made."""
    channel = "gray (rgb2gray)" if settings.niqe_channel == "gray" else "Y (BT.601)"
    out = {
        "bicubic": "MATLAB imresize(lr, 4): Keys cubic a=-0.5 via ddnsr.metrics.imresize (not PIL BICUBIC)",
        "psnr_ssim": f"BT.601 Y (MATLAB rgb2ycbcr, rounded), {CROP_BORDER}-pixel border cropped, 8-bit range",
        "niqe": f"MATLAB niqe_release, channel {channel}, whole image (no border crop), pristine model of BasicSR",
        "niqe_channel": settings.niqe_channel,
        "piqe": "MATLAB piqe (rgb2gray), whole image",
        "lpips": lpips_note if lpips_used else f"omitted: {lpips_note}",
        "quantisation": "every result and HR image is scored as 8-bit RGB (clipped, rounded)",
        "averages": "mean over images of the per-image values; non-finite or missing values left out",
        "crops": (f"{settings.crop_size}x{settings.crop_size} HR window on a {SCALE}-pixel grid with the largest mean "
                  "absolute Laplacian of the gray HR image (of the bicubic result without HR); "
                  f"shown {CROP_ZOOM}x enlarged (nearest); images evenly spaced in the sorted list"),
        "pairing": "same stem, else stems compared after removing LR/HR/LR4/HR4/x4 tokens (case-insensitive)",
    }
    if degradation:
        out["degradation"] = (
            "D(HR_i, reference) vs real LR_i; reference: LR of the next pair of the same camera (file-name prefix "
            "before the first '_'), else the next pair overall; PSNR-Y/SSIM-Y without crop, Immerkær sigma "
            "(8-bit range); baseline MATLAB imresize(hr, 1/4) antialiased")
    return out


def results_document(sr: Scores, degradation: Scores | None, *, lr_dir: str | os.PathLike,
                     hr_dir: str | os.PathLike | None, command: str, settings: Settings, lpips_note: str,
                     lpips_used: bool, problems: Sequence[Problem] = (), seconds: float = 0.0) -> dict[str, Any]:
    """The results of one evaluation as one JSON-ready dict (``results.json``; :func:`report.render_markdown`'s input).

    ``problems``: files skipped before scoring (pairing); the passes' own problems and notes follow them.
    """
    from ddnsr import __version__

    summary = sr.summary()
    return {
        "ddnsr_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "lr_dir": str(lr_dir),
        "hr_dir": None if hr_dir is None else str(hr_dir),
        "n_images": sr.n_images,
        "methods": summary["methods"],
        "columns": sr.columns,
        "lpips": {"used": lpips_used, "note": lpips_note},
        "conventions": conventions(settings, lpips_note, lpips_used, degradation is not None),
        "averages": sr.averages,
        "counts": sr.counts,
        "per_image": sr.rows,
        "degradation": None if degradation is None else degradation.summary(),
        "problems": [{"file": p.file, "reason": p.reason}
                     for p in [*problems, *sr.problems, *(degradation.problems if degradation else [])]],
        "notes": [*sr.notes, *(f"degradation table: {n}" for n in (degradation.notes if degradation else []))],
        "crops": [],
        "timing": {"total_seconds": seconds, "seconds_per_image": summary["seconds_per_image"]},
    }


def _default_command(models: Sequence[Any], lr_dir: Path, hr_dir: Path | None, degraders: Sequence[Any]) -> str:
    def source(spec: Any) -> str:
        return str(spec) if isinstance(spec, (str, os.PathLike)) else type(spec).__name__

    return (f"evaluate(models={[source(m) for m in models]!r}, lr_dir={str(lr_dir)!r}, "
            f"hr_dir={None if hr_dir is None else str(hr_dir)!r}, degraders={[source(d) for d in degraders]!r})")


def evaluate(
    models: Sequence[Any],
    lr_dir: str | os.PathLike,
    hr_dir: str | os.PathLike | None = None,
    *,
    degraders: Sequence[Any] = (),
    labels: Sequence[str] | None = None,
    degrader_labels: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    settings: Settings = DEFAULT,
    command: str | None = None,
) -> dict[str, Any]:
    """Evaluate bicubic and ``models`` on ``lr_dir`` (against ``hr_dir`` when given); write the report.

    Args:
        models: bundled model names or model files (loaded with :class:`ddnsr.inference.upscaler.Upscaler`), or
            ready objects with ``upscale_array(rgb) -> rgb``; may be empty (bicubic only).
        lr_dir, hr_dir: folders of LR images and of their HR partners (paired by name).
        degraders: D models (names, files, or objects with ``degrade_array(hr, ref, seed=)``); needs HR.
        labels, degrader_labels: row labels (default: the name, or the file stem).
        out_dir: where the report goes; None: nothing is written (except ``json_path``).
        json_path: also write ``results.json`` there.
        settings: crops, NIQE channel, LPIPS, device, seed, progress (see :class:`Settings`).
        command: the command line recorded in the report (default: a description of this call).

    Returns:
        The results (the content of ``results.json``, see :func:`results_document`).

    Raises:
        DataError: a missing folder, no image files, or no image that could be evaluated.
        SettingError: bad labels or options. ModelFileError / ValueError: a model that cannot be loaded.
    """
    started = time.perf_counter()
    lr_dir = Path(lr_dir)
    hr_dir = None if hr_dir is None else Path(hr_dir)
    if degraders and hr_dir is None:
        raise SettingError("degrader needs hr: the degradation table compares D(HR) with the real LR"
                           ).named("degrader", "hr")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise SettingError(f"{out_dir}: exists and is not a folder")
    pairing = pairs_from_folders(lr_dir, hr_dir)
    model_labels = unique_labels(models, labels, "model", {"bicubic"})
    deg_labels = unique_labels(degraders, degrader_labels, "degrader", {"bicubic"})
    methods = [BICUBIC_UP] + [upscaler_method(m, lab, settings) for m, lab in zip(models, model_labels, strict=True)]
    deg_methods = [BICUBIC_DOWN] + [degrader_method(d, lab, settings)
                                    for d, lab in zip(degraders, deg_labels, strict=True)]
    lpips, lpips_note = load_lpips(settings, hr_dir is not None)

    problems = [Problem(str(path), reason) for path, reason in pairing.problems]
    for p in problems:
        print_skip(p.file, p.reason)
    sr = evaluate_sr(pairing.pairs, methods, settings, lpips=lpips, on_skip=print_skip)
    if not sr.scored:
        raise DataError(f"no image could be evaluated ({len(problems) + len(sr.problems)} problem(s), listed above)")
    degradation = evaluate_degradation(sr.scored, deg_methods, settings, on_skip=print_skip) if degraders else None

    results = results_document(
        sr, degradation, lr_dir=lr_dir, hr_dir=hr_dir, settings=settings, lpips_note=lpips_note,
        lpips_used=lpips is not None, problems=problems, seconds=time.perf_counter() - started,
        command=command or _default_command(models, lr_dir, hr_dir, degraders))
    if out_dir is not None:
        write_report(out_dir, results, sr.crops)
    if json_path is not None:
        atomic_write(json_path, json_text(results))
    return results

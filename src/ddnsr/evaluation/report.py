"""The report of an evaluation: Markdown tables, CSV, JSON and crop pictures, written atomically.

Crops (:func:`texture_window`, :func:`crop_tiles`, :func:`crop_panel`)
    The region shown is the ``size x size`` window (top-left corner on a 4-pixel grid, so that it maps
    exactly onto the LR image) with the largest mean absolute Laplacian of the gray HR image (of the
    bicubic result when there is no HR): the most textured part, where methods differ most. Ties go to
    the first window in row-major order. Each picture is LR (nearest-enlarged) | every method | HR.

Files (:func:`write_report`): ``report.md``, ``per_image.csv``, ``degradation.csv`` (when there is a
degradation table), ``results.json`` and ``crops/*.png``, each through :func:`ddnsr.files.atomic_write`.
A crop picture that cannot be written is skipped with a one-line note; the rest of the report is written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ddnsr import errors, imageio
from ddnsr.errors import SettingError, one_line
from ddnsr.files import atomic_write, jsonable

__all__ = [
    "CROP_ZOOM",
    "DEG_COLUMNS",
    "SR_COLUMNS",
    "Crop",
    "crop_panel",
    "crop_tiles",
    "csv_text",
    "escape_cell",
    "format_value",
    "json_text",
    "markdown_table",
    "render_markdown",
    "texture_window",
    "write_report",
]

SCALE = 4
CROP_ZOOM = 2
#: What a failed picture write raises.
_WRITE_ERRORS = (OSError, errors.ImageError)

#: (key -> table header, decimals, "max" / "min" / None for the best value)
SR_COLUMNS: dict[str, tuple[str, int, str | None]] = {
    "psnr_y": ("PSNR-Y (dB) ↑", 2, "max"),
    "ssim_y": ("SSIM-Y ↑", 4, "max"),
    "lpips": ("LPIPS ↓", 4, "min"),
    "niqe": ("NIQE ↓", 3, "min"),
    "piqe": ("PIQE ↓", 2, "min"),
}
DEG_COLUMNS: dict[str, tuple[str, int, str | None]] = {
    "psnr_y": ("PSNR-Y (dB) ↑", 2, "max"),
    "ssim_y": ("SSIM-Y ↑", 4, "max"),
    "sigma_generated": ("σ generated", 2, None),
    "sigma_real": ("σ real", 2, None),
    "sigma_diff": ("Δσ (gen − real)", 2, None),
    "abs_sigma_diff": ("abs(Δσ) ↓", 2, "min"),
}


# ------------------------------------------------------------------------------------------------ crops


@dataclass
class Crop:
    """The labelled tiles (uint8 HxWx3) of one image's crop picture, and where the window lies in HR pixels."""

    index: int  # the pair's position in the evaluated list
    image: str
    tiles: list[tuple[str, np.ndarray]]
    top: int
    left: int
    size: int


def texture_window(img: np.ndarray, size: int = 128, step: int = 4) -> tuple[int, int, int]:
    """``(top, left, size)`` of the most textured window of ``img`` (HxWx3 or HxW, any numeric type).

    ``size`` is reduced to fit the image (and kept a multiple of ``step``); corners lie on a ``step``
    grid. Texture: mean absolute 4-neighbour Laplacian of the gray image (BT.601 weights).
    """
    arr = np.asarray(img, dtype=np.float64)
    gray = arr @ np.array([0.299, 0.587, 0.114]) if arr.ndim == 3 else arr
    h, w = gray.shape
    size = min(size, h, w)
    size -= size % step
    if size <= 0:
        return 0, 0, min(h, w)
    lap = np.zeros_like(gray)
    lap[1:-1, 1:-1] = np.abs(
        4.0 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    )
    integral = np.pad(lap.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    tops = np.arange(0, h - size + 1, step)
    lefts = np.arange(0, w - size + 1, step)
    sums = (
        integral[tops[:, None] + size, lefts[None, :] + size]
        - integral[tops[:, None], lefts[None, :] + size]
        - integral[tops[:, None] + size, lefts[None, :]]
        + integral[tops[:, None], lefts[None, :]]
    )
    r, c = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(tops[r]), int(lefts[c]), size


def crop_tiles(index: int, image: str, lr8: np.ndarray, hr8: np.ndarray | None,
               outputs: dict[str, np.ndarray], size: int) -> Crop:
    """The crop of one image: LR (nearest x4) | each output (``{label: 4Hx4Wx3 uint8}``, in order) | HR.

    The window is the most textured one of ``hr8`` (of the first output without HR); all uint8.
    """
    base = hr8 if hr8 is not None else next(iter(outputs.values()))
    top, left, size = texture_window(base, size, step=SCALE)
    t, lft, s = top // SCALE, left // SCALE, size // SCALE
    tiles = [("LR (nearest)", np.repeat(np.repeat(lr8[t : t + s, lft : lft + s], SCALE, 0), SCALE, 1))]
    tiles += [(label, out[top : top + size, left : left + size].copy()) for label, out in outputs.items()]
    if hr8 is not None:
        tiles.append(("HR", hr8[top : top + size, left : left + size].copy()))
    return Crop(index, image, tiles, top, left, size)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def crop_panel(tiles: Sequence[tuple[str, np.ndarray]], zoom: int = 2, gap: int = 4) -> np.ndarray:
    """Put labelled image tiles side by side: ``[(label, HxWx3 uint8), ...]`` -> one uint8 RGB image.

    Each tile is enlarged ``zoom`` times (nearest neighbour, so pixels stay visible) and gets its
    label in a white strip beneath it; tiles are separated by ``gap`` white pixels.
    """
    font = _font()
    strip = 18
    big = [np.repeat(np.repeat(t, zoom, axis=0), zoom, axis=1) for _, t in tiles]
    height = max(b.shape[0] for b in big) + strip
    width = sum(b.shape[1] for b in big) + gap * (len(big) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for (label, _), b in zip(tiles, big, strict=True):
        canvas.paste(Image.fromarray(b), (x, 0))
        text = label
        while len(text) > 1 and draw.textlength(text, font=font) > b.shape[1] - 4:
            text = text[:-2] + "…"
        draw.text((x + 2, b.shape[0] + 2), text, fill=(0, 0, 0), font=font)
        x += b.shape[1] + gap
    return np.asarray(canvas)


# ------------------------------------------------------------------------------------------------ tables


def format_value(value: float | None, digits: int) -> str:
    """A number for a table: fixed ``digits`` decimals; ``inf`` / ``nan`` / ``-`` for the rest."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def markdown_table(
    rows: Sequence[tuple[str, Sequence[float | None]]],
    columns: Sequence[tuple[str, int, str | None]],
) -> str:
    """A Markdown table with the best value of each column in bold.

    ``rows``: ``(label, values)``; ``columns``: ``(header, decimals, "max" | "min" | None)`` — None
    marks a column without a best value. Values are compared as shown (rounded to ``decimals``), so
    equal-looking values are all bold or none.
    """
    header = "| method | " + " | ".join(c[0] for c in columns) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in columns) + " |"
    best: list[float | None] = []
    for j, (_, digits, goal) in enumerate(columns):
        shown = [round(v, digits) for _, vals in rows if (v := vals[j]) is not None and math.isfinite(v)]
        best.append(None if goal is None or not shown else (max(shown) if goal == "max" else min(shown)))
    lines = [header, rule]
    for label, values in rows:
        cells = []
        for j, v in enumerate(values):
            text = format_value(v, columns[j][1])
            if best[j] is not None and v is not None and math.isfinite(v) and round(v, columns[j][1]) == best[j]:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {escape_cell(label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def escape_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, no line breaks)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def csv_text(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    """CSV of ``rows`` with the given columns; floats with 6 decimals, None as an empty cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else (f"{row[k]:.6f}" if isinstance(row[k], float)
                                                           else row[k])) for k in fields})
    return buf.getvalue()


def json_text(results: dict[str, Any]) -> str:
    """``results`` as indented JSON (paths as text, non-finite numbers as null)."""
    return json.dumps(jsonable(results), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------------------ report


def _summary_lines(results: dict[str, Any]) -> list[str]:
    hr = f", HR: `{results['hr_dir']}`" if results["hr_dir"] else " (no HR)"
    return ["# ddnsr evaluation", "", f"Made by: `{results['command']}`", "",
            f"ddnsr {results['ddnsr_version']}, {results['created']}. LR: `{results['lr_dir']}`{hr}. Images "
            f"evaluated: {results['n_images']}; files skipped or unpaired: {len(results['problems'])}.", ""]


def _sr_lines(results: dict[str, Any]) -> list[str]:
    cols = results["columns"]
    rows = [(m["label"], [results["averages"][m["label"]][k] for k in cols]) for m in results["methods"]]
    lines = [f"## x{SCALE} super-resolution (mean over {results['n_images']} images)", "",
             markdown_table(rows, [SR_COLUMNS[k] for k in cols]), "",
             "↑ higher is better, ↓ lower is better; the best value of each column is bold."]
    if results["hr_dir"] and not results["lpips"]["used"]:
        lines.append(f"LPIPS is omitted: {results['lpips']['note']}.")
    return lines + [""]


def _degradation_lines(deg: dict[str, Any]) -> list[str]:
    rows = [(m["label"], [deg["averages"][m["label"]][k] for k in deg["columns"]]) for m in deg["methods"]]
    return [f"## Degradation fidelity (mean over {deg['n_images']} HR/LR pairs)", "",
            "Each generated LR image D(HR_i, reference) is compared with the real LR_i; the reference is the "
            "real LR image of another pair of the same camera (never LR_i itself). `bicubic` is MATLAB "
            "`imresize(HR, 1/4)`. σ: Immerkær noise estimate (8-bit range).", "",
            markdown_table(rows, [DEG_COLUMNS[k] for k in deg["columns"]]), "",
            "Per-image values: [degradation.csv](degradation.csv).", ""]


def _crop_lines(results: dict[str, Any]) -> list[str]:
    if not results["crops"]:
        return []
    lines = ["## Crops", "", "LR (nearest-neighbour enlarged) | " + " | ".join(m["label"] for m in results["methods"])
             + (" | HR" if results["hr_dir"] else ""), ""]
    for c in results["crops"]:
        lines += [f"**{escape_cell(c['image'])}** (x={c['left']}, y={c['top']}, {c['size']}x{c['size']})", "",
                  f"![{escape_cell(c['image'])}]({c['file']})", ""]
    return lines


def _tail_lines(results: dict[str, Any]) -> list[str]:
    lines = ["## Skipped files and problems", ""]
    problems = results["problems"]
    lines += [f"- `{p['file']}`: {escape_cell(p['reason'])}" for p in problems] if problems else ["None."]
    lines.append("")
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {escape_cell(n)}" for n in results["notes"]] + [""]
    lines += ["## Timing", "", f"Total: {results['timing']['total_seconds']:.1f} s."]
    for label, sec in results["timing"]["seconds_per_image"].items():
        if sec is not None:
            lines.append(f"- {escape_cell(label)}: {sec:.3f} s per image (x{SCALE} result only)")
    return lines + [""]


def render_markdown(results: dict[str, Any]) -> str:
    """The ``report.md`` text of a results document (see :func:`ddnsr.evaluation.folders.results_document`)."""
    lines = _summary_lines(results) + _sr_lines(results)
    if results["degradation"] is not None:
        lines += _degradation_lines(results["degradation"])
    lines += ["## Conventions", ""]
    lines += [f"- **{k}**: {escape_cell(v)}" for k, v in results["conventions"].items()]
    lines += ["", "Per-image values: [per_image.csv](per_image.csv); everything: [results.json](results.json).", ""]
    return "\n".join(lines + _crop_lines(results) + _tail_lines(results))


def _safe_name(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    out, k = base, 2
    while out in used:
        out, k = f"{base}-{k}", k + 1
    used.add(out)
    return out


def write_crops(out: Path, crops: Sequence[Crop]) -> tuple[list[dict[str, Any]], list[str]]:
    """Write ``out/crops/<image>.png`` for each crop; returns the entries written and notes on failures.

    A picture that cannot be written (an :class:`OSError` or image error) is left out with a one-line note.
    """
    written: list[dict[str, Any]] = []
    notes: list[str] = []
    used: set[str] = set()
    for crop in crops:
        rel = f"crops/{_safe_name(Path(crop.image).stem, used)}.png"
        try:
            imageio.write_image(out / rel, crop_panel(crop.tiles, zoom=CROP_ZOOM))
        except _WRITE_ERRORS as exc:
            notes.append(f"crop picture of {crop.image} not written: {one_line(exc)}")
            continue
        written.append({"image": crop.image, "file": rel, "top": crop.top, "left": crop.left, "size": crop.size})
    return written, notes


def write_report(out: str | os.PathLike, results: dict[str, Any], crops: Sequence[Crop] = ()) -> dict[str, Any]:
    """Write the report files of ``results`` (and its crop pictures) into the folder ``out``.

    ``results["crops"]`` and ``results["notes"]`` are completed with the pictures written (or not) before
    the text files are written. Returns ``results``.

    Raises:
        SettingError: ``out`` exists and is not a folder. OSError: a text file that cannot be written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SettingError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    written, notes = write_crops(out, crops)
    results["crops"] = written
    results["notes"] += notes
    atomic_write(out / "per_image.csv", csv_text(results["per_image"], ["image", "method", *results["columns"],
                                                                        "lr", "hr"]))
    deg = results["degradation"]
    if deg is not None:
        atomic_write(out / "degradation.csv",
                     csv_text(deg["per_image"], ["image", "method", "reference", *deg["columns"], "lr", "hr"]))
    atomic_write(out / "results.json", json_text(results))
    atomic_write(out / "report.md", render_markdown(results))
    return results

"""Helpers of ``ddnsr evaluate`` that need no network: pairing, references, crops, tables, files.

Pairing LR and HR files (:func:`pair_key`, :func:`pair_files`)
    An LR file is paired with the HR file of the same stem (``Canon_036.png`` <-> ``Canon_036.png``,
    extensions may differ). Failing that, both stems are normalised and compared: lower-cased, split
    into tokens at ``_``, ``-``, ``.`` and spaces, and the tokens ``lr``, ``hr``, ``lr4``, ``hr4``,
    ``lrx4``, ``x4`` (any ``lr``/``hr`` with an optional ``x`` and number, any ``x`` + number) are
    dropped, as is an ``x<number>`` suffix glued to digits (DIV2K's ``0801x4``). So
    ``Canon_036_LR4.png`` <-> ``Canon_036_HR.png`` and ``0801x4.png`` <-> ``0801.png``. A key shared
    by several HR files, an HR file claimed twice, an LR file without partner and an HR file without
    partner are all reported (never dropped silently).

References for the degradation table (:func:`camera_of`, :func:`reference_indices`)
    The camera of a pair is the prefix of its LR file name before the first ``_`` (RealSR:
    ``Canon_036_LR4.png`` -> ``Canon``); names without ``_`` have no camera. Pair ``i`` uses as
    reference the LR image of the next pair (cyclically, in sorted order) of the same camera; a pair
    whose camera has no other member (or no camera) uses the next pair of the whole list. So the
    reference is always a different real LR image; with a single pair there is none.

Crops (:func:`texture_window`, :func:`crop_panel`)
    The region shown is the ``size x size`` window (top-left corner on a 4-pixel grid, so that it maps
    exactly onto the LR image) with the largest mean absolute Laplacian of the gray HR image (of the
    bicubic result when there is no HR): the most textured part, where methods differ most. Ties go to
    the first window in row-major order.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "Pairing",
    "atomic_write_text",
    "camera_of",
    "crop_panel",
    "escape_cell",
    "finite_mean",
    "format_value",
    "markdown_table",
    "pair_files",
    "pair_key",
    "reference_indices",
    "texture_window",
    "to_uint8",
]

_SEPARATORS = re.compile(r"[_\-. ]+")
_DROP_TOKEN = re.compile(r"^(?:(?:lr|hr)(?:x?\d+)?|x\d+)$")
_GLUED_SCALE = re.compile(r"^(\d+)x\d+$")


# --------------------------------------------------------------------------------------------- pairing


def pair_key(stem: str) -> str:
    """The normalised name used to pair LR and HR files (see the module docstring).

    >>> pair_key("Canon_036_LR4"), pair_key("Canon_036_HR"), pair_key("0801x4")
    ('canon_036', 'canon_036', '0801')
    """
    tokens = [t for t in _SEPARATORS.split(stem.lower()) if t]
    kept = []
    for token in tokens:
        if _DROP_TOKEN.match(token):
            continue
        glued = _GLUED_SCALE.match(token)
        kept.append(glued.group(1) if glued else token)
    return "_".join(kept) if kept else stem.lower()


@dataclass
class Pairing:
    """LR/HR pairs found by :func:`pair_files`, and the files that could not be paired."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def pair_files(lr_files: Sequence[Path], hr_files: Sequence[Path]) -> Pairing:
    """Pair LR files with HR files by name (exact stem first, then :func:`pair_key`).

    Pairs keep the order of ``lr_files``. Problems are ``(file, reason)`` with one-line reasons.
    """
    out = Pairing()
    by_stem: dict[str, list[Path]] = {}
    by_key: dict[str, list[Path]] = {}
    for hr in hr_files:
        by_stem.setdefault(hr.stem, []).append(hr)
        by_key.setdefault(pair_key(hr.stem), []).append(hr)
    claimed: dict[Path, Path] = {}
    for lr in lr_files:
        candidates = by_stem.get(lr.stem) or by_key.get(pair_key(lr.stem), [])
        if not candidates:
            out.problems.append((lr, "no HR partner (no HR file of the same name after removing LR/HR/x4 tokens)"))
            continue
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            out.problems.append((lr, f"ambiguous HR partner: {names}"))
            continue
        hr = candidates[0]
        if hr in claimed:
            out.problems.append((lr, f"HR partner {hr.name} already paired with {claimed[hr].name}"))
            continue
        claimed[hr] = lr
        out.pairs.append((lr, hr))
    for hr in hr_files:
        if hr not in claimed:
            out.problems.append((hr, "no LR partner"))
    return out


# ------------------------------------------------------------------------------------------ references


def camera_of(name: str) -> str | None:
    """The camera of an image: its file-name prefix before the first ``_``; None without ``_``."""
    stem = Path(name).stem
    if "_" not in stem:
        return None
    prefix = stem.split("_", 1)[0]
    return prefix or None


def reference_indices(names: Sequence[str]) -> list[int | None]:
    """For each image, the index of the reference image (see the module docstring); never itself.

    ``names``: the LR file names of the valid pairs, in order. ``None`` where no other image exists.
    """
    n = len(names)
    groups: dict[str, list[int]] = {}
    cameras = [camera_of(name) for name in names]
    for i, cam in enumerate(cameras):
        if cam is not None:
            groups.setdefault(cam, []).append(i)
    refs: list[int | None] = []
    for i, cam in enumerate(cameras):
        members = groups.get(cam, []) if cam is not None else []
        if len(members) >= 2:
            pos = members.index(i)
            refs.append(members[(pos + 1) % len(members)])
        elif n >= 2:
            refs.append((i + 1) % n)
        else:
            refs.append(None)
    return refs


# ------------------------------------------------------------------------------------------------ crops


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (clipped; NaN -> 0) -> uint8, rounded to nearest, as PNG writing does."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
    return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


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


# ------------------------------------------------------------------------------------------------- files


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def finite_mean(values: Iterable[float | None]) -> tuple[float | None, int]:
    """Mean of the finite values and how many there were (``(None, 0)`` when none)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, 0
    return float(np.mean(vals)), len(vals)

"""The "cleaned-up" Track 2 target: every source photo resized by 0.5 with bicubic interpolation.

The official ``clean_up.py`` decodes each image to float in [0, 1], calls
``cv2.resize(img, (0, 0), fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)`` and writes
``tf.cast(clip(img) * 255, uint8)`` as PNG. This module does the same without OpenCV:

* the kernel: ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=False)``
  is Keys' cubic with a = -0.75 at source position ``(x + 0.5) / scale - 0.5``, taps clamped to the
  border: OpenCV's INTER_CUBIC (which has no antialiasing either). With the scale fixed at exactly 0.5
  every output pixel weighs its 4x4 neighbours by (-3/32, 19/32, 19/32, -3/32) in each direction.
* the size: OpenCV computes ``dsize = (round(w * 0.5), round(h * 0.5))`` with ``cvRound`` (half to
  even: 7 -> 4, 9 -> 4), and keeps the scale at 0.5 (not ``dsize / size``). An odd side is padded
  by one replicated pixel (what the clamped taps read anyway) so that torch also works at scale 0.5;
  the extra output pixel is dropped when the half-to-even rule says so.
* the values: rounded to the nearest 8-bit level by default. The official ``tf.cast`` truncates, which
  darkens by half a level on average; ``truncate=True`` reproduces that (computing in float32).

Output: ``<stem>.png`` (lossless) in the output folder, each written under a temporary name and renamed.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ddnsr.errors import SettingError
from ddnsr.files import atomic_write
from ddnsr.training.data import DataError, DataWarning, list_images, load_rgb8

__all__ = ["CleanupReport", "bicubic_half", "clean_up", "clean_up_array", "half_size"]


def half_size(height: int, width: int) -> tuple[int, int]:
    """OpenCV's output size for fx = fy = 0.5: each side times 0.5, rounded half to even."""
    return round(height * 0.5), round(width * 0.5)


def bicubic_half(images: torch.Tensor) -> torch.Tensor:
    """``N x C x H x W`` float -> ``N x C x round(H/2) x round(W/2)``, as OpenCV INTER_CUBIC at fx = fy = 0.5.

    Values are not clipped (the cubic kernel overshoots a little); the dtype is kept.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise SettingError(f"expected an N x C x H x W float tensor, got {tuple(images.shape)} {images.dtype}")
    height, width = images.shape[-2:]
    out_h, out_w = half_size(height, width)
    if out_h < 1 or out_w < 1:
        raise SettingError(f"{width}x{height} is too small to halve")
    odd = (height | width) % 2
    padded = F.pad(images, (0, width % 2, 0, height % 2), mode="replicate") if odd else images
    half = F.interpolate(
        padded, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=False,
        recompute_scale_factor=False,
    )
    return half[:, :, :out_h, :out_w]


def clean_up_array(rgb: np.ndarray, *, truncate: bool = False) -> np.ndarray:
    """``H x W x 3`` uint8 -> ``round(H/2) x round(W/2) x 3`` uint8, the official clean-up of one image.

    ``truncate=False``: computed in float64 on 0..255 and rounded to nearest. ``truncate=True``: the
    official arithmetic, float32 in [0, 1], clipped, times 255 and truncated.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise SettingError(f"expected an H x W x 3 uint8 image, got {rgb.shape} {rgb.dtype}")
    chw = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    if truncate:
        half = bicubic_half(chw.to(torch.float32) / 255.0)
        out = (half.clamp(0.0, 1.0) * 255.0).to(torch.uint8)  # float -> uint8 truncates, like tf.cast
    else:
        half = bicubic_half(chw.to(torch.float64))
        out = half.round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(out[0].numpy().transpose(1, 2, 0))


def _save_png(rgb: np.ndarray, dest: Path) -> None:
    """Write ``rgb`` as PNG to ``dest`` under a temporary name first: a killed run leaves no partial PNG."""
    atomic_write(dest, lambda f: Image.fromarray(rgb).save(f, format="PNG"))


@dataclass
class CleanupReport:
    """What :func:`clean_up` did: files written, outputs already there (skipped), inputs that failed."""

    written: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def clean_up(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    skip_existing: bool = False,
    truncate: bool = False,
    progress: bool = True,
) -> CleanupReport:
    """Halve every image of ``input_dir`` (bicubic, see the module docstring) into ``output_dir/<stem>.png``.

    Files without an image extension are ignored; unreadable images are skipped with one
    :class:`~ddnsr.training.data.DataWarning` each. ``skip_existing`` keeps outputs already written (each one is
    complete: they are renamed into place), so an interrupted run can be resumed.
    """
    src, dst = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise DataError(f"{src}: input folder does not exist")
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{dst}: output exists and is not a folder")
    if dst.resolve() == src.resolve():
        raise DataError(f"{dst}: the output folder must differ from the input folder")
    files = list_images([src])
    if not files:
        raise DataError(f"{src}: no image files (png, jpg, jpeg, bmp, webp, tif, tiff)")
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise DataError(f"{path}: same output name {path.stem}.png as {by_stem[path.stem].name}")
        by_stem[path.stem] = path
    dst.mkdir(parents=True, exist_ok=True)
    report = CleanupReport()
    for path in tqdm(files, desc="clean-up", unit="img", disable=not progress):
        dest = dst / f"{path.stem}.png"
        if skip_existing and dest.is_file():
            report.existing.append(dest)
            continue
        try:
            half = clean_up_array(load_rgb8(path), truncate=truncate)
        except Exception as exc:  # unreadable, truncated, too small: skip it
            reason = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"{path}: skipped: {reason}", DataWarning, stacklevel=2)
            report.failed.append((path, reason))
            continue
        _save_png(half, dest)
        report.written.append(dest)
    return report

"""LR/HR pairs: what is scored (:class:`Pair`), pairing files by name, and the reference of each pair.

Pairing LR and HR files (:func:`pair_key`, :func:`pair_files`, :func:`pairs_from_folders`)
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
    reference the LR image of the next pair (cyclically, in the given order) of the same camera; a pair
    whose camera has no other member (or no camera) uses the next pair of the whole list. So the
    reference is always a different real LR image; with a single pair there is none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddnsr.errors import DataError, SettingError

__all__ = ["Pair", "Pairing", "camera_of", "pair_files", "pair_key", "pairs_from_folders", "reference_indices"]

_SEPARATORS = re.compile(r"[_\-. ]+")
_DROP_TOKEN = re.compile(r"^(?:(?:lr|hr)(?:x?\d+)?|x\d+)$")
_GLUED_SCALE = re.compile(r"^(\d+)x\d+$")

ImageSource = Path | np.ndarray


@dataclass(eq=False)
class Pair:
    """One LR image and, optionally, its HR partner (4x its size).

    ``lr`` / ``hr``: an image file (read with :func:`ddnsr.imageio.read_image`) or an HxWx3 array
    (uint8, uint16, or float in [0, 1]). ``name`` labels the pair in tables and picks its camera; it
    defaults to the LR file's name and must be given for an LR array.
    """

    lr: ImageSource
    hr: ImageSource | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.lr, (str, os.PathLike)):
            self.lr = Path(self.lr)
        if isinstance(self.hr, (str, os.PathLike)):
            self.hr = Path(self.hr)
        if not self.name:
            if not isinstance(self.lr, Path):
                raise SettingError("a Pair whose LR image is an array needs a name")
            self.name = self.lr.name

    def file(self, side: str) -> str | None:
        """The path of the ``"lr"`` or ``"hr"`` side as text, or None for an array (or no HR)."""
        value = getattr(self, side)
        return str(value) if isinstance(value, Path) else None


@dataclass
class Pairing:
    """LR/HR pairs found by :func:`pair_files`, and the files that could not be paired."""

    pairs: list[Pair] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def pair_key(stem: str) -> str:
    """The normalised name used to pair LR and HR files (see the module docstring).

    >>> pair_key("Canon_036_LR4"), pair_key("Canon_036_HR"), pair_key("0801x4")
    ('canon_036', 'canon_036', '0801')
    """
    kept = []
    for token in (t for t in _SEPARATORS.split(stem.lower()) if t):
        if _DROP_TOKEN.match(token):
            continue
        glued = _GLUED_SCALE.match(token)
        kept.append(glued.group(1) if glued else token)
    return "_".join(kept) if kept else stem.lower()


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
        elif len(candidates) > 1:
            out.problems.append((lr, f"ambiguous HR partner: {', '.join(p.name for p in candidates)}"))
        elif (hr := candidates[0]) in claimed:
            out.problems.append((lr, f"HR partner {hr.name} already paired with {claimed[hr].name}"))
        else:
            claimed[hr] = lr
            out.pairs.append(Pair(lr, hr))
    out.problems += [(hr, "no LR partner") for hr in hr_files if hr not in claimed]
    return out


def pairs_from_folders(lr_dir: str | os.PathLike, hr_dir: str | os.PathLike | None = None) -> Pairing:
    """The pairs of two folders (or the LR images alone when ``hr_dir`` is None), sorted by LR name.

    Raises:
        DataError: a folder that does not exist, or an LR folder without image files.
    """
    from ddnsr.imageio import list_images

    lr_dir = Path(lr_dir)
    if not lr_dir.is_dir():
        raise DataError(f"{lr_dir}: LR folder does not exist")
    if hr_dir is not None and not Path(hr_dir).is_dir():
        raise DataError(f"{hr_dir}: HR folder does not exist")
    lr_files = list_images([lr_dir])
    if not lr_files:
        raise DataError(f"{lr_dir}: no image files (png, jpg, jpeg, webp, bmp, tif, tiff)")
    if hr_dir is None:
        return Pairing([Pair(p) for p in lr_files])
    return pair_files(lr_files, list_images([Path(hr_dir)]))


def camera_of(name: str) -> str | None:
    """The camera of an image: its file-name prefix before the first ``_``; None without ``_``."""
    stem = Path(name).stem
    if "_" not in stem:
        return None
    return stem.split("_", 1)[0] or None


def reference_indices(names: Sequence[str]) -> list[int | None]:
    """For each image, the index of the reference image (see the module docstring); never itself.

    ``names``: the LR file names of the pairs, in order. ``None`` where no other image exists.
    """
    cameras = [camera_of(name) for name in names]
    groups: dict[str, list[int]] = {}
    for i, cam in enumerate(cameras):
        if cam is not None:
            groups.setdefault(cam, []).append(i)
    refs: list[int | None] = []
    for i, cam in enumerate(cameras):
        members = groups.get(cam, []) if cam is not None else []
        if len(members) >= 2:
            refs.append(members[(members.index(i) + 1) % len(members)])
        elif len(names) >= 2:
            refs.append((i + 1) % len(names))
        else:
            refs.append(None)
    return refs

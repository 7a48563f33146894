"""Finding image files in folders (:func:`list_images`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ddnsr.errors import ImageError
from ddnsr.files import is_temporary_name
from ddnsr.imageio.common import (
    IMAGE_EXTENSIONS,
)

__all__ = ["files_in", "list_images"]

# ------------------------------------------------------------------------------------------ discovery


def _is_image_name(name: str) -> bool:
    return not is_temporary_name(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def files_in(root: Path, accept: Callable[[str], bool], *, recursive: bool = False) -> list[Path]:
    """The files of folder ``root`` whose names ``accept`` takes, sorted by relative path; hidden and
    temporary sub-folders are not entered (the listing rule shared by images and videos)."""
    names: list[Path] = []
    if recursive:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [d for d in subfolders if not is_temporary_name(d)]
            names.extend(Path(folder, n) for n in files if accept(n))
    else:
        names = [p for p in root.iterdir() if p.is_file() and accept(p.name)]
    return sorted(names, key=lambda p: p.relative_to(root).parts)


def list_images(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], recursive: bool = False
) -> list[Path]:
    """The image files named by ``inputs`` (files and folders), without duplicates.

    A folder contributes its image files (extensions in :data:`IMAGE_EXTENSIONS`, any case), sorted by
    path; hidden names (starting with '.') and temporary ones ('.part', '.tmp', '~') are skipped, and so
    are hidden sub-folders when ``recursive``. A file named explicitly is kept whatever its extension
    (:func:`read_image` recognises images by content). Inputs keep their order.

    Raises:
        ImageError: an input that does not exist.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    seen: set[Path] = set()

    def add(candidate: Path) -> None:
        key = candidate.resolve()
        if key not in seen:
            seen.add(key)
            found.append(candidate)

    for item in inputs:
        root = Path(item)
        if root.is_dir():
            for candidate in files_in(root, _is_image_name, recursive=recursive):
                add(candidate)
        elif root.is_file():
            add(root)
        elif root.exists():
            raise ImageError(root, "not a regular file or folder (a FIFO, socket or device)")
        else:
            raise ImageError(root, "no such file or folder")
    return found


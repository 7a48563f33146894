"""Folders in: ``--real-lr DIR ... --clean-hr DIR ...`` (or ``--clean-hr self``) instead of records.json.

The user's folders become an in-memory records mapping under the official keys of the run's source and
target (``<source>-source`` and ``<source>-target-<target>``), so the rest of the data path (data.py) is
unchanged. ``--clean-hr self`` halves the camera's own photos with the official clean-up
(:func:`ddnsr.datasets.cleanup.clean_up`: bicubic x0.5) into ``RUN/clean-hr-self/<n>/`` once (kept and
reused by ``--resume``), so a user needs nothing but their photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ddnsr.errors import DataError

__all__ = ["SELF", "check_folder", "folder_records", "halve_into_run"]

SELF = "self"


def check_folder(folder: Path, min_size: int, flag: str) -> None:
    """Raise a one-line DataError unless ``folder`` holds at least one image of ``min_size`` px a side.

    Cases named: not a folder, no image files, every image smaller than the crop.
    """
    from PIL import Image

    from ddnsr.training.data import IMAGE_EXTENSIONS, list_images

    if not folder.is_dir():
        raise DataError(f"{flag} {folder}: {'is not a folder' if folder.exists() else 'folder does not exist'}")
    files = list_images([folder])
    if not files:
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"{flag} {folder}: no images in this folder (looked for {exts})")
    largest = (0, 0)
    for path in files:
        try:
            with Image.open(path) as img:
                size = img.size
        except Exception:  # unreadable files are skipped later by data.scan_images, with a warning each
            continue
        if min(size) >= min_size:
            return
        largest = max(largest, size, key=min)
    raise DataError(f"{flag} {folder}: every image is smaller than the {min_size} px training crop "
                    f"(largest {largest[0]}x{largest[1]}); use larger photos or a smaller --lr-crop")


def halve_into_run(real_lr: Sequence[str], run_dir: Path) -> list[str]:
    """The camera's photos halved (official clean-up) into ``run_dir/clean-hr-self/<n>``; returns the folders."""
    from ddnsr.datasets.cleanup import clean_up

    out = []
    for n, folder in enumerate(real_lr):
        dest = run_dir / "clean-hr-self" / str(n)
        dest.mkdir(parents=True, exist_ok=True)
        report = clean_up(folder, dest, skip_existing=True, progress=False)
        if report.written:
            print(f"--clean-hr self: halved {len(report.written)} photos of {folder} into {dest}", flush=True)
        out.append(str(dest))
    return out


def folder_records(real_lr: Sequence[str], clean_hr: Sequence[str], keys: tuple[str, str], lr_crop: int,
                   run_dir: Path) -> dict[str, list[str]]:
    """Records ``{x_key: real LR folders, y_key: clean HR folders}`` (absolute paths), every folder checked.

    Raises:
        DataError: one line naming the flag, the folder and what is wrong with it.
    """
    if not real_lr:
        raise DataError("--clean-hr needs --real-lr DIR (the camera's photos)")
    if not clean_hr:
        raise DataError("--real-lr needs --clean-hr DIR (clean photos), or --clean-hr self")
    for folder in real_lr:
        check_folder(Path(folder), lr_crop, "--real-lr")
    if list(clean_hr) == [SELF]:
        clean_hr = halve_into_run(real_lr, run_dir)
    elif SELF in clean_hr:
        raise DataError("--clean-hr self cannot be mixed with folders")
    for folder in clean_hr:
        check_folder(Path(folder), 4 * lr_crop, "--clean-hr")
    x_key, y_key = keys
    return {x_key: [str(Path(f).resolve()) for f in real_lr], y_key: [str(Path(f).resolve()) for f in clean_hr]}

"""``ddnsr data ntire2020 --root DIR``: the NTIRE 2020 Real-World SR data, laid out as records.json says.

Downloads the five archives of the original DDNSR README (:data:`ARCHIVES`, the one table of URLs;
``--base-url`` replaces their common location, for mirrors and tests), unpacks each into its
records folder under DIR, then makes the cleaned-up Track 2 target with :func:`ddnsr.datasets.cleanup.clean_up`.

* Resume: bytes go to ``<archive>.zip.part``; a later run asks the server for the rest (HTTP Range)
  and appends; a server that ignores Range sends the whole file again. A transfer is accepted only
  when its size matches Content-Length / Content-Range (and :attr:`Archive.size` when known); a short
  one is retried (resuming) and then reported, leaving the ``.part`` for the next run.
* Unpacking goes to a temporary folder which is renamed to the destination at the end, so a folder
  that exists is complete; entries that would land outside it (absolute paths, ``..``) are refused.
  An archive whose files sit in one top folder is unpacked without that folder.
* Idempotent: archives whose folder exists are skipped (no network), as is a clean-up folder that exists.
* The DPED canon photos (``track2-target-canon``) are not among the NTIRE archives: get them from the
  DPED site by hand.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from ddnsr.datasets.cleanup import clean_up
from ddnsr.datasets.pretrained import DownloadError, offline
from ddnsr.training.data import OFFICIAL_RECORDS, DataError, load_records

__all__ = ["ARCHIVES", "Archive", "DownloadError", "download", "fetch_ntire2020", "unpack"]


@dataclass(frozen=True)
class Archive:
    """One NTIRE 2020 archive: ``name`` (file stem), its URL, and where it goes.

    ``key``: the records entry whose (single) folder receives it; ``beside``: for the test sets, which
    have no records entry, a key whose folder's parent receives ``<name>/``. ``size``: bytes, if known.
    """

    name: str
    url: str
    key: str | None = None
    beside: str | None = None
    size: int | None = None
    max_size: int = 8 * 1024**3


#: What an archive may unpack to: its size times this plus a little (image archives barely compress;
#: a zip bomb of 1.5 MB declaring 1.5 GiB is refused before anything is written).
MAX_UNPACK_RATIO = 4
MAX_UNPACK_SLACK = 64 * 1024**2


_NTIRE = "https://data.vision.ee.ethz.ch/alugmayr/NTIRE2019/public/"  # as in the DDNSR README
ARCHIVES: tuple[Archive, ...] = (
    Archive("Corrupted-tr-x", _NTIRE + "Corrupted-tr-x.zip", key="track1-source"),
    Archive("Corrupted-te-x", _NTIRE + "Corrupted-te-x.zip", beside="track1-source"),
    Archive("DPEDiphone-tr-x", _NTIRE + "DPEDiphone-tr-x.zip", key="track2-source"),
    Archive("DPEDiphone-crop-te-x", _NTIRE + "DPEDiphone-crop-te-x.zip", beside="track2-source"),
    Archive(
        "train-target", "https://data.vision.ee.ethz.ch/alugmayr/real-world-sr/NTIRE20/train-target.zip",
        key="track1-target-div2k",
    ),
)


class _Incomplete(Exception):
    """A transfer that may succeed when tried again (resuming)."""


# ---------------------------------------------------------------------------------------------------------
# download


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` or ``bytes */TOTAL`` -> (start, total); None where absent."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _fetch_once(url: str, part: Path, size: int | None, timeout: float, progress: bool,
                max_size: int = Archive.max_size) -> None:
    """One request: append the missing bytes to ``part`` (or rewrite it); :class:`_Incomplete` if short.

    At most ``max_size`` bytes are accepted in all, whether the server announces a length or not.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "ddnsr", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: complete already, or a stale .part
            total = _content_range(exc.headers.get("Content-Range"))[1] or size
            if total == offset:
                return
            part.unlink()
            raise _Incomplete(f"{part.name} did not match the remote file; starting again") from None
        if exc.code >= 500:
            raise _Incomplete(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        if offset and resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Incomplete(f"the server resumed at byte {start}, not {offset}; starting again")
            mode = "ab"
        else:  # a full body: the server ignored the Range (or there was none)
            offset, total, mode = 0, None, "wb"
        if total is None and length is not None:
            total = offset + int(length)
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url}: the server announces {total} bytes, expected {size}")
        if total is not None and total > max_size:
            raise DownloadError(f"{url}: the server announces {total:,} bytes, over the {max_size:,} "
                                "this archive may have")
        total = total if total is not None else size
        with open(part, mode) as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[: -len(".part")],
            disable=not progress,
        ) as bar:
            received = offset
            while chunk := resp.read(1 << 20):
                received += len(chunk)
                if received > max_size:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    if received > max_size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: more than {max_size:,} bytes sent, more than this archive may have; stopped")
    got = part.stat().st_size
    if total is not None and got != total:
        raise _Incomplete(f"transfer cut short at {got} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    max_size: int = Archive.max_size,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial file; return ``dest``.

    Raises :class:`~ddnsr.datasets.pretrained.DownloadError` (one line) when the transfer stays short after
    ``retries`` further attempts (the ``.part`` is kept for the next run), or on an HTTP error.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    if offline():
        raise DownloadError(f"{url}: downloads are disabled by DDNSR_OFFLINE")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    reason = ""
    for _ in range(retries + 1):
        try:
            _fetch_once(url, part, size, timeout, progress, max_size)
        except DownloadError:  # final answers (HTTP errors, wrong sizes): no retry
            raise
        except (_Incomplete, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = str(getattr(exc, "reason", None) or exc)
            continue
        if size is not None and part.stat().st_size != size:
            part.unlink()
            raise DownloadError(f"{url}: got {dest.name} of a wrong size, expected {size} bytes (deleted)")
        os.replace(part, dest)
        return dest
    kept = f"; {part} is kept, run again to resume" if part.exists() else ""
    raise DownloadError(f"{url}: {reason} (after {retries + 1} attempts){kept}")


# ---------------------------------------------------------------------------------------------------------
# unpacking


def _entries(zf: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The archive's entries with safe relative paths (no absolute path, drive, ``..``), minus Mac litter."""
    entries = []
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        rel = PurePosixPath(name)
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in rel.parts:
            raise DownloadError(f"{archive}: entry '{info.filename}' would land outside the folder; refused")
        if not rel.parts or rel.parts[0] == "__MACOSX" or rel.name == ".DS_Store":
            continue
        entries.append((info, rel))
    if not any(not info.is_dir() for info, _ in entries):
        raise DownloadError(f"{archive}: the archive holds no file")
    return entries


def _copy_at_most(src: BinaryIO, out: BinaryIO, limit: int, archive: Path, name: str) -> None:
    """Copy ``src`` to ``out``, refusing an entry that yields more than its declared ``limit`` bytes."""
    written = 0
    while block := src.read(1 << 20):
        written += len(block)
        if written > limit:
            raise DownloadError(f"{archive}: entry '{name}' unpacks to more than the {limit:,} bytes it declares")
        out.write(block)


def unpack(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack the zip ``archive`` into the new folder ``dest`` (made whole or not at all); return ``dest``.

    If every entry sits in one top folder, that folder's content goes to ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists; not unpacking {archive.name} over it")
    tmp = dest.with_name(dest.name + ".unpacking")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a killed run
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = _entries(zf, archive)
            declared = sum(info.file_size for info, _ in entries)
            limit = MAX_UNPACK_RATIO * archive.stat().st_size + MAX_UNPACK_SLACK
            if declared > limit:
                raise DownloadError(f"{archive}: would unpack to {declared:,} bytes, over {limit:,} "
                                    f"({MAX_UNPACK_RATIO}x its size); refused")
            tmp.mkdir(parents=True)
            for info, rel in entries:
                target = tmp.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    _copy_at_most(src, out, info.file_size, archive, info.filename)
        top = list(tmp.iterdir())
        os.replace(top[0] if len(top) == 1 and top[0].is_dir() else tmp, dest)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive}: not a valid zip ({exc}); deleted, run again to fetch it") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


# ---------------------------------------------------------------------------------------------------------
# the whole data set


def _folder(records: dict[str, list[str]], key: str, what: str) -> str:
    folders = records.get(key)
    if not folders or len(folders) != 1:
        raise DataError(f"records: '{key}' must name exactly one folder to hold {what}")
    return folders[0]


def destination(archive: Archive, records: dict[str, list[str]], root: Path) -> Path:
    """Where ``archive`` is unpacked under ``root`` in the ``records`` layout."""
    if archive.key:
        return root / _folder(records, archive.key, archive.name)
    beside = _folder(records, archive.beside or "", archive.name)
    return root / PurePosixPath(beside).parent / archive.name


def fetch_ntire2020(
    root: str | os.PathLike,
    *,
    records: dict[str, list[str]] | str | os.PathLike | None = None,
    base_url: str | None = None,
    only: list[str] | None = None,
    keep_archives: bool = False,
    cleanup: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> dict[str, Path]:
    """Download, unpack and clean up the NTIRE 2020 RWSR data under ``root``; return name -> folder.

    ``records``: the layout (a dict or a records.json; default :data:`~ddnsr.training.data.OFFICIAL_RECORDS`, the
    repository's records.json). ``only``: archive names to fetch (default all five). The clean-up target
    (``track2-target-cleanup``) is made from the ``track2-source`` folder whenever that one exists.
    """
    root = Path(root)
    layout = OFFICIAL_RECORDS if records is None else records
    layout = layout if isinstance(layout, dict) else load_records(layout)
    names = [a.name for a in ARCHIVES]
    for name in only or []:
        if name not in names:
            raise DataError(f"--only {name}: not an NTIRE 2020 archive (choose from {', '.join(names)})")
    say = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    done: dict[str, Path] = {}
    for archive in ARCHIVES:
        if only and archive.name not in only:
            continue
        dest = destination(archive, layout, root)
        done[archive.name] = dest
        if dest.is_dir():
            say(f"{archive.name}: {dest} exists, skipped")
            continue
        url = f"{base_url.rstrip('/')}/{archive.name}.zip" if base_url else archive.url
        zip_path = dest.with_name(dest.name + ".zip")
        download(url, zip_path, size=archive.size, max_size=archive.max_size, retries=retries, timeout=timeout,
                 progress=progress)
        say(f"{archive.name}: unpacking into {dest}")
        unpack(zip_path, dest)
        if not keep_archives:
            zip_path.unlink()
    if cleanup:
        source = root / _folder(layout, "track2-source", "the Track 2 photos")
        target = root / _folder(layout, "track2-target-cleanup", "the cleaned-up photos")
        if target.is_dir():
            say(f"clean-up: {target} exists, skipped")
        elif source.is_dir():
            partial = target.with_name(target.name + ".partial")
            say(f"clean-up: halving {source} into {target}")
            clean_up(source, partial, skip_existing=True, progress=progress)
            os.replace(partial, target)
        done["cleanup"] = target
    canon = layout.get("track2-target-canon")
    if canon and not all((root / f).is_dir() for f in canon):
        say(f"note: the DPED canon photos (track2-target-canon) are no NTIRE archive: "
            f"put them in {root / canon[0]}")
    return done

"""Where a video's work lives and what it is: the part folder and its lock, the scan of the source's
packets, the segment plan cut at key frames, and the manifest of finished segments."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from ddnsr.errors import ImageError
from ddnsr.files import atomic_write
from ddnsr.imageio.video import VideoInfo, open_video
from ddnsr.inference.video.settings import VideoSettings, _reason

_SEGMENT = "seg-{:05d}.nut"
_MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1


def part_folder(dest: Path) -> Path:
    """The hidden folder of a video's finished segments: ``<dest's folder>/.<dest's name>.part``."""
    return dest.with_name(f".{dest.name}.part")


def lock_file(dest: Path) -> Path:
    """The lock a run holds on its output: ``<dest's folder>/.<dest's name>.lock``."""
    return dest.with_name(f".{dest.name}.lock")


@contextlib.contextmanager
def _output_lock(dest: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on :func:`lock_file` for the run (one run per output); removed after.

    A second run on the same output is refused with one ImageError line. Where ``fcntl`` is missing
    (Windows) no lock is taken.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = lock_file(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ImageError(dest, f"another ddnsr run is writing this output (it holds {path.name}); "
                             "wait for it to end or choose another -o") from None
        try:
            same = os.path.exists(path) and os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:  # not a lock file that the previous holder removed meanwhile
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def frames_folder(dest: Path) -> Path:
    """The ``frames_dir`` (``--frames``) for the PNG frames of ``dest``: ``<dest without extension>.frames``."""
    return dest.with_name(f"{dest.stem}.frames")


# ------------------------------------------------------------------------------------------ scan and plan


@dataclass
class _Scan:
    frames: int  # video packets in the chosen range
    first_pts: int
    keyframes: list[int]
    start_pts: int  # chosen range in the video stream's time base; end None: to the end
    end_pts: int | None


def _scan(info: VideoInfo, settings: VideoSettings) -> _Scan:
    """Read every packet once (no decoding): key frames, the frame count, and whether the file is whole."""
    import av

    tb = info.time_base
    start_pts = round(Fraction(settings.start) / tb)
    end_pts = None if settings.duration is None else round(Fraction(settings.start + settings.duration) / tb)
    keyframes: list[int] = []
    total = 0
    in_range: set[int] = set()  # the distinct time stamps: frames sharing one are written once
    first = None
    ends: dict[int, float] = {}
    container = open_video(info.path)
    try:
        video = container.streams[info.index]
        try:
            for packet in container.demux():
                if packet.pts is None and packet.dts is None:
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if packet.time_base is not None:
                    end = float((pts + (packet.duration or 0)) * packet.time_base)
                    ends[packet.stream.index] = max(ends.get(packet.stream.index, end), end)
                if packet.stream.index != video.index:
                    continue
                total += 1
                first = pts if first is None else min(first, pts)
                if packet.is_keyframe:
                    keyframes.append(pts)
                if pts >= start_pts and (end_pts is None or pts < end_pts):
                    in_range.add(pts)
        except av.error.FFmpegError as exc:
            raise ImageError(info.path, f"corrupt video file ({_reason(exc)})") from exc
        declared = container.duration / 1e6 if container.duration else None
        origin = container.start_time / 1e6 if container.start_time else 0.0
    finally:
        container.close()
    if total == 0:
        raise ImageError(info.path, "no video frames")
    if info.frames and total < info.frames and "mp4" in info.format_name:  # MP4 / MOV: the exact sample count
        raise ImageError(info.path, f"truncated or corrupt: {total} of the {info.frames} frames it declares")
    reach = max(ends.values(), default=0.0) - origin
    rate = float(info.rate) if info.rate else 25.0
    if declared and reach < declared - max(0.5, 3.0 / rate):
        raise ImageError(info.path, f"truncated or corrupt: its streams end at {reach:.2f} s of the "
                         f"{declared:.2f} s it declares")
    if not in_range:
        raise ImageError(info.path, f"no frames between {settings.start} s and the end of the range")
    return _Scan(len(in_range), first if first is not None else 0, sorted(set(keyframes)), start_pts, end_pts)


def _plan_segments(scan: _Scan, info: VideoInfo, seconds: float) -> list[list[int | None]]:
    """[[start_pts, end_pts or None], ...]: cut at the first key frame at least ``seconds`` after a start."""
    ticks = round(Fraction(seconds) / info.time_base)
    start = scan.start_pts
    segments: list[list[int | None]] = []
    for key in scan.keyframes:
        if key >= start + ticks and (scan.end_pts is None or key < scan.end_pts):
            segments.append([start, key])
            start = key
    segments.append([start, scan.end_pts])
    return segments


# ------------------------------------------------------------------------------------------------ manifest


def _fingerprint(info: VideoInfo, settings: VideoSettings, upscaler) -> dict:
    """What the segments depend on: the source file (size, time), the network and the output settings."""
    stat = info.path.stat()
    return {
        "version": _MANIFEST_VERSION,
        "source": str(info.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "model": str(getattr(upscaler, "name", "")), "precision": str(getattr(upscaler, "precision", "")),
        "tile": getattr(upscaler, "tile", None), "overlap": getattr(upscaler, "overlap", None),
        "codec": settings.codec, "crf": settings.crf, "container": settings.container,
        "segment_seconds": settings.segment_seconds, "start": settings.start, "duration": settings.duration,
        "frames": settings.frames_dir is not None, "frame_size": list(settings.frame_size(info)),
    }


@dataclass
class _Manifest:
    fingerprint: dict
    segments: list[list[int | None]]  # planned [start_pts, end_pts]
    done: dict[str, int] = field(default_factory=dict)  # segment index -> frames written
    first_index: dict[str, int] = field(default_factory=dict)  # segment index -> number of its first frame
    first_pts: dict[str, int] = field(default_factory=dict)  # segment index -> its first frame's source pts

    def save(self, folder: Path) -> None:
        atomic_write(folder / _MANIFEST, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> _Manifest | None:
        try:
            data = json.loads((folder / _MANIFEST).read_text("utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def _open_manifest(part: Path, fingerprint: dict, plan: Callable[[], list[list[int | None]]]) -> _Manifest:
    """The part folder's manifest when it was made with the same settings and its segments are there; else
    a fresh folder and manifest (with ``plan()``'s segments)."""
    manifest = _Manifest.load(part) if part.is_dir() else None
    if manifest is not None and manifest.fingerprint == fingerprint and all(
            (part / _SEGMENT.format(int(i))).is_file() for i in manifest.done):
        for stale in part.glob("*.tmp"):  # a segment being written when the last run stopped
            stale.unlink(missing_ok=True)
        return manifest
    if part.exists():
        if manifest is not None:
            warnings.warn(f"{part}: its segments were made from another source file or with other settings; "
                          "starting afresh", stacklevel=3)
        shutil.rmtree(part)
    part.mkdir(parents=True)
    manifest = _Manifest(fingerprint, plan())
    manifest.save(part)
    return manifest

"""Video files: recognising them (by content, then by name), probing, listing, and the colour / rotation facts
the upscaling pipeline (:mod:`ddnsr.inference.video`) carries from input to output.

Everything goes through PyAV (``av`` on PyPI, whose wheels carry FFmpeg): no container or codec code here.
Errors a user can fix (no such file, not a video, no video stream, a codec FFmpeg cannot decode, a frame
over the pixel limit, a truncated or corrupt file) are :class:`ddnsr.errors.ImageError` with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ddnsr.errors import ImageError
from ddnsr.files import is_temporary_name
from ddnsr.imageio.listing import files_in

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "display_rgb",
    "is_video",
    "list_videos",
    "main_video_stream",
    "open_video",
    "probe_video",
    "sws_colorspace",
]

#: Names taken as videos when a folder is listed (a file named explicitly is recognised by content).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi")


def _av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency of the video extra
        raise ImageError("video", "PyAV is not installed: pip install 'ddnsr[video]'") from exc
    return av


# ---------------------------------------------------------------------------------------------- recognising


def _looks_like_video(head: bytes) -> bool:
    """True for the first bytes of an ISO-BMFF / QuickTime, Matroska / WebM or AVI file."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, WebM
        return True
    return head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX")


def is_video(path: str | os.PathLike) -> bool:
    """True when ``path`` is a video file: its first bytes are those of MP4 / MOV, Matroska / WebM or AVI,
    or (content unreadable or unrecognised, and no image signature) its name ends in a video extension."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return path.suffix.lower() in VIDEO_EXTENSIONS
    if _looks_like_video(head):
        return True
    image_magic = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
    if head.startswith(image_magic) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return False
    return path.suffix.lower() in VIDEO_EXTENSIONS


def list_videos(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The video files in ``folder`` by extension (any case), sorted; hidden and temporary names skipped."""
    return files_in(Path(folder), _is_video_name, recursive=recursive)


def _is_video_name(name: str) -> bool:
    return not is_temporary_name(name) and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


# ------------------------------------------------------------------------------------------------ probing


@dataclass
class VideoInfo:
    """What the pipeline needs to know about a video file's first video stream.

    ``width`` x ``height`` are the stored frame's; ``rotation`` the display matrix's counter-clockwise angle
    (0, 90, 180, 270), so the displayed frame is ``display_size``. ``time_base`` is the stream's (pts units).
    ``frames`` (0 when unknown) and ``duration`` (seconds, None when unknown) are what the file declares.
    """

    path: Path
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None  # average frame rate (None: unknown)
    frames: int
    duration: float | None
    rotation: int
    colorspace: int  # AVColorSpace (2: unspecified)
    color_range: int  # AVColorRange (0 unspecified, 1 limited, 2 full)
    color_primaries: int
    color_trc: int
    codec: str
    format_name: str
    index: int = 0  # the video stream's index in the file
    other_streams: list[int] = field(default_factory=list)  # audio and subtitle stream indices (copied)
    bit_depth: int = 8  # bits per sample of the stored frames (10 for yuv420p10le, ...)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as displayed, after rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def open_video(path: str | os.PathLike):
    """``av.open(path)`` with FFmpeg's errors as one-line :class:`ImageError`."""
    av = _av()
    try:
        return av.open(os.fspath(path), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise ImageError(path, f"not a readable video ({_ffmpeg_reason(exc)})") from exc
    except OSError as exc:
        raise ImageError(path, f"cannot open: {exc.strerror or exc}") from exc


def _ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:200] or type(exc).__name__


def main_video_stream(container):
    """The first video stream that is not a cover picture (``attached_pic``), or None."""
    av = _av()
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")  # Matroska writes one per track
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    return None


def probe_video(path: str | os.PathLike, *, max_pixels: int | None = None) -> VideoInfo:
    """Open ``path``, decode its first video frame and describe the first video stream.

    Raises:
        ImageError: unreadable, no video stream, a codec FFmpeg cannot decode, no decodable frame,
            or a frame with more than ``max_pixels`` pixels.
    """
    av = _av()
    path = Path(path)
    container = open_video(path)
    try:
        stream = main_video_stream(container)
        if stream is None:
            kinds = sorted({s.type for s in container.streams if s.type != "video"}) or ["no streams"]
            raise ImageError(path, f"no video stream ({', '.join(kinds)} only)")
        ctx = stream.codec_context
        if ctx is None or not getattr(ctx, "name", None):
            raise ImageError(path, "unknown video codec: FFmpeg has no decoder for it")
        if ctx.width and ctx.height and max_pixels and ctx.width * ctx.height > max_pixels:
            raise ImageError(path, f"frame of {ctx.width}x{ctx.height} = {ctx.width * ctx.height:_} pixels is over "
                             f"max_pixels {max_pixels:_}").named("max_pixels")
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise ImageError(path, f"corrupt video data at the start ({_ffmpeg_reason(exc)})") from exc
        if first is None:
            raise ImageError(path, f"no decodable video frame ({ctx.name})")
        if max_pixels and first.width * first.height > max_pixels:
            raise ImageError(path, f"frame of {first.width}x{first.height} = {first.width * first.height:_} pixels "
                             f"is over max_pixels {max_pixels:_}").named("max_pixels")
        rotation = int(round((first.rotation or 0) / 90.0)) * 90 % 360
        other = [s.index for s in container.streams if s.type in ("audio", "subtitle")]
        return VideoInfo(
            path=path, width=first.width, height=first.height, time_base=stream.time_base,
            rate=stream.average_rate or stream.guessed_rate or None, frames=int(stream.frames or 0),
            duration=_declared_duration(container, stream), rotation=rotation,
            colorspace=int(first.colorspace), color_range=int(first.color_range),
            color_primaries=int(first.color_primaries), color_trc=int(first.color_trc), codec=ctx.name,
            format_name=container.format.name, other_streams=other, index=stream.index,
            bit_depth=max((c.bits for c in first.format.components), default=8),
        )
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------- colour


#: AVColorSpace -> swscale's colour matrix (SWS_CS_*): BT.709, FCC, BT.601 (470BG, 170M), 240M, BT.2020.
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


def sws_colorspace(colorspace: int) -> int:
    """The swscale matrix for a stream's AVColorSpace; unspecified and others: BT.601, swscale's default."""
    return _SWS_MATRIX.get(int(colorspace), 5)


def display_rgb(frame, info: VideoInfo) -> np.ndarray:
    """A decoded frame -> HxWx3 uint8 RGB as displayed: converted with the stream's matrix and range,
    scaled to the probed size if the stream changed size, and turned by its rotation."""
    rgb = frame.reformat(
        width=info.width, height=info.height, format="rgb24",
        src_colorspace=sws_colorspace(info.colorspace), src_color_range=info.color_range or 1,
        dst_color_range=2,
    ).to_ndarray()
    k = (info.rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


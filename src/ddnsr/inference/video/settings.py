"""Video settings and what they are checked against: containers, codecs (encoder, pixel format, CRF),
the encoders the installed FFmpeg has, frame sizes and what a container can hold."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ddnsr.errors import ImageError, SettingError, one_line
from ddnsr.imageio.video import VideoInfo, open_video
from ddnsr.inference.outscale import OutputSize

#: Containers by output extension (FFmpeg muxer names).
CONTAINERS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm", "mov": "mov"}


@dataclass(frozen=True)
class _Codec:
    encoders: tuple[str, ...]  # FFmpeg encoders, first available wins
    pix_fmt: str
    crf: int | None  # default quality (None: lossless, no CRF)
    crf_max: int
    options: tuple[tuple[str, str], ...] = ()


#: ``--codec`` choices: H.264 (default, CRF 18), H.265, VP9, AV1 (SVT-AV1 or libaom) and lossless FFV1 (RGB).
CODECS = {
    "h264": _Codec(("libx264",), "yuv420p", 18, 51, (("preset", "medium"),)),
    "h265": _Codec(("libx265",), "yuv420p", 20, 51, (("preset", "medium"), ("x265-params", "log-level=error"))),
    "vp9": _Codec(("libvpx-vp9",), "yuv420p", 31, 63, (("b", "0"), ("row-mt", "1"), ("deadline", "good"))),
    "av1": _Codec(("libsvtav1", "libaom-av1"), "yuv420p", 32, 63, ()),
    "ffv1": _Codec(("ffv1",), "bgr0", None, 0, (("level", "3"),)),
}

_RGB_FORMATS = ("bgr0", "gbrp")
#: The largest ``--start`` / ``--duration`` / ``--segment`` taken (a year, in seconds): far above any
#: clip, and small enough that time stamps computed from it stay finite integers.
MAX_SECONDS = 366 * 86400.0


@dataclass(frozen=True)
class VideoSettings:
    """How a video is written. ``crf`` None: the codec's default. ``start`` / ``duration`` in seconds
    (None: to the end). ``frames_dir``: also write every upscaled frame there as PNG."""

    codec: str = "h264"
    crf: int | None = None
    container: str = "mp4"
    segment_seconds: float = 10.0
    start: float = 0.0
    duration: float | None = None
    frames_dir: Path | None = None
    max_pixels: int | None = None
    queue_frames: int = 4
    size: OutputSize | None = None  # --outscale / --width / --height (None: x4)

    def frame_size(self, info: VideoInfo) -> tuple[int, int]:
        """(width, height) of the output frames: x4 of the displayed size, or ``size`` of it (made even,
        as 4:2:0 encoders need)."""
        width, height = info.display_size
        if self.size is None or self.size.is_x4:
            return 4 * width, 4 * height
        w, h = self.size.for_input(width, height)
        return max(2, w - w % 2), max(2, h - h % 2)


@dataclass
class VideoResult:
    """What a run did: frames upscaled now (``frames``) and in all (``total``), segments reused from an
    earlier run, seconds spent in the network and in all."""

    path: Path
    frames: int = 0
    total: int = 0
    resumed_segments: int = 0
    network_seconds: float = 0.0
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------- encoders


def _encoder_for(codec: str) -> str:
    import av

    spec = CODECS.get(codec)
    if spec is None:
        raise SettingError(f"codec {codec}: unknown (choose from {', '.join(CODECS)})").named("codec")
    for name in spec.encoders:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    raise SettingError(f"codec {codec}: the installed FFmpeg has no encoder for it "
                       f"({', '.join(spec.encoders)})").named("codec")


def check_settings(settings: VideoSettings) -> str:
    """Validate the settings; returns the encoder name. Raises SettingError."""
    encoder = _encoder_for(settings.codec)
    spec = CODECS[settings.codec]
    if settings.container not in CONTAINERS:
        raise SettingError(f"container {settings.container}: choose from {', '.join(CONTAINERS)}").named("container")
    if settings.crf is not None and spec.crf is None:
        raise SettingError(f"crf: {settings.codec} is lossless and has no quality setting").named("crf")
    if settings.crf is not None and not 0 <= settings.crf <= spec.crf_max:
        raise SettingError(f"crf {settings.crf}: {settings.codec} takes 0..{spec.crf_max}").named("crf")
    if not 0 < settings.segment_seconds <= MAX_SECONDS:
        raise SettingError(f"segment_seconds must be above 0 and at most {MAX_SECONDS:.0f} s, "
                           f"got {settings.segment_seconds}").named("segment_seconds")
    if not 0 <= settings.start <= MAX_SECONDS or (
            settings.duration is not None and not 0 < settings.duration <= MAX_SECONDS):
        raise SettingError(f"start must be in 0..{MAX_SECONDS:.0f} s and duration above 0 and at most that"
                           ).named("start", "duration")
    return encoder


def _add_video_stream(container, encoder: str, settings: VideoSettings, info: VideoInfo, size: tuple[int, int]):
    """The output video stream on ``container``: encoder, size, pixel format, time base, colour tags, CRF."""
    spec = CODECS[settings.codec]
    if encoder == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # errors only (SVT-AV1 prints its settings on stderr otherwise)
    rate = info.rate if info.rate and info.rate > 0 else Fraction(25)
    stream = container.add_stream(encoder, rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = spec.pix_fmt
    stream.time_base = info.time_base
    ctx = stream.codec_context
    ctx.time_base = info.time_base
    ctx.framerate = rate
    if spec.pix_fmt in _RGB_FORMATS:  # RGB: matrix "RGB", full range
        ctx.colorspace, ctx.color_range = 0, 2
    else:
        ctx.colorspace, ctx.color_range = info.colorspace, info.color_range or 1
    ctx.color_primaries, ctx.color_trc = info.color_primaries, info.color_trc
    options = dict(spec.options)
    if spec.crf is not None:
        options["crf"] = str(spec.crf if settings.crf is None else settings.crf)
    stream.options = options
    return stream


#: The largest frame (width, height) an encoder opens, measured (FFmpeg 7 with x264 164 and SVT-AV1 3):
#: x264 takes sides up to 16384 px, SVT-AV1 16384 x 8704. Others are not bounded here.
_MAX_FRAME = {"libx264": (16384, 16384), "libsvtav1": (16384, 8704)}


def _check_output_size(info: VideoInfo, settings: VideoSettings, encoder: str) -> None:
    """Refuse (before any work) a source whose x4 frames are larger than the encoder takes."""
    width, height = settings.frame_size(info)
    most = _MAX_FRAME.get(encoder)
    if most is not None and (width > most[0] or height > most[1]):
        raise ImageError(info.path, f"its output frames, {width}x{height}, are larger than {settings.codec} "
                         f"({encoder}) takes ({most[0]}x{most[1]}); choose codec h265 or ffv1").named("codec")


def _check_muxable(info: VideoInfo, settings: VideoSettings, encoder: str) -> None:
    """Open the output container in memory with the chosen codec and copies of the source's audio and
    subtitle streams, so that a combination the container cannot hold fails before any work."""
    import av

    source = open_video(info.path)
    try:
        out = av.open(io.BytesIO(), "w", format=CONTAINERS[settings.container])
        try:
            _add_video_stream(out, encoder, settings, info, (64, 64))
            for index in info.other_streams:
                out.add_stream_from_template(source.streams[index], opaque=True)
            out.start_encoding()
        finally:
            with contextlib.suppress(Exception):
                out.close()
    except (av.error.FFmpegError, ValueError) as exc:
        kinds = sorted({source.streams[i].codec_context.name for i in info.other_streams if
                        source.streams[i].codec_context is not None})
        what = f"{settings.codec}" + (f" with the source's {', '.join(kinds)} streams" if kinds else "")
        raise ImageError(info.path, f"a .{settings.container} file cannot hold {what} ({_reason(exc)}); "
                         "try container mkv").named("container") from exc
    finally:
        source.close()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or one_line(exc, limit=200)

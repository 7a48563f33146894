"""Upscaling videos x4: decode, upscale and encode overlapped, written in resumable segments, then remuxed
with the source's audio and subtitles.

::

    from ddnsr import Upscaler
    from ddnsr.inference.video import VideoSettings, upscale_video
    upscale_video("clip.mp4", "out/clip.mp4", Upscaler.load("track1"), VideoSettings(codec="h264", crf=18))

The pipeline (all FFmpeg work through PyAV; nothing hand-written):

* **scan**: the video stream's packets are read once without decoding: the frame count for progress, the
  key frames where segments may be cut, and a check that the file is whole (the streams reach the duration
  the container declares, the packet count matches a declared frame count), so a truncated file fails
  before any work;
* **plan**: the frames in ``[start, start + duration)`` are split into segments of at least
  ``segment_seconds``, each starting at a key frame of the source (the first at ``start``);
* **three threads**, joined by bounded queues (``queue_frames`` frames each, so memory does not grow with
  the clip): a decoder (frames -> RGB uint8 as displayed: stream matrix and range, rotation applied),
  the network (``Upscaler.upscale_planes``, uint8 out), an encoder (RGB -> the codec's pixel format with the
  source's matrix and range, one encoder per segment into ``<part>/seg-NNNNN.nut``). PyAV and torch release
  the GIL in their C code, so the three overlap;
* **resume**: each finished segment is renamed into place and recorded in ``<part>/manifest.json``
  (written atomically) with the settings it was made with; a rerun with the same settings continues with
  the first unfinished segment (other settings: the folder is started afresh);
* **assemble**: the segments' packets and the source's audio and subtitle packets (copied untouched, in
  time order) are muxed into a temporary file beside the destination, renamed into place only when
  complete; then the part folder is removed.

Time stamps are the source's (the output stream gets the source stream's time base; variable frame rate
is kept); with ``start`` they are shifted so that the preview starts at 0. A frame's rotation is applied
to its pixels (the output is upright, no display matrix); colour matrix, range, primaries and transfer
are carried as the output stream's tags and the RGB -> YUV conversion uses the same matrix and range.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import os
import queue
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ddnsr.errors import ImageError, SettingError, one_line
from ddnsr.files import atomic_write, publish, temporary_name
from ddnsr.imageio.video import VideoInfo, display_rgb, open_video, probe_video, sws_colorspace

__all__ = ["CODECS", "CONTAINERS", "VideoResult", "VideoSettings", "frames_folder", "part_folder",
           "upscale_video"]

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
_SEGMENT = "seg-{:05d}.nut"
_MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1
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
    width, height = (4 * side for side in info.display_size)
    most = _MAX_FRAME.get(encoder)
    if most is not None and (width > most[0] or height > most[1]):
        raise ImageError(info.path, f"its x4 frames, {width}x{height}, are larger than {settings.codec} "
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
        "frames": settings.frames_dir is not None,
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


# ------------------------------------------------------------------------------------------------ threads


class _Stop(Exception):
    """Raised in a worker when another stage failed."""


_END = "end"


class _Pipe:
    """A bounded queue whose ``put`` and ``get`` give up (raise :class:`_Stop`) once ``stop`` is set."""

    def __init__(self, size: int, stop: threading.Event) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = stop

    def put(self, item: object) -> None:
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self) -> object:
        while True:
            try:
                return self._q.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    raise _Stop from None


def _decode_frames(info: VideoInfo, start_pts: int, end_pts: int | None, from_start: bool) -> Iterator:
    """(pts, decoded frame) in display order for ``start_pts <= pts < end_pts``, seeking to ``start_pts``
    unless ``from_start``. Raises LookupError when the seek landed after ``start_pts`` (the caller then
    decodes from the start)."""
    import av

    container = open_video(info.path)
    try:
        stream = container.streams[info.index]
        stream.thread_type = "AUTO"
        if not from_start:
            container.seek(start_pts, stream=stream, backward=True)
        checked = from_start
        last = yielded = None
        for frame in container.decode(stream):
            pts = frame.pts if frame.pts is not None else (last + 1 if last is not None else 0)
            last = pts
            if yielded is not None and pts <= yielded:
                continue  # a second frame on one time stamp (such clips exist): the muxer takes one
            if not checked:
                if pts > start_pts:
                    raise LookupError(pts)
                checked = True
            if pts < start_pts:
                continue
            if end_pts is not None and pts >= end_pts:
                break
            if frame.is_corrupt:
                raise ImageError(info.path, f"corrupt video data at {float(pts * info.time_base):.2f} s")
            yielded = pts
            yield pts, frame
    except av.error.FFmpegError as exc:
        at = "" if last is None else f" after {float(last * info.time_base):.2f} s"
        raise ImageError(info.path, f"corrupt video data{at} ({_reason(exc)})") from exc
    finally:
        container.close()


def _decoder(info: VideoInfo, segments: list[tuple[int, list[int | None]]], out: _Pipe) -> None:
    """Worker: the frames of ``segments`` (index, [start, end]) as ("frame", pts, rgb uint8) and
    ("cut", index) after each segment, then _END; an exception is passed on as the item."""
    try:
        first = segments[0][1][0]
        last_end = segments[-1][1][1]
        try:
            frames = _decode_frames(info, first, last_end, from_start=False)
            item = next(frames, None)
        except LookupError:
            frames = _decode_frames(info, first, last_end, from_start=True)
            item = next(frames, None)
        for index, (_, end) in segments:
            out.put(("segment", index))
            while item is not None and (end is None or item[0] < end):
                out.put(("frame", item[0], display_rgb(item[1], info)))
                item = next(frames, None)
            out.put(("cut", index))
        frames.close()
        out.put(_END)
    except _Stop:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
        with contextlib.suppress(_Stop):
            out.put(exc)


class _SegmentEncoder:
    """Encodes one segment into ``<part>/seg-NNNNN.nut`` (written as ``.tmp``, renamed when closed)."""

    def __init__(self, part: Path, index: int, encoder: str, settings: VideoSettings, info: VideoInfo,
                 size: tuple[int, int]) -> None:
        import av

        self.final = part / _SEGMENT.format(index)
        self.temporary = self.final.with_name(self.final.name + ".tmp")
        self.container = av.open(str(self.temporary), "w", format="nut")
        self.stream = _add_video_stream(self.container, encoder, settings, info, size)
        self.info = info
        self.frames = 0
        self.first_pts: int | None = None
        rgb_out = CODECS[settings.codec].pix_fmt in _RGB_FORMATS
        self._convert = {"format": self.stream.pix_fmt}
        if not rgb_out:
            self._convert.update(dst_colorspace=sws_colorspace(info.colorspace), src_color_range=2,
                                 dst_color_range=info.color_range or 1)

    def add(self, pts: int, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(**self._convert)
        frame.pts = pts
        frame.time_base = self.info.time_base
        if self.first_pts is None:
            self.first_pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        publish(self.temporary, self.final)

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        self.temporary.unlink(missing_ok=True)


def _encoder(source: _Pipe, part: Path, manifest: _Manifest, encoder: str, settings: VideoSettings,
             info: VideoInfo, size: tuple[int, int], first_index: int, errors: list, stop: threading.Event) -> None:
    """Worker: ("segment", i) opens segment i, ("frame", pts, rgb) goes into it, ("cut", i) closes it and
    records it as done in the manifest."""
    from ddnsr.imageio import write_planes

    current: _SegmentEncoder | None = None
    index = first_index  # number of the next frame (for --frames)
    segment_start = index
    try:
        while True:
            item = source.get()
            if item == _END:
                return
            if item[0] == "segment":
                current, segment_start = _SegmentEncoder(part, item[1], encoder, settings, info, size), index
                continue
            if item[0] == "cut":
                current.close()
                manifest.done[str(item[1])] = current.frames
                manifest.first_index[str(item[1])] = segment_start
                if current.first_pts is not None:
                    manifest.first_pts[str(item[1])] = current.first_pts
                manifest.save(part)
                current = None
                continue
            _, pts, rgb = item
            current.add(pts, rgb)
            if settings.frames_dir is not None:
                write_planes(settings.frames_dir / f"{index:06d}.png", rgb)
            index += 1
    except _Stop:
        pass
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        errors.append(exc)
        stop.set()
    finally:
        if current is not None:
            current.abandon()


# ---------------------------------------------------------------------------------------------- assembly


def _segment_pts(path: Path) -> list[int]:
    """The pts of a segment file's video packets, in decode order."""
    container = open_video(path)
    try:
        return [p.pts for p in container.demux(container.streams.video[0]) if p.size]
    finally:
        container.close()


def _video_packets(part: Path, manifest: _Manifest, time_base: Fraction, offset: Fraction) -> Iterator:
    """The segments' packets in order with time stamps for the output.

    pts: the segment muxer shifted them to keep its time stamps non-negative; a segment's first packet (its
    key frame) has its first frame's pts (less ``offset``, the start of a part, in seconds), which gives the
    shift. dts (the segment files keep none for the packets before the encoder's delay): the packets' pts
    in presentation order, moved back by the largest reordering delay of all segments, so that they rise
    across segment joins and never pass their pts.
    """
    indices = [i for i in range(len(manifest.segments)) if manifest.done.get(str(i), 0)]
    delay = 0
    for index in indices:
        pts = _segment_pts(part / _SEGMENT.format(index))
        delay = max([delay] + [a - b for a, b in zip(sorted(pts), pts, strict=True)])
    for index in indices:
        path = part / _SEGMENT.format(index)
        ordered = iter(sorted(_segment_pts(path)))
        container = open_video(path)
        try:
            shift = None
            for packet in container.demux(container.streams.video[0]):
                if not packet.size:
                    continue
                if shift is None:
                    first = Fraction(manifest.first_pts[str(index)]) * time_base - offset
                    shift = round((packet.pts * packet.time_base - first) / packet.time_base)
                packet.pts -= shift
                packet.dts = next(ordered) - delay - shift
                yield packet
        finally:
            container.close()


def _source_packets(info: VideoInfo, settings: VideoSettings) -> Iterator:
    """The source's audio and subtitle packets within the range, shifted by ``start``."""
    if not info.other_streams:
        return
    container = open_video(info.path)
    try:
        streams = [container.streams[i] for i in info.other_streams]
        start = Fraction(settings.start)
        end = None if settings.duration is None else start + Fraction(settings.duration)
        for packet in container.demux(*streams):
            if not packet.size or packet.time_base is None:
                continue
            tb = packet.time_base
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is not None and ((start and stamp * tb < start) or (end is not None and stamp * tb >= end)):
                continue
            if start:
                shift = round(start / tb)
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts = None if packet.dts is None else packet.dts - shift
            yield packet
    finally:
        container.close()


def _order(packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else 0.0


def _assemble(part: Path, manifest: _Manifest, info: VideoInfo, settings: VideoSettings, dest: Path) -> None:
    """Mux the segments' video and the source's other streams into ``dest`` (a temporary name, then renamed)."""
    import av

    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(dest)
    try:
        first = open_video(part / _SEGMENT.format(min(int(i) for i, n in manifest.done.items() if n)))
        source = open_video(info.path)
        out = av.open(str(temporary), "w", format=CONTAINERS[settings.container])
        try:
            video = out.add_stream_from_template(first.streams.video[0], opaque=True)
            video.time_base = info.time_base
            targets = {}
            for index in info.other_streams:
                template = source.streams[index]
                stream = out.add_stream_from_template(template, opaque=True)
                stream.time_base = template.time_base
                for key in ("language", "title", "handler_name"):
                    if key in template.metadata:
                        stream.metadata[key] = template.metadata[key]
                targets[index] = stream
            for key, value in source.metadata.items():
                if key not in ("major_brand", "minor_version", "compatible_brands", "encoder"):
                    out.metadata[key] = value
            tagged = ((p, video) for p in _video_packets(part, manifest, info.time_base, Fraction(settings.start)))
            copied = ((p, targets[p.stream.index]) for p in _source_packets(info, settings))
            keyed = (((_order(p), n, p, s) for n, (p, s) in enumerate(gen)) for gen in (tagged, copied))
            for _, _, packet, stream in heapq.merge(*keyed, key=lambda t: (t[0], t[1])):
                packet.stream = stream
                out.mux(packet)
        finally:
            out.close()
            first.close()
            source.close()
        publish(temporary, dest)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------- the run


def _to_float(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> float32 in [0, 1] in one pass."""
    return np.multiply(rgb, np.float32(1.0 / 255.0), dtype=np.float32)


def upscale_video(source: str | os.PathLike, dest: str | os.PathLike, upscaler, settings: VideoSettings | None = None,
                  *, progress: Callable[[int, int], None] | None = None) -> VideoResult:
    """Upscale the video ``source`` x4 into ``dest`` (see the module docstring), resuming from
    ``part_folder(dest)`` when an earlier run with the same settings stopped.

    Args:
        upscaler: a :class:`ddnsr.Upscaler` (any model, device, precision, tile).
        progress: ``progress(done, total)`` in frames, after each frame (``done`` counts resumed frames).

    Raises:
        ImageError: a source that cannot be used (one line); the part folder is then removed. Also when
            another run writes ``dest`` (it holds :func:`lock_file`): its work is left alone.
        SettingError: bad settings, a codec the installed FFmpeg lacks.
    """
    settings = settings or VideoSettings()
    source, dest = Path(source), Path(dest)
    encoder = check_settings(settings)
    with _output_lock(dest):
        return _upscale_video(source, dest, upscaler, settings, encoder, progress)


def _upscale_video(source: Path, dest: Path, upscaler, settings: VideoSettings, encoder: str,
                   progress: Callable[[int, int], None] | None) -> VideoResult:
    """:func:`upscale_video` once the output is locked."""
    began = time.perf_counter()
    info = probe_video(source, max_pixels=settings.max_pixels)
    if info.bit_depth > 8:  # the network and every codec setting here are 8-bit: say so rather than hide it
        warnings.warn(f"{source}: {info.bit_depth}-bit video; the result is written as 8-bit "
                      f"{settings.codec} ({CODECS[settings.codec].pix_fmt})", stacklevel=2)
    _check_output_size(info, settings, encoder)
    _check_muxable(info, settings, encoder)
    scan = _scan(info, settings)
    part = part_folder(dest)
    manifest = _open_manifest(part, _fingerprint(info, settings, upscaler),
                              lambda: _plan_segments(scan, info, settings.segment_seconds))
    result = VideoResult(dest, total=scan.frames, resumed_segments=len(manifest.done))
    try:
        _run_segments(info, settings, upscaler, encoder, part, manifest, scan.frames, result, progress)
        _assemble(part, manifest, info, settings, dest)
    except ImageError:
        shutil.rmtree(part, ignore_errors=True)  # the input is at fault: a rerun would not help
        raise
    shutil.rmtree(part, ignore_errors=True)
    result.seconds = time.perf_counter() - began
    return result


def _run_segments(info: VideoInfo, settings: VideoSettings, upscaler, encoder: str, part: Path,
                  manifest: _Manifest, total: int, result: VideoResult,
                  progress: Callable[[int, int], None] | None) -> None:
    """Decode -> network (this thread) -> encode for the segments not yet done."""
    todo = [(i, seg) for i, seg in enumerate(manifest.segments) if str(i) not in manifest.done]
    done = sum(manifest.done.values())
    if progress is not None:
        progress(done, total)
    if not todo:
        return
    if settings.frames_dir is not None:
        settings.frames_dir.mkdir(parents=True, exist_ok=True)
    width, height = info.display_size
    stop = threading.Event()
    decoded, upscaled = _Pipe(settings.queue_frames, stop), _Pipe(settings.queue_frames, stop)
    errors: list[BaseException] = []
    workers = [
        threading.Thread(target=_decoder, args=(info, todo, decoded), name="ddnsr-decode", daemon=True),
        threading.Thread(target=_encoder, args=(upscaled, part, manifest, encoder, settings, info,
                                                (width * 4, height * 4), done, errors, stop),
                         name="ddnsr-encode", daemon=True),
    ]
    for worker in workers:
        worker.start()
    try:
        while True:
            item = decoded.get()
            if isinstance(item, BaseException):
                raise item
            if item == _END or item[0] != "frame":
                upscaled.put(item)
                if item == _END:
                    break
                continue
            _, pts, rgb = item
            began = time.perf_counter()
            out = upscaler.upscale_planes(_to_float(rgb), dtype=np.uint8)
            result.network_seconds += time.perf_counter() - began
            upscaled.put(("frame", pts, out))
            result.frames += 1
            if progress is not None:
                progress(done + result.frames, total)
            if errors:
                raise errors[0]
        workers[1].join()
        if errors:
            raise errors[0]
    except _Stop:
        if errors:
            raise errors[0] from None
        raise
    finally:
        stop.set()
        for worker in workers:
            worker.join()

"""The three threads of a video run: decoder -> network (the calling thread) -> segment encoder, joined
by bounded :class:`_Pipe` queues that carry typed messages (:class:`SegmentStart`, :class:`Frame`,
:class:`SegmentEnd`, :class:`End`, or the exception that stopped a worker)."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddnsr.errors import ImageError
from ddnsr.files import publish
from ddnsr.imageio.video import VideoInfo, display_rgb, open_video, sws_colorspace
from ddnsr.inference.outscale import resize_planes
from ddnsr.inference.video.plan import _SEGMENT, _Manifest
from ddnsr.inference.video.settings import (
    _RGB_FORMATS,
    CODECS,
    VideoResult,
    VideoSettings,
    _add_video_stream,
    _reason,
)

# ------------------------------------------------------------------------------------------------ threads


class _Stop(Exception):
    """Raised in a worker when another stage failed."""


@dataclass(frozen=True)
class SegmentStart:
    """Open segment ``index`` (its frames follow)."""

    index: int


@dataclass(frozen=True)
class Frame:
    """One frame: ``pts`` in the video stream's time base, ``rgb`` HxWx3 uint8 as displayed (decoded, or
    upscaled 4Hx4Wx3)."""

    pts: int
    rgb: np.ndarray


@dataclass(frozen=True)
class SegmentEnd:
    """Segment ``index`` is complete: close it and record it as done."""

    index: int


@dataclass(frozen=True)
class End:
    """No more segments."""


#: What the pipes carry: a message, or the exception that stopped the decoder (raised by the reader).
Message = SegmentStart | Frame | SegmentEnd | End


class _Pipe:
    """A bounded queue whose ``put`` and ``get`` give up (raise :class:`_Stop`) once ``stop`` is set."""

    def __init__(self, size: int, stop: threading.Event) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = stop

    def put(self, item: Message | BaseException) -> None:
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self) -> Message | BaseException:
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
    """Worker: for each of ``segments`` (index, [start, end]) a SegmentStart, its Frames and a SegmentEnd,
    then End; an exception is passed on as the item."""
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
            out.put(SegmentStart(index))
            while item is not None and (end is None or item[0] < end):
                out.put(Frame(item[0], display_rgb(item[1], info)))
                item = next(frames, None)
            out.put(SegmentEnd(index))
        frames.close()
        out.put(End())
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
    """Worker: SegmentStart opens a segment, a Frame goes into it, SegmentEnd closes it and records it as
    done in the manifest; End stops."""
    from ddnsr.imageio import write_planes

    current: _SegmentEncoder | None = None
    index = first_index  # number of the next frame (for --frames)
    segment_start = index
    try:
        while True:
            item = source.get()
            if isinstance(item, End):
                return
            if isinstance(item, SegmentStart):
                current, segment_start = _SegmentEncoder(part, item.index, encoder, settings, info, size), index
            elif isinstance(item, SegmentEnd):
                current.close()
                key = str(item.index)
                manifest.done[key] = current.frames
                manifest.first_index[key] = segment_start
                if current.first_pts is not None:
                    manifest.first_pts[key] = current.first_pts
                manifest.save(part)
                current = None
            elif isinstance(item, Frame):
                current.add(item.pts, item.rgb)
                if settings.frames_dir is not None:
                    write_planes(settings.frames_dir / f"{index:06d}.png", item.rgb)
                index += 1
            else:
                raise TypeError(f"unexpected message {item!r}")
    except _Stop:
        pass
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        errors.append(exc)
        stop.set()
    finally:
        if current is not None:
            current.abandon()


def _to_float(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> float32 in [0, 1] in one pass."""
    return np.multiply(rgb, np.float32(1.0 / 255.0), dtype=np.float32)


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
    size = settings.frame_size(info)
    stop = threading.Event()
    decoded, upscaled = _Pipe(settings.queue_frames, stop), _Pipe(settings.queue_frames, stop)
    errors: list[BaseException] = []
    workers = [
        threading.Thread(target=_decoder, args=(info, todo, decoded), name="ddnsr-decode", daemon=True),
        threading.Thread(target=_encoder, args=(upscaled, part, manifest, encoder, settings, info,
                                                size, done, errors, stop),
                         name="ddnsr-encode", daemon=True),
    ]
    for worker in workers:
        worker.start()
    try:
        while True:
            item = decoded.get()
            if isinstance(item, BaseException):
                raise item
            if not isinstance(item, Frame):
                upscaled.put(item)
                if isinstance(item, End):
                    break
                continue
            began = time.perf_counter()
            out = upscaler.upscale_planes(_to_float(item.rgb), dtype=np.uint8)
            if out.shape[1::-1] != size:
                out = resize_planes(out, size)
            result.network_seconds += time.perf_counter() - began
            upscaled.put(Frame(item.pts, out))
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

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

The stages live in their own modules: :mod:`~ddnsr.inference.video.settings` (containers, codecs, the
checks), :mod:`~ddnsr.inference.video.plan` (part folder, scan, segment plan, manifest),
:mod:`~ddnsr.inference.video.pipeline` (the threads and their typed messages) and
:mod:`~ddnsr.inference.video.remux` (assembly); this module runs them in order.

Time stamps are the source's (the output stream gets the source stream's time base; variable frame rate
is kept); with ``start`` they are shifted so that the preview starts at 0. A frame's rotation is applied
to its pixels (the output is upright, no display matrix); colour matrix, range, primaries and transfer
are carried as the output stream's tags and the RGB -> YUV conversion uses the same matrix and range.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from ddnsr.errors import ImageError
from ddnsr.imageio.video import VideoInfo, probe_video
from ddnsr.inference.video.pipeline import _run_segments
from ddnsr.inference.video.plan import (
    _fingerprint,
    _open_manifest,
    _output_lock,
    _plan_segments,
    _Scan,
    _scan,
    frames_folder,
    lock_file,
    part_folder,
)
from ddnsr.inference.video.remux import _assemble
from ddnsr.inference.video.settings import (
    CODECS,
    CONTAINERS,
    MAX_SECONDS,
    VideoResult,
    VideoSettings,
    _check_muxable,
    _check_output_size,
    check_settings,
)

__all__ = ["CODECS", "CONTAINERS", "MAX_SECONDS", "VideoResult", "VideoSettings", "check_settings", "check_video",
           "frames_folder", "lock_file", "part_folder", "upscale_video"]


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


def check_video(source: str | os.PathLike, settings: VideoSettings | None = None) -> tuple[VideoInfo, int]:
    """The checks :func:`upscale_video` makes before any work, without the work (e.g. to refuse an upload
    at once): (the probe of ``source``, the number of frames it would upscale).

    Raises:
        ImageError, SettingError: as :func:`upscale_video` would before its first frame.
    """
    settings = settings or VideoSettings()
    info, scan = _check_source(Path(source), settings, check_settings(settings))
    return info, scan.frames


def _check_source(source: Path, settings: VideoSettings, encoder: str) -> tuple[VideoInfo, _Scan]:
    """Probe, output size, what the container holds, and the scan of every packet (a truncated file fails)."""
    info = probe_video(source, max_pixels=settings.max_pixels)
    _check_output_size(info, settings, encoder)
    _check_muxable(info, settings, encoder)
    return info, _scan(info, settings)


def _upscale_video(source: Path, dest: Path, upscaler, settings: VideoSettings, encoder: str,
                   progress: Callable[[int, int], None] | None) -> VideoResult:
    """:func:`upscale_video` once the output is locked."""
    began = time.perf_counter()
    info, scan = _check_source(source, settings, encoder)
    if info.bit_depth > 8:  # the network and every codec setting here are 8-bit: say so rather than hide it
        warnings.warn(f"{source}: {info.bit_depth}-bit video; the result is written as 8-bit "
                      f"{settings.codec} ({CODECS[settings.codec].pix_fmt})", stacklevel=2)
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

"""The last stage of a video run: the finished segments' packets and the source's audio and subtitle
packets, in time order, muxed into the destination (a temporary name, renamed when complete)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from ddnsr.files import publish, temporary_name
from ddnsr.imageio.video import VideoInfo, open_video
from ddnsr.inference.video.plan import _SEGMENT, _Manifest
from ddnsr.inference.video.settings import CONTAINERS, VideoSettings

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

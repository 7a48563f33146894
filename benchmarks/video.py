"""Video upscaling speed: frames per second of ``upscale_video`` and the share of its time spent outside the network.

    python benchmarks/video.py [--model track1] [--frames 6] [--rounds 2] [--size 320x240] [--threads N] [--codec h264]
    python benchmarks/infer.py --video      (the same)

A clip of ``--frames`` frames of a moving pattern with a tone (H.264 + AAC in mp4) is made in a temporary
folder, then, in each of ``--rounds`` rounds (alternating which goes first, so that a change in the load of a
shared machine falls on both alike):

* ``network only`` (the baseline): the clip's frames, decoded beforehand into memory, through
  ``Upscaler.upscale_planes`` one after the other: what the network alone costs;
* ``pipeline``: :func:`ddnsr.inference.video.upscale_video` on the clip (decode, network, encode overlapped;
  segments, remux with the audio), timed by the wall clock; it also sums the time of its network calls.

Printed: frames per second of each; the share of the pipeline's wall time outside its network calls
(``1 - network / wall``: time the network waited for FFmpeg or the queues) and its overhead against the
baseline (``1 - network-only / wall``: what the video work adds in all, including the CPU the decoder and
encoder threads take from the network). The goal is under 10% on the CPU.

Measured on the 2-core AMD EPYC VM (AVX2; shared with other jobs, load about 9.5), torch 2.13.0+cpu, 2 threads,
the bundled ``track1`` model (RRDBNet 6 blocks x 32 features), 320x240 -> 1280x960, H.264 CRF 18, 6 frames x 2
rounds (10 min): network only 0.044 frames/s, pipeline 0.041 frames/s; 1.6% of the pipeline's time outside its
network calls; pipeline's wall time +6.4% over the network-only baseline (docs/video.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A moving pattern at 25 fps with a 440 Hz tone: H.264 (yuv420p) and AAC in mp4."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        for i in range(frames):
            rgb = np.stack([128 + 100 * np.sin((xx + 3 * i) / 9), 128 + 100 * np.cos((yy - 2 * i) / 13),
                            128 + 100 * np.sin((xx + yy + 5 * i) / 21)], axis=2)
            rgb[(4 * i) % height : (4 * i) % height + 3] = 255
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = frames * 48000 // 25
        for pos in range(0, samples, 1024):
            n = min(1024, samples - pos)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(pos, pos + n) / 48000)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, pos
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="track1", help="bundled name or model file (default: track1)")
    ap.add_argument("--frames", type=int, default=6, help="frames in the clip (default: 6)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both runs (default: 2)")
    ap.add_argument("--size", default="320x240", help="WxH of the clip (default: 320x240)")
    ap.add_argument("--codec", default="h264", help="output codec (default: h264)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import torch

    from ddnsr import Upscaler
    from ddnsr.inference.video import VideoSettings, upscale_video

    width, height = (int(v) for v in args.size.lower().split("x"))
    up = Upscaler.load(args.model, device=args.device, threads=args.threads)
    print(f"device: {_device_name(up.device)}, {torch.get_num_threads()} torch threads; model {args.model}; "
          f"{width}x{height} -> {4 * width}x{4 * height}, {args.frames} frames, {args.codec}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", width, height, args.frames)
        frames = decoded_frames(clip)
        up.upscale_planes(frames[0].astype(np.float32) / 255, dtype=np.uint8)  # warm-up (oneDNN kernels)

        network_only = wall = in_network = 0.0

        def baseline() -> float:
            began = time.perf_counter()
            for rgb in frames:
                up.upscale_planes(np.multiply(rgb, np.float32(1 / 255), dtype=np.float32), dtype=np.uint8)
            return time.perf_counter() - began

        def pipeline(k: int) -> tuple[float, float]:
            began = time.perf_counter()
            result = upscale_video(clip, Path(tmp) / f"out{k}" / "clip.mp4", up, VideoSettings(codec=args.codec))
            return time.perf_counter() - began, result.network_seconds

        for k in range(args.rounds):
            if k % 2:
                w, t = pipeline(k)
                b = baseline()
            else:
                b = baseline()
                w, t = pipeline(k)
            network_only, wall, in_network = network_only + b, wall + w, in_network + t
            print(f"  round {k + 1}: network only {b:.1f} s, pipeline {w:.1f} s (network calls {t:.1f} s)", flush=True)
    n = len(frames) * args.rounds
    print(f"  network only (baseline)   {n / network_only:6.3f} frames/s   {network_only:7.1f} s")
    print(f"  pipeline (upscale_video)  {n / wall:6.3f} frames/s   {wall:7.1f} s   (network calls {in_network:.1f} s)")
    print(f"  share of the pipeline's time outside its network calls: {100 * (1 - in_network / wall):.1f}%"
          "   (goal: < 10%)")
    print(f"  pipeline's wall time over the network-only baseline: {100 * (wall / network_only - 1):+.1f}%")


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return "CPU " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return device.type


if __name__ == "__main__":
    sys.exit(main())

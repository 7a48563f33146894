"""Videos through ``ddnsr upscale`` and :mod:`ddnsr.inference.video`, on small clips made here with PyAV.

The clips: moving patterns (a ramp that shifts each frame and a travelling line) with a sine tone, key
frames every few frames (so that they split into several segments), variable frame rate, odd sizes
(FFV1), a rotation in the display matrix, and broken files (truncated, corrupt tail, no video stream,
unknown codec). The network is a tiny random RRDBNet (1 block of 8 features) so that a frame takes
milliseconds; lossless FFV1 output lets a test compare the video's frames with the Upscaler's own result.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from ddnsr import Upscaler  # noqa: E402
from ddnsr.errors import ImageError  # noqa: E402
from ddnsr.imageio.video import is_video, probe_video  # noqa: E402
from ddnsr.inference.video import VideoSettings, frames_folder, part_folder, upscale_video  # noqa: E402
from ddnsr.nets import RRDBNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MS = Fraction(1, 1000)


# ------------------------------------------------------------------------------------------------ clips


def pattern(i: int, w: int, h: int) -> np.ndarray:
    """Frame ``i`` of the moving pattern: HxWx3 uint8."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (np.arange(w)[None] * 7 + i * 9) % 256
    img[..., 1] = (np.arange(h)[:, None] * 11 + i * 3) % 256
    img[(2 * i) % h, :, 2] = 255
    return img


def make_clip(path: Path, *, w: int = 36, h: int = 28, n: int = 20, step_ms=lambda i: 100, gop: int = 5,
              audio: bool = True, codec: str = "libx264", pix_fmt: str = "yuv420p", fmt: str | None = None,
              rotation: int = 0, video: bool = True) -> Path:
    """A clip of ``n`` moving-pattern frames (pts in ms from ``step_ms``) and a 440 Hz tone (AAC, 8 kHz)."""
    out = av.open(str(path), "w", format=fmt)
    end_ms = sum(step_ms(i) for i in range(n))
    if video:
        options = {"g": str(gop)}
        if codec == "libx264":
            options.update(keyint_min=str(gop), sc_threshold="0")
        stream = out.add_stream(codec, rate=10, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.time_base = stream.codec_context.time_base = MS
        if rotation:
            stream.set_display_rotation(rotation)
    if audio:
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
    t = 0
    for i in range(n if video else 0):
        frame = av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24")
        frame.pts, frame.time_base = t, MS
        t += step_ms(i)
        out.mux(stream.encode(frame))
    if video:
        out.mux(stream.encode(None))
    if audio:
        total, pos = end_ms * 8, 0
        while pos < total:
            k = min(1024, total - pos)
            x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(pos, pos + k) / 8000)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, pos
            out.mux(sound.encode(frame))
            pos += k
        out.mux(sound.encode(None))
    out.close()
    return path


def vfr(i: int) -> int:
    return 150 if i % 3 == 0 else 50


def frames_of(path: Path) -> list[tuple[Fraction, np.ndarray]]:
    """(time in seconds, HxWx3 uint8 RGB) of every decoded frame."""
    with av.open(str(path)) as c:
        return [(f.pts * f.time_base, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def times_of(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def audio_digest(path: Path) -> tuple[int, str]:
    """(packets, md5 of their bytes) of the first audio stream."""
    with av.open(str(path)) as c:
        data = [bytes(p) for p in c.demux(audio=0) if p.size]
    return len(data), hashlib.md5(b"".join(data)).hexdigest()


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny frames: threads only add overhead (and the machine is shared)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_net() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, init="esrgan").eval()


@pytest.fixture(scope="module")
def up(tiny_net, one_thread) -> Upscaler:
    return Upscaler(tiny_net, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def model_file(tiny_net, tmp_path_factory) -> Path:
    from ddnsr import save_model

    return save_model(tiny_net, tmp_path_factory.mktemp("model") / "tiny.safetensors")


def expected(up: Upscaler, rgb: np.ndarray) -> np.ndarray:
    return up.upscale_planes(rgb.astype(np.float32) / 255.0, dtype=np.uint8)


# ------------------------------------------------------------------------------------------------- tests


def test_default_h264_keeps_frames_time_stamps_audio_and_x4(tmp_path, up):
    src = make_clip(tmp_path / "clip.mp4", n=24, step_ms=vfr)  # variable frame rate, 5 segments
    result = upscale_video(src, tmp_path / "out" / "clip.mp4", up, VideoSettings(segment_seconds=0.4))
    assert result.frames == result.total == 24
    out = frames_of(result.path)
    assert [t for t, _ in out] == times_of(src)  # same time stamps, variable frame rate kept
    assert len({b - a for a, b in zip(times_of(src), times_of(src)[1:], strict=False)}) > 1
    assert all(rgb.shape == (28 * 4, 36 * 4, 3) for _, rgb in out)
    assert audio_digest(result.path) == audio_digest(src)  # the audio packets bit for bit
    with av.open(str(result.path)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.format.name) == ("h264", "yuv420p")
    # lossy, but the frames are the upscaled ones: close to the Upscaler's result on the decoded source
    first = expected(up, frames_of(src)[3][1]).astype(np.float32)
    assert np.abs(out[3][1].astype(np.float32) - first).mean() < 6
    assert not part_folder(result.path).exists()


def test_lossless_frames_equal_the_upscaler_odd_size(tmp_path, up):
    src = make_clip(tmp_path / "odd.mkv", w=33, h=23, n=12, codec="ffv1", pix_fmt="yuv444p", audio=False)
    settings = VideoSettings(codec="ffv1", container="mkv", segment_seconds=0.3,
                             frames_dir=frames_folder(tmp_path / "odd.mkv"))
    result = upscale_video(src, tmp_path / "odd_x4.mkv", up, settings)
    source, out = frames_of(src), frames_of(result.path)
    assert len(out) == len(source) == 12
    for (t_in, lr), (t_out, sr) in zip(source, out, strict=True):
        assert t_in == t_out
        assert sr.shape == (92, 132, 3)
        np.testing.assert_array_equal(sr, expected(up, lr))  # the same Upscaler, nothing lost after it
    pngs = sorted(settings.frames_dir.glob("*.png"))
    assert len(pngs) == 12
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(pngs[5]).convert("RGB")), out[5][1])


def test_rotation_is_applied_to_the_pixels(tmp_path, up):
    src = make_clip(tmp_path / "turned.mp4", w=32, h=24, n=6, codec="libx264", pix_fmt="yuv444p", rotation=90,
                    audio=False)
    info = probe_video(src)
    assert info.rotation == 90 and info.display_size == (24, 32)
    result = upscale_video(src, tmp_path / "turned.mkv", up, VideoSettings(codec="ffv1", container="mkv"))
    out = frames_of(result.path)
    assert out[0][1].shape == (32 * 4, 24 * 4, 3)  # upright: 24 wide, 32 high, x4
    with av.open(str(src)) as c:
        stored = next(c.decode(video=0)).to_ndarray(format="rgb24")
    np.testing.assert_array_equal(out[0][1], expected(up, np.ascontiguousarray(np.rot90(stored, 1))))
    with av.open(str(result.path)) as c:
        assert next(c.decode(video=0)).rotation == 0  # no display matrix left to turn it again


def test_start_and_duration_do_a_part(tmp_path, up):
    src = make_clip(tmp_path / "long.mp4", n=30)  # 3 s at 10 fps
    result = upscale_video(src, tmp_path / "part.mp4", up, VideoSettings(start=1.0, duration=0.8))
    times = times_of(result.path)
    assert times == [Fraction(i, 10) for i in range(8)]  # frames 10..17, shifted to start at 0
    with av.open(str(result.path)) as c:
        assert 0.6 < float(c.streams.audio[0].duration * c.streams.audio[0].time_base) < 1.2


def with_subtitles(clip: Path, srt: Path, dest: Path) -> Path:
    """``clip``'s streams and the subtitles of ``srt`` (SubRip, language "eng") remuxed into ``dest``."""
    with av.open(str(clip)) as a, av.open(str(srt)) as b, av.open(str(dest), "w") as out:
        streams = {s.index: out.add_stream_from_template(s, opaque=True) for s in a.streams}
        text = out.add_stream_from_template(b.streams[0], opaque=True)
        text.metadata["language"] = "eng"
        for packet in a.demux():
            if packet.size:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
        for packet in b.demux():
            if packet.size:
                packet.stream = text
                out.mux(packet)
    return dest


def test_subtitles_and_audio_are_copied_untouched(tmp_path, up):
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,200 --> 00:00:01,000\nHello\n\n2\n00:00:01,200 --> 00:00:01,800\nWorld\n")
    src = with_subtitles(make_clip(tmp_path / "v.mkv", n=20), srt, tmp_path / "subs.mkv")
    result = upscale_video(src, tmp_path / "out.mkv", up, VideoSettings(container="mkv", segment_seconds=0.5))

    def subtitles(path: Path) -> list[tuple[bytes, Fraction]]:
        with av.open(str(path)) as c:
            assert c.streams.subtitles[0].metadata.get("language") == "eng"
            return [(bytes(p), p.pts * p.time_base) for p in c.demux(subtitles=0) if p.size]

    assert subtitles(result.path) == subtitles(src) == [(b"Hello", Fraction(1, 5)), (b"World", Fraction(6, 5))]
    assert audio_digest(result.path) == audio_digest(src)
    assert times_of(result.path) == times_of(src)
    with pytest.raises(ImageError, match=r"subs.mkv: a \.mp4 file cannot hold h264 with the source's aac, srt streams"):
        upscale_video(src, tmp_path / "out.mp4", up)  # mp4 has no SubRip: said before any work


def test_colour_matrix_and_range_are_carried(tmp_path, up):
    path = tmp_path / "full709.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv444p"
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 1, 2, 1, 1  # BT.709, full range
        for i in range(3):
            rgb = av.VideoFrame.from_ndarray(pattern(i, 32, 24), format="rgb24")
            frame = rgb.reformat(format="yuv444p", dst_colorspace=1, dst_color_range=2)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    info = probe_video(path)
    assert (info.colorspace, info.color_range) == (1, 2)
    result = upscale_video(path, tmp_path / "x4.mp4", up)
    with av.open(str(result.path)) as c:
        frame = next(c.decode(video=0))
        assert (int(frame.colorspace), int(frame.color_range)) == (1, 2)
        assert (int(frame.color_primaries), int(frame.color_trc)) == (1, 1)
        got = frame.reformat(format="rgb24", src_colorspace=1, src_color_range=2, dst_color_range=2).to_ndarray()
    with av.open(str(path)) as c:
        lr = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace=1, src_color_range=2,
                                             dst_color_range=2).to_ndarray()
    # decoded and re-encoded with the same matrix and range: close to the Upscaler's own result
    assert np.abs(got.astype(np.float32) - expected(up, lr)).mean() < 6


@pytest.mark.parametrize("name, codec", [("a.avi", "mpeg4"), ("b.mov", "libx264"), ("c.webm", "libvpx-vp9"),
                                         ("d.mkv", "libx264")])
def test_inputs_in_every_container(tmp_path, up, name, codec):
    src = make_clip(tmp_path / name, n=8, codec=codec, audio=name != "a.avi" and name != "c.webm")
    result = upscale_video(src, tmp_path / "out.mp4", up)
    assert times_of(result.path) == times_of(src) == [Fraction(i, 10) for i in range(8)]
    if name in ("b.mov", "d.mkv"):
        assert audio_digest(result.path) == audio_digest(src)


def test_codecs_the_installed_ffmpeg_has(tmp_path, up):
    src = make_clip(tmp_path / "c.mp4", n=6, audio=False)
    for codec, ext in (("h265", "mp4"), ("vp9", "webm"), ("av1", "mkv")):
        try:
            result = upscale_video(src, tmp_path / f"c_{codec}.{ext}", up, VideoSettings(codec=codec, container=ext))
        except ValueError as exc:  # SettingError: this FFmpeg has no encoder for it
            assert "no encoder" in str(exc)
            continue
        with av.open(str(result.path)) as c:
            stream = c.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (144, 112)
            assert stream.codec_context.name in ({"h265": "hevc"}.get(codec, codec), "libdav1d", "libaom-av1")


def test_a_container_that_cannot_hold_the_audio_fails_in_one_line(tmp_path, up):
    src = make_clip(tmp_path / "aac.mp4", n=4)
    with pytest.raises(ImageError, match=r"aac.mp4: a \.webm file cannot hold vp9 with the source's aac.*mkv"):
        upscale_video(src, tmp_path / "aac.webm", up, VideoSettings(codec="vp9", container="webm"))
    assert not (tmp_path / "aac.webm").exists() and not part_folder(tmp_path / "aac.webm").exists()


def test_detected_by_content_not_only_by_name(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", n=3, audio=False)
    renamed = tmp_path / "clip.bin"
    renamed.write_bytes(clip.read_bytes())
    assert is_video(renamed) and is_video(clip)
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "photo.mp4", format="PNG")
    assert not is_video(tmp_path / "photo.mp4")


def test_memory_stays_bounded_on_a_long_clip(tmp_path):
    """In a fresh process, a 60-frame clip and then a 600-frame one: the peak RSS may not grow by more than a few
    MiB with the 540 more frames (as raw output alone they would be 540 x 96x128x3 = 20 MiB)."""
    short = make_clip(tmp_path / "short.mp4", w=32, h=24, n=60, gop=30)
    long = make_clip(tmp_path / "long.mp4", w=32, h=24, n=600, gop=30)
    script = textwrap.dedent("""
        import resource, sys, numpy as np
        from ddnsr.inference.video import VideoSettings, upscale_video
        class Nearest:  # a stand-in network: this measures the pipeline, not torch
            name = "nearest"
            def upscale_planes(self, rgb, dtype=np.uint8):
                return np.rint(rgb.repeat(4, 0).repeat(4, 1) * 255).astype(dtype)
        for src in sys.argv[1:]:
            upscale_video(src, src + ".x4.mp4", Nearest(), VideoSettings(segment_seconds=3))
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", script, str(short), str(long)], capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    peaks = [int(v) * 1024 for v in done.stdout.split()]
    assert len(times_of(Path(f"{long}.x4.mp4"))) == 600
    assert peaks[1] - peaks[0] < 8 * 2**20, [p / 2**20 for p in peaks]


# ------------------------------------------------------------------------------------------ command line


SLOW_CLI = textwrap.dedent("""
    import os, sys, time
    from ddnsr.inference.upscaler import Upscaler
    plain = Upscaler.upscale_planes
    calls = [0]
    def counted(self, *a, **k):
        calls[0] += 1
        time.sleep(float(os.environ.get("FRAME_DELAY", "0")))
        return plain(self, *a, **k)
    Upscaler.upscale_planes = counted
    from ddnsr.cli import main
    code = main(sys.argv[1:])
    print("network calls:", calls[0], flush=True)
    sys.exit(code)
""")


def run_cli(args: list[str], delay: float = 0.0, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "FRAME_DELAY": str(delay), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", SLOW_CLI, "upscale", *args, "--threads", "1", "-q"]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def finished_segments(part: Path) -> dict:
    """The manifest's finished segments, or {} while it is absent or being replaced."""
    try:
        return json.loads((part / "manifest.json").read_text())["done"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def test_kill_9_and_rerun_equals_an_uninterrupted_run(tmp_path, model_file, one_thread):
    src = make_clip(tmp_path / "clip.mp4", n=30, step_ms=vfr)
    common = [str(src), "--model", str(model_file), "--segment", "0.5"]  # default: H.264 in mp4
    up = Upscaler.load(model_file, device="cpu")  # the uninterrupted run, here (1 thread, as the command's)
    upscale_video(src, tmp_path / "whole" / "clip.mp4", up, VideoSettings(segment_seconds=0.5))

    out = tmp_path / "resumed"
    part = part_folder(out / "clip.mp4")
    proc = run_cli([*common, "-o", str(out)], delay=0.1, wait=False)
    deadline = time.monotonic() + 120
    while len(finished_segments(part)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)  # the manifest, not the segment file: a segment is renamed before it is recorded
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "clip.mp4").exists()  # nothing under the final name
    done = json.loads((part / "manifest.json").read_text())["done"]
    assert len(done) >= 2 and len(done) < len(json.loads((part / "manifest.json").read_text())["segments"])

    again = run_cli([*common, "-o", str(out)])
    assert again.returncode == 0, again.stderr
    calls = int(again.stdout.split("network calls:")[1])
    assert calls <= 30 - sum(done.values())  # the finished segments were not done again
    assert not part.exists()
    resumed, reference = frames_of(out / "clip.mp4"), frames_of(tmp_path / "whole" / "clip.mp4")
    assert [t for t, _ in resumed] == [t for t, _ in reference] == times_of(src)
    for (_, a), (_, b) in zip(resumed, reference, strict=True):
        np.testing.assert_array_equal(a, b)
    assert audio_digest(out / "clip.mp4") == audio_digest(src)


def test_bad_videos_fail_in_one_line_each_and_the_batch_goes_on(tmp_path, model_file):
    good = make_clip(tmp_path / "good.mp4", n=6)
    whole = make_clip(tmp_path / "whole.mkv", n=30).read_bytes()
    (tmp_path / "truncated.mkv").write_bytes(whole[: len(whole) * 6 // 10])
    tail = bytearray(whole)
    a, b = len(tail) * 7 // 10, len(tail) - 64
    tail[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    (tmp_path / "corrupt_tail.mkv").write_bytes(bytes(tail))
    make_clip(tmp_path / "sound_only.mkv", video=False)
    ffv1 = make_clip(tmp_path / "tmp.mkv", n=4, codec="ffv1", audio=False).read_bytes()
    assert ffv1.count(b"V_FFV1") == 1
    (tmp_path / "unknown_codec.mkv").write_bytes(ffv1.replace(b"V_FFV1", b"V_QQQQ"))
    make_clip(tmp_path / "big.mp4", w=64, h=48, n=2, audio=False)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    names = ["truncated.mkv", "corrupt_tail.mkv", "sound_only.mkv", "unknown_codec.mkv", "big.mp4", "junk.mp4"]
    out = tmp_path / "out"
    done = run_cli([*(str(tmp_path / n) for n in names), str(good), "-o", str(out), "--model", str(model_file),
                    "--max-pixels", "2000", "--frames", "--start", "0.1", "--duration", "0:00.3"])
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == len(names), done.stderr
    for name, reason in zip(names, ["truncated or corrupt", "truncated or corrupt", "no video stream",
                                    "unknown video codec", "over --max-pixels", "not a readable video"], strict=True):
        assert any(name in line and reason in line for line in lines), (name, reason, lines)
    assert sorted(p.name for p in out.iterdir()) == ["good.frames", "good.mp4"]  # nothing half-written, no .part
    assert times_of(out / "good.mp4") == [0, Fraction(1, 10), Fraction(2, 10)]  # 0.1 s .. 0.4 s of the clip
    assert sorted(p.name for p in (out / "good.frames").iterdir()) == ["000000.png", "000001.png", "000002.png"]


def test_frames_too_large_for_the_codec_are_refused_up_front_and_the_batch_goes_on(tmp_path, model_file, capsys):
    """A 4098-px-wide clip: x4 is 16392 px, over x264's 16384. One line before any work, no .part; the next
    input of the batch is done."""
    from ddnsr.cli import main

    wide = make_clip(tmp_path / "wide.mp4", w=4098, h=16, n=2, audio=False)
    good = make_clip(tmp_path / "good.mp4", n=3, audio=False)
    out = tmp_path / "out"
    assert main(["upscale", str(wide), str(good), "-o", str(out), "--model", str(model_file), "--device", "cpu",
                 "-q"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "wide.mp4" in lines[0] and "16392x64" in lines[0] and "16384" in lines[0], lines
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4"]
    assert len(times_of(out / "good.mp4")) == 3


def test_two_frames_on_one_time_stamp_are_written_once(tmp_path, up):
    """Clips in the wild carry duplicate time stamps; the muxer refuses them ("non monotonically increasing
    dts"): the second frame of a time stamp is dropped, the rest is kept."""
    src = make_clip(tmp_path / "dup.mkv", n=8, step_ms=lambda i: 0 if i == 3 else 100, audio=False)
    source_times = times_of(src)
    assert len(source_times) == 8 and len(set(source_times)) == 7
    result = upscale_video(src, tmp_path / "out" / "dup.mp4", up, VideoSettings())
    assert times_of(tmp_path / "out" / "dup.mp4") == sorted(set(source_times))
    assert result.frames == result.total == 7
    assert not part_folder(tmp_path / "out" / "dup.mp4").exists()


def test_a_second_run_on_the_same_output_is_refused_in_one_line(tmp_path, model_file, capsys):
    """Two runs on one output: the second is refused up front (it used to do all the work and fail with a
    bare FileNotFoundError); the first finishes undisturbed and leaves no lock behind."""
    from ddnsr.cli import main

    src = make_clip(tmp_path / "clip.mp4", n=10, audio=False)
    out = tmp_path / "out"
    first = run_cli([str(src), "-o", str(out), "--model", str(model_file), "--segment", "0.3"], delay=0.3,
                    wait=False)
    part = part_folder(out / "clip.mp4")
    deadline = time.monotonic() + 120
    while not (part / "manifest.json").exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    assert first.poll() is None, first.communicate()
    assert main(["upscale", str(src), "-o", str(out), "--model", str(model_file), "--device", "cpu", "-q"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "clip.mp4" in lines[0] and "another ddnsr run" in lines[0], lines
    _, err = first.communicate(timeout=240)
    assert first.returncode == 0, err
    assert len(times_of(out / "clip.mp4")) == 10
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]


def test_a_10_bit_clip_is_said_to_become_8_bit(tmp_path, up):
    # issue 26, 17: 10-bit in, 8-bit out is said in one warning, not hidden
    clip = make_clip(tmp_path / "deep.mkv", n=3, codec="ffv1", pix_fmt="yuv420p10le", audio=False)
    assert probe_video(clip).bit_depth == 10
    with pytest.warns(UserWarning, match=r"deep.mkv: 10-bit video; the result is written as 8-bit h264"):
        upscale_video(clip, tmp_path / "out.mp4", up)
    assert probe_video(tmp_path / "out.mp4").bit_depth == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an 8-bit clip: no warning
        upscale_video(make_clip(tmp_path / "plain.mp4", n=3, audio=False), tmp_path / "out2.mp4", up)

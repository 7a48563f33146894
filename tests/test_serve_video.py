"""``ddnsr serve`` takes videos as ``ddnsr upscale`` does (issue 27): a video upload (told from a photo by its
content) becomes a job of the same worker, written by ``upscale_video`` with the command line's defaults;
progress in frames, cancel between frames without leftovers, download (file and zip), one-line refusals of
broken videos and videos over the limits.

The clips are made here with PyAV (tests/test_video.py's ``make_clip``: 32x24, a few frames, a tone); the
network is the tiny random RRDBNet of tests/test_video.py, given as the server's ``--model`` file, so a frame
takes milliseconds.
"""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("flask")
av = pytest.importorskip("av")

import test_video as tv  # noqa: E402
from test_serve_api import H, make, wait  # noqa: E402
from test_video import audio_digest, frames_of, make_clip, with_subtitles  # noqa: E402

from ddnsr.serve.jobs import PID_FILE  # noqa: E402

tiny_net, model_file = tv.tiny_net, tv.model_file  # the same fixtures


@pytest.fixture
def page(tmp_path, model_file):
    """The app and its client, with the tiny model as the default model."""
    app, client = make(tmp_path, model=str(model_file))
    yield app, client
    app.extensions["ddnsr"].close()


def send(client, path: Path, name: str | None = None, **form):
    """Upload ``path`` to /api/jobs (the page's form field ``image`` takes photos and videos)."""
    data = {"image": (io.BytesIO(path.read_bytes()), name or path.name), **form}
    return client.post("/api/jobs", data=data, headers=H, content_type="multipart/form-data")


def job_files(app, job_id: str) -> list[str]:
    """Every name in a job's folder, hidden ones (part folder, lock, temporary files) included."""
    return sorted(p.name for p in app.extensions["ddnsr"].worker.jobs[job_id].folder.iterdir())


def gate_at_frame(app, frame: int, timeout: float = 60) -> tuple[threading.Event, threading.Event]:
    """Hold the worker when a video job reports ``frame`` frames done, until ``release`` is set (the page's
    cancel lands then); ``reached`` is set when it gets there. Returns (reached, release)."""
    worker = app.extensions["ddnsr"].worker
    reached, release = threading.Event(), threading.Event()
    original = worker._progress

    def gated(job):
        report = original(job)

        def progress(done: int, total: int) -> None:
            if done == frame:
                report(done, total)  # the status shows this frame before the hold
                reached.set()
                release.wait(timeout)
            report(done, total)

        return progress

    worker._progress = gated
    return reached, release


def test_a_video_is_upscaled_as_ddnsr_upscale_does(page, tmp_path, model_file):
    """Upload -> frames progress -> download: the frames of ddnsr upscale's own file, x4, the audio kept."""
    from ddnsr.cli import main

    app, client = page
    clip = make_clip(tmp_path / "my clip.mp4", w=32, h=24, n=6)
    r = send(client, clip)
    assert r.status_code == 201, r.get_json()
    queued = r.get_json()
    assert queued["kind"] == "video" and queued["frames_total"] == 6 and queued["size_in"] == [32, 24]
    assert queued["format"] == "mp4" and queued["download_name"] == "my_clip_x4.mp4"
    job = wait(client, queued["id"])
    assert job["state"] == "done", job
    assert job["frames_done"] == job["frames_total"] == 6 and job["size_out"] == [128, 96]
    got = client.get(f"/api/jobs/{job['id']}/result?download=1")
    assert got.status_code == 200 and got.mimetype == "video/mp4"
    assert got.headers["Content-Disposition"].startswith("attachment") and "my_clip_x4.mp4" in got.headers[
        "Content-Disposition"]
    (tmp_path / "page.mp4").write_bytes(got.data)
    frames = frames_of(tmp_path / "page.mp4")
    assert len(frames) == 6 and all(rgb.shape == (96, 128, 3) for _, rgb in frames)
    assert audio_digest(tmp_path / "page.mp4") == audio_digest(clip)  # the tone, packet for packet
    assert main(["upscale", str(clip), "-o", str(tmp_path / "cli"), "--model", str(model_file), "-q"]) == 0
    cli = frames_of(tmp_path / "cli" / "my clip.mp4")
    assert [t for t, _ in frames] == [t for t, _ in cli]
    for (_, a), (_, b) in zip(frames, cli, strict=True):
        np.testing.assert_array_equal(a, b)  # the same path: Upscaler, settings, encoder
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/results.zip", headers=H).data))
    assert archive.namelist() == ["my_clip_x4.mp4"] and archive.read("my_clip_x4.mp4") == got.data
    assert job_files(app, job["id"]) == ["result.mp4", "video.mp4"]  # no part folder, lock or temporary file


def test_content_not_the_name_tells_a_video_from_a_photo(page, tmp_path):
    """As ddnsr upscale: an MP4 named .png is a video, a PNG named .mp4 a photo."""
    app, client = page
    clip = make_clip(tmp_path / "clip.mp4", w=32, h=24, n=4, audio=False)
    video = wait(client, send(client, clip, name="disguised.png").get_json()["id"])
    assert video["kind"] == "video" and video["state"] == "done" and video["download_name"] == "disguised_x4.mp4"
    Image.new("RGB", (16, 12), (200, 30, 30)).save(tmp_path / "photo.png")
    photo = wait(client, send(client, tmp_path / "photo.png", name="photo.mp4").get_json()["id"])
    assert photo["kind"] == "upscale" and photo["state"] == "done" and photo["size_out"] == [64, 48]
    assert photo["download_name"] == "photo_x4.png"


def test_the_command_lines_video_defaults_and_the_mkv_fallback(page, tmp_path):
    """The page writes ddnsr upscale's defaults (h264, CRF 18, mp4); a source whose streams mp4 cannot hold
    (SubRip subtitles) is written as mkv, named and typed so, its subtitles kept."""
    from ddnsr.cli import build_parser
    from ddnsr.imageio.video import VIDEO_EXTENSIONS
    from ddnsr.serve.jobs import video_settings

    cli = build_parser().parse_args(["upscale", "x.mp4", "-o", str(tmp_path)])
    page_settings = video_settings(None)
    assert (page_settings.codec, page_settings.crf, page_settings.container, page_settings.segment_seconds) == (
        cli.codec, cli.crf, cli.video_ext, cli.segment)
    app, client = page
    info = client.get("/api/info").get_json()
    assert info["video_format"] == {"container": "mp4", "codec": "h264", "crf": 18, "fallback": "mkv"}
    assert tuple(info["video_extensions"]) == VIDEO_EXTENSIONS and info["limits"]["max_video_seconds"] == 600
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,400\nHello\n")
    subs = with_subtitles(make_clip(tmp_path / "v.mkv", w=32, h=24, n=5), srt, tmp_path / "subs.mkv")
    job = wait(client, send(client, subs).get_json()["id"])
    assert job["state"] == "done" and job["format"] == "mkv" and job["download_name"] == "subs_x4.mkv", job
    got = client.get(f"/api/jobs/{job['id']}/result?download=1")
    assert got.mimetype == "video/x-matroska" and "subs_x4.mkv" in got.headers["Content-Disposition"]
    (tmp_path / "out.mkv").write_bytes(got.data)
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [bytes(p) for p in c.demux(subtitles=0) if p.size] == [b"Hello"]
    assert len(frames_of(tmp_path / "out.mkv")) == 5
    deep = make_clip(tmp_path / "deep.mkv", w=32, h=24, n=3, codec="ffv1", pix_fmt="yuv420p10le", audio=False)
    job = wait(client, send(client, deep, name="my deep.mkv").get_json()["id"])
    assert job["state"] == "done" and job["format"] == "mp4"  # nothing mp4 cannot hold: the default
    assert job["warnings"] == ["my_deep.mkv: 10-bit video; the result is written as 8-bit h264 (yuv420p)"]


def test_progress_by_frames_and_cancel_between_frames(page, tmp_path):
    """A running video reports frames done / total and stops at the next frame when cancelled, leaving no
    result, part folder or lock; a queued one is skipped; the worker goes on with the next job."""
    app, client = page
    reached, release = gate_at_frame(app, 2)
    clip = make_clip(tmp_path / "clip.mp4", w=32, h=24, n=6)
    try:
        first, second = (send(client, clip, name=f"c{i}.mp4").get_json()["id"] for i in range(2))
        assert reached.wait(60)
        states = {j["id"]: j for j in client.get("/api/jobs").get_json()["jobs"]}
        assert states[first]["state"] == "running" and states[second]["state"] == "queued"
        assert (states[first]["frames_done"], states[first]["frames_total"]) == (2, 6)
        assert states[second]["frames_total"] == 6  # known from the upload's scan, before it runs
        assert ".result.mp4.part" in job_files(app, first)  # the work in progress that must go
        assert client.post(f"/api/jobs/{second}/cancel", headers=H).get_json()["state"] == "cancelled"
        assert client.post(f"/api/jobs/{first}/cancel", headers=H).status_code == 200
    finally:
        release.set()
    stopped, skipped = wait(client, first), wait(client, second)
    assert stopped["state"] == "cancelled" and stopped["frames_done"] == 2  # not one frame after the cancel
    assert skipped["state"] == "cancelled" and skipped["seconds"] is None and skipped["frames_done"] == 0
    assert job_files(app, first) == ["video.mp4"]  # no result, no part folder, no lock, no temporary file
    assert client.get(f"/api/jobs/{first}/result").status_code == 404
    assert client.get("/api/results.zip", headers=H).status_code == 404
    after = wait(client, send(client, clip, name="after.mp4").get_json()["id"])
    assert after["state"] == "done" and after["frames_done"] == 6


def test_broken_and_too_large_videos_are_refused_in_one_line(tmp_path, model_file):
    """A truncated or unreadable video: 400; longer than the page's limit or frames over --max-pixels: 413;
    one line naming the upload, nothing left behind."""
    good = make_clip(tmp_path / "good.mkv", w=32, h=24, n=20)  # 2 s
    whole = make_clip(tmp_path / "whole.mkv", w=32, h=24, n=30).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) * 6 // 10])
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    cases = [({}, "cut.mkv", 400, "cut.mkv: truncated or corrupt: its streams end at "),
             ({}, "junk.mp4", 400, "junk.mp4: not a readable video ("),
             ({"max_pixels": 700}, "good.mkv", 413,
              "good.mkv: frame of 32x24 = 768 pixels is over the limit of 700 (ddnsr serve --max-pixels)"),
             ({"max_video_seconds": 1.5}, "good.mkv", 413, "good.mkv: 2.0 s of video is over the limit of 1.5 s")]
    for limits, name, status, start in cases:
        app, client = make(tmp_path, model=str(model_file), **limits)
        try:
            r = send(client, tmp_path / name)
            error = r.get_json()["error"]
            assert r.status_code == status and error.startswith(start), (name, r.status_code, error)
            assert "\n" not in error and "Traceback" not in error and str(tmp_path) not in error
            assert [p.name for p in app.extensions["ddnsr"].workspace.root.iterdir()] == [PID_FILE]
            if not limits:  # the same server takes a whole clip: the file was at fault
                assert send(client, good).status_code == 201
        finally:
            app.extensions["ddnsr"].close()

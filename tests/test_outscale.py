"""--outscale / --width / --height: the x4 result downscaled (Lanczos), for images, video and the page."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddnsr.cli import main
from ddnsr.errors import SettingError
from ddnsr.inference.outscale import OutputSize, resize_planes


def photo(path: Path, w: int = 24, h: int = 18) -> Path:
    rng = np.random.default_rng(0)
    ramp = np.linspace(30, 200, w)[None, :, None]
    Image.fromarray((rng.random((h, w, 3)) * 40 + ramp).astype(np.uint8)).save(path)
    return path


def test_output_sizes_and_bad_settings():
    assert OutputSize().for_input(24, 18) == (96, 72) and OutputSize().is_x4
    assert OutputSize(2).for_input(24, 18) == (48, 36)
    assert OutputSize(2.5).for_input(25, 17) == (62, 42)  # Python's round: half to even
    assert OutputSize(width=60).for_input(24, 18) == (60, 45)
    assert OutputSize(height=36).for_input(24, 18) == (48, 36)
    for bad in (dict(outscale=0), dict(outscale=4.5), dict(outscale=float("nan")), dict(width=0),
                dict(outscale=2, width=10)):
        with pytest.raises(SettingError):
            OutputSize(**bad)
    with pytest.raises(SettingError, match="width 97 is more than 4x the input's 24x18"):
        OutputSize(width=97).for_input(24, 18)


def test_resize_keeps_dtype_and_range():
    data16 = np.full((40, 40, 3), 65535, np.uint16)
    out = resize_planes(data16, (20, 10))
    assert out.shape == (10, 20, 3) and out.dtype == np.uint16 and out.max() == 65535
    data8 = np.zeros((8, 8, 4), np.uint8)
    assert resize_planes(data8, (8, 8)) is data8


def test_upscale_outscale_is_the_x4_result_downscaled(tmp_path):
    src = photo(tmp_path / "p.png")
    common = ["--model", "track1", "--device", "cpu", "--precision", "fp32", "-q"]
    assert main(["upscale", str(src), "-o", str(tmp_path / "x4"), *common]) == 0
    assert main(["upscale", str(src), "-o", str(tmp_path / "x2"), "--outscale", "2", *common]) == 0
    x4 = np.asarray(Image.open(tmp_path / "x4" / "p.png"))
    x2 = np.asarray(Image.open(tmp_path / "x2" / "p.png"))
    assert x2.shape == (36, 48, 3)
    assert np.abs(x2.astype(int) - resize_planes(x4, (48, 36)).astype(int)).max() <= 1
    assert main(["upscale", str(src), "-o", str(tmp_path / "w"), "--width", "30", *common]) == 0
    assert Image.open(tmp_path / "w" / "p.png").size == (30, 22)  # 18 * 30 / 24 = 22.5 -> 22


def test_bad_output_sizes_on_the_command_line(tmp_path, capsys):
    src = photo(tmp_path / "p.png")
    with pytest.raises(SystemExit) as exc:
        main(["upscale", str(src), "-o", str(tmp_path / "o"), "--outscale", "5"])
    assert exc.value.code == 2 and "at most 4" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["upscale", str(src), "-o", str(tmp_path / "o"), "--outscale", "2", "--width", "10"])
    assert exc.value.code == 2
    assert main(["upscale", str(src), "-o", str(tmp_path / "o"), "--width", "200", "--model", "track1", "-q"]) == 1
    assert "width 200 is more than 4x the input's 24x18" in capsys.readouterr().err
    assert not (tmp_path / "o" / "p.png").exists()


def test_video_outscale(tmp_path):
    av = pytest.importorskip("av")
    from ddnsr.imageio.video import probe_video

    clip = tmp_path / "c.mp4"
    out = av.open(str(clip), "w")
    stream = out.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 24, 18, "yuv420p"
    for i in range(3):
        frame = av.VideoFrame.from_ndarray(np.full((18, 24, 3), 40 * i, np.uint8), format="rgb24")
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()
    assert main(["upscale", str(clip), "-o", str(tmp_path / "v"), "--outscale", "1.5", "--model", "track1",
                 "-q"]) == 0
    info = probe_video(tmp_path / "v" / "c.mp4")
    assert (info.width, info.height) == (36, 26)  # 27 made even for 4:2:0


def test_the_page_takes_a_size(tmp_path):
    pytest.importorskip("flask")
    from test_serve_api import H, make, wait

    app, client = make(tmp_path)
    try:
        src = photo(tmp_path / "p.png")

        def post(outscale: str):
            form = {"image": (io.BytesIO(src.read_bytes()), "p.png"), "model": "bundled:track1", "outscale": outscale}
            return client.post("/api/jobs", data=form, headers=H, content_type="multipart/form-data")

        assert post("9").status_code == 400
        job = wait(client, post("2").get_json()["id"])
        assert job["state"] == "done"
        result = client.get(f"/api/jobs/{job['id']}/result", headers=H)
        assert Image.open(io.BytesIO(result.data)).size == (48, 36)
    finally:
        app.extensions["ddnsr"].close()

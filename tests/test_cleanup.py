"""Tests of ddnsr.datasets.cleanup: the OpenCV-equivalent bicubic x0.5, the folder clean-up and its commands."""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddnsr.cli import main
from ddnsr.cli.cleanup import register
from ddnsr.datasets.cleanup import bicubic_half, clean_up, clean_up_array, half_size
from ddnsr.training.data import DataError, DataWarning, load_rgb8

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DDNSR_SHARED", REPO.parent / "shared")) / "data"


def _keys(x: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (OpenCV INTER_CUBIC uses a = -0.75)."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def _opencv_cubic_half(img: np.ndarray) -> np.ndarray:
    """OpenCV's resize(fx=fy=0.5, INTER_CUBIC) written out by hand for a float H x W image.

    dsize = cvRound(side * 0.5) (half to even); source x = (dx + 0.5) * 2 - 0.5; taps floor(x)-1 .. +2
    with their indices clamped to the image (BORDER_REPLICATE); separable, rows then columns.
    """
    h, w = img.shape
    oh, ow = round(h * 0.5), round(w * 0.5)

    def taps(d: int, n: int) -> list[tuple[int, float]]:
        src = (d + 0.5) * 2.0 - 0.5
        x0 = math.floor(src)
        t = src - x0
        return [(min(max(x0 + k, 0), n - 1), _keys(t - k)) for k in (-1, 0, 1, 2)]

    out = np.zeros((oh, ow))
    for dy in range(oh):
        for dx in range(ow):
            out[dy, dx] = sum(wy * wx * img[y, x] for y, wy in taps(dy, h) for x, wx in taps(dx, w))
    return out


def test_output_size_rounds_half_to_even_like_cvround():
    assert half_size(512, 512) == (256, 256)
    assert [half_size(1, w)[1] for w in (5, 7, 9, 11, 13, 63, 65)] == [2, 4, 4, 6, 6, 32, 32]


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (11, 5), (6, 13)])
def test_torch_bicubic_equals_the_hand_computed_opencv_kernel(shape):
    img = np.random.default_rng(sum(shape)).random(shape)
    ours = bicubic_half(torch.from_numpy(img)[None, None])[0, 0].numpy()
    ref = _opencv_cubic_half(img)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-12
    # at scale 0.5 output (1, 1) weighs source rows and columns 1..4 by (-3, 19, 19, -3) / 32
    expect = sum(wy * wx * img[1 + i, 1 + j] for i, wy in enumerate((-3, 19, 19, -3))
                 for j, wx in enumerate((-3, 19, 19, -3))) / 1024.0
    assert abs(ours[1, 1] - expect) < 1e-12


def test_against_opencv_when_installed():
    cv2 = pytest.importorskip("cv2", reason="OpenCV is optional: the hand-computed kernel test covers it")
    img = np.random.default_rng(0).random((33, 47, 3)).astype(np.float32)
    ref = cv2.resize(img, (0, 0), fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    ours = bicubic_half(torch.from_numpy(img.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-6


def test_clean_up_array_rounding_modes():
    flat = np.full((10, 12, 3), 200, np.uint8)
    assert np.array_equal(clean_up_array(flat), np.full((5, 6, 3), 200, np.uint8))
    rgb = np.random.default_rng(3).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    exact = bicubic_half(torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float64))[None])[0].numpy()
    exact = exact.transpose(1, 2, 0)
    assert np.array_equal(clean_up_array(rgb), np.clip(np.rint(exact), 0, 255).astype(np.uint8))
    trunc = clean_up_array(rgb, truncate=True).astype(int)
    floor = np.floor(np.clip(exact, 0, 255)).astype(int)
    assert np.abs(trunc - floor).max() <= 1 and (trunc == floor).mean() > 0.99
    with pytest.raises(ValueError, match="uint8"):
        clean_up_array(rgb.astype(np.float32))


def test_clean_up_folder(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    images = {"a.png": rng.integers(0, 256, (20, 31, 3), dtype=np.uint8),
              "b.JPG": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)}
    for name, arr in images.items():
        Image.fromarray(arr).save(src / name)
    Image.fromarray(images["a.png"][:, :, 0]).save(src / "gray.bmp")
    (src / "broken.png").write_text("not an image")
    (src / "readme.txt").write_text("ignored")
    with pytest.warns(DataWarning, match="broken.png: skipped"):
        report = clean_up(src, dst, progress=False)
    assert sorted(p.name for p in dst.iterdir()) == ["a.png", "b.png", "gray.png"]  # no temporary file left
    assert len(report.written) == 3 and len(report.failed) == 1
    out = load_rgb8(dst / "a.png")
    assert out.shape == (10, 16, 3)
    assert np.array_equal(out, clean_up_array(images["a.png"]))
    assert np.array_equal(load_rgb8(dst / "b.png"), clean_up_array(load_rgb8(src / "b.JPG")))
    assert load_rgb8(dst / "gray.png").shape == (10, 16, 3)
    # resumable: existing outputs are kept
    (dst / "b.png").unlink()
    with pytest.warns(DataWarning):
        again = clean_up(src, dst, skip_existing=True, progress=False)
    assert [p.name for p in again.written] == ["b.png"] and len(again.existing) == 2


def test_clean_up_bad_input(tmp_path):
    with pytest.raises(DataError, match="input folder does not exist"):
        clean_up(tmp_path / "none", tmp_path / "out")
    src = tmp_path / "in"
    src.mkdir()
    with pytest.raises(DataError, match="no image files"):
        clean_up(src, tmp_path / "out")
    Image.new("RGB", (4, 4)).save(src / "x.png")
    Image.new("RGB", (4, 4)).save(src / "x.jpg")
    with pytest.raises(DataError, match="same output name x.png"):
        clean_up(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written
    with pytest.raises(DataError, match="must differ"):
        clean_up(src, src)


def test_sub_command_and_original_script(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (10, 6), (30, 60, 90)).save(src / "p.png")
    parser = argparse.ArgumentParser(prog="ddnsr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["clean-up", "-i", str(src), "-o", str(tmp_path / "o1"), "--no-progress"])
    assert args.func(args) == 0
    assert load_rgb8(tmp_path / "o1" / "p.png").shape == (3, 5, 3)
    assert main(["clean-up", "--input-dir", str(tmp_path / "nope"), "--output-dir", "x"]) == 1
    (src / "bad.png").write_bytes(b"not a png")  # a skipped file makes the exit status 1
    assert main(["clean-up", "-i", str(src), "-o", str(tmp_path / "o3"), "--no-progress"]) == 1
    assert (tmp_path / "o3" / "p.png").is_file()
    (src / "bad.png").unlink()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out2 = tmp_path / "o2"
    done = subprocess.run(
        [sys.executable, str(REPO / "clean_up.py"), "-input_dir", str(src), "-output_dir", str(out2)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert np.array_equal(load_rgb8(tmp_path / "o2" / "p.png"), load_rgb8(tmp_path / "o1" / "p.png"))


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data (read-only data) is absent")
def test_clean_up_shared_track2_photos(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    photos = sorted((SHARED_DATA / "track2-train-source").iterdir())[:2]
    for photo in photos:  # links, not copies
        (src / photo.name).symlink_to(photo)
    report = clean_up(src, tmp_path / "track2-target-cleanup", progress=False)
    assert len(report.written) == 2
    for photo, out in zip(photos, sorted(report.written), strict=True):
        w, h = Image.open(photo).size
        assert Image.open(out).size == (round(w / 2), round(h / 2))
        assert out.stem == photo.stem and out.suffix == ".png"

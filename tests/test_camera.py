"""The camera estimate of ``--degradation camera`` (training/camera.py): JPEG, sharpening, noise, pairs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddnsr.training.camera import CameraModel, JpegSetting, estimate_camera


def scene(seed: int, size: int = 256) -> np.ndarray:
    """A size x size x 3 float HR 'photo' in [0, 1]: flat rectangles (edges), a gradient and fine texture."""
    rng = np.random.default_rng(seed)
    img = np.linspace(0.2, 0.6, size)[None, :, None] * np.ones((size, size, 3))
    for _ in range(12):
        y, x = rng.integers(0, size - 32, 2)
        h, w = rng.integers(16, 96, 2)
        img[y: y + h, x: x + w] = rng.uniform(0.05, 0.95, 3)
    img[: size // 4] += 0.08 * np.sin(np.arange(size) * 1.3)[None, :, None]
    return np.clip(img, 0, 1)


def camera_folder(folder: Path, cam: CameraModel, sharpen: float, noise: float, n: int = 12,
                  fmt: str = "png") -> list[Path]:
    """``n`` LR photos of the scenes through ``cam`` with this sharpening and noise (blur 1 HR px)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        if fmt == "png":
            lr = cam.make(scene(100 + i), (1.0, 1.0, 0.0), sharpen, noise, rng)
            path = folder / f"{i}.png"
            Image.fromarray((lr * 255 + 0.5).astype(np.uint8)).save(path)
        else:  # a real camera's JPEG file: encoded once, with its own quality
            plain = CameraModel(jpeg=None).make(scene(100 + i), (1.0, 1.0, 0.0), sharpen, noise, rng)
            path = folder / f"{i}.jpg"
            Image.fromarray((plain * 255 + 0.5).astype(np.uint8)).save(path, quality=83, subsampling=2)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clean")
    paths = []
    for i in range(8):
        paths.append(folder / f"{i}.png")
        Image.fromarray((scene(i) * 255 + 0.5).astype(np.uint8)).save(paths[-1])
    return paths


def test_jpeg_quality_is_read_from_decoded_pixels(tmp_path, clean):
    cam = CameraModel(jpeg=JpegSetting(subsampling=2, quality=70))
    est = estimate_camera(camera_folder(tmp_path / "lr", cam, 0.0, 2.0), clean)
    # qualities a step apart have tables within a few per cent: the refinement may land beside it
    assert est.jpeg is not None and est.jpeg.subsampling == 2 and abs(est.jpeg.quality - 70) <= 1


def test_jpeg_tables_are_taken_from_jpeg_files(tmp_path, clean):
    files = camera_folder(tmp_path / "lr", CameraModel(jpeg=None), 0.0, 2.0, fmt="jpeg")
    est = estimate_camera(files, clean)
    with Image.open(files[0]) as im:
        tables = [list(im.quantization[k]) for k in sorted(im.quantization)]
    assert est.jpeg is not None and est.jpeg.qtables == tables and est.jpeg.subsampling == 2
    rgb = (scene(3)[:64, :64] * 255).astype(np.uint8)  # re-encoding with the tables is the camera's encoder
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=83, subsampling=2)
    assert np.array_equal(est.jpeg.apply(rgb), np.asarray(Image.open(buf).convert("RGB")))


def test_uncompressed_photos_have_no_jpeg(tmp_path, clean):
    est = estimate_camera(camera_folder(tmp_path / "lr", CameraModel(jpeg=None), 0.0, 0.0), clean)
    assert est.jpeg is None and est.sharpen < 0.3 and est.noise < 1.0


def test_sharpening_and_noise_are_told_apart(tmp_path, clean):
    cam = CameraModel(jpeg=JpegSetting(subsampling=2, quality=85))
    plain = estimate_camera(camera_folder(tmp_path / "a", cam, 0.0, 0.0), clean)
    sharp = estimate_camera(camera_folder(tmp_path / "b", cam, 1.5, 0.0), clean)
    noisy = estimate_camera(camera_folder(tmp_path / "c", cam, 0.0, 6.0), clean)
    assert plain.sharpen < 0.4 and plain.noise < 1.5
    assert sharp.sharpen > plain.sharpen + 0.6 and sharp.noise < 2.0
    assert 3.0 < noisy.noise < 9.0 and noisy.sharpen < 0.6


def test_pairs_are_8_bit_sized_and_drawn_per_step():
    cam = CameraModel(jpeg=JpegSetting(subsampling=2, quality=75), sharpen=1.0, noise=3.0)
    hr = torch.from_numpy(np.stack([scene(1, 128), scene(2, 128)])).permute(0, 3, 1, 2).float()
    a = cam.degrade(hr, np.random.default_rng((0, 5)))
    b = cam.degrade(hr, np.random.default_rng((0, 5)))
    c = cam.degrade(hr, np.random.default_rng((0, 6)))
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, (a * 255).round() / 255) and 0 <= a.min() and a.max() <= 1
    assert CameraModel.from_plain(json.loads(json.dumps(cam.as_plain()))) == cam

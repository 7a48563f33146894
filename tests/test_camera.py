"""The camera estimate of ``--degradation camera`` (training/camera.py): JPEG, sharpening, noise, pairs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from ddnsr.training.camera import (
    CameraModel,
    JpegSetting,
    NoisePatches,
    _overshoot,
    anisotropic_blur,
    estimate_camera,
    noise_patches,
)


def scene(seed: int, size: int = 256, texture: bool = True) -> np.ndarray:
    """A size x size x 3 float HR 'photo' in [0, 1]: flat rectangles (edges), a gradient and (``texture``) a
    band of fine stripes."""
    rng = np.random.default_rng(seed)
    img = np.linspace(0.2, 0.6, size)[None, :, None] * np.ones((size, size, 3))
    for _ in range(12):
        y, x = rng.integers(0, size - 32, 2)
        h, w = rng.integers(16, 96, 2)
        img[y: y + h, x: x + w] = rng.uniform(0.05, 0.95, 3)
    if texture:
        img[: size // 4] += 0.08 * np.sin(np.arange(size) * 1.3)[None, :, None]
    return np.clip(img, 0, 1)


def camera_folder(folder: Path, cam: CameraModel, sharpen: float, noise: float, n: int = 12,
                  fmt: str = "png", blur: float = 1.0) -> list[Path]:
    """``n`` LR photos of the scenes through ``cam`` with this sharpening, noise and blur (HR px)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        if fmt == "png":
            lr = cam.make(scene(100 + i), (blur, blur, 0.0), sharpen, noise, rng)
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


# 4:4:4, 4:2:2 (many DSLRs), 4:2:0 (most phones); 92: a clean camera, whose dip is narrow (off the 5 grid)
@pytest.mark.parametrize(("quality", "subsampling"), [(70, 0), (70, 1), (70, 2), (92, 2)])
def test_jpeg_quality_and_subsampling_are_read_from_decoded_pixels(tmp_path, clean, quality, subsampling):
    cam = CameraModel(jpeg=JpegSetting(subsampling=subsampling, quality=quality))
    est = estimate_camera(camera_folder(tmp_path / "lr", cam, 0.0, 2.0), clean)
    # qualities a step apart have tables within a few per cent: the refinement may land beside it
    assert est.jpeg is not None and est.jpeg.subsampling == subsampling
    assert abs(est.jpeg.quality - quality) <= 1


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
    # the Gaussian alone (--camera-noise gaussian): with patches, they carry the noise (the tests below)
    cam = CameraModel(jpeg=JpegSetting(subsampling=2, quality=85))
    plain = estimate_camera(camera_folder(tmp_path / "a", cam, 0.0, 0.0), clean, with_patches=False)
    sharp = estimate_camera(camera_folder(tmp_path / "b", cam, 1.5, 0.0), clean, with_patches=False)
    noisy = estimate_camera(camera_folder(tmp_path / "c", cam, 0.0, 6.0), clean, with_patches=False)
    assert plain.sharpen < 0.4 and plain.noise < 1.5
    assert sharp.sharpen > plain.sharpen + 0.6 and sharp.noise < 2.0
    assert 3.0 < noisy.noise < 9.0 and noisy.sharpen < 0.6


def test_blur_is_read_off_the_edges_and_only_widens_the_draw(tmp_path, clean):
    cam = CameraModel(jpeg=JpegSetting(subsampling=2, quality=85))
    sharp = estimate_camera(camera_folder(tmp_path / "a", cam, 0.0, 1.0, blur=0.8), clean)
    soft = estimate_camera(camera_folder(tmp_path / "b", cam, 0.0, 1.0, blur=2.4), clean)
    assert abs(sharp.blur - 0.8) < 0.35 and abs(soft.blur - 2.4) < 0.5, (sharp.blur, soft.blur)
    assert sharp.blur_range() == (0.6, 1.4)  # a typical camera keeps the typical range
    low, high = soft.blur_range()
    assert low == 0.6 and 1.5 < high < soft.blur, high  # a soft one reaches toward its blur, still down to sharp
    # photos without strong edges (gradients and noise) say nothing of blur: the typical 1 px stays
    rng = np.random.default_rng(4)
    (tmp_path / "flat").mkdir()
    flat = [tmp_path / "flat" / f"{i}.png" for i in range(6)]
    for i, path in enumerate(flat):
        img = np.linspace(30 + 10 * i, 200, 128)[None, :, None] + rng.normal(0, 2, (96, 128, 3))
        Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8)).save(path)
    assert estimate_camera(flat, clean).blur == 1.0


def test_sharpening_is_fitted_at_the_blur_the_pairs_are_made_at(tmp_path, clean):
    # a camera with an area x1/4 and halos reads as very sharp (0.3 px), under the pairs' range; the pairs
    # R learns from are made at its middle (1 px) and must carry the camera's overshoot (the sharpening
    # fitted at the reading left them 7% short; on phone-b that cost 0.6 dB)
    cam = CameraModel(jpeg=JpegSetting(subsampling=2, quality=85))
    rng = np.random.default_rng(7)
    (tmp_path / "lr").mkdir()
    files = []
    for i in range(12):
        lr = scene(100 + i).reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))  # area x1/4, no blur
        files.append(tmp_path / "lr" / f"{i}.png")
        Image.fromarray((cam.finish(lr * 255, 0.8, 1.0, rng) * 255 + 0.5).astype(np.uint8)).save(files[-1])
    est = estimate_camera(files, clean)
    middle = est.middle_blur()
    assert est.blur < 0.6 and middle == 1.0, est
    pairs = [est.make(scene(i), (middle, middle, 0.0), est.sharpen, est.noise, rng) * 255 for i in range(8)]
    camera = _overshoot([np.asarray(Image.open(p), np.float32) for p in files])
    assert abs(_overshoot(pairs) / camera - 1) < 0.05, (_overshoot(pairs), camera, est.sharpen)


@pytest.mark.parametrize("sigmas", [(0.9, 0.5), (1.6, 0.7), (3.4, 2.0), (2.0, 2.0)])
def test_every_blur_path_is_the_rotated_gaussian(sigmas):
    # the direct, separable and FFT paths all give the 2-D kernel convolved with reflected edges
    arr = np.random.default_rng(0).uniform(0, 255, (40, 70, 3))
    radius = int(np.ceil(3 * max(sigmas)))
    yy, xx = np.mgrid[-radius: radius + 1, -radius: radius + 1].astype(np.float64)
    t = np.deg2rad(30.0)
    along, across = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    k = np.exp(-0.5 * ((along / sigmas[0]) ** 2 + (across / sigmas[1]) ** 2))
    ref = np.stack([ndimage.convolve(arr[..., c], k / k.sum(), mode="reflect") for c in range(3)], axis=-1)
    assert np.abs(anisotropic_blur(arr, *sigmas, 30.0) - ref).max() < 1e-9


def test_pairs_are_8_bit_sized_and_drawn_per_step():
    cam = CameraModel(jpeg=JpegSetting(subsampling=2, quality=75), sharpen=1.0, noise=3.0, blur=2.0)
    hr = torch.from_numpy(np.stack([scene(1, 128), scene(2, 128)])).permute(0, 3, 1, 2).float()
    a = cam.degrade(hr, np.random.default_rng((0, 5)))
    b = cam.degrade(hr, np.random.default_rng((0, 5)))
    c = cam.degrade(hr, np.random.default_rng((0, 6)))
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, (a * 255).round() / 255) and 0 <= a.min() and a.max() <= 1
    assert CameraModel.from_plain(json.loads(json.dumps(cam.as_plain()))) == cam


def chroma_noise(shape: tuple[int, int], rng: np.random.Generator, std: tuple[float, float, float]) -> np.ndarray:
    """h x w x 3 noise, independent per channel, grains about 3 px wide, each channel's std as given."""
    out = np.stack([ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.0) for _ in range(3)], axis=-1)
    return out / out.std(axis=(0, 1)) * np.array(std)


def noisy_photos(folder: Path, std: tuple[float, float, float], n: int = 6) -> list[Path]:
    """``n`` 128 px LR photos of the scenes (blur, x1/4) with :func:`chroma_noise` added, as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        # (no stripes: a fine even texture is what noise looks like, and the patches would take it too)
        lr = CameraModel(jpeg=None).make(scene(200 + i, 512, texture=False), (1.0, 1.0, 0.0), 0.0, 0.0, rng) * 255
        if max(std) > 0:
            lr = lr + chroma_noise(lr.shape[:2], rng, std)
        paths.append(folder / f"{i}.png")
        Image.fromarray(np.clip(lr + 0.5, 0, 255).astype(np.uint8)).save(paths[-1])
    return paths


def test_noise_patches_carry_the_cameras_own_noise(tmp_path, clean):
    est = estimate_camera(noisy_photos(tmp_path / "lr", (3.0, 6.0, 9.0)), clean)
    patches = est.patches
    assert patches is not None and len(patches.noise) >= 8 and patches.noise.shape[1:] == (32, 32, 3)
    per_channel = patches.noise.std(axis=(1, 2)).mean(axis=0)
    assert np.allclose(per_channel, (3.0, 6.0, 9.0), rtol=0.3), per_channel
    # the channels are independent in this camera, as in the patches (Gaussian luma noise is one for all three)
    flat = patches.noise.reshape(-1, 3)
    assert abs(np.corrcoef(flat[:, 0], flat[:, 2])[0, 1]) < 0.2
    assert est.noise < 2.5  # the patches explain the noise: little is left for the Gaussian


def test_small_photos_give_16_px_patches(tmp_path, clean):
    # thumbnails: 16 px cells of differing colour, so no 32 px square is flat but every 16 px one is
    rng = np.random.default_rng(3)
    folder = tmp_path / "lr"
    folder.mkdir()
    paths = []
    for i in range(12):
        cells = rng.uniform(40, 210, (4, 6, 3))
        img = np.kron(cells, np.ones((16, 16, 1))) + rng.normal(0, 1, (64, 96, 1)) * (2.0, 4.0, 6.0)
        paths.append(folder / f"{i}.png")
        Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8)).save(paths[-1])
    patches = estimate_camera(paths, clean).patches
    assert patches is not None and patches.noise.shape[1:] == (16, 16, 3)
    assert np.allclose(patches.noise.std(axis=(1, 2)).mean(axis=0), (2.0, 4.0, 6.0), rtol=0.3)
    assert estimate_camera(paths, clean, with_patches=False).patches is None


def test_a_clean_camera_gives_quiet_patches(tmp_path, clean):
    est = estimate_camera(noisy_photos(tmp_path / "lr", (0.0, 0.0, 0.0)), clean)
    assert est.patches is None or float(np.median(est.patches.noise.std(axis=(1, 2)))) < 1.0


def test_the_noise_field_follows_brightness_and_pairs_carry_it(tmp_path):
    rng = np.random.default_rng(0)
    dark, bright = rng.normal(0, 1, (16, 32, 32, 3)), rng.normal(0, 6, (16, 32, 32, 3))
    patches = NoisePatches(noise=np.concatenate([dark, bright]).astype(np.float32),
                           level=np.array([40.0] * 16 + [200.0] * 16, np.float32))
    field = patches.field(np.full((64, 96, 3), 200.0, np.float32), np.random.default_rng(1))
    assert field.shape == (64, 96, 3) and 4.0 < field.std() < 8.0
    assert patches.field(np.full((64, 96, 3), 40.0, np.float32), np.random.default_rng(1)).std() < 1.5
    patches.save(tmp_path / "noise.npz")
    back = NoisePatches.load(tmp_path / "noise.npz")
    assert np.allclose(back.noise, patches.noise, atol=0.01) and np.array_equal(back.level, patches.level)
    cam = CameraModel(jpeg=None, patches=back)
    assert CameraModel.from_plain(json.loads(json.dumps(cam.as_plain())), back).patches is back
    grey = np.full((256, 256, 3), 200 / 255, np.float32)
    lr = cam.make(grey, (1.0, 1.0, 0.0), 0.0, 0.0, np.random.default_rng(2)) * 255
    assert lr.shape == (64, 64, 3) and 4.0 < lr.std() < 8.0


def test_noise_patches_skip_edges_and_clipped_squares():
    rng = np.random.default_rng(0)
    img = np.full((128, 128, 3), 120.0) + rng.normal(0, 2, (128, 128, 3))
    img[:, 64:] += 80  # a step on the squares' border: both halves stay flat
    img[:32, :32] = 255  # clipped
    img[64:96, 16:20] = 60  # a dark bar inside one square: an edge (in range, so only the flatness tests see it)
    found = noise_patches([img])
    assert found is not None and len(found.noise) >= 8
    spreads = found.noise.std(axis=(1, 2, 3))
    assert float(spreads.max()) < 3.0  # not the square with the bar
    assert float(spreads.min()) > 1.0  # not the clipped one (flat at 255: it would be the flattest of all)

"""ddnsr.metrics: PSNR, SSIM, NIQE, PIQE, imresize, noise estimate and degradation fidelity.

Reference numbers come from ../shared/data/reference-values.json (official MATLAB / authors' values);
tests that need the shared data skip cleanly when it is absent.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from conftest import DATA
from ddnsr.metrics import (
    degradation_fidelity,
    imresize,
    niqe,
    noise_sigma,
    piqe,
    psnr,
    ssim,
    to_gray,
    to_y,
)
from ddnsr.metrics.color import GRAY_WEIGHTS, matlab_round_half_away
from ddnsr.metrics.noise import IMMERKAER_MASK

REFS = DATA / "reference-values.json"
IQA_IDS = ("I03", "I04", "I06", "I08", "I19")

needs_shared = pytest.mark.skipif(not REFS.is_file(), reason=f"shared data not found at {DATA}")


def _read(rel: str) -> np.ndarray:
    from PIL import Image

    with Image.open(DATA / rel) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def refs() -> dict:
    if not REFS.is_file():
        pytest.skip(f"shared data not found at {DATA}")
    return json.loads(REFS.read_text())


@pytest.fixture(scope="module")
def iqa_pairs(refs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pairs = refs["iqa_examples"]["pairs"]
    return {k: (_read(pairs[k][0]), _read(pairs[k][1])) for k in IQA_IDS}


# ---------------------------------------------------------------- colour conversions


def test_to_y_matches_bt601_formula_and_range():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    y = to_y(rgb, matlab_round=False)
    r, g, b = rgb[..., 0] / 255.0, rgb[..., 1] / 255.0, rgb[..., 2] / 255.0
    np.testing.assert_allclose(y, 16 + 65.481 * r + 128.553 * g + 24.966 * b, atol=1e-9)
    assert y[0, 0] == pytest.approx(16.0) and y[0, 1] == pytest.approx(235.0)
    np.testing.assert_array_equal(to_y(rgb), matlab_round_half_away(y))


def test_to_gray_is_matlab_rgb2gray():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    g = to_gray(rgb, matlab_round=False)
    # MATLAB's unrounded weights (first row of inv(YIQ)); documented as 0.2989, 0.5870, 0.1140.
    np.testing.assert_allclose(GRAY_WEIGHTS, [0.2989, 0.5870, 0.1140], atol=5e-5)
    np.testing.assert_allclose(GRAY_WEIGHTS.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(g, rgb.astype(float) @ GRAY_WEIGHTS, atol=1e-9)
    assert np.all(to_gray(rgb) == np.round(to_gray(rgb)))  # integer images give integer gray
    # The same picture as uint8, uint16 and float agrees (up to rounding of the integer ones).
    as16 = rgb.astype(np.uint16) * 257
    np.testing.assert_allclose(to_gray(as16, matlab_round=False), g, atol=1e-9)
    np.testing.assert_allclose(to_gray(rgb / 255.0), g, atol=1e-9)


def test_matlab_round_is_half_away_from_zero():
    np.testing.assert_array_equal(matlab_round_half_away(np.array([0.5, 1.5, 2.5, -0.5, 2.49])), [1, 2, 3, -1, 2])


def test_bad_inputs_are_refused():
    with pytest.raises(TypeError):
        psnr(np.zeros((8, 8), np.int32), np.zeros((8, 8), np.int32))
    with pytest.raises(ValueError):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError):
        psnr(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)))
    with pytest.raises(ValueError):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), channel="lab")


# ---------------------------------------------------------------- PSNR / SSIM


@needs_shared
def test_psnr_rgb_reference(refs, iqa_pairs):
    ref = refs["iqa_examples"]["psnr_rgb"]
    for k in IQA_IDS:
        dist, orig = iqa_pairs[k]
        got = psnr(dist, orig, crop_border=0, channel="rgb")
        assert got == pytest.approx(ref["values"][k], abs=ref["tolerance"]), k


@needs_shared
def test_ssim_gray_reference(refs, iqa_pairs):
    ref = refs["iqa_examples"]["ssim_gray"]
    for k in IQA_IDS:
        dist, orig = iqa_pairs[k]
        got = ssim(dist, orig, crop_border=0, channel="gray")
        assert got == pytest.approx(ref["values"][k], abs=ref["tolerance"]), k


def test_psnr_known_value_and_identity():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[..., 1] += 10  # every G value off by 10: RGB MSE = 100 / 3
    assert psnr(a, b, channel="rgb", crop_border=0) == pytest.approx(10 * math.log10(255**2 * 3 / 100))
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0)


def test_crop_border_ignores_the_border():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[:4] = 0
    b[:, -4:] = 255
    assert psnr(a, b) == math.inf  # default crop_border=4
    assert psnr(a, b, crop_border=0) < 20
    assert ssim(a, b) == pytest.approx(1.0)


def test_psnr_y_on_float_and_uint8_agree_without_rounding():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    p8 = psnr(a, b, matlab_round=False)
    pf = psnr(a / 255.0, b / 255.0)
    assert p8 == pytest.approx(pf, abs=1e-9)
    assert abs(psnr(a, b) - p8) < 0.2  # MATLAB rounding of the Y channel changes little


def test_ssim_rgb_is_mean_of_channels():
    rng = np.random.default_rng(3)
    a = rng.random((30, 30, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    per = [ssim(a[..., c], b[..., c], channel="rgb", crop_border=0) for c in range(3)]
    assert ssim(a, b, channel="rgb", crop_border=0) == pytest.approx(np.mean(per))


# ---------------------------------------------------------------- MATLAB imresize


def test_imresize_shapes_identity_and_constants():
    rng = np.random.default_rng(4)
    img = rng.random((17, 12))
    assert imresize(img, 0.5).shape == (9, 6)
    assert imresize(rng.random((8, 6, 3)), 0.25).shape == (2, 2, 3)
    np.testing.assert_allclose(imresize(img, 1.0), img, atol=1e-12)
    np.testing.assert_allclose(imresize(np.full((10, 14), 0.3), 0.5), 0.3, atol=1e-12)
    np.testing.assert_allclose(imresize(np.full((5, 5), 0.7), 2.0), 0.7, atol=1e-12)


def test_imresize_half_reproduces_a_ramp_inside():
    # Output pixel i of a x0.5 resize sits at input position 2i - 0.5 (1-based); a linear ramp is kept.
    ramp = np.tile(np.arange(32, dtype=float), (32, 1))
    out = imresize(ramp, 0.5)
    expected = 2 * np.arange(1, 17) - 0.5 - 1  # back to 0-based values
    np.testing.assert_allclose(out[4:-4, 4:-4], np.tile(expected[4:-4], (8, 1)), atol=1e-9)


# ---------------------------------------------------------------- NIQE


@needs_shared
def test_niqe_baboon_reference(refs):
    ref = refs["niqe_baboon"]
    # BasicSR convention: Y channel of BT.601, crop_border 0.
    got = niqe(_read(ref["file"]), channel="y", crop_border=0)
    assert got == pytest.approx(ref["value"], abs=ref["tolerance"])


@needs_shared
def test_niqe_iqa_examples_reference(refs, iqa_pairs):
    ref = refs["iqa_examples"]["niqe"]
    for k in IQA_IDS:
        got = niqe(iqa_pairs[k][0])  # official niqe_release: MATLAB rgb2gray
        assert got == pytest.approx(ref["values"][k], abs=ref["tolerance"]), k


def test_niqe_prefers_natural_to_noisy_and_checks_size():
    rng = np.random.default_rng(5)
    smooth = gaussian_filter(rng.random((192, 192)), 3)
    smooth = (smooth - smooth.min()) / np.ptp(smooth)
    noisy = np.clip(smooth + rng.normal(0, 0.2, smooth.shape), 0, 1)
    assert niqe(noisy) > niqe(smooth)
    with pytest.raises(ValueError):
        niqe(np.zeros((95, 200)))
    with pytest.raises(ValueError):
        niqe(smooth, channel="rgb")


# ---------------------------------------------------------------- PIQE


@needs_shared
def test_piqe_iqa_examples_reference(refs, iqa_pairs):
    ref = refs["iqa_examples"]["piqe"]
    for k in IQA_IDS:
        got = piqe(iqa_pairs[k][0])
        assert got == pytest.approx(ref["values"][k], abs=ref["tolerance"]), k


def test_piqe_uniform_is_100_and_odd_sizes_work():
    assert piqe(np.full((40, 52, 3), 128, np.uint8)) == pytest.approx(100.0)
    rng = np.random.default_rng(6)
    score = piqe(rng.random((37, 45)))
    assert 0.0 <= score <= 100.0


# ---------------------------------------------------------------- noise estimate


def test_noise_sigma_matches_direct_formula():
    rng = np.random.default_rng(7)
    img = rng.random((9, 11))
    g = img * 255.0
    h, w = g.shape
    total = sum(
        abs(float(np.sum(g[i - 1 : i + 2, j - 1 : j + 2] * IMMERKAER_MASK)))
        for i in range(1, h - 1)
        for j in range(1, w - 1)
    )
    expected = math.sqrt(math.pi / 2) * total / (6 * (w - 2) * (h - 2))
    assert noise_sigma(img) == pytest.approx(expected, rel=1e-12)


def test_noise_sigma_recovers_gaussian_noise_and_ignores_ramps():
    yy, xx = np.mgrid[0:256, 0:256]
    ramp = (20 + 0.3 * xx + 0.2 * yy) / 255.0
    assert noise_sigma(ramp) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(8)
    for sigma in (2.0, 10.0):
        noisy = ramp + rng.normal(0, sigma / 255.0, ramp.shape)
        assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.05)


# ---------------------------------------------------------------- degradation fidelity


def test_degradation_fidelity_reports_and_orders():
    rng = np.random.default_rng(9)
    base = gaussian_filter(rng.random((64, 64, 3)), (2, 2, 0))
    real = np.clip(base + rng.normal(0, 4 / 255, base.shape), 0, 1)
    close = np.clip(base + rng.normal(0, 4 / 255, base.shape), 0, 1)  # same noise level
    clean = base  # bicubic-like: no noise
    near = degradation_fidelity(close, real)
    far = degradation_fidelity(clean, real)
    assert set(near) == {"psnr_y", "ssim_y", "sigma_generated", "sigma_real", "sigma_diff"}
    assert all(isinstance(v, float) for v in near.values())
    assert near["sigma_diff"] == pytest.approx(near["sigma_generated"] - near["sigma_real"])
    assert abs(near["sigma_diff"]) < 1.0 < abs(far["sigma_diff"])
    assert far["sigma_diff"] < 0  # the clean image is less noisy than the real one
    assert near["psnr_y"] == pytest.approx(psnr(close, real, crop_border=0))
    assert near["ssim_y"] == pytest.approx(ssim(close, real, crop_border=0))


def test_colour_cast_is_what_the_output_adds_per_channel():
    from ddnsr.errors import SettingError
    from ddnsr.metrics.color import colour_cast

    rng = np.random.default_rng(0)
    lr = rng.integers(20, 200, (6, 5, 3)).astype(np.uint8)
    out = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1).astype(np.float64) / 255
    assert np.allclose(colour_cast(out, lr), 0)
    out[..., 2] += 3 / 255  # a blue cast of 3 levels; texture inside the 4 x 4 blocks averages out
    out[::2, ::2, 0] += 8 / 255
    out[1::2, 1::2, 0] -= 8 / 255
    assert np.allclose(colour_cast(out, lr), [0, 0, 3])
    with pytest.raises(SettingError, match="integer scale"):
        colour_cast(out[:-1], lr)

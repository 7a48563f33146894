"""Full-reference PSNR and SSIM in the BasicSR / NTIRE convention.

Defaults: the Y channel of ITU-R BT.601 (MATLAB ``rgb2ycbcr``), ``crop_border=4`` pixels removed on
every side, values on the 8-bit range (peak 255). ``channel="rgb"`` uses all colour values,
``channel="gray"`` MATLAB's ``rgb2gray``. Inputs: see :mod:`ddnsr.metrics.color` (uint8, uint16 or
float in [0, 1]; HxW or HxWx3; both images of the same shape).

SSIM is Wang et al. (2004) with an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255,
no downsampling, averaged over the "valid" positions (a window that fits inside the image) and, for
``"rgb"``, over the three channels: scikit-image's ``structural_similarity`` with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255`` computes exactly that.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from ddnsr.errors import SettingError
from ddnsr.metrics.color import check_image, to_channel

__all__ = ["psnr", "ssim"]


def _prepare(img1: np.ndarray, img2: np.ndarray, channel: str, crop_border: int, matlab_round: bool):
    a = check_image(img1, "img1")
    b = check_image(img2, "img2")
    if a.shape != b.shape:
        raise SettingError(f"images differ in shape: {a.shape} vs {b.shape}")
    if crop_border < 0:
        raise SettingError(f"crop_border must be >= 0, not {crop_border}")
    x = to_channel(a, channel, matlab_round=matlab_round)
    y = to_channel(b, channel, matlab_round=matlab_round)
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border, ...]
        y = y[crop_border:-crop_border, crop_border:-crop_border, ...]
        if x.size == 0:
            raise SettingError(f"crop_border={crop_border} leaves nothing of a {a.shape[:2]} image")
    return x, y


def psnr(
    img1: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int = 4,
    channel: str = "y",
    matlab_round: bool = True,
) -> float:
    """Peak signal-to-noise ratio in dB, peak 255 on the 8-bit range; ``inf`` for identical images.

    ``img1``, ``img2``: same shape, HxW or HxWx3 (uint8, uint16 or float in [0, 1]).
    ``channel``: ``"y"`` (default), ``"rgb"`` or ``"gray"``. ``crop_border``: pixels removed on each
    side before comparing. ``matlab_round``: round the Y / gray channel of integer inputs as MATLAB
    does (False reproduces BasicSR's unrounded Y).
    """
    x, y = _prepare(img1, img2, channel, crop_border, matlab_round)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def ssim(
    img1: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int = 4,
    channel: str = "y",
    matlab_round: bool = True,
) -> float:
    """Structural similarity (Wang et al. 2004) in [-1, 1] (1 for identical images).

    Same inputs and options as :func:`psnr`. The image after cropping must be at least 11x11.
    """
    x, y = _prepare(img1, img2, channel, crop_border, matlab_round)
    if min(x.shape[:2]) < 11:
        raise SettingError(f"SSIM needs at least 11x11 pixels, got {x.shape[:2]}")
    value = structural_similarity(
        x,
        y,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255.0,
        channel_axis=2 if x.ndim == 3 else None,
    )
    return float(value)

"""Fast noise standard deviation estimate (Immerkær, "Fast Noise Variance Estimation", CVIU 1996).

The image is filtered with the difference of two Laplacian masks, which cancels image structure that is
locally linear and keeps the noise::

        [ 1 -2  1]
    M = [-2  4 -2]
        [ 1 -2  1]

    sigma = sqrt(pi / 2) / (6 (W - 2) (H - 2)) * sum over the interior of |I * M|

(the interior: the (H-2)x(W-2) positions where the 3x3 mask fits). Hand-written: a dozen lines,
while scikit-image's ``estimate_sigma`` is a different (wavelet, Donoho) estimator.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import convolve2d

from ddnsr.errors import SettingError
from ddnsr.metrics.color import check_image, to_gray

__all__ = ["IMMERKAER_MASK", "noise_sigma"]

IMMERKAER_MASK = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(img: np.ndarray) -> float:
    """Estimated standard deviation of additive white Gaussian noise, on the 8-bit range (0..255).

    ``img``: HxW or HxWx3 (uint8, uint16 or float in [0, 1]), at least 3x3. RGB is converted to gray
    with MATLAB ``rgb2gray`` weights, unrounded (rounding would add quantisation noise). A noise-free
    smooth image gives about 0; white Gaussian noise of standard deviation ``s`` gives about ``s``
    (images with much texture read higher: the estimate mixes in fine detail).
    """
    arr = check_image(img)
    gray = to_gray(arr, matlab_round=False)
    h, w = gray.shape
    if h < 3 or w < 3:
        raise SettingError(f"noise_sigma needs at least 3x3 pixels, got {gray.shape}")
    total = float(np.abs(convolve2d(gray, IMMERKAER_MASK, mode="valid")).sum())
    return math.sqrt(math.pi / 2.0) * total / (6.0 * (w - 2) * (h - 2))

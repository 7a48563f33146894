"""NIQE (Mittal, Soundararajan & Bovik 2013), following the official MATLAB ``niqe_release``.

No-reference: lower is better (a pristine natural image scores about 2-4). Algorithm:

1. convert to one channel on the 8-bit range and round it (halves away from zero) as MATLAB does for a
   ``uint8`` image (``"gray"`` = ``rgb2gray`` with its unrounded weights, the official code; ``"y"`` =
   BT.601 Y, BasicSR's default);
2. crop to a multiple of 96x96 pixels (from the top-left corner);
3. at two scales (the image, then MATLAB bicubic ``imresize`` by 0.5, unrounded): MSCN coefficients
   ``(I - mu) / (sigma + 1)`` with the 7x7 Gaussian window of the model (replicate borders; see
   :func:`mscn` for flat areas), then per patch (96x96, then 48x48) 18 features: an AGGD fit of the
   MSCN values (shape, mean of the two scales) and, for the four neighbour products (right, down, two
   diagonals), AGGD shape, mean and left / right scales;
4. fit a Gaussian to the 36-dimensional patch features (rows with NaN left out of the covariance)
   and return the Mahalanobis-like distance to the pristine model
   ``sqrt((mu_p - mu_d) pinv((C_p + C_d) / 2) (mu_p - mu_d)^T)``.

All in float64. Against MATLAB: BasicSR's ``baboon.png`` (Y) gives 5.7295739 (MATLAB R2021a 5.72957338);
the five IQA-PyTorch calibration images are within 0.031 of MATLAB ``niqe_release``.

The pristine model ships in ``data/niqe_pris_params.npz`` (BasicSR 1.4.2, Apache-2.0).
Hand-written: the project's libraries (SciPy, scikit-image) have no NIQE; the toolkits that do (BasicSR,
pyiqa) bring torchvision and much else (BasicSR also computes in float32, MATLAB in float64).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma as gamma_fn

from ddnsr.errors import SettingError
from ddnsr.metrics.color import check_image, matlab_round_half_away, to_gray, to_y
from ddnsr.metrics.imresize import imresize

__all__ = ["aggd_fit", "mscn", "niqe", "niqe_features", "pristine_model"]

BLOCK = 96
#: |I - mu| below this (8-bit range) counts as exactly zero; see :func:`mscn`.
FLAT_TOL = 1e-10
# Neighbour offsets (row, column) of MATLAB's circshift in computefeature.m.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shipped model: ``(mu (36,), cov (36, 36), gaussian_window (7, 7))``, float64."""
    ref = resources.files("ddnsr.metrics") / "data" / "niqe_pris_params.npz"
    with resources.as_file(ref) as path, np.load(path) as data:
        mu = np.array(data["mu_pris_param"], dtype=np.float64).reshape(-1)
        cov = np.array(data["cov_pris_param"], dtype=np.float64)
        window = np.array(data["gaussian_window"], dtype=np.float64)
    return mu, cov, window


@lru_cache(maxsize=1)
def _shape_table() -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``gam = 0.2:0.001:10`` and ``r_gam = gamma(2/g)^2 / (gamma(1/g) gamma(3/g))``."""
    gam = 0.2 + 0.001 * np.arange(9801)
    r_gam = gamma_fn(2.0 / gam) ** 2 / (gamma_fn(1.0 / gam) * gamma_fn(3.0 / gam))
    return gam, r_gam


def aggd_fit(values: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching (``estimateaggdparam.m``).

    ``values``: any shape (flattened). Returns ``(alpha, beta_left, beta_right)``; NaN where a side is
    empty, as in MATLAB.
    """
    vec = np.asarray(values, dtype=np.float64).ravel()
    gam, r_gam = _shape_table()
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.mean(vec[vec < 0] ** 2)) if np.any(vec < 0) else np.nan
        right_std = np.sqrt(np.mean(vec[vec > 0] ** 2)) if np.any(vec > 0) else np.nan
        gammahat = left_std / right_std
        rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
        if not np.isfinite(rhatnorm):
            return float("nan"), float(left_std), float(right_std)
        alpha = float(gam[np.argmin((r_gam - rhatnorm) ** 2)])
        factor = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    return alpha, float(left_std * factor), float(right_std * factor)


def _patch_features(block: np.ndarray) -> list[float]:
    """The 18 features of one MSCN patch (``computefeature.m``)."""
    alpha, bl, br = aggd_fit(block)
    feats = [alpha, (bl + br) / 2.0]
    for shift in _SHIFTS:
        pair = block * np.roll(block, shift, axis=(0, 1))
        alpha, bl, br = aggd_fit(pair)
        mean = (br - bl) * gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha)
        feats.extend([alpha, mean, bl, br])
    return feats


def mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + 1)`` (HxW, float64).

    ``mu`` and ``sigma`` are the local mean and standard deviation under ``window`` with replicated
    borders (MATLAB ``imfilter(..., 'replicate')``). Where ``I - mu`` is zero in exact arithmetic
    (flat or linear neighbourhoods) floating point leaves noise of about 1e-13 whose sign would
    decide how the AGGD fit counts those pixels; differences below :data:`FLAT_TOL` are set to 0.
    """
    mu = correlate(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, window, mode="nearest") - mu * mu))
    diff = img - mu
    diff[np.abs(diff) < FLAT_TOL] = 0.0
    return diff / (sigma + 1.0)


def niqe_features(gray: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Per-patch NIQE features of a one-channel image on the 8-bit range (HxW, already rounded).

    Returns ``(n_patches, 36)``: 18 features at full scale then 18 at half scale, patches in
    MATLAB's order (column-major over the patch grid). The image must hold at least one patch.
    """
    _, _, window = pristine_model()
    img = np.asarray(gray, dtype=np.float64)
    rows, cols = img.shape[0] // block, img.shape[1] // block
    if rows == 0 or cols == 0:
        raise SettingError(f"NIQE needs at least {block}x{block} pixels, got {img.shape}")
    img = img[: rows * block, : cols * block]
    scales = []
    for scale in (1, 2):
        size = block // scale
        coeffs = mscn(img, window)
        feats = [
            _patch_features(coeffs[r * size : (r + 1) * size, c * size : (c + 1) * size])
            for c in range(cols)
            for r in range(rows)
        ]
        scales.append(np.asarray(feats, dtype=np.float64))
        if scale == 1:
            img = imresize(img / 255.0, 0.5) * 255.0
    return np.concatenate(scales, axis=1)


def niqe(img: np.ndarray, *, crop_border: int = 0, channel: str = "gray") -> float:
    """NIQE score (lower is better) of one image.

    ``img``: HxW or HxWx3 (uint8, uint16 or float in [0, 1]), at least 96x96 after cropping.
    ``channel``: ``"gray"`` (MATLAB ``rgb2gray``, the official ``niqe_release``) or ``"y"`` (BT.601 Y,
    as BasicSR's ``calculate_niqe``). The channel is rounded to integers on the 8-bit range, as MATLAB
    does for 8-bit images (and BasicSR does explicitly). ``crop_border``: pixels removed on each side.
    """
    arr = check_image(img)
    if channel == "gray":
        chan = to_gray(arr, matlab_round=False)
    elif channel == "y":
        chan = to_y(arr, matlab_round=False)
    else:
        raise SettingError(f"channel must be 'gray' or 'y', not {channel!r}")
    chan = matlab_round_half_away(chan)
    if crop_border:
        chan = chan[crop_border:-crop_border, crop_border:-crop_border]
    feats = niqe_features(chan)
    mu_p, cov_p, _ = pristine_model()
    mu_d = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    cov_d = np.cov(complete, rowvar=False)
    diff = mu_p - mu_d
    inv = np.linalg.pinv((cov_p + cov_d) / 2.0)
    return float(np.sqrt(diff @ inv @ diff))

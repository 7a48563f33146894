"""PIQE (Venkatanath et al., NCC 2015), following MATLAB's ``piqe`` (Image Processing Toolbox).

No-reference and model-free: 0 is best, 100 worst. Algorithm:

1. pad the image (bottom / right, replicating the last row / column) to a multiple of 16x16;
2. gray by MATLAB ``rgb2gray`` (rounded for integer images), scaled to 0..255 and rounded;
3. MSCN coefficients ``(I - mu) / (sigma + 1)`` with a 7x7 Gaussian of sigma 7/6, replicated borders;
4. for each 16x16 block whose MSCN variance exceeds 0.1 (a spatially active block):

   * *noticeable distortion*: along each of its four edges, some 6-pixel segment with standard
     deviation below 0.1 (blockiness) marks the block and adds ``1 - variance``;
   * *noise*: with ``s`` the block standard deviation and ``c`` the ratio of the standard deviation
     of its two centre columns to that of the other columns, ``s > 2 |s - c| / max(s, c)`` marks the
     block and adds ``variance``;

5. ``score = 100 (sum of the additions + 1) / (number of active blocks + 1)``.

Standard deviations and variances are unbiased (N - 1), as MATLAB's ``std`` / ``var``. MATLAB removes
the two "surround" columns one after the other, so the surround excludes the 8th and the 10th column
(1-based) of the block, not the 8th and 9th; this is kept for identical numbers.
Hand-written: PIQE exists in MATLAB and in PyTorch-based toolkits (pyiqa), not in the libraries used here.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate

from ddnsr.metrics.color import check_image, matlab_round_half_away, to_gray

__all__ = ["piqe", "piqe_maps"]

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def _gaussian_window(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma**2))
    return g / g.sum()


def _edge_impaired(edge: np.ndarray) -> np.ndarray:
    """Per 6-pixel segment of each edge: is its std below the threshold? ``edge``: (4, 16)."""
    segs = np.lib.stride_tricks.sliding_window_view(edge, SEGMENT, axis=1)  # (4, 11, 6)
    return segs.std(axis=2, ddof=1) < IMPAIRED_THRESHOLD


def _block_scores(block: np.ndarray, var: float) -> tuple[bool, bool]:
    """``(noticeable distortion, noise)`` flags of one active 16x16 MSCN block."""
    edges = np.stack([block[0, :], block[:, -1], block[-1, :], block[:, 0]])
    impaired = bool(_edge_impaired(edges).any())
    sigma = np.sqrt(var)
    center = block[:, 7:9].ravel()  # MATLAB columns 8 and 9
    surround = np.delete(block, [7, 9], axis=1).ravel()  # MATLAB deletes col 8, then col 9 of the rest
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = center.std(ddof=1) / surround.std(ddof=1)
    if np.isnan(ratio):
        ratio = 0.0
    beta = abs(sigma - ratio) / max(sigma, ratio)
    return impaired, bool(sigma > 2.0 * beta)


def _prepare(img: np.ndarray) -> np.ndarray:
    arr = check_image(img)
    h, w = arr.shape[:2]
    ph, pw = (-h) % BLOCK, (-w) % BLOCK
    if ph or pw:
        pad = ((0, ph), (0, pw)) + (((0, 0),) if arr.ndim == 3 else ())
        arr = np.pad(arr, pad, mode="edge")
    gray = to_gray(arr, matlab_round=True)
    return matlab_round_half_away(gray)


def piqe_maps(img: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """PIQE score and MATLAB's three block masks (each HxW bool: activity, artifacts, noise).

    ``img``: HxW or HxWx3 (uint8, uint16 or float in [0, 1]), at least one pixel.
    """
    h, w = np.asarray(img).shape[:2]
    gray = _prepare(img)
    window = _gaussian_window()
    mu = correlate(gray, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(gray * gray, window, mode="nearest") - mu * mu))
    norm = (gray - mu) / (sigma + 1.0)

    masks = np.zeros((3,) + norm.shape, dtype=bool)
    total = 0.0
    active = 0
    for i in range(0, norm.shape[0], BLOCK):
        for j in range(0, norm.shape[1], BLOCK):
            block = norm[i : i + BLOCK, j : j + BLOCK]
            var = float(block.var(ddof=1))
            if var <= ACTIVITY_THRESHOLD:
                continue
            active += 1
            masks[0, i : i + BLOCK, j : j + BLOCK] = True
            impaired, noisy = _block_scores(block, var)
            if impaired:
                total += 1.0 - var
                masks[1, i : i + BLOCK, j : j + BLOCK] = True
            if noisy:
                total += var
                masks[2, i : i + BLOCK, j : j + BLOCK] = True
    score = 100.0 * (total + 1.0) / (active + 1.0)
    return score, masks[0, :h, :w], masks[1, :h, :w], masks[2, :h, :w]


def piqe(img: np.ndarray) -> float:
    """PIQE score in [0, 100] (lower is better) of one image; see the module docstring.

    ``img``: HxW or HxWx3 (uint8, uint16 or float in [0, 1]). A uniform image scores 100.
    """
    return piqe_maps(img)[0]

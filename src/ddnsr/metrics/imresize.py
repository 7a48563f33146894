"""MATLAB-compatible bicubic ``imresize`` (Keys cubic, a = -0.5, antialiased when shrinking).

Written by hand because no installed library reproduces MATLAB's resampling: scikit-image, SciPy,
Pillow and PyTorch all place samples, widen the kernel or treat borders differently, and NIQE's
second scale depends on MATLAB's exact numbers. The algorithm (MATLAB ``imresize``):

* output size ``ceil(scale * input size)``;
* output pixel ``i`` (1-based) maps to input position ``u = i / scale + 0.5 * (1 - 1 / scale)``;
* when shrinking with antialiasing the kernel is stretched by ``1 / scale`` (and scaled by ``scale``);
* the ``ceil(kernel width) + 2`` nearest input pixels contribute, weights normalised to sum 1,
  indices beyond the border mirrored (symmetric padding), and columns that are zero everywhere
  dropped (this does not change the result);
* dimensions are resized one after the other, the one with the smaller scale first (rows first
  when equal). No rounding: a float image in gives a float image out.
"""

from __future__ import annotations

import math

import numpy as np

from ddnsr.errors import SettingError

__all__ = ["cubic", "imresize", "resize_matrix"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def resize_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """The ``(out_len, in_len)`` matrix ``W`` with ``resized = W @ signal`` along one dimension."""
    kernel_width = 4.0
    stretch = antialiasing and scale < 1
    if stretch:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    weights = scale * cubic(scale * dist) if stretch else cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric (mirror) padding: 1..n, n..1, repeated.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(mat, (rows, src.ravel()), weights.ravel())
    return mat


def imresize(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """Resize ``img`` (HxW or HxWxC, float; any range) by ``scale`` as MATLAB ``imresize(img, scale)``.

    Returns float64 of shape ``(ceil(scale H), ceil(scale W)[, C])``; values are not rounded nor
    clipped (bicubic overshoots slightly near edges, as in MATLAB).
    """
    if scale <= 0:
        raise SettingError(f"scale must be > 0, not {scale}")
    arr = np.asarray(img, dtype=np.float64)
    h, w = arr.shape[:2]
    out_h, out_w = int(math.ceil(scale * h)), int(math.ceil(scale * w))
    wh = resize_matrix(h, out_h, scale, antialiasing)
    ww = resize_matrix(w, out_w, scale, antialiasing)
    # Rows first (equal scales), then columns; tensordot keeps any trailing channel axis.
    out = np.tensordot(wh, arr, axes=(1, 0))
    out = np.moveaxis(np.tensordot(ww, out, axes=(1, 1)), 0, 1)
    return out

"""Input checking and colour conversions shared by the metrics (MATLAB conventions).

Accepted images, everywhere in :mod:`ddnsr.metrics`:

* ``uint8`` arrays, values 0..255;
* ``uint16`` arrays, values 0..65535 (scaled by 255/65535 onto the 8-bit range);
* floating-point arrays with values in [0, 1] (values outside are not clipped);

of shape ``HxW`` (gray) or ``HxWxC`` with ``C`` = 1 or 3 (RGB order). Every function here returns
``float64`` arrays on the **8-bit range** (0..255), which is the range all metrics work in.

Rounding follows MATLAB: ``rgb2ycbcr`` and ``rgb2gray`` of an integer image return an integer image
(rounded), of a float image a float image. With ``matlab_round=True`` (the default) an integer input
therefore gives a rounded channel (rounded in its own bit depth, then put on the 8-bit range); a
float input is never rounded. ``matlab_round=False`` gives the unrounded channel, as BasicSR's
``to_y_channel`` does.
"""

from __future__ import annotations

import numpy as np

from ddnsr.errors import SettingError

__all__ = [
    "as_float255",
    "check_image",
    "colour_cast",
    "matlab_round_half_away",
    "to_channel",
    "to_gray",
    "to_unit",
    "to_y",
]

#: ITU-R BT.601 luma for studio-range Y'CbCr (MATLAB ``rgb2ycbcr``), applied to RGB in [0, 1].
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
Y_OFFSET = 16.0 / 255.0
#: MATLAB ``rgb2gray`` weights: the first row of the inverse of the NTSC YIQ matrix, i.e.
#: 0.298936021293776, 0.587043074451121, 0.114020904255103 (documented rounded as 0.2989, 0.5870,
#: 0.1140). The unrounded values matter: NIQE of images with flat areas moves by ~0.1 otherwise.
GRAY_WEIGHTS = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]

_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def matlab_round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (MATLAB's ``round``, not NumPy's)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def check_image(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``img`` as an array after checking its dtype and shape (HxW, HxWx1 or HxWx3)."""
    arr = np.asarray(img)
    if arr.dtype not in _INT_MAX and not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name}: dtype {arr.dtype} is not supported (uint8, uint16 or float in [0, 1])")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise SettingError(f"{name}: shape {arr.shape} is not HxW, HxWx1 or HxWx3")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SettingError(f"{name}: empty image {arr.shape}")
    return arr


def to_unit(img: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Return ``(values in [0, 1] as float64, the integer full scale or None for float input)``.

    Shape is kept (HxW or HxWxC).
    """
    arr = check_image(img)
    full = _INT_MAX.get(arr.dtype)
    if full is None:
        return arr.astype(np.float64), None
    return arr.astype(np.float64) / full, full


def as_float255(img: np.ndarray) -> np.ndarray:
    """Return the image as float64 on the 8-bit range 0..255, shape unchanged (no rounding)."""
    unit, _ = to_unit(img)
    return unit * 255.0


def _convert(img: np.ndarray, weights: np.ndarray, offset: float, matlab_round: bool) -> np.ndarray:
    unit, full = to_unit(img)
    if unit.ndim == 3 and unit.shape[2] == 3:
        chan = unit @ weights + offset
    elif unit.ndim == 3:
        chan = unit[..., 0]
    else:
        chan = unit
    if unit.ndim == 3 and unit.shape[2] == 3 and matlab_round and full is not None:
        # MATLAB returns an image of the input's integer class: round in that bit depth.
        return matlab_round_half_away(chan * full) * (255.0 / full)
    return chan * 255.0


def to_y(img: np.ndarray, *, matlab_round: bool = True) -> np.ndarray:
    """Luma Y of ITU-R BT.601 as MATLAB ``rgb2ycbcr``: ``16 + 65.481 R + 128.553 G + 24.966 B``.

    ``img``: RGB (HxWx3) or gray (HxW / HxWx1, returned unchanged but rescaled); see the module
    docstring for dtypes. Returns HxW float64 on the 8-bit range (Y of RGB lies in [16, 235]).
    """
    return _convert(img, Y_WEIGHTS, Y_OFFSET, matlab_round)


def to_gray(img: np.ndarray, *, matlab_round: bool = True) -> np.ndarray:
    """Gray as MATLAB ``rgb2gray``: ``0.2989 R + 0.5870 G + 0.1140 B`` (unrounded weights, see above).

    ``img``: RGB (HxWx3) or gray (HxW / HxWx1); returns HxW float64 on the 8-bit range 0..255.
    """
    return _convert(img, GRAY_WEIGHTS, 0.0, matlab_round)


def to_channel(img: np.ndarray, channel: str, *, matlab_round: bool = True) -> np.ndarray:
    """Dispatch on ``channel``: ``"y"`` (HxW), ``"gray"`` (HxW) or ``"rgb"`` (values as given, HxWxC).

    All on the 8-bit range, float64. ``"rgb"`` keeps gray inputs gray.
    """
    if channel == "y":
        return to_y(img, matlab_round=matlab_round)
    if channel == "gray":
        return to_gray(img, matlab_round=matlab_round)
    if channel == "rgb":
        return as_float255(img)
    raise SettingError(f"channel must be 'y', 'gray' or 'rgb', not {channel!r}")


def colour_cast(output: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The colour an upscaler adds: ``output`` (sH x sW x 3, an integer scale s of ``source``'s h x w x 3)
    averaged back over s x s blocks, minus ``source``; the mean over the image per R/G/B channel, on the
    8-bit range (0 for a model that keeps colours; the bundled-model test holds it within 2/255)."""
    out, src = as_float255(check_image(output, "output")), as_float255(check_image(source, "source"))
    h, w = src.shape[:2]
    scale = out.shape[0] // h
    if out.ndim != 3 or src.ndim != 3 or out.shape[2] != 3 or out.shape[:2] != (scale * h, scale * w):
        raise SettingError(f"colour_cast: output {out.shape} is not an integer scale of source {src.shape} (RGB)")
    return (out.reshape(h, scale, w, scale, 3).mean(axis=(1, 3)) - src).reshape(-1, 3).mean(axis=0)

"""Alpha planes and array <-> tensor conversion.

Alpha policy (:func:`prepare_rgb_for_alpha`, :func:`upscale_alpha`)
    Straight (unassociated) alpha is kept. Before the network sees an RGBA image the colour of every
    fully transparent pixel is replaced by that of the nearest visible pixel (a "bleed"), so the network
    never mixes the arbitrary colour hidden under alpha = 0 (often black) into the visible edge: no dark
    or coloured fringes, and no division by small alphas as premultiplying would need. The alpha itself is
    resized with bicubic interpolation (clipped to [0, 1]) rather than by the model: the model is trained
    to sharpen and invent photographic texture, which on a mask gives halos and noise, and it would cost
    a second full inference.

"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from ddnsr.errors import SettingError

__all__ = ["from_tensor", "prepare_rgb_for_alpha", "to_tensor", "upscale_alpha"]

# ------------------------------------------------------------------------------------------- tensors


def to_tensor(
    array: np.ndarray, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """HxWxC (or HxW) array -> 1xCxHxW tensor; float values are kept, uint8 / uint16 scaled to [0, 1]."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise SettingError(f"expected an HxWxC or HxW array, got shape {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor.unsqueeze(0).to(device=device, dtype=dtype)


def from_tensor(tensor: torch.Tensor) -> np.ndarray:
    """1xCxHxW (or CxHxW) tensor -> float32 HxWxC NumPy array (values untouched, on the CPU)."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise SettingError(f"expected a batch of one, got shape {tuple(tensor.shape)}")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise SettingError(f"expected a 1xCxHxW or CxHxW tensor, got shape {tuple(tensor.shape)}")
    return tensor.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy()


# ---------------------------------------------------------------------------------------------- alpha


def prepare_rgb_for_alpha(rgb: np.ndarray, alpha: np.ndarray, *, min_alpha: float = 0.5 / 255) -> np.ndarray:
    """Colour for the network: every transparent pixel takes the colour of the nearest visible pixel.

    Args:
        rgb: HxWx3 float32 in [0, 1], straight colour.
        alpha: HxW float32 in [0, 1].
        min_alpha: pixels with alpha below this are transparent (default: those that are 0 in 8 bits).

    Returns:
        A new HxWx3 float32 array; visible pixels are unchanged. A fully transparent image is returned
        unchanged (copied), as there is no colour to spread.
    """
    from scipy import ndimage

    rgb = np.asarray(rgb, dtype=np.float32)
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.shape != rgb.shape[:2]:
        raise SettingError(f"alpha {alpha.shape} does not match rgb {rgb.shape}")
    hidden = alpha < min_alpha
    if not hidden.any() or hidden.all():
        return rgb.copy()
    rows, cols = ndimage.distance_transform_edt(hidden, return_distances=False, return_indices=True)
    return rgb[rows, cols]


def upscale_alpha(
    alpha: np.ndarray, scale: float | Fraction, *, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Resize an alpha plane with bicubic interpolation (antialiased when shrinking), clipped to [0, 1].

    Args:
        alpha: HxW float array in [0, 1].
        scale: the factor (4 for the x4 upscaler, 1/4 for the degrader).
        size: the exact output (height, width); default ``round(H * scale), round(W * scale)``.

    Returns:
        float32 array of the output size, in [0, 1].
    """
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.ndim != 2:
        raise SettingError(f"alpha must be HxW, got shape {alpha.shape}")
    factor = float(scale)
    if factor <= 0:
        raise SettingError(f"scale must be positive, got {scale}")
    if size is None:
        size = (max(1, round(alpha.shape[0] * factor)), max(1, round(alpha.shape[1] * factor)))
    if tuple(size) == alpha.shape:
        return alpha.copy()
    shrinking = size[0] < alpha.shape[0] or size[1] < alpha.shape[1]
    tensor = torch.from_numpy(np.ascontiguousarray(alpha))[None, None]
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(
            tensor, size=tuple(size), mode="bicubic", align_corners=False, antialias=shrinking
        )
    return resized[0, 0].clamp_(0.0, 1.0).numpy()

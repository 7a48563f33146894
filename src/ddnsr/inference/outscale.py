"""Output sizes other than x4: ``--outscale S`` (Real-ESRGAN's and Upscayl's option), ``--width``, ``--height``.

The network always runs x4; the x4 result is then downscaled to the asked size with Pillow's Lanczos
filter (``Image.LANCZOS``, a = 3, on float planes, so 16-bit results keep their precision), as
Real-ESRGAN's ``inference_realesrgan.py --outscale`` does with OpenCV's Lanczos. Lanczos keeps more of
the x4 detail than bicubic when shrinking by small factors (x4 -> x2 is the common case), and Pillow is
already a dependency. A size above x4 is refused: the model adds no detail beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ddnsr.errors import SettingError

__all__ = ["OutputSize", "resize_planes"]


@dataclass(frozen=True)
class OutputSize:
    """One of ``outscale`` (in (0, 4]), ``width`` or ``height`` (pixels; the other side keeps the aspect);
    all None: x4."""

    outscale: float | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("outscale", "width", "height") if getattr(self, k) is not None]
        if len(given) > 1:
            raise SettingError(f"give one of outscale, width and height, not {' and '.join(given)}")
        s = self.outscale
        if s is not None and not (isinstance(s, (int, float)) and math.isfinite(s) and 0 < s <= 4):
            raise SettingError(f"outscale must be a number above 0 and at most 4 (the model is x4), got {s!r}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise SettingError(f"{name} must be a whole number of pixels of at least 1, got {v!r}")

    @property
    def is_x4(self) -> bool:
        return self.outscale in (None, 4) and self.width is None and self.height is None

    def for_input(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) of the output for an input of ``width`` x ``height``.

        Raises:
            SettingError: a ``width``/``height`` above 4x the input's.
        """
        if self.width is not None:
            w = self.width
            h = max(1, round(height * w / width))
        elif self.height is not None:
            h = self.height
            w = max(1, round(width * h / height))
        else:
            s = 4 if self.outscale is None else self.outscale
            return max(1, round(width * s)), max(1, round(height * s))
        if w > 4 * width or h > 4 * height:
            name = "width" if self.width is not None else "height"
            raise SettingError(f"{name} {getattr(self, name)} is more than 4x the input's {width}x{height} "
                               "(the model is x4)")
        return w, h


def resize_planes(data: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``H x W x C`` uint8/uint16/float32 -> ``size[1] x size[0] x C`` of the same dtype (Lanczos)."""
    w, h = size
    if data.shape[1] == w and data.shape[0] == h:
        return data
    planes = []
    for c in range(data.shape[2]):
        img = Image.fromarray(np.ascontiguousarray(data[..., c], dtype=np.float32), mode="F")
        planes.append(np.asarray(img.resize((w, h), Image.LANCZOS)))
    out = np.stack(planes, axis=-1)
    if np.issubdtype(data.dtype, np.integer):
        top = np.iinfo(data.dtype).max
        return np.clip(np.round(out), 0, top).astype(data.dtype)
    return out.astype(data.dtype)

"""What the image readers and writers share: the extensions, formats and warnings."""

from __future__ import annotations

import numpy as np

from ddnsr.defaults import DECODE_MAX_PIXELS, IMAGE_EXTENSIONS
from ddnsr.errors import one_line

__all__ = [
    "DEFAULT_MAX_PIXELS", "FORMAT_BY_EXTENSION", "GRAY_MODES", "IMAGE_EXTENSIONS", "LUMA", "READ_FORMATS",
    "ImageWarning", "describe_exception",
]

#: Largest image :func:`read_image` decodes by default: 256 megapixels. That is above any camera or
#: flatbed scan in common use, yet bounds what a tiny crafted file can make us allocate to ~3 GB as a
#: float32 RGB array (plus ~0.8 GB while decoding). Callers with tighter memory pass a smaller limit.
#: (:data:`ddnsr.defaults.DECODE_MAX_PIXELS`).
DEFAULT_MAX_PIXELS = DECODE_MAX_PIXELS

#: Input extensions :func:`list_images` picks up (files named explicitly are recognised by content), from
#: :data:`ddnsr.defaults.IMAGE_EXTENSIONS`. GIF is read (its first frame) but not written: outputs use
#: :data:`FORMAT_BY_EXTENSION`.

FORMAT_BY_EXTENSION = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
READ_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's RGB -> L


class ImageWarning(UserWarning):
    """Something about an image was changed on the way in or out (precision, alpha, ICC profile)."""


def describe_exception(exc: BaseException) -> str:
    """``"<Type>: <message>"`` on one line (:func:`ddnsr.errors.one_line` with its type)."""
    return one_line(exc, typed=True)

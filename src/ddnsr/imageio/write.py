"""Writing image files (:func:`write_image`, :func:`write_planes`).

Writing (:func:`write_image`)
    The format comes from the extension. 16-bit output is written for PNG and TIFF by small encoders in
    this module (Pillow cannot write 16-bit colour; 16-bit gray + alpha goes to TIFF as RGBA, the only
    form Pillow reads back); JPEG, WebP and BMP are 8-bit formats, so ``bit_depth=16`` falls back to 8
    bits with an :class:`ImageWarning`. Gray is written as gray (WebP has no gray mode: it gets RGB).
    JPEG is written with 4:4:4 chroma (no subsampling); WebP with ``quality=100`` is lossless. JPEG and
    BMP cannot keep alpha (Pillow writes BMP alpha that readers, Pillow included, ignore): the image is
    composited on white and an :class:`ImageWarning` is issued. The ICC profile is embedded (not in
    BMP) unless its colour space does not match the output (an RGB profile on a gray output or the
    reverse), in which case it is dropped with a warning. Other metadata (EXIF, XMP, text chunks) is not
    carried. Writes are atomic: the bytes go to ``.<name>.<random>.part`` in the destination folder, are
    fsynced and then renamed over the destination; on any error the temporary file is removed and an
    existing destination is left untouched.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, features

from ddnsr.errors import ImageError, SettingError
from ddnsr.files import atomic_write
from ddnsr.imageio.common import (
    FORMAT_BY_EXTENSION,
    LUMA,
    ImageWarning,
    describe_exception,
)

__all__ = ["as_float_planes", "output_format", "write_image", "write_planes"]

# --------------------------------------------------------------------------------------------- writing


def _png_chunk(f: BinaryIO, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data)
    f.write(struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png_filter_rows(raw: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter rows of bytes (n x L uint8) after ``prior`` (L,), each row with its best filter.

    The filter of each row is the one of the five (None, Sub, Up, Average, Paeth) with the smallest sum
    of absolute signed residuals, the heuristic of the PNG specification. Returns n x (1 + L) uint8.
    """
    up = np.concatenate([prior[None], raw[:-1]], axis=0)
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up_left = np.zeros_like(raw)
    up_left[:, bpp:] = up[:, :-bpp]
    a, b, c = (x.astype(np.int16) for x in (left, up, up_left))
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)
    average = ((a + b) >> 1).astype(np.uint8)
    candidates = np.stack([raw, raw - left, raw - up, raw - average, raw - paeth])
    cost = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64)
    choice = np.argmin(cost, axis=0)
    out = np.empty((raw.shape[0], raw.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = choice
    out[:, 1:] = candidates[choice, np.arange(raw.shape[0])]
    return out


def write_png16(f: BinaryIO, data: np.ndarray, icc_profile: bytes | None) -> None:
    """Write HxWxC uint16 samples (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG."""
    height, width, channels = data.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    f.write(b"\x89PNG\r\n\x1a\n")
    _png_chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
    if icc_profile:
        _png_chunk(f, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
    row_bytes = width * channels * 2
    rows_per_block = max(1, (1 << 20) // row_bytes)
    compressor = zlib.compressobj(6)
    prior = np.zeros(row_bytes, dtype=np.uint8)
    for y0 in range(0, height, rows_per_block):
        block = np.ascontiguousarray(data[y0 : y0 + rows_per_block], dtype=">u2")
        raw = block.view(np.uint8).reshape(block.shape[0], row_bytes)
        packed = compressor.compress(_png_filter_rows(raw, prior, 2 * channels).tobytes())
        if packed:
            _png_chunk(f, b"IDAT", packed)
        prior = raw[-1].copy()
    _png_chunk(f, b"IDAT", compressor.flush())
    _png_chunk(f, b"IEND", b"")


def write_tiff16(f: BinaryIO, data: np.ndarray, icc_profile: bytes | None) -> None:
    """Write HxWxC uint16 samples (C: 1 gray, 3 RGB, 4 RGBA) as a little-endian 16-bit baseline TIFF.

    Deflate with the horizontal predictor when Pillow has libtiff (so that it can read the file back),
    else uncompressed. Classic TIFF: the file must stay under 4 GiB.
    """
    height, width, channels = data.shape
    if channels not in (1, 3, 4):
        raise SettingError(f"16-bit TIFF with {channels} channels is not written")
    compress = features.check("libtiff")
    row_bytes = width * channels * 2
    rows_per_strip = max(1, (1 << 18) // row_bytes)
    start = f.tell()
    f.write(b"II*\x00\x00\x00\x00\x00")  # IFD offset patched below
    offsets: list[int] = []
    counts: list[int] = []
    position = 8
    for y0 in range(0, height, rows_per_strip):
        strip = data[y0 : y0 + rows_per_strip].astype("<u2")
        if compress:
            strip[:, 1:] -= data[y0 : y0 + rows_per_strip, :-1].astype("<u2")  # wraps modulo 2**16
            payload = zlib.compress(strip.tobytes(), 6)
        else:
            payload = strip.tobytes()
        offsets.append(position)
        counts.append(len(payload))
        f.write(payload)
        position += len(payload)
    if position % 2:
        f.write(b"\x00")
        position += 1

    short, long_, undefined = 3, 4, 7
    entries: list[tuple[int, int, list[int] | bytes]] = [
        (256, long_, [width]),
        (257, long_, [height]),
        (258, short, [16] * channels),
        (259, short, [8 if compress else 1]),
        (262, short, [1 if channels == 1 else 2]),
        (273, long_, offsets),
        (277, short, [channels]),
        (278, long_, [rows_per_strip]),
        (279, long_, counts),
        (284, short, [1]),
    ]
    if compress:
        entries.append((317, short, [2]))
    if channels == 4:
        entries.append((338, short, [2]))  # unassociated alpha
    if icc_profile:
        entries.append((34675, undefined, icc_profile))

    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = position + ifd_size
    ifd = bytearray(struct.pack("<H", len(entries)))
    extra = bytearray()
    for tag, kind, values in entries:
        if kind == undefined:
            blob, count = bytes(values), len(values)
        else:
            blob = struct.pack(f"<{len(values)}{'H' if kind == short else 'I'}", *values)
            count = len(values)
        if len(blob) <= 4:
            ifd += struct.pack("<HHI", tag, kind, count) + blob.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
            extra += blob + (b"\x00" if len(blob) % 2 else b"")
    ifd += b"\x00\x00\x00\x00"
    if extra_at + len(extra) >= 1 << 32:
        raise SettingError("image too large for a classic TIFF (4 GiB); write PNG instead")
    f.write(bytes(ifd) + bytes(extra))
    end = f.tell()
    f.seek(start + 4)
    f.write(struct.pack("<I", position))
    f.seek(end)


def as_float_planes(array: np.ndarray, what: str) -> np.ndarray:
    """Any supported array as float32 in [0, 1] (uint8 / 255, uint16 / 65535, floats clipped, NaN -> 0)."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        raise SettingError(f"{what} must be float in [0, 1], uint8 or uint16, not {array.dtype}")
    return np.clip(np.nan_to_num(array.astype(np.float32, copy=False)), 0.0, 1.0)


def _quantize(planes: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 65535.0 if bit_depth == 16 else 255.0
    return np.rint(planes * top).astype(np.uint16 if bit_depth == 16 else np.uint8)


def _usable_icc(icc_profile: bytes | None, gray: bool, path: Path) -> bytes | None:
    if not icc_profile:
        return None
    space = bytes(icc_profile[16:20]) if len(icc_profile) >= 128 else b""
    wanted = b"GRAY" if gray else b"RGB "
    if space != wanted:
        found = space.decode("latin-1").strip() or "invalid"
        warnings.warn(
            f"{path}: ICC profile dropped (its colour space is {found}, the output is {'gray' if gray else 'RGB'})",
            ImageWarning,
            stacklevel=3,
        )
        return None
    return bytes(icc_profile)


def _encode(f: BinaryIO, data: np.ndarray, fmt: str, icc: bytes | None, quality: int) -> None:
    """Encode HxWxC samples (uint8: any format; uint16: PNG or TIFF) into the open file ``f``."""
    if data.dtype == np.uint16:
        if fmt == "PNG":
            write_png16(f, data, icc)
        else:
            if data.shape[2] == 2:  # Pillow reads no 16-bit gray+alpha TIFF: store it as RGBA
                data = np.concatenate([np.repeat(data[..., :1], 3, axis=2), data[..., 1:]], axis=2)
            write_tiff16(f, data, icc)
        return
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[data.shape[2]]
    image = Image.fromarray(data[..., 0] if mode == "L" else data, mode)
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if fmt == "PNG":
        options["compress_level"] = 6
    elif fmt == "JPEG":
        options.update(quality=int(quality), subsampling=0)  # 4:4:4: keep the fine colour detail
    elif fmt == "WEBP":
        options.update(quality=int(quality), lossless=quality >= 100, exact=True, method=4)
    elif fmt == "TIFF" and features.check("libtiff"):
        options["compression"] = "tiff_adobe_deflate"
    image.save(f, format=fmt, **options)


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    is_gray: bool = False,
    icc_profile: bytes | None = None,
    quality: int = 95,
) -> Path:
    """Write an image atomically, in the format its extension names.

    Args:
        path: destination ending in .png, .jpg/.jpeg, .webp, .bmp or .tif/.tiff; missing folders are made.
        rgb: HxWx3 colour, or HxW / HxWx1 gray; float in [0, 1] (clipped, NaN -> 0, rounded), uint8 or
            uint16.
        alpha: HxW (or HxWx1) straight alpha with the same value conventions, or None.
        bit_depth: 8 or 16 (16 is honoured by PNG and TIFF; other formats get 8 and a warning).
        is_gray: write a gray image; colour input is reduced with BT.601 luma weights (a gray image that
            went through the network as three nearly equal channels comes back as their weighted mean).
        icc_profile: embedded when the format allows it and its colour space matches the output.
        quality: JPEG and WebP quality (1..100); WebP at 100 is lossless.

    Returns:
        The destination path.

    Raises:
        ImageError: unsupported extension, or the file could not be written (nothing is left behind).
        ValueError: arrays of the wrong shape or type, bit_depth other than 8 or 16.
    """
    path = Path(path)
    fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, f"unsupported output format {path.suffix or '(no extension)'!r} "
                               f"(use one of {', '.join(FORMAT_BY_EXTENSION)})")
    if bit_depth not in (8, 16):
        raise SettingError(f"bit_depth must be 8 or 16, not {bit_depth}")

    colour = as_float_planes(rgb, "rgb")
    if colour.ndim == 2:
        colour = colour[..., None]
    if colour.ndim != 3 or colour.shape[2] not in (1, 3) or 0 in colour.shape:
        raise SettingError(f"rgb must be HxWx3, HxW or HxWx1, not {tuple(np.shape(rgb))}")
    gray = is_gray or colour.shape[2] == 1
    if gray and colour.shape[2] == 3:
        colour = np.clip(colour @ LUMA, 0.0, 1.0)[..., None]

    opacity = None
    if alpha is not None:
        opacity = as_float_planes(alpha, "alpha")
        if opacity.ndim == 3 and opacity.shape[2] == 1:
            opacity = opacity[..., 0]
        if opacity.shape != colour.shape[:2]:
            raise SettingError(f"alpha must be {colour.shape[0]}x{colour.shape[1]}, not {opacity.shape}")
    if opacity is not None and fmt in ("JPEG", "BMP"):
        warnings.warn(f"{path}: {fmt} keeps no alpha; the image is composited on white",
                      ImageWarning, stacklevel=2)
        colour = colour * opacity[..., None] + (1.0 - opacity[..., None])
        opacity = None

    depth = bit_depth
    if depth == 16 and fmt not in ("PNG", "TIFF"):
        warnings.warn(f"{path}: {fmt} is an 8-bit format; written with 8 bits", ImageWarning, stacklevel=2)
        depth = 8
    if fmt == "WEBP" and gray:
        colour, gray = np.repeat(colour, 3, axis=2), False  # WebP has no gray mode
    planes = colour if opacity is None else np.concatenate([colour, opacity[..., None]], axis=2)
    return _write_encoded(path, _quantize(planes, depth), fmt, _usable_icc(icc_profile, gray, path), quality)


def _write_encoded(path: Path, data: np.ndarray, fmt: str, icc: bytes | None, quality: int) -> Path:
    """Encode the quantized ``data`` atomically to ``path`` (the ICC profile dropped for BMP, with a warning)."""
    if icc and fmt == "BMP":
        warnings.warn(f"{path}: BMP cannot carry the ICC profile; dropped", ImageWarning, stacklevel=3)
        icc = None
    try:
        atomic_write(path, lambda f: _encode(f, data, fmt, icc, quality))
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else describe_exception(exc)
        raise ImageError(path, f"cannot write: {reason}") from exc
    return path


# ------------------------------------------------------------------ already quantized planes (the upscaler's output)


_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


def output_format(path: str | os.PathLike) -> str:
    """Pillow's format name for an output path's extension (ValueError for others)."""
    fmt = FORMAT_BY_EXTENSION.get(Path(path).suffix.lower())
    if fmt is None:
        raise SettingError(f"{path}: unsupported output format (use one of {', '.join(FORMAT_BY_EXTENSION)})")
    return fmt


def write_planes(path: str | os.PathLike, data: np.ndarray, *, icc_profile: bytes | None = None,
                 quality: int = 95) -> Path:
    """Write an already quantized HxWxC array (uint8, or uint16 for PNG / TIFF) atomically.

    C: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. Unlike :func:`ddnsr.imageio.write_image` nothing is converted
    to float on the way (a 16000x12000 RGB output stays 576 MB). Formats without alpha (JPEG, BMP) get
    the image composited on white, row block by row block, with an :class:`ddnsr.imageio.ImageWarning`; WebP
    has no gray mode (gray is written as RGB). The ICC profile follows the rules of ``write_image``.

    Raises:
        ImageError: the file could not be written (nothing is left behind).
    """
    path = Path(path)
    fmt = output_format(path)
    if data.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        raise SettingError(f"{path}: {fmt} is an 8-bit format")
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4) or data.dtype not in (np.uint8, np.uint16):
        raise SettingError(f"expected an HxWxC uint8/uint16 array (C in 1..4), got {data.shape} {data.dtype}")
    channels = data.shape[2]
    if channels in (2, 4) and fmt not in _ALPHA_FORMATS:
        warnings.warn(f"{path}: {fmt} keeps no alpha; the image is composited on white",
                      ImageWarning, stacklevel=2)
        data = _composite_on_white(data)
        channels -= 1
    if fmt == "WEBP" and channels in (1, 2):
        data = np.concatenate([np.repeat(data[..., :1], 3, axis=2), data[..., 1:]], axis=2)
        channels += 2
    return _write_encoded(path, data, fmt, _usable_icc(icc_profile, channels in (1, 2), path), quality)


def _composite_on_white(data: np.ndarray, rows: int = 256) -> np.ndarray:
    """HxWx(C+1) integer colour + alpha -> HxWxC colour over white, in blocks of rows (bounded memory)."""
    top = 65535.0 if data.dtype == np.uint16 else 255.0
    out = np.empty(data.shape[:2] + (data.shape[2] - 1,), dtype=data.dtype)
    for y in range(0, data.shape[0], rows):
        block = data[y : y + rows].astype(np.float32) / top
        a = block[..., -1:]
        out[y : y + rows] = np.rint((block[..., :-1] * a + (1.0 - a)) * top)
    return out

"""Image files in and out: reading, atomic writing, folder listing, tensors and alpha handling.

Reading (:func:`read_image`)
    PNG, JPEG (and camera MPO), WebP, BMP and TIFF, decoded by Pillow and always fully decoded, so a
    truncated file fails here rather than later (for PNG every IDAT checksum and the IEND chunk are
    checked too, which Pillow skips). The pixel count is checked against ``max_pixels`` from the
    header, before anything is decoded (for WebP even before Pillow opens it, as Pillow allocates the
    canvas then); Pillow's own limit is switched off while our reads run, ours replaces it. The EXIF
    orientation is applied (Pillow already does it for TIFF) and so no longer needed. Every Pillow mode
    is converted, never rejected: ``1``, ``L``, ``LA``, ``P``/``PA`` (with or without transparency),
    ``RGB``, ``RGBA``, ``CMYK`` (through its ICC profile when it has one), ``YCbCr``, ``I;16*``, ``I``
    and ``F``. The result is a float32 HxWx3 array in [0, 1] (gray replicated to 3 channels,
    ``is_gray`` recorded) and an optional HxW alpha in [0, 1]. Palette images count as colour.

16-bit colour
    Pillow decodes 16-bit RGB(A) PNG and TIFF to 8 bits (it keeps the high byte of each sample). PNG
    filters and TIFF predictors act on each byte lane separately, so decoding the same file a second
    time with the byte order of the raw mode swapped (``RGB;16B`` <-> ``RGB;16L``) gives exactly the low
    bytes; high and low bytes are then joined. 16-bit gray + alpha PNG is decoded once as raw ``RGBA``
    bytes. This relies on Pillow's tile descriptors, so it is checked once per process on tiny files
    written by this module; if the check fails (a future Pillow), such files are read at 8-bit precision
    with an :class:`ImageWarning`. Limits: TIFF with associated (premultiplied) alpha, planar TIFF whose
    raw modes cannot be swapped and 16-bit CMYK are read at 8-bit precision. 16-bit gray (``I;16``) needs
    no trick. ``I`` (32-bit integer) images are taken to hold 16-bit values; ``F`` images are clipped to
    [0, 1]; both report ``bit_depth=16``.

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

import contextlib
import functools
import io
import os
import re
import secrets
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError, features

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "ImageWarning",
    "LoadedImage",
    "from_tensor",
    "list_images",
    "prepare_rgb_for_alpha",
    "read_image",
    "to_tensor",
    "upscale_alpha",
    "write_image",
]

#: Largest image :func:`read_image` decodes by default: 256 megapixels. That is above any camera or
#: flatbed scan in common use, yet bounds what a tiny crafted file can make us allocate to ~3 GB as a
#: float32 RGB array (plus ~0.8 GB while decoding). Callers with tighter memory pass a smaller limit.
DEFAULT_MAX_PIXELS = 16_000 * 16_000

#: Extensions (lower case, with the dot) that :func:`list_images` picks up and :func:`write_image` writes.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

_FORMAT_BY_EXTENSION = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_READ_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's RGB -> L


class ImageError(Exception):
    """An image file that cannot be read or written; ``str()`` is one line: ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = " ".join(str(reason).split())

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ImageWarning(UserWarning):
    """Something about an image was changed on the way in or out (precision, alpha, ICC profile)."""


@dataclass(eq=False)
class LoadedImage:
    """A decoded image.

    Attributes:
        rgb: float32 array, HxWx3, values in [0, 1]; a gray image has three equal channels.
        alpha: float32 array, HxW, in [0, 1] (straight, not premultiplied), or None without alpha.
        bit_depth: 8 or 16, the precision of the source samples.
        is_gray: the source had no colour (write it back with ``is_gray=True`` to keep it gray).
        icc_profile: the embedded ICC profile, or None (a CMYK profile is consumed by the conversion).
        mode: the source's Pillow mode (``"P"``, ``"I;16"``, ...), with ``";16"`` appended for 16-bit
            colour that Pillow reports as 8-bit ``"RGB"``/``"RGBA"`` (e.g. ``"RGB;16"``, ``"LA;16"``).
        path: the file it came from.
        format: Pillow's format name (``"PNG"``, ``"JPEG"``, ``"MPO"``, ``"WEBP"``, ``"BMP"``, ``"TIFF"``).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    is_gray: bool
    icc_profile: bytes | None
    mode: str
    path: Path
    format: str = ""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


# --------------------------------------------------------------------------------------------- reading


class _PillowLimitOff:
    """Switch Pillow's own decompression-bomb limit off while any read of ours runs (ours replaces it).

    Reference counted so that concurrent reads neither serialise nor restore the limit too early.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    Image.MAX_IMAGE_PIXELS = self._saved


_pillow_limit_off = _PillowLimitOff()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """Canvas size from the first 30 bytes of a WebP file (Pillow allocates the canvas while opening)."""
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    kind = head[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(path, f"corrupt image header (size {width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            path,
            f"too many pixels: {width}x{height} = {width * height} > limit {max_pixels} "
            "(refused before decoding; raise max_pixels if the image is genuine)",
        )


@dataclass
class _Decoded:
    image: Image.Image  # loaded, EXIF orientation applied
    rawmodes: list[str]  # the raw mode of each tile, as Pillow planned to decode it
    format: str


def _decode(
    source: Path | BinaryIO,
    path: Path,
    max_pixels: int | None,
    rawmode_map: Callable[[str], str] | None = None,
) -> _Decoded:
    """Open, check the size, fully decode and orient one image; ``rawmode_map`` rewrites tile raw modes."""
    with contextlib.ExitStack() as stack:
        if isinstance(source, Path):
            try:
                fp: BinaryIO = stack.enter_context(source.open("rb"))
            except OSError as exc:
                raise ImageError(path, f"cannot open: {exc.strerror or _one_line(exc)}") from exc
        else:
            fp = source
        head = fp.read(30)
        fp.seek(0)
        webp_size = _webp_size(head)
        if webp_size is not None:
            _check_pixels(path, webp_size, max_pixels)
        with _pillow_limit_off():
            try:
                im = Image.open(fp, formats=_READ_FORMATS)
            except UnidentifiedImageError as exc:
                raise ImageError(path, "not a PNG, JPEG, WebP, BMP or TIFF image") from exc
            except Exception as exc:
                raise ImageError(path, f"corrupt image header ({_one_line(exc)})") from exc
            stack.enter_context(im)
            _check_pixels(path, im.size, max_pixels)
            rawmodes = [_tile_rawmode(tile.args) for tile in im.tile]
            if rawmode_map is not None:
                im.tile = [tile._replace(args=_with_rawmode(tile.args, rawmode_map)) for tile in im.tile]
            try:
                im.load()
            except MemoryError as exc:
                raise ImageError(path, f"not enough memory to decode {im.width}x{im.height}") from exc
            except Exception as exc:
                raise ImageError(path, f"corrupt or truncated image data ({_one_line(exc)})") from exc
        fmt = im.format or ""
        if fmt == "PNG" and rawmode_map is None:
            problem = _png_chunk_problem(fp)
            if problem:
                raise ImageError(path, problem)
        try:
            ImageOps.exif_transpose(im, in_place=True)
        except Exception as exc:  # a malformed EXIF block: keep the stored orientation
            warnings.warn(f"{path}: EXIF orientation ignored ({_one_line(exc)})", ImageWarning, stacklevel=3)
        # ``with im`` closes the file pointer only; the decoded pixels stay.
        return _Decoded(im, rawmodes, fmt)


def _png_chunk_problem(fp: BinaryIO) -> str | None:
    """What is wrong with a PNG's chunk sequence, or None.

    Pillow stops reading once it has the pixels and checks no IDAT checksum, so a file cut just before
    its end or with damaged image data could pass unnoticed: check every IDAT CRC and that IEND exists.
    """
    fp.seek(8)
    while True:
        header = fp.read(8)
        if len(header) < 8:
            return "truncated PNG (no IEND chunk)"
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            return None
        if kind != b"IDAT":
            fp.seek(length + 4, os.SEEK_CUR)
            continue
        crc = zlib.crc32(kind)
        remaining = length
        while remaining:
            block = fp.read(min(remaining, 1 << 20))
            if not block:
                return "truncated PNG (image data cut short)"
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
        stored = fp.read(4)
        if len(stored) < 4:
            return "truncated PNG (image data cut short)"
        if struct.unpack(">I", stored)[0] != crc:
            return "corrupt PNG (bad checksum in the image data)"


def _tile_rawmode(args: object) -> str:
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _with_rawmode(args: object, rawmode_map: Callable[[str], str]) -> object:
    if isinstance(args, str):
        return rawmode_map(args)
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return (rawmode_map(args[0]), *args[1:])
    raise ValueError("unexpected tile descriptor")


_WIDE_RAWMODE = re.compile(r"^(RGB|RGBA|RGBX);16([BLN])$")


def _is_wide_colour(rawmodes: list[str], mode: str) -> bool:
    """16-bit colour that Pillow decodes to 8 bits (high byte kept)."""
    if mode not in ("RGB", "RGBA") or not rawmodes:
        return False
    return all(_WIDE_RAWMODE.match(r) for r in rawmodes) or rawmodes == ["LA;16B"]


def _low_byte_rawmode(rawmode: str) -> str:
    """The raw mode that picks the low byte of each 16-bit sample where ``rawmode`` picks the high one."""
    if rawmode == "LA;16B":
        return "RGBA"  # the four bytes L_hi L_lo A_hi A_lo, one per channel
    match = _WIDE_RAWMODE.match(rawmode)
    if match is None:
        raise ValueError(f"no low-byte raw mode for {rawmode}")
    order = match.group(2)
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    return f"{match.group(1)};16{'L' if order == 'B' else 'B'}"


def _join_wide(hi: Image.Image, lo: Image.Image, rawmodes: list[str]) -> tuple[np.ndarray, bool]:
    """uint16 HxWxC samples from the high-byte and low-byte decodes; returns (samples, is_gray)."""
    hi_arr = np.asarray(hi)
    lo_arr = np.asarray(lo)
    if hi_arr.shape != lo_arr.shape:
        raise ValueError("decodes disagree")
    if rawmodes == ["LA;16B"]:
        lo16 = lo_arr.astype(np.uint16)
        gray = (lo16[..., 0] << 8) | lo16[..., 1]
        alpha = (lo16[..., 2] << 8) | lo16[..., 3]
        if not np.array_equal(lo_arr[..., 0], hi_arr[..., 0]):
            raise ValueError("decodes disagree")
        return np.stack([gray, alpha], axis=-1), True
    return (hi_arr.astype(np.uint16) << 8) | lo_arr.astype(np.uint16), False


def _decode_wide(first: _Decoded, source: Path | BinaryIO, path: Path) -> tuple[np.ndarray, bool]:
    """Decode the low bytes of a 16-bit colour image and join them with the already decoded high bytes."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
    second = _decode(source, path, None, rawmode_map=_low_byte_rawmode)
    return _join_wide(first.image, second.image, first.rawmodes)


@functools.cache
def _wide_decoding_works(fmt: str) -> bool:
    """Check once that the two-pass 16-bit colour decoding gives back what this module writes."""
    rng = np.random.default_rng(1)
    try:
        for channels in (2, 3, 4) if fmt == "PNG" else (3, 4):
            data = rng.integers(0, 65536, size=(3, 5, channels), dtype=np.uint16)
            buffer = io.BytesIO()
            (_write_png16 if fmt == "PNG" else _write_tiff16)(buffer, data, None)
            buffer.seek(0)
            here = Path(f"<{fmt} self-test>")
            first = _decode(buffer, here, None)
            if not _is_wide_colour(first.rawmodes, first.image.mode):
                return False
            buffer.seek(0)
            samples, _ = _decode_wide(first, buffer, here)
            if not np.array_equal(samples, data):
                return False
    except Exception:
        return False
    return True


def _transparency_mask(arr: np.ndarray, key: object) -> np.ndarray | None:
    """Alpha (0 where the pixel equals the tRNS colour key, 1 elsewhere) as a float32 HxW array."""
    if isinstance(key, int) and arr.ndim == 2:
        return (arr != key).astype(np.float32)
    if isinstance(key, tuple) and arr.ndim == 3 and len(key) == arr.shape[2]:
        return np.any(arr != np.asarray(key, dtype=arr.dtype), axis=-1).astype(np.float32)
    return None


def _cmyk_to_rgb(im: Image.Image, path: Path) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if converted is not None:
                return converted
        except Exception as exc:
            warnings.warn(f"{path}: CMYK ICC profile unusable ({_one_line(exc)}); naive conversion",
                          ImageWarning, stacklevel=4)
    return im.convert("RGB")


def _planes(decoded: _Decoded, source: Path | BinaryIO, path: Path) -> tuple[np.ndarray, int, bool, str]:
    """float32 HxWxC planes in [0, 1] (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), bit depth, gray, mode."""
    im = decoded.image
    mode = im.mode
    if _is_wide_colour(decoded.rawmodes, mode):
        fmt = "PNG" if decoded.format == "PNG" else "TIFF"
        wide_mode = "LA;16" if decoded.rawmodes == ["LA;16B"] else f"{mode};16"
        if _wide_decoding_works(fmt):
            samples, gray = _decode_wide(decoded, source, path)
        else:
            warnings.warn(f"{path}: 16-bit colour read at 8-bit precision (this Pillow decodes it so)",
                          ImageWarning, stacklevel=4)
            hi = np.asarray(im).astype(np.uint16) * 257
            gray = decoded.rawmodes == ["LA;16B"]
            samples = hi[..., [0, 3]] if gray else hi
        planes = samples.astype(np.float32) / 65535.0
        key = im.info.get("transparency")
        if key is not None and samples.shape[2] == 3:
            mask = _transparency_mask(samples, key)
            if mask is not None:
                planes = np.concatenate([planes, mask[..., None]], axis=-1)
        return planes, 16, gray, wide_mode

    key = im.info.get("transparency")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        raw = np.asarray(im)
        planes = (np.clip(raw.astype(np.float32), 0, 65535) / 65535.0)[..., None]
        mask = _transparency_mask(raw, key) if key is not None else None
        if mask is not None:
            planes = np.concatenate([planes, mask[..., None]], axis=-1)
        return planes, 16, True, mode
    if mode == "F":
        planes = np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32)), 0.0, 1.0)[..., None]
        return planes, 16, True, mode

    if mode in ("P", "PA"):
        converted = im.convert("RGBA" if (mode == "PA" or key is not None) else "RGB")
    elif mode == "1":
        converted = im.convert("L")
    elif mode == "La":
        converted = im.convert("LA")
    elif mode in ("RGBa", "RGBX"):
        converted = im.convert("RGBA" if mode == "RGBa" else "RGB")
    elif mode == "CMYK":
        converted = _cmyk_to_rgb(im, path)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        converted = im
    else:
        try:
            converted = im.convert("RGB")
        except Exception as exc:
            raise ImageError(path, f"unsupported colour mode {mode}") from exc
    raw = np.asarray(converted)
    if raw.ndim == 2:
        raw = raw[..., None]
    planes = raw.astype(np.float32) / 255.0
    if key is not None and converted.mode in ("L", "RGB") and mode in ("L", "RGB"):
        mask = _transparency_mask(raw[..., 0] if mode == "L" else raw, key)
        if mask is not None:
            planes = np.concatenate([planes, mask[..., None]], axis=-1)
    return planes, 8, mode in _GRAY_MODES, mode


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read and fully decode an image file.

    Args:
        path: a PNG, JPEG, WebP, BMP or TIFF file (recognised by content, not by extension).
        max_pixels: refuse images with more pixels than this before decoding them; None: no limit.

    Returns:
        A :class:`LoadedImage` (``rgb`` float32 HxWx3 in [0, 1], ``alpha`` float32 HxW in [0, 1] or None).

    Raises:
        ImageError: missing or unreadable path, folder, empty file, not an image, corrupt or truncated
            data, too many pixels.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise ImageError(path, "no such file") from exc
    except OSError as exc:
        raise ImageError(path, f"cannot access: {exc.strerror or _one_line(exc)}") from exc
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if stat.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")

    decoded = _decode(path, path, max_pixels)
    planes, bit_depth, is_gray, mode = _planes(decoded, path, path)
    icc = decoded.image.info.get("icc_profile") or None
    if decoded.image.mode == "CMYK":
        icc = None  # consumed by the conversion to sRGB
    decoded.image.close()

    channels = planes.shape[2]
    alpha = planes[..., -1].copy() if channels in (2, 4) else None
    colour = planes[..., : 1 if channels <= 2 else 3]
    rgb = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else np.ascontiguousarray(colour)
    return LoadedImage(
        rgb=rgb.astype(np.float32, copy=False),
        alpha=alpha,
        bit_depth=bit_depth,
        is_gray=is_gray,
        icc_profile=bytes(icc) if icc else None,
        mode=mode,
        path=path,
        format=decoded.format,
    )


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


def _write_png16(f: BinaryIO, data: np.ndarray, icc_profile: bytes | None) -> None:
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


def _write_tiff16(f: BinaryIO, data: np.ndarray, icc_profile: bytes | None) -> None:
    """Write HxWxC uint16 samples (C: 1 gray, 3 RGB, 4 RGBA) as a little-endian 16-bit baseline TIFF.

    Deflate with the horizontal predictor when Pillow has libtiff (so that it can read the file back),
    else uncompressed. Classic TIFF: the file must stay under 4 GiB.
    """
    height, width, channels = data.shape
    if channels not in (1, 3, 4):
        raise ValueError(f"16-bit TIFF with {channels} channels is not written")
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
        raise ValueError("image too large for a classic TIFF (4 GiB); write PNG instead")
    f.write(bytes(ifd) + bytes(extra))
    end = f.tell()
    f.seek(start + 4)
    f.write(struct.pack("<I", position))
    f.seek(end)


def _float_planes(array: np.ndarray, what: str) -> np.ndarray:
    """Any supported array as float32 in [0, 1] (uint8 / 255, uint16 / 65535, floats clipped, NaN -> 0)."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{what} must be float in [0, 1], uint8 or uint16, not {array.dtype}")
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
            _write_png16(f, data, icc)
        else:
            if data.shape[2] == 2:  # Pillow reads no 16-bit gray+alpha TIFF: store it as RGBA
                data = np.concatenate([np.repeat(data[..., :1], 3, axis=2), data[..., 1:]], axis=2)
            _write_tiff16(f, data, icc)
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


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write`` on a temporary file beside ``path``, fsync it, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = _temporary_name(path)
        try:
            fd = os.open(temporary, flags, 0o666)  # the umask applies, as for any new file
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where folders can be opened
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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
    fmt = _FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, f"unsupported output format {path.suffix or '(no extension)'!r} "
                               f"(use one of {', '.join(IMAGE_EXTENSIONS)})")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")

    colour = _float_planes(rgb, "rgb")
    if colour.ndim == 2:
        colour = colour[..., None]
    if colour.ndim != 3 or colour.shape[2] not in (1, 3) or 0 in colour.shape:
        raise ValueError(f"rgb must be HxWx3, HxW or HxWx1, not {tuple(np.shape(rgb))}")
    gray = is_gray or colour.shape[2] == 1
    if gray and colour.shape[2] == 3:
        colour = np.clip(colour @ _LUMA, 0.0, 1.0)[..., None]

    opacity = None
    if alpha is not None:
        opacity = _float_planes(alpha, "alpha")
        if opacity.ndim == 3 and opacity.shape[2] == 1:
            opacity = opacity[..., 0]
        if opacity.shape != colour.shape[:2]:
            raise ValueError(f"alpha must be {colour.shape[0]}x{colour.shape[1]}, not {opacity.shape}")
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
    icc = _usable_icc(icc_profile, gray, path)
    if icc and fmt == "BMP":
        warnings.warn(f"{path}: BMP cannot carry the ICC profile; dropped", ImageWarning, stacklevel=2)
        icc = None

    planes = colour if opacity is None else np.concatenate([colour, opacity[..., None]], axis=2)
    data = _quantize(planes, depth)
    try:
        _atomic_write(path, lambda f: _encode(f, data, fmt, icc, quality))
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
        raise ImageError(path, f"cannot write: {reason}") from exc
    return path


# ------------------------------------------------------------------------------------------ discovery


def _is_hidden_or_temporary(name: str) -> bool:
    return name.startswith((".", "~$")) or name.endswith(("~", ".part", ".tmp"))


def _is_image_name(name: str) -> bool:
    return not _is_hidden_or_temporary(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], recursive: bool = False
) -> list[Path]:
    """The image files named by ``inputs`` (files and folders), without duplicates.

    A folder contributes its image files (extensions in :data:`IMAGE_EXTENSIONS`, any case), sorted by
    path; hidden names (starting with '.') and temporary ones ('.part', '.tmp', '~') are skipped, and so
    are hidden sub-folders when ``recursive``. A file named explicitly is kept whatever its extension
    (:func:`read_image` recognises images by content). Inputs keep their order.

    Raises:
        ImageError: an input that does not exist.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    seen: set[Path] = set()

    def add(candidate: Path) -> None:
        key = candidate.resolve()
        if key not in seen:
            seen.add(key)
            found.append(candidate)

    for item in inputs:
        root = Path(item)
        if root.is_dir():
            names: list[Path] = []
            if recursive:
                for folder, subfolders, files in os.walk(root):
                    subfolders[:] = [d for d in subfolders if not _is_hidden_or_temporary(d)]
                    names.extend(Path(folder, n) for n in files if _is_image_name(n))
            else:
                names = [p for p in root.iterdir() if p.is_file() and _is_image_name(p.name)]
            for candidate in sorted(names, key=lambda p: p.relative_to(root).parts):
                add(candidate)
        elif root.is_file():
            add(root)
        else:
            raise ImageError(root, "no such file or folder")
    return found


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
        raise ValueError(f"expected an HxWxC or HxW array, got shape {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor.unsqueeze(0).to(device=device, dtype=dtype)


def from_tensor(tensor: torch.Tensor) -> np.ndarray:
    """1xCxHxW (or CxHxW) tensor -> float32 HxWxC NumPy array (values untouched, on the CPU)."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected a batch of one, got shape {tuple(tensor.shape)}")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise ValueError(f"expected a 1xCxHxW or CxHxW tensor, got shape {tuple(tensor.shape)}")
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
        raise ValueError(f"alpha {alpha.shape} does not match rgb {rgb.shape}")
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
        raise ValueError(f"alpha must be HxW, got shape {alpha.shape}")
    factor = float(scale)
    if factor <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
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

"""Reading image files (:func:`read_image`).

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
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import stat as _stat
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from ddnsr.errors import ImageError, SettingError
from ddnsr.imageio.common import (
    DEFAULT_MAX_PIXELS,
    GRAY_MODES,
    READ_FORMATS,
    ImageWarning,
    describe_exception,
)

__all__ = ["LoadedImage", "image_size", "read_image"]



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
        ).named("max_pixels")


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
                raise ImageError(path, f"cannot open: {exc.strerror or describe_exception(exc)}") from exc
        else:
            fp = source
        head = fp.read(30)
        fp.seek(0)
        webp_size = _webp_size(head)
        if webp_size is not None:
            _check_pixels(path, webp_size, max_pixels)
        with _pillow_limit_off():
            try:
                im = Image.open(fp, formats=READ_FORMATS)
            except UnidentifiedImageError as exc:
                raise ImageError(path, "not a PNG, JPEG, WebP, BMP, TIFF or GIF image") from exc
            except Exception as exc:
                raise ImageError(path, f"corrupt image header ({describe_exception(exc)})") from exc
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
                raise ImageError(path, f"corrupt or truncated image data ({describe_exception(exc)})") from exc
        fmt = im.format or ""
        frames = getattr(im, "n_frames", 1)
        if frames > 1 and rawmode_map is None:
            warnings.warn(f"{path}: {fmt} with {frames} frames or pages; only the first is used", ImageWarning,
                          stacklevel=3)
        if fmt == "PNG" and rawmode_map is None:
            problem = _png_chunk_problem(fp)
            if problem:
                raise ImageError(path, problem)
        try:
            ImageOps.exif_transpose(im, in_place=True)
        except Exception as exc:  # a malformed EXIF block: keep the stored orientation
            warnings.warn(f"{path}: EXIF orientation ignored ({describe_exception(exc)})", ImageWarning, stacklevel=3)
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
    raise SettingError("unexpected tile descriptor")


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
        raise SettingError(f"no low-byte raw mode for {rawmode}")
    order = match.group(2)
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    return f"{match.group(1)};16{'L' if order == 'B' else 'B'}"


def _join_wide(hi: Image.Image, lo: Image.Image, rawmodes: list[str]) -> tuple[np.ndarray, bool]:
    """uint16 HxWxC samples from the high-byte and low-byte decodes; returns (samples, is_gray)."""
    hi_arr = np.asarray(hi)
    lo_arr = np.asarray(lo)
    if hi_arr.shape != lo_arr.shape:
        raise SettingError("decodes disagree")
    if rawmodes == ["LA;16B"]:
        lo16 = lo_arr.astype(np.uint16)
        gray = (lo16[..., 0] << 8) | lo16[..., 1]
        alpha = (lo16[..., 2] << 8) | lo16[..., 3]
        if not np.array_equal(lo_arr[..., 0], hi_arr[..., 0]):
            raise SettingError("decodes disagree")
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
    from ddnsr.imageio.write import write_png16, write_tiff16  # the encoders whose output this checks
    try:
        for channels in (2, 3, 4) if fmt == "PNG" else (3, 4):
            data = rng.integers(0, 65536, size=(3, 5, channels), dtype=np.uint16)
            buffer = io.BytesIO()
            (write_png16 if fmt == "PNG" else write_tiff16)(buffer, data, None)
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
            warnings.warn(f"{path}: CMYK ICC profile unusable ({describe_exception(exc)}); naive conversion",
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
    return planes, 8, mode in GRAY_MODES, mode


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
        raise ImageError(path, f"cannot access: {exc.strerror or describe_exception(exc)}") from exc
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if not _stat.S_ISREG(stat.st_mode):
        raise ImageError(path, "not a regular file (a FIFO, socket or device)")
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


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding its pixels.

    Raises:
        ImageError: not a readable file of the formats :func:`read_image` takes.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = _webp_size(f.read(30))
            if size is not None:
                return size
            f.seek(0)
            with _pillow_limit_off(), Image.open(f, formats=READ_FORMATS) as im:
                return im.size
    except UnidentifiedImageError as exc:
        raise ImageError(path, "not a PNG, JPEG, WebP, BMP, TIFF or GIF image") from exc
    except OSError as exc:
        raise ImageError(path, f"cannot open: {exc.strerror or describe_exception(exc)}") from exc
    except Exception as exc:  # Pillow raises many kinds on a damaged header
        raise ImageError(path, f"corrupt image header ({describe_exception(exc)})") from exc

"""Reading, writing and helper functions of ddnsr.imageio, on small images the tests make themselves."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

import ddnsr.imageio.read as dio_read
import ddnsr.imageio.write as dio_write
from ddnsr.imageio import (
    ImageError,
    ImageWarning,
    from_tensor,
    list_images,
    prepare_rgb_for_alpha,
    read_image,
    to_tensor,
    upscale_alpha,
    write_image,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _as16(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 65535).astype(np.uint16)


def _as8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8)


def _pil(path: Path) -> Image.Image:
    """A fully loaded Pillow image, its file closed."""
    with Image.open(path) as image:
        image.load()
        return image


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- an independent 16-bit PNG encoder (plain Python, every filter type) ---------------------------


def _png16_bytes(samples: np.ndarray) -> bytes:
    """16-bit PNG of HxWxC uint16 samples; row y uses filter y % 5, so all five filters are exercised."""
    height, width, channels = samples.shape
    bpp = 2 * channels
    rows = [list(samples[y].astype(">u2").tobytes()) for y in range(height)]
    out = bytearray()
    prior = [0] * (width * bpp)
    for y, raw in enumerate(rows):
        kind = y % 5
        line = [kind]
        for i, value in enumerate(raw):
            a = raw[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            if kind == 0:
                predicted = 0
            elif kind == 1:
                predicted = a
            elif kind == 2:
                predicted = b
            elif kind == 3:
                predicted = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predicted = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line.append((value - predicted) % 256)
        out += bytes(line)
        prior = raw

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(out)))
            + chunk(b"IEND", b""))


# --- round trips ------------------------------------------------------------------------------------


def test_rgb8_png_round_trip(tmp_path: Path) -> None:
    data = _rng().integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    Image.fromarray(data).save(tmp_path / "in.png")
    image = read_image(tmp_path / "in.png")
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (9, 13, 3)
    assert 0.0 <= image.rgb.min() and image.rgb.max() <= 1.0
    assert (image.bit_depth, image.is_gray, image.alpha, image.mode, image.format) == (8, False, None, "RGB", "PNG")
    assert np.array_equal(_as8(image.rgb), data)
    write_image(tmp_path / "out.png", image.rgb)
    assert np.array_equal(np.asarray(_pil(tmp_path / "out.png")), data)


def test_float_input_is_clipped_and_rounded(tmp_path: Path) -> None:
    rgb = np.array([[[-0.5, 0.4 / 255, 0.6 / 255], [1.7, np.nan, 254.5 / 255]]], dtype=np.float32)
    write_image(tmp_path / "c.png", rgb)
    assert np.asarray(_pil(tmp_path / "c.png")).tolist() == [[[0, 0, 1], [255, 0, 254]]]


def test_gray16_png_round_trip(tmp_path: Path) -> None:
    data = _rng(1).integers(0, 65536, size=(7, 11), dtype=np.uint16)
    data[0, :3] = [257, 1000, 65535]
    Image.fromarray(data).save(tmp_path / "g16.png")  # Pillow writes I;16 gray
    image = read_image(tmp_path / "g16.png")
    assert (image.bit_depth, image.is_gray) == (16, True)
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 2])
    assert np.array_equal(_as16(image.rgb[..., 0]), data)
    write_image(tmp_path / "g16_out.png", image.rgb, bit_depth=16, is_gray=True)
    back = _pil(tmp_path / "g16_out.png")
    assert back.mode.startswith("I")
    assert np.array_equal(np.asarray(back).astype(np.uint16), data)


@pytest.mark.parametrize("channels", [3, 4, 2])
def test_rgb16_png_read_keeps_low_bytes(tmp_path: Path, channels: int) -> None:
    data = _rng(2).integers(0, 65536, size=(6, 7, channels), dtype=np.uint16)
    data[0, 0, 0] = 300  # above 255 and not a multiple of 257
    (tmp_path / "c16.png").write_bytes(_png16_bytes(data))
    image = read_image(tmp_path / "c16.png")
    assert image.bit_depth == 16
    colour = data[..., :1] if channels == 2 else data[..., :3]
    assert image.is_gray == (channels == 2)
    assert np.array_equal(_as16(image.rgb[..., : colour.shape[2]]), colour)
    if channels in (2, 4):
        assert np.array_equal(_as16(image.alpha), data[..., -1])
    else:
        assert image.alpha is None


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_rgb16_write_read_round_trip(tmp_path: Path, suffix: str) -> None:
    data = _rng(3).integers(0, 65536, size=(40, 33, 4), dtype=np.uint16)
    data[0, 0, :3] = [1, 256, 511]
    path = write_image(tmp_path / f"out{suffix}", data[..., :3], alpha=data[..., 3], bit_depth=16)
    image = read_image(path)
    assert (image.bit_depth, image.is_gray) == (16, False)
    assert np.array_equal(_as16(image.rgb), data[..., :3])
    assert np.array_equal(_as16(image.alpha), data[..., 3])
    # Other readers see a normal 16-bit file: Pillow's own (8-bit) decode is the high byte.
    assert np.array_equal(np.asarray(_pil(path).convert("RGB")), (data[..., :3] >> 8).astype(np.uint8))


def test_gray16_tiff_round_trip(tmp_path: Path) -> None:
    data = _rng(4).integers(0, 65536, size=(5, 8), dtype=np.uint16)
    write_image(tmp_path / "g.tiff", data, bit_depth=16)
    assert _pil(tmp_path / "g.tiff").mode == "I;16"
    image = read_image(tmp_path / "g.tiff")
    assert (image.bit_depth, image.is_gray) == (16, True)
    assert np.array_equal(_as16(image.rgb[..., 1]), data)


def test_gray_jpeg_stays_gray(tmp_path: Path) -> None:
    gray = np.linspace(0, 1, 16 * 24, dtype=np.float32).reshape(16, 24)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    write_image(tmp_path / "g.jpg", rgb, is_gray=True)
    assert _pil(tmp_path / "g.jpg").mode == "L"
    image = read_image(tmp_path / "g.jpg")
    assert image.is_gray and image.mode == "L"
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 1])
    assert np.abs(image.rgb[..., 0] - gray).max() < 4 / 255


def test_rgba_png_keeps_alpha(tmp_path: Path) -> None:
    data = _rng(5).integers(0, 256, size=(8, 6, 4), dtype=np.uint8)
    Image.fromarray(data, "RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.alpha is not None and image.alpha.shape == (8, 6)
    assert np.array_equal(_as8(image.alpha), data[..., 3])
    assert np.array_equal(_as8(image.rgb), data[..., :3])
    write_image(tmp_path / "b.png", image.rgb, alpha=image.alpha)
    back = _pil(tmp_path / "b.png")
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back), data)


def test_la_png_and_webp_alpha(tmp_path: Path) -> None:
    data = _rng(6).integers(0, 256, size=(5, 7, 2), dtype=np.uint8)
    Image.fromarray(data, "LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    assert image.is_gray and np.array_equal(_as8(image.alpha), data[..., 1])
    write_image(tmp_path / "la.webp", image.rgb, alpha=image.alpha, is_gray=True, quality=100)
    back = read_image(tmp_path / "la.webp")  # WebP has no gray: RGB, alpha kept losslessly
    assert not back.is_gray
    assert np.array_equal(_as8(back.alpha), data[..., 1])
    assert np.array_equal(_as8(back.rgb[..., 0]), data[..., 0])


@pytest.mark.parametrize("transparency", ["index", "table"])
def test_palette_png_with_transparency(tmp_path: Path, transparency: str) -> None:
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    indices = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.uint8)
    im = Image.fromarray(indices, "P")
    im.putpalette(palette)
    alphas = [255, 128, 255, 0]
    if transparency == "index":
        im.save(tmp_path / "p.png", transparency=3)
        alphas = [255, 255, 255, 0]
    else:
        im.save(tmp_path / "p.png", transparency=bytes(alphas))
    image = read_image(tmp_path / "p.png")
    assert image.mode == "P" and not image.is_gray
    colours = np.array(palette, dtype=np.uint8).reshape(4, 3)
    assert np.array_equal(_as8(image.rgb), colours[indices])
    assert np.array_equal(_as8(image.alpha), np.array(alphas, dtype=np.uint8)[indices])


def test_other_modes_are_converted(tmp_path: Path) -> None:
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), "P")
    palette.putpalette([0, 0, 0, 200, 100, 50])
    palette.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert image.alpha is None and _as8(image.rgb)[0, 1].tolist() == [200, 100, 50]

    bits = _rng(7).integers(0, 2, size=(6, 9)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "one.png")
    image = read_image(tmp_path / "one.png")
    assert image.is_gray and np.array_equal(image.rgb[..., 0], bits.astype(np.float32))

    cmyk = Image.new("CMYK", (4, 3), (0, 255, 255, 0))  # pure red ink mix
    cmyk.save(tmp_path / "cmyk.jpg", quality=100)
    image = read_image(tmp_path / "cmyk.jpg")
    assert image.mode == "CMYK" and not image.is_gray and image.rgb.shape == (3, 4, 3)
    assert image.rgb[..., 0].min() > 0.9 and image.rgb[..., 1:].max() < 0.1

    data = _rng(8).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    Image.fromarray(data).save(tmp_path / "x.bmp")
    assert np.array_equal(_as8(read_image(tmp_path / "x.bmp").rgb), data)


def test_jpeg_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.float32)
    alpha = np.ones((8, 8), dtype=np.float32)
    alpha[:, :4] = 0.0
    with pytest.warns(ImageWarning, match="composited on white"):
        write_image(tmp_path / "a.jpg", rgb, alpha=alpha)
    back = read_image(tmp_path / "a.jpg")
    assert back.alpha is None
    assert back.rgb[:, :3].min() > 0.9 and back.rgb[:, 5:].max() < 0.1


def test_sixteen_bits_in_an_eight_bit_format_warns(tmp_path: Path) -> None:
    with pytest.warns(ImageWarning, match="8-bit format"):
        write_image(tmp_path / "x.webp", np.full((4, 4, 3), 0.5, np.float32), bit_depth=16)
    assert read_image(tmp_path / "x.webp").bit_depth == 8


# --- orientation ------------------------------------------------------------------------------------


def _marked(width: int = 40, height: int = 20) -> np.ndarray:
    data = np.zeros((height, width, 3), dtype=np.uint8)
    data[:8, :8] = (255, 0, 0)  # a red block at the stored top-left
    data[-4:, -4:] = (0, 0, 255)
    return data


def test_exif_orientation_6_jpeg_is_rotated(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_marked()).save(tmp_path / "o6.jpg", exif=exif.tobytes(), quality=100, subsampling=0)
    image = read_image(tmp_path / "o6.jpg")
    assert image.rgb.shape == (40, 20, 3)  # displayed 20 wide, 40 high
    # Orientation 6: rotate 90 degrees clockwise to display -> the red block is now at the top-right.
    assert image.rgb[:6, -6:, 0].mean() > 0.9 and image.rgb[:6, -6:, 2].mean() < 0.1
    assert image.rgb[:6, :6].mean() < 0.1
    expected = np.asarray(ImageOps.exif_transpose(_pil(tmp_path / "o6.jpg")))
    assert np.array_equal(_as8(image.rgb), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_marked(7, 5)).save(tmp_path / "o.png", exif=exif.tobytes())
    image = read_image(tmp_path / "o.png")
    expected = np.asarray(ImageOps.exif_transpose(_pil(tmp_path / "o.png")))
    assert np.array_equal(_as8(image.rgb), expected)


def test_tiff_orientation_is_applied_once(tmp_path: Path) -> None:
    Image.fromarray(_marked()).save(tmp_path / "o6.tif", tiffinfo={274: 6})
    image = read_image(tmp_path / "o6.tif")
    assert image.rgb.shape == (40, 20, 3)
    assert image.rgb[:6, -6:, 0].mean() > 0.9


# --- ICC --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "depth"), [(".png", 8), (".jpg", 8), (".webp", 8), (".tif", 8),
                                               (".png", 16), (".tif", 16)])
def test_icc_profile_is_carried(tmp_path: Path, suffix: str, depth: int) -> None:
    icc = _srgb_icc()
    data = _rng(9).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    Image.fromarray(data).save(tmp_path / "in.png", icc_profile=icc)
    image = read_image(tmp_path / "in.png")
    assert image.icc_profile == icc
    out = write_image(tmp_path / f"out{suffix}", image.rgb, bit_depth=depth, icc_profile=image.icc_profile)
    assert _pil(out).info.get("icc_profile") == icc
    assert read_image(out).icc_profile == icc


def test_icc_of_the_wrong_colour_space_is_dropped(tmp_path: Path) -> None:
    with pytest.warns(ImageWarning, match="ICC profile dropped"):
        write_image(tmp_path / "g.png", np.zeros((3, 3), np.float32), icc_profile=_srgb_icc())
    assert "icc_profile" not in _pil(tmp_path / "g.png").info


# --- bad input --------------------------------------------------------------------------------------


def _noise_file(path: Path, fmt: str) -> bytes:
    Image.fromarray(_rng(10).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(path, fmt)
    return path.read_bytes()


def _bomb_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
            + chunk(b"IEND", b""))


def _make_bad(kind: str, tmp_path: Path) -> tuple[Path, dict[str, int | None]]:
    path = tmp_path / f"{kind}.png"
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "truncated-png":
        data = _noise_file(path, "PNG")
        path.write_bytes(data[: len(data) // 2])
    elif kind == "png-without-end":  # every pixel present, only the last checksums and IEND missing
        data = _noise_file(path, "PNG")
        path.write_bytes(data[:-20])
    elif kind == "png-damaged-data":
        data = bytearray(_noise_file(path, "PNG"))
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif kind == "truncated-jpeg":
        path = tmp_path / "truncated.jpg"
        data = _noise_file(path, "JPEG")
        path.write_bytes(data[: len(data) // 2])
    elif kind == "missing":
        path = tmp_path / "nowhere" / "missing.png"
    elif kind == "folder":
        path = tmp_path / "folder.png"
        path.mkdir()
    elif kind == "too-many-pixels":
        Image.new("RGB", (20, 20)).save(path)
        return path, {"max_pixels": 399}
    elif kind == "bomb":
        path.write_bytes(_bomb_png())  # claims 10^10 pixels; must be refused before decoding
    return path, {}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("zero-byte", "empty file"),
        ("text", "not a PNG, JPEG"),
        ("truncated-png", "truncated"),
        ("png-without-end", "truncated PNG"),
        ("png-damaged-data", "corrupt"),
        ("truncated-jpeg", "truncated"),
        ("missing", "no such file"),
        ("folder", "is a folder"),
        ("too-many-pixels", "too many pixels"),
        ("bomb", "too many pixels"),
    ],
)
def test_bad_inputs_raise_one_line_image_error(tmp_path: Path, kind: str, reason: str) -> None:
    path, options = _make_bad(kind, tmp_path)
    with pytest.raises(ImageError) as caught:
        read_image(path, **options)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert reason in message
    assert caught.value.path == str(path)


@pytest.mark.parametrize("options", [{"lossless": True}, {"quality": 80}, {"quality": 80, "alpha": True}])
def test_webp_size_is_checked_before_pillow_allocates(tmp_path: Path, options: dict) -> None:
    """Pillow allocates the WebP canvas while opening, so its size is read from the header first."""
    mode = "RGBA" if options.pop("alpha", False) else "RGB"
    Image.new(mode, (37, 21), (1, 2, 3, 4)[: len(mode)]).save(tmp_path / "x.webp", **options)
    data = (tmp_path / "x.webp").read_bytes()
    assert dio_read._webp_size(data[:30]) == (37, 21)
    with pytest.raises(ImageError, match="too many pixels: 37x21"):
        read_image(tmp_path / "x.webp", max_pixels=37 * 21 - 1)


def test_max_pixels_none_disables_the_limit(tmp_path: Path) -> None:
    Image.new("RGB", (20, 20)).save(tmp_path / "x.png")
    assert read_image(tmp_path / "x.png", max_pixels=None).rgb.shape == (20, 20, 3)
    assert read_image(tmp_path / "x.png", max_pixels=400).rgb.shape == (20, 20, 3)


def test_unsupported_output_extension(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unsupported output format"):
        write_image(tmp_path / "x.gif", np.zeros((2, 2, 3), np.float32))


# --- atomic writes ----------------------------------------------------------------------------------


def _failing_save(self: Image.Image, fp, *args, **kwargs) -> None:
    fp.write(b"\x89PNG partial data")
    raise OSError(28, "No space left on device")


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    destination = tmp_path / "out.png"
    destination.write_bytes(b"old contents")
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(ImageError) as caught:
        write_image(destination, np.zeros((4, 4, 3), np.float32))
    assert str(caught.value) == f"{destination}: cannot write: No space left on device"
    assert destination.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_failed_16bit_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def broken(f, data, icc):
        f.write(b"\x89PNG\r\n\x1a\n")
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(dio_write, "write_png16", broken)
    with pytest.raises(ImageError, match="encoder crashed"):
        write_image(tmp_path / "new.png", np.zeros((4, 4, 3), np.float32), bit_depth=16)
    assert os.listdir(tmp_path) == []


def test_interrupted_write_is_cleaned_up_and_not_wrapped(tmp_path: Path, monkeypatch) -> None:
    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.float32))
    assert os.listdir(tmp_path) == []


def test_successful_write_leaves_no_temporary_and_makes_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.tiff"
    write_image(target, np.full((3, 4, 3), 0.25, np.float32))
    assert os.listdir(target.parent) == ["x.tiff"]
    assert read_image(target).rgb.shape == (3, 4, 3)


# --- helpers ----------------------------------------------------------------------------------------


def test_list_images(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.webp", "d.tif", "e.TIFF", "f.bmp", "g.jpeg", "notes.txt", ".hidden.png",
                 ".x.png.1234.part", "h.png.part", "sub/i.png", ".git/j.png"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    flat = [p.name for p in list_images(tmp_path)]
    assert flat == ["a.jpg", "b.PNG", "c.webp", "d.tif", "e.TIFF", "f.bmp", "g.jpeg"]
    deep = [p.relative_to(tmp_path).as_posix() for p in list_images([tmp_path], recursive=True)]
    assert deep == flat + ["sub/i.png"]
    mixed = list_images([tmp_path / "notes.txt", str(tmp_path / "sub"), tmp_path / "sub" / "i.png"])
    assert [p.name for p in mixed] == ["notes.txt", "i.png"]  # explicit files kept, no duplicates
    with pytest.raises(ImageError, match="no such file or folder"):
        list_images(tmp_path / "absent")


def test_tensor_conversions() -> None:
    array = _rng(11).random((5, 7, 3), dtype=np.float32)
    tensor = to_tensor(array)
    assert tensor.shape == (1, 3, 5, 7) and tensor.dtype == torch.float32
    assert torch.equal(tensor[0, 1], torch.from_numpy(array[..., 1]))
    assert np.array_equal(from_tensor(tensor), array)
    assert to_tensor(np.zeros((5, 7), np.float32)).shape == (1, 1, 5, 7)
    assert to_tensor(np.full((2, 2, 3), 255, np.uint8)).max().item() == 1.0


def test_prepare_rgb_for_alpha_bleeds_visible_colour() -> None:
    rgb = np.zeros((5, 6, 3), np.float32)  # black under the transparent area
    rgb[:, :3] = (0.2, 0.6, 0.9)
    alpha = np.zeros((5, 6), np.float32)
    alpha[:, :3] = 1.0
    alpha[:, 2] = 0.5  # a semi-transparent edge keeps its own colour
    rgb[:, 2] = (0.3, 0.3, 0.3)
    prepared = prepare_rgb_for_alpha(rgb, alpha)
    assert np.array_equal(prepared[:, :3], rgb[:, :3])  # visible pixels untouched
    assert np.allclose(prepared[:, 3:], (0.3, 0.3, 0.3))  # filled with the nearest visible colour
    assert rgb[:, 3:].max() == 0.0  # input not modified
    assert np.array_equal(prepare_rgb_for_alpha(rgb, np.zeros((5, 6), np.float32)), rgb)


def test_upscale_alpha() -> None:
    alpha = np.ones((6, 5), np.float32)
    alpha[:, :2] = 0.0
    big = upscale_alpha(alpha, 4)
    assert big.shape == (24, 20) and big.dtype == np.float32
    assert big.min() >= 0.0 and big.max() <= 1.0  # bicubic overshoot clipped
    assert np.all(big[:, :6] == 0.0) and np.all(big[:, 12:] == 1.0)  # flat regions stay flat
    assert upscale_alpha(alpha, 0.5).shape == (3, 2)
    assert upscale_alpha(alpha, 4, size=(25, 21)).shape == (25, 21)


@pytest.mark.skipif(not (SHARED / "real-lr" / "realset80").is_dir(), reason="../shared/data not present")
def test_reads_the_shared_real_photos() -> None:
    paths = list_images(SHARED / "real-lr" / "realset80")
    assert paths
    for path in paths:
        image = read_image(path)
        assert image.rgb.ndim == 3 and image.rgb.shape[2] == 3 and image.rgb.dtype == np.float32
        assert 0.0 <= float(image.rgb.min()) and float(image.rgb.max()) <= 1.0
        if image.alpha is not None:
            assert image.alpha.shape == image.rgb.shape[:2]

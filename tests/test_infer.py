"""ddnsr.inference.upscaler: Upscaler and Degrader on arrays and PIL images, with tiny random networks."""

from __future__ import annotations

import inspect
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ddnsr.imageio as dio
import ddnsr.imageio.write as dio_write
import ddnsr.inference.upscaler as infer
from ddnsr import Degrader, Upscaler
from ddnsr.formats.modelfile import save_model
from ddnsr.imageio import write_planes
from ddnsr.inference.upscaler import DEFAULT_MODEL, crop_to_multiple, reference_crop
from ddnsr.nets import DegradationNet, RRDBNet

# every test here runs networks on the precision path 'auto' picks: .ci/run runs them with bf16 on and off
pytestmark = pytest.mark.precision

torch.set_num_threads(1)


def tiny_rrdbnet(seed: int = 0, **kw) -> RRDBNet:
    torch.manual_seed(seed)
    cfg = dict(num_feat=8, num_block=1, num_grow_ch=4, init="esrgan") | kw
    net = RRDBNet(**cfg).eval()
    with torch.no_grad():  # an output around mid-gray with some spread, so little is clipped
        net.conv_last.weight.mul_(20.0)
        net.conv_last.bias.fill_(0.5)
    return net


def tiny_degradation(input_type: str = "dual", seed: int = 0) -> DegradationNet:
    torch.manual_seed(seed)
    return DegradationNet(filters=8, res_blocks=1, input_type=input_type).eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_model(tiny_rrdbnet(), root / "r.safetensors")
    save_model(tiny_rrdbnet(num_block=2), root / "r2.safetensors")
    save_model(tiny_degradation(), root / "d.safetensors")
    save_model(tiny_degradation("single"), root / "d-single.safetensors")
    return root


@pytest.fixture(scope="module")
def up(model_dir: Path) -> Upscaler:
    return Upscaler.load(model_dir / "r.safetensors", device="cpu")


def rand_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def net_out(net: torch.nn.Module, rgb: np.ndarray, border: int = infer.BORDER_PAD) -> np.ndarray:
    """The network on the whole image, padded by ``border`` pixels as the Upscaler pads it (reflection,
    replication for sides too short to reflect), cropped back: what every tiling must reproduce."""
    x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]
    mode = "reflect" if border < min(x.shape[2:]) else "replicate"
    with torch.no_grad():
        y = net(torch.nn.functional.pad(x, (border,) * 4, mode=mode)).clamp(0, 1)
    b = 4 * border
    return y[0, :, b : y.shape[2] - b, b : y.shape[3] - b].permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------------------------ loading


def test_default_model_is_one_constant_and_missing_bundle_is_a_clear_error(monkeypatch) -> None:
    assert DEFAULT_MODEL == "track1-ft" and infer.FAST_MODEL == "track1"
    for cls in (Upscaler, Degrader):
        assert inspect.signature(cls.load).parameters["model"].default == DEFAULT_MODEL
    monkeypatch.setattr(infer, "bundled_models", lambda: {})
    with pytest.raises(ValueError) as err:
        Upscaler.load()
    message = str(err.value)
    assert "\n" not in message and "no bundled model is installed" in message and "--model PATH" in message
    with pytest.raises(ValueError, match="no bundled model"):
        Degrader.load()


def test_wrong_networks_devices_and_precisions_are_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="degradation network"):
        Upscaler.load(model_dir / "d.safetensors", device="cpu")
    with pytest.raises(ValueError, match="reconstruction network"):
        Degrader.load(model_dir / "r.safetensors", device="cpu")
    save_model(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=2), tmp_path / "x2.safetensors")
    with pytest.raises(ValueError, match="x2 model"):
        Upscaler.load(tmp_path / "x2.safetensors", device="cpu")
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        Upscaler.load(model_dir / "r.safetensors", device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision must be"):
        Upscaler.load(model_dir / "r.safetensors", device="cpu", precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Upscaler.load(model_dir / "r.safetensors", device="cuda")
    with pytest.raises(ValueError, match="no such file"):
        Upscaler.load(tmp_path / "missing.safetensors")


def test_real_esrgan_params_ema_pth_is_loaded_by_key_names(tmp_path: Path) -> None:
    net = tiny_rrdbnet(seed=3)
    torch.save({"params_ema": net.state_dict()}, tmp_path / "RealESRGAN_x4plus_like.pth")
    up = Upscaler.load(tmp_path / "RealESRGAN_x4plus_like.pth", device="cpu", tile=0, precision="fp32")
    rgb = rand_rgb(9, 7)
    np.testing.assert_allclose(up.upscale_array(rgb), net_out(net, rgb), atol=1e-6)


def test_an_nn_module_can_be_passed(tmp_path: Path) -> None:
    net = tiny_rrdbnet(seed=4)
    up = Upscaler.load(net, device="cpu", tile=0, precision="fp32")
    rgb = rand_rgb(6, 5)
    np.testing.assert_allclose(up.upscale_array(rgb), net_out(tiny_rrdbnet(seed=4), rgb), atol=1e-6)


# ------------------------------------------------------------------------------------------- upscaling


def test_upscale_array_is_the_clipped_network_output(model_dir: Path) -> None:
    net = tiny_rrdbnet()
    up = Upscaler.load(model_dir / "r.safetensors", device="cpu", tile=0, precision="fp32")  # the exact path
    rgb = rand_rgb(11, 13)
    out = up.upscale_array(rgb)
    assert out.shape == (44, 52, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_allclose(out, net_out(net, rgb), atol=1e-5)  # channels_last vs. contiguous rounding
    assert up.scale == 4


def test_tiled_output_equals_whole_image_output(model_dir: Path) -> None:
    whole = Upscaler.load(model_dir / "r2.safetensors", device="cpu", tile=0)
    tiled = Upscaler.load(model_dir / "r2.safetensors", device="cpu", tile=12, overlap=16)
    rgb = rand_rgb(40, 37, seed=1)
    a, b = whole.upscale_array(rgb), tiled.upscale_array(rgb)
    assert tiled.tile_for(40, 37) == 12
    assert np.abs(a - b).max() <= 1 / 255
    a8 = whole((rgb * 255).round().astype(np.uint8))
    b8 = tiled((rgb * 255).round().astype(np.uint8))
    assert np.abs(a8.astype(int) - b8.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "shape, dtype",
    [((7, 9), np.uint8), ((7, 9, 1), np.uint8), ((7, 9, 3), np.uint16), ((7, 9, 4), np.uint8),
     ((7, 9, 2), np.uint16), ((7, 9, 3), np.float32), ((7, 9), np.float32), ((7, 9, 4), np.float32)],
)
def test_arrays_come_back_in_their_dtype_and_layout(up: Upscaler, shape, dtype) -> None:
    rng = np.random.default_rng(0)
    if dtype == np.float32:
        image = rng.random(shape, dtype=np.float32)
    else:
        image = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    out = up(image)
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    assert out.shape == (shape[0] * 4, shape[1] * 4, *shape[2:])


def test_gray_is_the_luma_of_the_network_output(up: Upscaler) -> None:
    gray = np.random.default_rng(2).random((8, 10), dtype=np.float32)
    out = up(gray)
    rgb = up.upscale_array(np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_allclose(out, np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 0, 1), atol=1e-6)


def test_alpha_is_resized_bicubic_and_hidden_colour_does_not_leak(up: Upscaler) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.random((12, 10, 3), dtype=np.float32)
    alpha = np.ones((12, 10), np.float32)
    alpha[:, :4] = 0.0
    alpha[5, 7] = 0.4
    a = rgb.copy()
    b = rgb.copy()
    b[:, :4] = rng.random((12, 4, 3), dtype=np.float32)  # other colour under alpha = 0
    out_a = up(np.dstack([a, alpha]))
    out_b = up(np.dstack([b, alpha]))
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_allclose(out_a[..., 3], dio.upscale_alpha(alpha, 4), atol=1e-6)
    u8 = up(np.rint(np.dstack([a, alpha]) * 255).astype(np.uint8))
    expected = np.rint(dio.upscale_alpha(np.rint(alpha * 255) / 255, 4) * 255)
    assert np.abs(u8[..., 3].astype(int) - expected).max() <= 1


@pytest.mark.parametrize("mode, out_mode", [
    ("RGB", "RGB"), ("RGBA", "RGBA"), ("L", "L"), ("LA", "LA"), ("P", "RGB"), ("1", "L"), ("I;16", "I;16"),
    ("CMYK", "RGB"), ("F", "F"),
])
def test_pil_images_come_back_as_pil_in_their_mode(up: Upscaler, mode: str, out_mode: str) -> None:
    rgb8 = (rand_rgb(6, 5) * 255).astype(np.uint8)
    image = Image.fromarray(rgb8).convert(mode)
    if mode == "F":
        image = Image.fromarray(np.asarray(image, dtype=np.float32) / 255.0)
    image.info["icc_profile"] = b"fake-profile"
    out = up(image)
    assert isinstance(out, Image.Image)
    assert out.mode == out_mode and out.size == (20, 24)
    assert out.info.get("icc_profile") == b"fake-profile"


def test_palette_with_transparency_keeps_alpha(up: Upscaler) -> None:
    image = Image.fromarray((rand_rgb(6, 5) * 255).astype(np.uint8)).convert("P")
    image.info["transparency"] = 0
    out = up(image)
    assert out.mode == "RGBA" and out.size == (20, 24)


def test_one_instance_is_safe_from_several_threads(model_dir: Path) -> None:
    up = Upscaler.load(model_dir / "r2.safetensors", device="cpu", tile=8)
    images = [(rand_rgb(10 + i, 9 + 2 * i, seed=i) * 255).astype(np.uint8) for i in range(8)]
    serial = [up(im) for im in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(up, images))
    for s, p in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(s, p)


def test_bf16_runs_on_the_cpu_close_to_fp32(model_dir: Path) -> None:
    fp32 = Upscaler.load(model_dir / "r.safetensors", device="cpu", tile=0)
    bf16 = Upscaler.load(model_dir / "r.safetensors", device="cpu", tile=0, precision="bf16")
    rgb = rand_rgb(8, 8)
    assert np.abs(fp32.upscale_array(rgb) - bf16.upscale_array(rgb)).max() < 0.1


def test_auto_tile_bounds_memory_for_big_inputs(up: Upscaler) -> None:
    assert up.tile_for(64, 64) == 0  # small: whole image
    paper = Upscaler(RRDBNet(num_block=1, init="torch"), device=torch.device("cpu"))
    tile = paper.tile_for(3000, 4000)
    assert 64 <= tile <= 400
    assert paper.bytes_per_pixel * (tile + 2 * paper.overlap) ** 2 <= 1024**3


def test_the_demo_asset_upscales(up: Upscaler) -> None:
    from importlib.resources import files

    demo = files("ddnsr").joinpath("assets/demo.png")
    assert len(demo.read_bytes()) < 60_000
    loaded = dio.read_image(Path(str(demo)))
    assert (loaded.width, loaded.height) == (150, 100) and loaded.alpha is None
    with Image.open(str(demo)) as image:
        out = up(image)
    assert out.size == (600, 400) and out.mode == "RGB"


# ------------------------------------------------------------------------------------------- degrading


def test_degrade_array_sizes_crop_and_determinism(model_dir: Path) -> None:
    deg = Degrader.load(model_dir / "d.safetensors", device="cpu", tile=0)
    hr = rand_rgb(37, 50)
    ref = rand_rgb(30, 30, seed=9)
    out = deg.degrade_array(hr, ref, seed=1)
    assert out.shape == (9, 12, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_array_equal(out, deg.degrade_array(hr, ref, seed=1))
    assert not np.array_equal(out, deg.degrade_array(hr, ref, seed=2))
    # the crop is bottom / right: the same as degrading the cropped image
    np.testing.assert_array_equal(out, deg.degrade_array(hr[:36, :48], ref, seed=1))


def test_degrade_whole_image_uses_the_network_with_a_reference_crop(model_dir: Path) -> None:
    net = tiny_degradation()
    deg = Degrader.load(model_dir / "d.safetensors", device="cpu", tile=0, precision="fp32")  # the exact path
    hr = rand_rgb(16, 24)
    ref = rand_rgb(4, 6, seed=3)  # exactly the LR size: the crop is the whole reference
    with torch.no_grad():
        expected = net(torch.from_numpy(hr.transpose(2, 0, 1).copy())[None],
                       torch.from_numpy(ref.transpose(2, 0, 1).copy())[None]).clamp(0, 1)
    np.testing.assert_allclose(deg.degrade_array(hr, ref), expected[0].permute(1, 2, 0).numpy(), atol=1e-6)


def test_degrade_tiles_with_a_small_reference_and_pil(model_dir: Path) -> None:
    deg = Degrader.load(model_dir / "d.safetensors", device="cpu", tile=16, overlap=8)
    hr = Image.fromarray((rand_rgb(44, 60) * 255).astype(np.uint8))
    ref = Image.fromarray((rand_rgb(3, 2, seed=4) * 255).astype(np.uint8))  # smaller than any tile
    out = deg(hr, ref)
    assert isinstance(out, Image.Image) and out.size == (15, 11) and out.mode == "RGB"
    gray16 = (rand_rgb(20, 20)[..., 0] * 65535).astype(np.uint16)
    out16 = deg(gray16, np.asarray(ref))
    assert out16.shape == (5, 5) and out16.dtype == np.uint16


def test_single_input_degrader_needs_no_reference(model_dir: Path) -> None:
    deg = Degrader.load(model_dir / "d-single.safetensors", device="cpu")
    assert not deg.needs_reference
    hr = rand_rgb(16, 16)
    out = deg.degrade_array(hr, None)
    np.testing.assert_array_equal(out, deg.degrade_array(hr, rand_rgb(4, 4)))
    dual = Degrader.load(model_dir / "d.safetensors", device="cpu")
    with pytest.raises(ValueError, match="needs a reference"):
        dual.degrade_array(hr, None)


def test_reference_crop_mirror_tiles_small_references() -> None:
    ref = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    crop = reference_crop(ref, (5, 7), np.random.default_rng(0))
    assert crop.shape == (5, 7, 3)
    np.testing.assert_array_equal(crop[:2, :3], ref)
    np.testing.assert_array_equal(crop[2:4, :3], ref[::-1])  # mirrored, edge row repeated
    big = np.random.default_rng(1).random((20, 30, 3), dtype=np.float32)
    a = reference_crop(big, (4, 6), np.random.default_rng([7, 0]))
    b = reference_crop(big, (4, 6), np.random.default_rng([7, 0]))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="too small"):
        crop_to_multiple(np.zeros((3, 8, 3)))
    assert crop_to_multiple(np.zeros((9, 10, 3))).shape == (8, 8, 3)


# ------------------------------------------------------------------------------------------- writing


def test_write_planes_is_atomic_when_the_encoder_fails(tmp_path: Path, monkeypatch) -> None:
    dest = tmp_path / "out.png"
    dest.write_bytes(b"old")

    def broken(f, data, fmt, icc, quality):
        f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dio_write, "_encode", broken)
    with pytest.raises(dio.ImageError, match="No space left"):
        write_planes(dest, np.zeros((4, 4, 3), np.uint8))
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_planes_formats(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_planes(tmp_path / "a.jpg", rgba)
    assert any("composited on white" in str(w.message) for w in caught)
    assert np.asarray(Image.open(tmp_path / "a.jpg")).min() >= 250  # transparent -> white
    write_planes(tmp_path / "g.webp", np.full((4, 5, 1), 77, np.uint8), quality=100)
    assert np.asarray(Image.open(tmp_path / "g.webp").convert("L")).max() == 77
    write_planes(tmp_path / "w.png", np.full((4, 5, 3), 40000, np.uint16))
    back = dio.read_image(tmp_path / "w.png")
    assert back.bit_depth == 16 and np.allclose(back.rgb, 40000 / 65535)
    with pytest.raises(ValueError, match="8-bit format"):
        write_planes(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint16))


def test_precision_auto_follows_the_cpu(monkeypatch, model_dir: Path) -> None:
    """auto: bf16 only where the CPU computes it natively (emulated bf16 is ~6x slower than fp32), on the
    torch path and on whatever runtime --backend auto picks (tests/test_backends.py tests that choice)."""
    monkeypatch.setenv("DDNSR_CPU_BF16", "0")
    assert Upscaler.load(model_dir / "r.safetensors", device="cpu").precision == "fp32"
    assert Upscaler.load(model_dir / "r.safetensors", device="cpu", backend="torch").precision == "fp32"
    monkeypatch.setenv("DDNSR_CPU_BF16", "1")
    up = Upscaler.load(model_dir / "r.safetensors", device="cpu", backend="torch")
    assert up.precision == "bf16" and up._engine.autocast == torch.bfloat16
    # the default runtime (OpenVINO) reports what it computes in: fp32 where it finds no native bf16
    assert Upscaler.load(model_dir / "r.safetensors", device="cpu").precision in ("bf16", "fp32")
    assert Upscaler.load(model_dir / "r.safetensors", device="cpu", precision="fp32").precision == "fp32"


def test_the_default_path_keeps_40_db_of_fp32() -> None:
    """Whatever path ``auto`` picks on this machine (DDNSR_CPU_BF16=1|0 forces either), the bundled model's
    output stays within 40 dB PSNR of the exact fp32 output (the rule the default is chosen by)."""
    from ddnsr.cli.upscale import DEMO_IMAGE
    from ddnsr.metrics import psnr

    rgb = np.asarray(Image.open(DEMO_IMAGE).convert("RGB"))[40:88, 60:108]  # a real photo
    auto = Upscaler.load("track1", device="cpu")
    exact = Upscaler.load("track1", device="cpu", precision="fp32")
    a = np.round(auto.upscale_array(rgb) * 255).astype(np.uint8)
    b = np.round(exact.upscale_array(rgb) * 255).astype(np.uint8)
    if auto.precision == "fp32" and auto.backend == "torch":
        assert np.array_equal(a, b)
    elif auto.precision == "fp32":  # another runtime's fp32: exact within float rounding
        assert np.abs(a.astype(int) - b).max() <= 1
    else:
        assert psnr(a, b, channel="rgb", crop_border=0) >= 40.0

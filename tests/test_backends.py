"""ddnsr.inference.backends, openvino_backend and ncnn_backend: the runtime ``auto`` picks, OpenVINO's and
ncnn's output against torch fp32 (the 40 dB rule), the same tiling / 16-bit / alpha path, OpenVINO's
compiled-model cache and ncnn's upsampling in pieces."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ddnsr.inference.backends as backends
import ddnsr.inference.openvino_backend as ovb
from ddnsr import Degrader, Upscaler
from ddnsr.cli import main as cli_main
from ddnsr.errors import SettingError
from ddnsr.metrics import psnr
from ddnsr.nets import DegradationNet, RRDBNet

pytest.importorskip("openvino", reason="OpenVINO is not installed (a core dependency: pip install -e .)")
# results depend on the precision path 'auto' picks: .ci/run runs these with DDNSR_CPU_BF16=1 and =0
pytestmark = pytest.mark.precision

torch.set_num_threads(1)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Each test its own cache folder (``$DDNSR_CACHE``)."""
    monkeypatch.setenv("DDNSR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def tiny_r(seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, init="esrgan").eval()
    with torch.no_grad():  # an output around mid-gray with some spread, so little is clipped
        net.conv_last.weight.mul_(20.0)
        net.conv_last.bias.fill_(0.5)
    return net


def photo(height: int = 40, width: int = 36) -> np.ndarray:
    """A crop of a real photo (the demo image), uint8 HxWx3."""
    from ddnsr.cli.upscale import DEMO_IMAGE

    return np.ascontiguousarray(np.asarray(Image.open(DEMO_IMAGE).convert("RGB"))[30:30 + height, 50:50 + width])


def as8(x: np.ndarray) -> np.ndarray:
    return np.round(x * 255).astype(np.uint8) if x.dtype != np.uint8 else x


# ------------------------------------------------------------------------------------------- the choice


def test_auto_follows_the_cpu_and_what_is_installed(monkeypatch) -> None:
    monkeypatch.setenv("DDNSR_CPU_BF16", "1")
    assert backends.auto_choice(CPU)[:2] == ("openvino", "bf16")
    assert Upscaler.load(tiny_r(), device="cpu").backend == "openvino"
    monkeypatch.setenv("DDNSR_CPU_BF16", "0")  # a narrow R (8 features): OpenVINO, not ncnn
    assert backends.auto_choice(CPU, tiny_r())[:2] == ("openvino", "fp32")
    up = Upscaler.load(tiny_r(), device="cpu")
    assert (up.backend, up.precision) == ("openvino", "fp32")
    monkeypatch.setattr(backends, "installed", lambda runtime: runtime == "onnxruntime")
    assert backends.auto_choice(CPU)[:2] == ("onnxruntime", "fp32")
    monkeypatch.setattr(backends, "installed", lambda runtime: False)
    assert backends.auto_choice(CPU)[:2] == ("torch", "fp32")
    monkeypatch.setenv("DDNSR_CPU_BF16", "1")
    up = Upscaler.load(tiny_r(), device="cpu")
    assert (up.backend, up.precision, up._engine.autocast) == ("torch", "bf16", torch.bfloat16)


def test_auto_runs_a_full_width_r_by_ncnn_on_cpus_without_native_bf16(monkeypatch) -> None:
    wide = RRDBNet(num_feat=64, num_block=1, num_grow_ch=32).eval()
    d = DegradationNet(filters=4, res_blocks=1)
    monkeypatch.setenv("DDNSR_CPU_BF16", "0")
    assert backends.auto_choice(CPU, wide)[:2] == ("ncnn", "fp32")
    assert backends.auto_choice(CPU)[:2] == ("ncnn", "fp32")  # the default model is full-width
    assert backends.auto_choice(CPU, tiny_r())[:2] == ("openvino", "fp32")  # narrow: OpenVINO measured faster
    assert backends.auto_choice(CPU, d)[:2] == ("openvino", "fp32")  # ncnn runs R only
    up = Upscaler.load(wide, device="cpu")
    assert (up.backend, up.precision) == ("ncnn", "fp32")
    monkeypatch.setattr(backends, "installed", lambda runtime: runtime != "ncnn")
    assert backends.auto_choice(CPU, wide)[:2] == ("openvino", "fp32")
    monkeypatch.setenv("DDNSR_CPU_BF16", "1")
    monkeypatch.setattr(backends, "installed", lambda runtime: True)
    assert backends.auto_choice(CPU, wide)[:2] == ("openvino", "bf16")  # native bf16: OpenVINO's bf16


def test_auto_keeps_torch_on_gpus_for_named_precisions_and_other_networks(monkeypatch) -> None:
    monkeypatch.setattr(backends, "inference_precision", lambda device: "fp16")
    assert backends.choose("auto", torch.device("cuda"), "auto") == ("torch", "fp16")
    assert backends.choose("auto", torch.device("mps"), "auto")[0] == "torch"
    assert backends.choose("auto", CPU, "fp32") == ("torch", "fp32")  # the exact reference path
    assert backends.choose("auto", CPU, "bf16") == ("torch", "bf16")
    assert backends.choose("auto", CPU, "auto", torch.nn.Conv2d(3, 3, 3))[0] == "torch"


def test_unusable_backends_are_one_line_setting_errors(monkeypatch) -> None:
    for args, match in [(("tensorrt", CPU, "auto"), "backend must be one of auto, torch, onnxruntime, openvino, ncnn"),
                        (("openvino", torch.device("cuda"), "auto"), "--backend openvino runs on the CPU only"),
                        (("onnxruntime", CPU, "bf16"), "CPU in fp32 only"),
                        (("openvino", CPU, "fp16"), "openvino runs in fp32 or bf16"),
                        (("ncnn", CPU, "bf16"), "ncnn runs in fp32 only"),
                        (("ncnn", CPU, "auto", DegradationNet(filters=4, res_blocks=1)),
                         "ncnn runs R .* only, not a DegradationNet"),
                        (("ncnn", CPU, "auto", RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=2)),
                         "ncnn runs R .* only")]:
        with pytest.raises(SettingError, match=match) as err:
            backends.choose(*args)
        assert "\n" not in str(err.value)
    monkeypatch.setattr(backends, "installed", lambda runtime: False)
    with pytest.raises(SettingError, match="--backend openvino needs openvino: pip install openvino"):
        backends.choose("openvino", CPU, "auto")
    with pytest.raises(SettingError, match="--backend ncnn needs ncnn: pip install ncnn"):
        backends.choose("ncnn", CPU, "auto")


# ------------------------------------------------------------------------------------- the 40 dB rule


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_upscales_track1_within_40_db_of_torch_fp32(precision: str) -> None:
    rgb = photo()
    exact = as8(Upscaler.load("track1", device="cpu", precision="fp32", backend="torch").upscale_array(rgb))
    up = Upscaler.load("track1", device="cpu", precision=precision, backend="openvino")
    out = as8(up.upscale_array(rgb))
    assert out.shape == exact.shape == (160, 144, 3)
    assert psnr(out, exact, channel="rgb", crop_border=0) >= 40.0
    if up.precision == "fp32":  # OpenVINO's fp32 is exact within float rounding: at most one level
        assert np.abs(out.astype(int) - exact).max() <= 1


def test_ncnn_upscales_track1_within_one_level_of_torch_fp32() -> None:
    rgb = photo()
    exact = as8(Upscaler.load("track1", device="cpu", precision="fp32", backend="torch").upscale_array(rgb))
    up = Upscaler.load("track1", device="cpu", backend="ncnn")
    assert (up.backend, up.precision) == ("ncnn", "fp32")
    out = as8(up.upscale_array(rgb))
    assert out.shape == exact.shape == (160, 144, 3)
    assert np.abs(out.astype(int) - exact).max() <= 1  # Winograd fp32: float rounding only


def test_ncnn_upsamples_in_pieces_that_join_exactly(monkeypatch) -> None:
    """The upsampling graph runs on pieces of the features with HALO pixels of context: the output equals
    the network's whatever the piece size, and a halo too small for the convolutions shows at the seams."""
    import ddnsr.inference.ncnn_backend as nb

    torch.manual_seed(1)
    net = RRDBNet(num_feat=16, num_block=1, num_grow_ch=8, init="esrgan").eval()
    x = torch.rand(2, 3, 23, 30)
    with torch.no_grad():
        expected = net(x)
    engine = nb.NcnnEngine(net)
    assert engine(x).shape == (2, 3, 92, 120)
    monkeypatch.setattr(nb, "PIECE", 7)
    assert torch.allclose(engine(x), expected, atol=1e-4)
    monkeypatch.setattr(nb, "HALO", 1)
    assert (engine(x) - expected).abs().max() > 1e-2


def test_the_tile_planner_leaves_room_for_what_ncnn_holds() -> None:
    """ncnn's transformed weights come off the CPU tile budget: its tiles are never larger than torch's."""
    wide = RRDBNet(num_feat=64, num_block=2, num_grow_ch=32).eval()
    up = Upscaler.load(wide, device="cpu", backend="ncnn")
    assert up._engine.resident_bytes >= 5 * 4 * sum(p.numel() for p in wide.parameters()) * 0.99
    big = 3000
    ncnn_tile = up.tile_for(big, big)
    torch_tile = Upscaler.load(wide, device="cpu", backend="torch", precision="fp32").tile_for(big, big)
    assert 0 < ncnn_tile <= torch_tile
    up._engine.resident_bytes = 512 * 1024**2  # what the planner takes off, made large
    assert up.tile_for(big, big) < ncnn_tile


def test_the_auto_default_keeps_40_db_on_both_paths() -> None:
    """Whatever ``auto`` picks (DDNSR_CPU_BF16=1|0 forces either path), the default is within 40 dB."""
    rgb = photo()
    auto = Upscaler.load("track1", device="cpu")
    exact = Upscaler.load("track1", device="cpu", precision="fp32")
    assert exact.backend == "torch"
    a, b = as8(auto.upscale_array(rgb)), as8(exact.upscale_array(rgb))
    assert psnr(a, b, channel="rgb", crop_border=0) >= 40.0


@pytest.mark.parametrize("backend", ["openvino", "ncnn"])
def test_tiles_16_bit_and_alpha_come_out_as_on_the_torch_path(tmp_path, backend: str) -> None:
    """The CLI with --backend openvino / ncnn and torch on a 16-bit RGBA PNG in small tiles: the same file
    layout, the same alpha, colour within the 40 dB rule."""
    from ddnsr.imageio import read_image, write_image

    rgb = photo(24, 32).astype(np.float32) / 255
    alpha = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    write_image(tmp_path / "p.png", rgb, alpha=alpha, bit_depth=16)
    outs = {}
    for name in ("torch", backend):
        assert cli_main(["upscale", str(tmp_path / "p.png"), "-o", str(tmp_path / name), "--model", "track1",
                         "--tile", "16", "--device", "cpu", "--backend", name, "-q"]) == 0
        outs[name] = read_image(tmp_path / name / "p.png")
    ov, pt = outs[backend], outs["torch"]
    assert ov.bit_depth == pt.bit_depth == 16 and ov.rgb.shape == pt.rgb.shape == (96, 128, 3)
    assert np.array_equal(ov.alpha, pt.alpha)
    assert psnr(as8(ov.rgb), as8(pt.rgb), channel="rgb", crop_border=0) >= 40.0


@pytest.mark.parametrize("input_type", ["dual", "single"])
def test_openvino_degrades_like_torch(input_type: str) -> None:
    torch.manual_seed(0)
    net = DegradationNet(filters=8, res_blocks=1, input_type=input_type).eval()
    hr = np.random.default_rng(0).random((48, 40, 3), dtype=np.float32)
    ref = np.random.default_rng(1).random((20, 20, 3), dtype=np.float32)
    exact = Degrader.load(net, device="cpu", precision="fp32", backend="torch", tile=24)
    ov = Degrader.load(net, device="cpu", precision="fp32", backend="openvino", tile=24)
    a, b = ov.degrade_array(hr, ref, seed=3), exact.degrade_array(hr, ref, seed=3)
    assert a.shape == b.shape == (12, 10, 3) and np.abs(a - b).max() < 1e-4


# ------------------------------------------------------------------------------------------- the cache


def test_a_second_load_imports_the_cache_without_exporting(monkeypatch, cache: Path) -> None:
    first = ovb.OpenVinoEngine(tiny_r(), "fp32")
    assert not first.from_cache and first.cache_file.parent == cache / "openvino" and first.cache_file.is_file()
    assert first.cache_file.read_bytes().startswith(ovb.CACHE_MAGIC)
    import ddnsr.formats.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "onnx_bytes", lambda *a, **k: pytest.fail("exported again"))
    second = ovb.OpenVinoEngine(tiny_r(), "fp32")
    assert second.from_cache and second.cache_file == first.cache_file
    x = torch.rand(1, 3, 12, 10)
    assert torch.equal(first(x), second(x))
    assert [p.name for p in (cache / "openvino").iterdir()] == [first.cache_file.name]  # no temporaries left


def test_a_changed_model_hint_or_version_gets_its_own_cache_file(monkeypatch) -> None:
    base = ovb.OpenVinoEngine(tiny_r(0), "fp32")
    other = ovb.OpenVinoEngine(tiny_r(1), "fp32")
    bf16 = ovb.OpenVinoEngine(tiny_r(0), "bf16")
    assert not other.from_cache and not bf16.from_cache
    assert len({base.cache_file, other.cache_file, bf16.cache_file}) == 3
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(other(x), tiny_r(1)(x), atol=1e-4)  # not the first model's cache
    monkeypatch.setattr(ovb, "openvino_version", lambda: "9999.0.0-elsewhere")
    newer = ovb.OpenVinoEngine(tiny_r(0), "fp32")
    assert not newer.from_cache and newer.cache_file != base.cache_file


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_corrupt_cache_file_is_rebuilt_not_trusted(damage: str) -> None:
    net = tiny_r()
    path = ovb.OpenVinoEngine(net, "fp32").cache_file
    data = bytearray(path.read_bytes())
    if damage == "flip":  # a bit in the weights: OpenVINO would import it and compute wrong numbers
        data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data[: len(data) // 3]) if damage == "truncate" else
                     b"not a model" if damage == "garbage" else bytes(data))
    again = ovb.OpenVinoEngine(net, "fp32")
    assert not again.from_cache
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(again(x), net(x), atol=1e-4)
    assert ovb.OpenVinoEngine(net, "fp32").from_cache  # the rebuilt file is good again


def test_an_unwritable_cache_folder_is_a_warning(cache: Path) -> None:
    cache.mkdir(parents=True)
    (cache / "openvino").write_text("a file where the folder should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = ovb.OpenVinoEngine(tiny_r(), "fp32")
    assert any("OpenVINO cache" in str(w.message) and "not written" in str(w.message) for w in caught)
    assert engine(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


# --------------------------------------------------------------------------------------------- info


def test_info_says_what_auto_runs_and_why(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DDNSR_CPU_BF16", "0")
    monkeypatch.setattr("ddnsr.inference.device.resolve_device", lambda name="auto": CPU)
    assert cli_main(["info"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("--backend auto"))
    assert "runs ncnn fp32 here (CPU without native bf16" in line and "D: openvino fp32" in line
    assert "ncnn 1." in line and "openvino 20" in line


@pytest.mark.parametrize("backend", ["openvino", "ncnn"])
def test_a_tile_can_be_cancelled_while_it_runs(backend: str):
    """ddnsr serve's Cancel inside a tile on OpenVINO (the request is cancelled) and ncnn (the tile finishes
    in the background): ``while_running`` raising propagates at once, and the engine still runs the next
    call exactly."""
    from ddnsr.formats.modelfile import load_model
    from ddnsr.inference.ncnn_backend import NcnnEngine
    from ddnsr.inference.openvino_backend import OpenVinoEngine

    net = load_model("track1").eval()
    engine = OpenVinoEngine(net, "fp32", use_cache=False) if backend == "openvino" else NcnnEngine(net)
    calls = []

    def cancel() -> None:
        calls.append(1)
        raise KeyboardInterrupt  # any exception: ddnsr serve raises its Cancelled

    engine.while_running = cancel
    with pytest.raises(KeyboardInterrupt):
        engine(torch.rand(1, 3, 160, 160))
    assert calls == [1]
    engine.while_running = None
    small = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = net(small)
    assert torch.allclose(engine(small), expected, atol=1e-3)

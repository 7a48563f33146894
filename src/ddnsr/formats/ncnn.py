"""Read ncnn RRDBNet models (``.param`` + ``.bin``), e.g. Real-ESRGAN's ``realesrgan-x4plus``.

Many community upscalers are distributed only as ncnn files: a text ``.param`` describing the
graph and a ``.bin`` holding the weights. :func:`load_ncnn_rrdbnet` turns such a pair into our
:class:`~ddnsr.nets.RRDBNet` (eval mode, float32), so it can be run, fine-tuned or written out as
``.safetensors`` with ``ddnsr convert model.param -o model.safetensors``.

Formats, as ncnn reads them:

- ``.param``: the magic ``7767517``, then ``layer_count blob_count``, then one line per layer,
  ``Type Name n_in n_out in_blob... out_blob... key=value...``; a key ``-233NN`` holds an array
  ``n,v1,...,vn`` for parameter ``NN``. Values with ``.`` or ``e`` are floats, others integers.
- ``.bin``: the weights of each weight-bearing layer in ``.param`` order, nothing else. For a
  ``Convolution``: the weight blob (``6=weight_data_size`` values, OIHW) preceded by a 4-byte
  storage tag (``0x01306B47`` float16, padded to 4 bytes; ``0`` or ``0x0002C056`` raw float32;
  ``0x000D4B38`` int8 and lookup-table quantisation are refused), then, with ``5=1``, the bias as
  raw float32 without a tag.

The graph is mapped onto RRDBNet by structure: its convolutions in file order are ``conv_first``,
15 per block (``body.N.rdb{1,2,3}.conv{1..5}``), ``conv_body``, ``conv_up1..K``, ``conv_hr``,
``conv_last``; the configuration comes from their shapes. Each convolution's kernel, padding and
activation (fused ``9=2 -23310=1,0.2`` or a following ``ReLU 0=0.2``) must fit its role, the
``Interp`` layers must be nearest x2, and finally the ncnn graph itself is executed (with
:func:`run_graph`, a small PyTorch interpreter of the layers an RRDBNet uses) on a small random
input and compared with the built RRDBNet, so a graph that is wired differently is refused rather
than loaded with misplaced weights. A ``Reorg`` layer in front (ncnn's space-to-depth) is the
pixel-unshuffle of Real-ESRGAN's x2 / x1 models.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddnsr.errors import ModelFileError
from ddnsr.nets import RRDBNet

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056  # raw float32 ("with extra scaling": the scales live elsewhere)

# layer types without weights in the .bin that an RRDBNet graph may contain (all run by run_graph)
WEIGHTLESS = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "ReLU", "Reorg", "Noop"})
# weight-bearing layer types of other architectures: named in the refusal
NOT_RRDBNET = frozenset({"Deconvolution", "DeconvolutionDepthWise", "ConvolutionDepthWise", "InnerProduct",
                         "BatchNorm", "Scale", "PReLU", "InstanceNorm", "GroupNorm", "LayerNorm", "MemoryData",
                         "Embed", "MultiHeadAttention", "Convolution1D", "Convolution3D", "PixelShuffle"})
LRELU_SLOPE = 0.2
VERIFY_SIZE = 4  # side of the random image both the graph and the mapped RRDBNet run on (a multiple of 4)
_ARRAY_BASE = 23300  # "-233NN=..." is the array form of parameter NN

ParamValue = int | float | str | list[int | float]


@dataclass
class Layer:
    """One line of a ``.param`` file. ``params`` maps parameter ids to values (arrays as lists)."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, ParamValue] = field(default_factory=dict)
    line: int = 0

    def get(self, key: int, default: ParamValue) -> ParamValue:
        """The parameter ``key``, or ``default`` when the line does not set it (as ncnn does)."""
        return self.params.get(key, default)

    def num(self, key: int, default: float) -> float:
        """A numeric parameter as a float (ncnn files write e.g. scales as ``2`` or ``2.0``)."""
        value = self.params.get(key, default)
        if isinstance(value, (int, float)):
            return float(value)
        raise ValueError(f"layer {self.name!r}: parameter {key} is {value!r}, expected a number")


@dataclass
class NcnnModel:
    """A parsed ncnn model: the layers, each weight-bearing layer's tensors, the weight storage."""

    layers: list[Layer]
    weights: dict[str, list[torch.Tensor]]
    storage: str  # 'float16', 'float32' or 'mixed'


class _Refusal(ValueError):
    """Internal: the reason a file is refused; turned into a one-line ModelFileError with the path."""


class _BinError(_Refusal):
    """Internal: a refusal that concerns the ``.bin`` (size, storage) rather than the graph."""


def _error(path: str | os.PathLike, reason: str) -> Exception:
    """A one-line ``ModelFileError`` naming ``path``."""
    return ModelFileError(f"{path}: {reason}")


# ---------------------------------------------------------------------------------------------
# .param
# ---------------------------------------------------------------------------------------------

def _is_float(text: str) -> bool:
    return "." in text or "e" in text.lower()


def _parse_number(text: str) -> int | float:
    return float(text) if _is_float(text) else int(text)


def _parse_value(key: int, text: str) -> tuple[int, ParamValue]:
    if key <= -_ARRAY_BASE:
        parts = text.split(",")
        count = int(parts[0])
        values = [_parse_number(p) for p in parts[1:]]
        if len(values) != count:
            raise ValueError(f"array parameter {key} announces {count} values and has {len(values)}")
        return -key - _ARRAY_BASE, values
    try:
        return key, _parse_number(text)
    except ValueError:
        return key, text.strip('"')


def parse_param_text(text: str) -> list[Layer]:
    """Parse the text of an ncnn ``.param`` file (raises ValueError with the reason)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != str(MAGIC):
        first = lines[0].strip()[:20] if lines else ""
        raise ValueError(f"bad magic {first!r} (expected {MAGIC}: a text ncnn .param; binary .param.bin "
                         "files are not supported)")
    counts = lines[1].split() if len(lines) > 1 else []
    if len(counts) != 2 or not all(t.isdigit() for t in counts):
        raise ValueError("line 2 must hold the layer and blob counts")
    layer_count = int(counts[0])
    layers: list[Layer] = []
    for number, raw in enumerate(lines[2:], 3):
        tokens = raw.split()
        if not tokens:
            continue
        try:
            kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
            blobs = tokens[4:4 + n_in + n_out]
            if len(blobs) != n_in + n_out:
                raise ValueError("fewer blob names than announced")
            params: dict[int, ParamValue] = {}
            for item in tokens[4 + n_in + n_out:]:
                key_text, sep, value_text = item.partition("=")
                if not sep:
                    raise ValueError(f"parameter {item!r} is not key=value")
                key, value = _parse_value(int(key_text), value_text)
                params[key] = value
        except (IndexError, ValueError) as exc:
            raise ValueError(f"malformed layer on line {number} ({exc})") from exc
        layers.append(Layer(kind, name, blobs[:n_in], blobs[n_in:], params, number))
    if len(layers) != layer_count:
        raise ValueError(f"the header announces {layer_count} layers, the file has {len(layers)}")
    return layers


def parse_param(path: str | os.PathLike) -> list[Layer]:
    """Parse an ncnn text ``.param`` file into its layers (one-line ModelFileError if malformed)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise _error(path, f"not a readable ncnn .param file ({exc})") from exc
    if raw[:4] == MAGIC.to_bytes(4, "little"):
        raise _error(path, "a binary ncnn .param (param.bin) is not supported, use the text .param")
    text = raw.decode("utf-8", errors="replace")
    try:
        return parse_param_text(text)
    except ValueError as exc:
        raise _error(path, str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# .bin
# ---------------------------------------------------------------------------------------------

def _conv_geometry(layer: Layer) -> tuple[int, int, int]:
    """(num_output, kernel_h, kernel_w) of a Convolution layer."""
    out = int(layer.num(0, 0))
    kw = int(layer.num(1, 0))
    kh = int(layer.num(11, kw))
    return out, kh, kw


class _BinReader:
    """Sequential reader of ncnn model-bin blobs from an in-memory file."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.storages: set[str] = set()

    def _take(self, nbytes: int, what: str) -> bytes:
        end = self.pos + nbytes
        if end > len(self.data):
            raise _BinError(f"truncated: {what} needs bytes {self.pos}..{end} but the .bin has {len(self.data)} "
                           "(the .param and .bin do not belong together, or the download is incomplete)")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def tagged(self, count: int, what: str) -> np.ndarray:
        """A weight blob with its storage tag (ModelBin type 0) -> float32 array of ``count`` values."""
        tag = int.from_bytes(self._take(4, f"the storage tag of {what}"), "little")
        if tag == TAG_FP16:
            raw = self._take((count * 2 + 3) // 4 * 4, what)
            self.storages.add("float16")
            return np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
        if tag in (0, TAG_FP32_SCALED):
            self.storages.add("float32")
            return np.frombuffer(self._take(count * 4, what), dtype="<f4").astype(np.float32)
        if tag == TAG_INT8:
            raise _BinError(f"{what} are stored as int8 (quantised ncnn models are not supported)")
        raise _BinError(f"{what} use an unsupported weight storage (tag 0x{tag:08X}: lookup-table quantised or "
                       "not an ncnn .bin; only float16 and float32 are supported)")

    def raw(self, count: int, what: str) -> np.ndarray:
        """Raw float32 values without a tag (ModelBin type 1, e.g. biases)."""
        return np.frombuffer(self._take(count * 4, what), dtype="<f4").astype(np.float32)


def read_weights(layers: list[Layer], data: bytes) -> tuple[dict[str, list[torch.Tensor]], str]:
    """Read the ``.bin`` contents for ``layers``: layer name -> [weight OIHW, bias], and the storage.

    Raises ValueError (with the reason) for layer types that are not part of an RRDBNet, quantised
    weights, and a ``.bin`` whose size does not match what the ``.param`` describes.
    """
    reader = _BinReader(data)
    weights: dict[str, list[torch.Tensor]] = {}
    for layer in layers:
        if layer.type in WEIGHTLESS:
            continue
        if layer.type != "Convolution":
            why = "a layer type RRDBNet does not use" if layer.type in NOT_RRDBNET else "an unsupported layer type"
            raise _Refusal(f"not an RRDBNet: layer {layer.name!r} (line {layer.line}) is of type {layer.type}, {why}")
        if int(layer.num(8, 0)):
            raise _Refusal(f"layer {layer.name!r} is int8-quantised (8=int8_scale_term); not supported")
        if int(layer.num(19, 0)):
            raise _Refusal(f"layer {layer.name!r} takes its weights as an input (19=dynamic_weight); not an RRDBNet")
        out, kh, kw = _conv_geometry(layer)
        size = int(layer.num(6, 0))
        if out <= 0 or kh <= 0 or kw <= 0 or size <= 0 or size % (out * kh * kw):
            raise _Refusal(f"layer {layer.name!r}: weight_data_size {size} does not fit {out} outputs of "
                           f"{kh}x{kw} kernels")
        what = f"the weights of layer {layer.name!r}"
        weight = reader.tagged(size, what).reshape(out, size // (out * kh * kw), kh, kw)
        tensors = [torch.from_numpy(weight.copy())]
        if int(layer.num(5, 0)):
            tensors.append(torch.from_numpy(reader.raw(out, f"the bias of layer {layer.name!r}").copy()))
        weights[layer.name] = tensors
    if reader.pos != len(data):
        raise _BinError(f"size mismatch: the .param describes {reader.pos} bytes of weights but the .bin has "
                       f"{len(data)} (the .param and .bin do not belong together)")
    storage = "mixed" if len(reader.storages) > 1 else next(iter(reader.storages), "float32")
    return weights, storage


def _sibling_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    if path.name.lower().endswith(".param.bin"):
        raise _error(path, "binary ncnn .param.bin files are not supported (use the text .param)")
    suffix = path.suffix.lower()
    if suffix not in (".param", ".bin"):
        raise _error(path, f"not an ncnn file (expected .param or .bin, got {path.suffix!r})")
    param, bin_ = path.with_suffix(".param"), path.with_suffix(".bin")
    for p in (param, bin_):
        if not p.is_file():
            raise _error(p, f"no such file (the ncnn model needs the .param and the .bin side by side; "
                            f"given {path.name})")
    return param, bin_


def read_ncnn(path: str | os.PathLike) -> NcnnModel:
    """Parse an ncnn ``.param`` and read its ``.bin`` (``path`` is either; the other must be beside it)."""
    param, bin_ = _sibling_paths(path)
    layers = parse_param(param)
    try:
        data = bin_.read_bytes()
    except OSError as exc:
        raise _error(bin_, f"not readable ({exc})") from exc
    try:
        weights, storage = read_weights(layers, data)
    except _BinError as exc:
        raise _error(bin_, str(exc)) from exc
    except ValueError as exc:
        raise _error(param, str(exc)) from exc
    return NcnnModel(layers, weights, storage)


# ---------------------------------------------------------------------------------------------
# executing the graph (the layers an RRDBNet uses), to verify the mapping
# ---------------------------------------------------------------------------------------------

def _activation(layer: Layer, x: torch.Tensor) -> torch.Tensor:
    kind = int(layer.num(9, 0))
    if kind == 0:
        return x
    if kind == 1:
        return F.relu(x)
    if kind == 2:
        params = layer.get(10, [0.0])
        slope = float(params[0]) if isinstance(params, list) and params else 0.0
        return F.leaky_relu(x, slope)
    raise _Refusal(f"layer {layer.name!r}: activation type {kind} is not used by RRDBNet")


def _conv(layer: Layer, x: torch.Tensor, tensors: list[torch.Tensor]) -> torch.Tensor:
    dw = int(layer.num(2, 1))
    dh = int(layer.num(12, dw))
    sw = int(layer.num(3, 1))
    sh = int(layer.num(13, sw))
    left = int(layer.num(4, 0))
    top = int(layer.num(14, left))
    right = int(layer.num(15, left))
    bottom = int(layer.num(16, top))
    if min(left, top, right, bottom) < 0:
        raise _Refusal(f"layer {layer.name!r}: automatic ('same') padding is not used by RRDBNet")
    if layer.num(18, 0.0) != 0.0:
        raise _Refusal(f"layer {layer.name!r}: non-zero pad value")
    x = F.pad(x, (left, right, top, bottom))
    bias = tensors[1] if len(tensors) > 1 else None
    return _activation(layer, F.conv2d(x, tensors[0], bias, (sh, sw), 0, (dh, dw)))


def _binary(layer: Layer, a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    op = int(layer.num(0, 0))
    ops = {0: lambda: a + b, 1: lambda: a - b, 2: lambda: a * b, 3: lambda: a / b, 4: lambda: torch.maximum(a, b),
           5: lambda: torch.minimum(a, b), 7: lambda: b - a, 8: lambda: b / a}
    if op not in ops:
        raise _Refusal(f"layer {layer.name!r}: BinaryOp {op} is not used by RRDBNet")
    if isinstance(b, float) and op in (4, 5):
        b = torch.full_like(a, b)
    return ops[op]()


def _run_layer(layer: Layer, ins: list[torch.Tensor], weights: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
    t = layer.type
    if t in ("Split", "Noop"):
        return [ins[0]] * len(layer.outputs)
    if t == "Convolution":
        return [_conv(layer, ins[0], weights[layer.name])]
    if t == "ReLU":
        return [F.leaky_relu(ins[0], layer.num(0, 0.0))]
    if t == "Concat":
        axis = int(layer.num(0, 0))
        if axis not in (0, -3):
            raise _Refusal(f"layer {layer.name!r}: Concat on axis {axis}, RRDBNet concatenates channels")
        return [torch.cat(ins, 1)]
    if t == "Eltwise":
        op = int(layer.num(0, 0))
        coeffs = layer.get(1, [])
        coeffs = [float(c) for c in coeffs] if isinstance(coeffs, list) and coeffs else [1.0] * len(ins)
        if op == 1:
            return [sum(c * x for c, x in zip(coeffs, ins, strict=True))]  # type: ignore[list-item]
        if op == 0:
            return [math.prod(ins[1:], start=ins[0])]  # type: ignore[arg-type]
        if op == 2:
            out = ins[0]
            for x in ins[1:]:
                out = torch.maximum(out, x)
            return [out]
        raise _Refusal(f"layer {layer.name!r}: Eltwise op {op} is unknown")
    if t == "BinaryOp":
        if int(layer.num(1, 0)):
            return [_binary(layer, ins[0], layer.num(2, 0.0))]
        if ins[0].shape != ins[1].shape:
            raise _Refusal(f"layer {layer.name!r}: BinaryOp on shapes {tuple(ins[0].shape)} and {tuple(ins[1].shape)}")
        return [_binary(layer, ins[0], ins[1])]
    if t == "Interp":
        mode = {1: "nearest", 2: "bilinear", 3: "bicubic"}.get(int(layer.num(0, 0)))
        if mode is None or int(layer.num(5, 0)):
            raise _Refusal(f"layer {layer.name!r}: unsupported Interp parameters")
        out_h, out_w = int(layer.num(3, 0)), int(layer.num(4, 0))
        if out_h and out_w:
            size = (out_h, out_w)
        else:
            size = (int(ins[0].shape[2] * layer.num(1, 1.0)), int(ins[0].shape[3] * layer.num(2, 1.0)))
        extra = {} if mode == "nearest" else {"align_corners": bool(int(layer.num(6, 0)))}
        return [F.interpolate(ins[0], size=size, mode=mode, **extra)]
    if t == "Reorg":
        r, mode = int(layer.num(0, 1)), int(layer.num(1, 0))
        x = F.pixel_unshuffle(ins[0], r)  # channel c*r*r + i*r + j, ncnn's mode 0
        if mode == 1:  # channel (i*r + j)*C + c
            n, c, h, w = x.shape
            x = x.view(n, c // (r * r), r * r, h, w).transpose(1, 2).reshape(n, c, h, w)
        return [x]
    raise _Refusal(f"layer {layer.name!r}: layer type {t} cannot be run")


def run_graph(layers: list[Layer], weights: dict[str, list[torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """Execute an ncnn graph (RRDBNet's layer types only) on ``x`` (N x C x H x W); the output blob.

    The graph needs one ``Input`` layer and one blob that no layer consumes (the output). Raises
    ValueError for anything it cannot run.
    """
    inputs = [layer for layer in layers if layer.type == "Input"]
    if len(inputs) != 1 or len(inputs[0].outputs) != 1:
        raise _Refusal(f"expected one Input layer, found {len(inputs)}")
    produced = {b for layer in layers for b in layer.outputs}
    consumed = {b for layer in layers for b in layer.inputs}
    finals = produced - consumed
    if len(finals) != 1:
        raise _Refusal(f"expected one output blob, found {len(finals)} ({', '.join(sorted(finals)[:4])})")
    blobs: dict[str, torch.Tensor] = {inputs[0].outputs[0]: x}
    pending = [layer for layer in layers if layer.type != "Input"]
    while pending:  # file order is topological in practice; tolerate files where it is not
        waiting = []
        for layer in pending:
            if all(b in blobs for b in layer.inputs):
                outs = _run_layer(layer, [blobs[b] for b in layer.inputs], weights)
                blobs.update(zip(layer.outputs, outs, strict=True))
            else:
                waiting.append(layer)
        if len(waiting) == len(pending):
            missing = sorted({b for layer in waiting for b in layer.inputs if b not in blobs})
            raise _Refusal(f"the graph has blobs that are never produced or a cycle ({', '.join(missing[:4])})")
        pending = waiting
    return blobs[finals.pop()]


# ---------------------------------------------------------------------------------------------
# mapping onto RRDBNet
# ---------------------------------------------------------------------------------------------

def _rrdbnet_roles(num_block: int, num_up: int) -> list[tuple[str, float | None]]:
    """RRDBNet's convolutions in forward order: (state-dict prefix, leaky-relu slope or None)."""
    roles: list[tuple[str, float | None]] = [("conv_first", None)]
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                roles.append((f"body.{b}.rdb{r}.conv{c}", LRELU_SLOPE if c < 5 else None))
    roles.append(("conv_body", None))
    roles += [(f"conv_up{i}", LRELU_SLOPE) for i in range(1, num_up + 1)]
    roles += [("conv_hr", LRELU_SLOPE), ("conv_last", None)]
    return roles


def _effective_slope(layer: Layer, consumers: dict[str, list[Layer]]) -> float | None:
    """The leaky-relu slope applied to a convolution's output (fused or a sole following ReLU)."""
    kind = int(layer.num(9, 0))
    if kind == 2:
        params = layer.get(10, [])
        return float(params[0]) if isinstance(params, list) and params else 0.0
    if kind == 1:
        return 0.0
    if kind != 0:
        return math.nan
    users = consumers.get(layer.outputs[0], []) if layer.outputs else []
    if len(users) == 1 and users[0].type == "ReLU":
        return users[0].num(0, 0.0)
    return None


def _check_conv(layer: Layer, role: str, slope: float | None, consumers: dict[str, list[Layer]]) -> None:
    _, kh, kw = _conv_geometry(layer)
    geometry = {"kernel": (kh, kw), "dilation": (int(layer.num(12, layer.num(2, 1))), int(layer.num(2, 1))),
                "stride": (int(layer.num(13, layer.num(3, 1))), int(layer.num(3, 1)))}
    left = int(layer.num(4, 0))
    top = int(layer.num(14, left))
    geometry["padding"] = (top, int(layer.num(16, top)), left, int(layer.num(15, left)))
    expected = {"kernel": (3, 3), "dilation": (1, 1), "stride": (1, 1), "padding": (1, 1, 1, 1)}
    for key, value in expected.items():
        if geometry[key] != value:
            raise _Refusal(f"not an RRDBNet: convolution {layer.name!r} ({role}) has {key} {geometry[key]}, "
                           f"expected {value}")
    if not int(layer.num(5, 0)):
        raise _Refusal(f"not an RRDBNet: convolution {layer.name!r} ({role}) has no bias")
    got = _effective_slope(layer, consumers)
    if (got is None) != (slope is None) or (got is not None and slope is not None and abs(got - slope) > 1e-6):
        want = "no activation" if slope is None else f"leaky relu {slope}"
        have = "no activation" if got is None else f"activation slope {got}"
        raise _Refusal(f"not an RRDBNet: convolution {layer.name!r} ({role}) has {have}, expected {want}")


def ncnn_to_rrdbnet(model: NcnnModel, verify: bool = True) -> RRDBNet:
    """Map a parsed ncnn graph onto RRDBNet (raises ValueError with the reason if it is not one).

    ``verify`` runs the ncnn graph and the built RRDBNet on a small random input and requires the
    same output, which catches any wiring the structural checks do not.
    """
    layers = model.layers
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if not convs:
        raise _Refusal("not an RRDBNet: the graph has no convolutions")
    n = len(convs)
    num_up = (n - 4) % 15
    num_block = (n - 4 - num_up) // 15
    if num_up < 2 or num_block < 1:
        raise _Refusal(f"not an RRDBNet: {n} convolutions (an RRDBNet has 1 + 15 x blocks + 1 + upsamplings + 2)")
    reorgs = [layer for layer in layers if layer.type == "Reorg"]
    interps = [layer for layer in layers if layer.type == "Interp"]
    first_w = model.weights[convs[0].name][0]
    num_feat, in_ch = first_w.shape[0], first_w.shape[1]
    num_grow = model.weights[convs[1].name][0].shape[0]
    out_ch = model.weights[convs[-1].name][0].shape[0]
    unshuffle, reorg_mode = 1, 0
    if reorgs:
        if len(reorgs) > 1 or num_up != 2:
            raise _Refusal("not an RRDBNet: unexpected Reorg (space-to-depth) layers")
        unshuffle, reorg_mode = int(reorgs[0].num(0, 1)), int(reorgs[0].num(1, 0))
        if unshuffle not in (2, 4) or reorg_mode not in (0, 1) or in_ch % (unshuffle * unshuffle):
            raise _Refusal(f"not an RRDBNet: Reorg {reorgs[0].name!r} with stride {unshuffle}, mode {reorg_mode}")
    scale = {1: 2**num_up, 2: 2, 4: 1}[unshuffle]
    if len(interps) != num_up:
        raise _Refusal(f"not an RRDBNet: {len(interps)} Interp layers for {num_up} upsampling convolutions")
    for layer in interps:
        nearest_x2 = (int(layer.num(0, 0)) == 1 and layer.num(1, 1.0) == 2.0 and layer.num(2, 1.0) == 2.0
                      and not int(layer.num(3, 0)) and not int(layer.num(4, 0)) and not int(layer.num(5, 0)))
        if not nearest_x2:
            raise _Refusal(f"not an RRDBNet: Interp {layer.name!r} is not a nearest-neighbour x2 upsampling")
    consumers: dict[str, list[Layer]] = {}
    for layer in layers:
        for blob in layer.inputs:
            consumers.setdefault(blob, []).append(layer)
    roles = _rrdbnet_roles(num_block, num_up)
    for layer, (role, slope) in zip(convs, roles, strict=True):
        _check_conv(layer, role, slope, consumers)

    with torch.device("meta"):  # no initialisation work: every tensor comes from the file
        net = RRDBNet(in_ch // (unshuffle * unshuffle), out_ch, num_feat, num_block, num_grow, scale, init="torch")
    own = net.state_dict()
    state: dict[str, torch.Tensor] = {}
    for layer, (role, _) in zip(convs, roles, strict=True):
        weight, bias = model.weights[layer.name]
        if role == "conv_first" and reorg_mode == 1:  # input channels (i*r+j)*C + c -> c*r*r + i*r + j
            o, c, kh, kw = weight.shape
            rr = unshuffle * unshuffle
            weight = weight.view(o, rr, c // rr, kh, kw).transpose(1, 2).reshape(o, c, kh, kw)
        for key, tensor in ((f"{role}.weight", weight), (f"{role}.bias", bias)):
            if own[key].shape != tensor.shape:
                raise _Refusal(f"not an RRDBNet: convolution {layer.name!r} has shape {tuple(tensor.shape)}, "
                               f"{key} of RRDBNet(num_feat={num_feat}, num_block={num_block}, "
                               f"num_grow_ch={num_grow}) needs {tuple(own[key].shape)}")
            state[key] = tensor.contiguous()
    net.load_state_dict(state, strict=True, assign=True)
    net.eval()
    if verify:
        _verify(net, model, in_ch // (unshuffle * unshuffle))
    return net


def _verify(net: RRDBNet, model: NcnnModel, in_img: int) -> None:
    """Run both the ncnn graph and ``net`` on a small random image; refuse when they disagree."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, in_img, VERIFY_SIZE, VERIFY_SIZE, generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny convolutions: threads only add synchronisation
    try:
        with torch.no_grad():
            want = net(x)
            got = run_graph(model.layers, model.weights, x)
    except (_Refusal, RuntimeError) as exc:  # RuntimeError: shapes that do not fit together
        raise _Refusal(f"not an RRDBNet: {str(exc).splitlines()[0][:200]}") from exc
    finally:
        torch.set_num_threads(threads)
    if got.shape != want.shape:
        raise _Refusal(f"not an RRDBNet: the graph maps a {VERIFY_SIZE}x{VERIFY_SIZE} input to "
                       f"{tuple(got.shape[2:])}, the mapped RRDBNet to {tuple(want.shape[2:])}")
    err = (got - want).abs().max().item()
    if not err <= 1e-4 * max(1.0, want.abs().max().item()):
        raise _Refusal(f"not an RRDBNet: the graph is wired differently (executing it differs from the mapped "
                       f"RRDBNet by {err:.3g})")


def load_ncnn_rrdbnet(path: str | os.PathLike, verify: bool = True) -> RRDBNet:
    """Load an ncnn RRDBNet (``path``: the ``.param`` or the ``.bin``) as our RRDBNet, eval, float32.

    Raises ``ModelFileError`` (one line naming the file and the reason) for a missing sibling file,
    a bad magic, an unsupported weight storage, a ``.bin`` whose size does not match the ``.param``,
    and a graph that is not an RRDBNet. ``model.metadata`` records the source format and storage.
    """
    model = read_ncnn(path)
    param = Path(path).with_suffix(".param")
    try:
        net = ncnn_to_rrdbnet(model, verify=verify)
    except ValueError as exc:
        raise _error(param, re.sub(r"\s+", " ", str(exc))) from exc
    net.metadata = {"source_format": "ncnn", "ncnn_weights": model.storage}  # type: ignore[attr-defined]
    return net

"""Write R (an RGB x4 RRDBNet) as an ncnn model: ``<name>.param`` + ``<name>.bin``, the inverse of
:mod:`ddnsr.formats.ncnn`.

The graph is the one onnx2ncnn makes of Real-ESRGAN's ``realesrgan-x4plus`` (and that
realesrgan-ncnn-vulkan and Upscayl run): input blob ``data`` (RGB in [0, 1]), output blob ``output``
(not clipped); every 3x3 convolution with its bias and, where RRDBNet has one, the leaky ReLU 0.2 fused
(``9=2 -23310=1,2.000000e-01``); the dense blocks' concatenations as ``Concat``; each residual
``x + 0.2 * y`` as a weighted ``Eltwise`` sum (``0=1 -23301=2,2.000000e-01,1.000000e+00``); the trunk's
``feat + conv_body(...)`` as ``BinaryOp`` add; each upsampling as ``Interp`` nearest x2
(``0=1 1=2.000000e+00 2=2.000000e+00``); a ``Split`` wherever a blob feeds more than one layer (ncnn
needs one consumer per blob).

The ``.bin`` holds, per convolution in ``.param`` order, the weights (OIHW) behind a storage tag, float16
(``0x01306B47``, padded to 4 bytes; the default, as in the released Real-ESRGAN files) or float32
(tag 0), then the bias as raw float32. Both files are written to temporary names first and renamed
only when both are complete.

The scale is not stored in ncnn files: Upscayl reads it from the file name (``x2``/``2x`` -> 2,
``x3``/``3x`` -> 3, else 4), so :func:`check_ncnn_name` wants ``x4`` in the name and no ``x2``/``x3``.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ddnsr.errors import ModelFileError
from ddnsr.files import atomic_paths
from ddnsr.formats.ncnn import MAGIC, TAG_FP16
from ddnsr.formats.onnx_export import ExportError, check_exportable
from ddnsr.nets import RRDBNet

__all__ = ["INPUT_BLOB", "OUTPUT_BLOB", "check_ncnn_name", "export_ncnn", "ncnn_files", "write_pair"]

INPUT_BLOB = "data"
OUTPUT_BLOB = "output"
_SLOPE = "2.000000e-01"
_OTHER_SCALE = re.compile(r"x[23]|[23]x", re.IGNORECASE)
_X4 = re.compile(r"x4|4x", re.IGNORECASE)


@dataclass
class _Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: str = ""


@dataclass
class _Graph:
    """An ncnn graph under construction; ``weights`` collects the ``.bin`` in layer order."""

    half: bool
    layers: list[_Layer] = field(default_factory=list)
    weights: bytearray = field(default_factory=bytearray)
    blobs: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, inputs: list[str], params: str = "", output: str | None = None) -> str:
        label = {"Convolution": "Conv", "BinaryOp": "Add", "Eltwise": "Add", "Interp": "Resize"}.get(kind, kind)
        index = self.counts.get(label, 0)
        self.counts[label] = index + 1
        if output is None:
            self.blobs += 1
            output = str(self.blobs)
        self.layers.append(_Layer(kind, f"{label}_{index}", list(inputs), [output], params))
        return output

    def conv(self, x: str, conv: nn.Conv2d, act: bool, output: str | None = None) -> str:
        w = conv.weight.detach().to("cpu", torch.float32).contiguous().numpy()
        if conv.bias is None or conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
            raise ModelFileError(f"convolution {tuple(w.shape)} is not an RRDBNet 3x3 convolution with bias")
        if self.half:
            values = w.astype("<f2")
            if not np.isfinite(values).all():
                raise ModelFileError("a weight exceeds the float16 range; export with float32 weights")
            raw = values.tobytes()
            self.weights += struct.pack("<I", TAG_FP16) + raw + b"\0" * (-len(raw) % 4)
        else:
            self.weights += struct.pack("<I", 0) + w.astype("<f4").tobytes()
        self.weights += conv.bias.detach().to("cpu", torch.float32).numpy().astype("<f4").tobytes()
        params = f"0={w.shape[0]} 1=3 4=1 5=1 6={w.size}" + (f" 9=2 -23310=1,{_SLOPE}" if act else "")
        return self.add("Convolution", [x], params, output)

    def weighted_sum(self, branch: str, skip: str) -> str:
        """``skip + 0.2 * branch`` (RRDBNet's residual scaling)."""
        return self.add("Eltwise", [branch, skip], f"0=1 -23301=2,{_SLOPE},1.000000e+00")

    def concat(self, xs: list[str]) -> str:
        return self.add("Concat", xs)  # axis 0 (channels), ncnn's default, left implicit as onnx2ncnn does

    def param_text(self) -> str:
        """The ``.param`` text, with a ``Split`` after every blob that feeds more than one layer."""
        uses: dict[str, int] = {}
        for layer in self.layers:
            for b in layer.inputs:
                uses[b] = uses.get(b, 0) + 1
        copies: dict[str, list[str]] = {}
        lines: list[str] = []
        blob_names: set[str] = set()
        splits = 0

        def emit(layer: _Layer) -> None:
            io = " ".join(layer.inputs + layer.outputs)
            lines.append(f"{layer.type:<24} {layer.name:<24} {len(layer.inputs)} {len(layer.outputs)} {io} "
                         f"{layer.params}".rstrip())
            blob_names.update(layer.inputs + layer.outputs)

        for layer in self.layers:
            inputs = [copies[b].pop(0) if b in copies else b for b in layer.inputs]
            emit(_Layer(layer.type, layer.name, inputs, layer.outputs, layer.params))
            for b in layer.outputs:
                if uses.get(b, 0) > 1:
                    names = [f"{b}_splitncnn_{i}" for i in range(uses[b])]
                    copies[b] = list(names)
                    emit(_Layer("Split", f"splitncnn_{splits}", [b], names))
                    splits += 1
        return f"{MAGIC}\n{len(lines)} {len(blob_names)}\n" + "\n".join(lines) + "\n"


def _trunk(g: _Graph, x: str, net: RRDBNet, output: str | None = None) -> str:
    """Add ``conv_first``, the RRDB blocks and the skip over them; the blob of the features back."""
    feat = h = g.conv(x, net.conv_first, act=False)
    for block in net.body:
        block_in = h
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            xs = [h]
            for i in range(1, 5):
                xs.append(g.conv(g.concat(xs) if len(xs) > 1 else xs[0], getattr(rdb, f"conv{i}"), act=True))
            h = g.weighted_sum(g.conv(g.concat(xs), rdb.conv5, act=False), h)
        h = g.weighted_sum(h, block_in)
    return g.add("BinaryOp", [feat, g.conv(h, net.conv_body, act=False)], output=output)  # op 0: add


def ncnn_graph(net: RRDBNet, half: bool = True, part: str = "whole") -> tuple[str, bytes]:
    """The ``.param`` text and ``.bin`` bytes of an RGB x4 RRDBNet (``half``: float16 weight storage).

    ``part``: ``whole`` (what ``ddnsr export`` writes); ``features``, the input-size part (``conv_first``, the
    RRDB blocks and their skip; output blob ``output``, ``num_feat`` channels); ``upsampling``, those features
    (input blob ``data``) to the image. :mod:`ddnsr.inference.ncnn_backend` runs the features on a tile and
    the upsampling on pieces of them.
    """
    if part not in ("whole", "features", "upsampling"):
        raise ValueError(f"part must be whole, features or upsampling, got {part!r}")
    check_exportable(net, type(net).__name__, "ncnn")
    g = _Graph(half)
    x = g.add("Input", [], "", INPUT_BLOB)
    if part != "upsampling":
        x = _trunk(g, x, net, output=OUTPUT_BLOB if part == "features" else None)
        if part == "features":
            return g.param_text(), bytes(g.weights)
    for i in range(1, net.num_up + 1):
        x = g.add("Interp", [x], "0=1 1=2.000000e+00 2=2.000000e+00")
        x = g.conv(x, getattr(net, f"conv_up{i}"), act=True)
    g.conv(g.conv(x, net.conv_hr, act=True), net.conv_last, act=False, output=OUTPUT_BLOB)
    return g.param_text(), bytes(g.weights)


def check_ncnn_name(param: Path) -> None:
    """Refuse a file name from which Upscayl would not read x4 (one-line ``ModelFileError``)."""
    stem = param.stem
    if _OTHER_SCALE.search(stem) or not _X4.search(stem):
        why = "reads as another scale" if _OTHER_SCALE.search(stem) else "does not carry 'x4'"
        raise ModelFileError(f"{param}: the name {why}; Upscayl reads the scale from the file name "
                             "(x2/2x -> 2, x3/3x -> 3), so name it like 'mymodel-x4.param'")


def ncnn_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """(``.param``, ``.bin``) for a path given as either file of the pair or as the stem."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in (".param", ".bin") else p
    return stem.with_name(stem.name + ".param"), stem.with_name(stem.name + ".bin")


def write_pair(files: dict[Path, bytes]) -> None:
    """Write several files so that none appears under its final name before all are complete
    (:func:`ddnsr.files.atomic_paths`: on any error nothing of the pair is left)."""
    with atomic_paths(*files) as temporaries:
        for temporary, data in zip(temporaries, files.values(), strict=True):
            temporary.write_bytes(data)


def export_ncnn(net: nn.Module, path: str | os.PathLike, *, half: bool = True, label: str = "",
                check_name: bool = True) -> tuple[Path, Path]:
    """Write R as ``<stem>.param`` + ``<stem>.bin`` (``path``: either file or the stem); both paths back.

    Raises ``ModelFileError`` for a network that is not an RGB x4 RRDBNet (D included) or a name Upscayl
    would misread, and ``ExportError`` (one line naming the file) when the files cannot be written.
    """
    check_exportable(net, label or type(net).__name__, "ncnn")
    param, binary = ncnn_files(path)
    if check_name:
        check_ncnn_name(param)
    text, data = ncnn_graph(net, half=half)  # type: ignore[arg-type]
    try:
        write_pair({binary: data, param: text.encode("ascii")})
    except OSError as exc:
        raise ExportError(f"{param} (+ .bin): cannot write ({exc.strerror or exc})") from exc
    return param, binary

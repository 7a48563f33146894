"""Export R (RRDBNet x4) and D (the dual-input degradation network) to ONNX.

R: one input ``input`` (N x 3 x H x W, float in [0, 1]) and one output ``output`` (N x 3 x 4H x 4W, not
clipped), batch, height and width dynamic: the names vs-mlrt and chaiNNer look for. D: inputs ``hr``
(N x 3 x H x W, H and W multiples of 4) and ``reference`` (N x 3 x H/4 x W/4, a real LR crop; absent for
single-input models), output ``output`` (N x 3 x H/4 x W/4); the size rule is written in the file's
metadata (``size_rule``), since ONNX shapes cannot state it.

The graph comes from PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): it
needs nothing beyond ``torch`` and ``onnx`` (the dynamo exporter needs ``onnxscript``, and its symbolic
shapes would have to be taught D's "multiple of 4" rule), and it maps RRDBNet's nearest x2 upsampling to
a ``Resize`` by fixed scales, so every size stays dynamic. Opset :data:`OPSET` (17) runs in ONNX Runtime
(1.14 and later) and TensorRT (8.6 and later). ``half=True`` writes float16 weights *and* float16 input
and output tensors (as fp16 ONNX upscalers for chaiNNer / vs-mlrt are made). The graph is checked with
``onnx.checker`` (with shape inference) before it is written, atomically.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ddnsr.errors import DdnsrError, ModelFileError
from ddnsr.files import atomic_write
from ddnsr.nets import DegradationNet, RRDBNet

OPSET = 17
#: metadata keys of our .safetensors files that describe the file rather than the model
_FILE_KEYS = ("format", "arch", "config", "kind", "ddnsr_version", "dtype")

__all__ = ["OPSET", "ExportError", "check_exportable", "export_onnx", "onnx_bytes", "read_onnx_metadata"]


class ExportError(DdnsrError, OSError):
    """An exported model file that could not be written; ``str()`` is one line naming it and the reason."""


def check_exportable(net: nn.Module, label: str, fmt: str) -> None:
    """Refuse (one-line ``ModelFileError`` naming ``label``) what cannot be exported as ``fmt``.

    Exported R must be an RGB x4 RRDBNet (what Upscayl, vs-mlrt and ddnsr run); D only goes to ONNX.
    """
    if isinstance(net, RRDBNet):
        cfg = net.config
        if cfg["scale"] != 4:
            raise ModelFileError(f"{label}: is an x{cfg['scale']} model; ddnsr exports x4 models only")
        if cfg["num_in_ch"] != 3 or cfg["num_out_ch"] != 3:
            raise ModelFileError(f"{label}: has {cfg['num_in_ch']} input / {cfg['num_out_ch']} output channels; "
                                 "only RGB models (3 / 3) are exported")
        return
    if isinstance(net, DegradationNet):
        if fmt == "ncnn":
            raise ModelFileError(f"{label}: is a degradation network (D); ncnn export is for upscalers (R) only, "
                                 "as Upscayl and realesrgan-ncnn-vulkan run single-input x4 models: use format onnx"
                                 ).named("format")
        return
    raise ModelFileError(f"{label}: a {type(net).__name__} cannot be exported (only R and D)")


def _dummy_inputs(net: nn.Module, dtype: torch.dtype) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    """Example inputs for tracing and the input names. D's HR side 32 is a multiple of 4 (any is)."""
    gen = torch.Generator().manual_seed(0)
    if isinstance(net, DegradationNet):
        s = net.scale_down
        hr = torch.rand(1, 3, 8 * s, 8 * s, generator=gen).to(dtype)
        if net.input_type == "single":
            return (hr,), ["hr"]
        return (hr, torch.rand(1, 3, 8, 8, generator=gen).to(dtype)), ["hr", "reference"]
    return (torch.rand(1, 3, 16, 16, generator=gen).to(dtype),), ["input"]


def _dynamic_axes(names: list[str], down: bool) -> dict[str, dict[int, str]]:
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in names}
    if "reference" in axes:
        axes["reference"] = {0: "batch", 2: "height_div4", 3: "width_div4"}
    axes["output"] = {0: "batch", 2: "height_div4" if down else "height_x4", 3: "width_div4" if down else "width_x4"}
    return axes


def _metadata(net: nn.Module, half: bool, extra: dict[str, str] | None) -> dict[str, str]:
    from ddnsr import __version__

    meta = {k: v for k, v in getattr(net, "metadata", {}).items() if k not in _FILE_KEYS and isinstance(v, str)}
    meta.update({"arch": type(net).__name__, "config": json.dumps(net.config), "kind": net.kind,
                 "dtype": "float16" if half else "float32", "ddnsr_version": __version__, "opset": str(OPSET)})
    if isinstance(net, RRDBNet):
        meta.update(scale="4", inputs="input: N x 3 x H x W, RGB in [0, 1]",
                    outputs="output: N x 3 x 4H x 4W (clip to [0, 1])")
    else:
        s = net.scale_down
        meta.update(scale=f"1/{s}", outputs=f"output: N x 3 x H/{s} x W/{s} (clip to [0, 1])",
                    size_rule=f"hr: N x 3 x H x W with H and W multiples of {s}"
                    + ("" if net.input_type == "single" else f"; reference: N x 3 x H/{s} x W/{s}"),
                    inputs="hr: N x 3 x H x W, RGB in [0, 1]"
                    + ("" if net.input_type == "single" else f"; reference: N x 3 x H/{s} x W/{s}, a real LR crop"))
    meta.update(extra or {})
    return meta


def onnx_bytes(net: nn.Module, *, half: bool = False, metadata: dict[str, str] | None = None,
               label: str = "") -> bytes:
    """The serialized, checked ONNX model of R or D (see the module docstring); ``net`` is not changed."""
    import onnx

    check_exportable(net, label or type(net).__name__, "onnx")
    dtype = torch.float16 if half else torch.float32
    work = copy.deepcopy(net).to("cpu", dtype).eval()
    inputs, names = _dummy_inputs(work, dtype)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice, TracerWarnings of D's checks
        torch.onnx.export(work, inputs, buffer, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["output"], dynamic_axes=_dynamic_axes(names, isinstance(work, DegradationNet)),
                          do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    model.producer_name = "ddnsr"
    model.doc_string = f"ddnsr {type(net).__name__} ({net.kind})"
    del model.metadata_props[:]
    for key, value in _metadata(net, half, metadata).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def export_onnx(net: nn.Module, path: str | os.PathLike, *, half: bool = False,
                metadata: dict[str, str] | None = None, label: str = "") -> Path:
    """Write R or D as an ONNX file at ``path`` (atomically: no half-written file on any error)."""
    data = onnx_bytes(net, half=half, metadata=metadata, label=label)
    try:
        return atomic_write(path, data)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata (``metadata_props``) of an ONNX file, without loading its weights' data twice."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}

"""Which runtime runs the network: ``--backend auto|torch|onnxruntime|openvino|ncnn`` (one home for the choice).

``auto`` (the default) with ``--precision auto`` picks the fastest path that keeps the output within 40 dB
PSNR of fp32 on this machine (measured by ``benchmarks/infer.py``; docs/speed.md):

* CUDA, MPS: torch (fp16 autocast on CUDA, fp32 on MPS);
* a CPU with native bf16 (AVX512-BF16, AMX): OpenVINO with its bf16 hint where installed and measured to
  keep 40 dB (:data:`OPENVINO_BF16_KEEPS_40DB`), else torch bf16 autocast + channels_last;
* any other CPU: for a full-width R (64 features or more, as ``track1-ft`` and Real-ESRGAN x4plus), ncnn
  fp32, whose Winograd 3x3 convolutions ran it at 1.58x eager fp32 on an AVX2 CPU where OpenVINO ran it at
  1.25x; for a narrower R (the bundled-size ``track1``: OpenVINO 1.88x, ncnn 1.70x in the same run), for D
  (which ncnn does not run) and where ncnn is missing, OpenVINO fp32, else ONNX Runtime fp32, else torch
  fp32 + channels_last.

Naming a precision (``--precision fp32`` / ``bf16``) with ``auto`` keeps the torch path, the exact
reference (fp32) or the precision asked for; naming a backend runs that backend. OpenVINO and ONNX Runtime
run R and D as exported to ONNX (:mod:`ddnsr.formats.onnx_export`), ncnn runs R as exported to ncnn
(:mod:`ddnsr.formats.ncnn_export`); ``auto`` keeps torch for any other network.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from ddnsr.errors import SettingError
from ddnsr.inference.device import cpu_has_native_bf16, inference_precision

__all__ = ["BACKENDS", "OPENVINO_BF16_KEEPS_40DB", "auto_choice", "choose", "installed", "make_engine", "ncnn_runs",
           "NCNN_MIN_FEATURES"]

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "ncnn")
_INSTALL = {"onnxruntime": "pip install 'ddnsr[export]'", "openvino": "pip install openvino",
            "ncnn": "pip install ncnn"}

#: The feature width from which ``auto`` runs R by ncnn rather than OpenVINO on CPUs without native bf16
#: (``benchmarks/infer.py`` on the AVX2 EPYC, one run: 64 features ncnn 1.58x eager / OpenVINO 1.25x;
#: 32 features ncnn 1.70x / OpenVINO 1.88x).
NCNN_MIN_FEATURES = 64

#: Whether OpenVINO's bf16 hint keeps the upscaler's output within 40 dB PSNR of fp32 on real photos.
#: Measured on an AVX512-BF16/AMX Xeon (docs/speed.md; benchmarks/agreement.py): 10 real LR crops, 8-bit outputs
#: against torch fp32, worst / mean PSNR: track1 48.4 / 51.2 dB, track1-ft 40.8 / 49.8 dB (torch bf16: 40.1 / 49.4).
OPENVINO_BF16_KEEPS_40DB = True


def installed(runtime: str) -> bool:
    """Whether the Python package of ``runtime`` (onnxruntime / openvino / ncnn) can be imported."""
    return importlib.util.find_spec(runtime) is not None


def exportable(net: nn.Module | None) -> bool:
    """Whether ``net`` is one the ONNX exporter takes (R or D); None (unknown) counts as yes."""
    from ddnsr.nets import DegradationNet, RRDBNet

    return net is None or isinstance(net, (RRDBNet, DegradationNet))


def ncnn_runs(net: nn.Module | None) -> bool:
    """Whether ``net`` is an R that the ncnn graph writer takes (an RGB x4 RRDBNet); None (unknown) counts as yes."""
    from ddnsr.errors import ModelFileError
    from ddnsr.formats.onnx_export import check_exportable

    if net is None:
        return True
    try:
        check_exportable(net, "R", "ncnn")  # refuses D, other networks, other scales and channel counts
    except ModelFileError:
        return False
    return True


def _width(net: nn.Module | None) -> int:
    """R's feature count (the default model's, 64, when ``net`` is None: not known yet)."""
    return 64 if net is None else int(getattr(net, "config", {}).get("num_feat", 64))


def auto_choice(device: torch.device, net: nn.Module | None = None) -> tuple[str, str, str]:
    """(backend, precision, why) that ``--backend auto --precision auto`` runs on ``device``."""
    if device.type != "cpu":
        return "torch", inference_precision(device), f"{device.type}: the torch path is the GPU path"
    if not exportable(net):
        return "torch", inference_precision(device), f"a {type(net).__name__} is run by torch only"
    if cpu_has_native_bf16():
        if installed("openvino") and OPENVINO_BF16_KEEPS_40DB:
            return "openvino", "bf16", "CPU with native bf16: OpenVINO's bf16 hint is the fastest within 40 dB"
        return "torch", inference_precision(device), "CPU with native bf16, OpenVINO not installed: torch bf16"
    if installed("ncnn") and ncnn_runs(net) and _width(net) >= NCNN_MIN_FEATURES:
        return "ncnn", "fp32", ("CPU without native bf16: ncnn's Winograd convolutions run a full-width R "
                                "fastest in fp32")
    for runtime in ("openvino", "onnxruntime"):
        if installed(runtime):
            return runtime, "fp32", f"CPU without native bf16: {runtime} fp32 is faster than torch fp32"
    return "torch", "fp32", "CPU without native bf16, neither OpenVINO nor ONNX Runtime installed: torch fp32"


def choose(backend: str, device: torch.device, precision: str, net: nn.Module | None = None) -> tuple[str, str]:
    """(backend, precision) to run: ``auto`` resolved, the backend checked against device, precision, install.

    Raises:
        SettingError: an unknown backend, or one this device, precision or installation cannot run.
    """
    if backend not in BACKENDS:
        raise SettingError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        if precision != "auto":
            return "torch", precision
        return auto_choice(device, net)[:2]
    if backend == "torch":
        return backend, inference_precision(device) if precision == "auto" else precision
    if device.type != "cpu":
        raise SettingError(f"--backend {backend} runs on the CPU only (asked: {device.type})")
    if backend == "onnxruntime" and precision not in ("auto", "fp32"):
        raise SettingError(f"--backend onnxruntime runs on the CPU in fp32 only (asked: {device.type}, {precision})")
    if backend == "ncnn" and precision not in ("auto", "fp32"):
        raise SettingError(f"--backend ncnn runs in fp32 only here (asked: {precision})")
    if backend == "ncnn" and not ncnn_runs(net):
        raise SettingError(f"--backend ncnn runs R (an RGB x4 RRDBNet) only, not a {type(net).__name__}: "
                           "use openvino, onnxruntime or torch")
    if backend == "openvino" and precision not in ("auto", "fp32", "bf16"):
        raise SettingError(f"--backend openvino runs in fp32 or bf16 (asked: {precision})")
    if not installed(backend):
        raise SettingError(f"--backend {backend} needs {backend}: {_INSTALL[backend]}")
    if precision == "auto":
        precision = "bf16" if backend == "openvino" and cpu_has_native_bf16() else "fp32"
    return backend, precision


def make_engine(backend: str, net: nn.Module, precision: str):
    """The engine of a resolved, checked (backend, precision) on the CPU: ``engine(*inputs)`` -> float32 tensor."""
    if backend == "ncnn":
        from ddnsr.inference.ncnn_backend import NcnnEngine

        return NcnnEngine(net)
    if backend == "openvino":
        from ddnsr.inference.openvino_backend import OpenVinoEngine

        return OpenVinoEngine(net, precision)
    from ddnsr.inference.onnxruntime_backend import OnnxRuntimeEngine

    return OnnxRuntimeEngine(net)

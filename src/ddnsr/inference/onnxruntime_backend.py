"""ONNX Runtime as the CPU engine of :class:`~ddnsr.inference.upscaler.Upscaler` / ``Degrader``
(``backend="onnxruntime"``, ``ddnsr upscale --backend onnxruntime``).

The network is exported in memory with :func:`ddnsr.formats.onnx_export.onnx_bytes` (fp32, dynamic
sizes; a few seconds for the full-size R) and run by ONNX Runtime's CPU execution provider with as many
threads as torch uses. Everything else (tiling, formats, alpha, 8/16-bit output) stays the same: the
engine only replaces the network call. It is offered because it is faster than the PyTorch path on the
CPU (``benchmarks/infer.py`` measures both in one run); fp32 only, CPU only. The checks of the backend
setting live in :mod:`ddnsr.inference.backends`.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

__all__ = ["OnnxRuntimeEngine"]


class OnnxRuntimeEngine:
    """``engine(*inputs)`` -> float32 CPU tensor, the network run by ONNX Runtime (the ``_Engine`` interface).

    Inputs: float32 NCHW tensors in the network's order (R: the image; D: HR tiles and reference crops,
    None for single-input D). Calls are serialised by a lock, as the torch engine's are.
    """

    def __init__(self, net: nn.Module, threads: int | None = None) -> None:
        import onnxruntime as ort

        from ddnsr.formats.onnx_export import onnx_bytes

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(onnx_bytes(net.float().eval()), options,
                                            providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        self.device = torch.device("cpu")
        self._lock = threading.Lock()

    def __call__(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        feed = {name: x.detach().to("cpu", torch.float32).contiguous().numpy()
                for name, x in zip(self.names, inputs, strict=False) if x is not None}
        with self._lock:
            (out,) = self.session.run(["output"], feed)
        return torch.from_numpy(out)

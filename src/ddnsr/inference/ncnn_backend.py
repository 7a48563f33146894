"""ncnn as the CPU engine of :class:`~ddnsr.inference.upscaler.Upscaler` (``backend="ncnn"``,
``ddnsr upscale --backend ncnn``; what ``auto`` picks for a full-width R on CPUs without native bf16, see
:mod:`ddnsr.inference.backends`).

R is written as ncnn graphs in memory (:func:`ddnsr.formats.ncnn_export.ncnn_graph`, float32 weights: the
layers ``ddnsr export --format ncnn`` writes) and computed by ncnn with float32 storage and arithmetic
(fp16 / bf16 storage off, Vulkan off) on as many threads as torch uses. ncnn computes 3x3 convolutions
with Winograd transforms on x86 and ARM where oneDNN (PyTorch, OpenVINO, ONNX Runtime) runs them directly:
on an AVX2 CPU the full-size R runs 1.5-1.8x PyTorch's eager pass, at 110-120 dB PSNR to it
(``benchmarks/infer.py``; docs/speed.md).

Memory: ncnn's Winograd transforms of the 64-channel convolutions at 4x the tile's size took four times
the memory of the torch path (1.9 GB for a 192 px tile of the full-size R, torch 0.46 GB). So the engine
runs R as two graphs: the *features* (the RRDB trunk, at the tile's size) on the whole tile, then the
*upsampling* (x2, x2, ``conv_hr``, ``conv_last``) on pieces of those features of at most :data:`PIECE`
pixels a side, each with :data:`HALO` pixels of context (the upsampling reaches 1.25 input pixels: the
pieces join exactly), both on one pair of ncnn memory pools: 0.4 GB for that tile, as fast as the whole
graph (x1.64 and x1.59 eager in one run).

Building the engine takes well under a second even for the full-size R (the graphs, then ncnn's weight
transforms), so nothing is cached on disk. ncnn runs R only; D keeps OpenVINO or torch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import ncnn
import numpy as np
import torch
from torch import nn

from ddnsr.formats.ncnn_export import INPUT_BLOB, OUTPUT_BLOB, ncnn_graph

__all__ = ["HALO", "PIECE", "NcnnEngine"]

#: Largest side (input pixels) of one piece of the features that the upsampling graph runs on.
PIECE = 64
#: Context around each piece, in input pixels: the upsampling reaches 1.25 (a 3x3 convolution at 2x, three
#: at 4x), so 2 join the pieces exactly (tests/test_backends.py shows that 1 does not).
HALO = 2


def _spans(size: int, piece: int) -> list[tuple[int, int]]:
    """[start, stop) of consecutive pieces of at most ``piece`` covering ``range(size)``."""
    count = max(1, -(-size // piece))
    edges = [round(i * size / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


class NcnnEngine:
    """``engine(x)`` -> float32 CPU tensor, R run by ncnn (the ``_Engine`` interface).

    Input: a float32 Nx3xHxW tensor in [0, 1]; output Nx3x4Hx4W, not clipped. Calls are serialised by a
    lock. ``while_running``, when set, is called every 50 ms while a tile runs (ddnsr serve's Cancel): an
    exception it raises propagates at once, while ncnn, which cannot be interrupted, finishes the tile in
    the background before the engine runs the next one.
    """

    precision = "fp32"

    def __init__(self, net: nn.Module, threads: int | None = None) -> None:
        net = net.float().eval()
        self.threads = int(threads or torch.get_num_threads())
        # one pair of memory pools for both graphs, so that the upsampling's pieces reuse the features' blobs
        # (0.4 GB for a 192 px tile of the full-size R, torch 0.46 GB; each graph on its own pools: 0.8 GB)
        self._pools = (ncnn.UnlockedPoolAllocator(), ncnn.PoolAllocator())
        self._parts = [self._load(*ncnn_graph(net, half=False, part=part)) for part in ("features", "upsampling")]
        #: memory held beyond the torch path's: ncnn's weights and Winograd-transformed kernels (5x the
        #: weight bytes measured for the full-size R), taken off the tile planner's budget
        self.resident_bytes = 5 * sum(len(weights) for _, weights in self._parts)
        self.device = torch.device("cpu")
        self._lock = threading.Lock()
        #: called every 50 ms while a tile runs; an exception it raises propagates (see the class docstring)
        self.while_running: Callable[[], None] | None = None

    def _load(self, param: str, weights: bytes):
        """(ncnn.Net, its weight bytes): one graph, fp32 on the CPU, on the engine's memory pools. The bytes
        are kept (ncnn may read them in place)."""
        graph = ncnn.Net()
        opt = graph.opt
        opt.num_threads = self.threads
        opt.use_vulkan_compute = False
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = opt.use_bf16_packed = False
        opt.use_winograd_convolution = opt.use_sgemm_convolution = opt.use_packing_layout = True
        opt.blob_allocator, opt.workspace_allocator = self._pools
        if graph.load_param_mem(param) != 0:
            raise RuntimeError("ncnn refused the graph of R (ddnsr.formats.ncnn_export)")
        graph.load_model_mem(weights)
        return graph, weights

    def _run(self, part: int, x: np.ndarray) -> np.ndarray:
        """One graph (0: features, 1: upsampling) on a CxHxW float32 array."""
        x = np.ascontiguousarray(x)  # kept alive to the end: ncnn.Mat reads the array in place
        extractor = self._parts[part][0].create_extractor()
        extractor.input(INPUT_BLOB, ncnn.Mat(x))
        status, out = extractor.extract(OUTPUT_BLOB)
        if status != 0:
            raise RuntimeError(f"ncnn failed on a {x.shape[1]}x{x.shape[2]} input (status {status})")
        return np.array(out)

    def _one(self, image: np.ndarray) -> np.ndarray:
        """3xHxW float32 -> 3x4Hx4W float32: the features of the image, then their upsampling piece by piece."""
        feat = self._run(0, image)
        height, width = feat.shape[1:]
        out = np.empty((3, 4 * height, 4 * width), np.float32)
        for top, bottom in _spans(height, PIECE):
            for left, right in _spans(width, PIECE):
                t, lf = max(0, top - HALO), max(0, left - HALO)
                piece = self._run(1, feat[:, t:bottom + HALO, lf:right + HALO])
                dt, dl = 4 * (top - t), 4 * (left - lf)
                out[:, 4 * top:4 * bottom, 4 * left:4 * right] = \
                    piece[:, dt:dt + 4 * (bottom - top), dl:dl + 4 * (right - left)]
        return out

    def _one_checking(self, image: np.ndarray, check: Callable[[], None]) -> np.ndarray:
        """:meth:`_one` in a worker thread (ncnn releases the GIL), calling ``check`` every 50 ms; the
        worker releases the lock the caller took."""
        result: dict[str, object] = {}
        done = threading.Event()

        def work() -> None:
            try:
                result["out"] = self._one(image)
            except BaseException as exc:  # handed to the caller
                result["error"] = exc
            finally:
                done.set()
                self._lock.release()

        try:
            threading.Thread(target=work, name="ddnsr-ncnn", daemon=True).start()
        except BaseException:
            self._lock.release()
            raise
        while not done.wait(0.05):
            check()  # raising leaves the worker to finish the tile and release the lock
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        return result["out"]  # type: ignore[return-value]

    def __call__(self, x: torch.Tensor, *rest: torch.Tensor | None) -> torch.Tensor:
        if any(r is not None for r in rest):
            raise TypeError("the ncnn engine runs single-input R only")
        outs = []
        for image in x.detach().to("cpu", torch.float32).numpy():
            self._lock.acquire()
            if self.while_running is None:
                try:
                    outs.append(self._one(image))
                finally:
                    self._lock.release()
            else:
                outs.append(self._one_checking(image, self.while_running))
        return torch.from_numpy(np.stack(outs))

"""OpenVINO as the CPU engine of :class:`~ddnsr.inference.upscaler.Upscaler` / ``Degrader``
(``backend="openvino"``, ``ddnsr upscale --backend openvino``; what ``auto`` picks on most CPUs, see
:mod:`ddnsr.inference.backends`).

The network is exported to ONNX in memory (:func:`ddnsr.formats.onnx_export.onnx_bytes`: fp32, dynamic
sizes), read by ``ov.Core().read_model`` and compiled for the CPU with an explicit
``INFERENCE_PRECISION_HINT`` (``f32``, or ``bf16`` where the CPU computes bf16 natively: OpenVINO's own
default on such CPUs is bf16, so fp32 must be asked for), ``PERFORMANCE_HINT=LATENCY`` (one stream: one
tile at a time with every thread) and ``INFERENCE_NUM_THREADS`` = torch's thread count. Everything else
(tiling, padding, formats, alpha, 8/16-bit output) stays the same: the engine only replaces the network call.

The compiled model is cached (``CompiledModel.export_model``) in ``<cache folder>/openvino/`` (the
folder of :func:`ddnsr.datasets.pretrained.cache_dir`), so that the export (3 s for the bundled-size R,
10 s for the full-size R) is paid once. The file name is a hash of the network's weights and
architecture, the precision hint and OpenVINO's version; the file carries a SHA-256 of its payload and is
written atomically (:func:`ddnsr.files.atomic_write`). A file whose checksum or import fails is rebuilt,
never trusted; a cache folder that cannot be written costs a warning and the export on each load.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ddnsr.datasets.pretrained import cache_dir
from ddnsr.files import atomic_write

__all__ = ["CACHE_MAGIC", "OpenVinoEngine", "cache_path", "openvino_version"]

#: First bytes of a cache file (bumped when the layout or the export changes).
CACHE_MAGIC = b"DDNSR-OV-1\n"
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_version() -> str:
    """The installed OpenVINO's full version string (part of the cache key)."""
    import openvino as ov

    return ov.get_version()


def network_hash(net: nn.Module) -> str:
    """SHA-256 of a network's class, configuration and weights (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256(type(net).__name__.encode())
    digest.update(json.dumps(getattr(net, "config", {}), sort_keys=True, default=str).encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_path(net: nn.Module, precision: str, version: str | None = None) -> Path:
    """Where the compiled ``net`` for ``precision`` (fp32 / bf16) is cached for this OpenVINO version."""
    key = hashlib.sha256(f"{network_hash(net)}|{_HINTS[precision]}|{version or openvino_version()}".encode())
    return cache_dir() / "openvino" / f"{type(net).__name__}-{precision}-{key.hexdigest()[:40]}.ovblob"


def _pack(payload: bytes) -> bytes:
    return CACHE_MAGIC + hashlib.sha256(payload).digest() + payload


def _unpack(data: bytes) -> bytes | None:
    """The payload of a cache file, or None when it is not one or its checksum fails."""
    head = len(CACHE_MAGIC)
    if not data.startswith(CACHE_MAGIC) or len(data) < head + 32:
        return None
    payload = data[head + 32:]
    return payload if hashlib.sha256(payload).digest() == data[head : head + 32] else None


class OpenVinoEngine:
    """``engine(*inputs)`` -> float32 CPU tensor, the network run by OpenVINO (the ``_Engine`` interface).

    Inputs: float32 NCHW tensors in the network's order (R: the image; D: HR tiles and reference crops,
    None for single-input D). Calls are serialised by a lock around one infer request.
    Attributes: ``precision`` (what OpenVINO really computes in: ``fp32`` or ``bf16``), ``cache_file``
    and ``from_cache`` (whether this load imported the cached compiled model).
    """

    def __init__(self, net: nn.Module, precision: str = "fp32", threads: int | None = None,
                 use_cache: bool = True) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY",
                       "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
        self.cache_file = cache_path(net, precision) if use_cache else None
        self.from_cache = False
        compiled = self._import() if self.cache_file else None
        self.from_cache = compiled is not None
        self.compiled = compiled if compiled is not None else self._compile(net)
        compiled = self.compiled
        actual = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.precision = "bf16" if "bf16" in actual or "bfloat16" in actual else "fp32"
        self.names = [i.get_any_name() for i in compiled.inputs]
        self.request = compiled.create_infer_request()
        self.device = torch.device("cpu")
        self._lock = threading.Lock()
        #: called every 50 ms while a tile runs; an exception it raises cancels the request and propagates
        #: (ddnsr serve's Cancel stops inside a tile this way, as it does between torch's blocks)
        self.while_running: Callable[[], None] | None = None

    def _import(self):
        """The cached compiled model, or None (missing, corrupt, or refused by OpenVINO: rebuilt)."""
        try:
            data = self.cache_file.read_bytes()
        except OSError:
            return None
        payload = _unpack(data)
        if payload is None:
            return None
        try:
            compiled = self.core.import_model(io.BytesIO(payload), "CPU", self.config)
        except RuntimeError:
            return None
        return compiled

    def _compile(self, net: nn.Module):
        """Export ``net`` to ONNX, compile it, and write the cache file (a warning where that fails)."""
        from ddnsr.formats.onnx_export import onnx_bytes

        model = self.core.read_model(io.BytesIO(onnx_bytes(net.float().eval())))
        compiled = self.core.compile_model(model, "CPU", self.config)
        if self.cache_file is not None:
            try:
                stream = io.BytesIO()
                compiled.export_model(stream)
                atomic_write(self.cache_file, _pack(stream.getvalue()))
            except OSError as exc:
                warnings.warn(f"OpenVINO cache {self.cache_file} not written ({exc.strerror or exc}); "
                              "the model is compiled again on each load", stacklevel=3)
        return compiled

    def __call__(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        feed = {name: x.detach().to("cpu", torch.float32).contiguous().numpy()
                for name, x in zip(self.names, inputs, strict=False) if x is not None}
        with self._lock:
            if self.while_running is None:
                self.request.infer(feed)
            else:
                self._infer_checking(feed, self.while_running)
            out = self.request.get_output_tensor(0).data.copy()
        return torch.from_numpy(out)

    def _infer_checking(self, feed: dict, check: Callable[[], None]) -> None:
        """Run the request asynchronously, calling ``check`` every 50 ms; cancel it when ``check`` raises."""
        self.request.start_async(feed)
        while not self.request.wait_for(50):
            try:
                check()
            except BaseException:
                self.request.cancel()
                with contextlib.suppress(Exception):  # a cancelled request reports itself on wait
                    self.request.wait()
                raise

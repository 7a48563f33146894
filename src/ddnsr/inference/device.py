"""The one device resolver, the precision choice and the CPU feature detection.

``resolve_device("auto")`` is CUDA (the ``LOCAL_RANK`` GPU under torchrun), else Apple MPS, else the
CPU. ``default_precision(device)`` is the fastest precision that keeps results close to fp32 on that
device: bf16 on CUDA and on CPUs that compute bf16 natively (AVX512-BF16, AMX-BF16, Arm BF16),
fp32 elsewhere. On CPUs without native bf16, PyTorch emulates it and bf16 autocast is several times
*slower* than fp32 (measured: 6x on an AMD EPYC without AVX-512), so it is never chosen there.
"""

from __future__ import annotations

import functools
import os
import platform

import torch

from ddnsr.defaults import PRECISIONS, precision_rule
from ddnsr.errors import SettingError

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "autocast_dtype",
    "cpu_flags",
    "cpu_has_native_bf16",
    "auto_precision",
    "default_precision",
    "inference_precision",
    "describe",
    "resolve_device",
    "set_threads",
]

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """A device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) as a device this machine has.

    ``auto`` takes CUDA (GPU ``LOCAL_RANK`` when torchrun set it), then MPS, then the CPU.

    Raises:
        SettingError: an unknown name, or a device this machine does not have.
    """
    name = device.type if isinstance(device, torch.device) else str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % max(torch.cuda.device_count(), 1))
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and not index.isdigit()):
        raise SettingError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}").named("device")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise SettingError(f"device {name}: CUDA is not available on this machine (use device cpu or auto)"
                              ).named("device")
        if index and int(index) >= torch.cuda.device_count():
            raise SettingError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not _mps_available():
        raise SettingError(f"device {name}: Apple MPS is not available on this machine (use device cpu or auto)"
                          ).named("device")
    return device if isinstance(device, torch.device) else torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the OS reports them (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware: x86 AVX512-BF16 or AMX-BF16, Arm BF16 (incl. Apple M2+).

    ``DDNSR_CPU_BF16=1|0`` overrides the detection (for machines whose flags are hidden).
    """
    forced = os.environ.get("DDNSR_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    flags = cpu_flags()
    if flags & {"avx512_bf16", "amx_bf16", "bf16"}:
        return True
    if not flags and platform.system() == "Darwin" and platform.machine() == "arm64":
        try:
            return bool(torch.backends.mkldnn.is_available()) and "M1" not in platform.processor()
        except Exception:  # noqa: BLE001 - a detection aid only
            return False
    return False


def auto_precision(purpose: str, device: torch.device) -> str:
    """What ``precision="auto"`` means for ``purpose`` on ``device``: :func:`ddnsr.defaults.precision_rule`
    given what this machine offers (native bf16 on the CPU, bf16 on the GPU)."""
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    native = device.type == "cpu" and cpu_has_native_bf16()
    return precision_rule(purpose, device.type, native_bf16=native, cuda_bf16=cuda_bf16)


def default_precision(device: torch.device) -> str:
    """The precision ``auto`` means for training on ``device``: bf16 on CUDA and on native-bf16 CPUs, else fp32."""
    return auto_precision("training", device)


def inference_precision(device: torch.device) -> str:
    """What ``precision="auto"`` means for inference: the fastest path within 40 dB PSNR of fp32.

    CUDA: fp16 autocast (as Real-ESRGAN). CPU: bf16 where the CPU computes it natively (measured in
    docs/speed.md: 48.0 dB at the worst on real photos), else fp32 with channels_last. MPS: fp32.
    """
    return auto_precision("inference", device)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None for fp32, else the autocast dtype (``auto`` resolved by :func:`default_precision`).

    Raises:
        SettingError: an unknown precision, or fp16 on the CPU (PyTorch's CPU fp16 is emulated).
    """
    if precision == "auto":
        precision = default_precision(device)
    if precision not in PRECISIONS:
        raise SettingError(f"precision must be one of auto, {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type == "cpu":
            raise SettingError("precision fp16 is not supported on the CPU (use bf16 or fp32)")
        return torch.float16
    return torch.bfloat16


def set_threads(threads: int | None) -> None:
    """Set PyTorch's CPU thread count (None leaves it)."""
    if threads is None:
        return
    if int(threads) < 1:
        raise SettingError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(int(threads))


def describe(device: torch.device, precision: str) -> str:
    """One line naming the device, the precision path and, on the CPU, whether bf16 is native."""
    if device.type == "cpu":
        native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
        return f"cpu ({torch.get_num_threads()} threads, {native}), {precision}"
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}), {precision}"
    return f"{device}, {precision}"

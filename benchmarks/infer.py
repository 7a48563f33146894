"""Inference speed and memory: a plain eager fp32 whole-image baseline against the fast paths, in one run.

    python benchmarks/infer.py [--models track1,track1-ft] [--sizes 128,96] [--repeats N] [--threads N]
                               [--variants torch,onnxruntime,openvino,openvino-bf16,ncnn] [--image PHOTO]
    python benchmarks/infer.py --paths [--configs cpu,paper] [--device cpu|cuda] [--repeats N]
    python benchmarks/infer.py --big [--big-model cpu|paper|tiny] [--big-size 4000x3000]
    python benchmarks/infer.py --video      (benchmarks/video.py: video frames/s, time outside the network)

The default (CPU) is the runtime table of issue 29: the bundled R at both sizes (``track1``, ``track1-ft``) on
a crop of a real photo (the bundled demo photo, mirrored where smaller; ``--image``), each runtime through the
same ``Upscaler`` path (padding, tiles, output): eager fp32 (NCHW, whole image: the baseline and the fp32
reference), the torch default (channels_last; bf16 where the CPU has native bf16), ONNX Runtime fp32, OpenVINO
fp32, OpenVINO's bf16 hint (only where the CPU has native bf16) and ncnn fp32 (Winograd convolutions).
Printed per variant: output MP/s, the ratio to eager, PSNR to the eager output after rounding both to 8 bits
(the 40 dB rule), and the first call (building the engine: export, compile; plus one upscale) with an empty
cache and, for OpenVINO, with the cache filled (the cache lives in a temporary folder for the run).
``<- auto`` marks what ``--backend auto`` runs here. The header states the CPU's model name and its
avx512_bf16 / amx flags. Numbers: docs/speed.md.

``--paths``, the earlier fast-path table: R at the bundled size (the ``cpu`` training preset: 6 blocks x 32
features, growth 16) and at the paper size (23 x 64, growth 32), random weights (ESRGAN init, the last layer
scaled so that outputs look like an image: mean 0.5, std 0.2, so that errors in 1/255 mean what they mean on
photos). Input: a smooth random "photo" (low-pass noise plus edges), 128x128 for the bundled size and 64x64
for the paper size on the CPU.

Variants, each timed after a warm-up as the best of ``--repeats`` round-robin rounds:

* ``eager fp32``: the baseline, ``net(x)`` under ``torch.no_grad()``, NCHW, whole image;
* ``inference_mode``, ``+ channels_last``, ``+ bf16 autocast`` (where the CPU has native bf16 or on CUDA;
  fp16 autocast on CUDA), four equal tiles run one at a time or as a batch of 4 (does batching help?);
* ``Upscaler default``: what ``ddnsr upscale`` runs (fast path, uint8 output, automatic tile);
* ``Upscaler --backend onnxruntime``: the same tiles and output path with the network run by ONNX Runtime's CPU
  provider (``ddnsr.inference.onnxruntime_backend``; CPU only, where ``onnxruntime`` is installed).

Printed per variant: megapixels of *output* per second, the ratio to the baseline, peak memory (CPU: the
rise of the process's peak RSS, reset before each variant through ``/proc/self/clear_refs``; CUDA: max
allocated) and the largest difference to the baseline output in 1/255 steps (after clipping to [0, 1]).

``--big`` runs ``ddnsr upscale`` in a child process on a generated 4000x3000 PNG with automatic tiles and
reports its peak RSS against the bound "8-bit output array + 1.5 GB" (the output file is not kept).

Measured with ``python benchmarks/infer.py --paths`` (50 s) on an AMD EPYC VM, 2 cores with avx512_bf16,
torch 2.13.0+cpu, 2 threads (output MP/s, ratio to the eager fp32 baseline, max |diff| / 99.9th percentile
in 1/255 steps):

    variant                         bundled size (6x32), 128 px   paper size (23x64), 64 px
    eager fp32 (baseline)           0.599 MP/s  x1.00             0.066 MP/s  x1.00
    inference_mode                  0.596       x1.00             0.066       x1.00
    + channels_last                 0.773       x1.29  0.001      0.081       x1.23  0.001
    + channels_last + bf16          1.600       x2.67  10.7/5.4   0.155       x2.37  14.5/7.1
    4 tiles, batch 1                0.525       x0.88             0.034       x0.52  (32 px tiles)
    4 tiles, batch 4                0.476       x0.80             0.037       x0.57
    Upscaler default                0.741       x1.24  0.001      0.082       x1.25  0.001

So the defaults: inference_mode + channels_last in fp32 (x1.24-1.29, identical output); bf16 is 2.2-2.7x
faster but differs from fp32 by up to 10-14 levels of 255 (5-7 at the 99.9th percentile), far over the
1/255 bound, so it stays opt-in (``--precision bf16``); batching equal tiles gains nothing on the CPU and
costs 3x the memory, so tiles run one at a time. The timings vary by +-30% when other jobs share the
machine; the ratios within one run (round-robin) are steadier.

ONNX Runtime against the PyTorch default, measured side by side in one run (``benchmarks/infer.py --paths --threads 2``,
2-core AMD EPYC, AVX2, no AVX-512 and no native bf16, torch 2.13.0+cpu, onnxruntime 1.32.0; the machine was shared
with other jobs at a load of 8-11, so absolute speeds are 10-30x below the table above and only the ratios count):

    variant                         bundled size (6x32), 128 px   paper size (23x64), 64 px
    Upscaler default (torch)        0.043 MP/s  x1.35             0.006 MP/s  x2.44
    Upscaler --backend onnxruntime  0.102 MP/s  x3.21  0.001      0.012 MP/s  x4.74  0.001
    second run, --models cpu (load 4-7):
    Upscaler default (torch)        0.116 MP/s  x2.26
    Upscaler --backend onnxruntime  0.201 MP/s  x3.89  0.001

ONNX Runtime was 1.7-2.4x (bundled size) and 1.9x (paper size) faster than the PyTorch default with the same
output (0.001/255), so ``ddnsr upscale --backend onnxruntime`` is offered; it stays opt-in (torch remains the default
and the only GPU path) until it is measured on a quiet machine.

``python benchmarks/infer.py --big`` (4000x3000 input, bundled-size model, automatic 256-pixel tiles = 192
tiles, fp32, 2 threads): peak RSS 1.68 GiB against the bound 1.93 GiB (8-bit output 0.54 GiB + 1.5 GB),
263 MiB to spare; 390-490 s (0.39-0.49 MP/s of output, depending on the load from other jobs).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddnsr.inference.upscaler import Upscaler
from ddnsr.nets import RRDBNet

CONFIGS = {
    "cpu": dict(num_feat=32, num_block=6, num_grow_ch=16),  # the bundled size (training preset "cpu")
    "paper": dict(num_feat=64, num_block=23, num_grow_ch=32),
    "tiny": dict(num_feat=8, num_block=1, num_grow_ch=4),
}
CPU_SIZES = {"cpu": 128, "paper": 64, "tiny": 128}
RUNTIME_VARIANTS = ("torch", "onnxruntime", "openvino", "openvino-bf16", "ncnn")
RUNTIME_LABELS = {"eager": "eager fp32 (baseline)", "torch": "torch default ({precision} + channels_last)",
                  "onnxruntime": "ONNX Runtime fp32", "openvino": "OpenVINO fp32",
                  "openvino-bf16": "OpenVINO bf16 hint", "ncnn": "ncnn fp32 (Winograd)"}


# ---------------------------------------------------------------------------------------------- memory


def _rss_peak_reset() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _malloc_trim() -> None:
    """Give memory freed by earlier variants back to the OS (glibc), so that peaks are not hidden by reuse."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory over a block: CUDA max allocated, or the CPU process's peak RSS above its RSS at start."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0

    def __enter__(self) -> PeakMemory:
        _malloc_trim()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.resettable = _rss_peak_reset()
            self.start = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self.start
        else:
            peak = _status_kib("VmHWM") * 1024
            self.peak_bytes = peak - self.start if self.resettable else -1


# -------------------------------------------------------------------------------------------- networks


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """HxWx3 float32 in [0, 1]: smooth random colour fields with a few hard edges and some fine noise."""
    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.random((1, 3, max(2, height // 16), max(2, width // 16)), dtype=np.float32))
    img = F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(6):
        a, b, c = rng.normal(size=3)
        mask = (a * (yy - height / 2) + b * (xx - width / 2) + c * 10) > 0
        img = np.where(mask[..., None], img * 0.6 + 0.4 * rng.random(3, dtype=np.float32), img)
    img = img + rng.normal(0, 0.02, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def make_net(config: str, seed: int = 0) -> RRDBNet:
    """Random R of a configuration whose output statistics resemble an image's (mean 0.5, std 0.2)."""
    torch.manual_seed(seed)
    net = RRDBNet(**CONFIGS[config], init="esrgan").eval()
    probe = torch.from_numpy(photo_like(48, 48, seed=seed + 1).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        out = net(probe)
        mean = out.mean(dim=(0, 2, 3))
        std = out.std(dim=(0, 2, 3)).clamp_min(1e-8)
        net.conv_last.weight.mul_((0.2 / std).view(-1, 1, 1, 1))
        net.conv_last.bias.mul_(0.2 / std).add_(0.5 - mean * 0.2 / std)
    return net


# ---------------------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(variants: list[tuple[str, Callable[[], np.ndarray]]], device: torch.device,
            repeats: int) -> list[tuple[float, np.ndarray, int]]:
    """(best seconds, output, peak memory bytes) of each variant.

    Each variant first runs once alone to measure its peak memory (this is also its warm-up); then the
    timed runs go round-robin, ``repeats`` rounds, keeping each variant's best time, so that load from other
    processes on a shared machine hits all variants alike rather than whichever ran at the wrong moment.
    """
    outputs, peaks = [], []
    for _, fn in variants:
        with PeakMemory(device) as mem:
            outputs.append(fn())
        peaks.append(mem.peak_bytes)
    best = [math.inf] * len(variants)
    for _ in range(repeats):
        for i, (_, fn) in enumerate(variants):
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            best[i] = min(best[i], time.perf_counter() - t)
    return list(zip(best, outputs, peaks, strict=True))


def to_image(y: torch.Tensor) -> np.ndarray:
    return y.float().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()


def bench_config(config: str, device: torch.device, size: int, repeats: int) -> None:
    net = make_net(config).to(device)
    rgb = photo_like(size, size)
    x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None].to(device)
    out_mp = (4 * size) ** 2 / 1e6
    cfg = CONFIGS[config]
    print(f"\n{config}: RRDBNet {cfg['num_block']} blocks x {cfg['num_feat']} features (growth {cfg['num_grow_ch']}), "
          f"input {size}x{size} -> output {4 * size}x{4 * size} ({out_mp:.3f} MP), best of {repeats}")

    net_cl = make_net(config).to(device).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    bf16_ok = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()

    def plain() -> np.ndarray:
        with torch.no_grad():
            return to_image(net(x))

    def inference() -> np.ndarray:
        with torch.inference_mode():
            return to_image(net(x))

    def channels_last() -> np.ndarray:
        with torch.inference_mode():
            return to_image(net_cl(x_cl))

    def autocast(dtype: torch.dtype) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
                return to_image(net_cl(x_cl))
        return run

    upscalers: dict[str, Upscaler] = {}

    def with_upscaler(tile: int | None, batch: int = 1, precision: str = "fp32",
                      backend: str = "torch") -> Callable[[], np.ndarray]:
        key = f"{tile}-{batch}-{precision}-{backend}"
        if key not in upscalers:
            upscalers[key] = Upscaler.load(make_net(config), device=device, precision=precision, tile=tile,
                                           backend=backend)
        upscaler = upscalers[key]

        def run() -> np.ndarray:
            if batch == 1:
                return upscaler.upscale_array(rgb)
            from ddnsr.inference.tiling import tiled_apply

            source = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]
            with torch.inference_mode():
                y = tiled_apply(lambda t: upscaler._engine(t).clamp_(0, 1), source, scale=4, tile=tile or 0,
                                batch_size=batch)
            return y[0].permute(1, 2, 0).numpy()
        return run

    variants: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("eager fp32 (baseline)", plain),
        ("inference_mode", inference),
        ("+ channels_last", channels_last),
    ]
    if bf16_ok:
        variants.append(("+ channels_last + bf16 autocast", autocast(torch.bfloat16)))
    if device.type == "cuda":
        variants.append(("+ channels_last + fp16 autocast", autocast(torch.float16)))
    half = size // 2  # four tiles of equal size
    variants += [
        (f"tiles {half}, batch 1 (fast path)", with_upscaler(half)),
        (f"tiles {half}, batch 4 (fast path)", with_upscaler(half, batch=4)),
        ("Upscaler default (auto tile, fp32)", with_upscaler(None)),
    ]
    if device.type == "cpu" and _has_onnxruntime():  # the same tiles and output path, ONNX Runtime's convolutions
        variants.append(("Upscaler --backend onnxruntime", with_upscaler(None, backend="onnxruntime")))
    results = measure(variants, device, repeats)
    base_time, base_out, _ = results[0]
    for (label, _), (seconds, out, peak) in zip(variants, results, strict=True):
        diff = np.abs(out.astype(np.float64) - base_out) * 255
        mem = f"{peak / 2**20:7.0f} MiB" if peak >= 0 else "      ? MiB"
        print(f"  {label:38s} {out_mp / seconds:7.3f} MP/s  x{base_time / seconds:5.2f}  peak +{mem}  "
              f"max |diff| {diff.max():6.3f}/255 (99.9%: {np.quantile(diff, 0.999):5.3f})")


# ------------------------------------------------------------------------------------ the runtime table


def cpu_header() -> str:
    """The CPU's model name and the flags that decide the path (lscpu's 'Model name' and 'Flags')."""
    from ddnsr.inference.device import cpu_flags, cpu_has_native_bf16

    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in cpu_flags()]
    return (f"CPU: {_cpu_name()}; flags: {' '.join(shown) or 'none of avx2/avx512'}; native bf16: "
            f"{'yes' if cpu_has_native_bf16() else 'no'}; {torch.get_num_threads()} threads")


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = [f"torch {torch.__version__}"]
    for package in ("onnxruntime", "openvino", "ncnn"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def photo_input(size: int, image: str | None) -> np.ndarray:
    """A size x size crop of a real photo (default: the bundled demo photo), mirrored where it is smaller."""
    import ddnsr.imageio as dio
    from ddnsr.cli.upscale import DEMO_IMAGE

    rgb = dio.read_image(image or DEMO_IMAGE).rgb
    h, w = rgb.shape[:2]
    rgb = np.pad(rgb, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="symmetric")
    top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    return np.ascontiguousarray(rgb[top:top + size, left:left + size])


def _build(net: torch.nn.Module, variant: str) -> Upscaler:
    """The Upscaler of a variant (eager: the exact path in plain NCHW, whole image), on its own copy of
    ``net``: the torch default converts its network to channels_last in place, which, shared, made the
    eager baseline run with channels_last weights (0.62 s instead of 0.84 s for track1 on the AVX2 EPYC)."""
    net = copy.deepcopy(net)
    if variant == "eager":
        return Upscaler(net, device=torch.device("cpu"), precision="fp32", tile=0, channels_last=False)
    backend, _, precision = variant.partition("-")
    return Upscaler.load(net, device="cpu", backend=backend, precision=precision or ("auto" if backend == "torch"
                                                                                    else "fp32"))


def first_call(net: torch.nn.Module, variant: str, rgb: np.ndarray) -> tuple[Upscaler, float, float | None]:
    """(upscaler, seconds to the first result with an empty cache, the same with the cache filled or None)."""
    times = []
    for _ in range(2 if variant.startswith("openvino") else 1):
        start = time.perf_counter()
        up = _build(net, variant)
        up.upscale_array(rgb)
        times.append(time.perf_counter() - start)
    return up, times[0], times[1] if len(times) > 1 else None


def _psnr8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two [0, 1] images after rounding both to 8 bits (inf when equal)."""
    diff = np.round(a * 255).astype(np.float64) - np.round(b * 255)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _variants(wanted: str) -> list[str]:
    """eager first, then the asked variants this machine can run (the reason printed for each one left out)."""
    from ddnsr.inference.backends import installed
    from ddnsr.inference.device import cpu_has_native_bf16

    chosen = ["eager"]
    for v in (x.strip() for x in wanted.split(",") if x.strip()):
        if v not in RUNTIME_VARIANTS:
            raise SystemExit(f"--variants: unknown {v!r} (known: {', '.join(RUNTIME_VARIANTS)})")
        runtime = v.partition("-")[0]
        if runtime != "torch" and not installed(runtime):
            print(f"({v} left out: {runtime} is not installed)")
        elif v == "openvino-bf16" and not cpu_has_native_bf16():
            print("(openvino-bf16 left out: this CPU has no native bf16)")
        else:
            chosen.append(v)
    return chosen


def bench_runtimes(model: str, size: int, args: argparse.Namespace) -> None:
    """One model's table: every variant timed round-robin, against eager fp32, with PSNR and first-call cost."""
    from ddnsr.formats.modelfile import load_model
    from ddnsr.inference.backends import auto_choice

    net = load_model(model, kind="reconstruction")
    rgb = photo_input(size, args.image)
    out_mp = (4 * size) ** 2 / 1e6
    auto = auto_choice(torch.device("cpu"), net)[:2]
    print(f"\n{model}: input {size}x{size} -> {4 * size}x{4 * size} ({out_mp:.3f} MP), best of {args.repeats}")
    built = {v: first_call(net, v, rgb) for v in _variants(args.variants)}
    names = list(built)
    results = measure([(v, lambda up=built[v][0]: up.upscale_array(rgb)) for v in names], torch.device("cpu"),
                      args.repeats)
    base_time, base_out, _ = results[0]
    for v, (seconds, out, _peak) in zip(names, results, strict=True):
        up, cold, warm = built[v]
        label = RUNTIME_LABELS[v].format(precision=up.precision)
        mark = "  <- auto" if v != "eager" and (up.backend, up.precision) == auto else ""
        cached = f" / cached {warm:5.2f} s" if warm is not None else ""
        print(f"  {label:36s} {out_mp / seconds:7.3f} MP/s  x{base_time / seconds:5.2f}  "
              f"{_psnr8(out, base_out):6.1f} dB  first call {cold:5.2f} s{cached}{mark}")


def runtime_table(args: argparse.Namespace) -> None:
    """The runtime comparison on this CPU for each of ``--models`` (the cache in a fresh temporary folder)."""
    print(cpu_header())
    print(_versions())
    sizes = [int(x) for x in args.sizes.split(",")]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="ddnsr-bench-cache-") as cache:
        os.environ["DDNSR_CACHE"] = cache  # first calls start from an empty cache
        for i, model in enumerate(models):
            bench_runtimes(model, sizes[min(i, len(sizes) - 1)], args)


# --------------------------------------------------------------------------------------------- big run


def big_run(model: str, size: tuple[int, int], threads: int | None, device: str = "cpu") -> None:
    """``ddnsr upscale`` on a generated big PNG in a child process; peak RSS against output + 1.5 GB."""
    import ddnsr.imageio as dio
    from ddnsr.formats.modelfile import save_model

    width, height = size
    with tempfile.TemporaryDirectory(prefix="ddnsr-bench-") as tmp:
        root = Path(tmp)
        model_path = save_model(make_net(model), root / f"{model}.safetensors")
        print(f"\nbig run: {width}x{height} input, model {model} ({CONFIGS[model]}), generating the input ...")
        tile = photo_like(500, 500)
        reps = (math.ceil(height / 500), math.ceil(width / 500))
        dio.write_image(root / "big.png", np.tile(tile, (*reps, 1))[:height, :width])
        del tile
        command = [sys.executable, "-m", "ddnsr.cli", "upscale", str(root / "big.png"), "-o", str(root / "out"),
                   "--model", str(model_path), "--device", device]
        if threads:
            command += ["--threads", str(threads)]
        start = time.perf_counter()
        done = subprocess.run(command, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        output = height * 4 * width * 4 * 3
        print(f"  exit {done.returncode}, {seconds:.0f} s ({height * width * 16 / 1e6 / seconds:.3f} MP/s of output)")
        print(f"  peak RSS {peak / 2**30:.2f} GiB; 8-bit output array {output / 2**30:.2f} GiB; "
              f"bound output + 1.5 GB = {(output + 1.5e9) / 2**30:.2f} GiB -> "
              f"{'within' if peak <= output + 1.5e9 else 'OVER'} (margin {(output + 1.5e9 - peak) / 2**20:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="track1,track1-ft",
                    help="bundled models or model files for the runtime table (default: track1,track1-ft)")
    ap.add_argument("--sizes", default="128,96", help="input side per model, the last one repeated (default: 128,96)")
    ap.add_argument("--variants", default=",".join(RUNTIME_VARIANTS),
                    help=f"comma-separated, of {', '.join(RUNTIME_VARIANTS)} (default: all; eager always runs)")
    ap.add_argument("--image", default=None, help="the input photo (default: the bundled demo photo, mirrored to size)")
    ap.add_argument("--paths", action="store_true", help="the fast-path table on random R (--configs) instead")
    ap.add_argument("--configs", default="cpu,paper", help="--paths: comma-separated cpu, paper, tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=None, help="--paths: input side (default: 128 / 64 on the CPU)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (default: 3)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--big", action="store_true", help="only the big-image peak-RSS run of ddnsr upscale")
    ap.add_argument("--big-model", choices=tuple(CONFIGS), default="cpu")
    ap.add_argument("--big-size", default="4000x3000", help="WxH of the big run (default: 4000x3000)")
    ap.add_argument("--video", action="store_true", help="only the video pipeline's speed (benchmarks/video.py)")
    args = ap.parse_args()
    if args.video:  # frames/s of upscale_video on a 320x240 clip, time outside the network
        threads = ["--threads", str(args.threads)] if args.threads else []
        sys.argv = [str(Path(__file__).with_name("video.py")), *threads]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.big:
        w, h = (int(v) for v in args.big_size.lower().split("x"))
        big_run(args.big_model, (w, h), args.threads, args.device)
        return
    device = torch.device(args.device)
    if not args.paths and device.type == "cpu":
        runtime_table(args)
        return
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        torch.backends.cudnn.benchmark = True
    else:
        name = f"CPU ({_cpu_name()}), {torch.get_num_threads()} threads, native bf16: " \
               f"{'yes' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'no'}"
    print(f"device: {name}; torch {torch.__version__}")
    for config in args.configs.split(","):
        size = args.size or (512 if device.type == "cuda" else CPU_SIZES[config])
        bench_config(config.strip(), device, size, args.repeats)


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("(onnxruntime is not installed: its variant is left out; pip install 'ddnsr[export]')")
        return False
    return True


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine if hasattr(os, "uname") else "?"


if __name__ == "__main__":
    main()

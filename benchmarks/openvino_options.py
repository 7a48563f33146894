"""The bare network under OpenVINO's CPU options, against eager fp32 in the same run (docs/speed.md).

    python benchmarks/openvino_options.py [--model track1] [--size 128] [--repeats 3] [--threads 2]
        [--int8 [--photos ../shared/data/real-lr/realset80]]

No tiles, padding or 8-bit output: ``net(x)`` on a random ``1 x 3 x size x size`` input against OpenVINO's
compiled model with the dynamic shape ``ddnsr`` uses, a static shape, CPU pinning, the P-core hint and an f16
hint, and TorchScript freeze + ``optimize_for_inference``. Printed: seconds (best of ``--repeats`` after a
warm-up), the ratio to eager, and the largest difference to the eager output.

``--int8`` adds int8 post-training quantisation (ONNX Runtime's ``quantize_static``, QDQ, its convolutions
only: OpenVINO refuses a quantised constant multiplier): calibrated on 16 centre crops of 64 px of the
photos in ``--photos`` (the 11th to the 26th by name), then judged on the centre ``--size`` crops of the
first 4 by PSNR of the 8-bit output against eager fp32's (the 40 dB rule), beside OpenVINO fp32's.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from PIL import Image

from ddnsr.formats.modelfile import load_model
from ddnsr.formats.onnx_export import onnx_bytes
from ddnsr.metrics import psnr


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="track1")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--int8", action="store_true", help="add int8 post-training quantisation (needs onnxruntime)")
    p.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real-lr/realset80")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    net = load_model(args.model).float().eval()
    x = torch.rand(1, 3, args.size, args.size)
    with torch.no_grad():
        ref = net(x).numpy()
        base = best_time(lambda: net(x), args.repeats)
    print(f"{args.model}, {args.size} px, {args.threads} threads: eager fp32 {base:.3f} s")
    core = ov.Core()
    hints = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
             "INFERENCE_NUM_THREADS": args.threads}
    static = core.read_model(io.BytesIO(onnx_bytes(net)))
    static.reshape([1, 3, args.size, args.size])
    variants = [("OpenVINO, dynamic shape (ddnsr)", core.read_model(io.BytesIO(onnx_bytes(net))), hints),
                ("OpenVINO, static shape", static, hints),
                ("OpenVINO, static, CPU pinning", static, {**hints, "ENABLE_CPU_PINNING": True}),
                ("OpenVINO, static, P-cores only", static, {**hints, "SCHEDULING_CORE_TYPE": "PCORE_ONLY"}),
                ("OpenVINO, static, f16 hint", static, {**hints, "INFERENCE_PRECISION_HINT": "f16"})]
    for label, model, config in variants:
        request = core.compile_model(model, "CPU", config).create_infer_request()
        seconds = best_time(lambda r=request: r.infer({0: x.numpy()}), args.repeats)
        err = np.abs(request.get_output_tensor(0).data - ref).max()
        print(f"  {label:36s} {seconds:.3f} s  x{base / seconds:.2f}  max diff {err:.1e}")
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
        seconds = best_time(lambda: frozen(x), args.repeats)
        err = np.abs(frozen(x).numpy() - ref).max()
    print(f"  {'TorchScript freeze + optimize':36s} {seconds:.3f} s  x{base / seconds:.2f}  max diff {err:.1e}")
    if args.int8:
        int8_rows(net, core, hints, args, base)


def centre_crop(path: Path, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` of a photo as 1 x 3 x size x size float32 in [0, 1]."""
    rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    return np.ascontiguousarray(rgb[top: top + size, left: left + size].transpose(2, 0, 1)[None])


def as_8bit(y: np.ndarray) -> np.ndarray:
    """A 1 x 3 x H x W network output as an H x W x 3 uint8 image (clipped, rounded)."""
    return np.round(np.clip(y[0].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def int8_rows(net: torch.nn.Module, core: ov.Core, hints: dict, args: argparse.Namespace, base: float) -> None:
    """Print OpenVINO fp32 and int8 (static QDQ) on real crops: speed against eager and PSNR to it."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    photos = sorted(args.photos.iterdir())
    calib, tests = [centre_crop(p, 64) for p in photos[10:26]], [centre_crop(p, args.size) for p in photos[:4]]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(calib)

        def get_next(self) -> dict | None:
            x = next(self.left, None)
            return None if x is None else {"input": x}

    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        fp32.write_bytes(onnx_bytes(net))
        quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        with torch.no_grad():
            refs = [as_8bit(net(torch.from_numpy(x)).numpy()) for x in tests]
        for label, path in (("OpenVINO fp32, real crops", fp32), ("OpenVINO int8 (QDQ), real crops", int8)):
            compiled = core.compile_model(core.read_model(str(path)), "CPU", hints)
            worst = min(psnr(as_8bit(compiled(x)[0]), ref, crop_border=0, channel="rgb")
                        for x, ref in zip(tests, refs, strict=True))
            seconds = best_time(lambda c=compiled: c(tests[0]), args.repeats)
            print(f"  {label:36s} {seconds:.3f} s  x{base / seconds:.2f}  worst PSNR to eager {worst:.1f} dB")


if __name__ == "__main__":
    main()

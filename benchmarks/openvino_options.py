"""The bare network under OpenVINO's CPU options, against eager fp32 in the same run (docs/speed.md).

    python benchmarks/openvino_options.py [--model track1] [--size 128] [--repeats 3] [--threads 2]

No tiles, padding or 8-bit output: ``net(x)`` on a random ``1 x 3 x size x size`` input against OpenVINO's
compiled model with the dynamic shape ``ddnsr`` uses, a static shape, CPU pinning, the P-core hint and an f16
hint, and TorchScript freeze + ``optimize_for_inference``. Printed: seconds (best of ``--repeats`` after a
warm-up), the ratio to eager, and the largest difference to the eager output.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import numpy as np
import openvino as ov
import torch

from ddnsr.formats.modelfile import load_model
from ddnsr.formats.onnx_export import onnx_bytes


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


if __name__ == "__main__":
    main()

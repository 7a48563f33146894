"""The 40 dB rule, measured: each reduced-precision path against torch fp32 on real LR photo crops.

    python benchmarks/agreement.py [track1 track1-ft] [--size 96]

Ten centre crops (``--size`` square) of real LR photos (6 RealSet80, 4 NTIRE 2020 Track 1 validation, from
``../shared/data``, ``$DDNSR_SHARED/data``), upscaled by each model with torch fp32 (the reference), OpenVINO
with its bf16 hint, OpenVINO fp32 and torch bf16 (the last needs a CPU with native bf16 to be quick). Both
outputs are rounded to 8 bits; printed per path: the worst and mean PSNR and the largest difference in levels.
A path may be the default only where its worst PSNR is at least 40 dB (docs/speed.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ddnsr import Upscaler
from ddnsr.metrics import psnr

PATHS = {"openvino bf16 hint": ("openvino", "bf16"), "openvino fp32": ("openvino", "fp32"),
         "torch bf16": ("torch", "bf16")}


def crops(size: int) -> list[np.ndarray]:
    """Centre crops of the ten real LR photos."""
    root = Path(os.environ.get("DDNSR_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
    files = sorted((root / "real-lr/realset80").glob("*"))[:6] + sorted((root / "track1-valid/LR").glob("*"))[:4]
    if len(files) < 10:
        raise SystemExit(f"the real LR photos are not in {root} (set DDNSR_SHARED)")
    out = []
    for f in files:
        a = np.asarray(Image.open(f).convert("RGB"))
        top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        out.append(np.ascontiguousarray(a[top:top + size, left:left + size]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=["track1", "track1-ft"])
    ap.add_argument("--size", type=int, default=96)
    args = ap.parse_args()
    photos = crops(args.size)
    for model in args.models:
        exact = Upscaler.load(model, device="cpu", precision="fp32", backend="torch")
        for label, (backend, precision) in PATHS.items():
            up = Upscaler.load(model, device="cpu", precision=precision, backend=backend)
            scores, levels = [], 0
            for rgb in photos:
                a = np.round(up.upscale_array(rgb) * 255).astype(np.uint8)
                b = np.round(exact.upscale_array(rgb) * 255).astype(np.uint8)
                scores.append(min(psnr(a, b, channel="rgb", crop_border=0), 100.0))  # equal: 100 dB
                levels = max(levels, int(np.abs(a.astype(int) - b).max()))
            print(f"{model} {label} (runs {up.precision}): worst {min(scores):.1f} dB, mean {np.mean(scores):.1f} dB, "
                  f"max diff {levels} levels", flush=True)


if __name__ == "__main__":
    main()

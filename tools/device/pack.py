"""Float16 copies of every run's networks (same metadata) + logs, into one folder; fp16-vs-fp32 check.

    python tools/device/pack.py RUNS_DIR OUT_DIR     (what tools/device/call2.sh runs on the device)
"""

import json
import shutil
import sys
from pathlib import Path

import torch

from ddnsr.modelfile import load_model, read_metadata, save_model

runs, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
hr = torch.rand(1, 3, 64, 64)
lr = torch.nn.functional.avg_pool2d(hr, 4)
report = {}
for run in sorted(p for p in runs.iterdir() if p.is_dir()):
    out = dst / run.name
    out.mkdir(exist_ok=True)
    for f in ("losses.csv", "config.json", "loss_curves.png"):
        if (run / f).exists():
            shutil.copy(run / f, out / f)
    samples = sorted((run / "samples").glob("*.png")) if (run / "samples").is_dir() else []
    if samples:
        shutil.copy(samples[-1], out / "last-sample.png")
    for kind in ("reconstruction", "degradation"):
        src = run / f"{kind}.safetensors"
        if not src.exists():
            continue
        model = load_model(src)
        meta = {k: v for k, v in read_metadata(src).items()
                if k not in ("format", "arch", "config", "kind", "ddnsr_version", "dtype")}
        p = save_model(model, out / f"{kind}.safetensors", meta, half=True)
        back = load_model(p)
        with torch.no_grad():
            a = model(lr) if kind == "reconstruction" else model(hr, lr)
            b = back(lr) if kind == "reconstruction" else back(hr, lr)
        report[f"{run.name}/{kind}"] = float((a.clamp(0, 1) - b.clamp(0, 1)).abs().max()) * 255
(dst / "fp16-check.json").write_text(json.dumps(report, indent=1) + "\n")
print(json.dumps(report, indent=1))

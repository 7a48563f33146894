"""Float16 copies of every run's networks (same metadata) + logs, into one folder; fp16-vs-fp32 check.

    python docs/device-records/pack.py RUNS_DIR OUT_DIR     (what docs/device-records/call2.sh runs on the device)
"""

import json
import shutil
import sys
from pathlib import Path

from ddnsr.formats.modelfile import save_half

runs, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
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
        if (run / f"{kind}.safetensors").exists():
            _, report[f"{run.name}/{kind}"] = save_half(run / f"{kind}.safetensors", out / f"{kind}.safetensors")
(dst / "fp16-check.json").write_text(json.dumps(report, indent=1) + "\n")
print(json.dumps(report, indent=1))

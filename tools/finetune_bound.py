"""What adaptation could reach if its degradation were exact: R fine-tuned on the camera's true pipeline.

    python tools/finetune_bound.py [--camera NAME] --run-dir RUN [ddnsr train flags...]

runs ``ddnsr train`` (the adaptation path, ``--degradation camera``) with the estimated camera's LR
replaced by the camera pipeline of ``tools/make_camera.py`` (its blur, downscale, noise, sharpening and
JPEG; a new noise seed per crop), so R learns from the exact (HR, camera LR) pairs: the oracle bound of
the recipe. Everything else is the recipe's own: the same steps, losses, EMA, and the same validation
and selection (pairs made from the camera's photos by the *estimate*), so the gap between the two runs
is what the estimate's errors cost (docs/adapt.md, "Proof"). Give the usual flags, e.g.

    python tools/finetune_bound.py --camera gauss --real-lr /tmp/camera/lr --clean-hr /tmp/camera/clean \\
        --from track1 --minutes 10 --run-dir /tmp/oracle

For experiments only: the camera is the one make_camera.py makes, not a model of any real camera.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_camera import CAMERAS, degrade  # noqa: E402

from ddnsr.cli import main  # noqa: E402
from ddnsr.training.camera import CameraModel  # noqa: E402

_camera = ["gauss"]  # make_camera.CAMERAS name, set by --camera


def true_degrade(self: CameraModel, hr: torch.Tensor, rng: np.random.Generator, scale: int = 4) -> torch.Tensor:
    """Stands in for :meth:`CameraModel.degrade`: N x 3 x H x W clean HR in [0, 1] -> N x 3 x H/4 x W/4
    through make_camera.degrade (8-bit, JPEG), a seed per crop drawn from the trainer's ``rng``."""
    if scale != 4:
        raise ValueError("the camera pipeline is x4")
    out = []
    for img in hr.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
        lr = degrade(pil, seed=int(rng.integers(2**31)), camera=_camera[0])
        out.append(np.asarray(lr, dtype=np.float32) / 255)
    batch = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(hr.device, torch.float32)
    return batch.contiguous(memory_format=torch.channels_last)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--camera" in args:
        i = args.index("--camera")
        _camera[0] = args[i + 1]
        del args[i: i + 2]
    if _camera[0] not in CAMERAS:
        sys.exit(f"finetune_bound: --camera {_camera[0]!r} is not one of {', '.join(sorted(CAMERAS))}")
    CameraModel.degrade = true_degrade  # training pairs from the true camera; validation keeps the estimate
    sys.exit(main(["train", "--degradation", "camera", *args]))

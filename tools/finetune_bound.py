"""What a fine-tune could reach if D were perfect: R fine-tuned on the camera's true pipeline.

    python tools/finetune_bound.py [--camera NAME] --run-dir RUN [ddnsr train flags...]

runs ``ddnsr train --degradation bicubic`` with the bicubic x4 downscale replaced by the camera pipeline of
``tools/make_camera.py`` (blur, x1/4, noise, JPEG; a new noise seed per crop), so R learns from the exact
(HR, camera LR) pairs: an oracle degradation network. Compared with the same budget of the real method
(D learnt from the unpaired photos), it separates what the budget allows from what D's fidelity costs
(docs/adapt.md, "Proof"). Give the usual flags, e.g.

    python tools/finetune_bound.py --real-lr /tmp/camera/lr --clean-hr /tmp/camera/clean --from track1 \\
        --minutes 10 --color-weight-up 0 --color-weight 0 --run-dir /tmp/oracle [--mode psnr]

(the colour terms need the learned D, so they are switched off). For experiments only: the camera is the
one make_camera.py makes, not a model of any real camera.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_camera import degrade  # noqa: E402

import ddnsr.training.losses as losses  # noqa: E402
from ddnsr.cli import main  # noqa: E402

_seeds = itertools.count(10_000)
_camera = ["gauss"]  # make_camera.CAMERAS name, set by --camera


def camera_down(y: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """N x 3 x H x W clean HR in [0, 1] -> N x 3 x H/4 x W/4 through make_camera.degrade (8-bit, JPEG)."""
    if scale != 4:
        raise ValueError("the camera pipeline is x4")
    out = []
    for img in y.detach().float().clamp(0, 1).cpu():
        pil = Image.fromarray((img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        lr = np.asarray(degrade(pil, seed=next(_seeds), camera=_camera[0]), dtype=np.float32) / 255
        out.append(torch.from_numpy(lr).permute(2, 0, 1))
    return torch.stack(out).to(y.device).contiguous(memory_format=torch.channels_last)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--camera" in args:
        i = args.index("--camera")
        _camera[0] = args[i + 1]
        del args[i: i + 2]
    losses.bicubic_down = camera_down  # the 'bicubic' degradation of training/losses.py becomes the camera
    sys.exit(main(["train", "--degradation", "bicubic", *args]))

"""The closing report of a run: ``RUN/report.md`` and ``RUN/report.png``.

On the validation crops (validation.py), bicubic x4, the start model (``--from``/``--init-r``, if any) and
the adapted model (the exported R) side by side: the mean of each metric, and a picture of the first crop
(bicubic | start | adapted | HR when given), so the user sees at once whether the run helped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddnsr.training.validation import HIGHER_IS_BETTER, Validator, score, upscale

__all__ = ["bicubic_x4", "write_report"]


class _Bicubic(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)


def bicubic_x4() -> nn.Module:
    """Bicubic x4 as a module (``B x 3 x h x w`` -> ``B x 3 x 4h x 4w``; the output is clamped by upscale)."""
    return _Bicubic()


def write_report(validator: Validator, run_dir: Path, adapted: nn.Module, start: nn.Module | None,
                 start_name: str, device: torch.device) -> str:
    """Score the three on the validation crops; write report.md and report.png; return the markdown."""
    from PIL import Image

    from ddnsr.files import atomic_write

    models = {"bicubic": bicubic_x4()}
    if start is not None:
        models[f"start ({start_name})"] = start.to(device)
    models["adapted"] = adapted
    outputs = {name: [upscale(m, im.lr, device) for im in validator.images] for name, m in models.items()}
    means = {}
    for name, outs in outputs.items():
        rows = [score(sr, im.hr) for sr, im in zip(outs, validator.images, strict=True)]
        means[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    metrics = list(next(iter(means.values())))
    arrows = {k: "↑" if HIGHER_IS_BETTER[k] else "↓" for k in metrics}
    lines = [f"# Run report: {run_dir}", "",
             f"{len(validator.images)} validation images, centre crops (validation.py); "
             f"best-reconstruction.safetensors chosen by {validator.select}.", "",
             "| model | " + " | ".join(f"{k} {arrows[k]}" for k in metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for name, m in means.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.4g}" for k in metrics) + " |")
    tiles = [outs[0] for outs in outputs.values()]
    if validator.images[0].hr is not None:
        tiles.append(validator.images[0].hr)
    h = min(t.shape[0] for t in tiles)
    w = min(t.shape[1] for t in tiles)
    picture = np.concatenate([t[:h, :w] for t in tiles], axis=1)
    caption = " | ".join([*outputs, *(["HR"] if len(tiles) > len(outputs) else [])])
    lines += ["", f"![{caption}](report.png)", f"report.png, left to right: {caption}", ""]
    text = "\n".join(lines)
    atomic_write(run_dir / "report.md", text)
    atomic_write(run_dir / "report.png", lambda f: Image.fromarray(picture).save(f, format="PNG"))
    return text

"""The closing report of a run: ``RUN/report.md`` and ``RUN/report.png``.

Its first line is the verdict: which validation round the run exported as ``reconstruction.safetensors``
and whether that is better than the start model (``--from``/``--init-r``) by the run's own ``--select``
metric, or the start model itself because no round beat it. Then, on the validation crops
(validation.py), bicubic x4 (MATLAB ``imresize``, as ``ddnsr evaluate``), the start model, the last model
and the exported one side by side: the mean of each metric, and a picture of the first crop (bicubic |
... | HR when given), so the user sees at once whether the run helped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ddnsr.evaluation.scoring import bicubic_upscale, to_uint8
from ddnsr.metrics.color import to_unit
from ddnsr.training.validation import HIGHER_IS_BETTER, Validator, score, upscale

__all__ = ["bicubic_x4", "verdict", "write_report"]


def bicubic_x4(lr: np.ndarray) -> np.ndarray:
    """``h x w x 3`` uint8 or uint16 -> ``4h x 4w x 3`` uint8 by MATLAB's bicubic ``imresize`` (``ddnsr
    evaluate``'s)."""
    return to_uint8(bicubic_upscale(to_unit(lr)[0].astype(np.float32)))


def verdict(validator: Validator, has_start: bool, has_last: bool = True) -> str:
    """One line: what ``reconstruction.safetensors`` is, and how it compares with the start (round 0)."""
    metric, step = validator.select, validator.best_step
    if step is None:
        return "Verdict: no validation round ran; reconstruction.safetensors is the last model."
    value = validator.rounds[step]
    if not has_start or 0 not in validator.rounds:
        return f"Verdict: reconstruction.safetensors is the best round, step {step} ({metric} {value:.4g})."
    start = validator.rounds[0]
    if step == 0:
        last = max(validator.rounds)
        where = "last-reconstruction.safetensors" if has_last else "not exported: the run diverged"
        return (f"Verdict: no round beat the start model on {metric} (start {start:.4g}, last round "
                f"{validator.rounds[last]:.4g} at step {last}); reconstruction.safetensors is the start model, "
                f"unchanged (the last model: {where}).")
    return (f"Verdict: the adapted model beats the start on {metric}: {value:.4g} against {start:.4g}; "
            f"reconstruction.safetensors is the round of step {step}.")


def write_report(validator: Validator, run_dir: Path, models: dict[str, nn.Module], *, has_start: bool,
                 device: torch.device) -> str:
    """Score bicubic and ``models`` (name -> R) on the validation crops; write report.md and report.png;
    return the markdown (its first line is :func:`verdict`)."""
    from PIL import Image

    from ddnsr.files import atomic_write

    outputs = {"bicubic": [bicubic_x4(im.lr) for im in validator.images]}
    for name, model in models.items():
        outputs[name] = [upscale(model, im.lr, device) for im in validator.images]
    means = {}
    for name, outs in outputs.items():
        rows = [score(sr, im.hr) for sr, im in zip(outs, validator.images, strict=True)]
        means[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    metrics = list(next(iter(means.values())))
    arrows = {k: "↑" if HIGHER_IS_BETTER[k] else "↓" for k in metrics}
    rounds = ", ".join(f"{s}: {v:.4g}" for s, v in sorted(validator.rounds.items()))
    lines = [verdict(validator, has_start, "last" in models), "", f"# Run report: {run_dir}", "",
             f"{len(validator.images)} validation images, centre crops (validation.py). Rounds by "
             f"{validator.select} (step: value; 0 is the start model): {rounds}.", "",
             "| model | " + " | ".join(f"{k} {arrows[k]}" for k in metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for name, m in means.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.4g}" for k in metrics) + " |")
    tiles = [outs[0] for outs in outputs.values()]
    if validator.images[0].hr is not None:
        tiles.append(to_uint8(to_unit(validator.images[0].hr)[0]))  # a 16-bit HR as 8 bits, for the picture
    h = min(t.shape[0] for t in tiles)
    w = min(t.shape[1] for t in tiles)
    picture = np.concatenate([t[:h, :w] for t in tiles], axis=1)
    caption = " | ".join([*outputs, *(["HR"] if len(tiles) > len(outputs) else [])])
    lines += ["", f"![{caption}](report.png)", f"report.png, left to right: {caption}", ""]
    text = "\n".join(lines)
    atomic_write(run_dir / "report.md", text)
    atomic_write(run_dir / "report.png", lambda f: Image.fromarray(picture).save(f, format="PNG"))
    return text

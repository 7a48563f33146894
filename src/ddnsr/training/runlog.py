"""What a run writes as it goes: ``losses.csv``, TensorBoard scalars and images, sample grids, loss curves.

* ``losses.csv``: one row per logged step (``step, lr, time`` and :data:`LOSS_COLUMNS`; a psnr-mode step
  leaves the esrgan-only columns empty, and the reverse). On resume the rows after the checkpoint's step
  are dropped (the file is rewritten atomically), so the file reads as one uninterrupted run.
* ``tb/``: TensorBoard scalars ``loss/<name>`` and ``lr``, and the sample grids (purged after the step
  resumed from).
* ``samples/step-<step>.png``: rows of real LR | R(real LR) | D(HR, LR) | HR | R(D(HR, LR)).
* ``loss_curves.png`` at the end: one panel per loss.

PNG files and the rewritten CSV go through :func:`ddnsr.files.atomic_write`.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ddnsr.files import atomic_write

__all__ = ["HEADER", "LOSS_COLUMNS", "RunLog", "plot_losses", "sample_grid"]

LOSS_COLUMNS = ("loss_R", "loss_D", "loss_Dhr", "loss_Dlr", "content_up", "adv_up", "cycle_up", "adv_disc_up",
                "loss_up", "content_down", "adv_down", "cycle_down", "adv_disc_down", "color_down",
                "color_up")
HEADER = ("step", "lr", "time", *LOSS_COLUMNS)


class RunLog:
    """The run folder's logs from step ``start`` on. ``enabled=False`` (ranks other than 0) writes nothing."""

    def __init__(self, run_dir: str | Path, start: int, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.csv_path = self.run_dir / "losses.csv"
        self.t0 = time.time()
        self._writer: Any = None
        self._csv: Any = None
        if not enabled:
            return
        (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
        self._trim_csv(start)
        self._csv = open(self.csv_path, "a", newline="")  # noqa: SIM115 - closed by close()
        if self._csv.tell() == 0:
            csv.writer(self._csv).writerow(HEADER)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=start if start else None)
        except ImportError:  # tensorboard is a dependency, but training must not depend on it
            self._writer = None

    def _trim_csv(self, start: int) -> None:
        """A new run starts a new file; a resumed one keeps the rows up to ``start`` (in today's columns)."""
        if start == 0 or not self.csv_path.exists():
            self.csv_path.unlink(missing_ok=True)
            return
        with open(self.csv_path, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= start]
        text = io.StringIO()
        w = csv.writer(text)
        w.writerow(HEADER)
        w.writerows([r.get(k) or "" for k in HEADER] for r in kept)
        atomic_write(self.csv_path, text.getvalue())

    def losses(self, step: int, lr: float, losses: dict[str, float]) -> None:
        """One row of losses (already floats); a non-finite loss stops the run."""
        if not all(math.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"step {step}: a loss is not finite ({losses})")
        if not self.enabled:
            return
        if self._writer:
            for k, v in losses.items():
                self._writer.add_scalar(f"loss/{k}", v, step)
            self._writer.add_scalar("lr", lr, step)
        csv.writer(self._csv).writerow([step, lr, f"{time.time() - self.t0:.1f}",
                                        *(f"{losses[k]:.6g}" if k in losses else "" for k in LOSS_COLUMNS)])
        self._csv.flush()

    def samples(self, step: int, images: dict[str, torch.Tensor]) -> Path | None:
        """``samples/step-<step>.png`` (and TensorBoard's copy) from a step's images."""
        if not self.enabled:
            return None
        grid = sample_grid({k: v.detach() for k, v in images.items()})
        path = atomic_write(self.run_dir / "samples" / f"step-{step:08d}.png", _png(grid))
        if self._writer:
            self._writer.add_image("samples", grid, step, dataformats="HWC")
        return path

    def close(self) -> None:
        if self._writer:
            self._writer.close()
            self._writer = None
        if self._csv:
            self._csv.close()
            self._csv = None

    def finish(self) -> None:
        """Close the files and draw ``loss_curves.png``."""
        self.close()
        if self.enabled:
            plot_losses(self.csv_path, self.run_dir / "loss_curves.png")


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def sample_grid(images: dict[str, torch.Tensor], rows: int = 4) -> np.ndarray:
    """Rows of: real LR | R(real LR) | D(HR, LR) | HR | R(D(HR, LR)), LR shown nearest x4. uint8 HxWx3."""
    n = min(rows, images["x"].shape[0])
    hr = images["y"].shape[-1]

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t[:n].float(), size=(hr, hr), mode="nearest")

    cols = [up(images["x"]), images["sr_x"][:n].float(), up(images["y_lr"]), images["y"][:n].float(),
            images["y_sr"][:n].float()]
    row_imgs = [torch.cat([c[i] for c in cols], dim=2) for i in range(n)]
    grid = torch.cat(row_imgs, dim=1)
    return (grid.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def plot_losses(csv_path: Path, out: Path) -> None:
    """A small loss-curve figure (one panel per loss, drawn with Pillow; log scale where positive)."""
    from PIL import Image, ImageDraw

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("step", "lr", "time") and any(r[k] for r in rows)]
    pw, ph, cols = 320, 180, 3
    img = Image.new("RGB", (pw * cols, ph * max(1, math.ceil(len(keys) / cols))), "white")
    draw = ImageDraw.Draw(img)
    for i, k in enumerate(keys):
        _panel(draw, rows, k, (i % cols) * pw, (i // cols) * ph, pw, ph)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write(out, buf.getvalue())


def _panel(draw: Any, rows: list[dict[str, str]], k: str, x0: int, y0: int, pw: int, ph: int) -> None:
    steps = np.array([float(r["step"]) for r in rows if r[k]])
    vals = np.array([float(r[k]) for r in rows if r[k]])
    log = bool(np.all(vals > 0))
    v = np.log10(vals) if log else vals
    lo, hi = float(v.min()), float(v.max())
    hi = hi if hi > lo else lo + 1e-9
    sx = (steps - steps.min()) / max(steps.max() - steps.min(), 1)
    pts = [(x0 + 40 + s * (pw - 50), y0 + ph - 25 - (val - lo) / (hi - lo) * (ph - 45))
           for s, val in zip(sx, v, strict=True)]
    draw.rectangle([x0 + 40, y0 + 20, x0 + pw - 10, y0 + ph - 25], outline="gray")
    if len(pts) > 1:
        draw.line(pts, fill="navy", width=1)
    draw.text((x0 + 42, y0 + 4), f"{k}{' (log10)' if log else ''}: {vals[-1]:.4g}", fill="black")
    draw.text((x0 + 2, y0 + 20), f"{10**hi if log else hi:.3g}", fill="gray")
    draw.text((x0 + 2, y0 + ph - 35), f"{10**lo if log else lo:.3g}", fill="gray")
    draw.text((x0 + 40, y0 + ph - 18), f"step {int(steps.min())}", fill="gray")
    draw.text((x0 + pw - 90, y0 + ph - 18), f"{int(steps.max())}", fill="gray")

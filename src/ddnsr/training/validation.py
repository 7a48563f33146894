"""Validation while training: ``--val-lr DIR [--val-hr DIR]``, ``--val-every N``, ``--select METRIC``.

Kept cheap on purpose: at most :data:`MAX_IMAGES` images, each cut to its centre :data:`CROP` x CROP LR
pixels (and the matching 4x HR crop), upscaled by R (the moving average when ``--ema`` is on). With HR:
PSNR-Y and SSIM-Y (BT.601 Y, 4-pixel border, the NTIRE convention); always NIQE and PIQE (no reference;
lower is better). Without ``--val-lr`` the last few ``--real-lr`` photos are used (NIQE/PIQE only; they
are also in the training stream, but R never sees a ground truth for them). Each round adds a row to
``RUN/validation.csv`` and to TensorBoard (``val/<metric>``). A run that starts from a model validates
the start model first, as round 0 (step 0). The best round by ``--select`` (default ``psnr_y`` with HR,
else ``niqe``) is kept as ``RUN/best-reconstruction.safetensors`` while the run goes on; at the end it
becomes the run's ``reconstruction.safetensors`` (loop.py): a run never exports a model that its own
validation scored worse than its start.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ddnsr.errors import DataError, ImageError, SettingError
from ddnsr.evaluation.report import SR_COLUMNS

if TYPE_CHECKING:
    from ddnsr.training.camera import CameraModel
    from ddnsr.training.config import TrainConfig

__all__ = ["BEST_FILE", "CROP", "HIGHER_IS_BETTER", "MAX_IMAGES", "ValImage", "Validator", "last_readable",
           "load_val_images", "make_validator", "mean_scores", "read_exact", "self_pairs"]

CROP = 64
SELF_CROP = 256  # the HR side of a pair made from a camera photo (validation without --val-lr, camera estimate)
MIN_CROP = 48  # NIQE needs 2 x 2 of its 96 px blocks: outputs of at least 192 px
MAX_IMAGES = 6
#: Which way each validation metric is better: ``ddnsr evaluate``'s columns decide (one home)
HIGHER_IS_BETTER = {k: SR_COLUMNS[k][2] == "max" for k in ("psnr_y", "ssim_y", "niqe", "piqe")}
BEST_FILE = "best-reconstruction.safetensors"  # the best round so far, while the run goes on


@dataclass
class ValImage:
    """One validation image: its name, the LR crop ``c x c x 3`` and the 4x HR crop (or None), uint8, or
    uint16 where the file has 16 bits (:func:`read_exact`)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray | None


def read_exact(path: Path) -> np.ndarray:
    """An image file -> ``H x W x 3`` uint8, or uint16 for a 16-bit file: ``ddnsr evaluate``'s reader
    (:func:`ddnsr.imageio.read_image`), so validation scores the bits that evaluation scores."""
    from ddnsr.imageio import read_image

    img = read_image(path)
    top = 65535 if img.bit_depth == 16 else 255
    return np.round(img.rgb * top).astype(np.uint16 if top == 65535 else np.uint8)


def _centre(img: np.ndarray, size: int) -> tuple[int, int, int]:
    h, w = img.shape[:2]
    c = min(size, h, w)
    return (h - c) // 2, (w - c) // 2, c


def make_validator(cfg: TrainConfig, run_dir: Path, camera: CameraModel | None = None) -> Validator:
    """The run's validator: ``--val-lr`` (with ``--val-hr``), else the last few real LR photos of the run
    (with a camera estimate, as pairs: the photo made smaller by the estimate, and the photo)."""
    if cfg.val_lr:
        return Validator(load_val_images(list(cfg.val_lr), cfg.val_hr), run_dir, cfg.select)
    if not cfg.real_lr:
        raise SettingError("validation needs --val-lr DIR (or --real-lr folders to take a few photos from)")
    from ddnsr.training.data import list_images

    files = list_images([Path(d) for d in cfg.real_lr])
    if camera is not None:
        images = self_pairs(files, camera)
        if images:
            print(f"validation: {len(images)} of the --real-lr photos as pairs (each photo's centre, at most "
                  f"{SELF_CROP} px, made 4x smaller by the camera estimate: R should give the photo back); "
                  "PSNR-Y on them picks the exported round; give --val-lr/--val-hr for held-out pairs", flush=True)
            return Validator(images, run_dir, cfg.select)
    images = last_readable(files)
    if not images:
        raise DataError(f"--real-lr {', '.join(cfg.real_lr)}: no photo can be validated on (each is unreadable "
                        f"or under {MIN_CROP} px a side); give --val-lr DIR")
    print(f"validation: {len(images)} of the --real-lr photos (centre {CROP}x{CROP} crops), NIQE/PIQE only; "
          "give --val-lr/--val-hr for a held-out set with PSNR", flush=True)
    return Validator(images, run_dir, cfg.select)


def self_pairs(files: list[Path], camera: CameraModel) -> list[ValImage]:
    """Pairs made from the camera's own photos (ZSSR's idea, with the camera estimate as the degradation):
    the last :data:`MAX_IMAGES` readable photos of at least 64 px a side, each cut to its centre (at most
    :data:`SELF_CROP` px, a multiple of 4) as the HR, and that crop taken through the estimated pipeline
    (the middle of the pairs' blur range, the estimated sharpening, 0.75 x its noise, a fixed seed) as
    the LR. The photo still holds the camera's noise and JPEG, so the scores are lower than on clean
    ground truth, but the same for every round: a model that restores the camera's photos better scores
    higher (docs/adapt.md, the agreement)."""
    from ddnsr.training.data import load_rgb8

    out: list[ValImage] = []
    rng = np.random.default_rng(0)
    blur = (camera.middle_blur(),) * 2 + (0.0,)  # the middle of the range the pairs draw
    for path in reversed(files):
        if len(out) == MAX_IMAGES:
            break
        try:
            photo = load_rgb8(path)
        except (DataError, OSError, ValueError):
            continue
        top, left, c = _centre(photo, SELF_CROP)
        c -= c % 4
        if c < 64:
            continue
        hr = np.ascontiguousarray(photo[top: top + c, left: left + c])
        lr = camera.make(hr.astype(np.float32) / 255, blur, camera.sharpen, 0.75 * camera.noise, rng)
        out.append(ValImage(path.name, (lr * 255 + 0.5).astype(np.uint8), hr))
    return out[::-1]


def last_readable(files: list[Path]) -> list[ValImage]:
    """The last :data:`MAX_IMAGES` of ``files`` that load and are large enough (others are skipped, as the
    training stream skips them; it has warned about each already)."""
    images: list[ValImage] = []
    for path in reversed(files):
        if len(images) == MAX_IMAGES:
            break
        try:
            images += load_val_images([], None, files=[path])
        except (DataError, ImageError, OSError, ValueError):
            continue
    return images[::-1]


def load_val_images(lr_dirs: list[str], hr_dir: str | None, limit: int = MAX_IMAGES, *,
                    files: list[Path] | None = None) -> list[ValImage]:
    """The first ``limit`` images of ``lr_dirs`` (by name), centre-cropped, with their HR partner (same stem).

    Raises:
        DataError: no image, or an HR partner missing or not 4x its LR.
    """
    from ddnsr.training.data import list_images

    files = files if files is not None else list_images([Path(d) for d in lr_dirs])
    if not files:
        raise DataError(f"--val-lr {', '.join(lr_dirs)}: no images")
    hr_files = {p.stem: p for p in list_images([Path(hr_dir)])} if hr_dir else {}
    out = []
    for path in files[:limit]:
        lr = read_exact(path)
        top, left, c = _centre(lr, CROP)
        if c < MIN_CROP:
            raise DataError(f"{path}: {lr.shape[1]}x{lr.shape[0]} is too small to validate on (at least "
                            f"{MIN_CROP} px a side: NIQE needs a 192 px output)")
        hr = None
        if hr_dir:
            if path.stem not in hr_files:
                raise DataError(f"--val-hr {hr_dir}: no partner for {path.name} (same name expected)")
            full = read_exact(hr_files[path.stem])
            if full.shape[:2] != (4 * lr.shape[0], 4 * lr.shape[1]):
                raise DataError(f"{hr_files[path.stem]}: {full.shape[1]}x{full.shape[0]} is not 4x its LR "
                                f"{lr.shape[1]}x{lr.shape[0]}")
            hr = full[4 * top: 4 * (top + c), 4 * left: 4 * (left + c)]
        out.append(ValImage(path.name, np.ascontiguousarray(lr[top: top + c, left: left + c]), hr))
    return out


def upscale(model: nn.Module, lr: np.ndarray, device: torch.device) -> np.ndarray:
    """``h x w x 3`` uint8 or uint16 -> R's ``4h x 4w x 3`` uint8 (fp32, eval mode, rounded).

    The crop is padded by reflection before R and the padding cut off after, as ``ddnsr upscale`` does
    (``BORDER_PAD``): without it R draws a frame along the crop's border that the scores would count.
    """
    from ddnsr.inference.upscaler import BORDER_PAD
    from ddnsr.metrics.color import to_unit

    x = torch.from_numpy(to_unit(lr)[0].astype(np.float32)).permute(2, 0, 1)[None].to(device)
    pad = min(BORDER_PAD, x.shape[2] - 1, x.shape[3] - 1)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        y = model(torch.nn.functional.pad(x, (pad,) * 4, mode="reflect") if pad > 0 else x)
    model.train(was_training)
    if pad > 0:
        y = y[:, :, 4 * pad: y.shape[2] - 4 * pad, 4 * pad: y.shape[3] - 4 * pad]
    return (y[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())


def score(sr: np.ndarray, hr: np.ndarray | None) -> dict[str, float]:
    """The validation metrics of one output (PSNR-Y/SSIM-Y only with ``hr``).

    A metric that cannot be computed on the output (NIQE of a flat image: a model ruined by a too large
    learning rate outputs one) gets its worst value, so such a round is never chosen.
    """
    from ddnsr.metrics import niqe, piqe, psnr, ssim

    out = {}
    if hr is not None:
        out["psnr_y"] = psnr(sr, hr)
        out["ssim_y"] = ssim(sr, hr)
    for name, metric in (("niqe", niqe), ("piqe", piqe)):
        if name == "niqe" and min(sr.shape[:2]) < 4 * MIN_CROP:  # too small for NIQE's blocks: not scored
            continue
        try:
            out[name] = float(metric(sr))
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            out[name] = float("nan")
    worst = {k: float("-inf") if HIGHER_IS_BETTER[k] else float("inf") for k in out}
    return {k: worst[k] if np.isnan(v) else v for k, v in out.items()}  # (an exact output keeps PSNR inf)


def mean_scores(images: list[ValImage], model: nn.Module, device: torch.device) -> dict[str, float]:
    """R's output on each image scored by :func:`score`, each metric averaged over the images (a metric
    some image lacks is left out)."""
    rows = [score(upscale(model, im.lr, device), im.hr) for im in images]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if all(k in r for r in rows)}


class Validator:
    """Scores R on the validation crops, logs the rows and keeps the best model file."""

    def __init__(self, images: list[ValImage], run_dir: Path, select: str | None, note: str = "") -> None:
        self.images, self.run_dir = images, Path(run_dir)
        self.paired = all(im.hr is not None for im in images)
        self.select = select or ("psnr_y" if self.paired else "niqe")
        if self.select not in HIGHER_IS_BETTER or (self.select in ("psnr_y", "ssim_y") and not self.paired):
            allowed = [m for m in HIGHER_IS_BETTER if self.paired or m in ("niqe", "piqe")]
            raise SettingError(f"--select must be one of {', '.join(allowed)}, got {self.select!r}")
        self.rounds: dict[int, float] = self._rounds_so_far()  # step -> --select value
        self.note = note

    def _rounds_so_far(self) -> dict[int, float]:
        """The ``--select`` value of each round of an earlier part of the run (validation.csv), for ``--resume``."""
        path = self.run_dir / "validation.csv"
        if not path.is_file():
            return {}
        rows = csv.DictReader(io.StringIO(path.read_text()))
        return {int(r["step"]): float(r[self.select]) for r in rows if r.get(self.select) and r.get("step")}

    def better(self, a: float, b: float) -> bool:
        """Whether ``--select`` value ``a`` is strictly better than ``b``."""
        return a > b if HIGHER_IS_BETTER[self.select] else a < b

    @property
    def best_step(self) -> int | None:
        """The step of the best round so far (the earliest among equals; 0 is the start model), or None."""
        best = None
        for step in sorted(self.rounds):
            if best is None or self.better(self.rounds[step], self.rounds[best]):
                best = step
        return best

    @property
    def best(self) -> float | None:
        """The best ``--select`` value so far, or None before the first round."""
        step = self.best_step
        return None if step is None else self.rounds[step]

    def mean_scores(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Each metric averaged over the validation crops."""
        return mean_scores(self.images, model, device)

    def run(self, step: int, model: nn.Module, device: torch.device, tb=None, save=None) -> dict[str, float]:
        """One round at ``step``: scores, a row of validation.csv, TensorBoard, and ``save(path)`` when best."""
        from ddnsr.files import atomic_write

        scores = self.mean_scores(model, device)
        path = self.run_dir / "validation.csv"
        old = path.read_text() if path.is_file() else ""
        rows = [r for r in csv.reader(io.StringIO(old))][1:]
        rows = [r for r in rows if r and int(r[0]) < step]  # a resumed run rewrites its later rows
        self.rounds = {k: v for k, v in self.rounds.items() if k < step}
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["step", *scores])
        writer.writerows(rows)
        writer.writerow([step, *(f"{v:.6g}" for v in scores.values())])
        atomic_write(path, buf.getvalue())
        if tb is not None:
            for k, v in scores.items():
                tb.add_scalar(f"val/{k}", v, step)
        value = scores.get(self.select, float("-inf") if HIGHER_IS_BETTER[self.select] else float("inf"))
        better = self.best is None or self.better(value, self.best)
        self.rounds[step] = value
        if better and save is not None:
            save(self.run_dir / BEST_FILE)
        return scores

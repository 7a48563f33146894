"""Experiment: estimate a camera's degradation from its own photos by matching statistics.

    python tools/fit_camera.py --lr /tmp/phone-a/lr --clean CLEAN_DIR [--lr ...]

Not wired into ``ddnsr train``: on the four cameras of tools/make_camera.py the fitted parameters are
too far from the truth to teach R (docs/adapt.md, "Estimating the camera by statistics"); kept as the
record of that attempt and a base for a better estimator.

A cheap explicit model of what a camera does to a scene between the clean HR image and its LR photo,
fitted to the camera's photos alone (no ground truth) in seconds, so that R can be fine-tuned on
``(camera(y), y)`` pairs made from clean photos ``y`` — the field's "estimate the degradation, then train
on synthetic pairs" (RealSR's Impressionism: estimated blur and noise patches of the camera itself):

1. a Gaussian blur of ``blur`` HR pixels, then the antialiased bicubic x1/4 (MATLAB's imresize);
2. Gaussian noise, ``noise_luma`` on luma (the same on R, G and B) and ``noise_chroma`` on each colour
   difference, on the 0..255 scale;
3. JPEG: the camera's own quantisation tables when its photos are JPEG files, else a quality fitted by
   matching the 8x8 blockiness of its photos (None: no JPEG).

Each parameter is fitted by making LR from clean photos with candidate values and matching one statistic
of the camera's photos (coordinate descent over grids, a few seconds): ``blur`` the mid-frequency
spectral fall-off, the noise the residual level of the flattest windows (luma and chroma), the quality
the 8x8 blockiness. Matching statistics of *other* photos' LR with the same measures cancels most of
the content's share of each statistic. ``CameraModel.save``/``load`` keep a fit as JSON.
All statistics are on luma (BT.601). Written by hand: no library fits such a model; each step is short.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from ddnsr.errors import DataError

__all__ = ["CameraModel", "blockiness", "fit_camera", "flat_residual", "spectral_falloff"]

BLURS = (0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.2, 2.6)  # HR pixels
QUALITIES = (None, 95, 90, 85, 80, 75, 70, 65, 60, 50, 40, 30)
NOISES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)  # 0..255
FIT_CROP = 320  # HR height of the clean photos used for fitting (80 px LR, as BSD100 x1/4)


def luma(rgb: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 or float [0, 255] -> ``H x W`` float64 BT.601 luma on 0..255."""
    a = np.asarray(rgb, dtype=np.float64)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def blockiness(y: np.ndarray) -> float:
    """JPEG's 8x8 grid: mean |step| across column/row 8k boundaries over the mean |step| elsewhere (1 = none)."""
    dx, dy = np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0))
    on_x, on_y = (np.arange(dx.shape[1]) % 8) == 7, (np.arange(dy.shape[0]) % 8) == 7
    at = dx[:, on_x].sum() + dy[on_y].sum()
    n_at = dx[:, on_x].size + dy[on_y].size
    off = dx[:, ~on_x].sum() + dy[~on_y].sum()
    n_off = dx[:, ~on_x].size + dy[~on_y].size
    return float((at / max(n_at, 1)) / max(off / max(n_off, 1), 1e-9))


def spectral_falloff(y: np.ndarray) -> float:
    """How fast the luma's power falls between 0.08 and 0.22 cycles/pixel: log10 ratio of the two bands.

    Mid frequencies: blur changes them, noise (white, weak) and JPEG (highest band) little."""
    y = y - y.mean()
    h, w = y.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    p = np.abs(np.fft.fft2(y * win)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    r = np.hypot(fy, fx)
    low, high = p[(r > 0.06) & (r < 0.10)].mean(), p[(r > 0.20) & (r < 0.24)].mean()
    return float(np.log10(max(low, 1e-12) / max(high, 1e-12)))


def flat_residual(rgb: np.ndarray, q: float = 0.1) -> tuple[float, float]:
    """The ``q`` quantile over 8x8 windows (not near black or white) of the residual std (image minus its
    3x3 mean), on luma and on the colour differences: the noise of the flattest places, in 0..255."""
    a = np.asarray(rgb, dtype=np.float64)
    y = luma(a)
    c = np.stack([a[..., 0] - y, a[..., 2] - y], axis=-1)
    ry = y - ndimage.uniform_filter(y, 3, mode="reflect")
    rc = c - ndimage.uniform_filter(c, (3, 3, 1), mode="reflect")
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    if h == 0 or w == 0:
        return 0.0, 0.0

    def windows(r: np.ndarray) -> np.ndarray:
        r = r[:h, :w].reshape(h // 8, 8, w // 8, 8, -1)
        return np.sqrt((r ** 2).mean(axis=(1, 3, 4))).ravel()

    mean = y[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3)).ravel()
    ok = (mean > 16) & (mean < 240)
    if not ok.any():
        return 0.0, 0.0
    return (float(np.quantile(windows(ry[..., None])[ok], q)), float(np.quantile(windows(rc)[ok], q)))


@dataclass
class CameraModel:
    """The fitted pipeline; see the module docstring. ``qtables``: the camera's JPEG tables (lists of 64)."""

    blur: float
    noise_luma: float = 0.0
    noise_chroma: float = 0.0
    quality: int | None = None
    qtables: list[list[int]] | None = None

    def degrade_arrays(self, hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``N x H x W x 3`` float [0, 1] HR (H, W multiples of 4) -> ``N x H/4 x W/4 x 3`` float [0, 1]."""
        t = torch.from_numpy(np.ascontiguousarray(hr.transpose(0, 3, 1, 2))).float()
        return self.degrade(t, rng).permute(0, 2, 3, 1).numpy()

    def degrade(self, y: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``N x 3 x H x W`` float [0, 1] clean HR -> ``N x 3 x H/4 x W/4`` float [0, 1] (8-bit values)."""
        t = y.detach().float().cpu()
        if self.blur > 0:
            t = _gaussian_blur(t, self.blur)
        lr = F.interpolate(t, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False)
        out = lr.permute(0, 2, 3, 1).numpy().astype(np.float64) * 255.0
        n, h, w, _ = out.shape
        if self.noise_luma:
            out += rng.normal(0.0, self.noise_luma, (n, h, w, 1))
        if self.noise_chroma:  # on R - Y and B - Y; G moves so that luma is unchanged
            cr, cb = rng.normal(0.0, self.noise_chroma, (2, n, h, w))
            out += np.stack([cr, -(0.299 * cr + 0.114 * cb) / 0.587, cb], axis=-1)
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        if self.quality is not None or self.qtables is not None:
            out = np.stack([self._jpeg(img) for img in out])
        return torch.from_numpy(out.astype(np.float32) / 255.0).permute(0, 3, 1, 2).to(y.device)

    def _jpeg(self, img: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        if self.qtables is not None:
            Image.fromarray(img).save(buf, format="JPEG", qtables=self.qtables, subsampling=2)
        else:
            Image.fromarray(img).save(buf, format="JPEG", quality=int(self.quality), subsampling=2)
        buf.seek(0)
        return np.asarray(Image.open(buf).convert("RGB"))

    def describe(self) -> str:
        jpeg = ("the camera's own JPEG tables" if self.qtables else
                f"JPEG quality {self.quality}" if self.quality else "no JPEG")
        return (f"blur {self.blur} HR px, noise {self.noise_luma}/255 luma + {self.noise_chroma}/255 chroma, "
                f"{jpeg}")

    def save(self, path: Path) -> None:
        from ddnsr.files import atomic_write

        atomic_write(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> CameraModel:
        return cls(**json.loads(Path(path).read_text()))


def _gaussian_blur(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """``N x C x H x W`` blurred by a separable Gaussian (reflect padding)."""
    r = max(1, int(np.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).to(t.dtype)
    c = t.shape[1]
    t = F.pad(t, (r, r, r, r), mode="reflect")
    t = F.conv2d(t, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(t, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


# ----------------------------------------------------------------------------------------- fitting
def _camera_tables(files: list[Path]) -> list[list[int]] | None:
    """The quantisation tables of the camera's JPEG files (the most common set), or None when not JPEG."""
    seen: dict[str, list[list[int]]] = {}
    counts: dict[str, int] = {}
    for f in files:
        try:
            with Image.open(f) as im:
                q = getattr(im, "quantization", None) if im.format == "JPEG" else None
        except OSError:
            continue
        if q:
            tables = [list(q[k]) for k in sorted(q)]
            key = json.dumps(tables)
            seen[key] = tables
            counts[key] = counts.get(key, 0) + 1
    return seen[max(counts, key=counts.get)] if counts else None


def fit_camera(lr_files: list[Path], clean_files: list[Path], *, seed: int = 0, most_photos: int = 40,
               most_crops: int = 24, log=print) -> CameraModel:
    """Fit :class:`CameraModel` to the camera's photos ``lr_files``, making candidate LR from ``clean_files``.

    Raises:
        DataError: no readable camera photo, or no clean photo of at least ``FIT_CROP`` px a side.
    """
    from ddnsr.training.data import load_rgb8

    photos = _read_some(lr_files, most_photos, load_rgb8)
    if not photos:
        raise DataError("--real-lr: no readable photo to estimate the camera from")
    clean = torch.from_numpy(_clean_crops(clean_files, most_crops, load_rgb8, np.random.default_rng(seed)))
    clean = clean.permute(0, 3, 1, 2).contiguous()
    tables = _camera_tables(lr_files[:most_photos])
    target = _stats(photos)

    def distance(model: CameraModel, which: int) -> float:
        lr = (model.degrade(clean, np.random.default_rng(seed)) * 255).permute(0, 2, 3, 1).numpy()
        return abs(_stats(list(lr))[which] - target[which])

    m = CameraModel(blur=1.0, noise_luma=1.0, noise_chroma=0.5, quality=None if tables else 75, qtables=tables)
    grids = {"blur": (0, BLURS), "noise_luma": (1, NOISES), "noise_chroma": (2, NOISES), "quality": (3, QUALITIES)}
    for _ in range(3):  # coordinate descent
        for name, (which, grid) in grids.items():
            if name == "quality" and tables is not None:
                continue
            best = min(grid, key=lambda v: distance(replace(m, **{name: v}), which))
            m = replace(m, **{name: best})
    log(f"camera estimated from {len(photos)} photos: {m.describe()}")
    return m


def _stats(photos: list[np.ndarray]) -> tuple[float, float, float, float]:
    """(spectral fall-off, flat luma residual, flat chroma residual, blockiness): medians over the photos."""
    rows = np.array([(spectral_falloff(luma(p)), *flat_residual(p), blockiness(luma(p))) for p in photos])
    return tuple(float(v) for v in np.median(rows, axis=0))  # type: ignore[return-value]


def _read_some(files: list[Path], most: int, read) -> list[np.ndarray]:
    out = []
    for f in files[:most]:
        try:
            out.append(read(f))
        except (OSError, ValueError):
            continue
    return out


def _clean_crops(files: list[Path], most: int, read, rng: np.random.Generator) -> np.ndarray:
    """Up to ``most`` clean photos (float [0, 1]) cut to one ``FIT_CROP`` x ``1.5 FIT_CROP`` size (the
    camera's photos are whole images; whole clean photos compare best)."""
    h0, w0 = FIT_CROP, FIT_CROP * 3 // 2
    crops = []
    for img in _read_some(files, 4 * most, read):
        h, w = img.shape[:2]
        if h > w:
            img, (h, w) = img.transpose(1, 0, 2), (w, h)
        if h < h0 or w < w0:
            continue
        i, j = (h - h0) // 2, (w - w0) // 2
        crops.append(img[i:i + h0, j:j + w0].astype(np.float32) / 255.0)
        if len(crops) == most:
            break
    if not crops:
        raise DataError(f"--clean-hr: no clean photo of at least {w0}x{h0} px to fit the camera with")
    return np.stack(crops)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lr", action="append", required=True, help="a camera's photos (repeat for several)")
    ap.add_argument("--clean", required=True, help="clean photos to make candidate LR from")
    args = ap.parse_args()
    clean = sorted(p for p in Path(args.clean).iterdir() if p.is_file())
    for folder in args.lr:
        print(f"{folder}: ", end="", flush=True)
        fit_camera(sorted(p for p in Path(folder).iterdir() if p.is_file()), clean)


if __name__ == "__main__":
    main()

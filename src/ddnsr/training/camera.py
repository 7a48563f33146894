"""What a camera's own photos say about its degradation, and LR made from clean HR to match it.

Used by ``ddnsr train --degradation camera`` (the adaptation path's default, ``--from``): R learns from
pairs (:meth:`CameraModel.degrade` (HR), HR) instead of D's output. Three cheap estimates from the
``--real-lr`` photos, the last two matched against the ``--clean-hr`` photos taken through the same
pipeline (RealSR's "Impressionism" and the JPEG literature; docs/adapt.md has the evidence):

* **JPEG**: the camera's own quantisation tables and chroma subsampling when its files are JPEGs;
  otherwise the quality and subsampling whose re-encoding changes the decoded photos least (a decoded
  JPEG re-encoded with its own settings is nearly a fixed point: the "JPEG ghost"), or none when no
  setting stands out (a camera that does not compress).
* **Sharpening** (in-camera unsharp masking): the overshoot beside strong edges, against the same
  statistic of clean photos put through the pairs' blur (:meth:`CameraModel.middle_blur`), x1/4, unsharp
  masks of several amounts and that JPEG.
* **Noise patches** (the noise injection of Ji et al., "Real-World Super-Resolution via Kernel Estimation
  and Noise Injection", NTIRE 2020): the camera's own noise, cut from flat :data:`NOISE_PATCH` px squares
  of its photos (half that in small photos that have too few), each minus its fitted plane per channel,
  is added to the synthetic LR before the JPEG, so R sees the camera's real noise: its colour, grain size
  and the way the camera's processing shaped it.
  A patch is put where the LR's brightness is near the patch's own, as noise depends on brightness.
* **Luma noise**: the 10th percentile of the spread of 8 x 8 luma blocks (the flattest parts of the
  photos), matched the same way (with the patches in the pipeline: the Gaussian is what they miss). The
  two are fitted in turn, as each raises the other's statistic.
* **Blur**: how soft the strong edges are (the share of a step's height outside its steepest pixel),
  matched the same way over isotropic Gaussians before the x1/4; the fits are made in turn, as blur,
  sharpening and noise each move the others' statistics.

Each pair draws its own setting around the estimate (an anisotropic Gaussian from a typical optics range,
widened when the blur estimate says the camera is softer: :meth:`CameraModel.blur_range`; sharpening and
noise scaled at random), so R learns a neighbourhood of the camera rather than one exact setting.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, JpegImagePlugin
from scipy import ndimage, signal

BLOCK = 8
_QUALITIES = range(30, 96)  # the JPEG ghost's candidates, each judged against the qualities _GHOST_STEP away
_GHOST_STEP = 5
_SUBSAMPLINGS = (0, 1, 2)  # Pillow's 4:4:4, 4:2:2, 4:2:0
_DIP = (2.0, 1.3)  # the JPEG ghost's dip: error this many times under the coarser / finer quality
_SHARPEN_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
_NOISE_GRID = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
_BLUR_GRID = (0.3, 0.6, 1.0, 1.4, 1.8, 2.2, 2.8, 3.5)  # HR px: the isotropic blurs the estimate tries
_BLUR = (0.6, 1.4)  # HR px: the range of sigma each pair draws for a typical camera (along; across up to it)
_BLUR_MARGIN = 0.6  # HR px: a camera read softer than _BLUR[1] + this draws up to its estimate minus this
_MIN_EDGES = 200  # strong steps needed to read the blur off the photos (else the typical 1 px is kept)
_MAX_SIDE = 512  # estimates read at most a 512 x 512 crop of each photo (aligned to the JPEG grid)
NOISE_PATCH = 32  # LR px: the side of a noise patch (the adaptation's 32 px LR crops get one each, or four of 16 px)
_MAX_PATCHES = 512
_PATCH_SHARE = 0.5  # the flatter half of the squares that pass the tests for flatness


@dataclass
class JpegSetting:
    """How the camera compresses: Pillow ``save`` arguments (``qtables`` from its files, or ``quality``)."""

    subsampling: int
    quality: int | None = None
    qtables: list[list[int]] | None = None

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """``H x W x 3`` uint8 -> the same after an encode/decode round trip with this setting."""
        buf = io.BytesIO()
        kw = {"qtables": self.qtables} if self.qtables else {"quality": self.quality}
        Image.fromarray(rgb).save(buf, "JPEG", subsampling=self.subsampling, **kw)
        buf.seek(0)
        return np.asarray(Image.open(buf).convert("RGB"))

    def describe(self) -> str:
        source = "the camera's own tables" if self.qtables else f"quality {self.quality}"
        return f"JPEG {source}, {('4:4:4', '4:2:2', '4:2:0')[self.subsampling]}"


@dataclass(frozen=True, eq=False)
class NoisePatches:
    """The camera's noise, cut from flat squares of its photos: ``noise`` N x P x P x 3 float32 (0..255
    scale, zero mean per channel) and ``level`` N float32 (each square's mean luma, 0..255)."""

    noise: np.ndarray
    level: np.ndarray

    def describe(self) -> str:
        spread = float(np.median(self.noise.std(axis=(1, 2)).mean(axis=1)))
        return f"{len(self.noise)} noise patches of {self.noise.shape[1]} px (median std {spread:.1f}/255)"

    def field(self, rgb: np.ndarray, rng: np.random.Generator, choices: int = 8) -> np.ndarray:
        """Noise for an h x w x 3 image (0..255): a grid of P x P cells, each a patch (randomly flipped
        and turned) whose level is the nearest to the cell's mean luma among ``choices`` drawn at random,
        scaled by a draw in [0.75, 1.25]. Returns h x w x 3 float32."""
        h, w = rgb.shape[:2]
        size = self.noise.shape[1]
        out = np.zeros((h, w, 3), np.float32)
        luma = _luma(rgb)
        for top in range(0, h, size):
            for left in range(0, w, size):
                cell = luma[top: top + size, left: left + size]
                drawn = rng.integers(0, len(self.noise), choices)
                pick = drawn[np.argmin(np.abs(self.level[drawn] - cell.mean()))]
                patch = np.rot90(self.noise[pick], rng.integers(0, 4))
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
                out[top: top + size, left: left + size] = patch[: cell.shape[0], : cell.shape[1]]
                out[top: top + size, left: left + size] *= rng.uniform(0.75, 1.25)
        return out

    def save(self, path: Path) -> None:
        """Write to ``path`` (.npz, atomically)."""
        from ddnsr.files import atomic_write

        atomic_write(path, lambda f: np.savez_compressed(f, noise=self.noise.astype(np.float16), level=self.level))

    @classmethod
    def load(cls, path: Path) -> NoisePatches:
        with np.load(path) as data:
            return cls(noise=data["noise"].astype(np.float32), level=data["level"].astype(np.float32))


def noise_patches(images: list[np.ndarray], sizes: tuple[int, ...] = (NOISE_PATCH, NOISE_PATCH // 2),
                  ceiling: float = np.inf) -> NoisePatches | None:
    """The noise of H x W x 3 photos (0..255), cut at the first of ``sizes`` at which at least 8 squares
    are flat (small photos, a 120 x 80 px phone thumbnail, rarely hold a flat 32 px square but often a
    16 px one); None when no size gives 8."""
    for size in sizes:
        found = _patches_of_size(images, size, ceiling)
        if found is not None:
            return found
    return None


def _patches_of_size(images: list[np.ndarray], size: int, ceiling: float) -> NoisePatches | None:
    """Every ``size`` px square on a grid that is flat (at most 1% of its values within 2 of the ends of
    the range; after a plane is fitted per channel, a luma residual spread of at most ``ceiling`` and every
    channel :func:`_flat`: no edge, not even one of colour alone, no texture that changes), the flattest
    :data:`_PATCH_SHARE` of those by residual spread, at most :data:`_MAX_PATCHES` spread over them. None
    when fewer than 8 squares are flat."""
    noise, level, spread = [], [], []
    for im in images:
        squares = _tiles(np.asarray(im, np.float64), size)
        squares = squares[((squares <= 2) | (squares >= 253)).mean(axis=(1, 2, 3)) <= 0.01]
        for sq, res in zip(squares, _minus_plane(squares), strict=True):
            sd = _luma(res).std()
            if sd <= ceiling and all(_flat(res[..., c]) for c in range(3)):
                noise.append(res.astype(np.float32))
                level.append(_luma(sq).mean())
                spread.append(sd)
    if len(noise) < 8:
        return None
    order = np.argsort(spread)[: max(8, int(len(spread) * _PATCH_SHARE))]
    order = order[np.linspace(0, len(order) - 1, min(len(order), _MAX_PATCHES)).round().astype(int)]
    return NoisePatches(noise=np.stack([noise[i] for i in order]),
                        level=np.array([level[i] for i in order], np.float32))


def _flat(res: np.ndarray) -> bool:
    """Whether one channel's residual (P x P, a plane taken off) looks like noise: fine-grained (the mean
    square of neighbour differences at least 1/20 of twice its variance: white noise 1, grain a few px wide
    about 0.2, one step across the square about 1/P), and even (its 8 x 8 sub-blocks have means within
    one spread of 0 and spreads within a factor 2.5 of each other: no edge, no texture that changes)."""
    sd = res.std()
    if sd < 1e-6:
        return True
    diffs = np.concatenate([np.diff(res, axis=0).ravel(), np.diff(res, axis=1).ravel()])
    sub = _tiles(res, BLOCK).reshape(-1, BLOCK**2)
    sub_sd = sub.std(axis=1)
    return (float(np.mean(diffs**2)) >= 0.1 * sd**2 and np.abs(sub.mean(axis=1)).max() <= sd
            and sub_sd.max() <= 2.5 * max(sub_sd.min(), 0.1))


def _tiles(arr: np.ndarray, size: int) -> np.ndarray:
    """H x W (x C) -> N x size x size (x C): the whole size x size squares of a grid, row by row (the
    remainder at the right and bottom left out)."""
    h, w = (d - d % size for d in arr.shape[:2])
    rest = arr.shape[2:]
    grid = arr[:h, :w].reshape(h // size, size, w // size, size, *rest).swapaxes(1, 2)
    return grid.reshape(-1, size, size, *rest)


def _minus_plane(tiles: np.ndarray) -> np.ndarray:
    """N x P x P (x C) tiles, each (per channel) minus its least-squares plane a + b y + c x."""
    size = tiles.shape[1]
    yy, xx = np.mgrid[:size, :size]
    design = np.stack([np.ones(size * size), yy.ravel(), xx.ravel()], axis=1)
    flat = tiles.reshape(len(tiles), size * size, int(np.prod(tiles.shape[3:])))
    return (flat - design @ (np.linalg.pinv(design) @ flat)).reshape(tiles.shape)


@dataclass(frozen=True)
class CameraModel:
    """The estimate: the camera's JPEG setting (or None), its in-camera sharpening (unsharp mask amount,
    radius 1.5 LR px), its luma noise (standard deviation, 0..255 scale, as it reaches the file), its blur
    (the sigma of an isotropic Gaussian in HR px before the bicubic x1/4) and its noise patches
    (:class:`NoisePatches`, or None: Gaussian luma noise alone)."""

    jpeg: JpegSetting | None
    sharpen: float = 0.0
    noise: float = 0.0
    blur: float = 1.0
    patches: NoisePatches | None = dataclasses.field(default=None, compare=False, repr=False)

    def as_plain(self) -> dict:
        """JSON-ready form without the patches (RUN/camera.json); :meth:`from_plain` reads it back."""
        plain = dataclasses.asdict(dataclasses.replace(self, patches=None))
        plain.pop("patches")
        return plain

    @classmethod
    def from_plain(cls, plain: dict, patches: NoisePatches | None = None) -> CameraModel:
        jpeg = JpegSetting(**plain["jpeg"]) if plain.get("jpeg") else None
        return cls(jpeg=jpeg, sharpen=float(plain["sharpen"]), noise=float(plain["noise"]),
                   blur=float(plain.get("blur", 1.0)), patches=patches)  # camera.json before blur: 1 px

    def describe(self) -> str:
        jpeg = self.jpeg.describe() if self.jpeg else "no JPEG"
        text = f"{jpeg}; blur {self.blur:.2f} px; sharpening {self.sharpen:.2f}; luma noise {self.noise:.1f}/255"
        return text + (f"; {self.patches.describe()}" if self.patches is not None else "")

    def degrade(self, hr: torch.Tensor, rng: np.random.Generator, scale: int = 4) -> torch.Tensor:
        """N x 3 x H x W clean HR in [0, 1] -> N x 3 x H/scale x W/scale LR, 8-bit values in [0, 1]. Each
        pair gets its own draw around the estimate (:meth:`make`), so R does not learn one exact setting."""
        out = []
        low, high = self.blur_range()
        for img in hr.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy():
            blur = rng.uniform(low, high)
            out.append(self.make(img, blur=(blur, rng.uniform(low, blur), rng.uniform(0, 180)),
                                 sharpen=self.sharpen * rng.uniform(0.8, 1.2),
                                 noise=self.noise * rng.uniform(0.5, 1.0), rng=rng, scale=scale))
        batch = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(hr.device, torch.float32)
        return batch.contiguous(memory_format=torch.channels_last)

    def blur_range(self) -> tuple[float, float]:
        """The sigmas (HR px) the pairs draw: :data:`_BLUR`, reaching up to the estimate minus
        :data:`_BLUR_MARGIN` when that is softer. Only widened, never moved, and kept under the estimate:
        it reads the clean photos' content too (0.6-0.75 px high on BSD100 cameras against Urban100-rich
        references), a real lens read at 2 px still did best on pairs of 0.6-1.4, and too much assumed
        blur draws halos where too little leaves an output a little soft (docs/adapt.md, "Blur")."""
        return _BLUR[0], max(_BLUR[1], self.blur - _BLUR_MARGIN)

    def middle_blur(self) -> float:
        """The middle of :meth:`blur_range` (HR px): the isotropic blur at which the estimate fits the
        sharpening and noise and the self-check makes its pairs, so both see the pairs' own blur."""
        return sum(self.blur_range()) / 2

    def make(self, hr: np.ndarray, blur: tuple[float, float, float], sharpen: float, noise: float,
             rng: np.random.Generator, scale: int = 4) -> np.ndarray:
        """One LR image: H x W x 3 float HR in [0, 1] -> blur (sigma along, across in HR px, angle in
        degrees), bicubic x1/scale, then :meth:`finish`; h x w x 3 float32 of 8-bit values in [0, 1]."""
        return self.finish(downscale(hr, blur, scale), sharpen, noise, rng)

    def finish(self, lr: np.ndarray, sharpen: float, noise: float, rng: np.random.Generator) -> np.ndarray:
        """h x w x 3 float LR (0..255) -> + luma noise, unsharp mask, + the camera's noise patches, the
        camera's JPEG; float32 in [0, 1]."""
        if noise > 0:
            lr = lr + rng.normal(0.0, noise, (*lr.shape[:2], 1))
        img = Image.fromarray(np.clip(lr + 0.5, 0, 255).astype(np.uint8))
        if sharpen > 0.05:
            img = img.filter(ImageFilter.UnsharpMask(radius=1.5, percent=round(100 * sharpen), threshold=0))
        rgb = np.asarray(img)
        if self.patches is not None:
            field = self.patches.field(rgb.astype(np.float32), rng)
            rgb = np.clip(rgb + field + 0.5, 0, 255).astype(np.uint8)
        if self.jpeg is not None:
            rgb = self.jpeg.apply(rgb)
        return rgb.astype(np.float32) / 255


def downscale(hr: np.ndarray, blur: tuple[float, float, float], scale: int = 4) -> np.ndarray:
    """H x W x 3 float HR in [0, 1] -> blurred (sigma along, across in HR px, angle), 8-bit, bicubic
    x1/scale: h x w x 3 float64 on the 0..255 scale."""
    arr = anisotropic_blur(hr * 255, *blur) if blur[0] > 0 else hr * 255
    img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((hr.shape[1] // scale, hr.shape[0] // scale), Image.BICUBIC), np.float64)


def anisotropic_blur(arr: np.ndarray, sigma_u: float, sigma_v: float, angle: float) -> np.ndarray:
    """H x W x 3 float blurred by a 2-D Gaussian (sigma ``sigma_u`` along ``angle`` degrees, ``sigma_v``
    across), edges reflected. Wide kernels go through the FFT (the same result to 1e-12; a sigma of 3 px
    costs 20x less than direct convolution)."""
    radius = int(np.ceil(3 * max(sigma_u, sigma_v)))
    if sigma_u == sigma_v:  # the same kernel, separable
        return np.stack([ndimage.gaussian_filter(arr[..., c], sigma_u, mode="reflect", radius=radius)
                         for c in range(3)], axis=-1)
    yy, xx = np.mgrid[-radius: radius + 1, -radius: radius + 1].astype(np.float64)
    t = np.deg2rad(angle)
    along, across = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    k = np.exp(-0.5 * ((along / sigma_u) ** 2 + (across / sigma_v) ** 2))
    k /= k.sum()
    if radius < 5:
        return np.stack([ndimage.convolve(arr[..., c], k, mode="reflect") for c in range(3)], axis=-1)
    padded = np.pad(arr, ((radius, radius), (radius, radius), (0, 0)), mode="symmetric")  # = ndimage's reflect
    return signal.oaconvolve(padded, k[..., None], mode="valid", axes=(0, 1))


def estimate_camera(photos: list[Path], clean: list[Path], max_photos: int = 32,
                    with_patches: bool = True) -> CameraModel:
    """Estimate a camera from its photos (image files) against clean HR photos (image files, the
    reference content): JPEG from the files or the pixels, the noise patches (``with_patches``), then the
    sharpening whose edge overshoot, the Gaussian noise whose flat-block spread and the blur whose edge
    softness match the camera's when the clean photos are taken through the same pipeline (blur, bicubic
    x1/4, noise, sharpening, the patches, that JPEG); the sharpening and noise at the blur the pairs are
    made at (:meth:`CameraModel.middle_blur`), the blur at each candidate. At most ``max_photos`` of each,
    spread evenly."""
    photos, clean = _spread(photos, max_photos), _spread(clean, max_photos)
    real = [_read_crop(p) for p in photos]
    jpeg = _jpeg_from_files(photos) or _jpeg_from_pixels(real[:8])
    real_arrays = [np.asarray(im, np.float32) for im in real]
    overshoot, spread, softness = _overshoot(real_arrays), _flat_spread(real_arrays), _softness(real_arrays)
    # a square much busier than the flattest blocks is texture, not noise (the ceiling keeps it out)
    patches = noise_patches(real_arrays, ceiling=max(3 * spread, 4.0)) if with_patches else None
    base = CameraModel(jpeg=jpeg, patches=patches)

    @functools.lru_cache(maxsize=2)  # the clean photos at one blur: read again per blur, to keep memory low
    def lr_at(blur: float) -> tuple[np.ndarray, ...]:
        return tuple(downscale(np.asarray(_read_crop(p, 4 * _MAX_SIDE), np.float32) / 255,
                               (blur, blur, 0.0)).astype(np.float32) for p in clean)

    def reference(blur: float, sharpen: float, noise: float) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        return [base.finish(im, sharpen, noise, rng) * 255 for im in lr_at(blur)]

    blur, sharpen, noise = 1.0, 0.0, 0.0
    for _ in range(2):  # each statistic moves with the other settings: each is fitted given the others
        # sharpening and noise at the blur the pairs are made at (not the reading: a sharp reading with
        # bicubic's own overshoot would leave the pairs, made softer, with too little sharpening)
        at = dataclasses.replace(base, blur=blur).middle_blur()
        sharpen = _match(overshoot, [(a, _overshoot(reference(at, a, noise))) for a in _SHARPEN_GRID])
        noise = _match(spread, [(n, _flat_spread(reference(at, sharpen, n))) for n in _NOISE_GRID])
        if softness is not None:
            blur = _match(softness, [(b, _softness(reference(b, sharpen, noise)) or 0.0) for b in _BLUR_GRID])
    return dataclasses.replace(base, sharpen=sharpen, noise=noise, blur=blur)


def _spread(paths: list[Path], count: int) -> list[Path]:
    if len(paths) <= count:
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]


def _match(value: float, curve: list[tuple[float, float]]) -> float:
    """The setting at which an increasing statistic ``curve`` [(setting, statistic)] reaches ``value``
    (linear between grid points, the ends outside)."""
    settings, stats = zip(*curve, strict=True)
    return float(np.interp(value, np.maximum.accumulate(stats), settings))


def _edge_profiles(images: list[np.ndarray]) -> np.ndarray:
    """Luma profiles across the strong steps of H x W x 3 images (0..255): at each step between
    neighbours (rows and columns, > 25 levels), the 8 pixels from 3 before to 4 after it, turned so that
    the step rises, where the far pixels differ by at least 20 levels; N x 8 float64."""
    profiles = [np.zeros((0, 8))]
    for im in images:
        y = _luma(im)
        for arr in (y, y.T):
            d = arr[:, 1:] - arr[:, :-1]
            rows, cols = np.nonzero(np.abs(d) > 25)
            keep = (cols >= 3) & (cols + 5 < arr.shape[1])
            rows, cols = rows[keep], cols[keep]
            prof = arr[rows[:, None], cols[:, None] + np.arange(-3, 5)] * np.sign(d[rows, cols])[:, None]
            profiles.append(prof[prof[:, -1] - prof[:, 0] >= 20])
    return np.concatenate(profiles)


def _overshoot(images: list[np.ndarray]) -> float:
    """Mean edge overshoot of H x W x 3 images (0..255): at each strong step (:func:`_edge_profiles`), how
    far the 4 pixels on each side reach beyond the far pixel of their side, over the step's height. Blur
    and bicubic give a floor; sharpening halos raise it."""
    prof = _edge_profiles(images)
    if not len(prof):
        return 0.0
    lo, hi = prof[:, :4], prof[:, 4:]
    over = (hi.max(axis=1) - hi[:, -1]) + (lo[:, 0] - lo.min(axis=1))
    return float(np.mean(over / (prof[:, -1] - prof[:, 0])))


def _softness(images: list[np.ndarray]) -> float | None:
    """Mean softness of the strong steps of H x W x 3 images (0..255) (:func:`_edge_profiles`): 1 minus
    the largest one-pixel rise over the step's height (0: the whole step in one pixel; blur spreads it,
    sharpening steepens it). None with fewer than :data:`_MIN_EDGES` steps (nothing to read)."""
    prof = _edge_profiles(images)
    if len(prof) < _MIN_EDGES:
        return None
    return float(np.mean(1 - np.diff(prof, axis=1).max(axis=1) / (prof[:, -1] - prof[:, 0])))


def _flat_spread(images: list[np.ndarray]) -> float:
    """The 10th percentile, over all 8 x 8 luma blocks of H x W x 3 images (0..255) that do not touch
    the ends of the range, of the block's standard deviation about its fitted plane: mostly noise."""
    spreads = []
    for im in images:
        blocks = _tiles(_luma(im), BLOCK)
        if not len(blocks):
            continue
        ok = (blocks.min(axis=(1, 2)) > 2) & (blocks.max(axis=(1, 2)) < 253)
        spreads.append(_minus_plane(blocks)[ok].std(axis=(1, 2)))
    values = np.concatenate(spreads) if spreads else np.zeros(0)
    return float(np.percentile(values, 10)) if len(values) else 0.0  # 0: no block in range


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _read_crop(path: Path, side: int = _MAX_SIDE) -> Image.Image:
    """The photo as RGB, its centre cut to at most ``side`` x ``side`` at a multiple-of-16 offset (the JPEG
    grid kept), then to multiples of 4."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    x0, y0 = max(0, (w - side) // 32 * 16), max(0, (h - side) // 32 * 16)
    x1, y1 = min(w, x0 + side), min(h, y0 + side)
    return rgb.crop((x0, y0, x1 - (x1 - x0) % 4, y1 - (y1 - y0) % 4))


def _jpeg_from_files(paths: list[Path]) -> JpegSetting | None:
    """The most common (tables, subsampling) among the photos that are JPEG files, else None."""
    found: Counter = Counter()
    for path in paths:
        with Image.open(path) as im:
            if im.format != "JPEG" or not getattr(im, "quantization", None):
                continue
            tables = tuple(tuple(im.quantization[k]) for k in sorted(im.quantization))
            found[(tables, JpegImagePlugin.get_sampling(im))] += 1
    if not found:
        return None
    (tables, sampling), _ = found.most_common(1)[0]
    return JpegSetting(subsampling=max(sampling, 0), qtables=[list(t) for t in tables])


def _jpeg_from_pixels(photos: list[Image.Image]) -> JpegSetting | None:
    """The quality and subsampling of the JPEG encoder the photos went through, read from their pixels
    (the "JPEG ghost"); None if they show none.

    The quality: re-encoding at the camera's own quality leaves the luma almost unchanged, while any
    other quality re-quantises it. So the luma error of re-encoding (at 4:4:4: luma does not depend on
    the subsampling) is scanned over every quality, and the camera's is the one with the least error
    among the clear dips: under half the error :data:`_GHOST_STEP` qualities coarser, and under 1/1.3 of
    the error at some quality up to that many finer. The curve of an uncompressed photo only falls, so
    it has no dip. (Until 2026-12-07 the RGB error on a grid of 5 with the finer quality 5 above alone:
    at quality 90-94 the dip falls between grid points and the chroma's re-subsampling fills it, so a
    clean camera's JPEG 92 read as none.)

    The subsampling is then the one, at that quality, whose first re-encoding changes the photos least
    against how much a second re-encoding changes the result: the camera's own setting is nearly
    idempotent already, while a coarser subsampling removes chroma detail the photos have and a finer
    one moves the chroma onto a new block grid, once (``tools/estimate_check.py --jpeg``: the
    subsampling right in all 180 cases, quality 40-95 at 4:4:4, 4:2:2 and 4:2:0).
    (Until 2026-12-07 the coarsest within twice the least RGB error, which read saturated colour edges
    at quality 92 4:2:0 as 4:4:4: re-subsampling them is not idempotent, and at that quality the luma
    error no longer hides it.)"""
    arrays = [np.asarray(im, np.float64) for im in photos]

    @functools.cache
    def luma(quality: int) -> float:
        setting = JpegSetting(subsampling=0, quality=quality)
        return float(np.mean([np.mean(_luma(setting.apply(im.astype(np.uint8)) - im) ** 2) for im in arrays]))

    def settles(quality: int, subsampling: int) -> float:
        setting = JpegSetting(subsampling=subsampling, quality=quality)
        once = [setting.apply(im.astype(np.uint8)).astype(np.float64) for im in arrays]
        twice = [setting.apply(im.astype(np.uint8)) for im in once]
        first = np.mean([np.mean((a - b) ** 2) for a, b in zip(once, arrays, strict=True)])
        second = np.mean([np.mean((a - b) ** 2) for a, b in zip(twice, once, strict=True)])
        return float((first + 0.01) / (second + 0.01))  # 0.01: both 0 for a 4:4:4 photo of flat colours

    dips = [q for q in _QUALITIES if luma(q) < luma(q - _GHOST_STEP) / _DIP[0]
            and any(luma(q) < luma(q + k) / _DIP[1] for k in range(1, _GHOST_STEP + 1))]
    if not dips:
        return None
    quality = min(dips, key=luma)
    subsampling = min(_SUBSAMPLINGS, key=lambda s: settles(quality, s))
    return JpegSetting(subsampling=subsampling, quality=quality)

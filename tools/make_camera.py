"""Make an unseen "camera" from clean photos: blur, x4 down, noise, in-camera sharpening, JPEG.

    python tools/make_camera.py --camera phone-a --clean ../shared/data/clean-hr --out /tmp/phone-a \\
        --count 40 --held-out 8

writes ``OUT/lr`` (the camera's photos to adapt on: the first count - held_out images), and for the last
``held_out`` images ``OUT/test-lr`` (degraded the same way) and ``OUT/test-hr`` (their ground truth, cropped
to 4x the LR size), so ``ddnsr evaluate --lr OUT/test-lr --hr OUT/test-hr`` scores a model on photos the
adaptation never saw. Each image is seeded by its index. The cameras (:data:`CAMERAS`) differ the way
phones and compacts do:

* ``gauss`` (the docs/adapt.md camera of 2026-12-02): Gaussian blur 1.2, bicubic x1/4, Gaussian noise
  3/255, JPEG 75;
* ``phone-a``: anisotropic blur (1.6 x 0.7 px at 30 degrees), bicubic x1/4, signal-dependent luma noise
  (shot + read noise), JPEG 70 with 4:2:0 chroma;
* ``phone-b``: mild blur 0.8, area x1/4, low-frequency chroma noise (blotches 4 px wide), an in-camera
  unsharp mask (halos), JPEG 85 4:2:0;
* ``compact``: blur 1.0, bicubic x1/4, luma and chroma noise, strong sharpening, JPEG 60 4:2:0;
* ``soft``: a cheap lens and strong noise reduction: blur 2.2, bicubic x1/4, little noise, JPEG 80 4:2:0
  (blur outside the 0.6-1.4 px the adaptation drew before it estimated blur);
* ``sharp``: a clean camera: blur 0.8, bicubic x1/4, noise 0.8/255, JPEG 92 4:2:0 (bicubic is strong here,
  so a model gains little fidelity over it).
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from ddnsr.training.camera import anisotropic_blur  # the same rotated Gaussian the estimate draws
from ddnsr.training.data import list_images  # the images a training run would read from the folder


@dataclass(frozen=True)
class Camera:
    """A camera's pipeline; noise levels are on the 0..255 scale."""

    blur: tuple[float, float, float] = (1.2, 1.2, 0.0)  # sigma along, sigma across, angle (degrees)
    down: str = "bicubic"  # "bicubic" or "area"
    noise: float = 3.0  # Gaussian noise on every channel
    shot: float = 0.0  # signal-dependent luma noise: sigma^2 = shot * value + read^2
    read: float = 0.0
    chroma: float = 0.0  # low-frequency chroma noise (Gaussian, blurred by chroma_size)
    chroma_size: float = 2.0
    sharpen: float = 0.0  # unsharp mask amount (radius 1.5 LR px): halos
    quality: int = 75
    subsampling: int = 2  # Pillow: 0 = 4:4:4, 2 = 4:2:0


CAMERAS = {
    "gauss": Camera(subsampling=-1),  # Pillow's default subsampling, as the first proof camera had
    "phone-a": Camera(blur=(1.6, 0.7, 30.0), noise=0.0, shot=0.6, read=1.5, quality=70),
    "phone-b": Camera(blur=(0.8, 0.8, 0.0), down="area", noise=1.0, chroma=4.0, chroma_size=4.0, sharpen=0.8,
                      quality=85),
    "compact": Camera(blur=(1.0, 1.0, 0.0), noise=2.0, chroma=2.5, sharpen=1.5, quality=60),
    "soft": Camera(blur=(2.2, 2.2, 0.0), noise=1.5, quality=80),
    # a clean, sharp camera (little noise, light JPEG): bicubic is strong, so fidelity is hard to gain
    "sharp": Camera(blur=(0.8, 0.8, 0.0), noise=0.8, quality=92),
}


def degrade(hr: Image.Image, seed: int, camera: Camera | str = "gauss") -> Image.Image:
    """RGB HR (W x H, multiples of 4) -> the camera's LR (W/4 x H/4) as a decoded JPEG."""
    cam = CAMERAS[camera] if isinstance(camera, str) else camera
    rng = np.random.default_rng(seed)
    w, h = hr.size
    arr = anisotropic_blur(np.asarray(hr, dtype=np.float64), *cam.blur)
    blurred = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    lr = blurred.resize((w // 4, h // 4), Image.BICUBIC if cam.down == "bicubic" else Image.BOX)
    arr = np.asarray(lr, dtype=np.float64)
    arr = arr + rng.normal(0.0, cam.noise, arr.shape) if cam.noise else arr
    if cam.shot or cam.read:  # luma noise, the same on every channel
        sigma = np.sqrt(cam.shot * arr.mean(axis=-1, keepdims=True) + cam.read ** 2)
        arr = arr + sigma * rng.normal(0.0, 1.0, arr.shape[:2] + (1,))
    if cam.chroma:  # blotchy colour noise: blurred noise on two colour-difference axes
        n = ndimage.gaussian_filter(rng.normal(0.0, 1.0, arr.shape[:2] + (2,)), (cam.chroma_size,) * 2 + (0,))
        n *= cam.chroma / max(n.std(), 1e-9)
        arr = arr + np.stack([n[..., 0], -0.5 * (n[..., 0] + n[..., 1]), n[..., 1]], axis=-1)
    img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if cam.sharpen:
        img = img.filter(ImageFilter.UnsharpMask(radius=1.5, percent=int(100 * cam.sharpen), threshold=0))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=cam.quality, subsampling=cam.subsampling)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def load_hr(path: Path) -> Image.Image:
    """A clean photo as RGB, cropped at its bottom / right to a multiple of 4 (the camera's x1/4)."""
    hr = Image.open(path).convert("RGB")
    w, h = hr.size
    return hr.crop((0, 0, w - w % 4, h - h % 4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--camera", choices=sorted(CAMERAS), default="gauss")
    p.add_argument("--clean", required=True, help="folder of clean HR photos")
    p.add_argument("--out", required=True, help="output folder (lr/, test-lr/, test-hr/)")
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--held-out", type=int, default=8)
    args = p.parse_args()
    files = list_images([args.clean])[: args.count]
    out = Path(args.out)
    for sub in ("lr", "test-lr", "test-hr"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        hr = load_hr(f)
        lr = degrade(hr, seed=i, camera=args.camera)
        held = i >= len(files) - args.held_out
        lr.save(out / ("test-lr" if held else "lr") / f"{f.stem}.png")
        if held:
            hr.save(out / "test-hr" / f"{f.stem}.png")
    print(f"{out}: camera {args.camera}, {len(files) - args.held_out} photos in lr/, {args.held_out} held-out pairs")


if __name__ == "__main__":
    main()

"""Make an unseen "camera" from clean photos: blur, x4 bicubic down, noise, JPEG.

    python tools/make_camera.py --clean /work/shared/data/clean-hr --out /tmp/camera --count 40 --held-out 8

writes ``OUT/lr`` (the camera's photos to adapt on: the first count - held_out images), and for the last
``held_out`` images ``OUT/test-lr`` (degraded the same way) and ``OUT/test-hr`` (their ground truth, cropped
to 4x the LR size), so ``ddnsr evaluate --lr OUT/test-lr --hr OUT/test-hr`` scores a model on photos the
adaptation never saw. Pipeline per image (seeded by its index): Gaussian blur sigma 1.2, bicubic x1/4
(Pillow, antialiased), Gaussian noise sigma 3/255, JPEG quality 75.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def degrade(hr: Image.Image, seed: int, blur: float = 1.2, noise: float = 3.0, quality: int = 75) -> Image.Image:
    """RGB HR (W x H, multiples of 4) -> the camera's LR (W/4 x H/4) as a decoded JPEG."""
    w, h = hr.size
    lr = hr.filter(ImageFilter.GaussianBlur(blur)).resize((w // 4, h // 4), Image.BICUBIC)
    arr = np.asarray(lr, dtype=np.float64)
    arr = arr + np.random.default_rng(seed).normal(0.0, noise, arr.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", required=True, help="folder of clean HR photos")
    p.add_argument("--out", required=True, help="output folder (lr/, test-lr/, test-hr/)")
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--held-out", type=int, default=8)
    args = p.parse_args()
    files = sorted(f for f in Path(args.clean).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)[: args.count]
    out = Path(args.out)
    for sub in ("lr", "test-lr", "test-hr"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        hr = Image.open(f).convert("RGB")
        w, h = hr.size
        hr = hr.crop((0, 0, w - w % 4, h - h % 4))
        lr = degrade(hr, seed=i)
        held = i >= len(files) - args.held_out
        lr.save(out / ("test-lr" if held else "lr") / f"{f.stem}.png")
        if held:
            hr.save(out / "test-hr" / f"{f.stem}.png")
    print(f"{out}: {len(files) - args.held_out} camera photos in lr/, {args.held_out} held-out pairs")


if __name__ == "__main__":
    main()

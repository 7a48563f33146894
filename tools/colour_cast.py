"""The colour cast of models on a folder of photos, as the bundled-model test measures it.

    python tools/colour_cast.py --model track1 --model RUN/reconstruction.safetensors --lr PHOTOS [--label NAME ...]

Each photo is upscaled by each model (``ddnsr upscale``'s defaults) and the output, averaged back over 4 x 4
blocks, is compared with the photo (:func:`ddnsr.metrics.color.colour_cast`). Printed per model: the mean cast
over the photos per R/G/B channel and the largest |cast| of one photo, on the 0..255 scale (the bundled-model
test holds the mean within 2/255 on the real LR photos).
"""

from __future__ import annotations

import argparse

import numpy as np

from ddnsr import Upscaler
from ddnsr.imageio import list_images, read_image
from ddnsr.metrics.color import colour_cast


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="a bundled name or a model file (repeatable)")
    p.add_argument("--label", action="append", help="a name per --model for the table")
    p.add_argument("--lr", required=True, help="a folder of photos")
    args = p.parse_args()
    labels = args.label or args.model
    if len(labels) != len(args.model):
        raise SystemExit("--label: one per --model")
    photos = [read_image(path).rgb[..., :3] for path in list_images(args.lr)]
    print(f"{len(photos)} photos of {args.lr}; cast of the output averaged over 4 x 4 blocks, 0..255\n")
    print("| model | mean cast R / G / B | worst photo |\n| --- | --- | ---: |")
    for label, model in zip(labels, args.model, strict=True):
        up = Upscaler.load(model)
        casts = np.array([colour_cast(up.upscale_array(rgb), rgb) for rgb in photos])
        mean = casts.mean(axis=0)
        print(f"| {label} | {mean[0]:+.2f} / {mean[1]:+.2f} / {mean[2]:+.2f} | {np.abs(casts).max():.1f} |")


if __name__ == "__main__":
    main()

"""The camera estimate against the truth, on the synthetic cameras of tools/make_camera.py (docs/adapt.md).

    python tools/estimate_check.py [--cameras gauss,phone-a,phone-b,compact,soft] [--content bsd100,urban100]
        [--clean ../shared/data/clean-hr] [--work /tmp/estimate-check] [--jpeg]

For each content (the clean photos whose names start with it: the first 32 of BSD100, the first 24 of
Urban100) and each camera: the photos are taken through the camera (as ``make_camera.py`` does, seeded by
their index, written once to WORK/CAMERA-CONTENT/), then ``estimate_camera`` reads them against the other
clean photos (what ``ddnsr train --clean-hr`` would be given: the rest of the folder, both contents mixed).
Prints one markdown row per camera: the true blur, sharpening and JPEG beside the estimate's, and the blur
range the training pairs then draw. Takes 15-40 s a camera on 2 cores.

``--jpeg`` checks the JPEG ghost alone (photos that are not JPEG files) over qualities and subsamplings:
the first 8 photos of each content through each camera with its JPEG replaced by each of
:data:`JPEG_CASES` (quality, Pillow subsampling; None: quality 100 at 4:4:4), the setting read from the
pixels against the truth (quality within 1; none expected over 95, the last quality the ghost tries).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from make_camera import CAMERAS, degrade, load_hr

from ddnsr.training.camera import _jpeg_from_pixels, estimate_camera
from ddnsr.training.data import list_images

HERE = Path(__file__).resolve().parent
COUNT = {"bsd100": 32, "urban100": 24}
JPEG_CASES = [(85, 2), (85, 0), (60, 0), (60, 2), (40, 2), (50, 2), (75, 2), (95, 2), (70, 1), (None, 0),
              (92, 2), (90, 0), (93, 1), (88, 2), (97, 2)]


def camera_photos(files: list[Path], camera: str, out: Path) -> list[Path]:
    """The camera's LR photos of ``files`` in ``out`` (made once; seeded by index as make_camera.py)."""
    if not out.is_dir():
        tmp = out.with_name(out.name + ".part")
        tmp.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(files):
            degrade(load_hr(f), seed=i, camera=camera).save(tmp / f"{f.stem}.png")
        tmp.rename(out)
    return sorted(out.iterdir())


def jpeg_rows(files: list[Path], content: str, cameras: list[str]) -> int:
    """Print a row per camera and JPEG case (the ghost on ``files``' first 8 photos); the number wrong."""
    hrs = [load_hr(f) for f in files[:8]]
    wrong = 0
    for camera in cameras:
        for quality, subsampling in JPEG_CASES:
            # None: quality 100 at 4:4:4, as near to no JPEG as make_camera.py's pipeline gets
            cam = dataclasses.replace(CAMERAS[camera], quality=quality or 100, subsampling=subsampling)
            photos = [degrade(h, i, cam) for i, h in enumerate(hrs)]
            est = _jpeg_from_pixels(photos)
            truth = None if quality is None or quality > 95 else (quality, subsampling)
            got = (est.quality, est.subsampling) if est else None
            ok = got == truth or (got and truth and abs(got[0] - truth[0]) <= 1 and got[1] == truth[1])
            wrong += not ok
            print(f"| {content} | {camera} | {truth or 'none'} | {got or 'none'} | {'' if ok else 'wrong'} |",
                  flush=True)
    return wrong


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", default=",".join(CAMERAS))
    p.add_argument("--content", default="bsd100,urban100")
    p.add_argument("--clean", type=Path, default=HERE.parent.parent / "shared" / "data" / "clean-hr")
    p.add_argument("--work", type=Path, default=Path("/tmp/estimate-check"))
    p.add_argument("--jpeg", action="store_true", help="check the JPEG ghost alone over JPEG_CASES")
    args = p.parse_args()
    every = list_images([args.clean])
    if args.jpeg:
        print("| content | camera | true (quality, subsampling) | read | |\n| --- | --- | --- | --- | --- |")
        wrong = sum(jpeg_rows([f for f in every if f.name.startswith(content)], content, args.cameras.split(","))
                    for content in args.content.split(","))
        print(f"\n{wrong} wrong")
        return
    print("| content | camera | true blur (HR px) | estimate | pairs draw | true sharpening | estimate | "
          "true JPEG | estimate | seconds |")
    print("| --- | --- | --- | ---: | --- | ---: | ---: | --- | --- | ---: |")
    for content in args.content.split(","):
        files = [f for f in every if f.name.startswith(content)][: COUNT.get(content, 32)]
        reference = [f for f in every if f not in files]
        for camera in args.cameras.split(","):
            cam = CAMERAS[camera]
            start = time.perf_counter()
            est = estimate_camera(camera_photos(files, camera, args.work / f"{camera}-{content}"), reference)
            blur = f"{cam.blur[0]}" if cam.blur[0] == cam.blur[1] else f"{cam.blur[0]} x {cam.blur[1]}"
            low, high = est.blur_range()
            jpeg = est.jpeg.describe() if est.jpeg else "none"
            print(f"| {content} | {camera} | {blur}{', area' if cam.down == 'area' else ''} | {est.blur:.2f} | "
                  f"{low:.1f}-{high:.2f} | {cam.sharpen} | {est.sharpen:.2f} | {cam.quality} | {jpeg} | "
                  f"{time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()

"""``ddnsr upscale`` (x4 super-resolution of photos) and ``ddnsr degrade`` (HR photos -> realistic LR).

::

    ddnsr upscale INPUT... -o OUTDIR [--model NAME|PATH] [--ext png|jpg|webp|tif] [--suffix S]
    ddnsr degrade INPUT... --reference LR -o OUTDIR [--pairs HRDIR] [--seed N] [--model NAME|PATH]

INPUT: image files and folders (``--recursive`` descends into sub-folders, whose layout is mirrored
under OUTDIR). Each input gives ``OUTDIR/<stem><suffix>.<ext>``. Files are read by :mod:`ddnsr.imageio`
(PNG, JPEG, WebP, BMP, TIFF; 8/16 bit, gray, alpha, palette; EXIF orientation applied, ICC profile
carried to the output). 16-bit inputs give 16-bit PNG / TIFF outputs; gray stays gray; alpha is kept
where the format has it (JPEG gets the image over white, with a warning).

Rules for batches:

* an input that cannot be used (missing, unreadable, empty, not an image, corrupt or truncated, over
  ``--max-pixels``, too small) prints one line on stderr naming it and the reason; the others are still
  processed; the exit status is 1 if any input failed (2 for usage errors, from argparse);
* outputs are written atomically (a temporary file renamed into place), so an interrupted run leaves
  only complete files; an existing output is skipped unless ``--overwrite``, so a rerun continues an
  interrupted batch; an output that would replace an input file is refused (that input fails);
* files inside OUTDIR (or the ``--pairs`` folder) are not taken as inputs when a folder is listed.

``degrade``: HR sides that are not multiples of 4 are cropped at the bottom and right (the D network
needs multiples of 4); ``--pairs HRDIR`` writes that cropped HR under the same name, so that OUTDIR and
HRDIR form a paired training set. The reference (``--reference`` file or folder of real LR photos of
the target camera) for each input is drawn from ``--seed`` and the input's name, and each tile takes a
crop of it at a position drawn from the same seed (mirror-tiled when the photo is smaller than the
tile's LR size): reruns give the same outputs. Single-input D models need no reference.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import ddnsr.imageio as dio
from ddnsr import defaults
from ddnsr.cli import flag_message
from ddnsr.cli import types as t
from ddnsr.errors import DdnsrError, SettingError, one_line
from ddnsr.inference.batch import BatchJob, Plan, check_output_folders, plan_batch, take_shard
from ddnsr.inference.outscale import OutputSize
from ddnsr.inference.tiling import DEFAULT_OVERLAP

OUTPUT_EXTENSIONS = defaults.OUTPUT_FORMATS
#: A small synthetic photo shipped with the package, for ``ddnsr upscale --demo``.
DEMO_IMAGE = Path(__file__).resolve().parent.parent / "assets" / "demo.png"

__all__ = ["OUTPUT_EXTENSIONS", "register", "run_degrade", "run_upscale"]


# ------------------------------------------------------------------------------------------- arguments


def _common(p: argparse.ArgumentParser, *, overlap: int, max_pixels: int, tile_unit: str) -> None:
    from ddnsr.inference.backends import BACKENDS
    from ddnsr.inference.upscaler import DEVICES

    model, precision = defaults.DEFAULT_MODEL, defaults.PRECISION["inference"]
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files and folders")
    p.add_argument("-o", "--output-dir", required=True, type=Path, help="output folder (created)")
    p.add_argument("--model", default=model, help=f"bundled model name or model file (default: {model})")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--ext", choices=OUTPUT_EXTENSIONS, default=OUTPUT_EXTENSIONS[0],
                   help=f"output format (default: {OUTPUT_EXTENSIONS[0]})")
    p.add_argument("--suffix", default="", help="appended to each output's stem (default: none)")
    p.add_argument("--quality", type=t.quality, default=defaults.QUALITY,
                   help=f"JPEG / WebP quality (default: {defaults.QUALITY}; WebP 100: lossless)")
    p.add_argument("--tile", type=t.tile, default=None, metavar="PX",
                   help=f"tile size in {tile_unit} pixels; 0: whole image (default: automatic, bounded memory)")
    p.add_argument("--tile-overlap", type=t.overlap, default=overlap, metavar="PX",
                   help=f"context pixels around each tile (default: {overlap})")
    p.add_argument("--device", choices=DEVICES, default=defaults.DEVICE, help="default: auto (cuda, mps, else cpu)")
    p.add_argument("--precision", choices=("auto", *defaults.PRECISIONS), default=precision,
                   help=f"default: {precision} (the fastest path within 40 dB of fp32 on this device; "
                   "ddnsr info shows it)")
    p.add_argument("--threads", type=t.positive, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="default: auto (the fastest runtime within 40 dB of fp32 here; ddnsr info shows it); "
                   "torch, onnxruntime (CPU, fp32), openvino (CPU) or ncnn (CPU, fp32, R only)")
    p.add_argument("--max-pixels", type=t.non_negative, default=max_pixels,
                   help=f"refuse inputs with more pixels (default: {max_pixels:_}; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--shard", type=t.shard, default=None, metavar="K/N",
                   help="do only the K-th of N disjoint parts of the inputs (1 <= K <= N; for job arrays)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings or summary")
    p.add_argument("-v", "--verbose", action="store_true", help="print the model, device and precision path")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``upscale`` and ``degrade`` to the ``ddnsr`` sub-commands."""
    from ddnsr.inference.upscaler import DEFAULT_DEGRADE_OVERLAP

    p = sub.add_parser(
        "upscale", help="x4 super-resolution of photos (files and folders)",
        description="Upscale photos x4 with a reconstruction network (bundled, from 'ddnsr train', or any "
        "ESRGAN-family RRDBNet x4 weights) into OUTDIR/<stem><suffix>.<ext> (sub-folders mirrored with "
        "--recursive). Existing outputs are skipped, so a rerun continues a batch. Exit status 1 if any input "
        "failed (one line each on stderr), 2 for usage errors.",
    )
    _common(p, overlap=DEFAULT_OVERLAP, max_pixels=defaults.MAX_PIXELS, tile_unit="input")
    p.add_argument("--demo", action="store_true", help=f"also upscale the bundled demo photo ({DEMO_IMAGE.name})")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--outscale", type=t.outscale, default=None, metavar="S",
                      help="final scale in (0, 4]: the x4 result downscaled (Lanczos), as Real-ESRGAN's --outscale")
    size.add_argument("--width", type=t.positive, default=None, metavar="PX",
                      help="final width (the height keeps the aspect), at most 4x the input's")
    size.add_argument("--height", type=t.positive, default=None, metavar="PX",
                      help="final height (the width keeps the aspect), at most 4x the input's")
    _video_arguments(p)
    p.set_defaults(func=run_upscale)

    d = sub.add_parser(
        "degrade", help="HR photos -> realistic LR (x1/4) of the learned camera",
        description="Degrade HR photos x1/4 with a degradation network D, guided by real LR photos of the "
        "target camera (--reference). HR sides are cropped (bottom / right) to multiples of 4. --pairs also "
        "writes the matching cropped HR under the same name: a paired training set.",
    )
    _common(d, overlap=DEFAULT_DEGRADE_OVERLAP, max_pixels=defaults.DECODE_MAX_PIXELS, tile_unit="HR")
    d.add_argument("--reference", default=None, metavar="LR",
                   help="real LR photo, or folder of them (needed unless D is a single-input model)")
    d.add_argument("--pairs", type=Path, default=None, metavar="HRDIR",
                   help="also write each HR image, cropped to multiples of 4, into this folder")
    d.add_argument("--seed", type=int, default=0, help="picks references and crops (default: 0)")
    d.set_defaults(func=run_degrade)


# ---------------------------------------------------------------------------------------------- running


class _Reporter:
    """Progress bars over files (and tiles of big images) and one-line messages on stderr."""

    def __init__(self, command: str, quiet: bool) -> None:
        self.command = command
        self.quiet = quiet
        self.failed = 0
        self._bar = None

    def error(self, line: str) -> None:
        self.failed += 1
        self._print(f"ddnsr {self.command}: error: {line}")

    def warn(self, line: str) -> None:
        if not self.quiet:
            self._print(f"ddnsr {self.command}: warning: {line}")

    def _print(self, text: str) -> None:
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def files(self, jobs: list[BatchJob]) -> Iterator[BatchJob]:
        from tqdm import tqdm

        with tqdm(jobs, desc=self.command, unit="img", disable=self.quiet or not jobs, dynamic_ncols=True,
                  file=sys.stderr) as bar:
            self._bar = None if self.quiet else bar
            try:
                yield from bar
            finally:
                self._bar = None

    @contextmanager
    def tiles(self, name: str) -> Iterator[Callable[[int, int], None]]:
        """A ``progress(done, total)`` callback that shows a bar when an image has several tiles."""
        state: dict[str, object] = {}

        def progress(done: int, total: int) -> None:
            if self.quiet or total <= 1:
                return
            bar = state.get("bar")
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=total, desc=name, unit="tile", leave=False, dynamic_ncols=True, file=sys.stderr)
                state["bar"] = bar
            bar.update(done - bar.n)  # type: ignore[attr-defined]

        try:
            yield progress
        finally:
            bar = state.get("bar")
            if bar is not None:
                bar.close()  # type: ignore[attr-defined]


def _reason(exc: BaseException) -> str:
    """A failed input's line: an image error as it is, a setting named as its flag, anything else with its type."""
    if isinstance(exc, DdnsrError) and exc.settings:
        return flag_message(exc)
    if isinstance(exc, dio.ImageError):
        return str(exc)
    return one_line(exc, typed=True, limit=300)


#: Failures of one input that do not stop the batch (a bug still gives a traceback).
_INPUT_ERRORS = (DdnsrError, OSError, MemoryError)


def _is_input_error(exc: BaseException) -> bool:
    """True for a failure of one input (bad file, no room, out of memory): it is reported, the batch goes on."""
    return isinstance(exc, _INPUT_ERRORS) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _run_batch(command: str, args: argparse.Namespace, plan: Plan,
               process: Callable[[BatchJob, Callable[[int, int], None]], None],
               skip: Callable[[BatchJob], bool]) -> int:
    report = _Reporter(command, args.quiet)
    for line in plan.failures:
        report.error(line)
    written = skipped = 0
    for job in report.files(plan.jobs):
        if not args.overwrite and skip(job):
            skipped += 1
            continue
        with warnings.catch_warnings(record=True) as caught, report.tiles(job.source.name) as progress:
            warnings.simplefilter("always")
            try:
                process(job, progress)
            except Exception as exc:
                if not _is_input_error(exc):
                    raise
                text = _reason(exc)
                report.error(text if text.startswith(str(job.source)) else f"{job.source}: {text}")
            else:
                written += 1
        for w in caught:
            report.warn(" ".join(str(w.message).split()))
    if not args.quiet:
        parts = [f"{written} written to {args.output_dir}"]
        if skipped:
            parts.append(f"{skipped} skipped (output already there; --overwrite replaces)")
        if report.failed:
            parts.append(f"{report.failed} failed")
        print(f"{command}: {', '.join(parts)}", flush=True)
    return 1 if report.failed else 0


def _require_inputs(args: argparse.Namespace) -> bool:
    if args.inputs:
        return True
    print(f"ddnsr {args.command}: error: no INPUT given" + (" (or --demo)" if args.command == "upscale" else ""),
          file=sys.stderr)
    return False


def run_upscale(args: argparse.Namespace) -> int:
    """``ddnsr upscale``: returns the exit status (model and setting errors raise DdnsrError)."""
    from ddnsr.inference.upscaler import Upscaler

    if args.demo:
        args.inputs = [*args.inputs, str(DEMO_IMAGE)]
    if not _require_inputs(args):
        return 2

    up = Upscaler.load(args.model, device=args.device, precision=args.precision, tile=args.tile,
                       threads=args.threads, overlap=args.tile_overlap, backend=args.backend)
    if args.verbose:
        from ddnsr.inference.device import describe

        print(f"ddnsr upscale: {up.name} on {describe(up.device, up.precision)}, backend {up.backend}", file=sys.stderr)
    plan = take_shard(plan_batch(args.inputs, args.output_dir, recursive=args.recursive, ext=args.ext,
                                 suffix=args.suffix, video_ext=args.video_ext), args.shard)
    max_pixels = args.max_pixels or None
    size = OutputSize(args.outscale, args.width, args.height)
    video = _video_runner(up, args) if any(job.video for job in plan.jobs) else None

    def process(job: BatchJob, progress: Callable[[int, int], None]) -> None:
        if job.video and video is not None:
            return video(job)
        up.upscale_file(job.source, job.dest, quality=args.quality, max_pixels=max_pixels, progress=progress,
                        size=size)

    return _run_batch("upscale", args, plan, process, skip=lambda job: job.dest.exists())


class _References:
    """The reference LR photos of ``degrade``: one is drawn per input from the seed and the input's name."""

    def __init__(self, spec: str, recursive: bool, max_pixels: int | None) -> None:
        try:
            self.files = dio.list_images([spec], recursive=recursive)
        except dio.ImageError as exc:
            raise SettingError(f"--reference {exc}") from exc
        if not self.files:
            raise SettingError(f"--reference {spec}: no image files")
        self.max_pixels = max_pixels
        self._read = functools.lru_cache(maxsize=4)(self._read_uncached)

    def _read_uncached(self, path: Path) -> np.ndarray:
        try:
            return dio.read_image(path, max_pixels=self.max_pixels).rgb
        except dio.ImageError as exc:
            raise dio.ImageError(path, f"reference unusable: {exc.reason}") from exc

    def pick(self, key: str, seed: int) -> tuple[np.ndarray, int]:
        """(reference HxWx3 float32, the seed for its crops) for the input named ``key``."""
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))])
        path = self.files[int(rng.integers(len(self.files)))]
        return self._read(path), int(rng.integers(2**31))


def run_degrade(args: argparse.Namespace) -> int:
    """``ddnsr degrade``: returns the exit status (model and setting errors raise DdnsrError)."""
    from ddnsr.inference.upscaler import Degrader

    if not _require_inputs(args):
        return 2
    deg = Degrader.load(args.model, device=args.device, precision=args.precision, tile=args.tile,
                        threads=args.threads, overlap=args.tile_overlap, backend=args.backend)
    check_output_folders(args.inputs, args.output_dir, args.pairs)
    max_pixels = args.max_pixels or None
    references = None
    if deg.needs_reference:
        if args.reference is None:
            raise SettingError("--reference LR is required: this degradation model takes a real LR photo as "
                             "its second input")
        references = _References(args.reference, args.recursive, max_pixels)
    elif args.reference is not None and not args.quiet:
        print("ddnsr degrade: warning: --reference is ignored: this degradation model is single-input",
              file=sys.stderr)
    plan = take_shard(plan_batch(args.inputs, args.output_dir, recursive=args.recursive, ext=args.ext,
                                 suffix=args.suffix, pairs_dir=args.pairs), args.shard)

    def process(job: BatchJob, progress: Callable[[int, int], None]) -> None:
        reference, seed = (None, args.seed) if references is None else references.pick(job.key, args.seed)
        deg.degrade_file(job.source, job.dest, reference, seed=seed, pair=job.pair, quality=args.quality,
                         max_pixels=max_pixels, progress=progress)

    def done(job: BatchJob) -> bool:
        return job.dest.exists() and (job.pair is None or job.pair.exists())

    return _run_batch("degrade", args, plan, process, skip=done)


# ------------------------------------------------------------------ videos (the work is in ddnsr.inference.video)


def _video_arguments(p: argparse.ArgumentParser) -> None:
    from ddnsr.inference.video import CODECS, CONTAINERS, VideoSettings

    video = VideoSettings()  # the defaults' one home (the page writes videos with them too)

    g = p.add_argument_group(
        "videos", "Video inputs (mp4, mkv, mov, webm, avi; recognised by content) give "
        "OUTDIR/<stem><suffix>.<video-ext> with the same time stamps, the audio and subtitle streams copied "
        "untouched, rotation applied. Work is kept in segments in OUTDIR/.<name>.part/: rerunning the same "
        "command after an interruption continues from the last finished segment.")
    g.add_argument("--video-ext", choices=tuple(CONTAINERS), default=video.container,
                   help=f"video container (default: {video.container})")
    g.add_argument("--codec", choices=tuple(CODECS), default=video.codec,
                   help=f"video codec (default: {video.codec}; ffv1 is lossless RGB, in mkv)")
    g.add_argument("--crf", type=t.non_negative, default=None,
                   help="constant quality, lower is better (default: h264 18, h265 20, vp9 31, av1 32)")
    g.add_argument("--frames", action="store_true",
                   help="also write the frames as PNG into OUTDIR/<stem><suffix>.frames/")
    g.add_argument("--start", type=t.seconds, default=0.0, metavar="T", help="begin at T seconds ([HH:]MM:SS too)")
    g.add_argument("--duration", type=t.seconds, default=None, metavar="T", help="do only T seconds")
    g.add_argument("--segment", type=t.seconds, default=video.segment_seconds, metavar="T",
                   help=f"segment length for resuming, cut at key frames (default: {video.segment_seconds:g} seconds)")


def _video_runner(up: object, args: argparse.Namespace) -> Callable[[BatchJob], None]:
    """``run(job)``: one video through :func:`ddnsr.inference.video.upscale_video` with a frames bar."""
    from tqdm import tqdm

    from ddnsr.inference.video import VideoSettings, check_settings, frames_folder, upscale_video

    def settings(job: BatchJob) -> VideoSettings:
        return VideoSettings(codec=args.codec, crf=args.crf, container=args.video_ext, segment_seconds=args.segment,
                             start=args.start, duration=args.duration, max_pixels=args.max_pixels or None,
                             frames_dir=frames_folder(job.dest) if args.frames else None,
                             size=OutputSize(args.outscale, args.width, args.height))

    check_settings(settings(BatchJob(Path("-"), Path("-"), "-")))  # bad settings fail once, before any input

    def run(job: BatchJob) -> None:
        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, initial=done, desc=job.source.name, unit="frame", leave=False,
                           dynamic_ncols=True, file=sys.stderr, disable=args.quiet)
            bar.update(done - bar.n)

        try:
            upscale_video(job.source, job.dest, up, settings(job), progress=progress)
        finally:
            if bar is not None:
                bar.close()

    return run

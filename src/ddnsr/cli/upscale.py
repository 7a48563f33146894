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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import ddnsr.imageio as dio
from ddnsr.errors import DdnsrError, SettingError
from ddnsr.inference.tiling import DEFAULT_OVERLAP

#: Default input size limit for ``upscale``: 64 megapixels in, about a gigapixel (3 GB as 8-bit RGB) out.
UPSCALE_MAX_PIXELS = 64_000_000
OUTPUT_EXTENSIONS = ("png", "jpg", "webp", "tif")
#: A small synthetic photo shipped with the package, for ``ddnsr upscale --demo``.
DEMO_IMAGE = Path(__file__).resolve().parent.parent / "assets" / "demo.png"

__all__ = ["OUTPUT_EXTENSIONS", "UPSCALE_MAX_PIXELS", "register", "run_degrade", "run_upscale"]


# ------------------------------------------------------------------------------------------- arguments


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


#: Smallest tile and tile overlap the command accepts (the library takes any): a 1-pixel tile is all
#: overlap and makes a 40x32 image take minutes; no overlap leaves seams of up to 200/255.
MIN_TILE = 16
MIN_OVERLAP = 8


def _tile(text: str) -> int:
    value = _non_negative(text)
    if 0 < value < MIN_TILE:
        raise argparse.ArgumentTypeError(f"must be 0 (whole image) or at least {MIN_TILE}, got {value}")
    return value


def _overlap(text: str) -> int:
    value = _non_negative(text)
    if value < MIN_OVERLAP:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_OVERLAP} (less leaves seams), got {value}")
    return value


def _shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N (e.g. 2/8), got {text!r}")
    return int(k), int(n)


def _take_shard(plan: _Plan, shard: tuple[int, int] | None) -> _Plan:
    """Keep the K-th of N parts of the jobs: every N-th job by sorted output path, so that N machines
    given the same inputs share them out without overlap and without talking to each other."""
    if shard is None:
        return plan
    k, n = shard
    jobs = sorted(plan.jobs, key=lambda job: job.dest.as_posix())
    plan.jobs = [job for i, job in enumerate(jobs) if i % n == k - 1]
    return plan


def _quality(text: str) -> int:
    value = _positive(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be 1..100, got {value}")
    return value


def _common(p: argparse.ArgumentParser, *, overlap: int, max_pixels: int, tile_unit: str) -> None:
    from ddnsr.inference.backends import BACKENDS
    from ddnsr.inference.upscaler import DEFAULT_MODEL, DEVICES, PRECISIONS

    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files and folders")
    p.add_argument("-o", "--output-dir", required=True, type=Path, help="output folder (created)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"bundled model name or model file (default: {DEFAULT_MODEL})")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--ext", choices=OUTPUT_EXTENSIONS, default="png", help="output format (default: png)")
    p.add_argument("--suffix", default="", help="appended to each output's stem (default: none)")
    p.add_argument("--quality", type=_quality, default=95, help="JPEG / WebP quality (default: 95; WebP 100: lossless)")
    p.add_argument("--tile", type=_tile, default=None, metavar="PX",
                   help=f"tile size in {tile_unit} pixels; 0: whole image (default: automatic, bounded memory)")
    p.add_argument("--tile-overlap", type=_overlap, default=overlap, metavar="PX",
                   help=f"context pixels around each tile (default: {overlap})")
    p.add_argument("--device", choices=DEVICES, default="auto", help="default: auto (cuda, mps, else cpu)")
    p.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto",
                   help="default: auto (the fastest path within 40 dB of fp32 on this device; ddnsr info shows it)")
    p.add_argument("--threads", type=_positive, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="default: auto (the fastest runtime within 40 dB of fp32 here; ddnsr info shows it); "
                   "torch, onnxruntime (CPU, fp32) or openvino (CPU)")
    p.add_argument("--max-pixels", type=_non_negative, default=max_pixels,
                   help=f"refuse inputs with more pixels (default: {max_pixels:_}; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--shard", type=_shard, default=None, metavar="K/N",
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
    _common(p, overlap=DEFAULT_OVERLAP, max_pixels=UPSCALE_MAX_PIXELS, tile_unit="input")
    p.add_argument("--demo", action="store_true", help=f"also upscale the bundled demo photo ({DEMO_IMAGE.name})")
    _video_arguments(p)
    p.set_defaults(func=run_upscale)

    d = sub.add_parser(
        "degrade", help="HR photos -> realistic LR (x1/4) of the learned camera",
        description="Degrade HR photos x1/4 with a degradation network D, guided by real LR photos of the "
        "target camera (--reference). HR sides are cropped (bottom / right) to multiples of 4. --pairs also "
        "writes the matching cropped HR under the same name: a paired training set.",
    )
    _common(d, overlap=DEFAULT_DEGRADE_OVERLAP, max_pixels=dio.DEFAULT_MAX_PIXELS, tile_unit="HR")
    d.add_argument("--reference", default=None, metavar="LR",
                   help="real LR photo, or folder of them (needed unless D is a single-input model)")
    d.add_argument("--pairs", type=Path, default=None, metavar="HRDIR",
                   help="also write each HR image, cropped to multiples of 4, into this folder")
    d.add_argument("--seed", type=int, default=0, help="picks references and crops (default: 0)")
    d.set_defaults(func=run_degrade)


# --------------------------------------------------------------------------------------------- planning


@dataclass
class _Job:
    source: Path
    dest: Path
    key: str  # the input's name relative to its folder input: seeds the reference choice
    pair: Path | None = None
    video: bool = False  # a video file (ddnsr.inference.video)


@dataclass
class _Plan:
    jobs: list[_Job] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line each: "<path>: <reason>"


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _output_folder_problem(inputs: list[str], out_dir: Path, pairs_dir: Path | None) -> str | None:
    """Why the output folders cannot be used with these inputs (None when they can).

    An output folder that is also a folder input is refused: its outputs would be read back as inputs
    by the next run (``a_x4_x4.png``). ``--pairs`` must differ from ``-o`` (each HR copy would replace
    the LR of the same name).
    """
    if pairs_dir is not None and pairs_dir.resolve() == out_dir.resolve():
        return f"--pairs {pairs_dir} is the output folder: each HR copy would replace its LR; choose another folder"
    for item in inputs:
        root = Path(item)
        for flag, folder in (("-o", out_dir), ("--pairs", pairs_dir)):
            if folder is not None and root.is_dir() and folder.resolve() == root.resolve():
                return (f"{flag} {folder} is also an input folder: the next run would read its outputs as "
                        "inputs; choose another output folder")
    return None


def _plan(inputs: list[str], out_dir: Path, *, recursive: bool, ext: str, suffix: str,
          pairs_dir: Path | None = None, video_ext: str | None = None) -> _Plan:
    """Inputs -> jobs (source, destination), with the inputs that fail already here."""
    plan = _Plan()
    found: list[tuple[Path, Path]] = []  # (file, output path relative to the output folder, no extension)
    problem = _output_folder_problem(inputs, out_dir, pairs_dir)
    if problem:
        raise SettingError(problem)
    for item in inputs:
        root = Path(item)
        try:
            files = dio.list_images([root], recursive=recursive)
            if video_ext and root.is_dir():
                files = _with_videos(root, files, recursive)
        except dio.ImageError as exc:
            plan.failures.append(str(exc))
            continue
        except OSError as exc:
            plan.failures.append(f"{root}: cannot list: {exc.strerror or exc}")
            continue
        if root.is_dir():
            # our own outputs in a sub-folder of a folder input are not inputs (a rerun would take them)
            own = [d for d in (out_dir, pairs_dir) if d is not None and d.resolve() != root.resolve()]
            files = [f for f in files if not any(_inside(f, d) for d in own)]
            if not files:
                plan.failures.append(f"{root}: no image files ({', '.join(dio.IMAGE_EXTENSIONS)})")
            found.extend((f, f.relative_to(root).with_suffix("")) for f in files)
        else:
            found.extend((f, Path(f.stem)) for f in files)

    found = list({f.resolve(): (f, rel) for f, rel in reversed(found)}.values())[::-1]  # an input given twice
    inputs_resolved = {f.resolve() for f, _ in found}
    taken: dict[Path, Path] = {}
    for source, rel in found:
        video = bool(video_ext) and _is_video(source)
        name = f"{rel.name}{suffix}.{video_ext if video else ext}"
        dest = out_dir / rel.parent / name
        pair = None if pairs_dir is None else pairs_dir / rel.parent / name
        problem = None
        for target in (dest, pair):
            if target is None:
                continue
            resolved = target.resolve()
            if resolved in inputs_resolved:
                problem = (f"output {target} would replace an input file; refused "
                           "(choose another output folder, --suffix or --ext)")
            elif resolved in taken:
                problem = f"output {target} is also the output of {taken[resolved]}; skipped (rename one of them)"
            if problem:
                break
        if problem:
            plan.failures.append(f"{source}: {problem}")
            continue
        taken[dest.resolve()] = source
        if pair is not None:
            taken[pair.resolve()] = source
        plan.jobs.append(_Job(source, dest, rel.as_posix(), pair, video))
    return plan


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

    def files(self, jobs: list[_Job]) -> Iterator[_Job]:
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
    if isinstance(exc, dio.ImageError):
        return str(exc)
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: Failures of one input that do not stop the batch (a bug still gives a traceback).
_INPUT_ERRORS = (DdnsrError, OSError, MemoryError)


def _is_input_error(exc: BaseException) -> bool:
    """True for a failure of one input (bad file, no room, out of memory): it is reported, the batch goes on."""
    return isinstance(exc, _INPUT_ERRORS) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _run_batch(command: str, args: argparse.Namespace, plan: _Plan,
               process: Callable[[_Job, Callable[[int, int], None]], None], skip: Callable[[_Job], bool]) -> int:
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


def _check_output_dirs(*folders: Path | None) -> None:
    for folder in folders:
        if folder is not None and folder.exists() and not folder.is_dir():
            raise SettingError(f"{folder}: exists and is not a folder")


def _output_depth(loaded: dio.LoadedImage, dest: Path) -> type:

    return np.uint16 if loaded.bit_depth == 16 and dio.output_format(dest) in ("PNG", "TIFF") else np.uint8


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
    plan = _take_shard(_plan(args.inputs, args.output_dir, recursive=args.recursive, ext=args.ext,
                             suffix=args.suffix, video_ext=args.video_ext), args.shard)
    _check_output_dirs(args.output_dir)
    max_pixels = args.max_pixels or None
    video = _video_runner(up, args) if any(job.video for job in plan.jobs) else None

    def process(job: _Job, progress: Callable[[int, int], None]) -> None:
        if job.video and video is not None:
            return video(job)
        up.upscale_file(job.source, job.dest, quality=args.quality, max_pixels=max_pixels, progress=progress)

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
    from ddnsr.inference.upscaler import Degrader, crop_to_multiple

    if not _require_inputs(args):
        return 2
    deg = Degrader.load(args.model, device=args.device, precision=args.precision, tile=args.tile,
                        threads=args.threads, overlap=args.tile_overlap, backend=args.backend)
    _check_output_dirs(args.output_dir, args.pairs)
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
    plan = _take_shard(_plan(args.inputs, args.output_dir, recursive=args.recursive, ext=args.ext,
                             suffix=args.suffix, pairs_dir=args.pairs), args.shard)

    def process(job: _Job, progress: Callable[[int, int], None]) -> None:
        loaded = dio.read_image(job.source, max_pixels=max_pixels)
        if loaded.height < 4 or loaded.width < 4:
            raise dio.ImageError(job.source, f"too small: {loaded.width}x{loaded.height} (4x4 at least)")
        reference, seed = (None, args.seed) if references is None else references.pick(job.key, args.seed)
        depth = _output_depth(loaded, job.dest)
        data = deg.degrade_planes(loaded.rgb, reference, loaded.alpha, seed=seed, gray=loaded.is_gray,
                                  dtype=depth, progress=progress)
        dio.write_planes(job.dest, data, icc_profile=loaded.icc_profile, quality=args.quality)
        if job.pair is not None:
            alpha = None if loaded.alpha is None else crop_to_multiple(loaded.alpha)
            dio.write_image(job.pair, crop_to_multiple(loaded.rgb), alpha=alpha, is_gray=loaded.is_gray,
                            bit_depth=16 if depth == np.uint16 else 8, icc_profile=loaded.icc_profile,
                            quality=args.quality)

    def done(job: _Job) -> bool:
        return job.dest.exists() and (job.pair is None or job.pair.exists())

    return _run_batch("degrade", args, plan, process, skip=done)


# ------------------------------------------------------------------ videos (the work is in ddnsr.inference.video)


def _is_video(path: Path) -> bool:
    from ddnsr.imageio.video import is_video

    return is_video(path)


def _with_videos(root: Path, files: list[Path], recursive: bool) -> list[Path]:
    """A folder's image files and its video files, sorted by path."""
    from ddnsr.imageio.video import list_videos

    return sorted([*files, *list_videos(root, recursive)], key=lambda f: f.relative_to(root).parts)


def _seconds(text: str) -> float:
    """``12.5``, ``1:30`` or ``0:01:30.5`` -> seconds (>= 0 and at most :data:`MAX_SECONDS`)."""
    from ddnsr.inference.video import MAX_SECONDS

    try:
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:.0f} seconds (a year), got {text!r}")
    return value


def _video_arguments(p: argparse.ArgumentParser) -> None:
    from ddnsr.inference.video import CODECS, CONTAINERS

    g = p.add_argument_group(
        "videos", "Video inputs (mp4, mkv, mov, webm, avi; recognised by content) give "
        "OUTDIR/<stem><suffix>.<video-ext> with the same time stamps, the audio and subtitle streams copied "
        "untouched, rotation applied. Work is kept in segments in OUTDIR/.<name>.part/: rerunning the same "
        "command after an interruption continues from the last finished segment.")
    g.add_argument("--video-ext", choices=tuple(CONTAINERS), default="mp4", help="video container (default: mp4)")
    g.add_argument("--codec", choices=tuple(CODECS), default="h264",
                   help="video codec (default: h264; ffv1 is lossless RGB, in mkv)")
    g.add_argument("--crf", type=_non_negative, default=None,
                   help="constant quality, lower is better (default: h264 18, h265 20, vp9 31, av1 32)")
    g.add_argument("--frames", action="store_true",
                   help="also write the frames as PNG into OUTDIR/<stem><suffix>.frames/")
    g.add_argument("--start", type=_seconds, default=0.0, metavar="T", help="begin at T seconds ([HH:]MM:SS too)")
    g.add_argument("--duration", type=_seconds, default=None, metavar="T", help="do only T seconds")
    g.add_argument("--segment", type=_seconds, default=10.0, metavar="T",
                   help="segment length for resuming, cut at key frames (default: 10 seconds)")


def _video_runner(up: object, args: argparse.Namespace) -> Callable[[_Job], None]:
    """``run(job)``: one video through :func:`ddnsr.inference.video.upscale_video` with a frames bar."""
    from tqdm import tqdm

    from ddnsr.inference.video import VideoSettings, check_settings, frames_folder, upscale_video

    def settings(job: _Job) -> VideoSettings:
        return VideoSettings(codec=args.codec, crf=args.crf, container=args.video_ext, segment_seconds=args.segment,
                             start=args.start, duration=args.duration, max_pixels=args.max_pixels or None,
                             frames_dir=frames_folder(job.dest) if args.frames else None)

    check_settings(settings(_Job(Path("-"), Path("-"), "-")))  # bad settings fail once, before any input

    def run(job: _Job) -> None:
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

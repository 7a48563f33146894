"""The work behind ``ddnsr serve``: a private folder of uploads and results, and one worker thread.

One :class:`Worker` thread takes jobs from a FIFO queue and runs the network for one job at a time, so
memory stays bounded by one image (plus the one loaded model) however many files are dropped. A job is
an upscale (the exact path of ``ddnsr upscale``: :meth:`ddnsr.inference.upscaler.Upscaler.upscale_file`, with
the defaults of :mod:`ddnsr.defaults`, so the bytes equal the command line's for the same model, precision and
format), a video (``ddnsr upscale``'s path for videos: :func:`ddnsr.inference.video.upscale_video` with the
default :class:`~ddnsr.inference.video.VideoSettings`, progress in frames) or a degradation view (clean HR ->
D's LR next to a real LR photo, by ``ddnsr degrade``'s :meth:`~ddnsr.inference.upscaler.Degrader.degrade_file`).
A job is cancelled between tiles or frames (the progress callback raises once its flag is set) and between
the network's blocks (a forward pre-hook raises); a queued job is simply skipped. A video stopped for any
reason leaves no result and no part folder (the page does not resume).

Everything lives in :class:`Workspace`, a ``mkdtemp`` folder (mode 0700) removed by :meth:`Workspace.close`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ddnsr import defaults
from ddnsr.errors import (
    BusyError,
    DataError,
    DdnsrError,
    ImageError,
    ModelFileError,
    RequestError,
    SettingError,
    one_line,
)
from ddnsr.inference.outscale import OutputSize

if TYPE_CHECKING:
    from ddnsr.inference.video import VideoSettings

#: An image that cannot be read.
_IMAGE_ERRORS = (ImageError,)

__all__ = ["Cancelled", "Job", "Models", "Worker", "Workspace", "model_entry", "safe_name", "video_settings"]

#: Output formats offered in the page (``ddnsr upscale --ext``) and their file extensions.
FORMATS = {name: f".{name}" for name in defaults.OUTPUT_FORMATS}
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class Cancelled(Exception):
    """Raised from a progress callback to stop a job between tiles (or a video's frames)."""


def video_settings(max_pixels: int | None, outscale: float = 4.0, container: str | None = None) -> VideoSettings:
    """How the page writes a video: ``ddnsr upscale``'s defaults (:class:`~ddnsr.inference.video.VideoSettings`':
    codec, CRF, container, segments), the page's pixel limit per frame and its Size (``--outscale``);
    ``container`` replaces the default one (the page falls back to mkv when mp4 cannot hold the streams)."""
    from ddnsr.inference.video import VideoSettings

    settings = VideoSettings(max_pixels=max_pixels, size=OutputSize(outscale))
    return settings if container is None else dataclasses.replace(settings, container=container)


def safe_name(name: str, default: str = "image") -> str:
    """A display / download name: the last path part, spaces as ``_``, only letters and digits of any
    script and ``.-_`` kept, no leading dots or ``_`` (at most 100 characters). Files are stored under
    fixed names; this name is never a path."""
    import re
    import unicodedata

    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/")).rsplit("/", 1)[-1]
    base = re.sub(r"[^\w.-]", "", "_".join(base.split())).lstrip("._")[:100]
    return base or default


# ----------------------------------------------------------------------------------------------- models


def _macs_per_pixel(cfg: dict) -> float:
    """Multiply-adds per input pixel of an RRDBNet x4 with this config (3x3 convolutions everywhere)."""
    nf, gc, nb = int(cfg.get("num_feat", 64)), int(cfg.get("num_grow_ch", 32)), int(cfg.get("num_block", 23))
    rdb = sum((nf + i * gc) * gc for i in range(4)) + (nf + 4 * gc) * nf
    body = nb * 3 * rdb + nf * nf  # the blocks and conv_body, at the input size
    head = 3 * nf
    tail = nf * nf * 4 + nf * nf * 16 + nf * nf * 16 + nf * 3 * 16  # two upsampling convs, conv_hr, conv_last
    return 9.0 * (head + body + tail)


def speed_class(cfg: dict) -> str:
    """'fast' / 'medium' / 'slow' from the work per pixel relative to ESRGAN's full RRDBNet (23 blocks, 64)."""
    ratio = _macs_per_pixel(cfg) / _macs_per_pixel({})
    return "fast" if ratio < 0.25 else "medium" if ratio < 0.6 else "slow"


def model_entry(model_id: str, label: str, path: Path, source: str) -> dict:
    """What the page shows for a reconstruction model file: label, one-line note, speed class, GMAC/MP."""
    import json

    from ddnsr.formats.modelfile import read_metadata

    meta: dict = {}
    if path.suffix == ".safetensors":
        try:
            meta = read_metadata(path)
        except Exception:  # a file we cannot read the header of still gets a plain entry
            meta = {}
    try:
        cfg = json.loads(meta.get("config", "{}")) if meta.get("arch", "RRDBNet") == "RRDBNet" else {}
    except ValueError:
        cfg = {}
    note = " ".join(meta.get("note", "").split())
    return {"id": model_id, "label": label, "source": source, "note": note,
            "speed": speed_class(cfg), "gmac_per_mp": round(_macs_per_pixel(cfg) / 1e3, 0)}


class Models:
    """The reconstruction / degradation models the page may use: bundled, ``--run`` folders, uploads.

    Ids: ``bundled:<name>``, ``run:<n>``, ``upload:<hex>``; each maps to a model file (never a path from
    the page). Uploaded files live in the workspace.
    """

    def __init__(self, runs: list[Path] | tuple[Path, ...] = ()) -> None:
        from ddnsr.formats.modelfile import bundled_models

        self._lock = threading.Lock()
        self.entries: dict[str, dict] = {}
        self.files: dict[str, dict[str, Path]] = {}
        self.runs: dict[str, Path] = {}
        for name, kinds in bundled_models().items():
            self._add(f"bundled:{name}", name, kinds, "bundled")
        for i, run in enumerate(runs):
            kinds = {k: run / f"{k}.safetensors" for k in ("reconstruction", "degradation")
                     if (run / f"{k}.safetensors").is_file()}
            if not kinds:
                raise SettingError(f"--run {run}: holds neither reconstruction.safetensors nor "
                                 "degradation.safetensors (a finished 'ddnsr train' run folder is needed)")
            self._add(f"run:{i}", f"run {run.resolve().name}", kinds, "run")
            self.runs[f"run:{i}"] = run
            self.entries[f"run:{i}"]["run_photos"] = (run / "config.json").is_file() and "degradation" in kinds

    def _add(self, model_id: str, label: str, kinds: dict[str, Path], source: str) -> None:
        with self._lock:
            self.files[model_id] = dict(kinds)
            if "reconstruction" in kinds:
                entry = model_entry(model_id, label, kinds["reconstruction"], source)
            else:
                entry = {"id": model_id, "label": label, "source": source, "note": "", "speed": "", "gmac_per_mp": 0}
            entry["kinds"] = sorted(kinds)
            self.entries[model_id] = entry

    def add_upload(self, path: Path, label: str) -> dict:
        """Check an uploaded reconstruction model file (loads it once) and list it; ModelFileError if unusable."""
        from ddnsr.formats.modelfile import load_model
        from ddnsr.inference.upscaler import check_reconstruction

        try:
            net = load_model(path, kind="reconstruction")
            check_reconstruction(net, label)
        except (DdnsrError, ValueError, OSError, RuntimeError) as exc:
            text = one_line(exc).replace(str(path), label)
            raise ModelFileError(text if text.startswith(label) else f"{label}: {text}") from None
        del net
        model_id = f"upload:{uuid.uuid4().hex[:12]}"
        self._add(model_id, label, {"reconstruction": path}, "upload")
        return self.entries[model_id]

    def path(self, model_id: str, kind: str) -> Path:
        with self._lock:
            kinds = self.files.get(model_id)
        if kinds is None:
            raise RequestError(f"unknown model {model_id!r}")
        if kind not in kinds:
            raise RequestError(f"{self.entries[model_id]['label']}: has no {kind} network")
        return kinds[kind]

    def listing(self) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self.entries.values()]

    def run_photos(self, model_id: str, index: int) -> tuple[Path, Path]:
        """(clean HR, real LR) photo number ``index`` (wrapping) of a ``--run`` folder's training data."""
        if model_id not in self.runs:
            raise RequestError(f"{model_id}: not a run folder given with --run")
        return run_photos(self.runs[model_id], index)


def run_photos(run: Path, index: int) -> tuple[Path, Path]:
    """(clean HR, real LR) file number ``index`` of the data sets a run was trained on (its config.json).

    The records file and data root are the run's own (``--records`` / ``--data-root``), else the defaults of
    ``ddnsr train``. DataError (one line) when the data cannot be found.
    """
    import json

    from ddnsr.training.data import list_images, load_records, resolve_sources, stream_keys
    from ddnsr.training.loop import default_records

    try:
        cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
        records = Path(cfg["records"]) if cfg.get("records") else default_records()
        root = Path(cfg["data_root"]) if cfg.get("data_root") else records.parent
        recs = load_records(records)
        lr_key, hr_key = stream_keys(cfg["source"], cfg["target"])
        lr_files = list_images(resolve_sources(recs, root, lr_key))
        hr_files = list_images(resolve_sources(recs, root, hr_key))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{run.name}: the run's training photos cannot be found ({one_line(exc)})") from None
    if not lr_files or not hr_files:
        raise DataError(f"{run.name}: the run's training data holds no images")
    return hr_files[index % len(hr_files)], lr_files[index % len(lr_files)]


def centre_crop_png(source: Path, dest: Path, size: int, max_pixels: int | None) -> Path:
    """A centred crop of at most ``size`` x ``size`` pixels (sides multiples of 4) saved as 8-bit PNG."""
    import ddnsr.imageio as dio

    loaded = dio.read_image(source, max_pixels=max_pixels)
    h, w = min(size, loaded.height) // 4 * 4, min(size, loaded.width) // 4 * 4
    if h == 0 or w == 0:
        raise ImageError(source, f"too small: {loaded.width}x{loaded.height}")
    y, x = (loaded.height - h) // 2, (loaded.width - w) // 2
    alpha = None if loaded.alpha is None else loaded.alpha[y : y + h, x : x + w]
    dio.write_image(dest, loaded.rgb[y : y + h, x : x + w], alpha=alpha, is_gray=loaded.is_gray, bit_depth=8)
    return dest


# -------------------------------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One file's work. ``state`` goes queued -> running -> done / failed / cancelled."""

    id: str
    kind: str  # "upscale", "video" or "degrade"
    name: str  # the sanitised upload name, shown in the page
    folder: Path
    inputs: dict[str, Path]  # "image" (upscale), "video" (video) or "hr" and "lr" (degrade)
    input_names: dict[str, str]  # the same keys -> the sanitised upload names
    model: str
    precision: str = defaults.PRECISION["inference"]
    fmt: str = defaults.OUTPUT_FORMATS[0]  # a video's container (mp4, ...)
    outscale: float = 4.0  # the page's Size: the x4 result downscaled (ddnsr upscale --outscale)
    state: str = QUEUED
    tiles_done: int = 0
    tiles_total: int = 0
    frames_done: int = 0  # a video's progress (frames_total is known from the upload's scan)
    frames_total: int = 0
    started: float | None = None
    finished: float | None = None
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    size_in: tuple[int, int] | None = None  # (width, height)
    size_out: tuple[int, int] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    seq: int = 0

    def counts(self) -> tuple[int, int]:
        """(done, total) in the job's unit: frames for a video, else tiles."""
        if self.kind == "video":
            return self.frames_done, self.frames_total
        return self.tiles_done, self.tiles_total

    def eta(self) -> float | None:
        """Seconds left, from the time per tile (or frame) so far (None before the first)."""
        done, total = self.counts()
        if self.state != RUNNING or not self.started or done == 0 or total == 0:
            return None
        per_unit = (time.monotonic() - self.started) / done
        return round(per_unit * (total - done), 1)

    def public(self) -> dict:
        """The JSON the page polls."""
        return {
            "id": self.id, "kind": self.kind, "name": self.name, "model": self.model, "precision": self.precision,
            "format": self.fmt, "state": self.state, "tiles_done": self.tiles_done, "tiles_total": self.tiles_total,
            "frames_done": self.frames_done, "frames_total": self.frames_total, "eta_s": self.eta(),
            "error": self.error, "warnings": list(self.warnings),
            "seconds": None if not (self.started and self.finished) else round(self.finished - self.started, 2),
            "size_in": self.size_in, "size_out": self.size_out, "outputs": sorted(self.outputs),
            "download_name": self.download_name(),
        }

    def download_name(self) -> str:
        """``<stem>_x4.<format or container>`` (the name ``ddnsr upscale --suffix _x4`` gives) or ``<name>_lr.png``."""
        from ddnsr.inference.batch import output_name

        if self.kind in ("upscale", "video"):
            return output_name(Path(self.name).stem, "_x4", self.fmt)
        return f"{self.name}_lr.png"


PID_FILE = "server.pid"  # in each workspace: "<pid> <host name>" of the server that owns it


def remove_stale_workspaces(parent: Path) -> list[Path]:
    """Remove ``ddnsr-serve-*`` folders (this user's) whose ``server.pid`` names a process of this machine
    that is gone (a server killed with SIGKILL); folders without that file, or of live servers, stay."""
    removed = []
    for folder in parent.glob("ddnsr-serve-*"):
        try:
            if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
                continue
            pid, host = (folder / PID_FILE).read_text(encoding="utf-8").split()
            os.kill(int(pid), 0)  # raises ProcessLookupError when the process is gone
        except ProcessLookupError:
            if host == socket.gethostname():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except (OSError, ValueError):  # not ours, no pid file, another user's process: keep it
            continue
    return removed


class Workspace:
    """A private temporary folder (mode 0700) for uploads and results; :meth:`close` removes it."""

    def __init__(self, parent: str | None = None) -> None:
        from ddnsr.files import atomic_write

        remove_stale_workspaces(Path(parent or tempfile.gettempdir()))
        self.root = Path(tempfile.mkdtemp(prefix="ddnsr-serve-", dir=parent))
        atomic_write(self.root / PID_FILE, f"{os.getpid()} {socket.gethostname()}\n")
        self._closed = False

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:16]
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        return job_id, folder

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            shutil.rmtree(self.root, ignore_errors=True)


class Worker:
    """One thread that runs queued jobs in order; keeps the last loaded network (one at a time)."""

    def __init__(self, models: Models, *, device: str = "auto", max_pixels: int | None = None,
                 quality: int = 95, tile: int | None = None, max_jobs: int = 200) -> None:
        self.models = models
        self.device = device
        self.max_pixels = max_pixels
        self.quality = quality
        self.tile = tile
        self.max_jobs = max_jobs
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._loaded: tuple[tuple, object] | None = None
        self._running: Job | None = None  # the job in the network: its cancel flag is checked between blocks
        self._thread = threading.Thread(target=self._loop, name="ddnsr-serve-worker", daemon=True)
        self._thread.start()

    # -- the queue

    def submit(self, job: Job) -> Job:
        """Queue a job; BusyError when the queue already holds ``max_jobs`` unfinished jobs."""
        with self._lock:
            waiting = sum(1 for j in self.jobs.values() if j.state not in FINISHED)
            if waiting >= self.max_jobs:
                raise BusyError(f"the queue is full ({self.max_jobs} files waiting); wait or cancel some")
            job.seq = next(self._seq)
            self.jobs[job.id] = job
        self._queue.put(job)
        return job

    def cancel(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        job.cancel.set()
        with self._lock:
            if job.state == QUEUED:
                job.state = CANCELLED
        return job

    def remove(self, job_id: str) -> bool:
        """Forget a finished job and delete its files (False if unknown or still queued / running)."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.state not in FINISHED:
                return False
            del self.jobs[job_id]
        shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def listing(self) -> list[dict]:
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.seq)
        return [j.public() for j in jobs]

    def stop(self, timeout: float = 60.0) -> bool:
        """Cancel everything and end the thread (the running job stops at its next network block);
        False if it is still running after ``timeout`` seconds."""
        for job in list(self.jobs.values()):
            job.cancel.set()
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def idle(self) -> bool:
        return all(j.state in FINISHED for j in list(self.jobs.values()))

    # -- running

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != QUEUED:  # cancelled while waiting
                    continue
                job.state = RUNNING
                job.started = time.monotonic()
                self._running = job
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    {"upscale": self._upscale, "video": self._video, "degrade": self._degrade}[job.kind](job)
                job.warnings = [_public_text(str(w.message), job) for w in caught]
                state = DONE
            except Cancelled:
                state = CANCELLED
            except (*_IMAGE_ERRORS, DdnsrError, ValueError, OSError, MemoryError, RuntimeError) as exc:
                job.error = _message(exc, job)
                state = FAILED
            except Exception as exc:  # a bug: keep serving, show it in the page and on the console
                import traceback

                traceback.print_exc()
                job.error = f"internal error: {one_line(exc)}"
                state = FAILED
            with self._lock:
                self._running = None
                job.finished = time.monotonic()
                job.state = state

    def _progress(self, job: Job) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            if job.kind == "video":
                job.frames_done, job.frames_total = done, total
            else:
                job.tiles_done, job.tiles_total = done, total
            if job.cancel.is_set():
                raise Cancelled

        return progress

    def _network(self, cls_name: str, model_id: str, precision: str):
        """The Upscaler / Degrader for a model, reusing the last one loaded (only one is kept)."""
        from ddnsr.inference import upscaler

        kind = "reconstruction" if cls_name == "Upscaler" else "degradation"
        key = (cls_name, model_id, precision)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the previous network first
            cls = getattr(upscaler, cls_name)
            # the command line's defaults (backend too), so the page writes the bytes ddnsr upscale writes
            net = cls.load(self.models.path(model_id, kind), device=self.device, precision=precision, tile=self.tile)
            add_cancel_points(net, self._check_cancel)
            self._loaded = (key, net)
        return self._loaded[1]

    def _check_cancel(self) -> None:
        job = self._running
        if job is not None and job.cancel.is_set():
            raise Cancelled

    def _upscale(self, job: Job) -> None:
        from ddnsr.imageio import image_size, write_planes

        up = self._network("Upscaler", job.model, job.precision)
        source = job.inputs["image"]
        dest = job.folder / f"result{FORMATS[job.fmt]}"
        if job.cancel.is_set():
            raise Cancelled
        # the command line's path: Upscaler.upscale_file, as ddnsr upscale calls it
        job.size_in = image_size(source)
        data = up.upscale_file(source, dest, quality=self.quality, max_pixels=self.max_pixels,
                               progress=self._progress(job), size=OutputSize(job.outscale))
        job.size_out = (int(data.shape[1]), int(data.shape[0]))
        job.outputs["result"] = dest
        job.outputs["view"] = dest
        if job.fmt == "tif":  # browsers do not show TIFF: an 8-bit PNG of the same pixels for the page
            if data.dtype == np.uint16:
                data = ((data.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
            job.outputs["view"] = write_planes(job.folder / "view.png", data)
        del data
        job.outputs["before"] = self._preview(source, job.folder / "before.png")

    def _video(self, job: Job) -> None:
        """A video by ``ddnsr upscale``'s path (:func:`~ddnsr.inference.video.upscale_video`), cancelled between
        frames; whatever stops it, its part folder goes (the result appears only when complete)."""
        from ddnsr.imageio.video import probe_video
        from ddnsr.inference.video import part_folder, upscale_video

        up = self._network("Upscaler", job.model, job.precision)
        dest = job.folder / f"result.{job.fmt}"
        if job.cancel.is_set():
            raise Cancelled
        try:
            upscale_video(job.inputs["video"], dest, up, video_settings(self.max_pixels, job.outscale, job.fmt),
                          progress=self._progress(job))
        finally:
            shutil.rmtree(part_folder(dest), ignore_errors=True)  # the page does not resume a stopped video
        job.size_out = probe_video(dest).display_size
        job.outputs["result"] = dest
        job.outputs["view"] = dest  # browsers play H.264 in MP4 themselves

    def _preview(self, source: Path, dest: Path) -> Path:
        """An 8-bit PNG of an input for the browser (which may not show TIFF or 16-bit files)."""
        import ddnsr.imageio as dio

        loaded = dio.read_image(source, max_pixels=self.max_pixels)
        dio.write_image(dest, loaded.rgb, alpha=loaded.alpha, is_gray=loaded.is_gray, bit_depth=8,
                        icc_profile=loaded.icc_profile)
        return dest

    def _degrade(self, job: Job) -> None:
        """Clean HR -> D's LR (PNG; ``ddnsr degrade``'s path, Degrader.degrade_file), with 8-bit previews of
        the HR and the real LR."""
        import ddnsr.imageio as dio

        deg = self._network("Degrader", job.model, job.precision)
        reference = dio.read_image(job.inputs["lr"], max_pixels=self.max_pixels).rgb if deg.needs_reference else None
        job.size_in = dio.image_size(job.inputs["hr"])
        data = deg.degrade_file(job.inputs["hr"], job.folder / "degraded.png", reference, seed=0,
                                max_pixels=self.max_pixels, progress=self._progress(job))
        job.outputs["result"] = job.folder / "degraded.png"
        job.size_out = (int(data.shape[1]), int(data.shape[0]))
        job.outputs["hr"] = self._preview(job.inputs["hr"], job.folder / "hr.png")
        job.outputs["lr"] = self._preview(job.inputs["lr"], job.folder / "lr.png")


def add_cancel_points(runner: object, check: Callable[[], None]) -> int:
    """Call ``check`` before each block of the network's ``nn.Sequential`` stacks (RRDBNet's RRDB blocks,
    D's layers), so that a cancel stops a job within one block rather than one tile. ``runner`` is an
    :class:`~ddnsr.inference.upscaler.Upscaler` / ``Degrader``; returns the block count. OpenVINO's and ncnn's
    engines call ``check`` every 50 ms of a tile instead (OpenVINO cancels its request; ncnn, which cannot be
    interrupted, finishes the tile in the background); returns 1 then."""
    from torch import nn

    engine = getattr(runner, "_engine", None)
    if hasattr(engine, "while_running"):  # OpenVINO, ncnn
        engine.while_running = check
        return 1
    net = getattr(engine, "net", None)
    if not isinstance(net, nn.Module):  # another backend: tiles only
        return 0
    blocks = [block for stack in net.modules() if isinstance(stack, nn.Sequential) for block in stack.children()]
    for block in blocks:
        block.register_forward_pre_hook(lambda _module, _inputs: check())
    return len(blocks)


def _public_text(text: str, job: Job) -> str:
    """One line of ``text`` with each stored input's path shown as its upload name and no private folder."""
    for key, path in job.inputs.items():
        text = text.replace(str(path), job.input_names.get(key, job.name))
    return " ".join(text.replace(str(job.folder) + os.sep, "").split())


def _message(exc: BaseException, job: Job) -> str:
    """A one-line message that names the uploaded file, not its place in the private folder."""
    if isinstance(exc, _IMAGE_ERRORS):
        names = {str(p): job.input_names.get(k, job.name) for k, p in job.inputs.items()}
        return f"{names.get(exc.path, Path(exc.path).name)}: {exc.reason}"
    if isinstance(exc, MemoryError):
        return f"{job.name}: out of memory (try a smaller image or a smaller --max-pixels)"
    text = one_line(exc).replace(str(job.folder) + os.sep, "")
    return f"{job.name}: {text}"

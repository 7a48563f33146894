"""The Flask app of ``ddnsr serve``: static page + a small JSON API over :mod:`ddnsr.serve.jobs`.

API (JSON unless said). Every ``/api/`` request needs this start's token (the cookie set by
``/?token=...``, or the header ``X-DDNSR-Token``); every POST / DELETE and the zip also need the header
``X-DDNSR: 1``, which a cross-site form, link or simple cross-origin request cannot send::

    GET    /api/info                 models, precisions, formats, limits
    POST   /api/jobs                 multipart: image (a photo or a video, told apart by content as
                                     ddnsr upscale does), model, precision, format (photos), outscale
                                     -> the queued job (kind "upscale" or "video")
    GET    /api/jobs                 every job with its state and progress (tiles, or a video's frames)
    POST   /api/jobs/<id>/cancel     cancel (queued: at once; running: at the next tile, frame or block)
    DELETE /api/jobs/<id>            forget a finished job and delete its files
    GET    /api/jobs/<id>/<key>      a file of a job: result (add ?download=1), view (what a browser can
                                     show: the result, or a PNG of it for TIFF), before, hr, lr
    GET    /api/results.zip          every finished upscale result (photos and videos), streamed
    POST   /api/models               multipart: file (.safetensors / .pth reconstruction model) -> its entry
    POST   /api/degrade              multipart: hr, lr, model -> a degradation-view job

Progress is polled (``GET /api/jobs`` every half second) rather than streamed with Server-Sent Events:
one request kind for every state, nothing held open in the server's threads, the same calls in the
framework's test client, and tiles take seconds on a CPU, so half a second loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import ipaddress
import os
import re
import secrets
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from flask import Flask, Response, abort, jsonify, redirect, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ddnsr import defaults
from ddnsr.errors import (
    BusyError,
    DdnsrError,
    ImageError,
    LimitError,
    ModelFileError,
    RequestError,
    SettingError,
    one_line,
)
from ddnsr.imageio.video import VIDEO_EXTENSIONS, is_video
from ddnsr.inference.batch import unique_name
from ddnsr.inference.outscale import OutputSize
from ddnsr.serve.jobs import FORMATS, Job, Models, Worker, Workspace, safe_name, video_settings

if TYPE_CHECKING:
    from ddnsr.imageio.video import VideoInfo

__all__ = ["ServeConfig", "create_app", "is_loopback"]

STATIC = Path(__file__).resolve().parent / "static"
IMAGE_EXTENSIONS = defaults.IMAGE_EXTENSIONS
#: The names an upload of /api/jobs may have: images and videos (what it is, is then told by its content).
UPLOAD_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
#: Media types of the video results, by container.
VIDEO_MIMETYPES = {"mp4": "video/mp4", "mkv": "video/x-matroska", "webm": "video/webm", "mov": "video/quicktime"}
#: The container a video result falls back to when the default one cannot hold the source's streams
#: (Matroska holds every codec and subtitle kind; ``ddnsr upscale`` suggests ``--video-ext mkv`` then).
FALLBACK_CONTAINER = "mkv"
MODEL_EXTENSIONS = (".safetensors", ".pth", ".pt")
FORM_SLACK = 64 * 1024  # bytes of a request beyond its files: multipart headers and the small fields
MAX_FORM_PARTS = 100  # files and fields in one request (the page sends at most six)


@dataclass
class ServeConfig:
    """Settings of one server (the ``ddnsr serve`` flags)."""

    host: str = "127.0.0.1"
    model: str = defaults.DEFAULT_MODEL  # the model selected first: a bundled name or a model file
    device: str = defaults.DEVICE
    max_pixels: int | None = defaults.MAX_PIXELS
    max_upload_bytes: int = 100 * 10**6  # one image or video
    max_video_seconds: float | None = defaults.SERVE_MAX_VIDEO_SECONDS  # one video (None: no limit)
    max_model_bytes: int = 500 * 10**6  # one model file
    max_jobs: int = 200
    quality: int = defaults.QUALITY
    tile: int | None = None  # 0: whole image; else at least defaults.MIN_TILE
    runs: list[Path] = field(default_factory=list)
    workdir: str | None = None  # parent of the private folder (default: the system's temp folder)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _precisions(device: str) -> list[str]:
    """The precisions the page offers, the command line's default (``auto``) first."""
    from ddnsr.inference.device import resolve_device

    offered = [p for p in defaults.PRECISIONS if p != "fp16" or resolve_device(device).type != "cpu"]
    return [defaults.PRECISION["inference"], *offered]


def create_app(config: ServeConfig | None = None) -> Flask:
    """The app; ``app.extensions['ddnsr']`` holds its :class:`Worker`, :class:`Workspace` and :class:`Models`.

    Call ``close_app(app)`` (or ``app.extensions['ddnsr'].close()``) to stop the worker and remove the
    private folder.
    """
    config = config or ServeConfig()
    problem = defaults.check_tile(config.tile)
    if problem:
        raise SettingError(f"tile {problem}").named("tile")
    models = Models(config.runs)
    if Path(config.model).is_file():  # a model file named on the command line: checked like an upload
        name = Path(config.model).name
        try:
            default = models.add_upload(Path(config.model), name)["id"]
        except ModelFileError as exc:
            raise ModelFileError(f"--model {config.model}: {str(exc).removeprefix(name + ': ')}") from None
    else:
        default = f"bundled:{config.model}"
        if default not in models.entries:
            names = ", ".join(m.split(":", 1)[1] for m in models.entries if m.startswith("bundled:"))
            raise SettingError(f"--model {config.model}: neither a model file nor a bundled model ({names})")
    state = _State(config, models, default)
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = FORM_SLACK  # requests without files; uploads get their own (_Api.guard)
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    app.extensions["ddnsr"] = state
    _Api(state).register(app)
    return app


def close_app(app: Flask) -> bool:
    """Stop the worker and remove the private folder; False if the running job did not stop."""
    return app.extensions["ddnsr"].close()


class _State:
    def __init__(self, config: ServeConfig, models: Models, default_model: str) -> None:
        self.config = config
        self.models = models
        self.default_model = default_model
        self.workspace = Workspace(config.workdir)
        self.worker = Worker(models, device=config.device, max_pixels=config.max_pixels, quality=config.quality,
                             tile=config.tile, max_jobs=config.max_jobs)
        self.precisions = _precisions(config.device)
        self.token = secrets.token_urlsafe(24)  # every API request needs it (cookie or X-DDNSR-Token header)
        self.cookie = f"ddnsr-token-{hashlib.sha256(self.token.encode()).hexdigest()[:8]}"  # one per server
        # Host names this server answers on 127.0.0.1-like addresses (None: any, when bound elsewhere)
        self.hosts = ({"localhost", "127.0.0.1", "::1", config.host.strip("[]").lower()}
                      if is_loopback(config.host) else None)

    def url(self, base: str) -> str:
        """The page's address with the token, as printed and opened by ``ddnsr serve``."""
        return f"{base}?token={self.token}"

    def close(self) -> bool:
        stopped = self.worker.stop()
        self.workspace.close()
        return stopped


def _error(message: str, status: int = 400):
    return jsonify({"error": message}), status


#: HTTP status of each user-error kind in the page (any other DdnsrError: 400).
STATUS = {LimitError: 413, BusyError: 429}


def _status(exc: DdnsrError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)


def _save_upload(storage, folder: Path, stem: str, allowed: tuple[str, ...], limit: int,
                 what: str) -> tuple[Path, str]:
    """Save one uploaded file under ``folder`` (the name sanitised); RequestError / LimitError if unusable."""
    if storage is None or not storage.filename:
        raise RequestError(f"no {what} file in the request")
    name = safe_name(storage.filename)
    ext = Path(name).suffix.lower()
    if ext not in allowed:
        raise RequestError(f"{name}: not a supported {what} file (use {', '.join(allowed)})")
    path = folder / f"{stem}{ext}"
    storage.save(path)
    size = path.stat().st_size
    if size > limit:
        raise LimitError(f"{name}: {size / 1e6:.1f} MB is over the limit of {limit / 1e6:.0f} MB")
    if size == 0:
        raise RequestError(f"{name}: empty file")
    return path, name


def _check_image_header(path: Path, name: str, max_pixels: int | None) -> tuple[int, int]:
    """(width, height) from the file's header, refusing non-images and too many pixels before decoding."""
    from ddnsr.imageio import image_size

    try:
        width, height = image_size(path)
    except ImageError as exc:
        raise ImageError(name, f"cannot be read ({exc.reason})") from None
    if max_pixels and width * height > max_pixels:
        raise LimitError(f"{name}: {width}x{height} = {width * height:_} pixels is over the limit of "
                            f"{max_pixels:_} (ddnsr serve --max-pixels)")
    return width, height


def has_video_support() -> bool:
    """True when PyAV (``pip install 'ddnsr[video]'``), which reads and writes the videos, is installed."""
    import importlib.util

    return importlib.util.find_spec("av") is not None


def _check_video(path: Path, name: str, outscale: float, max_pixels: int | None,
                 max_seconds: float | None) -> tuple[VideoInfo, int, str]:
    """(probe, frames, container) of an uploaded video, checked as ``upscale_video`` checks it before any work
    (a truncated or corrupt file, frames over the pixel limit) and against the page's duration limit.
    The container is the command line's default, or :data:`FALLBACK_CONTAINER` when that one cannot hold
    the source's streams. ImageError / LimitError (one line, naming the upload) when it cannot be used."""
    from ddnsr.inference.video import check_video

    if not has_video_support():
        raise RequestError(f"{name}: videos need PyAV, which is not installed (pip install 'ddnsr[video]')")
    settings = video_settings(max_pixels, outscale)
    try:
        try:
            info, frames = check_video(path, settings)
        except ImageError as exc:
            if exc.settings != ("container",):
                raise
            settings = video_settings(max_pixels, outscale, FALLBACK_CONTAINER)
            info, frames = check_video(path, settings)
    except ImageError as exc:
        if "max_pixels" in exc.settings:
            raise LimitError(f"{name}: {exc.reason.replace('over max_pixels', 'over the limit of')} "
                             "(ddnsr serve --max-pixels)") from None
        raise ImageError(name, exc.reason) from None
    seconds = max(info.duration or 0.0, frames / float(info.rate or 25))
    if max_seconds and seconds > max_seconds:
        raise LimitError(f"{name}: {seconds:.1f} s of video is over the limit of {max_seconds:g} s per video")
    return info, frames, settings.container


def _video_format() -> dict:
    """How videos are written (``ddnsr upscale``'s defaults), for the page to say."""
    from ddnsr.inference.video import CODECS

    settings = video_settings(None)
    crf = settings.crf if settings.crf is not None else CODECS[settings.codec].crf
    return {"container": settings.container, "codec": settings.codec, "crf": crf, "fallback": FALLBACK_CONTAINER}


def _outscale() -> float:
    """The form's ``outscale`` (the page's Size; default 4): a number in (0, 4], else a RequestError."""
    text = request.form.get("outscale") or "4"
    try:
        value = float(text)
        OutputSize(value)
    except (ValueError, SettingError):
        raise RequestError(f"outscale {text!r} must be a number above 0 and at most 4") from None
    return value


def _choice(value: str | None, allowed, what: str, default: str) -> str:
    value = value or default
    if value not in allowed:
        raise RequestError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")
    return value


class _Api:
    """The page's HTTP API over one :class:`_State`: a method per route, registered by :meth:`register`."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.worker, self.models, self.config = state.worker, state.models, state.config

    def register(self, app: Flask) -> None:
        app.before_request(self.guard)
        app.register_error_handler(RequestEntityTooLarge, self.too_large)
        app.register_error_handler(HTTPException, self.http_error)
        app.register_error_handler(DdnsrError, self.user_error)
        routes = (("/", "GET", self.index), ("/api/info", "GET", self.info),
                  ("/api/jobs", "POST", self.new_job), ("/api/degrade", "POST", self.new_degrade),
                  ("/api/jobs", "GET", self.jobs), ("/api/jobs/<job_id>/cancel", "POST", self.cancel),
                  ("/api/jobs/<job_id>", "DELETE", self.remove), ("/api/jobs/<job_id>/<key>", "GET", self.job_file),
                  ("/api/results.zip", "GET", self.results_zip), ("/api/models", "POST", self.upload_model))
        for rule, method, view in routes:
            app.add_url_rule(rule, view.__name__, view, methods=[method])

    # -- guards and errors -------------------------------------------------------------------------

    def guard(self):
        """Host (400), token (403) and page header (403) checks of every request, then the body limit."""
        if self.state.hosts is not None and _host_name(request.headers.get("Host", "")) not in self.state.hosts:
            return _error("Host not trusted (open the page at 127.0.0.1 or localhost)", 400)
        if request.path.startswith("/api/") and not self.has_token():
            return _error("missing or wrong token: open the address ddnsr serve printed (with ?token=...)", 403)
        if (request.method in ("POST", "DELETE", "PUT") or request.path == "/api/results.zip") and \
                request.headers.get("X-DDNSR") != "1":
            return _error("missing the X-DDNSR: 1 header (requests from other web sites are refused)", 403)
        limit = self.body_limits().get(request.path)
        if limit is not None:  # bytes are counted as they arrive: a chunked body stops here too
            request.max_content_length = limit
        return None

    def body_limits(self) -> dict[str, int]:
        """The most bytes each upload route reads: its files' limits plus :data:`FORM_SLACK`."""
        image, model = self.config.max_upload_bytes, self.config.max_model_bytes
        return {"/api/jobs": image + FORM_SLACK, "/api/degrade": 2 * image + FORM_SLACK,
                "/api/models": model + FORM_SLACK}

    def too_large(self, _exc):
        """413 for a body over its route's limit (the declared length, or the bytes read so far)."""
        what = {"/api/models": "model", "/api/jobs": "image or video"}.get(request.path, "image")
        limit = self.config.max_model_bytes if what == "model" else self.config.max_upload_bytes
        return _error(f"upload too large (limit {limit / 1e6:.0f} MB per {what})", 413)

    def parse_form(self) -> None:
        """Read the whole multipart body now, before any folder exists; LimitError if too many parts."""
        try:
            request.files  # noqa: B018  (parses the body)
        except RequestEntityTooLarge:
            declared, limit = request.content_length, request.max_content_length or 0
            over = declared > limit if declared is not None else getattr(request.stream, "is_exhausted", True)
            if over:  # the bytes, not the parts: too_large answers
                raise
            raise LimitError(f"too many files or fields in one request (at most {MAX_FORM_PARTS} parts), "
                             f"or a field over {request.max_form_memory_size or 0:_} bytes") from None

    def user_error(self, exc: DdnsrError):
        """Every user error of the page: its one line (no private folder in it) and its status (:data:`STATUS`)."""
        root = re.escape(str(self.state.workspace.root) + os.sep)
        message = re.sub(root + r"[0-9a-f]+" + re.escape(os.sep), "", one_line(exc))
        return _error(message, _status(exc))

    def http_error(self, exc: HTTPException):
        if request.path.startswith("/api/"):
            return _error(exc.description or exc.name, exc.code or 500)
        return exc

    # -- the page and what it lists ----------------------------------------------------------------

    def has_token(self) -> bool:
        given = request.headers.get("X-DDNSR-Token") or request.cookies.get(self.state.cookie) or ""
        return hmac.compare_digest(given.encode(), self.state.token.encode())

    def index(self):
        """The page; ``/?token=...`` stores the token in a cookie (this server's only) and drops it from the URL."""
        given = request.args.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), self.state.token.encode()):
                return Response("wrong token: open the address ddnsr serve printed\n", 403, mimetype="text/plain")
            response = redirect("/", 303)
            response.set_cookie(self.state.cookie, self.state.token, httponly=True, samesite="Strict")
            return response
        if not self.has_token():
            return Response("open the address ddnsr serve printed (it ends with ?token=...)\n", 403,
                            mimetype="text/plain")
        return send_file(STATIC / "index.html", max_age=0)

    def info(self):
        config = self.config
        return jsonify({
            "models": self.models.listing(), "default_model": self.state.default_model,
            "precisions": self.state.precisions, "formats": list(FORMATS), "image_extensions": IMAGE_EXTENSIONS,
            "video_extensions": VIDEO_EXTENSIONS if has_video_support() else (), "video_format": _video_format(),
            "model_extensions": MODEL_EXTENSIONS,
            "limits": {"max_upload_bytes": config.max_upload_bytes, "max_model_bytes": config.max_model_bytes,
                       "max_pixels": config.max_pixels, "max_jobs": config.max_jobs,
                       "max_video_seconds": config.max_video_seconds},
        })

    # -- new jobs ----------------------------------------------------------------------------------

    def model_and_precision(self, model_kind: str) -> tuple[str, str]:
        """The form's model (one with a ``model_kind`` network) and precision, or the defaults."""
        state = self.state
        model = _choice(request.form.get("model"), self.models.entries, "model", state.default_model)
        self.models.path(model, model_kind)
        return model, _choice(request.form.get("precision"), state.precisions, "precision", state.precisions[0])

    def new_job(self):
        """An uploaded photo or video (told apart by content, as ``ddnsr upscale`` does) -> a queued job."""
        config = self.config
        self.parse_form()
        with _job_folder(self.state.workspace) as (job_id, folder):
            model, precision = self.model_and_precision("reconstruction")
            path, name = _save_upload(request.files.get("image"), folder, "image", UPLOAD_EXTENSIONS,
                                      config.max_upload_bytes, "image")
            if is_video(path):
                job = self.video_job(job_id, folder, path, name, model, precision)
            else:
                size = _check_image_header(path, name, config.max_pixels)
                fmt = _choice(request.form.get("format"), FORMATS, "format", defaults.OUTPUT_FORMATS[0])
                job = Job(id=job_id, kind="upscale", name=name, folder=folder, inputs={"image": path},
                          input_names={"image": name}, model=model, precision=precision, fmt=fmt, size_in=size,
                          outscale=_outscale())
            self.worker.submit(job)
        return jsonify(job.public()), 201

    def video_job(self, job_id: str, folder: Path, path: Path, name: str, model: str, precision: str) -> Job:
        """The job of an uploaded video, checked now (a broken one or one over a limit is refused at once)."""
        outscale, config = _outscale(), self.config
        stored = path.rename(folder / f"video{path.suffix}")
        info, frames, container = _check_video(stored, name, outscale, config.max_pixels, config.max_video_seconds)
        return Job(id=job_id, kind="video", name=name, folder=folder, inputs={"video": stored},
                   input_names={"video": name}, model=model, precision=precision, fmt=container,
                   size_in=info.display_size, outscale=outscale, frames_total=frames)

    def new_degrade(self):
        self.parse_form()
        if request.form.get("run_photos") == "1":
            return self.submit_run_photos()
        return self.submit_degrade({"hr": "clean HR image", "lr": "real LR image"})

    def submit_degrade(self, files: dict[str, str]):
        """Save the two photos of a degradation view, check them, queue the job (400 / 413 / 429 with a message)."""
        config = self.config
        with _job_folder(self.state.workspace) as (job_id, folder):
            model, precision = self.model_and_precision("degradation")
            inputs, names, sizes = {}, {}, {}
            for key, what in files.items():
                path, name = _save_upload(request.files.get(key), folder, key, IMAGE_EXTENSIONS,
                                          config.max_upload_bytes, what)
                sizes[key] = _check_image_header(path, name, config.max_pixels)
                inputs[key], names[key] = path, name
            job = Job(id=job_id, kind="degrade", name=names["hr"], folder=folder, inputs=inputs, input_names=names,
                      model=model, precision=precision, fmt="png", size_in=sizes["hr"], outscale=_outscale())
            self.worker.submit(job)
        return jsonify(job.public()), 201

    def submit_run_photos(self):
        """A degradation view of a --run folder's own training photos: a 256-pixel crop of clean HR number
        ``index`` and a 64-pixel crop of real LR number ``index`` (the same size as D's output)."""
        from ddnsr.serve.jobs import centre_crop_png

        state, max_pixels = self.state, self.config.max_pixels
        self.parse_form()
        with _job_folder(state.workspace) as (job_id, folder):
            model = _choice(request.form.get("model"), self.models.runs, "run model", "")
            try:
                index = int(request.form.get("index", "0") or 0)
            except ValueError:
                raise RequestError(f"index {request.form.get('index')!r} is not a whole number") from None
            hr_file, lr_file = self.models.run_photos(model, index)
            inputs = {"hr": centre_crop_png(hr_file, folder / "hr.png", 256, max_pixels),
                      "lr": centre_crop_png(lr_file, folder / "lr.png", 64, max_pixels)}
            names = {"hr": safe_name(hr_file.name), "lr": safe_name(lr_file.name)}
            job = Job(id=job_id, kind="degrade", name=names["hr"], folder=folder, inputs=inputs, input_names=names,
                      model=model, precision=_choice(request.form.get("precision"), state.precisions, "precision",
                                                     state.precisions[0]))
            self.worker.submit(job)
        return jsonify(job.public()), 201

    def upload_model(self):
        self.parse_form()
        with _job_folder(self.state.workspace) as (_, folder):
            path, name = _save_upload(request.files.get("file"), folder, "model", MODEL_EXTENSIONS,
                                      self.config.max_model_bytes, "model")
            entry = self.models.add_upload(path, name)
        return jsonify(entry), 201

    # -- the queue and the results -----------------------------------------------------------------

    def jobs(self):
        return jsonify({"jobs": self.worker.listing(), "idle": self.worker.idle()})

    def cancel(self, job_id: str):
        job = self.worker.cancel(job_id)
        return jsonify(job.public()) if job else _error("no such job", 404)

    def remove(self, job_id: str):
        if self.worker.remove(job_id):
            return jsonify({"removed": job_id})
        return _error("no such finished job", 404)

    def job_file(self, job_id: str, key: str):
        job = self.worker.jobs.get(job_id)
        if job is None or key not in job.outputs:
            abort(404, "no such file")
        download = request.args.get("download") == "1"
        if job.kind == "video":  # result and view are the same file
            return send_file(job.outputs[key], as_attachment=download, download_name=job.download_name(),
                             mimetype=VIDEO_MIMETYPES.get(job.fmt), max_age=0)
        name = job.download_name() if key == "result" else f"{Path(job.name).stem}_{key}.png"
        return send_file(job.outputs[key], as_attachment=download, download_name=name, max_age=0)

    def results_zip(self):
        """Every finished upscale result (photos and videos) in one zip, streamed (nothing is written to disk).
        Each file is opened before the answer starts, so a job removed meanwhile is either in it whole or left out."""
        worker = self.worker
        done = [j for j in (worker.jobs.get(e["id"]) for e in worker.listing())
                if j is not None and j.kind in ("upscale", "video") and j.state == "done"]
        entries, used = [], set()
        for job in done:
            try:
                handle = open(job.outputs["result"], "rb")  # noqa: SIM115  (closed by _zip_stream)
            except (OSError, KeyError):  # removed since the listing
                continue
            name = unique_name(job.download_name(), used)
            entries.append((name, handle))
        if not entries:
            return _error("no finished results yet", 404)
        response = Response(_zip_stream(entries), mimetype="application/zip",
                            headers={"Content-Disposition": "attachment; filename=ddnsr-results.zip",
                                     "Cache-Control": "no-store"})
        response.call_on_close(lambda: [handle.close() for _, handle in entries])
        return response


class _Sink(io.RawIOBase):
    """An unseekable file that :class:`zipfile.ZipFile` writes to; :meth:`take` hands over what it got."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _zip_stream(entries: list[tuple[str, BinaryIO]]) -> Iterator[bytes]:
    """The zip of open files, 1 MiB at a time (stored: results are compressed already); closes them."""
    sink = _Sink()
    try:
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zf:
            for name, handle in entries:
                stat = os.fstat(handle.fileno())
                info = zipfile.ZipInfo(name, date_time=time.localtime(stat.st_mtime)[:6])
                info.file_size = stat.st_size  # lets zipfile choose ZIP64 for files over 4 GiB
                with handle, zf.open(info, "w") as out:
                    while chunk := handle.read(1 << 20):
                        out.write(chunk)
                        yield sink.take()
        yield sink.take()
    finally:
        for _, handle in entries:
            handle.close()


def _host_name(header: str) -> str:
    """The host of a Host header, without the port and IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


@contextlib.contextmanager
def _job_folder(workspace: Workspace) -> Iterator[tuple[str, Path]]:
    """A new folder of the workspace, removed again if the block fails (a refused upload leaves nothing)."""
    job_id, folder = workspace.new_folder()
    try:
        yield job_id, folder
    except BaseException:
        _drop(folder)
        raise


def _drop(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)

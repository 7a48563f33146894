"""The Flask app of ``ddnsr serve``: static page + a small JSON API over :mod:`ddnsr.serve.jobs`.

API (JSON unless said; every POST / DELETE needs the header ``X-DDNSR: 1``, which a cross-site form or
a simple cross-origin request cannot send, so another web site cannot queue work on this server)::

    GET    /api/info                 models, precisions, formats, limits
    POST   /api/jobs                 multipart: file, model, precision, format -> the queued job (one file)
    GET    /api/jobs                 every job with its state and progress (the page polls this)
    POST   /api/jobs/<id>/cancel     cancel (queued: at once; running: at the next tile)
    DELETE /api/jobs/<id>            forget a finished job and delete its files
    GET    /api/jobs/<id>/<key>      a file of a job: result (add ?download=1), view (what a browser can
                                     show: the result, or a PNG of it for TIFF), before, hr, lr
    GET    /api/results.zip          every finished upscale result
    POST   /api/models               multipart: file (.safetensors / .pth reconstruction model) -> its entry
    POST   /api/degrade              multipart: hr, lr, model -> a degradation-view job

Progress is polled (``GET /api/jobs`` every half second) rather than streamed with Server-Sent Events:
one request kind for every state, nothing held open in the server's threads, the same calls in the
framework's test client, and tiles take seconds on a CPU, so half a second loses nothing.
"""

from __future__ import annotations

import ipaddress
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, abort, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ddnsr.serve.jobs import _IMAGE_ERRORS, FORMATS, Job, Models, Worker, Workspace, safe_name

__all__ = ["ServeConfig", "create_app", "is_loopback"]

STATIC = Path(__file__).resolve().parent / "static"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MODEL_EXTENSIONS = (".safetensors", ".pth", ".pt")


@dataclass
class ServeConfig:
    """Settings of one server (the ``ddnsr serve`` flags)."""

    host: str = "127.0.0.1"
    model: str = "track1"  # the model selected first: a bundled name or a model file
    device: str = "auto"
    max_pixels: int | None = 16_000_000
    max_upload_bytes: int = 100 * 10**6  # one image
    max_model_bytes: int = 500 * 10**6  # one model file
    max_jobs: int = 200
    quality: int = 95
    tile: int | None = None
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
    from ddnsr.inference.device import resolve_device

    return ["fp32", "bf16"] if resolve_device(device).type == "cpu" else ["fp32", "bf16", "fp16"]


def create_app(config: ServeConfig | None = None) -> Flask:
    """The app; ``app.extensions['ddnsr']`` holds its :class:`Worker`, :class:`Workspace` and :class:`Models`.

    Call ``close_app(app)`` (or ``app.extensions['ddnsr'].close()``) to stop the worker and remove the
    private folder.
    """
    config = config or ServeConfig()
    models = Models(config.runs)
    if Path(config.model).is_file():  # a model file named on the command line: checked like an upload
        default = models.add_upload(Path(config.model), Path(config.model).name)["id"]
    else:
        default = f"bundled:{config.model}"
        if default not in models.entries:
            names = ", ".join(m.split(":", 1)[1] for m in models.entries if m.startswith("bundled:"))
            raise ValueError(f"--model {config.model}: neither a model file nor a bundled model ({names})")
    state = _State(config, models, default)
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = max(config.max_upload_bytes, 2 * config.max_model_bytes) + 64 * 1024
    if is_loopback(config.host):  # refuse DNS-rebinding hosts when only this machine should reach us
        app.config["TRUSTED_HOSTS"] = ["localhost", "127.0.0.1", "[::1]", "::1"]
    app.extensions["ddnsr"] = state
    _routes(app, state)
    return app


def close_app(app: Flask) -> None:
    app.extensions["ddnsr"].close()


class _State:
    def __init__(self, config: ServeConfig, models: Models, default_model: str) -> None:
        self.config = config
        self.models = models
        self.default_model = default_model
        self.workspace = Workspace(config.workdir)
        self.worker = Worker(models, device=config.device, max_pixels=config.max_pixels, quality=config.quality,
                             tile=config.tile, max_jobs=config.max_jobs)
        self.precisions = _precisions(config.device)

    def close(self) -> None:
        self.worker.stop()
        self.workspace.close()


def _error(message: str, status: int = 400):
    return jsonify({"error": message}), status


def _save_upload(state: _State, storage, folder: Path, stem: str, allowed: tuple[str, ...],
                 limit: int, what: str) -> tuple[Path, str]:
    """Save one uploaded file under ``folder`` (the name sanitised); ValueError if unusable."""
    if storage is None or not storage.filename:
        raise ValueError(f"no {what} file in the request")
    name = safe_name(storage.filename)
    ext = Path(name).suffix.lower()
    if ext not in allowed:
        raise ValueError(f"{name}: not a supported {what} file (use {', '.join(allowed)})")
    path = folder / f"{stem}{ext}"
    storage.save(path)
    size = path.stat().st_size
    if size > limit:
        raise OverflowError(f"{name}: {size / 1e6:.1f} MB is over the limit of {limit / 1e6:.0f} MB")
    if size == 0:
        raise ValueError(f"{name}: empty file")
    return path, name


def _check_image_header(path: Path, name: str, max_pixels: int | None) -> tuple[int, int]:
    """(width, height) from the file's header, refusing non-images and too many pixels before decoding."""
    from ddnsr.errors import ImageError
    from ddnsr.imageio import image_size

    try:
        width, height = image_size(path)
    except ImageError as exc:
        raise ValueError(f"{name}: cannot be read ({exc.reason})") from None
    if max_pixels and width * height > max_pixels:
        raise OverflowError(f"{name}: {width}x{height} = {width * height:_} pixels is over the limit of "
                            f"{max_pixels:_} (ddnsr serve --max-pixels)")
    return width, height


def _choice(value: str | None, allowed, what: str, default: str) -> str:
    value = value or default
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")
    return value


def _routes(app: Flask, state: _State) -> None:
    worker, models, config = state.worker, state.models, state.config

    @app.before_request
    def _guard():
        if request.method in ("POST", "DELETE", "PUT") and request.headers.get("X-DDNSR") != "1":
            return _error("missing the X-DDNSR: 1 header (requests from other web sites are refused)", 403)
        return None

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc):
        return _error(f"upload too large (limit {config.max_upload_bytes / 1e6:.0f} MB per image, "
                      f"{config.max_model_bytes / 1e6:.0f} MB per model)", 413)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if request.path.startswith("/api/"):
            return _error(exc.description or exc.name, exc.code or 500)
        return exc

    @app.get("/")
    def index():
        return send_file(STATIC / "index.html", max_age=0)

    @app.get("/api/info")
    def info():
        return jsonify({
            "models": models.listing(), "default_model": state.default_model,
            "precisions": state.precisions, "formats": list(FORMATS), "image_extensions": IMAGE_EXTENSIONS,
            "model_extensions": MODEL_EXTENSIONS,
            "limits": {"max_upload_bytes": config.max_upload_bytes, "max_model_bytes": config.max_model_bytes,
                       "max_pixels": config.max_pixels, "max_jobs": config.max_jobs},
        })

    def submit(kind: str, files: dict[str, str], model_kind: str):
        """Save the named upload fields, check them, queue a job (400 / 413 / 429 with a message)."""
        if (request.content_length or 0) > len(files) * config.max_upload_bytes + 64 * 1024:
            return _error(f"upload too large (limit {config.max_upload_bytes / 1e6:.0f} MB per image)", 413)
        job_id, folder = state.workspace.new_folder()
        try:
            model = _choice(request.form.get("model"), models.entries, "model", state.default_model)
            models.path(model, model_kind)
            precision = _choice(request.form.get("precision"), state.precisions, "precision", "fp32")
            fmt = _choice(request.form.get("format"), FORMATS, "format", "png") if kind == "upscale" else "png"
            inputs, names = {}, {}
            for key, what in files.items():
                path, name = _save_upload(state, request.files.get(key), folder, key, IMAGE_EXTENSIONS,
                                          config.max_upload_bytes, what)
                size = _check_image_header(path, name, config.max_pixels)
                inputs[key], names[key] = path, name
                if key in ("image", "hr"):
                    first_size = size
            job = Job(id=job_id, kind=kind, name=names["image" if kind == "upscale" else "hr"], folder=folder,
                      inputs=inputs, input_names=names, model=model, precision=precision, fmt=fmt,
                      size_in=first_size)
            worker.submit(job)
        except OverflowError as exc:
            _drop(folder)
            return _error(str(exc), 429 if "queue" in str(exc) else 413)
        except ValueError as exc:
            _drop(folder)
            return _error(str(exc))
        return jsonify(job.public()), 201

    @app.post("/api/jobs")
    def new_job():
        return submit("upscale", {"image": "image"}, "reconstruction")

    @app.post("/api/degrade")
    def new_degrade():
        if request.form.get("run_photos") == "1":
            return submit_run_photos()
        return submit("degrade", {"hr": "clean HR image", "lr": "real LR image"}, "degradation")

    def submit_run_photos():
        """A degradation view of a --run folder's own training photos: a 256-pixel crop of clean HR number
        ``index`` and a 64-pixel crop of real LR number ``index`` (the same size as D's output)."""
        from ddnsr.serve.jobs import centre_crop_png

        job_id, folder = state.workspace.new_folder()
        try:
            model = _choice(request.form.get("model"), models.runs, "run model", "")
            index = int(request.form.get("index", "0") or 0)
            hr_file, lr_file = models.run_photos(model, index)
            inputs = {"hr": centre_crop_png(hr_file, folder / "hr.png", 256, config.max_pixels),
                      "lr": centre_crop_png(lr_file, folder / "lr.png", 64, config.max_pixels)}
            names = {"hr": safe_name(hr_file.name), "lr": safe_name(lr_file.name)}
            job = Job(id=job_id, kind="degrade", name=names["hr"], folder=folder, inputs=inputs, input_names=names,
                      model=model, precision=_choice(request.form.get("precision"), state.precisions, "precision",
                                                     "fp32"))
            worker.submit(job)
        except OverflowError as exc:
            _drop(folder)
            return _error(str(exc), 429)
        except (ValueError, *_IMAGE_ERRORS) as exc:
            _drop(folder)
            return _error(str(exc).replace(str(folder), "").strip())
        return jsonify(job.public()), 201

    @app.get("/api/jobs")
    def jobs():
        return jsonify({"jobs": worker.listing(), "idle": worker.idle()})

    @app.post("/api/jobs/<job_id>/cancel")
    def cancel(job_id: str):
        job = worker.cancel(job_id)
        return jsonify(job.public()) if job else _error("no such job", 404)

    @app.delete("/api/jobs/<job_id>")
    def remove(job_id: str):
        if worker.remove(job_id):
            return jsonify({"removed": job_id})
        return _error("no such finished job", 404)

    @app.get("/api/jobs/<job_id>/<key>")
    def job_file(job_id: str, key: str):
        job = worker.jobs.get(job_id)
        if job is None or key not in job.outputs:
            abort(404, "no such file")
        download = request.args.get("download") == "1"
        name = job.download_name() if key == "result" else f"{Path(job.name).stem}_{key}.png"
        return send_file(job.outputs[key], as_attachment=download, download_name=name, max_age=0)

    @app.get("/api/results.zip")
    def results_zip():
        # written into the private folder, not memory (results can be large), removed once sent
        done = [j for j in (worker.jobs.get(e["id"]) for e in worker.listing())
                if j is not None and j.kind == "upscale" and j.state == "done"]
        if not done:
            return _error("no finished results yet", 404)
        _, folder = state.workspace.new_folder()
        path = folder / "results.zip"
        used: set[str] = set()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:  # results are compressed already
            for job in done:
                stem, suffix = Path(job.download_name()).stem, Path(job.download_name()).suffix
                name, n = f"{stem}{suffix}", 1
                while name in used:
                    n += 1
                    name = f"{stem}-{n}{suffix}"
                used.add(name)
                zf.write(job.outputs["result"], name)
        response = send_file(path, mimetype="application/zip", as_attachment=True,
                             download_name="ddnsr-results.zip", max_age=0)
        response.call_on_close(lambda: _drop(folder))
        return response

    @app.post("/api/models")
    def upload_model():
        _, folder = state.workspace.new_folder()
        try:
            path, name = _save_upload(state, request.files.get("file"), folder, "model", MODEL_EXTENSIONS,
                                      config.max_model_bytes, "model")
            entry = models.add_upload(path, name)
        except OverflowError as exc:
            _drop(folder)
            return _error(str(exc), 413)
        except ValueError as exc:
            _drop(folder)
            return _error(str(exc))
        return jsonify(entry), 201


def _drop(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)

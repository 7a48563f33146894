"""``ddnsr serve``: the local web page (drop photos, pick a model, watch, compare, download).

::

    ddnsr serve [--host 127.0.0.1] [--port 8000] [--open] [--max-pixels N] [--run RUN_DIR]...

Listens on 127.0.0.1 by default (only this machine); another ``--host`` prints a warning, since anyone who
can reach the port can then use the page. Uploads and results live in a private temporary folder that
is removed when the command ends (Ctrl+C). See docs/serve.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from ddnsr import defaults
from ddnsr.cli import types as t
from ddnsr.errors import SettingError

__all__ = ["register", "run_serve"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``ddnsr`` sub-commands."""
    from ddnsr.inference.device import DEVICES

    model, max_pixels = defaults.DEFAULT_MODEL, defaults.MAX_PIXELS

    p = sub.add_parser(
        "serve", help="a local web page for upscaling photos (in the browser, on this machine)",
        description="Serve a web page on this machine: drop photos, pick a model, follow the progress, compare "
        "before and after, download the results. Photos never leave the machine; files live in a private "
        "temporary folder removed at exit.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; another address warns)")
    p.add_argument("--port", type=t.port, default=8000, help="port (default: 8000; 0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--model", default=model,
                   help=f"model selected first: a bundled name or a model file (default: {model})")
    p.add_argument("--run", action="append", type=Path, default=[], metavar="RUN_DIR",
                   help="a 'ddnsr train' run folder whose models the page offers (repeatable)")
    p.add_argument("--max-pixels", type=t.non_negative, default=max_pixels,
                   help=f"refuse images with more pixels (default: {max_pixels:_}, as ddnsr upscale; 0: no limit)")
    p.add_argument("--max-upload-mb", type=t.positive, default=100,
                   help="largest upload of one image or video (default: 100 MB)")
    p.add_argument("--max-video-seconds", type=t.seconds, default=defaults.SERVE_MAX_VIDEO_SECONDS, metavar="T",
                   help=f"longest video the page takes (default: {defaults.SERVE_MAX_VIDEO_SECONDS:g} s; 0: no limit)")
    p.add_argument("--max-model-mb", type=t.positive, default=500, help="largest model upload (default: 500 MB)")
    p.add_argument("--device", choices=DEVICES, default=defaults.DEVICE, help="default: auto (cuda, mps, else cpu)")
    p.add_argument("--tile", type=t.tile, default=None, metavar="PX",
                   help="tile size in input pixels; 0: whole image (default: automatic, bounded memory)")
    p.add_argument("--threads", type=t.positive, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--quality", type=t.quality, default=defaults.QUALITY,
                   help=f"JPEG / WebP quality (default: {defaults.QUALITY})")
    p.set_defaults(func=run_serve)


def _make_server(app, host: str, port: int):
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        """No line per request (the page polls twice a second); errors are still printed."""

        def log_request(self, code="-", size="-") -> None:
            if str(code).startswith("5"):
                super().log_request(code, size)

    try:  # resolve and bind here: Werkzeug would print only the reason and exit
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.create_server(address[:2], family=family)
    except OSError as exc:
        raise SettingError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    try:
        server = make_server(host, port, app, threaded=True, request_handler=QuietHandler, fd=sock.fileno())
        server.server_port = server.socket.getsockname()[1]  # set by server_bind, which a given socket skips
        return server
    finally:
        sock.close()  # the server holds its own copy of the socket


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def run_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C (or SIGTERM); the private folder is removed on the way out."""
    try:
        import flask  # noqa: F401
    except ModuleNotFoundError:
        raise SettingError("ddnsr serve: the web page needs Flask: pip install 'flask>=3.0'") from None
    from ddnsr.inference.device import set_threads
    from ddnsr.serve.app import ServeConfig, close_app, create_app, is_loopback

    set_threads(args.threads)
    config = ServeConfig(host=args.host, model=args.model, device=args.device, max_pixels=args.max_pixels or None,
                         max_upload_bytes=args.max_upload_mb * 10**6, max_model_bytes=args.max_model_mb * 10**6,
                         max_video_seconds=args.max_video_seconds or None, quality=args.quality, tile=args.tile,
                         runs=list(args.run))
    app = create_app(config)
    try:
        server = _make_server(app, args.host, args.port)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{server.server_port}/"
        url = app.extensions["ddnsr"].url(base)  # with this start's token, as Jupyter prints it
        if not is_loopback(args.host):
            print(f"ddnsr serve: warning: listening on {args.host}: anyone who can reach this port can upload "
                  "photos and use this machine's processor; use the default 127.0.0.1 to keep it private",
                  file=sys.stderr)
        print(f"ddnsr serve: {url}  (Ctrl+C to stop; files in {app.extensions['ddnsr'].workspace.root})",
              flush=True)
        if args.open:
            import webbrowser

            threading.Timer(0.3, webbrowser.open, args=(url,)).start()
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("ddnsr serve: stopped", file=sys.stderr)
        finally:
            server.server_close()
    finally:
        stopped = close_app(app)
    if not stopped:  # a job still inside the network: leaving normally would abort in torch's threads
        print("ddnsr serve: the running job did not stop in time; exiting", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)
    return 0

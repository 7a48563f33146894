"""``ddnsr serve`` under misuse and failure (issue 26, the page's items): one-line errors, upload limits
counted as bytes arrive, the results zip, cancel inside a tile, SIGTERM during a job, non-ASCII names,
the hosts it trusts, stale private folders, and the per-start token."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flask")

import test_serve_api as api  # noqa: E402
from test_serve_api import H, make  # noqa: E402

photo, served = api.photo, api.served  # the same fixtures


@pytest.mark.parametrize("flag", ["--model typo", "--run {tmp}", "--model {tmp}/passwd"])
def test_bad_serve_settings_are_one_line_errors(flag, tmp_path, capsys):
    """Issue 26 item 7: ValueError tracebacks became one line naming the setting (exit 1)."""
    from ddnsr.cli import main

    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    args = flag.format(tmp=tmp_path).split()
    assert main(["serve", *args, "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"ddnsr serve: error: {args[0]} {args[1]}: "), err


class _Counting(io.RawIOBase):
    """A request body that counts the bytes the server reads from it."""

    def __init__(self, data: bytes) -> None:
        self.data, self.read_bytes = io.BytesIO(data), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.data.readinto(buffer)
        self.read_bytes += n
        return n


def _chunked_post(app, path: str, fields: dict[str, tuple[str, bytes]]) -> tuple[int, dict, _Counting]:
    """POST a multipart body without Content-Length (as a chunked upload arrives); (status, JSON, body)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    boundary = "ddnsr-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{name}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
             for key, (name, data) in fields.items()]
    body = _Counting(b"".join(parts) + f"--{boundary}--\r\n".encode())
    environ = EnvironBuilder(path=path, method="POST", headers={**H, **_auth(app)}).get_environ()
    environ["CONTENT_TYPE"] = f"multipart/form-data; boundary={boundary}"
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BufferedReader(body)
    environ["wsgi.input_terminated"] = True  # what a server that decodes chunked bodies says
    app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), json.loads(b"".join(app_iter)), body


def _auth(app) -> dict[str, str]:
    return {}


def _folders(app) -> list[Path]:
    return [p for p in app.extensions["ddnsr"].workspace.root.iterdir() if p.is_dir()]


def test_chunked_uploads_stop_at_the_limit(tmp_path):
    """Issue 26 item 5: a body without Content-Length is counted as it arrives and cut at the route's limit."""
    limit = 1_000_000
    app, _ = make(tmp_path, max_upload_bytes=limit, max_model_bytes=limit)
    try:
        big = b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(3 * limit)  # as compressed data
        for path, fields in (("/api/jobs", {"image": ("big.png", big)}),
                             ("/api/models", {"file": ("big.safetensors", big)})):
            status, answer, body = _chunked_post(app, path, fields)
            assert status == 413 and "upload too large (limit 1 MB per" in answer["error"]
            assert body.read_bytes <= limit + 2 * 64 * 1024, body.read_bytes  # not the whole 3 MB
            assert _folders(app) == []
    finally:
        app.extensions["ddnsr"].close()


def test_too_many_parts_is_named_and_leaves_no_folder(served, photo):
    """Issue 26 item 14: 1200 form parts are 'too many', not 'too large', and leave no job folder."""
    app, client = served
    form = {f"field{i}": "x" for i in range(1200)}
    r = client.post("/api/jobs", data={"image": (io.BytesIO(photo.read_bytes()), "a.png"), **form}, headers=H,
                    content_type="multipart/form-data")
    assert r.status_code == 413 and r.get_json()["error"].startswith("too many files or fields in one request")
    assert _folders(app) == []

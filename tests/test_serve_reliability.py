"""``ddnsr serve`` under misuse and failure (issue 26, the page's items): one-line errors, upload limits
counted as bytes arrive, the results zip, cancel inside a tile, SIGTERM during a job, non-ASCII names,
the hosts it trusts, stale private folders, and the per-start token."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("flask")

import test_serve_api as api  # noqa: E402
from test_serve_api import H, make, upload, wait  # noqa: E402

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
    return {"X-DDNSR-Token": app.extensions["ddnsr"].token}


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


def test_results_zip_is_streamed_needs_the_header_and_survives_removal(served, photo):
    """Issue 26 item 4: no copy on disk per GET, the page's header required, removal while zipping."""
    import shutil
    import zipfile

    app, client = served
    ids = [wait(client, upload(client, photo, name=f"p{i}.png").get_json()["id"])["id"] for i in range(3)]
    before = sorted(p.name for p in app.extensions["ddnsr"].workspace.root.rglob("*"))
    assert client.get("/api/results.zip").status_code == 403  # what a link from another web site sends
    for _ in range(3):
        r = client.get("/api/results.zip", headers=H)
        assert r.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(r.data)).namelist()) == 3
    assert sorted(p.name for p in app.extensions["ddnsr"].workspace.root.rglob("*")) == before
    # a job removed while the zip streams: the zip is whole; one removed before its file is opened: left out
    shutil.rmtree(app.extensions["ddnsr"].worker.jobs[ids[0]].folder)
    r = client.get("/api/results.zip", headers=H, buffered=False)
    chunks = iter(r.response)
    first = next(chunks)
    assert all(client.delete(f"/api/jobs/{i}", headers=H).status_code == 200 for i in ids)
    archive = zipfile.ZipFile(io.BytesIO(first + b"".join(chunks)))
    r.close()
    assert r.status_code == 200 and sorted(archive.namelist()) == ["p1_x4.png", "p2_x4.png"]
    assert all(Image.open(archive.open(n)).size == (192, 160) for n in archive.namelist())
    assert _folders(app) == [] and client.get("/api/results.zip", headers=H).status_code == 404


@pytest.mark.parametrize(("bound", "good", "bad"), [("::1", "[::1]:8000", "[::2]:8000"),
                                                    ("127.0.0.2", "127.0.0.2:8000", "rebind.example:8000")])
def test_the_bound_host_is_trusted(tmp_path, bound, good, bad):
    """Issue 26 item 13: --host ::1 / 127.0.0.2 answer their own address, still not a foreign Host."""
    app, client = make(tmp_path, host=bound)
    try:
        for host, status in ((good, 200), ("localhost:8000", 200), (bad, 400), ("attacker.example", 400)):
            r = client.get("/api/info", headers={"Host": host, **_auth(app)})
            assert r.status_code == status, (host, r.get_json())
    finally:
        app.extensions["ddnsr"].close()


def test_every_api_request_needs_the_token(served, photo, tmp_path, monkeypatch, capsys):
    """Issue 26 item 20: without this start's token (cookie or header) the page and the API answer 403."""
    app, client = served
    job = wait(client, upload(client, photo).get_json()["id"])
    token = app.extensions["ddnsr"].token
    stranger = app.test_client()  # another local process: no cookie
    for url in ("/", "/api/jobs", "/api/info", f"/api/jobs/{job['id']}/result", "/?token=guess"):
        assert stranger.get(url, headers=H).status_code == 403, url
    assert stranger.post("/api/jobs", headers={**H, "X-DDNSR-Token": "guess"}).status_code == 403
    assert stranger.get("/api/jobs", headers={"X-DDNSR-Token": token}).status_code == 200
    r = stranger.get(f"/?token={token}")
    cookie = r.headers["Set-Cookie"]
    assert r.status_code == 303 and r.headers["Location"] == "/"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert stranger.get("/api/jobs").status_code == 200 and stranger.get("/").status_code == 200
    # ddnsr serve prints (and --open opens) the address with the token
    from ddnsr.cli import main
    from ddnsr.cli import serve as cli_serve

    opened = []

    class FakeServer:
        server_port = 8123

        def serve_forever(self):
            time.sleep(0.5)  # --open's timer fires
            raise KeyboardInterrupt

        def server_close(self):
            pass

    monkeypatch.setattr(cli_serve, "_make_server", lambda app, host, port: FakeServer())
    monkeypatch.setattr("webbrowser.open", opened.append)
    assert main(["serve", "--port", "8123", "--open"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8123/?token=" in out and len(opened) == 1 and opened[0] in out


def test_non_ascii_names_are_kept(served, photo):
    """Issue 26 item 12: 'фото.png' is accepted, shown and downloaded under its own name."""
    import zipfile
    from urllib.parse import quote

    app, client = served
    r = upload(client, photo, name="../фото 1.png")
    assert r.status_code == 201, r.get_json()
    job = wait(client, r.get_json()["id"])
    assert job["state"] == "done" and job["name"] == "фото_1.png"
    got = client.get(f"/api/jobs/{job['id']}/result?download=1")
    assert f"filename*=UTF-8''{quote('фото_1_x4.png')}" in got.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/results.zip", headers=H).data))
    assert archive.namelist() == ["фото_1_x4.png"]
    stored = {p.name for p in app.extensions["ddnsr"].workspace.root.rglob("*") if p.is_file()}
    assert stored.isdisjoint({"фото_1.png"}) and "image.png" in stored  # stored under a fixed name


def test_cancel_stops_inside_a_single_tile(tmp_path, photo):
    """Issue 26 item 15: a one-tile job cancelled while in the network stops at the next RRDB block."""
    app, client = make(tmp_path)  # automatic tile: the photo is one tile
    try:
        worker = app.extensions["ddnsr"].worker
        # fp32 named: the torch engine, whose blocks are the cancel points (OpenVINO's: test_backends.py)
        assert wait(client, upload(client, photo, precision="fp32").get_json()["id"])["state"] == "done"
        net = worker._loaded[1]._engine.net
        ran = []

        def cancel_running(*_):
            ran.append(1)
            for job in list(worker.jobs.values()):
                if job.state == "running":
                    job.cancel.set()

        net.body[0].register_forward_hook(cancel_running)  # the user clicks Cancel during the first block
        for block in net.body[1:]:
            block.register_forward_hook(lambda *_: ran.append(1))
        job = wait(client, upload(client, photo, name="second.png", precision="fp32").get_json()["id"])
        assert job["state"] == "cancelled" and job["tiles_total"] in (0, 1)
        assert len(ran) == 1 < len(net.body)  # no block ran after the cancel
    finally:
        app.extensions["ddnsr"].close()


def test_stale_workspaces_of_dead_servers_are_removed(tmp_path):
    """Issue 26 item 16: a killed server's folder goes at the next start; a live one's and others stay."""
    import os
    import socket
    import subprocess
    import sys

    from ddnsr.serve.jobs import PID_FILE

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folders = {name: tmp_path / name for name in ("ddnsr-serve-dead", "ddnsr-serve-live", "ddnsr-serve-nopid",
                                                  "other-dead")}
    for name, folder in folders.items():
        (folder / "job").mkdir(parents=True)
        (folder / "job" / "photo.png").write_bytes(b"x")
        if name != "ddnsr-serve-nopid":
            pid = os.getpid() if name.endswith("live") else int(dead.stdout)
            (folder / PID_FILE).write_text(f"{pid} {socket.gethostname()}\n")
    app, _ = make(tmp_path)
    app.extensions["ddnsr"].close()
    assert not folders["ddnsr-serve-dead"].exists()
    assert all(folders[n].exists() for n in ("ddnsr-serve-live", "ddnsr-serve-nopid", "other-dead"))


def test_unknown_host_is_one_line(capsys):
    """Issue 26 item 14: --host that does not resolve names the flag and the host (exit 1)."""
    from ddnsr.cli import main

    assert main(["serve", "--host", "nonexistent.invalid", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("ddnsr serve: error: --host nonexistent.invalid --port 0: cannot listen there (")


def test_sigterm_during_a_job_stops_cleanly(tmp_path, photo):
    """Issue 26 item 11: SIGTERM while the network runs one big tile: the worker stops, the folder goes, exit 0."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "ddnsr", "serve", "--port", "0", "--model", "track1-ft",
                               "--tile", "0", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        url = server.stdout.readline().split()[2]
        base, token = url.split("?token=")
        big = tmp_path / "big.png"
        Image.open(photo).resize((192, 160)).save(big)
        boundary = "b0undary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'.encode()
                + big.read_bytes() + f"\r\n--{boundary}--\r\n".encode())
        headers = {**H, "X-DDNSR-Token": token, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        urllib.request.urlopen(urllib.request.Request(base + "api/jobs", body, headers), timeout=30)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            listing = urllib.request.urlopen(urllib.request.Request(base + "api/jobs", headers=headers), timeout=30)
            if json.load(listing)["jobs"][0]["state"] == "running":
                break
            time.sleep(0.1)
        time.sleep(1.0)  # inside the network's single tile
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert "terminate called" not in err and time.monotonic() - sent < 8
    assert not list(tmp_path.glob("ddnsr-serve-*"))

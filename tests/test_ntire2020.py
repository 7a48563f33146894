"""Tests of ddnsr.datasets.ntire2020 against a local HTTP server (127.0.0.1, a thread of the test) and small zips."""

from __future__ import annotations

import argparse
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddnsr.cli import main
from ddnsr.cli.data import register
from ddnsr.datasets.ntire2020 import ARCHIVES, DownloadError, download, fetch_ntire2020, unpack
from ddnsr.training.data import OFFICIAL_RECORDS, list_images, load_records, resolve_sources

REPO = Path(__file__).resolve().parents[1]


def _png(seed: int, size: tuple[int, int] = (12, 10)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _archives() -> dict[str, bytes]:
    """The five archives, each with two tiny PNGs; some inside a top folder (as the real ones), some not."""
    out = {}
    for i, archive in enumerate(ARCHIVES):
        prefix = f"{archive.name}/" if i % 2 == 0 else ""
        files = {f"{prefix}{k:04d}.png": _png(10 * i + k) for k in range(2)}
        if i == 0:
            files["__MACOSX/._0000.png"] = b"mac litter"
        out[f"{archive.name}.zip"] = _zip(files)
    return out


class _Server(ThreadingHTTPServer):
    files: dict[str, bytes]
    log: list[tuple[str, str | None]]
    mode: str  # "range": honours Range; "plain": ignores it; "cut": ignores it and sends half the body


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        data = srv.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        body = data
        if rng and srv.mode == "range":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        if srv.mode != "no-length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if srv.mode == "cut" else body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "DDNSR_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files, srv.log, srv.mode = _archives(), [], "range"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_fetch_lays_out_records_and_cleans_up(server, tmp_path):
    root = tmp_path / "root"
    folders = fetch_ntire2020(root, base_url=server.url, progress=False)
    records = load_records(REPO / "records.json")
    assert records == OFFICIAL_RECORDS
    for key in ("track1-source", "track1-target-div2k", "track2-source", "track2-target-div2k",
                "track2-target-cleanup", "track2-target-mixed"):
        for folder in resolve_sources(records, root, key):
            assert [p.name for p in list_images([folder])] == ["0000.png", "0001.png"], key
    assert folders["Corrupted-te-x"] == root / "datasets" / "Corrupted-te-x"
    assert folders["DPEDiphone-crop-te-x"] == root / "datasets" / "DPEDiphone-crop-te-x"
    track1 = root / "datasets" / "Corrupted-tr-x"
    assert sorted(p.name for p in track1.iterdir()) == ["0000.png", "0001.png"]  # no top folder, no __MACOSX
    cleaned = root / "datasets" / "dped-clean" / "0000.png"
    assert Image.open(cleaned).size == (6, 5)  # the 12x10 photo halved
    names = [a.name for a in ARCHIVES] + ["dped-clean"]
    assert sorted(p.name for p in (root / "datasets").iterdir()) == sorted(names)  # no zip nor temporary left
    server.log.clear()
    fetch_ntire2020(root, base_url=server.url, progress=False)
    assert server.log == []  # idempotent: nothing downloaded again


def test_resumed_download_completes_the_part_file(server, tmp_path):
    data = server.files["train-target.zip"]
    dest = tmp_path / "train-target.zip"
    (tmp_path / "train-target.zip.part").write_bytes(data[:100])
    download(f"{server.url}/train-target.zip", dest, progress=False)
    assert dest.read_bytes() == data
    assert server.log == [("/train-target.zip", "bytes=100-")]
    assert not (tmp_path / "train-target.zip.part").exists()


def test_complete_part_file_is_accepted_on_416(server, tmp_path):
    data = server.files["train-target.zip"]
    (tmp_path / "t.zip.part").write_bytes(data)
    download(f"{server.url}/train-target.zip", tmp_path / "t.zip", progress=False)
    assert (tmp_path / "t.zip").read_bytes() == data


def test_server_without_range_restarts_the_file(server, tmp_path):
    server.mode = "plain"
    data = server.files["train-target.zip"]
    (tmp_path / "t.zip.part").write_bytes(b"garbage" * 10)
    download(f"{server.url}/train-target.zip", tmp_path / "t.zip", progress=False)
    assert (tmp_path / "t.zip").read_bytes() == data


def test_cut_transfer_is_an_error_and_leaves_no_archive(server, tmp_path):
    server.mode = "cut"
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=r"transfer cut short at \d+ of \d+ bytes \(after 2 attempts\)"):
        fetch_ntire2020(root, base_url=server.url, only=["Corrupted-tr-x"], retries=1, progress=False)
    datasets = root / "datasets"
    assert sorted(p.name for p in datasets.iterdir()) == ["Corrupted-tr-x.zip.part"]
    assert len(server.log) == 2


def test_http_error_and_cli(server, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="ddnsr")
    register(parser.add_subparsers(dest="command", required=True))
    del server.files["Corrupted-te-x.zip"]
    assert main(["data", "ntire2020", "--root", str(tmp_path), "--base-url", server.url,
                 "--only", "Corrupted-te-x", "--no-progress"]) == 1
    assert "error: " + server.url + "/Corrupted-te-x.zip: HTTP 404" in capsys.readouterr().err
    args = parser.parse_args(["data", "ntire2020", "--root", str(tmp_path), "--base-url", server.url,
                              "--only", "DPEDiphone-tr-x", "--keep-archives", "--no-progress"])
    assert args.func(args) == 0
    assert (tmp_path / "datasets" / "DPEDiphone-tr-x.zip").is_file()
    assert len(list((tmp_path / "datasets" / "dped-clean").iterdir())) == 2
    assert main(["data", "ntire2020", "--root", str(tmp_path), "--only", "DIV2K"]) == 1


def test_unpack_refuses_path_traversal(tmp_path):
    for evil in ("../evil.png", "/abs/evil.png", "a/../../evil.png"):
        archive = tmp_path / "evil.zip"
        archive.write_bytes(_zip({"ok.png": _png(0), evil: _png(1)}))
        with pytest.raises(DownloadError, match="would land outside the folder"):
            unpack(archive, tmp_path / "out" / "set")
        assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out" / "evil.png").exists()
        assert not (tmp_path / "out" / "set").exists() and not (tmp_path / "out" / "set.unpacking").exists()


def test_unpack_bad_archive(tmp_path):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(b"not a zip at all")
    with pytest.raises(DownloadError, match="bad.zip: not a valid zip"):
        unpack(archive, tmp_path / "set")
    assert not archive.exists() and not (tmp_path / "set").exists()


def test_download_is_bounded_with_or_without_a_length(server, tmp_path):
    name = f"{ARCHIVES[0].name}.zip"
    size = len(server.files[name])
    for mode in ("range", "no-length"):
        server.mode = mode
        dest = tmp_path / mode / name
        with pytest.raises(DownloadError, match="over the|more than"):
            download(f"{server.url}/{name}", dest, max_size=size // 2, retries=0, progress=False)
        assert not dest.exists() and not dest.with_name(name + ".part").exists()
    ok = download(f"{server.url}/{name}", tmp_path / "ok" / name, max_size=size, retries=0, progress=False)
    assert ok.read_bytes() == server.files[name]


def test_unpack_refuses_a_zip_bomb_before_writing(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("top/zeros.png", bytes(100 * 1024**2))
    assert bomb.stat().st_size < 1024**2
    with pytest.raises(DownloadError, match="would unpack to 104,857,600 bytes"):
        unpack(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.unpacking").exists()

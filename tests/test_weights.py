"""Pretrained-file lookup and download, against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from ddnsr.datasets.pretrained import VGG19_KERAS, ChecksumError, DownloadError, RemoteFile, download, resolve
from ddnsr.nets import VGG19Features

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, tuple[bytes, int | None]] = {}

    def do_GET(self):  # noqa: N802
        body, announced = self.files.get(self.path, (None, None))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(announced if announced is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.files = {
        "/good.bin": (PAYLOAD, None),
        "/corrupt.bin": (PAYLOAD[:-1] + b"\x00", None),
        "/cut.bin": (PAYLOAD[: len(PAYLOAD) // 2], len(PAYLOAD)),  # announces all, sends half
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


SPEC = RemoteFile("payload.bin", "http://127.0.0.1:9/unused", "DDNSR_TEST_PAYLOAD",
                  md5=hashlib.md5(PAYLOAD).hexdigest(), sha256=hashlib.sha256(PAYLOAD).hexdigest())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DDNSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DDNSR_OFFLINE", raising=False)
    path = resolve(SPEC, url=f"{server}/good.bin")
    assert path == tmp_path / "cache" / "payload.bin"
    assert path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "cache") == ["payload.bin"]
    # found in the cache the second time, without the server
    assert resolve(SPEC, url="http://127.0.0.1:9/nothing-here") == path


def test_corrupted_download_refused(server, tmp_path):
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download(SPEC, tmp_path / "payload.bin", url=f"{server}/corrupt.bin")
    assert leftovers(tmp_path) == []


def test_cut_off_transfer_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError):
        download(SPEC, tmp_path / "payload.bin", url=f"{server}/cut.bin")
    assert leftovers(tmp_path) == []


def test_missing_file_with_downloads_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("DDNSR_CACHE", str(tmp_path))
    monkeypatch.setenv("DDNSR_OFFLINE", "1")
    monkeypatch.delenv("DDNSR_VGG19", raising=False)
    with pytest.raises(DownloadError) as err:
        VGG19Features(("block2_conv2",))
    msg = str(err.value)
    assert "\n" not in msg and VGG19_KERAS.filename in msg and "DDNSR_VGG19" in msg


def test_env_var_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("DDNSR_VGG19", str(tmp_path / "nope.h5"))
    with pytest.raises(DownloadError, match="nope.h5.*DDNSR_VGG19"):
        resolve(VGG19_KERAS)


def test_wrong_vgg_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "vgg.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a Keras VGG19 weights file"):
        VGG19Features(("block1_conv1",), weights=bad)


def test_one_lookup_for_training_evaluation_and_tests(tmp_path, monkeypatch):
    """find_local is the lookup: resolve (training), lpips_backbone (evaluate) and the tests' VGG19 fixture
    use it, so each finds a file where the others do and names the same setting when it is missing."""
    from ddnsr.datasets.pretrained import ALEXNET_TORCHVISION, find_local
    from ddnsr.evaluation.scoring import lpips_backbone

    monkeypatch.setenv("DDNSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DDNSR_OFFLINE", "1")
    monkeypatch.delenv("DDNSR_ALEXNET", raising=False)
    path, why = find_local(ALEXNET_TORCHVISION)
    assert path is None and why.startswith("alexnet-owt-7be5be79.pth not found: set DDNSR_ALEXNET=PATH")
    assert lpips_backbone() == (None, f"{why} (evaluate never downloads it)")
    with pytest.raises(DownloadError, match="set DDNSR_ALEXNET=PATH"):
        resolve(ALEXNET_TORCHVISION)
    cached = tmp_path / "cache" / ALEXNET_TORCHVISION.filename
    cached.parent.mkdir()
    cached.write_bytes(b"weights")
    assert find_local(ALEXNET_TORCHVISION) == (cached, "") == lpips_backbone()
    assert resolve(ALEXNET_TORCHVISION) == cached
    monkeypatch.setenv("DDNSR_ALEXNET", str(tmp_path / "gone.pth"))  # a named file that is missing wins
    assert find_local(ALEXNET_TORCHVISION)[1] == f"{tmp_path / 'gone.pth'}: no such file (set by DDNSR_ALEXNET)"

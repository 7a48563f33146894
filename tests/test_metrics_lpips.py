"""LPIPS: arithmetic, torchvision-compatible backbones, backbone download, and reference values.

The real ImageNet AlexNet weights cannot be obtained on the development machines: the arithmetic is
checked with a small stand-in backbone, the download path against a local HTTP server on 127.0.0.1,
and the reference values only where the weights are present (DDNSR_ALEXNET or the cache).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ddnsr.datasets.pretrained as weights
from conftest import DATA
from ddnsr.metrics import LPIPS, VGG16_TORCHVISION, lpips
from ddnsr.metrics.perceptual import (
    BACKBONES,
    SCALE,
    SHIFT,
    AlexNetFeatures,
    LinearHeads,
    TapFeatures,
    VGG16Features,
    load_torchvision_features,
)

REFS = DATA / "reference-values.json"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache and no backbone overrides, so nothing real is touched."""
    monkeypatch.setenv("DDNSR_CACHE", str(tmp_path / "cache"))
    for var in ("DDNSR_ALEXNET", "DDNSR_VGG16", "DDNSR_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------- a local HTTP server


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.hits.append(self.path)
        name = self.path.lstrip("/")
        if name.startswith("cut/"):
            body = self.files[name[4:]]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # then the connection is closed
            self.wfile.flush()
            self.close_connection = True
            return
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture()
def server():
    _Handler.files = {}
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _spec(payload: bytes, name: str = "fake-backbone.pth") -> weights.RemoteFile:
    return weights.RemoteFile(
        filename=name,
        url="https://download.invalid/never-used",
        env_var="DDNSR_TEST_FAKE",
        sha256=hashlib.sha256(payload).hexdigest(),
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- download path


def test_download_good_file_is_kept_and_then_reused(server, tmp_path):
    base, handler = server
    payload = os.urandom(50_000)
    handler.files["good.pth"] = payload
    spec = _spec(payload)
    got = weights.resolve(spec, url=f"{base}/good.pth")
    assert got == tmp_path / "cache" / spec.filename
    assert got.read_bytes() == payload
    assert _leftovers(got.parent) == [spec.filename]
    again = weights.resolve(spec, url=f"{base}/good.pth")  # from the cache, no second transfer
    assert again == got and handler.hits == ["/good.pth"]


def test_download_corrupted_file_is_refused_and_not_cached(server, tmp_path):
    base, handler = server
    payload = os.urandom(20_000)
    handler.files["bad.pth"] = payload[:-1] + bytes([payload[-1] ^ 0xFF])
    with pytest.raises(weights.ChecksumError):
        weights.resolve(_spec(payload), url=f"{base}/bad.pth")
    assert handler.hits == ["/bad.pth"]
    assert _leftovers(tmp_path / "cache") == []


def test_download_cut_off_leaves_no_complete_looking_file(server, tmp_path):
    base, handler = server
    payload = os.urandom(40_000)
    handler.files["half.pth"] = payload
    with pytest.raises(weights.DownloadError) as err:
        weights.resolve(_spec(payload), url=f"{base}/cut/half.pth")
    assert not isinstance(err.value, weights.ChecksumError)  # refused for its length, before the checksum
    assert handler.hits == ["/cut/half.pth"]
    assert _leftovers(tmp_path / "cache") == []


def test_offline_without_file_names_the_setting(monkeypatch):
    monkeypatch.setenv("DDNSR_OFFLINE", "1")
    model = LPIPS("alex")  # lazy: constructing needs no backbone
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(weights.DownloadError, match="DDNSR_ALEXNET"):
        model.score(img, img)


def test_vgg16_spec_and_env_override(tmp_path, monkeypatch):
    assert VGG16_TORCHVISION.filename == "vgg16-397923af.pth"
    assert VGG16_TORCHVISION.url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert VGG16_TORCHVISION.env_var == "DDNSR_VGG16"
    assert VGG16_TORCHVISION.sha256_prefix == "397923af"
    local = tmp_path / "my-vgg16.pth"
    local.write_bytes(b"x")
    monkeypatch.setenv("DDNSR_VGG16", str(local))
    assert weights.resolve(VGG16_TORCHVISION) == local
    assert BACKBONES["vgg"].spec is VGG16_TORCHVISION
    assert BACKBONES["alex"].spec is weights.ALEXNET_TORCHVISION


# ---------------------------------------------------------------- backbones and heads


def test_backbones_have_torchvision_keys_and_shapes():
    alex = {k: tuple(v.shape) for k, v in AlexNetFeatures().state_dict().items()}
    assert alex == {
        "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
        "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
        "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
        "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
        "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    }  # fmt: skip
    vgg = VGG16Features().state_dict()
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert list(vgg) == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    assert tuple(vgg["features.28.weight"].shape) == (512, 512, 3, 3)
    maps = VGG16Features()(torch.zeros(1, 3, 32, 32))
    assert [m.shape[1] for m in maps] == [64, 128, 256, 512, 512]
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]


def test_shipped_heads_load():
    for net, channels in (("alex", (64, 192, 384, 256, 256)), ("vgg", (64, 128, 256, 512, 512))):
        model = LPIPS(net)
        assert model.backbone is None  # nothing loaded yet
        ws = [model.heads[i].model[1].weight for i in range(5)]
        assert [w.shape[1] for w in ws] == list(channels)
        assert all(bool((w >= 0).all()) for w in ws)  # LPIPS v0.1 heads are non-negative


def _fake_torchvision_alexnet(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = dict(AlexNetFeatures().state_dict())
    state["classifier.1.weight"] = torch.zeros(4, 4)  # a torchvision checkpoint has more than features
    torch.save(state, path)
    return state


def test_lpips_downloads_and_loads_backbone_lazily(server, tmp_path, monkeypatch):
    base, handler = server
    ckpt = tmp_path / "alexnet-fake.pth"
    state = _fake_torchvision_alexnet(ckpt)
    payload = ckpt.read_bytes()
    handler.files["alexnet.pth"] = payload
    spec = dataclasses.replace(
        weights.ALEXNET_TORCHVISION, url=f"{base}/alexnet.pth", sha256_prefix=None,
        sha256=hashlib.sha256(payload).hexdigest(),
    )  # fmt: skip
    monkeypatch.setitem(BACKBONES, "alex", dataclasses.replace(BACKBONES["alex"], spec=spec))
    model = LPIPS("alex")
    assert handler.hits == []
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    d = model.score(a, b)
    assert handler.hits == ["/alexnet.pth"]
    assert (tmp_path / "cache" / spec.filename).read_bytes() == payload
    assert torch.equal(model.backbone.features[0].weight, state["features.0.weight"])
    ref = LPIPS("alex", backbone=load_torchvision_features(AlexNetFeatures(), ckpt))
    assert d == pytest.approx(ref.score(a, b), rel=1e-6) and d > 0
    assert model.score(a, a) == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------- LPIPS arithmetic


class _StandIn(TapFeatures):
    channels = (4, 5)

    def __init__(self) -> None:
        layers = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.ReLU()]
        super().__init__(layers, taps=(1, 3))


def _hand_lpips(backbone: nn.Module, heads: list[np.ndarray], img0: np.ndarray, img1: np.ndarray) -> float:
    """LPIPS written out step by step in NumPy (float64), the backbone only evaluated by torch."""
    feats = []
    for img in (img0, img1):
        x = img.astype(np.float64) / 255.0 * 2.0 - 1.0  # [0, 1] -> [-1, 1]
        x = (x - np.array(SHIFT)) / np.array(SCALE)  # ScalingLayer, HxWx3
        t = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
        with torch.no_grad():
            feats.append([f[0].double().numpy() for f in backbone(t)])  # each CxHxW
    total = 0.0
    for f0, f1, w in zip(feats[0], feats[1], heads, strict=True):
        n0 = f0 / (np.sqrt((f0**2).sum(axis=0, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1**2).sum(axis=0, keepdims=True)) + 1e-10)
        diff = (n0 - n1) ** 2
        total += float(np.mean(np.tensordot(w, diff, axes=(0, 0))))  # 1x1 conv, then spatial mean
    return total


def test_lpips_arithmetic_matches_hand_computation():
    torch.manual_seed(1)
    backbone = _StandIn().eval()
    heads = LinearHeads(_StandIn.channels)
    ws = []
    for i in range(2):
        w = torch.rand(1, _StandIn.channels[i], 1, 1)
        heads[i].model[1].weight.data.copy_(w)
        ws.append(w[0, :, 0, 0].double().numpy())
    model = LPIPS(backbone=backbone, heads=heads)
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    expected = _hand_lpips(backbone, ws, a, b)
    assert model.score(a, b) == pytest.approx(expected, rel=1e-5)
    assert model.score(b, a) == pytest.approx(expected, rel=1e-5)
    assert model.score(a, a) == 0.0
    # forward on [-1, 1] tensors equals normalize=True on [0, 1] tensors; batches are independent
    x0 = torch.from_numpy(np.stack([a, b]).transpose(0, 3, 1, 2) / 255.0).float()
    x1 = torch.from_numpy(np.stack([b, b]).transpose(0, 3, 1, 2) / 255.0).float()
    out = model(x0 * 2 - 1, x1 * 2 - 1)
    assert out.shape == (2,)
    torch.testing.assert_close(out, model(x0, x1, normalize=True))
    assert float(out[0]) == pytest.approx(expected, rel=1e-5) and float(out[1]) == pytest.approx(0.0, abs=1e-7)


def test_lpips_gradients_reach_the_input():
    torch.manual_seed(3)
    model = LPIPS(backbone=_StandIn(), heads=LinearHeads(_StandIn.channels))
    x0 = torch.rand(1, 3, 12, 12, requires_grad=True)
    model(x0, torch.rand(1, 3, 12, 12), normalize=True).sum().backward()
    assert x0.grad is not None and float(x0.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in model.parameters())
    nn.Sequential(model).train()  # a parent switched to training leaves the metric deterministic
    assert not model.training and not model.heads.training


def test_gray_and_float_inputs():
    torch.manual_seed(4)
    model = LPIPS(backbone=_StandIn(), heads=LinearHeads(_StandIn.channels))
    rng = np.random.default_rng(5)
    g0 = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    g1 = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    rgb = model.score(np.repeat(g0[..., None], 3, 2), np.repeat(g1[..., None], 3, 2))
    assert model.score(g0, g1) == pytest.approx(rgb)
    assert model.score(g0 / 255.0, g1 / 255.0) == pytest.approx(rgb, rel=1e-5)


# ---------------------------------------------------------------- reference values (real weights)


def _real_alexnet() -> Path | None:
    env = os.environ.get(weights.ALEXNET_TORCHVISION.env_var)
    if env and Path(env).is_file():
        return Path(env)
    cached = weights.cache_dir() / weights.ALEXNET_TORCHVISION.filename
    return cached if cached.is_file() else None


# Read before the autouse fixture empties the settings for the other tests.
REAL_ALEXNET = _real_alexnet()


@pytest.mark.skipif(
    REAL_ALEXNET is None,
    reason="torchvision's ImageNet AlexNet (alexnet-owt-7be5be79.pth) is not present: set DDNSR_ALEXNET "
    "or put it in the ddnsr cache (it cannot be downloaded on these machines)",
)
@pytest.mark.skipif(not REFS.is_file(), reason=f"shared data not found at {DATA}")
def test_lpips_alex_reference_values(monkeypatch):
    from PIL import Image

    monkeypatch.setenv("DDNSR_OFFLINE", "1")  # never download in a test
    refs = json.loads(REFS.read_text())

    def read(rel: str) -> np.ndarray:
        with Image.open(DATA / rel) as im:
            return np.asarray(im.convert("RGB"))

    ref = refs["iqa_examples"]["lpips_alex_v0.1"]
    for k, (dist, orig) in refs["iqa_examples"]["pairs"].items():
        got = lpips(read(dist), read(orig), backbone_path=REAL_ALEXNET)
        assert got == pytest.approx(ref["values"][k], abs=ref["tolerance"]), k
    ex = refs["lpips_examples"]
    ex_ref, ex_p0, ex_p1 = (read(f) for f in ex["files"])
    # Unofficial three-decimal figures: allow their rounding on top.
    assert lpips(ex_ref, ex_p0, backbone_path=REAL_ALEXNET) == pytest.approx(ex["ex_ref_vs_ex_p0"], abs=0.0015)
    assert lpips(ex_ref, ex_p1, backbone_path=REAL_ALEXNET) == pytest.approx(ex["ex_ref_vs_ex_p1"], abs=0.0015)

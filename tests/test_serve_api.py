"""``ddnsr serve``'s API through Flask's test client: models, limits, bad input, names, the queue, cancel,
results equal to ``ddnsr upscale``, the degradation view, clean-up; and the command's start and stop."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, gate_worker, need

pytest.importorskip("flask")

from ddnsr import defaults  # noqa: E402
from ddnsr.serve.app import ServeConfig, create_app  # noqa: E402
from ddnsr.serve.jobs import PID_FILE  # noqa: E402

H = {"X-DDNSR": "1"}


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 48x40 crop of a real camera LR photo (RealSR, Track 1 validation)."""
    lr = sorted(need(DATA / "track1-valid" / "LR").glob("*.png"))[0]
    path = tmp_path_factory.mktemp("photo") / "camera photo.png"
    Image.open(lr).convert("RGB").crop((10, 20, 58, 60)).save(path)
    return path


def make(tmp_path: Path, **kw):
    """The app and a test client that opened the page with the token (as the printed address does)."""
    app = create_app(ServeConfig(workdir=str(tmp_path), **kw))
    client = app.test_client()
    assert client.get(f"/?token={app.extensions['ddnsr'].token}").status_code == 303  # sets the cookie
    return app, client


@pytest.fixture
def served(tmp_path):
    app, client = make(tmp_path, tile=16)
    yield app, client
    app.extensions["ddnsr"].close()


def upload(client, path: Path | None = None, *, data: bytes | None = None, name: str | None = None, **form):
    body = data if data is not None else path.read_bytes()
    form = {"image": (io.BytesIO(body), name or path.name), **form}
    return client.post("/api/jobs", data=form, headers=H, content_type="multipart/form-data")


def wait(client, job_id: str, timeout: float = 60.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = next(j for j in client.get("/api/jobs").get_json()["jobs"] if j["id"] == job_id)
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_info_lists_every_bundled_model_with_note_and_speed(served):
    from ddnsr.formats.modelfile import bundled_models

    _, client = served
    info = client.get("/api/info").get_json()
    ids = {m["id"]: m for m in info["models"]}
    assert set(ids) == {f"bundled:{n}" for n in bundled_models()}
    assert info["default_model"] == f"bundled:{defaults.DEFAULT_MODEL}" == "bundled:track1-ft"  # as ddnsr upscale
    assert ids["bundled:track1"]["note"].startswith("DDNSR") and ids["bundled:track1"]["speed"] == "fast"
    assert ids["bundled:track1-ft"]["speed"] == "slow"  # full-size RRDBNet: ESRGAN's work per pixel
    assert ids["bundled:track1-ft"]["gmac_per_mp"] > 10 * ids["bundled:track1"]["gmac_per_mp"]
    assert info["precisions"] == ["auto", "fp32", "bf16"]  # the command line's default first; no fp16 on the CPU
    assert info["limits"]["max_pixels"] == defaults.MAX_PIXELS and ".gif" in info["image_extensions"]
    assert info["formats"] == ["png", "jpg", "webp", "tif"]


def test_result_is_bit_identical_to_ddnsr_upscale(photo, tmp_path):
    from ddnsr.cli import main

    app, client = make(tmp_path)  # automatic tile, as the command line
    for fmt in ("png", "jpg"):
        r = upload(client, photo, model="bundled:track1", format=fmt)
        assert r.status_code == 201, r.get_json()
        job = wait(client, r.get_json()["id"])
        assert job["state"] == "done", job
        assert job["size_in"] == [48, 40] and job["size_out"] == [192, 160]
        got = client.get(f"/api/jobs/{job['id']}/result?download=1")
        assert got.headers["Content-Disposition"].startswith("attachment")
        assert f"camera_photo_x4.{fmt}" in got.headers["Content-Disposition"]
        out = tmp_path / f"cli-{fmt}"
        # no precision on either side: both take auto (bf16 on CPUs that compute it natively, else fp32)
        assert main(["upscale", str(photo), "-o", str(out), "--ext", fmt, "--model", "track1", "-q"]) == 0
        assert got.data == (out / f"camera photo.{fmt}").read_bytes()
        before = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/before").data))
        assert before.size == (48, 40)
    # TIFF: the browser gets a PNG of the same pixels to show
    job = wait(client, upload(client, photo, format="tif").get_json()["id"])
    tif = np.asarray(Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result").data)))
    view = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/view").data))
    assert view.format == "PNG" and np.array_equal(np.asarray(view), tif)
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/results.zip", headers=H).data))
    assert sorted(archive.namelist()) == ["camera_photo_x4.jpg", "camera_photo_x4.png", "camera_photo_x4.tif"]
    app.extensions["ddnsr"].close()


def test_every_default_left_alone_gives_the_bytes_of_ddnsr_upscale(photo, tmp_path):
    """No model, precision, format or tile on either side: the page's file is ddnsr upscale's, byte for byte,
    on the precision path this machine gets (auto: bf16 on CPUs that compute it natively, else fp32)."""
    from ddnsr.cli import main
    from ddnsr.inference.device import inference_precision, resolve_device

    app = create_app(ServeConfig(workdir=str(tmp_path)))
    client = app.test_client()
    client.get(f"/?token={app.extensions['ddnsr'].token}")
    try:
        r = client.post("/api/jobs", data={"image": (io.BytesIO(photo.read_bytes()), photo.name)}, headers=H,
                        content_type="multipart/form-data")  # the image alone
        assert r.status_code == 201, r.get_json()
        job = wait(client, r.get_json()["id"], timeout=300)
        assert job["state"] == "done" and job["model"] == "bundled:track1-ft" and job["precision"] == "auto", job
        got = client.get(f"/api/jobs/{job['id']}/result").data
    finally:
        app.extensions["ddnsr"].close()
    assert main(["upscale", str(photo), "-o", str(tmp_path / "cli"), "-q"]) == 0
    assert got == (tmp_path / "cli" / "camera photo.png").read_bytes()
    path = inference_precision(resolve_device("auto"))
    print(f"compared on the {path} path")  # bf16 on this project's native-bf16 CPU


def test_bad_files_get_one_line_messages_and_leave_nothing(served, photo):
    app, client = served
    root = app.extensions["ddnsr"].workspace.root
    r = upload(client, data=b"this is not a picture at all", name="broken.png")
    assert r.status_code == 400
    assert r.get_json()["error"] == "broken.png: cannot be read (not a PNG, JPEG, WebP, BMP, TIFF or GIF image)"
    r = upload(client, photo, name="notes.txt")
    assert r.status_code == 400 and "notes.txt: not a supported image file" in r.get_json()["error"]
    r = upload(client, data=b"", name="empty.png")
    assert r.status_code == 400 and "empty" in r.get_json()["error"]
    r = client.post("/api/jobs", data={}, headers=H)
    assert r.status_code == 400 and "no image file" in r.get_json()["error"]
    r = upload(client, photo, model="bundled:nope")
    assert r.status_code == 400 and "unknown model" in r.get_json()["error"]
    r = upload(client, photo, precision="fp16")  # refused on the CPU before anything runs
    assert r.status_code == 400 and "precision" in r.get_json()["error"]
    assert [p.name for p in root.iterdir()] == [PID_FILE]  # refused uploads are deleted at once
    # a file whose header is fine but whose data is cut: fails in the worker, with a message, and the
    # worker goes on to the next file
    data = photo.read_bytes()
    r = upload(client, data=data[: len(data) // 2], name="cut.png")
    assert r.status_code == 201
    job = wait(client, r.get_json()["id"])
    assert job["state"] == "failed" and job["error"].startswith("cut.png: ") and str(root) not in job["error"]
    ok = wait(client, upload(client, photo).get_json()["id"])
    assert ok["state"] == "done"


def test_limits_in_bytes_and_pixels(tmp_path, photo):
    app, client = make(tmp_path, max_pixels=48 * 40 - 1, max_upload_bytes=len(photo.read_bytes()) + 10,
                       max_model_bytes=100_000)
    try:
        r = upload(client, photo)
        assert r.status_code == 413
        assert r.get_json()["error"] == ("camera_photo.png: 48x40 = 1_920 pixels is over the limit of 1_919 "
                                         "(ddnsr serve --max-pixels)")
        r = upload(client, data=photo.read_bytes() + b"\0" * 4096, name="big.png")
        assert r.status_code == 413 and "over the limit" in r.get_json()["error"]
        from ddnsr.serve.app import FORM_SLACK

        r = upload(client, data=b"\0" * (len(photo.read_bytes()) + 10 + FORM_SLACK + 1), name="huge.png")
        assert r.status_code == 413 and "too large" in r.get_json()["error"]
        assert [p.name for p in app.extensions["ddnsr"].workspace.root.iterdir()] == [PID_FILE]
    finally:
        app.extensions["ddnsr"].close()


def test_names_are_sanitised(served, photo):
    app, client = served
    r = upload(client, photo, name="../../etc/x y<script>.png")
    job = r.get_json()
    assert r.status_code == 201 and job["name"] == "x_yscript.png"
    wait(client, job["id"])
    root = app.extensions["ddnsr"].workspace.root
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files and all(root in p.parents for p in files)
    assert {p.name for p in files} == {"image.png", "result.png", "before.png", PID_FILE}


def test_requests_from_other_sites_and_hosts_are_refused(served, photo):
    _, client = served
    r = client.post("/api/jobs", data={"image": (io.BytesIO(photo.read_bytes()), "a.png")})
    assert r.status_code == 403  # no X-DDNSR header: what a cross-site form post looks like
    assert client.get("/api/info", headers={"Host": "attacker.example:8000"}).status_code == 400
    token = {"X-DDNSR-Token": served[0].extensions["ddnsr"].token}  # the cookie is localhost's
    assert client.get("/api/info", headers={"Host": "127.0.0.1:8000", **token}).status_code == 200


def test_one_job_at_a_time_fifo_and_cancel(served, photo):
    app, client = served
    started, release = gate_worker(app)
    ids = [upload(client, photo, name=f"p{i}.png").get_json()["id"] for i in range(3)]
    assert started.wait(30)
    states = {j["id"]: j for j in client.get("/api/jobs").get_json()["jobs"]}
    assert [states[i]["state"] for i in ids] == ["running", "queued", "queued"]
    assert states[ids[0]]["tiles_total"] == 0 or states[ids[0]]["tiles_total"] > 1
    assert client.post(f"/api/jobs/{ids[1]}/cancel", headers=H).get_json()["state"] == "cancelled"
    assert client.post(f"/api/jobs/{ids[0]}/cancel", headers=H).status_code == 200
    release.set()
    first, second, third = (wait(client, i) for i in ids)
    assert first["state"] == "cancelled" and first["tiles_done"] < first["tiles_total"]
    assert second["state"] == "cancelled" and second["seconds"] is None  # never started
    assert third["state"] == "done" and third["tiles_done"] == third["tiles_total"] == 9
    assert client.get(f"/api/jobs/{ids[0]}/result").status_code == 404
    # removal deletes the files; a running or unknown job cannot be removed
    assert client.delete(f"/api/jobs/{ids[2]}", headers=H).status_code == 200
    assert client.delete(f"/api/jobs/{ids[2]}", headers=H).status_code == 404
    assert client.post("/api/jobs/nope/cancel", headers=H).status_code == 404


def test_full_queue_is_refused(tmp_path, photo):
    app, client = make(tmp_path, max_jobs=1, tile=16)
    started, release = gate_worker(app)
    try:
        assert upload(client, photo).status_code == 201
        assert started.wait(30)
        r = upload(client, photo)
        assert r.status_code == 429 and "queue is full" in r.get_json()["error"]
    finally:
        release.set()
        app.extensions["ddnsr"].close()


def test_model_file_upload(served, photo):
    from ddnsr.formats.modelfile import bundled_models

    _, client = served
    path = bundled_models()["track1-single"]["reconstruction"]
    r = client.post("/api/models", data={"file": (io.BytesIO(path.read_bytes()), "mine.safetensors")}, headers=H)
    entry = r.get_json()
    assert r.status_code == 201 and entry["label"] == "mine.safetensors" and entry["source"] == "upload"
    assert entry["speed"] == "fast" and entry["id"] in {m["id"] for m in client.get("/api/info").get_json()["models"]}
    job = wait(client, upload(client, photo, model=entry["id"]).get_json()["id"])
    assert job["state"] == "done"
    bad = client.post("/api/models", data={"file": (io.BytesIO(b"nonsense"), "bad.safetensors")}, headers=H)
    assert bad.status_code == 400 and bad.get_json()["error"].startswith("bad.safetensors")
    d = bundled_models()["track1"]["degradation"]
    wrong = client.post("/api/models", data={"file": (io.BytesIO(d.read_bytes()), "d.safetensors")}, headers=H)
    assert wrong.status_code == 400 and "degradation" in wrong.get_json()["error"]


def test_degradation_view(served, photo, tmp_path):
    from ddnsr.formats.modelfile import bundled_models

    hr_file = sorted(need(DATA / "track1-valid" / "HR").glob("*.png"))[0]
    hr = tmp_path / "hr.png"
    Image.open(hr_file).convert("RGB").crop((0, 0, 66, 64)).save(hr)
    _, client = served
    form = {"hr": (io.BytesIO(hr.read_bytes()), "hr.png"), "lr": (io.BytesIO(photo.read_bytes()), "real.png"),
            "model": "bundled:track1"}
    r = client.post("/api/degrade", data=form, headers=H)
    assert r.status_code == 201, r.get_json()
    job = wait(client, r.get_json()["id"])
    assert job["state"] == "done" and job["size_out"] == [16, 16]  # 66 cropped to 64, then x1/4
    assert job["outputs"] == ["hr", "lr", "result"]
    lr = np.asarray(Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result").data)))
    assert lr.shape == (16, 16, 3) and lr.std() > 1
    r_only = bundled_models()["track1"]["reconstruction"].read_bytes()  # an uploaded R: no degradation network
    form["model"] = client.post("/api/models", data={"file": (io.BytesIO(r_only), "r.safetensors")},
                                headers=H).get_json()["id"]
    r = client.post("/api/degrade", data={**form, "hr": (io.BytesIO(hr.read_bytes()), "hr.png"),
                                          "lr": (io.BytesIO(photo.read_bytes()), "real.png")}, headers=H)
    assert r.status_code == 400 and "has no degradation network" in r.get_json()["error"]


def test_run_folder_models_and_its_own_photos(tmp_path):
    """A --run folder's D is offered, and its training data (config.json -> records) feeds the view."""
    import json

    from ddnsr.formats.modelfile import bundled_models

    valid = need(DATA / "track1-valid")
    run = tmp_path / "my-run"
    run.mkdir()
    (run / "degradation.safetensors").write_bytes(bundled_models()["track1"]["degradation"].read_bytes())
    records = tmp_path / "records.json"
    records.write_text(json.dumps({"track1-source": str(valid / "LR"), "track1-target-div2k": str(valid / "HR")}))
    (run / "config.json").write_text(json.dumps({"source": "track1", "target": "div2k", "records": str(records),
                                                 "data_root": None}))
    app, client = make(tmp_path, runs=[run])
    try:
        entry = next(m for m in client.get("/api/info").get_json()["models"] if m["id"] == "run:0")
        assert entry["label"] == "run my-run" and entry["kinds"] == ["degradation"] and entry["run_photos"]
        r = client.post("/api/degrade", data={"model": "run:0", "run_photos": "1", "index": "1"}, headers=H)
        assert r.status_code == 201, r.get_json()
        job = wait(client, r.get_json()["id"])
        second = sorted((valid / "HR").glob("*.png"))[1].name
        assert job["state"] == "done" and job["name"] == second and job["size_out"] == [64, 64]
        real = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/lr").data))
        assert real.size == (64, 64)  # the real LR crop has D's output size
        r = client.post("/api/degrade", data={"model": "bundled:track1", "run_photos": "1"}, headers=H)
        assert r.status_code == 400 and "unknown run model" in r.get_json()["error"]
        (run / "config.json").write_text(json.dumps({"source": "track1", "target": "div2k",
                                                     "records": str(tmp_path / "gone.json")}))
        r = client.post("/api/degrade", data={"model": "run:0", "run_photos": "1"}, headers=H)
        assert r.status_code == 400 and "training photos cannot be found" in r.get_json()["error"]
    finally:
        app.extensions["ddnsr"].close()
    path = bundled_models()["track1-single"]["reconstruction"]
    app, client = make(tmp_path, model=str(path))
    try:
        info = client.get("/api/info").get_json()
        assert info["default_model"].startswith("upload:")
        assert next(m for m in info["models"] if m["id"] == info["default_model"])["label"] == path.name
    finally:
        app.extensions["ddnsr"].close()
    with pytest.raises(ValueError, match="neither a model file nor a bundled model"):
        create_app(ServeConfig(workdir=str(tmp_path), model="nope"))
    with pytest.raises(ValueError, match="holds neither"):
        create_app(ServeConfig(workdir=str(tmp_path), runs=[tmp_path / "empty"]))


def test_private_folder_is_removed_at_close(tmp_path, photo):
    app, client = make(tmp_path)
    root = app.extensions["ddnsr"].workspace.root
    assert root.is_dir() and (root.stat().st_mode & 0o077) == 0  # only this user can read it
    wait(client, upload(client, photo).get_json()["id"])
    app.extensions["ddnsr"].close()
    assert not root.exists()


def test_serve_command_warns_off_loopback_and_cleans_up(tmp_path, monkeypatch, capsys):
    from ddnsr.cli import main
    from ddnsr.cli import serve as cli_serve

    seen = {}

    class FakeServer:
        server_port = 8123

        def serve_forever(self):
            seen["root"] = next(tmp_path.glob("ddnsr-serve-*"))
            raise KeyboardInterrupt

        def server_close(self):
            seen["closed"] = True

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(cli_serve, "_make_server", lambda app, host, port: FakeServer())
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123"]) == 0
    err = capsys.readouterr()
    assert "warning: listening on 0.0.0.0" in err.err and "http://127.0.0.1:8123/" in err.out
    assert seen["closed"] and not seen["root"].exists()
    assert main(["serve", "--port", "8123"]) == 0
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--port", "70000"])


def test_speed_figure_is_the_networks_multiply_adds():
    """The GMAC figure shown in the page equals the multiply-adds of the network's convolutions."""
    import torch

    from ddnsr.nets import RRDBNet
    from ddnsr.serve.jobs import _macs_per_pixel

    cfg = {"num_feat": 32, "num_block": 6, "num_grow_ch": 16}
    net = RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, **cfg).eval()
    total = [0]

    def count(module, _inputs, output):
        total[0] += output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(count)
    with torch.no_grad():
        net(torch.rand(1, 3, 16, 16))
    assert _macs_per_pixel(cfg) == total[0] / 256


def test_degradation_view_is_ddnsr_degrades_path(served, photo, tmp_path):
    """The page degrades with Degrader.degrade_file, as ddnsr degrade: a 16-bit HR gives the same 16-bit PNG."""
    import ddnsr.imageio as dio
    from ddnsr.inference.upscaler import Degrader

    hr_file = sorted(need(DATA / "track1-valid" / "HR").glob("*.png"))[0]
    hr = tmp_path / "hr16.png"
    Image.fromarray(np.asarray(Image.open(hr_file).convert("L").crop((0, 0, 64, 64)), np.uint16) * 257).save(hr)
    _, client = served
    form = {"hr": (io.BytesIO(hr.read_bytes()), "hr16.png"), "lr": (io.BytesIO(photo.read_bytes()), "real.png"),
            "model": "bundled:track1"}
    job = wait(client, client.post("/api/degrade", data=form, headers=H).get_json()["id"])
    assert job["state"] == "done", job
    got = client.get(f"/api/jobs/{job['id']}/result").data
    deg = Degrader.load("track1", tile=16)
    want = deg.degrade_file(hr, tmp_path / "want.png", dio.read_image(photo).rgb, seed=0)
    assert want.dtype == np.uint16 and got == (tmp_path / "want.png").read_bytes()

"""ddnsr train for one's own camera: folders in, --clean-hr self, --from, --minutes, --ema, bad folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddnsr.formats.modelfile import load_model, read_metadata, save_model
from ddnsr.nets import RRDBNet

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DDNSR_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def photos(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    """``n`` synthetic size x (size+8) RGB PNGs (a gradient with noise) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ramp = np.linspace(0, 180, size + 8)[None, :, None]
        Image.fromarray((rng.random((size, size + 8, 3)) * 60 + ramp).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("camera")
    return {"lr": photos(root / "lr", 4, 96), "hr": photos(root / "hr", 4, 160, seed=1),
            "big": photos(root / "big", 3, 200, seed=2)}


def train(run_dir: Path, vgg: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ddnsr.cli", "train", "--preset", "smoke", "--run-dir", str(run_dir), "--quiet",
           *extra]
    return subprocess.run(cmd, env={**ENV, "DDNSR_VGG19": str(vgg)}, capture_output=True, text=True, timeout=timeout)


def folders(data: dict[str, Path]) -> list[str]:
    return ["--real-lr", str(data["lr"]), "--clean-hr", str(data["hr"])]


def test_folders_in(tmp_path, vgg19_path, data):
    res = train(tmp_path / "run", vgg19_path, *folders(data), "--steps", "2")
    assert res.returncode == 0, res.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["real_lr"] == [str(data["lr"])] and cfg["clean_hr"] == [str(data["hr"])]
    meta = read_metadata(tmp_path / "run" / "reconstruction.safetensors")
    assert meta["training_steps"] == "2" and meta["training_data"] == f"real LR {data['lr']} + clean HR {data['hr']}"
    assert (tmp_path / "run" / "losses.csv").read_text().splitlines()[-1].startswith("2,")


def test_clean_hr_self(tmp_path, vgg19_path, data):
    res = train(tmp_path / "run", vgg19_path, "--real-lr", str(data["big"]), "--clean-hr", "self",
                "--lr-crop", "16", "--steps", "1")
    assert res.returncode == 0, res.stderr
    halved = sorted((tmp_path / "run" / "clean-hr-self" / "0").iterdir())
    assert [p.name for p in halved] == ["0.png", "1.png", "2.png"]
    assert Image.open(halved[0]).size == (104, 100)  # 208 x 200 halved
    assert (tmp_path / "run" / "reconstruction.safetensors").is_file()


@pytest.mark.parametrize("case", ["empty", "no-images", "too-small", "missing", "no-hr"])
def test_bad_folders_one_line(tmp_path, vgg19_path, data, case):
    bad = tmp_path / "bad"
    bad.mkdir()
    if case == "no-images":
        (bad / "notes.txt").write_text("hello")
    args = ["--real-lr", str(bad), "--clean-hr", str(data["hr"])]
    if case == "too-small":
        args = ["--real-lr", str(data["lr"]), "--clean-hr", str(data["lr"])]  # 96 px < the 128 px HR crop
    elif case == "missing":
        args = ["--real-lr", str(tmp_path / "nope"), "--clean-hr", str(data["hr"])]
    elif case == "no-hr":
        args = ["--real-lr", str(data["lr"])]
    res = train(tmp_path / "run", vgg19_path, *args)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    expected = {"empty": "no images", "no-images": "no images", "too-small": "smaller than the 128 px",
                "missing": "does not exist", "no-hr": "--clean-hr"}[case]
    assert expected in lines[0]
    if case != "no-hr":
        assert str(data["lr"] if case == "too-small" else (tmp_path / "nope" if case == "missing" else bad)) in lines[0]


def test_camera_noise_patches_are_kept_with_the_estimate(tmp_path, vgg19_path, data):
    """--degradation camera (the --from default) cuts the camera's noise from its photos and keeps it beside
    camera.json; --camera-noise gaussian does without."""
    from ddnsr.training.camera import CameraModel, NoisePatches

    src = save_model(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), tmp_path / "tiny.safetensors")
    res = train(tmp_path / "run", vgg19_path, *folders(data), "--from", str(src), "--steps", "1")
    assert res.returncode == 0, res.stderr
    patches = NoisePatches.load(tmp_path / "run" / "camera-noise.npz")
    # the photos are a ramp plus uniform noise of 60 levels (std 17.3 per channel): the patches carry it
    assert patches.noise.shape[1:] == (32, 32, 3) and 14 < float(patches.noise.std()) < 20
    cam = CameraModel.from_plain(json.loads((tmp_path / "run" / "camera.json").read_text()), patches)
    assert "noise patches" in cam.describe() and "noise patches" in res.stdout
    res = train(tmp_path / "plain", vgg19_path, *folders(data), "--from", str(src), "--steps", "1",
                "--camera-noise", "gaussian")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "plain" / "camera.json").is_file() and not (tmp_path / "plain" / "camera-noise.npz").exists()


def test_from_file_takes_its_architecture(tmp_path, vgg19_path, data):
    tiny = RRDBNet(num_feat=12, num_block=2, num_grow_ch=6)
    src = save_model(tiny, tmp_path / "tiny.safetensors")
    res = train(tmp_path / "run", vgg19_path, *folders(data), "--from", str(src), "--steps", "2",
                "--degradation", "learned")
    assert res.returncode == 0, res.stderr
    out = load_model(tmp_path / "run" / "last-reconstruction.safetensors")
    assert out.config == tiny.config
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    # fine-tuning defaults over the preset; the learned D asked for, and no D in a plain file: fresh D, R held
    assert (cfg["lr"], cfg["schedule"], cfg["ema"], cfg["psnr_warmup"], cfg["mode"]) == (1e-4, "constant", 0.99, 0,
                                                                                         "psnr")
    assert cfg["loss_weights_up"] == [1.0, 0.005, 1.0] and cfg["r_start"] >= 1
    assert cfg["init_r"] == str(src) and cfg["init_d"] is None
    # the closing report: the verdict, then bicubic, the start, the last and the exported model
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.startswith("Verdict: ")
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["bicubic", f"start ({src})", "last", "exported"]
    assert rows[0].startswith("| model | niqe") and report in res.stdout
    assert Image.open(tmp_path / "run" / "report.png").size == (4 * 4 * 64, 4 * 64)
    # R was held at step 0 (r_start 1 of 2), so the EMA (started at the source) moved by (1 - 0.99) of R's change
    assert cfg["r_start"] == 1
    r2 = torch.load(tmp_path / "run" / "checkpoints" / "ckpt-00000002.pt", weights_only=True)["nets"]["R"]
    src_state = tiny.state_dict()
    assert any(not torch.equal(r2[k], src_state[k]) for k in r2)
    for k, v in out.state_dict().items():
        torch.testing.assert_close(v - src_state[k], 0.01 * (r2[k] - src_state[k]), rtol=0, atol=1e-7)


@pytest.mark.slow  # a step of the full-size R (about a minute on 2 cores)
def test_from_bundled_full_size(tmp_path, vgg19_path, data):
    res = train(tmp_path / "run", vgg19_path, *folders(data), "--from", "track1-ft", "--steps", "1",
                "--ema", "0")
    assert res.returncode == 0, res.stderr
    out = load_model(tmp_path / "run" / "last-reconstruction.safetensors")  # (the export may be the start)
    assert (out.config["num_block"], out.config["num_feat"], out.config["num_grow_ch"]) == (23, 64, 32)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    # the default degradation is the camera estimate: no D is loaded or trained, the estimate is kept
    assert cfg["degradation"] == "camera" and cfg["init_d"] is None and cfg["r_start"] == 0
    assert (tmp_path / "run" / "camera.json").is_file()
    # one step moved R away from the bundled weights
    start = load_model("track1-ft")
    assert any(not torch.equal(v, start.state_dict()[k]) for k, v in out.state_dict().items())


@pytest.mark.slow  # a 30-second budget and a resume
def test_minutes_fits_steps_and_resume_keeps_them(tmp_path, vgg19_path, data):
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    res = train(run_dir, vgg19_path, *folders(data), "--minutes", "0.5")
    wall = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert wall < 0.5 * 60 + 90, wall  # the budget plus a generous allowance for start-up and export
    cfg = json.loads((run_dir / "config.json").read_text())
    steps = cfg["steps"]
    assert cfg["fitted_steps"] == steps and cfg["minutes"] == 0.5
    # timed 4 steps and fitted the rest (or, on a very loaded machine, ran out of time while timing)
    assert f"the run is set to {steps} steps" in res.stdout or "time is up" in res.stdout
    assert steps >= 2
    done = int(read_metadata(run_dir / "last-reconstruction.safetensors")["training_steps"])
    assert done <= steps
    # resume (without --minutes) from the older checkpoint: the fitted schedule, not the preset's 4 steps
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    ckpts[-1].unlink()
    res = train(run_dir, vgg19_path, *folders(data), "--resume")
    assert res.returncode == 0, res.stderr
    assert f"of {steps} on" in res.stdout
    assert json.loads((run_dir / "config.json").read_text())["steps"] == steps
    assert read_metadata(run_dir / "last-reconstruction.safetensors")["training_steps"] == str(steps)
    assert int(read_metadata(run_dir / "reconstruction.safetensors")["training_steps"]) <= steps  # the best round


def test_budget_fits_twice_on_a_clock_that_speeds_up(monkeypatch):
    from ddnsr.training import budget as budget_module
    from ddnsr.training.budget import Budget
    from ddnsr.training.config import TrainConfig

    clock = [0.0]
    monkeypatch.setattr(budget_module.time, "monotonic", lambda: clock[0])
    cfg = TrainConfig.from_preset("finetune", minutes=10)
    budget, fits = Budget(cfg, 0, t0=0.0), []
    step = 0
    while step < cfg.steps:  # 20 s of start-up, then 6 s a step for 8 steps, 4 s after
        clock[0] += 20.0 if step == 0 else (6.0 if step < 8 else 4.0)
        step += 1
        if (fitted := budget.after_step(cfg, step)) is not None:
            cfg = fitted
            fits.append((step, cfg.steps))
    # first fit after the 4 probe steps from 6 s a step: (600 x 0.94 - 38) / 6 more steps
    assert fits[0] == (4, 4 + int((600 * 0.94 - 38) / 6))
    # the second at a fifth of that later, from the steps since: faster now, so more of them
    first = fits[0][1]
    assert fits[1][0] == 4 + round(0.2 * first) and fits[1][1] > first
    assert len(fits) == 2 and cfg.fitted_steps == cfg.steps == fits[1][1]
    # the whole run fits the budget less its reserve and uses most of it (the first fit alone ends at 410 s;
    # the second's rate still holds four of the slow steps)
    assert 0.9 * 600 * 0.94 <= clock[0] <= 600 * 0.94
    assert not budget.time_up()


@pytest.mark.precision
def test_validation_scores_what_ddnsr_upscale_makes():
    # the crop is padded as the Upscaler pads a whole image, so validation sees no frame along its border
    from ddnsr import Upscaler
    from ddnsr.training.validation import upscale

    rng = np.random.default_rng(0)
    crop = (rng.random((64, 64, 3)) * 80 + np.linspace(40, 160, 64)[None, :, None]).astype(np.uint8)
    model = load_model("track1")
    ours = upscale(model, crop, torch.device("cpu"))
    up = Upscaler.load("track1", device="cpu", precision="fp32")  # validation runs fp32
    theirs = np.round(up.upscale_array(crop) * 255).astype(np.uint8)  # [0, 1]
    assert ours.shape == theirs.shape == (256, 256, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    with torch.no_grad():  # the plain pass differs along the border
        plain = model(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255)[0]
    plain = plain.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(plain[:4].astype(int) - theirs[:4].astype(int)).mean() > 2


def test_ema_is_the_running_average(tmp_path, vgg19_path, data):
    run_dir = tmp_path / "run"
    res = train(run_dir, vgg19_path, *folders(data), "--steps", "3", "--save-every", "1", "--ema", "0.75")
    assert res.returncode == 0, res.stderr
    c2, c3 = (torch.load(run_dir / "checkpoints" / f"ckpt-0000000{k}.pt", weights_only=True) for k in (2, 3))
    ema2, ema3, r3 = c2["ema"], c3["ema"], c3["nets"]["R"]
    assert any(not torch.equal(ema3[k], r3[k]) for k in r3)
    for k, v in ema3.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.75 * ema2[k] + 0.25 * r3[k], rtol=1e-6, atol=1e-7)
    last = load_model(run_dir / "last-reconstruction.safetensors").state_dict()
    assert all(torch.equal(last[k], ema3[k].float()) for k in ema3)


def test_validation_rows_and_best_checkpoint(tmp_path, vgg19_path, data):
    val_lr, val_hr = tmp_path / "val-lr", tmp_path / "val-hr"
    photos(val_lr, 2, 48, seed=5)
    val_hr.mkdir()
    for p in sorted(val_lr.iterdir()):  # ground truth: the LR's 4x nearest upscale (any 4x image will do)
        im = Image.open(p)
        im.resize((im.width * 4, im.height * 4), Image.NEAREST).save(val_hr / p.name)
    run_dir = tmp_path / "run"
    res = train(run_dir, vgg19_path, *folders(data), "--steps", "3", "--val-lr", str(val_lr), "--val-hr",
                str(val_hr), "--val-every", "1", "--ema", "0.5")
    assert res.returncode == 0, res.stderr
    rows = (run_dir / "validation.csv").read_text().splitlines()
    assert rows[0] == "step,psnr_y,ssim_y,niqe,piqe" and [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    psnr = [float(r.split(",")[1]) for r in rows[1:]]
    best = read_metadata(run_dir / "reconstruction.safetensors")  # the best round is what the run exports
    assert best["selected_by"] == "psnr_y" and best["training_steps"] == str(1 + psnr.index(max(psnr)))
    assert not (run_dir / "best-reconstruction.safetensors").exists()
    assert "step 3: validation psnr_y" in res.stdout
    # the row is what the exported (EMA) model scores on the centre crops
    from ddnsr.training.validation import Validator, load_val_images

    v = Validator(load_val_images([str(val_lr)], str(val_hr)), tmp_path / "scratch", None)
    again = v.mean_scores(load_model(run_dir / "last-reconstruction.safetensors"), torch.device("cpu"))
    assert abs(again["psnr_y"] - psnr[-1]) < 1e-3


def test_default_validation_uses_real_photos(tmp_path, vgg19_path, data):
    res = train(tmp_path / "run", vgg19_path, *folders(data), "--steps", "2")
    assert res.returncode == 0, res.stderr
    assert "validation: 4 of the --real-lr photos" in res.stdout
    assert (tmp_path / "run" / "validation.csv").read_text().splitlines()[0] == "step,niqe,piqe"
    assert read_metadata(tmp_path / "run" / "reconstruction.safetensors")["selected_by"] == "niqe"


def paired_validation(tmp_path: Path) -> list[str]:
    """``--val-lr/--val-hr`` flags for two 48 px LR photos whose ground truth is their 4x nearest upscale."""
    val_lr, val_hr = tmp_path / "val-lr", tmp_path / "val-hr"
    photos(val_lr, 2, 48, seed=5)
    val_hr.mkdir()
    for p in sorted(val_lr.iterdir()):
        im = Image.open(p)
        im.resize((im.width * 4, im.height * 4), Image.NEAREST).save(val_hr / p.name)
    return ["--val-lr", str(val_lr), "--val-hr", str(val_hr)]


def test_a_run_that_gets_worse_exports_its_start(tmp_path, vgg19_path, data):
    # do no harm: the start model is validation round 0, and a run made to get worse (a learning rate
    # 10,000 times too large) exports the start unchanged, says so in one line and in report.md's first line
    from ddnsr.formats.modelfile import resolve_model_path

    start = resolve_model_path("track1")  # a trained R (and D): any learning rate of 1 ruins it
    run_dir = tmp_path / "run"
    res = train(run_dir, vgg19_path, *folders(data), *paired_validation(tmp_path), "--from", "track1",
                "--steps", "2", "--val-every", "1", "--lr", "1", "--ema", "0")
    assert res.returncode == 0, res.stderr
    rows = (run_dir / "validation.csv").read_text().splitlines()
    psnr = [float(r.split(",")[1]) for r in rows[1:]]
    assert rows[1].startswith("0,") and len(psnr) >= 2 and max(psnr[1:]) < psnr[0] - 1  # it did get worse
    first = load_model(start).state_dict()
    exported = load_model(run_dir / "reconstruction.safetensors").state_dict()
    assert all(torch.equal(exported[k], first[k]) for k in first)
    assert read_metadata(run_dir / "reconstruction.safetensors")["training_steps"] == "0"
    if "a loss is not finite, training stops" in res.stdout:  # diverged to NaN: no last model to keep
        assert not (run_dir / "last-reconstruction.safetensors").exists()
    else:
        last = load_model(run_dir / "last-reconstruction.safetensors").state_dict()
        assert any(not torch.equal(last[k], first[k]) for k in first)
    report = (run_dir / "report.md").read_text().splitlines()
    assert report[0].startswith("Verdict: no round beat the start model on psnr_y")
    assert report[0] in res.stdout.splitlines()


def test_a_run_that_diverges_stops_and_exports_its_start(tmp_path, vgg19_path, data):
    # a loss that is not finite stops the run at once (no traceback); its last weights are not exported
    res = train(tmp_path / "run", vgg19_path, "--real-lr", str(data["lr"]), "--clean-hr", str(data["hr"]),
                "--from", "track1", "--steps", "6", "--lr", "1e6", "--ema", "0", "--val-lr", str(data["lr"]),
                "--val-every", "100")
    assert res.returncode == 0 and "a loss is not finite, training stops" in res.stdout, res.stderr
    assert (tmp_path / "run" / "reconstruction.safetensors").is_file()  # round 0: the start
    assert not (tmp_path / "run" / "last-reconstruction.safetensors").exists()


def test_a_run_that_gets_better_exports_its_best_round(tmp_path, vgg19_path, data):
    # the same start, a sane learning rate: the exported model is the best round, not the start
    start = tmp_path / "start.safetensors"
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, init="torch")
    with torch.no_grad():  # a start far from any image: a learned R beats it within a step or two
        net.conv_last.bias.fill_(0.8)
    save_model(net.eval(), start)
    run_dir = tmp_path / "run"
    res = train(run_dir, vgg19_path, *folders(data), *paired_validation(tmp_path), "--from", str(start),
                "--steps", "3", "--val-every", "1", "--lr", "1e-2", "--ema", "0", "--loss-weights-up", "0,0,1")
    assert res.returncode == 0, res.stderr
    psnr = [float(r.split(",")[1]) for r in (run_dir / "validation.csv").read_text().splitlines()[1:]]
    best = max(range(len(psnr)), key=lambda i: psnr[i])
    assert best > 0 and psnr[best] > psnr[0]
    assert read_metadata(run_dir / "reconstruction.safetensors")["training_steps"] == str(best)
    assert (run_dir / "report.md").read_text().startswith("Verdict: the adapted model beats the start on psnr_y")


def test_a_folder_that_is_not_a_run_is_refused_and_left_untouched(tmp_path, vgg19_path, data):
    # issue 26, 1: a user's folder holding their own config.json, report.md, results ... is never written into
    user = tmp_path / "user_run"
    user.mkdir()
    (user / "config.json").write_text('{"theme": "dark"}')
    (user / "report.md").write_text("my notes")
    (user / "reconstruction.safetensors").write_bytes(b"mine")
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    res = train(user, vgg19_path, *folders(data), "--steps", "1")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].endswith("an existing folder that is not a ddnsr run (it holds "
                                                         "config.json (not a ddnsr run's)); choose a new or empty "
                                                         "folder")
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before
    (user / "holiday.jpg").write_bytes(b"photo")
    res = train(user, vgg19_path, *folders(data), "--steps", "1")
    assert res.returncode == 1 and "it holds holiday.jpg)" in res.stderr
    assert sorted(p.name for p in user.iterdir()) == ["config.json", "holiday.jpg", "reconstruction.safetensors",
                                                      "report.md"]


def test_finished_run_resumed_and_val_hr_alone_are_refused(tmp_path, vgg19_path, data):
    # issue 26, 19: --resume on a finished run does not train on; --val-hr without --val-lr is an error
    run_dir = tmp_path / "run"
    assert train(run_dir, vgg19_path, *folders(data), "--steps", "1").returncode == 0
    ckpts = sorted((run_dir / "checkpoints").iterdir())
    res = train(run_dir, vgg19_path, *folders(data), "--steps", "1", "--resume", "--minutes", "1")
    assert res.returncode == 1 and "is a finished run (step 1 of 1); give --steps above 1" in res.stderr
    assert sorted((run_dir / "checkpoints").iterdir()) == ckpts
    res = train(tmp_path / "other", vgg19_path, *folders(data), "--val-hr", str(data["hr"]))
    assert res.returncode == 1 and "--val-hr needs --val-lr" in res.stderr
    assert not (tmp_path / "other").exists()


def test_a_bad_file_among_the_validation_photos_is_skipped(tmp_path, vgg19_path, data):
    # issue 26, 9: the default validation photos are the last readable ones; a bad one is skipped, not fatal
    lr = tmp_path / "lr"
    lr.mkdir()
    for p in data["lr"].iterdir():
        (lr / p.name).write_bytes(p.read_bytes())
    (lr / "9.png").write_bytes(b"not an image at all")
    res = train(tmp_path / "run", vgg19_path, "--real-lr", str(lr), "--clean-hr", str(data["hr"]), "--steps", "1")
    assert res.returncode == 0, res.stderr
    assert "validation: 4 of the --real-lr photos" in res.stdout


def test_validation_scores_keep_an_exact_output_best_and_a_failed_metric_worst():
    from ddnsr.training.validation import score

    rng = np.random.default_rng(0)
    hr = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    assert score(hr, hr)["psnr_y"] == float("inf")  # perfect: the best possible, not the worst
    flat = score(np.full((256, 256, 3), 128, np.uint8), None)
    assert flat["niqe"] == float("inf")  # NIQE cannot be computed on a flat image: the worst


def test_validation_reads_16_bit_files_exactly(tmp_path):
    """--val-lr/--val-hr are read as ddnsr evaluate reads them: a 16-bit PNG keeps its 16 bits (the training
    decoder keeps 8), and R, the bicubic row and the scores take them."""
    from ddnsr.training.closing import bicubic_x4
    from ddnsr.training.validation import load_val_images, score, upscale

    rng = np.random.default_rng(0)
    lr16 = rng.integers(0, 65536, (48, 48, 3), dtype=np.uint16)
    hr16 = np.repeat(np.repeat(lr16, 4, axis=0), 4, axis=1)
    from ddnsr.imageio.write import write_png16

    for folder, arr in (("lr", lr16), ("hr", hr16)):
        (tmp_path / folder).mkdir()
        with open(tmp_path / folder / "a.png", "wb") as f:
            write_png16(f, arr, None)
    (im,) = load_val_images([str(tmp_path / "lr")], str(tmp_path / "hr"))
    assert im.lr.dtype == np.uint16 and np.array_equal(im.lr, lr16) and np.array_equal(im.hr, hr16)
    sr = upscale(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), im.lr, torch.device("cpu"))
    assert sr.shape == (192, 192, 3) and sr.dtype == np.uint8
    assert bicubic_x4(im.lr).shape == (192, 192, 3) and np.isfinite(score(sr, im.hr)["psnr_y"])

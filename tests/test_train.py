"""ddnsr train: smoke runs on ../shared/data, exact resume after SIGKILL, torchrun, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import DATA, need
from ddnsr.formats.modelfile import load_model, read_metadata
from ddnsr.training.config import TrainConfig
from ddnsr.training.networks import build_networks

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DDNSR_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def train_cmd(run_dir: Path, *extra: str, source: str = "track1") -> list[str]:
    return [sys.executable, "-m", "ddnsr.cli", "train", "--preset", "smoke", "--source", source,
            "--records", str(need(DATA / "records.json")), "--run-dir", str(run_dir), "--quiet", *extra]


def run(cmd: list[str], vgg: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env={**ENV, "DDNSR_VGG19": str(vgg)}, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("source", ["track1", "track2"])
def test_smoke_run(tmp_path, vgg19_path, source):
    res = run(train_cmd(tmp_path / "run", "--steps", "3", source=source), vgg19_path)
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "run"
    rows = (run_dir / "losses.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert header[:3] == ["step", "lr", "time"] and "loss_R" in header and "loss_D" in header
    assert last[0] == "3" and all(float(v) == float(v) and abs(float(v)) < 1e12 for v in last[3:] if v)
    for f in ("reconstruction.safetensors", "degradation.safetensors", "loss_curves.png", "config.json"):
        assert (run_dir / f).is_file(), f
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step-00000002.png", "step-00000003.png"]
    assert any((run_dir / "tb").iterdir())
    meta = read_metadata(run_dir / "reconstruction.safetensors")
    assert meta["training_steps"] == "3" and meta["training_preset"] == "smoke"
    assert meta["training_data"].startswith(f"{source}-source")
    # R changed: its output on a held image differs from the same R before training (same seed)
    trained = load_model(run_dir / "reconstruction.safetensors")
    cfg = TrainConfig.from_preset("smoke", source=source, vgg_weights=str(vgg19_path))
    initial = build_networks(cfg, torch.device("cpu")).R.eval()
    held = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (trained(held) - initial(held)).abs().max() > 1e-6
    assert isinstance(load_model(run_dir / "degradation.safetensors"), torch.nn.Module)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for name in ("reconstruction", "degradation")
            for k, v in load_model(run_dir / f"{name}.safetensors").state_dict().items()}


def test_sigkill_and_resume_equals_uninterrupted(tmp_path, vgg19_path):
    steps = ["--steps", "6", "--save-every", "2"]
    ref = run(train_cmd(tmp_path / "ref", *steps), vgg19_path)
    assert ref.returncode == 0, ref.stderr
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(killed_dir, *steps), env={**ENV, "DDNSR_VGG19": str(vgg19_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed_dir / "checkpoints" / "ckpt-00000002.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "reconstruction.safetensors").exists()
    resumed = run(train_cmd(killed_dir, *steps, "--resume"), vgg19_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = final_weights(tmp_path / "ref"), final_weights(killed_dir)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(list((killed_dir / "checkpoints").glob("ckpt-*.pt"))) == 2  # the last two kept
    assert not list((killed_dir / "checkpoints").glob(".*part"))


def test_incompatible_resume_refused(tmp_path, vgg19_path):
    first = run(train_cmd(tmp_path / "run", "--steps", "2"), vgg19_path)
    assert first.returncode == 0, first.stderr
    res = run(train_cmd(tmp_path / "run", "--steps", "4", "--resume", "--mode", "psnr"), vgg19_path)
    assert res.returncode == 1
    assert "cannot resume with a different configuration" in res.stderr and "mode" in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    again = run(train_cmd(tmp_path / "run", "--steps", "4"), vgg19_path)
    assert again.returncode == 1 and "--resume" in again.stderr


def test_r_start_holds_r_while_d_learns(tmp_path, vgg19_path):
    """--r-start N: R's weights stay as they started for N steps; D and the discriminators move."""
    res = run(train_cmd(tmp_path / "run", "--steps", "2", "--save-every", "1", "--r-start", "2"), vgg19_path)
    assert res.returncode == 0, res.stderr
    first, second = (torch.load(tmp_path / "run" / "checkpoints" / f"ckpt-0000000{i}.pt", weights_only=True)
                     for i in (1, 2))
    init = build_networks(TrainConfig.from_preset("smoke"), torch.device("cpu")).R.state_dict()
    for k, v in second["nets"]["R"].items():
        torch.testing.assert_close(v, first["nets"]["R"][k], rtol=0, atol=0)
        torch.testing.assert_close(v, init[k], rtol=0, atol=0)
    for name in ("D", "Dlr"):
        assert any(not torch.equal(v, first["nets"][name][k]) for k, v in second["nets"][name].items()), name
    assert read_metadata(tmp_path / "run" / "reconstruction.safetensors")["r_start"] == "2"


def test_bad_records_key_is_one_line(tmp_path, vgg19_path):
    records = tmp_path / "records.json"
    records.write_text(json.dumps({"track1-source": "nowhere"}))
    cmd = train_cmd(tmp_path / "run", "--steps", "1")
    cmd[cmd.index("--records") + 1] = str(records)
    res = run(cmd, vgg19_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "track1-source" in res.stderr or "track1-target-div2k" in res.stderr


def test_torchrun_two_processes_keep_ranks_identical(tmp_path, vgg19_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "ddnsr.cli", *train_cmd(tmp_path / "run", "--steps", "3", "--device", "cpu")[3:]]
    res = run(cmd, vgg19_path, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    ranks = json.loads((tmp_path / "run" / "ranks.json").read_text())
    assert ranks["world_size"] == 2 and len(set(ranks["checksums"])) == 1
    assert (tmp_path / "run" / "reconstruction.safetensors").is_file()


def test_fp16_run_with_loss_scaling(tmp_path, vgg19_path):
    res = run(train_cmd(tmp_path / "run", "--steps", "2", "--precision", "fp16"), vgg19_path)
    assert res.returncode == 0, res.stderr
    last = (tmp_path / "run" / "losses.csv").read_text().splitlines()[-1].split(",")
    assert last[0] == "2" and all(abs(float(v)) < 1e12 for v in last[3:] if v)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "ckpt-00000002.pt", weights_only=True)
    scaler = ckpt["scaler"]  # two steps: each overflow halves the scale, each good step is counted
    assert scaler["scale"] in (2.0**16, 2.0**15, 2.0**14) and scaler["good"] <= 2


def test_bicubic_baseline_trains_r_alone(tmp_path, vgg19_path):
    """--degradation bicubic: R learns from bicubic downscales; no D is built, trained or exported."""
    res = run(train_cmd(tmp_path / "run", "--steps", "2", "--degradation", "bicubic"), vgg19_path)
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "run"
    assert (run_dir / "reconstruction.safetensors").is_file()
    assert not (run_dir / "degradation.safetensors").exists()
    assert read_metadata(run_dir / "reconstruction.safetensors")["degradation"] == "bicubic"
    ckpt = torch.load(run_dir / "checkpoints" / "ckpt-00000002.pt", weights_only=True)
    assert set(ckpt["nets"]) == {"R", "Dhr"}
    rows = (run_dir / "losses.csv").read_text().splitlines()
    row = dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    assert row["loss_R"] and not row["loss_D"] and not row["color_down"]


def test_colour_and_r_weights_reach_the_losses(tmp_path, vgg19_path):
    """--color-weight, --color-weight-up and --loss-weights-up change loss_D and loss_R as documented."""
    res = run(train_cmd(tmp_path / "run", "--steps", "1", "--color-weight", "50", "--color-weight-up", "3",
                        "--loss-weights-up", "1,0.005,0.2"), vgg19_path)
    assert res.returncode == 0, res.stderr
    header, last = ((tmp_path / "run" / "losses.csv").read_text().splitlines()[i].split(",") for i in (0, -1))
    v = {k: float(x) for k, x in zip(header, last, strict=True) if x}
    assert v["loss_D"] == pytest.approx(0.1 * v["content_down"] + v["adv_down"] + 10 * v["cycle_down"]
                                        + 50 * v["color_down"], rel=1e-4)
    assert v["color_up"] > 0
    assert v["loss_R"] == pytest.approx(v["content_up"] + 0.005 * v["adv_up"] + 0.2 * v["cycle_up"]
                                        + 3 * v["color_up"], rel=1e-4)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["loss_weights_up"] == [1.0, 0.005, 0.2]


def test_smoke_run_records_the_resolved_precision(tmp_path, vgg19_path):
    """precision 'auto' is resolved once at the start (DDNSR_CPU_BF16=0: fp32), printed, and recorded."""
    res = subprocess.run(train_cmd(tmp_path / "run", "--steps", "1"), capture_output=True, text=True, timeout=300,
                         env={**ENV, "DDNSR_VGG19": str(vgg19_path), "DDNSR_CPU_BF16": "0"})
    assert res.returncode == 0, res.stderr
    assert "training from step 0 of 1 on cpu" in res.stdout and "no native bf16), fp32" in res.stdout
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "fp32"
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "ckpt-00000001.pt", weights_only=True)
    assert ckpt["config"]["precision"] == "fp32"
    assert read_metadata(tmp_path / "run" / "reconstruction.safetensors")["precision"] == "fp32"


class Planted:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_resume_refuses_a_planted_checkpoint_without_running_it(tmp_path, vgg19_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "marker"
    torch.save({"step": 2, "config": {}, "nets": {}, "optimisers": {}, "scaler": {}, "rng": Planted(marker)},
               run_dir / "checkpoints" / "ckpt-00000002.pt")
    res = run(train_cmd(run_dir, "--steps", "4", "--resume"), vgg19_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "ckpt-00000002.pt" in res.stderr and "could run code" in res.stderr
    assert not marker.exists()


def test_resume_falls_back_past_a_garbage_checkpoint(tmp_path, vgg19_path):
    run_dir = tmp_path / "run"
    first = run(train_cmd(run_dir, "--steps", "1", "--save-every", "1"), vgg19_path)
    assert first.returncode == 0, first.stderr
    (run_dir / "checkpoints" / "ckpt-00000002.pt").write_bytes(b"PK\x03\x04 not a whole zip")  # a cut-off write
    res = run(train_cmd(run_dir, "--steps", "2", "--resume"), vgg19_path)
    assert res.returncode == 0, res.stderr
    said = [line for line in res.stderr.splitlines() if "ckpt-" in line]
    assert len(said) == 1 and "ckpt-00000002.pt" in said[0] and "resuming from the older ckpt-00000001.pt" in said[0]
    assert "training from step 1 of 2" in res.stdout
    rows = (run_dir / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert torch.load(run_dir / "checkpoints" / "ckpt-00000002.pt", weights_only=True)["step"] == 2  # rewritten
    for ckpt in (run_dir / "checkpoints").glob("ckpt-*.pt"):
        ckpt.write_bytes(b"garbage")
    res = run(train_cmd(run_dir, "--steps", "3", "--resume"), vgg19_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "none of the 2 checkpoints" in res.stderr


def test_a_second_trainer_on_a_locked_run_folder_is_refused(tmp_path, vgg19_path):
    import fcntl

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(json.dumps({"pid": os.getpid(), "host": "trainer-host"}) + "\n")
        held.flush()
        res = run(train_cmd(run_dir, "--steps", "1"), vgg19_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"pid {os.getpid()} on host trainer-host" in res.stderr
    assert not (run_dir / "losses.csv").exists() and not (run_dir / "checkpoints").exists()

"""ddnsr.training.checkpoint, runlock and runlog: safe loading, fallback, keeping, the run-folder lock, the CSV."""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import random
import socket

import numpy as np
import pytest
import torch

from ddnsr.errors import DdnsrError
from ddnsr.training.checkpoint import Checkpointer, CheckpointError, get_rng_state, set_rng_state
from ddnsr.training.runlock import RunFolderBusy, RunLock
from ddnsr.training.runlog import HEADER, RunLog


def state(seed: int = 0) -> dict:
    """A checkpoint's parts, small: a network's weights, an Adam state, the scaler, the config, the RNG."""
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), eps=1e-7)
    net(torch.rand(4, 3)).sum().backward()
    opt.step()
    return {"config": {"lr": 1e-4, "loss_weights": [0.1, 1.0, 10.0], "init_r": None}, "nets": {"R": net.state_dict()},
            "optimisers": {"R": opt.state_dict()}, "scaler": {"scale": 65536.0, "good": 0}, "rng": get_rng_state()}


class Planted:
    """Unpickling this runs a shell command: what a planted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_save_keeps_the_last_two_and_loads_back_without_code(tmp_path):
    ckpts = Checkpointer(tmp_path)
    for step in (1, 2, 3):
        ckpts.save(step, state(step))
    assert [p.name for p in ckpts.paths()] == ["ckpt-00000002.pt", "ckpt-00000003.pt"]
    assert not [p for p in ckpts.folder.iterdir() if p.name.startswith(".")]  # no temporaries left
    loaded = torch.load(ckpts.latest(), weights_only=True)  # plain values and tensors only
    assert loaded["step"] == 3 and loaded["config"]["loss_weights"] == [0.1, 1.0, 10.0]
    ref = state(3)
    assert all(torch.equal(v, ref["nets"]["R"][k]) for k, v in loaded["nets"]["R"].items())
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    opt.load_state_dict(loaded["optimisers"]["R"])  # the Adam state survives weights_only loading
    assert opt.state_dict()["state"][0]["step"] == 1


@pytest.mark.parametrize("kind", ["torch.save", "plain pickle"])
def test_a_planted_checkpoint_is_refused_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "marker"
    ckpts = Checkpointer(tmp_path / "run")
    ckpts.folder.mkdir(parents=True)
    evil = {**state(), "step": 5, "rng": Planted(marker)}
    path = ckpts.folder / "ckpt-00000005.pt"
    if kind == "torch.save":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil))
    with pytest.raises(CheckpointError) as exc:
        ckpts.load_latest()
    assert not marker.exists()
    message = str(exc.value)
    assert "\n" not in message and str(path) in message and "could run code" in message
    assert isinstance(exc.value, DdnsrError)


def test_an_unreadable_newest_checkpoint_falls_back_to_the_older_one(tmp_path):
    ckpts = Checkpointer(tmp_path)
    ckpts.save(1, state(1))
    ckpts.save(2, state(2))
    newest = ckpts.latest()
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # cut short, as by a full disk
    said = []
    path, loaded = ckpts.load_latest(warn=said.append)
    assert path.name == "ckpt-00000001.pt" and loaded["step"] == 1
    assert len(said) == 1 and "ckpt-00000002.pt" in said[0] and "older ckpt-00000001.pt" in said[0]
    assert "\n" not in said[0]


def test_no_readable_checkpoint_is_one_line(tmp_path):
    ckpts = Checkpointer(tmp_path)
    ckpts.folder.mkdir()
    (ckpts.folder / "ckpt-00000001.pt").write_bytes(b"garbage")
    (ckpts.folder / "ckpt-00000002.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as exc:
        ckpts.load_latest(warn=lambda line: None)
    assert "none of the 2 checkpoints" in str(exc.value) and "\n" not in str(exc.value)
    torch.save({"step": 3}, ckpts.folder / "ckpt-00000003.pt")  # readable, but not ours
    with pytest.raises(CheckpointError, match="not a ddnsr training checkpoint"):
        ckpts.load(ckpts.folder / "ckpt-00000003.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty").load_latest()


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    Checkpointer(tmp_path).save(1, {**state(), "rng": get_rng_state()})
    expected = (torch.rand(4), np.random.rand(4), random.random())
    rng = torch.load(tmp_path / "checkpoints" / "ckpt-00000001.pt", weights_only=True)["rng"]
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    set_rng_state(rng)
    got = (torch.rand(4), np.random.rand(4), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_a_held_run_folder_is_refused_naming_its_holder(tmp_path):
    with RunLock(tmp_path) as lock:
        info = json.loads(lock.path.read_text())
        assert info == {"pid": os.getpid(), "host": socket.gethostname()}
        with pytest.raises(RunFolderBusy) as exc:
            RunLock(tmp_path).acquire()  # a second open file: flock refuses it even in this process
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in str(exc.value)
        assert "--run-dir" in str(exc.value) and "\n" not in str(exc.value)
    with RunLock(tmp_path):  # released at the end of the run; the file (now stale) does not block
        pass


def test_a_lock_held_by_another_process_is_refused(tmp_path):
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b'{"pid": 4242, "host": "elsewhere"}\n')
    try:
        with pytest.raises(RunFolderBusy, match="pid 4242 on host elsewhere"):
            RunLock(tmp_path).acquire()
    finally:
        os.close(fd)


def test_resuming_drops_the_csv_rows_after_the_checkpoint(tmp_path):
    old_header = ["step", "lr", "time", "loss_R", "gone"]  # an older file's columns
    rows = [",".join(old_header)] + [f"{s},0.0001,{s}.0,{s / 10},x" for s in range(1, 6)]
    (tmp_path / "losses.csv").write_text("\n".join(rows) + "\n")
    log = RunLog(tmp_path, start=3)
    log.losses(4, 1e-4, {"loss_R": 0.5})
    log.finish()
    lines = (tmp_path / "losses.csv").read_text().splitlines()
    assert lines[0].split(",") == list(HEADER)
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    assert lines[1].split(",")[HEADER.index("loss_R")] == "0.1"
    assert (tmp_path / "loss_curves.png").is_file()
    with pytest.raises(FloatingPointError):
        RunLog(tmp_path / "new", start=0).losses(1, 1e-4, {"loss_R": float("nan")})

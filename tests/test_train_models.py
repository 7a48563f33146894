"""``tools/train_models.py``: every recipe is a valid ``ddnsr train`` configuration of the cpu preset, and
runs started side by side finish, or are stopped at the deadline and exported from their last checkpoint."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, need
from ddnsr.cli.train import add_arguments, config_from_args
from ddnsr.training.networks import loss_config

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "train_models.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("train_models", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.mark.parametrize("name", sorted(tool.MODELS))
def test_every_recipe_is_a_valid_cpu_preset_run(name):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--preset", "cpu", *tool.MODELS[name]]))
    loss = loss_config(cfg)  # raises on an impossible combination (e.g. R's colour term with bicubic pairs)
    assert cfg.steps == 2100 and cfg.preset == "cpu"
    if name in ("track1", "track1-single"):  # the shipped Track-1 models are the preset as it is
        assert loss.weight_color_up == 20.0 and loss.weight_color == 50.0
    if "bicubic" in name:
        assert loss.degradation == "bicubic" and loss.weight_color_up == 0.0


def test_shipped_models_are_recipes():
    assert set(tool.SHIPPED) <= set(tool.MODELS)


def test_parallel_runs_and_the_deadline(tmp_path, vgg19_path):
    """Two smoke runs side by side finish and export; a run still going at the deadline is killed and its
    last checkpoint exported, and summary.json says which is which."""
    env = {**os.environ, "DDNSR_VGG19": str(vgg19_path), "DDNSR_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    records = str(need(DATA / "records.json"))
    base = [sys.executable, str(TOOL), "--records", records, "--preset", "smoke", "--device", "cpu"]
    res = subprocess.run([*base, "--out", str(tmp_path / "a"), "--only", "track1,track1-bicubic", "--parallel", "2"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    both = ["degradation.safetensors", "reconstruction.safetensors"]
    assert summary["track1"]["finished"] and summary["track1"]["files"] == both
    assert summary["track1-bicubic"]["finished"] and summary["track1-bicubic"]["files"] == both[1:]

    res = subprocess.run([*base, "--out", str(tmp_path / "b"), "--only", "track1", "--deadline-min", "1",
                          "--extra", "--steps 100000 --save-every 1"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "b" / "summary.json").read_text())["track1"]
    assert not info["finished"] and info["returncode"] == "killed at the deadline"
    assert info["exported_at_step"] >= 1 and info["files"] == ["degradation.safetensors", "reconstruction.safetensors"]
    from ddnsr.formats.modelfile import read_metadata

    meta = read_metadata(tmp_path / "b" / "track1" / "reconstruction.safetensors")
    assert meta["training_steps"] == str(info["exported_at_step"])

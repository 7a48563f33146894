"""ddnsr.training.config and ddnsr.cli.train: presets against flags, range checks, precision 'auto'."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
import torch

from ddnsr.cli.train import add_arguments, config_from_args
from ddnsr.errors import SettingError
from ddnsr.training import config as config_module
from ddnsr.training.config import PRESETS, TrainConfig, config_differences
from ddnsr.training.precision import resolve_precision


def parse(*argv: str) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


@pytest.fixture
def lr_preset(monkeypatch):
    """A preset that sets settings whose flags used to have argparse defaults (lr, mode, init, seed...)."""
    monkeypatch.setitem(PRESETS, "fast-lr", {**PRESETS["smoke"], "lr": 3e-4, "mode": "psnr", "init": "esrgan",
                                             "seed": 7, "input_type": "single", "bn_mode": "batch",
                                             "restart_adam": True, "precision": "bf16"})
    return "fast-lr"


def test_a_preset_sets_what_the_user_did_not_give(lr_preset):
    cfg = parse("--preset", lr_preset)
    assert cfg.lr == 3e-4 and cfg.mode == "psnr" and cfg.init == "esrgan" and cfg.seed == 7
    assert cfg.input_type == "single" and cfg.bn_mode == "batch" and cfg.restart_adam and cfg.precision == "bf16"
    assert cfg.run_dir == f"runs/track1-div2k-{lr_preset}"


def test_an_explicit_flag_wins_over_the_preset(lr_preset):
    cfg = parse("--preset", lr_preset, "--lr", "5e-5", "--mode", "esrgan", "--init", "keras", "--seed", "0",
                "--precision", "fp32")
    assert (cfg.lr, cfg.mode, cfg.init, cfg.seed, cfg.precision) == (5e-5, "esrgan", "keras", 0, "fp32")
    assert cfg.restart_adam  # not given: the preset's


def test_the_shipped_presets_through_the_command_line():
    cpu = parse("--preset", "cpu")
    assert (cpu.steps, cpu.psnr_warmup, cpu.color_weight, cpu.color_weight_up, cpu.precision) == (
        2100, 700, 50.0, 20.0, "auto")
    assert cpu.loss_weights_up == (1.0, 0.005, 0.2) and cpu.lr == 1e-4
    paper = parse()
    assert paper == TrainConfig(run_dir="runs/track1-div2k-paper")
    assert parse("--preset", "cpu", "--color-weight-up", "0", "--batch-size", "4").color_weight_up == 0.0


@pytest.mark.parametrize("argv", [["--lr", "inf"], ["--lr", "nan"], ["--lr", "0"], ["--lr", "-1e-4"],
                                  ["--lr", "fast"], ["--color-weight", "-1"], ["--color-weight-up", "inf"],
                                  ["--loss-weights", "1,inf,1"], ["--loss-weights-up", "1,2"],
                                  ["--steps", "0"], ["--batch-size", "-2"], ["--save-every", "0"],
                                  ["--psnr-warmup", "-1"], ["--workers", "-1"], ["--seed", "1.5"],
                                  ["--minutes", "1e308"], ["--minutes", "600000"]])
def test_bad_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[0]}" in err and "Traceback" not in err


def test_lr_inf_on_the_command_line_exits_2_without_traceback():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run([sys.executable, "-m", "ddnsr.cli", "train", "--lr", "inf"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 2 and "argument --lr: expected a finite number" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("setting", [{"lr": float("inf")}, {"lr": 0.0}, {"color_weight": float("nan")},
                                     {"loss_weights": (1.0, -1.0, 1.0)}, {"steps": 0}, {"mode": "fast"},
                                     {"precision": "fp8"}, {"no_such_setting": 1}, {"minutes": 1e308}])
def test_the_library_refuses_bad_settings_in_one_line(setting):
    with pytest.raises(SettingError) as exc:
        TrainConfig.from_preset("smoke", **setting)
    assert "\n" not in str(exc.value) and next(iter(setting)).split("_")[0] in str(exc.value)
    with pytest.raises(SettingError):
        TrainConfig.from_preset("nonesuch")


@pytest.mark.parametrize(("native", "expected"), [("0", "fp32"), ("1", "bf16")])
def test_precision_auto_follows_the_cpus_native_bf16(monkeypatch, native, expected):
    monkeypatch.setenv("DDNSR_CPU_BF16", native)
    cpu = torch.device("cpu")
    assert resolve_precision(parse("--preset", "cpu"), cpu).precision == expected
    assert resolve_precision(parse("--preset", "cpu", "--precision", "fp32"), cpu).precision == "fp32"


def test_a_resume_keeps_the_recorded_precision_or_refuses_an_explicit_other(monkeypatch):
    monkeypatch.setenv("DDNSR_CPU_BF16", "0")  # this machine would choose fp32
    saved = TrainConfig.from_preset("cpu", precision="bf16").compat()  # as written on a GPU ('auto' resolved)
    here = resolve_precision(TrainConfig.from_preset("cpu"), torch.device("cpu"), saved)
    assert here.precision == "bf16" and config_differences(saved, here) == []
    explicit = resolve_precision(TrainConfig.from_preset("cpu", precision="fp32"), torch.device("cpu"), saved)
    assert config_differences(saved, explicit) == ["precision: checkpoint 'bf16', now 'fp32'"]


def test_checkpoint_from_before_a_new_setting_still_resumes():
    """A setting added after a checkpoint was written counts as its default then: no difference unless set."""
    cfg = TrainConfig.from_preset("smoke")
    saved = {k: v for k, v in cfg.compat().items() if k != "color_weight_up"}
    assert config_differences(saved, cfg) == []
    changed = TrainConfig.from_preset("smoke", color_weight_up=2.0)
    assert config_differences(saved, changed) == ["color_weight_up: checkpoint 0.0, now 2.0"]


def test_resumable_settings_are_fields():
    names = {f for f in TrainConfig.__dataclass_fields__}
    assert config_module.RESUMABLE <= names
    for preset in PRESETS.values():
        assert set(preset) <= names


def test_the_learning_rate_schedules():
    halving = TrainConfig(steps=600, lr=1e-4)
    # the official phases (50, 100, 200, 300) / 300 of the run: the rate halves after each
    assert [halving.lr_at(s) for s in (0, 99, 100, 199, 200, 399, 400, 599)] == [
        1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5, 1.25e-5, 1.25e-5]
    constant = TrainConfig(steps=600, lr=1e-4, schedule="constant")
    assert {constant.lr_at(s) for s in range(600)} == {1e-4}
    with pytest.raises(SettingError, match="--schedule"):
        TrainConfig(schedule="cosine").validate()


def test_fine_tuning_defaults_and_a_flag_over_them():
    tuned = parse("--from", "track1")
    assert (tuned.preset, tuned.schedule, tuned.psnr_warmup) == ("finetune", "constant", 0)
    assert {k: getattr(tuned, k) for k in config_module.FINETUNE} == config_module.FINETUNE
    assert parse("--from", "track1", "--schedule", "halving", "--lr", "2e-5").lr_at(599) == 2e-5 / 8
    # over another preset too, and not without --from
    assert parse("--preset", "cpu", "--from", "track1").schedule == "constant"
    assert parse("--preset", "cpu").schedule == "halving"

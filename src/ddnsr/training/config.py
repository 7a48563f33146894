"""What defines a training run: :class:`TrainConfig`, the presets, and what may change on resume.

This module is the one source of defaults: a field's default here is the ``paper`` preset's value
(the official configuration), and a preset in :data:`PRESETS` overrides some of them. The command
line (:mod:`ddnsr.cli.train`) leaves every option at ``None`` unless the user gives it, so a preset
can set anything and an explicit flag always wins over the preset.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ddnsr.errors import SettingError

__all__ = ["PHASES", "PRECISIONS", "PRESETS", "RESUMABLE", "TrainConfig", "config_differences"]

PRESETS: dict[str, dict[str, Any]] = {
    # the official configuration: full-size networks, batch 16, (50, 100, 200, 300) x 1024 steps
    "paper": dict(steps=307_200, batch_size=16, r_blocks=23, r_feat=64, r_grow=32, d_filters=64, d_res_blocks=8,
                  dhr_filters=64, dlr_filters=128, save_every=5 * 1024, sample_every=5 * 1024, log_every=100,
                  num_workers=4),
    # about an hour on 2 CPU cores: measured 1.0 s/step in the PSNR warm-up, 2.25 s/step after (README)
    # and three anchors of colour that the official losses lack (docs/results.md, "Colour drift"): R's L1 weight 0.2
    # instead of 0.01, D's colour term at weight 50, and R's colour term on the real LR at weight 20.
    # precision 'auto': bf16 autocast only where the CPU computes bf16 natively (else it is ~6x slower)
    "cpu": dict(steps=2100, psnr_warmup=700, batch_size=8, r_blocks=6, r_feat=32, r_grow=16, d_filters=32,
                d_res_blocks=4, dhr_filters=32, dlr_filters=64, save_every=250, sample_every=250, log_every=10,
                num_workers=1, precision="auto", loss_weights_up=(1.0, 0.005, 0.2), color_weight=50.0,
                color_weight_up=20.0),
    # seconds, for tests
    "smoke": dict(steps=4, batch_size=2, r_blocks=1, r_feat=8, r_grow=4, d_filters=8, d_res_blocks=1,
                  dhr_filters=4, dlr_filters=4, save_every=2, sample_every=2, log_every=1, num_workers=0,
                  shuffle_buffer=32, crops_per_image=4),
}

# fine-tuning (--from): over any preset, these unless given (docs/adapt.md says why)
# mode psnr: R learns by MSE alone (no HR discriminator, no VGG term): measured on the camera's exact pairs
# (tools/finetune_bound.py), esrgan mode lost PSNR in every short fine-tune while psnr mode gained on the
# start and on bicubic (docs/adapt.md, "2026-12-06"); a step is also cheaper (docs/speed.md)
# degradation camera: R learns from clean HR taken through the camera's estimated pipeline (its own JPEG,
# sharpening and noise, training/camera.py) instead of D's output: on four synthetic cameras it matched the
# oracle where the learned D fell short (docs/adapt.md, "The camera estimate")
FINETUNE: dict[str, Any] = dict(lr=1e-4, schedule="constant", psnr_warmup=0, ema=0.99, mode="psnr",
                                loss_weights_up=(1.0, 0.005, 1.0), degradation="camera")
# --from without --preset: the 'finetune' preset, sized so that 20 minutes on 2 CPU cores do a few
# hundred steps (small discriminators as the cpu preset, batch 4 of 32 px LR crops)
PRESETS["finetune"] = {**PRESETS["cpu"], **FINETUNE, "steps": 600, "batch_size": 4, "lr_crop": 32,
                       "shuffle_buffer": 256, "save_every": 100, "sample_every": 100, "log_every": 5}

# phases of the official schedule, as fractions of the whole run: (50, 100, 200, 300) x 1024 steps
PHASES = (50 / 300, 100 / 300, 200 / 300, 1.0)

# 'auto' is resolved when the run starts (ddnsr.inference.device.default_precision) and recorded resolved
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: The largest ``--minutes`` taken: a year (the step count fitted from it stays a finite integer).
MAX_MINUTES = 366 * 24 * 60

# settings that may differ between a run and its resumption (they do not change what is computed)
RESUMABLE = {"steps", "minutes", "fitted_steps", "real_lr", "clean_hr", "val_lr", "val_hr", "val_every", "select",
             "run_dir", "save_every", "sample_every", "log_every", "device", "num_workers", "records",
             "data_root", "resume", "quiet", "compile"}

CHOICES = {"source": ("track1", "track2"), "target": ("div2k", "cleanup", "mixed", "canon"),
           "mode": ("esrgan", "psnr"), "input_type": ("dual", "single"), "init": ("keras", "esrgan"),
           "hr_disc": ("auto", "vgg", "patch"), "bn_mode": ("frozen", "batch"),
           "vgg_preprocess": ("official", "caffe"), "degradation": ("learned", "bicubic", "camera"),
           "camera_noise": ("patches", "gaussian"),
           "precision": PRECISIONS, "schedule": ("halving", "constant")}

# integer settings and their smallest allowed value
MINIMUM = {"steps": 1, "batch_size": 1, "save_every": 1, "sample_every": 1, "log_every": 1, "lr_crop": 4,
           "crops_per_image": 1, "shuffle_buffer": 1, "r_blocks": 1, "r_feat": 1, "r_grow": 1, "d_filters": 1,
           "d_res_blocks": 1, "dhr_filters": 1, "dlr_filters": 1, "psnr_warmup": 0, "r_start": 0, "num_workers": 0,
           "seed": 0}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the 'paper' preset's."""

    source: str = "track1"
    target: str = "div2k"
    records: str | None = None
    data_root: str | None = None
    run_dir: str | None = None  # None: runs/<source>-<target>-<preset>
    preset: str = "paper"
    steps: int = 307_200
    mode: str = "esrgan"
    psnr_warmup: int = 0  # esrgan mode only: train R with the psnr-mode loss for the first N steps
    r_start: int = 0  # R is held (not updated) for the first N steps while D and the discriminators learn
    input_type: str = "dual"
    loss_weights: tuple[float, float, float] = (0.1, 1.0, 10.0)
    loss_weights_up: tuple[float, float, float] = (1.0, 0.005, 0.01)  # R: content, adversarial, L1
    init_r: str | None = None
    init: str = "keras"
    lr: float = 1e-4
    schedule: str = "halving"  # 'halving': the rate halves after each phase (official); 'constant'
    restart_adam: bool = False
    batch_size: int = 16
    lr_crop: int = 32
    crops_per_image: int = 16
    shuffle_buffer: int = 1024
    r_blocks: int = 23
    r_feat: int = 64
    r_grow: int = 32
    d_filters: int = 64
    d_res_blocks: int = 8
    dhr_filters: int = 64
    dlr_filters: int = 128
    hr_disc: str = "auto"  # 'vgg' (Track 1), 'patch' (Track 2) or 'auto'
    bn_mode: str = "frozen"
    vgg_preprocess: str = "official"
    color_weight: float = 0.0  # not in the official code: D keeps the local mean colour (losses.LossConfig)
    color_weight_up: float = 0.0  # not in the official code: R keeps the real LR's local mean colour
    degradation: str = "learned"  # 'bicubic': R learns from bicubic downscales (track1-bicubic baseline);
    # 'camera': from the camera's estimated pipeline (training/camera.py; the --from default)
    camera_noise: str = "patches"  # --degradation camera: the camera's own noise patches + Gaussian luma
    # noise ('patches'), or the Gaussian alone ('gaussian', the estimate before 2026-12-07)
    vgg_weights: str | None = None
    save_every: int = 5 * 1024
    sample_every: int = 5 * 1024
    log_every: int = 100
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16; recorded resolved in config.json and checkpoints
    compile: bool = False
    num_workers: int = 4
    seed: int = 0
    resume: bool = False
    quiet: bool = False
    real_lr: tuple[str, ...] | None = None  # folders of the camera's photos (instead of records.json)
    clean_hr: tuple[str, ...] | None = None  # folders of clean photos, or ('self',): the real LR halved
    from_model: str | None = None  # --from: bundled name, run folder or model file (training/start.py)
    init_d: str | None = None  # D's starting weights (set from --from)
    ema: float = 0.0  # decay of R's moving average (0: off); the export is the average (training/ema.py)
    minutes: float | None = None  # --minutes: fit the schedule to this wall clock (training/budget.py)
    fitted_steps: int | None = None  # the step count --minutes settled on (kept by --resume)
    val_lr: tuple[str, ...] | None = None  # validation LR folders (training/validation.py)
    val_hr: str | None = None  # their ground truth (same names), for PSNR-Y/SSIM-Y
    val_every: int | None = None  # None: at every save
    select: str | None = None  # metric choosing the exported round (psnr_y with HR, else niqe)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.run_dir:
            self.run_dir = f"runs/{self.source}-{self.target}-{self.preset}"

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> TrainConfig:
        """The preset's configuration; every override that is not None wins over the preset.

        Raises:
            SettingError: an unknown preset or setting, or a value out of range (:meth:`validate`).
        """
        if preset not in PRESETS:
            raise SettingError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise SettingError(f"unknown training setting(s): {', '.join(unknown)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        tuning = FINETUNE if given.get("from_model") else {}
        values = {**PRESETS[preset], **tuning, **given}
        if values.get("degradation", "learned") != "learned":  # the colour terms need D: off unless given
            values.update({k: 0.0 for k in ("color_weight", "color_weight_up") if k not in given})
        return cls(preset=preset, **values).validate()

    def validate(self) -> TrainConfig:
        """Check every setting's range and choices; returns ``self``.

        Raises:
            SettingError: naming the first bad setting and its value.
        """
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise SettingError(f"{_flag(name)} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name, low in MINIMUM.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingError(f"{_flag(name)} must be an integer of at least {low}, got {value!r}")
        if not (isinstance(self.ema, (int, float)) and 0.0 <= self.ema < 1.0):
            raise SettingError(f"--ema must be a number in [0, 1) (0: off), got {self.ema!r}")
        if self.minutes is not None and not (isinstance(self.minutes, (int, float))
                                             and 0 < self.minutes <= MAX_MINUTES):
            raise SettingError(f"--minutes must be a number above 0 and at most {MAX_MINUTES}, got {self.minutes!r}")
        if self.val_every is not None and (isinstance(self.val_every, bool) or not isinstance(self.val_every, int)
                                           or self.val_every < 1):
            raise SettingError(f"--val-every must be an integer of at least 1, got {self.val_every!r}")
        if self.val_hr is not None and not self.val_lr:
            raise SettingError("--val-hr needs --val-lr (the LR photos whose ground truth it holds)")
        for name in ("real_lr", "clean_hr", "val_lr"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(str(v) for v in getattr(self, name)))
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise SettingError(f"--lr must be a finite number above 0, got {self.lr!r}")
        for name in ("color_weight", "color_weight_up"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise SettingError(f"{_flag(name)} must be a finite number of at least 0, got {value!r}")
        for name in ("loss_weights", "loss_weights_up"):
            value = tuple(getattr(self, name))
            if len(value) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in value):
                raise SettingError(f"{_flag(name)} must be three finite numbers of at least 0, got {value!r}")
            setattr(self, name, value)
        return self

    def phase_ends(self) -> list[int]:
        """The last step (exclusive) of each phase of the schedule."""
        return [max(1, round(f * self.steps)) for f in PHASES]

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): halved after each phase end ('halving'), or ``lr``
        throughout ('constant')."""
        if self.schedule == "constant":
            return self.lr
        return self.lr * 0.5 ** sum(step >= end for end in self.phase_ends()[:-1])

    def compat(self) -> dict[str, Any]:
        """The settings a resumed run must share with its checkpoint (all but :data:`RESUMABLE`)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RESUMABLE}

    def as_plain(self) -> dict[str, Any]:
        """The configuration as plain JSON-able values (tuples as lists), for config.json and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _flag(name: str) -> str:
    special = {"input_type": "input", "num_workers": "workers", "from_model": "from"}
    return "--" + special.get(name, name).replace("_", "-")


def config_differences(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Human-readable differences between a checkpoint's configuration and ``cfg`` (compatibility keys).

    A setting added after the checkpoint was written counts as having had its default then.
    """
    now = cfg.compat()
    defaults = TrainConfig().compat()
    diffs = []
    for k, v in now.items():
        old = saved.get(k, defaults.get(k))
        if isinstance(old, list):
            old = tuple(old)
        if isinstance(v, list):
            v = tuple(v)
        if old != v:
            diffs.append(f"{k}: checkpoint {old!r}, now {v!r}")
    return diffs

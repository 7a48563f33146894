"""``ddnsr train``: D and R trained together on unpaired real LR and clean HR (METHOD.md).

A run folder holds ``config.json``, ``checkpoints/ckpt-<step>.pt`` (the last two), ``tb/``
(TensorBoard scalars and image grids), ``samples/step-<step>.png``, ``losses.csv``, and at the end
``loss_curves.png``, ``reconstruction.safetensors`` and ``degradation.safetensors``.

Optimisation: one Adam per network (beta1 0.9, beta2 0.999, epsilon 1e-7, as Keras), the learning
rate halved at the end of each phase of the schedule. The official code builds a new Adam at every
phase, so its moments restart; we keep the moments across phases (the usual modern equivalent)
unless ``--restart-adam`` asks for the official behaviour.

Several processes (``torchrun --nproc_per_node N``): every rank draws its own batch of
``batch_size`` crops (a disjoint part of the data stream), the per-network gradients are averaged
over the ranks (what DistributedDataParallel does; done explicitly because each network's gradient
comes from ``torch.autograd.grad`` of its own loss), so the effective batch is N x batch_size at the
same learning rate. Only rank 0 writes anything.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ddnsr.nets import DegradationNet, PatchGANDiscriminator, RRDBNet, VGG19Features, VGGStyleDiscriminator
from ddnsr.training.losses import LossConfig, Networks, apply_gradients, detach_losses, step_gradients

PRESETS: dict[str, dict] = {
    # the official configuration: full-size networks, batch 16, (50, 100, 200, 300) x 1024 steps
    "paper": dict(steps=307_200, batch_size=16, r_blocks=23, r_feat=64, r_grow=32, d_filters=64, d_res_blocks=8,
                  dhr_filters=64, dlr_filters=128, save_every=5 * 1024, sample_every=5 * 1024, log_every=100,
                  num_workers=4),
    # about an hour on 2 CPU cores: measured 1.0 s/step in the PSNR warm-up, 2.25 s/step after (README)
    # and three anchors of colour that the official losses lack (README, "Colour drift"): R's L1 weight 0.2
    # instead of 0.01, D's colour term at weight 50, and R's colour term on the real LR at weight 20
    "cpu": dict(steps=2100, psnr_warmup=700, batch_size=8, r_blocks=6, r_feat=32, r_grow=16, d_filters=32,
                d_res_blocks=4, dhr_filters=32, dlr_filters=64, save_every=250, sample_every=250, log_every=10,
                num_workers=1, precision="bf16", loss_weights_up=(1.0, 0.005, 0.2), color_weight=50.0,
                color_weight_up=20.0),
    # seconds, for tests
    "smoke": dict(steps=4, batch_size=2, r_blocks=1, r_feat=8, r_grow=4, d_filters=8, d_res_blocks=1,
                  dhr_filters=4, dlr_filters=4, save_every=2, sample_every=2, log_every=1, num_workers=0,
                  shuffle_buffer=32, crops_per_image=4),
}

# losses.csv columns (a psnr-mode step leaves the esrgan-only ones empty, and the reverse)
LOSS_COLUMNS = ("loss_R", "loss_D", "loss_Dhr", "loss_Dlr", "content_up", "adv_up", "cycle_up", "adv_disc_up",
                "loss_up", "content_down", "adv_down", "cycle_down", "adv_disc_down", "color_down",
                "color_up")

# phases of the official schedule, as fractions of the whole run: (50, 100, 200, 300) x 1024 steps
PHASES = (50 / 300, 100 / 300, 200 / 300, 1.0)

# settings that may differ between a run and its resumption (they do not change what is computed)
RESUMABLE = {"steps", "run_dir", "save_every", "sample_every", "log_every", "device", "num_workers", "records",
             "data_root", "resume", "quiet", "compile"}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the 'paper' preset's."""

    source: str = "track1"
    target: str = "div2k"
    records: str | None = None
    data_root: str | None = None
    run_dir: str = "runs/ddnsr"
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
    degradation: str = "learned"  # 'bicubic': R learns from bicubic downscales (track1-bicubic baseline)
    vgg_weights: str | None = None
    save_every: int = 5 * 1024
    sample_every: int = 5 * 1024
    log_every: int = 100
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    num_workers: int = 4
    seed: int = 0
    resume: bool = False
    quiet: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_preset(cls, preset: str, **overrides) -> TrainConfig:
        if preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(preset=preset, **values)

    def phase_ends(self) -> list[int]:
        return [max(1, round(f * self.steps)) for f in PHASES]

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): halved after each phase end."""
        return self.lr * 0.5 ** sum(step >= end for end in self.phase_ends()[:-1])

    def compat(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RESUMABLE}


# ---------------------------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------------------------

def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here")
    return dev


def build_networks(cfg: TrainConfig, device: torch.device) -> Networks:
    """The four networks of ``cfg`` (R from ``--init-r`` when given) and the frozen VGG19."""
    torch.manual_seed(cfg.seed)
    if cfg.init_r:
        from ddnsr.formats.modelfile import load_model

        R = load_model(cfg.init_r)
        if not isinstance(R, RRDBNet) or R.scale != 4:
            raise ValueError(f"--init-r {cfg.init_r}: not an x4 RRDBNet")
    else:
        R = RRDBNet(num_feat=cfg.r_feat, num_block=cfg.r_blocks, num_grow_ch=cfg.r_grow, init=cfg.init)
    learned = cfg.degradation == "learned"
    D = DegradationNet(cfg.d_filters, 2, cfg.d_res_blocks, cfg.input_type, init=cfg.init) if learned else None
    hr_size = cfg.lr_crop * 4
    hr_disc = cfg.hr_disc if cfg.hr_disc != "auto" else ("vgg" if cfg.source == "track1" else "patch")
    Dhr: nn.Module | None = None
    if cfg.mode == "esrgan":
        if hr_disc == "vgg":
            Dhr = VGGStyleDiscriminator(cfg.dhr_filters, 5, hr_size, cfg.bn_mode, init=cfg.init)
        elif hr_disc == "patch":
            Dhr = PatchGANDiscriminator(cfg.dhr_filters, cfg.bn_mode, init=cfg.init)
        else:
            raise ValueError(f"hr_disc must be 'vgg', 'patch' or 'auto', got {cfg.hr_disc!r}")
    Dlr = VGGStyleDiscriminator(cfg.dlr_filters, 3, cfg.lr_crop, cfg.bn_mode, init=cfg.init) if learned else None
    loss = loss_config(cfg)
    vgg = VGG19Features(loss.taps, preprocess=cfg.vgg_preprocess, weights=cfg.vgg_weights)
    nets = Networks(R=R, D=D, Dhr=Dhr, Dlr=Dlr, vgg=vgg)
    for net in (*nets.trained().values(), vgg):
        # channels_last: x3 on the CPU (oneDNN) and faster on tensor cores (benchmarks/train_step.py)
        net.to(device, memory_format=torch.channels_last)
    return nets


def loss_config(cfg: TrainConfig) -> LossConfig:
    return LossConfig(mode=cfg.mode, weights_down=tuple(cfg.loss_weights), weights_up=tuple(cfg.loss_weights_up),
                      weight_color=cfg.color_weight, weight_color_up=cfg.color_weight_up,
                      degradation=cfg.degradation)


def make_optimisers(nets: Networks, cfg: TrainConfig, device: torch.device) -> dict[str, torch.optim.Adam]:
    fused = device.type == "cuda"
    return {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-7, fused=fused)
            for name, net in nets.trained().items()}


class LossScaler:
    """A small dynamic loss scaler for fp16 (gradients come from autograd.grad, not backward)."""

    def __init__(self, enabled: bool, scale: float = 2.0**16, interval: int = 2000):
        self.enabled, self.scale, self.interval, self.good = enabled, scale, interval, 0

    def update(self, grads: dict[str, list[torch.Tensor | None]]) -> bool:
        """After a step's (unscaled) gradients: True to apply them; False on overflow (scale halved)."""
        if not self.enabled:
            return True
        if not all(torch.isfinite(g).all() for gs in grads.values() for g in gs if g is not None):
            self.scale /= 2
            self.good = 0
            return False
        self.good += 1
        if self.good >= self.interval:
            self.scale *= 2
            self.good = 0
        return True

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good": self.good}

    def load_state_dict(self, s: dict) -> None:
        self.scale, self.good = s["scale"], s["good"]


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------

def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted(checkpoint_dir(run_dir).glob("ckpt-*.pt"))
    return found[-1] if found else None


def save_checkpoint(run_dir: Path, step: int, nets: Networks, opts: dict, scaler: LossScaler,
                    cfg: TrainConfig, keep: int = 2) -> Path:
    """Write ``ckpt-<step>.pt`` atomically (temporary file, fsync, rename) and keep the last ``keep``."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "config": dataclasses.asdict(cfg),
        "nets": {name: net.state_dict() for name, net in nets.trained().items()},
        "optimisers": {name: opt.state_dict() for name, opt in opts.items()},
        "scaler": scaler.state_dict(),
        "rng": _rng_state(),
    }
    final = folder / f"ckpt-{step:08d}.pt"
    tmp = folder / f".ckpt-{step:08d}.pt.part"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    for old in sorted(folder.glob("ckpt-*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    return final


def config_differences(saved: dict, cfg: TrainConfig) -> list[str]:
    """Human-readable differences between a checkpoint's configuration and ``cfg`` (compatibility keys)."""
    now = cfg.compat()
    defaults = TrainConfig().compat()  # a setting added after the checkpoint was written had its default then
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


def load_checkpoint(path: Path, nets: Networks, opts: dict, scaler: LossScaler, cfg: TrainConfig) -> int:
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: RNG states are pickled
    diffs = config_differences(state["config"], cfg)
    if diffs:
        raise ValueError(f"{path}: cannot resume with a different configuration ({'; '.join(diffs)})")
    for name, net in nets.trained().items():
        net.load_state_dict(state["nets"][name])
    for name, opt in opts.items():
        opt.load_state_dict(state["optimisers"][name])
    scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    return int(state["step"])


# ---------------------------------------------------------------------------------------------
# pictures and curves
# ---------------------------------------------------------------------------------------------

def sample_grid(images: dict[str, torch.Tensor], rows: int = 4) -> np.ndarray:
    """Rows of: real LR | R(real LR) | D(HR, LR) | HR | R(D(HR, LR)), LR shown nearest x4. uint8 HxWx3."""
    n = min(rows, images["x"].shape[0])
    hr = images["y"].shape[-1]

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t[:n].float(), size=(hr, hr), mode="nearest")

    cols = [up(images["x"]), images["sr_x"][:n].float(), up(images["y_lr"]), images["y"][:n].float(),
            images["y_sr"][:n].float()]
    row_imgs = [torch.cat([c[i] for c in cols], dim=2) for i in range(n)]
    grid = torch.cat(row_imgs, dim=1)
    return (grid.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def plot_losses(csv_path: Path, out: Path) -> None:
    """A small loss-curve figure (one panel per loss, drawn with Pillow; log scale where positive)."""
    from PIL import Image, ImageDraw

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("step", "lr", "time") and any(r[k] for r in rows)]
    pw, ph, cols = 320, 180, 3
    nrows = math.ceil(len(keys) / cols)
    img = Image.new("RGB", (pw * cols, ph * nrows), "white")
    draw = ImageDraw.Draw(img)
    for i, k in enumerate(keys):
        x0, y0 = (i % cols) * pw, (i // cols) * ph
        steps = np.array([float(r["step"]) for r in rows if r[k]])
        vals = np.array([float(r[k]) for r in rows if r[k]])
        log = bool(np.all(vals > 0))
        v = np.log10(vals) if log else vals
        lo, hi = float(v.min()), float(v.max())
        hi = hi if hi > lo else lo + 1e-9
        sx = (steps - steps.min()) / max(steps.max() - steps.min(), 1)
        pts = [(x0 + 40 + s * (pw - 50), y0 + ph - 25 - (val - lo) / (hi - lo) * (ph - 45)) for s, val in zip(sx, v,
                                                                                                       strict=True)]
        draw.rectangle([x0 + 40, y0 + 20, x0 + pw - 10, y0 + ph - 25], outline="gray")
        if len(pts) > 1:
            draw.line(pts, fill="navy", width=1)
        draw.text((x0 + 42, y0 + 4), f"{k}{' (log10)' if log else ''}: {vals[-1]:.4g}", fill="black")
        draw.text((x0 + 2, y0 + 20), f"{10**hi if log else hi:.3g}", fill="gray")
        draw.text((x0 + 2, y0 + ph - 35), f"{10**lo if log else lo:.3g}", fill="gray")
        draw.text((x0 + 40, y0 + ph - 18), f"step {int(steps.min())}", fill="gray")
        draw.text((x0 + pw - 90, y0 + ph - 18), f"{int(steps.max())}", fill="gray")
    tmp = out.with_name(f".{out.name}.part")
    img.save(tmp, format="PNG")
    os.replace(tmp, out)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------

def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip()
        if not commit:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _all_reduce_mean(grads: list[torch.Tensor | None], world: int) -> None:
    present = [g for g in grads if g is not None]
    if not present:
        return
    flat = torch.cat([g.reshape(-1) for g in present])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in present:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def default_records() -> Path:
    """The repository's ``records.json`` (official ``datasets/...`` layout), else the package copy."""
    here = Path(__file__).resolve()
    for cand in (Path.cwd() / "records.json", here.parents[3] / "records.json"):
        if cand.is_file():
            return cand
    raise ValueError("no records.json found: pass --records FILE --data-root DIR")


def train(cfg: TrainConfig) -> dict[str, Path]:
    """Run (or resume) training; returns the paths of the final model files (rank 0)."""
    from ddnsr.training.data import load_records, make_unpaired, resolve_sources, stream_keys

    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    device = pick_device(cfg.device)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main_rank = rank == 0
    if device.type == "cuda":  # fixed crop sizes: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
    run_dir = Path(cfg.run_dir)
    records = Path(cfg.records) if cfg.records else default_records()
    data_root = Path(cfg.data_root) if cfg.data_root else records.parent

    recs = load_records(records)  # fail fast on bad data settings, before building anything
    for key in stream_keys(cfg.source, cfg.target):
        resolve_sources(recs, data_root, key)
    nets = build_networks(cfg, device)
    opts = make_optimisers(nets, cfg, device)
    scaler = LossScaler(cfg.precision == "fp16")
    loss_cfg = loss_config(cfg)
    warmup_cfg = dataclasses.replace(loss_cfg, mode="psnr")
    start = 0
    if cfg.resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise ValueError(f"--resume: no checkpoint in {checkpoint_dir(run_dir)}")
        start = load_checkpoint(ckpt, nets, opts, scaler, cfg)
    elif main_rank and latest_checkpoint(run_dir) is not None:
        raise ValueError(f"{run_dir} already holds checkpoints: pass --resume, or choose another --run-dir")
    if world > 1:
        for net in nets.trained().values():
            for t in net.state_dict().values():
                dist.broadcast(t, 0)

    batches = make_unpaired(
        recs, data_root, cfg.source, cfg.target, batch_size=cfg.batch_size, lr_crop=cfg.lr_crop,
        crops_per_image=cfg.crops_per_image, shuffle_buffer=cfg.shuffle_buffer, num_workers=cfg.num_workers,
        seed=cfg.seed, rank=rank, world_size=world, start_batch=start,
    )
    writer = None
    csv_file = None
    if main_rank:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1) + "\n")
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"), purge_step=start if start else None)
        except ImportError:  # tensorboard is a dependency, but training must not depend on it
            writer = None
        csv_path = run_dir / "losses.csv"
        if start == 0 or not csv_path.exists():
            csv_path.unlink(missing_ok=True)
        else:  # drop rows written after the checkpoint we resume from (in today's columns)
            with open(csv_path) as f:
                kept = list(csv.DictReader(f))
            header = ["step", "lr", "time", *LOSS_COLUMNS]
            with open(csv_path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows([r.get(k, "") for k in header] for r in kept if int(r["step"]) <= start)
        csv_file = open(csv_path, "a", newline="")  # noqa: SIM115

    autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
    if cfg.compile:
        nets.R = torch.compile(nets.R)  # type: ignore[assignment]
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=start, disable=cfg.quiet or not main_rank, dynamic_ncols=True,
               unit="step")
    csv_writer = csv.writer(csv_file) if csv_file else None
    header_written = csv_file is not None and csv_file.tell() > 0
    t0 = time.time()
    step = start
    it = iter(batches)
    for net in nets.trained().values():
        net.train()
    try:
        while step < cfg.steps:
            lr = cfg.lr_at(step)
            if cfg.restart_adam and step > 0 and lr != cfg.lr_at(step - 1):
                for opt in opts.values():
                    opt.state.clear()
            for opt in opts.values():
                for group in opt.param_groups:
                    group["lr"] = lr
            x, y = next(it)
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            step_cfg = warmup_cfg if step < cfg.psnr_warmup else loss_cfg
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = step_gradients(nets, x, y, step_cfg, loss_scale=scaler.scale if scaler.enabled else 1.0,
                                     frozen=("R",) if step < cfg.r_start else ())
            if world > 1:
                for grads in out.grads.values():
                    _all_reduce_mean(grads, world)
            if scaler.update(out.grads):  # fp16 overflow: the update is skipped, the step still counts
                apply_gradients(nets, out.grads)
                for opt in opts.values():
                    opt.step()
            step += 1
            bar.update(1)
            if main_rank and (step % cfg.log_every == 0 or step == cfg.steps):
                losses = detach_losses(out.losses)
                if not all(math.isfinite(v) for v in losses.values()):
                    raise FloatingPointError(f"step {step}: a loss is not finite ({losses})")
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k.startswith("loss_")}, refresh=False)
                if writer:
                    for k, v in losses.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                    writer.add_scalar("lr", lr, step)
                if csv_writer:
                    if not header_written:
                        csv_writer.writerow(["step", "lr", "time", *LOSS_COLUMNS])
                        header_written = True
                    csv_writer.writerow([step, lr, f"{time.time() - t0:.1f}",
                                         *(f"{losses[k]:.6g}" if k in losses else "" for k in LOSS_COLUMNS)])
                    csv_file.flush()
            if main_rank and (step % cfg.sample_every == 0 or step == cfg.steps):
                grid = sample_grid({k: v.detach() for k, v in out.images.items()})
                from PIL import Image

                path = run_dir / "samples" / f"step-{step:08d}.png"
                Image.fromarray(grid).save(path.with_name(f".{path.name}.part"), format="PNG")
                os.replace(path.with_name(f".{path.name}.part"), path)
                if writer:
                    writer.add_image("samples", grid, step, dataformats="HWC")
            if main_rank and (step % cfg.save_every == 0 or step == cfg.steps):
                save_checkpoint(run_dir, step, nets, opts, scaler, cfg)
            del out
    finally:
        bar.close()
        if writer:
            writer.close()
        if csv_file:
            csv_file.close()
    if world > 1:
        _record_rank_agreement(run_dir, nets, rank, world)
    result: dict[str, Path] = {}
    if main_rank:
        plot_losses(run_dir / "losses.csv", run_dir / "loss_curves.png")
        result = export_models(run_dir, nets, cfg, step)
    if world > 1:
        dist.barrier()
    return result


def weights_checksum(nets: Networks) -> float:
    """A float64 checksum of every trained weight (sum of values and of squares), for comparing ranks."""
    total = torch.zeros((), dtype=torch.float64)
    for net in nets.trained().values():
        for t in net.state_dict().values():
            v = t.detach().double().cpu()
            total += v.sum() + (v * v).sum() * 1e-3
    return float(total)


def _record_rank_agreement(run_dir: Path, nets: Networks, rank: int, world: int) -> None:
    """Gather every rank's weight checksum; rank 0 writes them to ``ranks.json``; disagreement is an error."""
    mine = torch.tensor([weights_checksum(nets)], dtype=torch.float64)
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    sums = [float(g.item()) for g in gathered]
    if rank == 0:
        (run_dir / "ranks.json").write_text(json.dumps({"world_size": world, "checksums": sums}) + "\n")
    if len(set(sums)) != 1:
        raise RuntimeError(f"the ranks' weights differ after training: {sums}")


def export_models(run_dir: Path, nets: Networks, cfg: TrainConfig, step: int) -> dict[str, Path]:
    """``reconstruction.safetensors`` and ``degradation.safetensors`` with the training facts."""
    from ddnsr.formats.modelfile import save_model

    facts = {
        "training_steps": str(step),
        "training_data": f"{cfg.source}-source + {cfg.source}-target-{cfg.target}",
        "training_preset": cfg.preset,
        "training_mode": cfg.mode,
        "input_type": cfg.input_type,
        "degradation": cfg.degradation,
        "color_weight": str(cfg.color_weight),
        "color_weight_up": str(cfg.color_weight_up),
        "batch_size": str(cfg.batch_size),
        "init_r": cfg.init_r or "",
        "r_start": str(cfg.r_start),
        "commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": "DDNSR (Li, Chen, Li, Liu): dual-input degradation network + RRDBNet, ddnsr PyTorch port",
    }
    def plain(m: nn.Module) -> nn.Module:
        return getattr(m, "_orig_mod", m).cpu().float().eval()

    out = {"reconstruction": save_model(plain(nets.R), run_dir / "reconstruction.safetensors", facts)}
    if nets.D is not None:  # a bicubic-trained R has no learned degradation
        out["degradation"] = save_model(plain(nets.D), run_dir / "degradation.safetensors", facts)
    return out


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def _weights(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(t) for t in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}")
    return parts  # type: ignore[return-value]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=("track1", "track2"), default="track1", help="real LR stream X")
    p.add_argument("--target", choices=("div2k", "cleanup", "mixed", "canon"), default="div2k",
                   help="clean HR stream Y")
    p.add_argument("--records", help="records.json mapping data set names to folders (default: ./records.json)")
    p.add_argument("--data-root", help="folder the records are relative to (default: the records file's folder)")
    p.add_argument("--run-dir", default=None, help="run folder (default: runs/<source>-<target>-<preset>)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="paper")
    p.add_argument("--steps", type=int, help="total steps (the schedule's phases scale with it)")
    p.add_argument("--mode", choices=("esrgan", "psnr"), default="esrgan")
    p.add_argument("--psnr-warmup", type=int,
                   help="esrgan mode: train R with the psnr loss (MSE) for the first N steps, as ESRGAN's "
                        "PSNR-oriented start (default 0 = official; the cpu preset uses a third of its steps)")
    p.add_argument("--input", dest="input_type", choices=("dual", "single"), default="dual")
    p.add_argument("--loss-weights", type=_weights,
                   help="w1,w2,w3 of loss_D = w1 content + w2 adversarial + w3 cycle (default 0.1,1,10)")
    p.add_argument("--loss-weights-up", type=_weights,
                   help="esrgan mode: content,adversarial,L1 weights of loss_R (default 1,0.005,0.01 = official; "
                        "the cpu preset: 1,0.005,0.2)")
    p.add_argument("--init-r", help="start R from these weights (any file ddnsr.load_model reads)")
    p.add_argument("--r-start", type=int,
                   help="hold R for the first N steps while D and the discriminators learn (fine-tuning a "
                        "pretrained R: a D started from scratch would feed it nonsense at first; default 0)")
    p.add_argument("--init", choices=("keras", "esrgan"), default="keras", help="weight initialisation")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--restart-adam", action="store_true", help="reset Adam moments at each phase (official)")
    p.add_argument("--bn-mode", choices=("frozen", "batch"), default="frozen")
    p.add_argument("--vgg-preprocess", choices=("official", "caffe"), default="official")
    p.add_argument("--color-weight", type=float,
                   help="add W x (L1 of D's local mean colours against the HR's) to loss_D; not in the official "
                        "code (default 0; the cpu preset: 50; see README, 'Colour drift')")
    p.add_argument("--color-weight-up", type=float,
                   help="add W x (L1 of R(real LR)'s local mean colours against the real LR's) to loss_R; not in "
                        "the official code (default 0; the cpu preset: 20; see README, 'Colour drift')")
    p.add_argument("--degradation", choices=("learned", "bicubic"), default="learned",
                   help="R's training input: D(y, x) (the method) or the bicubic x4 downscale of y (baseline)")
    p.add_argument("--vgg-weights", help="Keras VGG19 notop .h5 (default: $DDNSR_VGG19 or the cache)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--save-every", type=int)
    p.add_argument("--sample-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="autocast precision (default: fp32; the cpu preset uses bf16)")
    p.add_argument("--compile", action="store_true", help="torch.compile R")
    p.add_argument("--workers", dest="num_workers", type=int, help="DataLoader worker processes per stream")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset", "extra"}
    overrides = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    if not overrides.get("run_dir"):
        overrides["run_dir"] = f"runs/{args.source}-{args.target}-{args.preset}"
    cfg = TrainConfig.from_preset(args.preset, **overrides)
    for name in ("steps", "batch_size", "save_every", "sample_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = train(cfg)
    for kind, path in out.items():
        print(f"{kind}: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train D and R together on unpaired real LR and clean HR photos",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


if __name__ == "__main__":
    from ddnsr.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))

"""The trained networks of a run, their losses' settings and their optimisers, built from a :class:`TrainConfig`.

Optimisation: one Adam per network (beta1 0.9, beta2 0.999, epsilon 1e-7, as Keras), the learning rate
halved at the end of each phase of the schedule (:meth:`TrainConfig.lr_at`). The official code builds a
new Adam at every phase, so its moments restart; we keep the moments across phases (the usual modern
equivalent) unless ``--restart-adam`` asks for the official behaviour (:func:`set_learning_rate`).
"""

from __future__ import annotations

import torch
from torch import nn

from ddnsr.errors import SettingError
from ddnsr.nets import DegradationNet, PatchGANDiscriminator, RRDBNet, VGG19Features, VGGStyleDiscriminator
from ddnsr.training.config import TrainConfig
from ddnsr.training.losses import LossConfig, Networks

__all__ = ["build_networks", "loss_config", "make_optimisers", "set_learning_rate"]


def build_networks(cfg: TrainConfig, device: torch.device) -> Networks:
    """The four networks of ``cfg`` (R from ``--init-r``, D from ``init_d``: training/start.py)
    and the frozen VGG19, on ``device``.

    The weights are initialised from ``cfg.seed`` (the global torch generator is seeded here).
    """
    torch.manual_seed(cfg.seed)
    R = _reconstruction(cfg)
    learned = cfg.degradation == "learned"
    D = _degradation(cfg) if learned else None
    hr_disc = cfg.hr_disc if cfg.hr_disc != "auto" else ("vgg" if cfg.source == "track1" else "patch")
    Dhr: nn.Module | None = None
    if cfg.mode == "esrgan":
        if hr_disc == "vgg":
            Dhr = VGGStyleDiscriminator(cfg.dhr_filters, 5, cfg.lr_crop * 4, cfg.bn_mode, init=cfg.init)
        elif hr_disc == "patch":
            Dhr = PatchGANDiscriminator(cfg.dhr_filters, cfg.bn_mode, init=cfg.init)
        else:
            raise SettingError(f"--hr-disc must be 'vgg', 'patch' or 'auto', got {cfg.hr_disc!r}")
    Dlr = VGGStyleDiscriminator(cfg.dlr_filters, 3, cfg.lr_crop, cfg.bn_mode, init=cfg.init) if learned else None
    vgg = VGG19Features(loss_config(cfg).taps, preprocess=cfg.vgg_preprocess, weights=cfg.vgg_weights)
    nets = Networks(R=R, D=D, Dhr=Dhr, Dlr=Dlr, vgg=vgg)
    for net in (*nets.trained().values(), vgg):
        # channels_last: x3 on the CPU (oneDNN) and faster on tensor cores (benchmarks/train_step.py)
        net.to(device, memory_format=torch.channels_last)
    return nets


def _reconstruction(cfg: TrainConfig) -> nn.Module:
    if not cfg.init_r:
        return RRDBNet(num_feat=cfg.r_feat, num_block=cfg.r_blocks, num_grow_ch=cfg.r_grow, init=cfg.init)
    from ddnsr.formats.modelfile import load_model

    R = load_model(cfg.init_r)
    if not isinstance(R, RRDBNet) or R.scale != 4:
        raise SettingError(f"--init-r {cfg.init_r}: not an x4 RRDBNet")
    return R


def _degradation(cfg: TrainConfig) -> nn.Module:
    if not cfg.init_d:
        return DegradationNet(cfg.d_filters, 2, cfg.d_res_blocks, cfg.input_type, init=cfg.init)
    from ddnsr.formats.modelfile import load_model

    D = load_model(cfg.init_d, kind="degradation")
    if not isinstance(D, DegradationNet) or D.config["input_type"] != cfg.input_type:
        raise SettingError(f"{cfg.init_d}: not a DegradationNet with --input {cfg.input_type}")
    return D


def loss_config(cfg: TrainConfig) -> LossConfig:
    """The losses' settings of ``cfg`` (raises SettingError on an impossible combination)."""
    return LossConfig(mode=cfg.mode, weights_down=tuple(cfg.loss_weights), weights_up=tuple(cfg.loss_weights_up),
                      weight_color=cfg.color_weight, weight_color_up=cfg.color_weight_up,
                      degradation=cfg.degradation)


def make_optimisers(nets: Networks, cfg: TrainConfig, device: torch.device) -> dict[str, torch.optim.Adam]:
    """One Adam per trained network (Keras's epsilon; fused kernels on CUDA)."""
    fused = device.type == "cuda"
    return {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-7, fused=fused)
            for name, net in nets.trained().items()}


def set_learning_rate(opts: dict[str, torch.optim.Optimizer], cfg: TrainConfig, step: int) -> float:
    """Set the schedule's rate for ``step`` (0-based) in every optimiser; ``--restart-adam`` clears the
    moments when a new phase begins. Returns the rate."""
    lr = cfg.lr_at(step)
    if cfg.restart_adam and step > 0 and lr != cfg.lr_at(step - 1):
        for opt in opts.values():
            opt.state.clear()
    for opt in opts.values():
        for group in opt.param_groups:
            group["lr"] = lr
    return lr

"""The end of a run: ``reconstruction.safetensors`` and ``degradation.safetensors`` with the training facts."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from torch import nn

from ddnsr.files import git_commit
from ddnsr.training.config import TrainConfig
from ddnsr.training.losses import Networks

__all__ = ["export_models", "training_facts"]

METHOD = "DDNSR (Li, Chen, Li, Liu): dual-input degradation network + RRDBNet, ddnsr PyTorch port"


def training_facts(cfg: TrainConfig, step: int) -> dict[str, str]:
    """The metadata written into each exported model file (strings only, as safetensors metadata)."""
    data = f"{cfg.source}-source + {cfg.source}-target-{cfg.target}"
    if cfg.real_lr:
        data = f"real LR {', '.join(cfg.real_lr)} + clean HR {', '.join(cfg.clean_hr or ())}"
    return {
        "training_steps": str(step),
        "training_data": data,
        "from_model": cfg.from_model or "",
        "ema": str(cfg.ema),
        "training_preset": cfg.preset,
        "training_mode": cfg.mode,
        "input_type": cfg.input_type,
        "degradation": cfg.degradation,
        "color_weight": str(cfg.color_weight),
        "color_weight_up": str(cfg.color_weight_up),
        "batch_size": str(cfg.batch_size),
        "init_r": cfg.init_r or "",
        "r_start": str(cfg.r_start),
        "precision": cfg.precision,
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": METHOD,
    }


def export_models(run_dir: str | Path, nets: Networks, cfg: TrainConfig, step: int, *,
                  last: bool = False) -> dict[str, Path]:
    """Save R (and D, unless the run learned from bicubic downscales) as float32 safetensors in ``run_dir``.

    Returns ``{"reconstruction": path, "degradation": path}`` (no ``degradation`` for a bicubic run). With
    ``last``, R is saved as ``last-reconstruction.safetensors`` under the key ``"last"`` instead: a run that
    validates exports its best round as ``reconstruction.safetensors`` (loop.export_best).
    """
    from ddnsr.formats.modelfile import save_model

    run_dir = Path(run_dir)
    facts = training_facts(cfg, step)

    def plain(m: nn.Module) -> nn.Module:
        return getattr(m, "_orig_mod", m).cpu().float().eval()

    r_key, r_name = ("last", "last-reconstruction.safetensors") if last else ("reconstruction",
                                                                              "reconstruction.safetensors")
    out = {r_key: save_model(plain(nets.R), run_dir / r_name, facts)}
    if nets.D is not None:
        out["degradation"] = save_model(plain(nets.D), run_dir / "degradation.safetensors", facts)
    return out

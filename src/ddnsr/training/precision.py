"""The arithmetic of a run: which autocast precision, and fp16's dynamic loss scaling.

``precision="auto"`` (the default) becomes :func:`ddnsr.inference.device.default_precision` of the
device when a run starts: bf16 on CUDA and on CPUs that compute bf16 natively, fp32 elsewhere (PyTorch
emulates bf16 on other CPUs, about 6x slower than fp32). The resolved precision is what config.json and
the checkpoints record; a resumed run keeps the recorded precision unless ``--precision`` is given, and
an explicit precision that differs from the recorded one is refused like any other changed setting.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ddnsr.inference.device import default_precision
from ddnsr.training.config import TrainConfig

__all__ = ["AUTOCAST", "LossScaler", "resolve_precision"]

AUTOCAST: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(cfg: TrainConfig, device: torch.device, saved: dict[str, Any] | None = None) -> TrainConfig:
    """``cfg`` with ``precision`` resolved: an explicit one as it is; ``auto`` becomes the precision recorded
    in the checkpoint's configuration ``saved`` when resuming, else the device's default."""
    if cfg.precision != "auto":
        return cfg
    recorded = (saved or {}).get("precision")
    chosen = recorded if recorded in AUTOCAST else default_precision(device)
    return dataclasses.replace(cfg, precision=chosen)


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

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "good": self.good}

    def load_state_dict(self, s: dict[str, float]) -> None:
        self.scale, self.good = float(s["scale"]), int(s["good"])

"""Exponential moving average of R's weights (``--ema DECAY``), as Real-ESRGAN's ``ema_decay``.

After every applied step, each float parameter and buffer ``s`` of the shadow copy becomes
``decay * s + (1 - decay) * p`` (``p`` R's new value); non-float buffers are copied. The shadow starts
equal to R, so for a fine-tuned R it starts at the source model and moves away slowly (after n steps the
start keeps a weight of ``decay ** n``). The exported reconstruction.safetensors (and validation) use
the shadow when EMA is on.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A shadow copy of ``model`` (float32, same device, eval mode, no gradients)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.shadow = copy.deepcopy(getattr(model, "_orig_mod", model)).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``shadow = decay * shadow + (1 - decay) * model``, entry by entry of the state dicts."""
        current = getattr(model, "_orig_mod", model).state_dict()
        for name, s in self.shadow.state_dict().items():
            p = current[name]
            if s.is_floating_point():
                s.mul_(self.decay).add_(p.detach().to(s.dtype), alpha=1.0 - self.decay)
            else:
                s.copy_(p)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.shadow.load_state_dict(state)

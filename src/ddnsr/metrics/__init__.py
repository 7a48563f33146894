"""Image quality metrics of ddnsr (NumPy in, Python floats out; nothing here uses the networks).

Images everywhere: ``uint8`` (0..255), ``uint16`` (0..65535) or float in [0, 1]; ``HxW`` gray or
``HxWx3`` RGB. All metrics work on the 8-bit range internally.

* :func:`psnr`, :func:`ssim` — full reference, BT.601 Y with a 4-pixel border crop by default
  (BasicSR / NTIRE convention); ``channel="rgb"`` or ``"gray"``.
* :func:`niqe` — no reference, MATLAB ``niqe_release`` with the shipped pristine model.
* :func:`piqe` — no reference, MATLAB ``piqe``.
* :class:`LPIPS`, :func:`lpips` — LPIPS v0.1 (AlexNet or VGG16; the backbone is found or downloaded
  on first use through :mod:`ddnsr.datasets.pretrained`).
* :func:`noise_sigma` — Immerkær's fast noise estimate; :func:`degradation_fidelity` compares a
  synthetic LR image with a real one.
* :func:`to_y`, :func:`to_gray` — the MATLAB colour conversions used by the metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ddnsr.metrics.color import to_gray, to_y
from ddnsr.metrics.fidelity import degradation_fidelity
from ddnsr.metrics.imresize import imresize
from ddnsr.metrics.niqe import niqe
from ddnsr.metrics.noise import noise_sigma
from ddnsr.metrics.piqe import piqe
from ddnsr.metrics.psnr_ssim import psnr, ssim

if TYPE_CHECKING:
    from ddnsr.metrics.perceptual import LPIPS, VGG16_TORCHVISION, lpips

_LAZY = {"LPIPS", "VGG16_TORCHVISION", "lpips"}


def __getattr__(name: str):
    """Import the LPIPS names (and so PyTorch) only when they are first used."""
    if name in _LAZY:
        from ddnsr.metrics import perceptual

        value = getattr(perceptual, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LPIPS",
    "VGG16_TORCHVISION",
    "degradation_fidelity",
    "imresize",
    "lpips",
    "niqe",
    "noise_sigma",
    "piqe",
    "psnr",
    "ssim",
    "to_gray",
    "to_y",
]

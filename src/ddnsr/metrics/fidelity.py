"""How close a synthetic low-resolution image is to a real one (degradation fidelity).

Used to compare a learned degradation ``D(HR, reference)`` — and plain bicubic downscaling as the
baseline — against the real LR image of the same scene: PSNR and SSIM on the BT.601 Y channel, plus the
Immerkær noise level of each image, since a degradation model should also reproduce the real noise.
"""

from __future__ import annotations

import numpy as np

from ddnsr.metrics.noise import noise_sigma
from ddnsr.metrics.psnr_ssim import psnr, ssim

__all__ = ["degradation_fidelity"]


def degradation_fidelity(generated_lr: np.ndarray, real_lr: np.ndarray, *, crop_border: int = 0) -> dict[str, float]:
    """Compare ``generated_lr`` with ``real_lr`` (same shape, HxW or HxWx3; uint8, uint16 or float [0, 1]).

    ``crop_border`` defaults to 0: LR images are small and a degradation must also be right near the
    border (the x4 SR convention of cropping 4 pixels applies to HR-sized outputs).

    Returns a dict of Python floats:

    * ``psnr_y`` (dB, ``inf`` if identical) and ``ssim_y`` (in [-1, 1]) of the generated against the real
      image, BT.601 Y on the 8-bit range;
    * ``sigma_generated`` and ``sigma_real``: estimated noise standard deviations (8-bit range);
    * ``sigma_diff``: ``sigma_generated - sigma_real`` (positive: the generated image is noisier).
    """
    sigma_gen = noise_sigma(generated_lr)
    sigma_real = noise_sigma(real_lr)
    return {
        "psnr_y": psnr(generated_lr, real_lr, crop_border=crop_border, channel="y"),
        "ssim_y": ssim(generated_lr, real_lr, crop_border=crop_border, channel="y"),
        "sigma_generated": sigma_gen,
        "sigma_real": sigma_real,
        "sigma_diff": sigma_gen - sigma_real,
    }

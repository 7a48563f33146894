"""DDNSR's losses and its training step (docs/method.md, "One training step").

One forward pass gives every loss; each network then gets the gradient of *its own* loss with
respect to its own weights only: loss_R -> R, loss_D -> D, d_up -> Dhr, d_lr -> Dlr (so R's loss
does not move D although y_lr comes from D, and D's cycle loss does not move R). This is done with
one ``torch.autograd.grad`` call per network over the shared graph, which only walks the paths
that lead to that network's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ddnsr.errors import SettingError
from ddnsr.nets import VGG19Features

MODES = ("esrgan", "psnr")
GAN_TYPES = ("ragan", "gan")
DEGRADATIONS = ("learned", "bicubic", "camera")


@dataclass(frozen=True)
class LossConfig:
    """The loss options, official values as defaults.

    ``mode``: 'esrgan' (VGG content + RaGAN + L1 for R) or 'psnr' (MSE for R, no HR discriminator).
    ``weights_down``: (w1, w2, w3) of loss_D = w1 content_down + w2 adv_down + w3 cycle_down.
    ``weights_up``: (content, adversarial, cycle) of loss_R in esrgan mode.
    ``gan_up`` / ``gan_down``: 'ragan' or 'gan' for the HR and LR adversarial terms.
    Taps: Keras VGG19 layer names (pre-activation) of the three perceptual terms.
    ``weight_color`` (not in the official code, 0 = official): adds ``weight_color * color_down`` to
    loss_D, the L1 distance between the 4x4-pooled colours of D(y, x) and of the 16x16-pooled y, so D
    keeps the local mean colour of the HR it degrades (``color_down`` is always computed, as a monitor).
    ``weight_color_up`` (not in the official code, 0 = official): adds ``weight_color_up * color_up`` to
    loss_R, the same distance between the real LR x (4x4-pooled) and R(x) (16x16-pooled), so R keeps the
    local mean colour of the real photos it restores (R(x) is computed in every step for D's cycle anyway;
    ``color_up`` is always computed, as a monitor). Learned degradation only: the bicubic baseline never
    trains R on real LR.
    ``degradation``: 'learned' (D makes R's training input), 'bicubic' (R learns from the bicubic x4
    downscale of y, with the same R losses: the classic non-blind SR baseline; no D, no LR discriminator) or
    'camera' (R learns from y degraded as the camera's photos are estimated to be, training/camera.py; the
    LR is made outside and passed to :func:`forward_losses`; no D, no LR discriminator).
    """

    mode: str = "esrgan"
    weights_down: tuple[float, float, float] = (0.1, 1.0, 10.0)
    weights_up: tuple[float, float, float] = (1.0, 0.005, 0.01)
    gan_up: str = "ragan"
    gan_down: str = "gan"
    tap_up: str = "block5_conv4"
    tap_content_down: str = "block3_conv4"
    tap_cycle_down: str = "block2_conv2"
    pool: int = 4
    weight_color: float = 0.0
    weight_color_up: float = 0.0
    degradation: str = "learned"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SettingError(f"loss mode must be one of {MODES}, got {self.mode!r}")
        for g in (self.gan_up, self.gan_down):
            if g not in GAN_TYPES:
                raise SettingError(f"GAN type must be one of {GAN_TYPES}, got {g!r}")
        if self.degradation not in DEGRADATIONS:
            raise SettingError(f"degradation must be one of {DEGRADATIONS}, got {self.degradation!r}")
        if len(self.weights_down) != 3 or len(self.weights_up) != 3:
            raise SettingError("loss weights are three numbers each")
        if self.weight_color_up and self.degradation != "learned":
            raise SettingError(f"R's colour term needs the learned degradation (the {self.degradation} "
                               "degradation never trains R on real LR)")

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.tap_up, self.tap_content_down, self.tap_cycle_down)))


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant label, mean over all elements (Keras)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def gan_losses(real: torch.Tensor, fake: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator loss, discriminator loss) from discriminator logits of real and fake samples.

    'gan': generator BCE(1, fake); discriminator BCE(1, real) + BCE(0, fake).
    'ragan' (relativistic average): dr = real - mean(fake), df = fake - mean(real); generator
    BCE(1, df) + BCE(0, dr); discriminator BCE(1, dr) + BCE(0, df).
    """
    if kind == "gan":
        return bce_logits(fake, 1.0), bce_logits(real, 1.0) + bce_logits(fake, 0.0)
    if kind == "ragan":
        dr = real - fake.mean()
        df = fake - real.mean()
        return bce_logits(df, 1.0) + bce_logits(dr, 0.0), bce_logits(dr, 1.0) + bce_logits(df, 0.0)
    raise SettingError(f"unknown GAN type {kind!r}")


@dataclass
class Networks:
    """The four trained networks and the frozen VGG19 taps. Dhr is None in 'psnr' mode; D and Dlr
    are None when R learns from bicubic downscales (``LossConfig.degradation == 'bicubic'``)."""

    R: nn.Module
    D: nn.Module | None
    Dhr: nn.Module | None
    Dlr: nn.Module | None
    vgg: VGG19Features

    def trained(self) -> dict[str, nn.Module]:
        """The updated networks by name, in the official order (R, D, Dhr, Dlr)."""
        nets = {"R": self.R, "D": self.D, "Dhr": self.Dhr, "Dlr": self.Dlr}
        return {k: v for k, v in nets.items() if v is not None}


@dataclass
class StepOutput:
    """Everything one step computes: scalar losses, the images, and per-network gradients."""

    losses: dict[str, torch.Tensor]
    images: dict[str, torch.Tensor]
    grads: dict[str, list[torch.Tensor | None]] = field(default_factory=dict)


def forward_losses(nets: Networks, x: torch.Tensor, y: torch.Tensor, cfg: LossConfig,
                   y_lr: torch.Tensor | None = None) -> StepOutput:
    """The forward pass of one step. x: N x 3 x h x w real LR in [0, 1]; y: N x 3 x 4h x 4w clean HR;
    ``y_lr``: R's training input for y (N x 3 x h x w), needed with the 'camera' degradation only.

    Returns the losses named as the official code's (``content_up``, ``adv_up``, ``cycle_up``,
    ``adv_disc_up`` or ``loss_up`` in psnr mode; ``content_down``, ``adv_down``, ``cycle_down``,
    ``adv_disc_down``) plus the totals ``loss_R``, ``loss_D``, ``loss_Dhr``, ``loss_Dlr``.
    """
    if cfg.degradation == "bicubic":
        return _fixed_degradation_losses(nets, x, y, bicubic_down(y, cfg.pool), cfg)
    if cfg.degradation == "camera":
        if y_lr is None:
            raise SettingError("the camera degradation needs the LR made from y (training/camera.py)")
        return _fixed_degradation_losses(nets, x, y, y_lr, cfg)
    if nets.D is None or nets.Dlr is None:
        raise SettingError("learned degradation needs D and the LR discriminator")
    sr_x = nets.R(x)
    x_cyc = nets.D(sr_x, x)
    y_lr = nets.D(y, x)
    y_sr = nets.R(y_lr)

    losses = _reconstruction_losses(nets, y, y_sr, cfg)
    losses["color_up"] = color_distance(x, sr_x, cfg.pool)
    if cfg.weight_color_up:
        losses["loss_R"] = losses["loss_R"] + cfg.weight_color_up * losses["color_up"]
    vgg = nets.vgg
    pooled = F.avg_pool2d(y, cfg.pool)
    f_pool, f_ylr = _features(vgg, pooled, y_lr, cfg.tap_content_down)
    losses["content_down"] = F.mse_loss(f_ylr, f_pool)
    f_x, f_xcyc = _features(vgg, x, x_cyc, cfg.tap_cycle_down)
    losses["cycle_down"] = F.mse_loss(f_xcyc, f_x)
    real_lr, fake_lr = nets.Dlr(x), nets.Dlr(y_lr)
    losses["adv_down"], losses["adv_disc_down"] = gan_losses(real_lr, fake_lr, cfg.gan_down)
    losses["color_down"] = color_distance(y_lr, y, cfg.pool)
    w1, w2, w3 = cfg.weights_down
    losses["loss_D"] = w1 * losses["content_down"] + w2 * losses["adv_down"] + w3 * losses["cycle_down"]
    if cfg.weight_color:
        losses["loss_D"] = losses["loss_D"] + cfg.weight_color * losses["color_down"]
    losses["loss_Dlr"] = losses["adv_disc_down"]
    images = {"x": x, "sr_x": sr_x, "x_cyc": x_cyc, "y": y, "y_lr": y_lr, "y_sr": y_sr}
    return StepOutput(losses=losses, images=images)


def _features(vgg: VGG19Features, target: torch.Tensor, output: torch.Tensor, tap: str
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """VGG features at ``tap`` of a target (data: no gradient is needed, so none is recorded) and of a
    network's output. Two calls rather than one on the concatenation: the backward pass then runs over
    the output's half only (VGG19 has no batch statistics, so the features are the same)."""
    with torch.no_grad():
        f_target = vgg(target, until=tap)[tap]
    return f_target, vgg(output, until=tap)[tap]


def color_distance(lr: torch.Tensor, hr: torch.Tensor, scale: int = 4, block: int = 4) -> torch.Tensor:
    """Mean absolute difference of local mean colours: ``lr`` pooled over ``block`` x ``block`` pixels
    against ``hr`` pooled over (scale * block)^2. lr: N x 3 x h x w, hr: N x 3 x (scale h) x (scale w).
    Only the sizes set which is which: D's term compares D(y, x) with y, R's compares x with R(x)."""
    return F.l1_loss(F.avg_pool2d(lr, block), F.avg_pool2d(hr, scale * block))


def bicubic_down(y: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Antialiased bicubic downscale by ``scale`` (Keys a = -0.5, as MATLAB's imresize), clipped to [0, 1]."""
    return F.interpolate(y, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def _fixed_degradation_losses(nets: Networks, x: torch.Tensor, y: torch.Tensor, y_lr: torch.Tensor,
                              cfg: LossConfig) -> StepOutput:
    """R trained on (y_lr, y) with the same R losses (y_lr: bicubic or the camera estimate of y); x only
    feeds the picture grid."""
    y_sr = nets.R(y_lr)
    losses = _reconstruction_losses(nets, y, y_sr, cfg)
    with torch.no_grad():
        sr_x = nets.R(x)
        losses["color_up"] = color_distance(x, sr_x, cfg.pool)
    images = {"x": x, "sr_x": sr_x, "y": y, "y_lr": y_lr, "y_sr": y_sr}
    return StepOutput(losses=losses, images=images)


def _reconstruction_losses(nets: Networks, y: torch.Tensor, y_sr: torch.Tensor, cfg: LossConfig
                           ) -> dict[str, torch.Tensor]:
    """R's losses (and the HR discriminator's in esrgan mode) for the restored ``y_sr`` of ``y``."""
    vgg = nets.vgg
    losses: dict[str, torch.Tensor] = {}
    if cfg.mode == "esrgan":
        if nets.Dhr is None:  # noqa: SIM102
            raise SettingError("esrgan mode needs an HR discriminator")
        f_y, f_ysr = _features(vgg, y, y_sr, cfg.tap_up)
        losses["content_up"] = F.mse_loss(f_ysr, f_y)
        # discriminators see real and fake in separate calls, as the official code (matters with batch-stat BN)
        real_hr, fake_hr = nets.Dhr(y), nets.Dhr(y_sr)
        losses["adv_up"], losses["adv_disc_up"] = gan_losses(real_hr, fake_hr, cfg.gan_up)
        losses["cycle_up"] = F.l1_loss(y_sr, y)
        wc, wa, wl = cfg.weights_up
        losses["loss_R"] = wc * losses["content_up"] + wa * losses["adv_up"] + wl * losses["cycle_up"]
        losses["loss_Dhr"] = losses["adv_disc_up"]
    else:
        losses["loss_up"] = F.mse_loss(y_sr, y)
        losses["loss_R"] = losses["loss_up"]
    return losses


def step_gradients(nets: Networks, x: torch.Tensor, y: torch.Tensor, cfg: LossConfig,
                   loss_scale: float = 1.0, frozen: tuple[str, ...] = (), y_lr: torch.Tensor | None = None
                   ) -> StepOutput:
    """One training step's losses and, for each network, the gradient of its own loss.

    ``out.grads[name]`` lists one tensor per ``net.parameters()`` entry (None where the loss does
    not depend on it). Only networks with a loss in this mode get an entry (in 'psnr' mode an HR
    discriminator, if present, has none), and none of those named in ``frozen`` (their losses are
    still computed). Nothing is written to ``.grad`` and no weight changes.
    ``loss_scale`` (fp16 training) multiplies each loss before differentiation and divides the float32
    gradients after, so small gradients survive in half precision.
    """
    out = forward_losses(nets, x, y, cfg, y_lr)
    trained = {k: v for k, v in nets.trained().items() if f"loss_{k}" in out.losses and k not in frozen}
    names = list(trained)
    for i, name in enumerate(names):
        params = [p for p in trained[name].parameters() if p.requires_grad]
        loss = out.losses[f"loss_{name}"]
        grads = torch.autograd.grad(loss * loss_scale if loss_scale != 1.0 else loss, params,
                                    retain_graph=i < len(names) - 1, allow_unused=True)
        out.grads[name] = [g if g is None or loss_scale == 1.0 else g.float() / loss_scale for g in grads]
    return out


def apply_gradients(nets: Networks, grads: dict[str, list[torch.Tensor | None]]) -> None:
    """Store per-network gradients in ``.grad`` (replacing any), ready for ``optimizer.step()``."""
    for name, net in nets.trained().items():
        params = [p for p in net.parameters() if p.requires_grad]
        if name not in grads:  # no loss for this network in this step
            for p in params:
                p.grad = None
            continue
        for p, g in zip(params, grads[name], strict=True):
            p.grad = None if g is None else g.detach()


def detach_losses(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """Loss tensors as Python floats (one synchronisation)."""
    keys = list(losses)
    values = torch.stack([losses[k].detach().float() for k in keys]).tolist()
    return dict(zip(keys, values, strict=True))

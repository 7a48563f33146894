"""Building blocks shared by the networks: Keras-compatible padding, BatchNorm and initialisation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ddnsr.errors import SettingError

LRELU_SLOPE = 0.2  # TensorFlow's leaky_relu default, used by every network of the official code


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU with slope 0.2, in place-free."""
    return F.leaky_relu(x, LRELU_SLOPE)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding along one axis: (before, after); the odd extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's 'same' padding for any kernel, stride and input size.

    Symmetric cases use the convolution's own padding (fast path); asymmetric ones (even kernels at
    stride 1, or odd input sizes) pad explicitly with zeros, exactly as TensorFlow does.
    Input N x C x H x W; output N x C' x ceil(H / stride) x ceil(W / stride).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, s, (top, left))
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, s, 0)


def conv3(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution, stride 1, 'same' padding (symmetric, so plain padding=1)."""
    return nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=bias)


class KerasBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm with Keras defaults (epsilon 1e-3, momentum 0.99 = PyTorch momentum 0.01).

    ``mode="frozen"`` (the official behaviour) always normalises with the moving statistics and
    never updates them, in training too: the official step calls its discriminators without
    ``training=True``, so Keras runs BatchNorm in inference mode and each layer acts as a learned
    per-channel scale and shift, ``x * gamma / sqrt(var + eps) + beta`` with mean 0 and var 1.
    ``mode="batch"`` is ordinary BatchNorm (batch statistics in training, moving ones in eval).
    """

    def __init__(self, channels: int, mode: str = "frozen"):
        super().__init__(channels, eps=1e-3, momentum=0.01)
        if mode not in ("frozen", "batch"):
            raise SettingError(f"BatchNorm mode must be 'frozen' or 'batch', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "batch":
            return super().forward(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


INIT_SCHEMES = ("keras", "esrgan", "torch")


def init_keras(module: nn.Module) -> None:
    """Keras defaults: Glorot-uniform kernels, zero biases (conv and dense); BatchNorm gamma 1, beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


def init_esrgan(module: nn.Module, scale: float = 0.1) -> None:
    """ESRGAN / BasicSR: Kaiming-normal (fan-in) kernels scaled by ``scale``, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def initialise(module: nn.Module, scheme: str) -> None:
    """Apply one of :data:`INIT_SCHEMES` ('torch' keeps PyTorch's own defaults)."""
    if scheme == "keras":
        init_keras(module)
    elif scheme == "esrgan":
        init_esrgan(module)
    elif scheme != "torch":
        raise SettingError(f"init must be one of {INIT_SCHEMES}, got {scheme!r}")

"""The discriminators of DDNSR training: VGG-style (a single logit) and PatchGAN (a map of logits).

Both take N x 3 x H x W images in [0, 1] and return raw logits (no sigmoid). BatchNorm follows the
official behaviour by default (``bn_mode='frozen'``, see :class:`KerasBatchNorm2d`).
"""

from __future__ import annotations

import torch
from torch import nn

from ddnsr.errors import SettingError
from ddnsr.nets.common import Conv2dSame, KerasBatchNorm2d, conv3, initialise, lrelu


class ConvBNAct(nn.Module):
    """conv (no bias) + BatchNorm + lrelu."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, bn_mode: str):
        super().__init__()
        self.conv = conv3(in_ch, out_ch, bias=False) if kernel == 3 and stride == 1 else \
            Conv2dSame(in_ch, out_ch, kernel, stride, bias=False)
        self.bn = KerasBatchNorm2d(out_ch, bn_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(self.bn(self.conv(x)))


class VGGStyleDiscriminator(nn.Module):
    """``vggstyle(filters, blocks)`` of the official code, for a fixed ``input_size`` (square).

    conv f k3 + lrelu; then for i in 0..blocks-1 the pair (conv k3 s1, conv k4 s2) with f * 2**i
    filters, each BN + lrelu (the very first k3 s1 skipped); flatten in NHWC order (as Keras); dense
    100 + lrelu; dense 1. Output N x 1 logits. HR discriminator of Track 1: (64, 5) on 128x128;
    LR discriminator: (128, 3) on 32x32.
    """

    def __init__(self, filters: int = 64, blocks: int = 5, input_size: int = 128, bn_mode: str = "frozen",
                 init: str = "keras"):
        super().__init__()
        if input_size % 2**blocks:
            raise SettingError(f"VGG-style discriminator: input size {input_size} not divisible by {2**blocks}")
        self.input_size = input_size
        self.config = dict(filters=filters, blocks=blocks, input_size=input_size, bn_mode=bn_mode)
        self.conv_first = conv3(3, filters)
        layers: list[nn.Module] = []
        ch = filters
        for i in range(blocks):
            out = filters * 2**i
            if i > 0:
                layers.append(ConvBNAct(ch, out, 3, 1, bn_mode))
                ch = out
            layers.append(ConvBNAct(ch, out, 4, 2, bn_mode))
        self.features = nn.Sequential(*layers)
        side = input_size // 2**blocks
        self.dense = nn.Linear(side * side * ch, 100)
        self.dense_out = nn.Linear(100, 1)
        initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise SettingError(f"VGG-style discriminator built for {self.input_size}x{self.input_size} "
                             f"inputs, got {x.shape[-2]}x{x.shape[-1]}")
        t = self.features(lrelu(self.conv_first(x)))
        t = t.permute(0, 2, 3, 1).flatten(1)  # Keras Flatten order: height, width, channel
        return self.dense_out(lrelu(self.dense(t)))


class PatchGANDiscriminator(nn.Module):
    """PatchGAN (HR discriminator of Track 2): conv 64 k4 s2 + lrelu; 128 k4 s2, 256 k4 s2, 512 k4 s1
    (BN + lrelu, no bias); conv 1 k4. 'same' padding as TensorFlow. Output N x 1 x H/8 x W/8 logits."""

    def __init__(self, filters: int = 64, bn_mode: str = "frozen", init: str = "keras"):
        super().__init__()
        f = filters
        self.config = dict(filters=filters, bn_mode=bn_mode)
        self.conv_first = Conv2dSame(3, f, 4, 2)
        self.features = nn.Sequential(
            ConvBNAct(f, 2 * f, 4, 2, bn_mode),
            ConvBNAct(2 * f, 4 * f, 4, 2, bn_mode),
            ConvBNAct(4 * f, 8 * f, 4, 1, bn_mode),
        )
        self.conv_last = Conv2dSame(8 * f, 1, 4, 1)
        initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_last(self.features(lrelu(self.conv_first(x))))

"""R, the reconstruction network: ESRGAN's RRDBNet (BasicSR / Real-ESRGAN state-dict naming).

Input N x in_ch x H x W in [0, 1] (not clipped), output N x out_ch x sH x sW (no activation, no
clipping; clip when saving). Keys: ``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``,
``conv_up1`` ... ``conv_upK``, ``conv_hr``, ``conv_last`` — the names spandrel, chaiNNer and
Real-ESRGAN expect, so weights move freely between them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ddnsr.errors import SettingError
from ddnsr.nets.common import conv3, init_esrgan, init_keras, lrelu


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections; returns ``x + 0.2 * conv5(...)``. Shape-preserving."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        g = num_grow_ch
        self.conv1 = conv3(num_feat, g)
        self.conv2 = conv3(num_feat + g, g)
        self.conv3 = conv3(num_feat + 2 * g, g)
        self.conv4 = conv3(num_feat + 3 * g, g)
        self.conv5 = conv3(num_feat + 4 * g, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = lrelu(self.conv1(x))
        x2 = lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + 0.2 * x5


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, then ``x + 0.2 * out``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """RRDBNet (ESRGAN). Defaults are DDNSR's R: 23 blocks, 64 features, growth 32, x4.

    ``scale`` 4, 8, 16 ... uses log2(scale) nearest-neighbour x2 upsampling layers (DDNSR's
    "upsample layers" option); scale 2 and 1 fold the input with pixel-unshuffle first and keep two
    upsampling layers, as Real-ESRGAN's x2 / x1 models do. ``init``: 'keras' (the official
    Glorot-uniform, zero bias; default) or 'esrgan' (Kaiming-normal x0.1 in the dense blocks).
    """

    kind = "reconstruction"

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 4,
        init: str = "keras",
    ):
        super().__init__()
        if scale < 1 or scale & (scale - 1):
            raise SettingError(f"RRDBNet scale must be a power of two, got {scale}")
        self.scale = scale
        self.unshuffle = {1: 4, 2: 2}.get(scale, 1)
        self.config = dict(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                           num_block=num_block, num_grow_ch=num_grow_ch, scale=scale)
        self.conv_first = conv3(num_in_ch * self.unshuffle**2, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = conv3(num_feat, num_feat)
        self.num_up = max(2, int(math.log2(scale)))
        for i in range(1, self.num_up + 1):
            setattr(self, f"conv_up{i}", conv3(num_feat, num_feat))
        self.conv_hr = conv3(num_feat, num_feat)
        self.conv_last = conv3(num_feat, num_out_ch)
        if init == "keras":
            init_keras(self)
        elif init == "esrgan":
            init_esrgan(self.body)
        elif init != "torch":
            raise SettingError(f"init must be 'keras', 'esrgan' or 'torch', got {init!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self.num_up + 1):
            feat = F.interpolate(feat, scale_factor=2.0, mode="nearest")
            feat = lrelu(getattr(self, f"conv_up{i}")(feat))
        return self.conv_last(lrelu(self.conv_hr(feat)))

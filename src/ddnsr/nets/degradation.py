"""D, the dual-input degradation network of DDNSR.

``D(hr, ref)``: hr N x 3 x H x W in [0, 1] (clean HR), ref N x 3 x H/s x W/s (a real LR crop of the
target camera, s = 2**down_layers = 4 by default) -> N x 3 x H/s x W/s, a realistic LR image (no
activation, no clipping). H and W must be divisible by s: the ``degrade`` tool pads by reflection
and crops back; the network itself refuses other sizes with a ValueError rather than guess.
With ``input_type='single'`` the reference is replaced by zeros (the paper's ablation); the noise
branch still runs, so single and dual share one set of weights, as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn

from ddnsr.errors import SettingError
from ddnsr.nets.common import Conv2dSame, conv3, initialise, lrelu


class ResBlock(nn.Module):
    """``t + conv2(lrelu(conv1(t)))``, no scaling."""

    def __init__(self, filters: int):
        super().__init__()
        self.conv1 = conv3(filters, filters)
        self.conv2 = conv3(filters, filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(lrelu(self.conv1(x)))


class DownLayer(nn.Module):
    """conv k3 s1 + lrelu, then conv k4 s2 + lrelu: halves H and W."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = conv3(in_ch, out_ch)
        self.down = Conv2dSame(out_ch, out_ch, 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(self.down(lrelu(self.conv(x))))


class DegradationNet(nn.Module):
    """The DDNSR degradation network (4,341,763 parameters at the defaults)."""

    kind = "degradation"

    def __init__(self, filters: int = 64, down_layers: int = 2, res_blocks: int = 8,
                 input_type: str = "dual", init: str = "keras"):
        super().__init__()
        if input_type not in ("dual", "single"):
            raise SettingError(f"input_type must be 'dual' or 'single', got {input_type!r}")
        f = filters
        self.input_type = input_type
        self.scale_down = 2**down_layers
        self.config = dict(filters=filters, down_layers=down_layers, res_blocks=res_blocks,
                           input_type=input_type)
        # image branch
        self.conv_first = conv3(3, f)
        self.down = nn.Sequential(*(DownLayer(f * 2**i, f * 2 ** (i + 1)) for i in range(down_layers)))
        self.conv_img = conv3(f * 2**down_layers, f)
        # noise branch (LR size, no downscaling): 3 -> f -> 2f -> 4f -> 8f, each + lrelu
        widths = [3, f, 2 * f, 4 * f, 8 * f]
        self.noise = nn.ModuleList(conv3(widths[i], widths[i + 1]) for i in range(4))
        # fusion
        self.conv_fuse = conv3(f + 8 * f, f)
        self.body = nn.Sequential(*(ResBlock(f) for _ in range(res_blocks)))
        self.conv_body = conv3(f, f)
        self.conv_last = conv3(f, 3)
        initialise(self, init)

    def forward(self, hr: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = hr.shape
        s = self.scale_down
        if h % s or w % s:
            raise SettingError(f"degradation network: HR size {h}x{w} is not divisible by {s}")
        lr_size = (h // s, w // s)
        if self.input_type == "single" or ref is None:
            if self.input_type == "dual" and ref is None:
                raise SettingError("degradation network (dual input) needs a reference LR image")
            ref = hr.new_zeros((n, 3, *lr_size))
        elif tuple(ref.shape[-2:]) != lr_size or ref.shape[0] != n:
            raise SettingError(
                f"degradation network: reference is {tuple(ref.shape)}, expected ({n}, 3, {lr_size[0]}, "
                f"{lr_size[1]}) for HR {h}x{w}"
            )
        a = self.conv_img(self.down(self.conv_first(hr)))
        b = ref
        for conv in self.noise:
            b = lrelu(conv(b))
        t = self.body(self.conv_fuse(torch.cat((a, b), 1)))
        a = a + self.conv_body(t)
        return self.conv_last(a)

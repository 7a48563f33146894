"""Frozen VGG19 feature taps, read from Keras's ImageNet ``notop`` weights file with h5py.

Taps are named as the Keras layers (``block5_conv4``, ``block3_conv4``, ``block2_conv2`` ...) and
return the conv output *before* its ReLU, as the official code's truncated models do.

Input N x 3 x H x W RGB in [0, 1]. ``preprocess='official'`` feeds it as it is (what the DDNSR
code does and its released models were trained with); ``preprocess='caffe'`` applies Keras's
``preprocess_input`` (RGB->BGR, x255, ImageNet mean subtracted), what the weights expect.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddnsr.datasets.pretrained import VGG19_KERAS, resolve
from ddnsr.errors import SettingError

# (block, number of convs, channels)
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
VGG19_LAYERS = tuple(f"block{b}_conv{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class VGG19Features(nn.Module):
    """VGG19 convolutions up to the deepest requested tap; frozen (no gradients to its weights).

    ``forward(x)`` returns a dict ``{tap: N x C x h x w}`` for every tap in ``taps``; ``forward(x, until=tap)``
    the taps up to ``tap`` only, without running the deeper layers.
    """

    def __init__(self, taps: tuple[str, ...] = ("block5_conv4",), preprocess: str = "official",
                 weights: str | os.PathLike | None = None, load: bool = True):
        super().__init__()
        unknown = [t for t in taps if t not in VGG19_LAYERS]
        if unknown:
            raise SettingError(f"unknown VGG19 tap(s) {unknown}; choose from {', '.join(VGG19_LAYERS)}")
        if preprocess not in ("official", "caffe"):
            raise SettingError(f"VGG preprocess must be 'official' or 'caffe', got {preprocess!r}")
        self.taps = tuple(taps)
        self.preprocess = preprocess
        last = max(VGG19_LAYERS.index(t) for t in taps)
        self.layer_names = VGG19_LAYERS[: last + 1]
        self.convs = nn.ModuleDict()
        in_ch = 3
        for block, n, ch in VGG19_BLOCKS:
            for i in range(1, n + 1):
                name = f"block{block}_conv{i}"
                if name in self.layer_names:
                    self.convs[name] = nn.Conv2d(in_ch, ch, 3, 1, 1)
                in_ch = ch
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        if load:
            self.load_keras(resolve(VGG19_KERAS, weights))
        self.requires_grad_(False)
        self.eval()

    def load_keras(self, path: str | os.PathLike) -> None:
        """Copy the kernels (HWIO -> OIHW) and biases of the used layers from a Keras ``.h5``."""
        try:
            with h5py.File(path, "r") as f:
                root = f["model_weights"] if "model_weights" in f else f
                for name, conv in self.convs.items():
                    group = root[name]
                    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
                    kernel = np.asarray(group[next(n for n in names if "kernel" in n or "_W" in n)])
                    bias = np.asarray(group[next(n for n in names if "bias" in n or "_b" in n)])
                    conv.weight.data.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
                    conv.bias.data.copy_(torch.from_numpy(bias))
        except (OSError, KeyError, StopIteration, RuntimeError) as exc:
            raise SettingError(f"{path}: not a Keras VGG19 weights file ({exc})") from exc

    def train(self, mode: bool = True) -> VGG19Features:  # always frozen
        return super().train(False)

    def forward(self, x: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """x: N x 3 x H x W RGB in [0, 1] -> {tap: features before its ReLU}, every tap, or with ``until``
        the taps up to that one (the layers after it are not run)."""
        if self.preprocess == "caffe":
            x = x.flip(1) * 255.0 - self.mean_bgr.to(x.dtype)
        if until is not None and until not in self.taps:
            raise SettingError(f"VGG19 tap {until!r} was not built; this extractor has {', '.join(self.taps)}")
        last = until or self.layer_names[-1]
        out: dict[str, torch.Tensor] = {}
        for name in self.layer_names:
            if name.endswith("_conv1") and name != "block1_conv1":
                x = F.max_pool2d(x, 2, 2)
            x = self.convs[name](x)
            if name in self.taps:
                out[name] = x
            if name == last:
                break
            x = F.relu(x)
        return out

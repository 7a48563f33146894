"""LPIPS v0.1 (Zhang et al., CVPR 2018): learned perceptual distance, AlexNet (default) or VGG16.

``d(x0, x1) = sum_l mean_hw( w_l . (f_l(x0) / |f_l(x0)| - f_l(x1) / |f_l(x1)|)^2 )``

* inputs RGB in [-1, 1] (images in [0, 1] are mapped by ``2 x - 1``), then LPIPS's scaling layer
  ``(x - shift) / scale`` with ``shift = (-0.030, -0.088, -0.188)``, ``scale = (0.458, 0.448, 0.450)``;
* ``f_l``: the activations after the ReLUs of an ImageNet backbone (AlexNet: relu1..relu5; VGG16:
  relu1_2, relu2_2, relu3_3, relu4_3, relu5_3), each divided by its channel-wise L2 norm (+1e-10);
* ``w_l``: the non-negative 1x1 linear heads of LPIPS v0.1 (shipped in ``data/``, BSD-2-Clause);
* the spatial mean of each layer's map, summed over the layers.

The backbones are defined here in plain PyTorch (torchvision is not a dependency) with torchvision's
state-dict keys (``features.0.weight``, ...), so torchvision's own checkpoints load unchanged. They are
found through :func:`ddnsr.datasets.pretrained.resolve` (argument, ``DDNSR_ALEXNET`` / ``DDNSR_VGG16``, the cache,
or a checksum-checked download from the PyTorch server) when first needed, not when constructed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from torch import nn

from ddnsr.datasets.pretrained import ALEXNET_TORCHVISION, RemoteFile, resolve
from ddnsr.errors import SettingError
from ddnsr.metrics.color import check_image, to_unit

__all__ = [
    "LPIPS",
    "VGG16_TORCHVISION",
    "AlexNetFeatures",
    "LinearHeads",
    "TapFeatures",
    "VGG16Features",
    "image_to_tensor",
    "load_torchvision_features",
    "lpips",
]

VGG16_TORCHVISION = RemoteFile(
    filename="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    env_var="DDNSR_VGG16",
    sha256_prefix="397923af",
)

#: LPIPS's ScalingLayer constants (ImageNet statistics re-expressed for inputs in [-1, 1]).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


class TapFeatures(nn.Module):
    """A torchvision-style ``features`` stack that returns the outputs of the layers in ``taps``.

    Input ``(N, 3, H, W)`` (already scaled); output: a list of ``(N, C_l, H_l, W_l)`` tensors.
    """

    channels: tuple[int, ...] = ()

    def __init__(self, layers: Sequence[nn.Module], taps: Sequence[int]) -> None:
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class AlexNetFeatures(TapFeatures):
    """torchvision ``alexnet().features`` (64, 192, 384, 256, 256 channels), taps after relu1..relu5."""

    channels = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        layers = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, 2),
        ]  # fmt: skip
        super().__init__(layers, taps=(1, 4, 7, 9, 11))


class VGG16Features(TapFeatures):
    """torchvision ``vgg16().features``; taps after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    channels = (64, 128, 256, 512, 512)

    def __init__(self) -> None:
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
        super().__init__(layers, taps=(3, 8, 15, 22, 29))


class _NetLin(nn.Module):
    """One LPIPS head: dropout (inactive in eval) and a 1x1 convolution without bias to 1 channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LinearHeads(nn.Module):
    """The LPIPS 1x1 heads ``lin0 .. lin{L-1}`` with the keys of the official ``.pth`` files."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.channels = tuple(channels)
        for i, c in enumerate(self.channels):
            self.add_module(f"lin{i}", _NetLin(c))

    def __getitem__(self, i: int) -> _NetLin:
        return getattr(self, f"lin{i}")

    def __len__(self) -> int:
        return len(self.channels)


@dataclass(frozen=True)
class _Net:
    make: type[TapFeatures]
    spec: RemoteFile
    heads_file: str


BACKBONES: dict[str, _Net] = {
    "alex": _Net(AlexNetFeatures, ALEXNET_TORCHVISION, "lpips_v0.1_alex.pth"),
    "vgg": _Net(VGG16Features, VGG16_TORCHVISION, "lpips_v0.1_vgg.pth"),
}


def load_torchvision_features(module: TapFeatures, path: str | os.PathLike) -> TapFeatures:
    """Load the ``features.*`` tensors of a torchvision checkpoint into ``module`` (strict)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    feats = {k: v for k, v in state.items() if k.startswith("features.")}
    module.load_state_dict(feats, strict=True)
    return module


def _load_heads(net: str, path: str | os.PathLike | None) -> LinearHeads:
    heads = LinearHeads(BACKBONES[net].make.channels)
    if path is None:
        ref = resources.files("ddnsr.metrics") / "data" / BACKBONES[net].heads_file
        with resources.as_file(ref) as p:
            state = torch.load(p, map_location="cpu", weights_only=True)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    heads.load_state_dict(state, strict=True)
    return heads


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with lazy backbone loading.

    ``net``: ``"alex"`` (default) or ``"vgg"``. ``backbone_path``: the torchvision checkpoint, else it
    is resolved (``DDNSR_ALEXNET`` / ``DDNSR_VGG16``, cache, download) on first use. ``heads_path``:
    other linear heads than the shipped v0.1 ones. ``backbone`` and ``heads``: ready modules instead
    (any :class:`TapFeatures`-like module returning one map per head), e.g. for tests.

    All parameters are frozen; gradients still flow to the inputs. The module stays in eval mode even
    inside a model switched to training.
    """

    def __init__(
        self,
        net: str = "alex",
        *,
        backbone_path: str | os.PathLike | None = None,
        heads_path: str | os.PathLike | None = None,
        backbone: nn.Module | None = None,
        heads: LinearHeads | None = None,
    ) -> None:
        super().__init__()
        if backbone is None or heads is None:
            if net not in BACKBONES:
                raise SettingError(f"net must be one of {sorted(BACKBONES)}, not {net!r}")
        self.net = net
        self.backbone_path = backbone_path
        self.heads = heads if heads is not None else _load_heads(net, heads_path)
        self.register_module("backbone", backbone)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """Ignore ``mode``: a metric stays in eval mode (the heads' dropout is never active)."""
        return super().train(False)

    def load_backbone(self) -> nn.Module:
        """Find (or download) and load the backbone now, if not loaded yet; return it."""
        if self.backbone is None:
            info = BACKBONES[self.net]
            path = resolve(info.spec, self.backbone_path)
            module = load_torchvision_features(info.make(), path)
            module.requires_grad_(False)
            module.eval()
            self.backbone = module.to(device=self.shift.device, dtype=self.shift.dtype)
        return self.backbone

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Distances ``(N,)`` between batches ``(N, 3, H, W)`` in [-1, 1] (in [0, 1] if ``normalize``)."""
        backbone = self.load_backbone()
        if normalize:
            x0, x1 = 2.0 * x0 - 1.0, 2.0 * x1 - 1.0
        f0 = backbone((x0 - self.shift) / self.scale)
        f1 = backbone((x1 - self.shift) / self.scale)
        if len(f0) != len(self.heads):
            raise SettingError(f"backbone gives {len(f0)} maps for {len(self.heads)} heads")
        total = x0.new_zeros(x0.shape[0])
        for i, (a, b) in enumerate(zip(f0, f1, strict=True)):
            a = a / (torch.sqrt(torch.sum(a * a, dim=1, keepdim=True)) + EPS)
            b = b / (torch.sqrt(torch.sum(b * b, dim=1, keepdim=True)) + EPS)
            total = total + self.heads[i]((a - b) ** 2).mean(dim=(1, 2, 3))
        return total

    @torch.no_grad()
    def score(self, img0: np.ndarray, img1: np.ndarray) -> float:
        """LPIPS between two NumPy images of the same shape (HxW or HxWx3; uint8, uint16, float [0, 1])."""
        x0, x1 = image_to_tensor(img0), image_to_tensor(img1)
        if x0.shape != x1.shape:
            raise SettingError(f"images differ in shape: {tuple(x0.shape)} vs {tuple(x1.shape)}")
        like = {"device": self.shift.device, "dtype": self.shift.dtype}
        return float(self(x0.to(**like), x1.to(**like), normalize=True)[0])


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """A NumPy image as a ``(1, 3, H, W)`` float32 tensor in [0, 1] (gray repeated to 3 channels)."""
    unit, _ = to_unit(check_image(img))
    if unit.ndim == 2:
        unit = unit[..., None]
    if unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1), dtype=np.float32))[None]


@lru_cache(maxsize=4)
def _cached(net: str, backbone_path: str | None) -> LPIPS:
    return LPIPS(net, backbone_path=backbone_path)


def lpips(
    img0: np.ndarray, img1: np.ndarray, *, net: str = "alex", backbone_path: str | os.PathLike | None = None
) -> float:
    """LPIPS v0.1 distance (>= 0, lower is more similar) between two NumPy images; see :class:`LPIPS`.

    The model is built once per ``(net, backbone_path)`` and kept (on the CPU).
    """
    model = _cached(net, None if backbone_path is None else os.fspath(backbone_path))
    return model.score(img0, img1)

"""The networks of DDNSR, in plain PyTorch: R (RRDBNet), D (DegradationNet), the discriminators, VGG19."""

from .degradation import DegradationNet
from .discriminators import PatchGANDiscriminator, VGGStyleDiscriminator
from .rrdbnet import RRDBNet
from .vgg import VGG19_LAYERS, VGG19Features

__all__ = [
    "DegradationNet",
    "PatchGANDiscriminator",
    "RRDBNet",
    "VGG19Features",
    "VGG19_LAYERS",
    "VGGStyleDiscriminator",
]

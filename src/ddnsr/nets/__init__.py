"""The networks of DDNSR, in plain PyTorch: R (RRDBNet), D (DegradationNet), the discriminators, VGG19."""

from ddnsr.nets.degradation import DegradationNet
from ddnsr.nets.discriminators import PatchGANDiscriminator, VGGStyleDiscriminator
from ddnsr.nets.rrdbnet import RRDBNet
from ddnsr.nets.vgg import VGG19_LAYERS, VGG19Features

__all__ = [
    "DegradationNet",
    "PatchGANDiscriminator",
    "RRDBNet",
    "VGG19Features",
    "VGG19_LAYERS",
    "VGGStyleDiscriminator",
]

"""Image files: reading, writing (8- and 16-bit, atomic), folder listing and alpha handling."""

from ddnsr.imageio.core import *  # noqa: F401,F403
from ddnsr.imageio.core import __all__  # noqa: F401

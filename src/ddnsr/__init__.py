"""ddnsr: real-world x4 super-resolution learned from unpaired photos (DDNSR, in PyTorch).

``ddnsr.load_model(path_or_name)`` gives a network; ``ddnsr.Upscaler`` / ``ddnsr.Degrader`` run them
on whole images (tiled). Heavy modules are imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("ddnsr.formats.modelfile", "load_model"),
    "save_model": ("ddnsr.formats.modelfile", "save_model"),
    "convert": ("ddnsr.formats.modelfile", "convert"),
    "Upscaler": ("ddnsr.inference.upscaler", "Upscaler"),
    "Degrader": ("ddnsr.inference.upscaler", "Degrader"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ddnsr' has no attribute {name!r}")

"""ddnsr: real-world x4 super-resolution learned from unpaired photos (DDNSR, in PyTorch)."""

__version__ = "0.1.0"

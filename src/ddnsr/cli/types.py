"""The argument types the ``ddnsr`` sub-commands share (argparse ``type=`` callables).

Each turns one command-line string into a value or raises ``argparse.ArgumentTypeError`` (argparse then
prints the flag and the reason and exits with 2). The limits come from :mod:`ddnsr.defaults`.
"""

from __future__ import annotations

import argparse
import math

from ddnsr.defaults import MIN_OVERLAP, check_tile

__all__ = ["non_negative", "overlap", "port", "positive", "quality", "seconds", "shard", "tile"]


def non_negative(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive(text: str) -> int:
    """A whole number >= 1."""
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def tile(text: str) -> int:
    """A tile size: 0 (whole image) or at least :data:`ddnsr.defaults.MIN_TILE`."""
    value = non_negative(text)
    problem = check_tile(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def overlap(text: str) -> int:
    """A tile overlap of at least :data:`ddnsr.defaults.MIN_OVERLAP`."""
    value = non_negative(text)
    if value < MIN_OVERLAP:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_OVERLAP} (less leaves seams), got {value}")
    return value


def shard(text: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N -> (K, N)."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N (e.g. 2/8), got {text!r}")
    return int(k), int(n)


def quality(text: str) -> int:
    """JPEG / WebP quality, 1..100."""
    value = positive(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be 1..100, got {value}")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port)."""
    value = non_negative(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def seconds(text: str) -> float:
    """``12.5``, ``1:30`` or ``0:01:30.5`` -> seconds (>= 0 and at most a year)."""
    from ddnsr.inference.video import MAX_SECONDS

    try:
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:.0f} seconds (a year), got {text!r}")
    return value


def finite(text: str) -> float:
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def outscale(text: str) -> float:
    """``--outscale``: a number above 0 and at most 4 (the model is x4)."""
    value = finite(text)
    if not 0 < value <= 4:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 4 (the model is x4), got {text}")
    return value

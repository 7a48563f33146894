"""Tiled inference: any image size in bounded memory, without seams.

The image is cut into a grid of *cores* that cover it exactly. Each core is run through the network
together with ``overlap`` input pixels of real context on every side where the image has them (the
"pad then crop" scheme of Real-ESRGAN, without artificial padding: a tile on the image border sees the
same border the whole-image pass sees). Only the output of the core is kept, written straight into one
preallocated output tensor. So for a convolutional network whose receptive field reaches at most
``overlap`` input pixels from an output pixel, the tiled result equals the whole-image result everywhere
(borders included), up to floating-point rounding. For networks with a larger receptive field (RRDBNet)
the difference decays with the overlap and is usually well below 1/255 at the default.

Scales are rational ``num/den``: integer up-scales (4 for the upscaler) and integer down-factors (1/4 for
the degrader) in particular. With ``den > 1`` tile sizes and offsets are multiples of ``den`` so that every
tile keeps the stride alignment of the whole image, and the image sides must be multiples of ``den``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch

from ddnsr.errors import SettingError

__all__ = [
    "DEFAULT_BYTES_PER_PIXEL",
    "DEFAULT_CPU_BUDGET",
    "DEFAULT_OVERLAP",
    "Scale",
    "Span",
    "as_ratio",
    "auto_tile",
    "tile_grid",
    "tiled_apply",
]

#: Input pixels of context on each side of a tile: a little more than Real-ESRGAN's 10, which keeps the
#: difference to the whole-image RRDBNet output invisible while costing (1 + 32/tile)^2 - 1 extra work.
DEFAULT_OVERLAP = 16

#: Peak inference memory per *input* pixel of a tile for the x4 RRDBNet (64 features, 23 blocks), float32,
#: without gradients. Measured on the CPU (torch 2.13): the peak resident memory grows by 15.7 KiB per
#: input pixel between 48x48 and 96x96 tiles. The HR stage dominates (64 channels at 16x the pixels, the
#: input and output of a convolution alive together: 8 KiB), plus the dense blocks' concatenations and
#: the allocator. Pass a measured value for other networks or devices.
DEFAULT_BYTES_PER_PIXEL = 16 * 1024

#: Memory budget for tiles on the CPU when none is given.
DEFAULT_CPU_BUDGET = 2 * 1024**3

Scale = int | Fraction | tuple[int, int]


def as_ratio(scale: Scale | float) -> tuple[int, int]:
    """``scale`` as a reduced ``(num, den)`` pair: ``4 -> (4, 1)``, ``Fraction(1, 4)`` or ``(1, 4)`` or
    ``0.25 -> (1, 4)``. Raises ValueError for non-positive or non-rational-looking values."""
    if isinstance(scale, tuple):
        if len(scale) != 2:
            raise SettingError(f"scale pair must be (num, den), got {scale!r}")
        ratio = Fraction(int(scale[0]), int(scale[1]))
    elif isinstance(scale, float):
        ratio = Fraction(scale).limit_denominator(1024)
        if abs(float(ratio) - scale) > 1e-9:
            raise SettingError(f"scale {scale} is not a simple fraction")
    else:
        ratio = Fraction(scale)
    if ratio <= 0:
        raise SettingError(f"scale must be positive, got {scale!r}")
    return ratio.numerator, ratio.denominator


@dataclass(frozen=True)
class Span:
    """One tile along one axis, in input pixels: the kept ``[core0, core1)`` inside the run
    ``[win0, win1)``."""

    core0: int
    core1: int
    win0: int
    win1: int


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _spans(length: int, tile: int, overlap: int, den: int) -> list[Span]:
    """Cores of near-equal size (at most ``tile``, multiples of ``den``) covering ``[0, length)``."""
    if tile <= 0 or tile >= length:
        return [Span(0, length, 0, length)]
    count = math.ceil(length / tile)
    core = min(_round_up(math.ceil(length / count), den), tile)
    spans = []
    for start in range(0, length, core):
        end = min(start + core, length)
        spans.append(Span(start, end, max(0, start - overlap), min(length, end + overlap)))
    return spans


def tile_grid(height: int, width: int, *, tile: int, overlap: int = DEFAULT_OVERLAP,
              scale: Scale | float = 1) -> list[tuple[Span, Span]]:
    """The (row span, column span) of every tile :func:`tiled_apply` runs, in its order (row-major).

    ``tile`` and ``overlap`` are rounded up to multiples of the scale's denominator; ``tile <= 0`` means
    one tile for the whole image.
    """
    _, den = as_ratio(scale)
    tile = _round_up(tile, den) if tile > 0 else 0
    overlap = _round_up(max(0, overlap), den)
    rows = _spans(height, tile, overlap, den)
    cols = _spans(width, tile, overlap, den)
    return [(r, c) for r in rows for c in cols]


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    scale: Scale | float,
    tile: int,
    overlap: int = DEFAULT_OVERLAP,
    out: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 1,
    border: int = 0,
) -> torch.Tensor:
    """Apply ``fn`` to ``image`` tile by tile and assemble the result.

    Args:
        fn: maps an NxCxhxw float tensor to NxC'x(h*scale)x(w*scale) (N is 1 unless ``batch_size`` > 1).
            It may move tiles to another device; its outputs are copied to the output's device.
        image: 1xCxHxW float tensor; H and W must be multiples of the scale's denominator.
        scale: output size / input size: an int, a Fraction, a float like 0.25 or a (num, den) pair.
        tile: core size in input pixels (rounded up to a multiple of den); 0, or a size not smaller than
            the image, runs the whole image at once. Cores are spread evenly (at most ``tile`` pixels).
        overlap: input pixels of context on each side of a core (rounded up to a multiple of den); make
            it at least the network's receptive-field radius for an exact result.
        out: a preallocated 1xC'x(H*scale)x(W*scale) tensor to write into (any device and dtype); by
            default one is allocated on ``image``'s device with the dtype of ``fn``'s output.
        progress: called as ``progress(done, total)`` after each batch of tiles.
        batch_size: run up to this many tiles of identical size together.
        border: input pixels of padding added beyond the image's own border (by reflection; by
            replication where a side is too short to reflect) and cropped away after ``fn``: a
            convolutional network then sees image-like context instead of its zero padding at the
            image border (Real-ESRGAN's ``pre_pad``). Only for integer scales (den == 1).

    Returns:
        The 1xC'x(H*scale)x(W*scale) result (``out`` itself when given). Runs without autograd.

    Raises:
        ValueError: bad shapes, sides not multiples of den, or ``fn`` returning the wrong size.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise SettingError(f"image must be 1xCxHxW, got shape {tuple(image.shape)}")
    num, den = as_ratio(scale)
    height, width = int(image.shape[2]), int(image.shape[3])
    if height % den or width % den:
        raise SettingError(f"image {height}x{width} must have sides that are multiples of {den} "
                         f"for scale {num}/{den}; crop it first")
    if batch_size < 1:
        raise SettingError(f"batch_size must be >= 1, got {batch_size}")
    if border < 0 or (border and den != 1):
        raise SettingError(f"border must be >= 0 and is for integer scales only, got {border} at {num}/{den}")
    out_h, out_w = height * num // den, width * num // den
    grid = tile_grid(height, width, tile=tile, overlap=overlap, scale=(num, den))
    total = len(grid)

    batches: list[list[tuple[Span, Span]]] = []
    if batch_size == 1:
        batches = [[cell] for cell in grid]
    else:
        by_shape: dict[tuple, list[tuple[Span, Span]]] = {}
        for r, c in grid:
            key = (r.win1 - r.win0, c.win1 - c.win0, _border_pads((r, c), height, width, border))
            by_shape.setdefault(key, []).append((r, c))
        for cells in by_shape.values():
            batches.extend(cells[i : i + batch_size] for i in range(0, len(cells), batch_size))

    done = 0
    with torch.no_grad():
        for cells in batches:
            pads = _border_pads(cells[0], height, width, border)
            pieces = [_pad_border(image[:, :, r.win0 : r.win1, c.win0 : c.win1], pads) for r, c in cells]
            tiles = pieces[0].contiguous() if len(pieces) == 1 else torch.cat(pieces, dim=0)
            result = fn(tiles)
            expected = (tiles.shape[2] * num // den, tiles.shape[3] * num // den)
            if result.ndim != 4 or result.shape[0] != len(cells) or tuple(result.shape[2:]) != expected:
                raise SettingError(
                    f"fn returned shape {tuple(result.shape)} for input {tuple(tiles.shape)}; expected "
                    f"{len(cells)}xCx{expected[0]}x{expected[1]} (scale {num}/{den})"
                )
            if out is None:
                out = torch.empty((1, result.shape[1], out_h, out_w), dtype=result.dtype, device=image.device)
            elif tuple(out.shape) != (1, result.shape[1], out_h, out_w):
                raise SettingError(f"out has shape {tuple(out.shape)}, expected "
                                   f"(1, {result.shape[1]}, {out_h}, {out_w})")
            top, left = pads[2], pads[0]
            for index, (r, c) in enumerate(cells):
                piece = result[
                    index : index + 1,
                    :,
                    (r.core0 - r.win0 + top) * num // den : (r.core1 - r.win0 + top) * num // den,
                    (c.core0 - c.win0 + left) * num // den : (c.core1 - c.win0 + left) * num // den,
                ]
                out[
                    :,
                    :,
                    r.core0 * num // den : r.core1 * num // den,
                    c.core0 * num // den : c.core1 * num // den,
                ].copy_(piece)
            done += len(cells)
            if progress is not None:
                progress(done, total)
            del result, tiles, pieces
    assert out is not None
    return out


def _border_pads(cell: tuple[Span, Span], height: int, width: int, border: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding of a tile: ``border`` on each side that lies on the image border."""
    r, c = cell
    return (border if c.win0 == 0 else 0, border if c.win1 == width else 0,
            border if r.win0 == 0 else 0, border if r.win1 == height else 0)


def _pad_border(tile: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """``tile`` padded by reflection, or by replication where a side is too short to reflect."""
    if not any(pads):
        return tile
    left, right, top, bottom = pads
    reflectable = max(left, right) < tile.shape[3] and max(top, bottom) < tile.shape[2]
    return torch.nn.functional.pad(tile, pads, mode="reflect" if reflectable else "replicate")


def auto_tile(
    height: int,
    width: int,
    *,
    device: torch.device | str = "cpu",
    bytes_per_pixel_estimate: int = DEFAULT_BYTES_PER_PIXEL,
    budget_bytes: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    multiple: int = 8,
    min_tile: int = 32,
    border: int = 0,
) -> int:
    """A tile size for :func:`tiled_apply` that keeps one tile's activations within a memory budget.

    Rule: a tile of core ``t`` runs at most ``(t + 2 * m)^2`` input pixels, ``m`` the larger of ``overlap``
    and ``border`` (each side gets either context or border padding), costing about
    ``bytes_per_pixel_estimate`` each at the peak. Return 0 (whole image) when the padded image,
    ``(height + 2 * border) * (width + 2 * border)`` pixels, fits the budget (so a 1 x N image is not run
    whole: its padding is 21 times its pixels); else the largest ``t``, a multiple of ``multiple`` and at
    least ``min_tile``, with ``bytes_per_pixel_estimate * (t + 2 * m)^2 <= budget_bytes``. The default budget is 60% of
    the free memory of a CUDA device, else :data:`DEFAULT_CPU_BUDGET`. With the RRDBNet default of
    16 KiB per pixel, a 2 GiB CPU budget gives 328-pixel tiles (just under 2 GiB at the peak).

    Args:
        height, width: input image size in pixels.
        device: where the network runs.
        bytes_per_pixel_estimate: peak bytes per input pixel of a tile (see DEFAULT_BYTES_PER_PIXEL).
        budget_bytes: memory allowed for one tile; None: the device default above.
        overlap, multiple, min_tile: as described; ``multiple`` should be a multiple of any down-factor.
        border: the ``border`` that :func:`tiled_apply` pads around the image (0: none).
    """
    if bytes_per_pixel_estimate <= 0:
        raise SettingError("bytes_per_pixel_estimate must be positive")
    device = torch.device(device)
    if budget_bytes is None:
        if device.type == "cuda" and torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(device)
            budget_bytes = int(free * 0.6)
        else:
            budget_bytes = DEFAULT_CPU_BUDGET
    if (height + 2 * border) * (width + 2 * border) * bytes_per_pixel_estimate <= budget_bytes:
        return 0
    side = math.isqrt(max(0, budget_bytes // bytes_per_pixel_estimate))
    tile = (side - 2 * max(overlap, border)) // multiple * multiple
    tile = max(tile, _round_up(min_tile, multiple))
    return 0 if tile >= max(height, width) else tile

"""Tiled inference equals whole-image inference (small random networks, small images)."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from ddnsr.inference.tiling import as_ratio, auto_tile, tile_grid, tiled_apply

# Receptive-field radius, in input pixels, of the networks below:
#   upscaler: four 3x3 convolutions at LR (4 px) + one 3x3 convolution at HR (1 HR px, < 1 LR px) -> 5;
#   downscaler: 3x3 conv (1 px), 4x4 stride-4 conv, 3x3 conv at LR (1 LR px = 4 px, + 3 px of its block)
#   -> at most 8 px.
UP_RADIUS = 5
DOWN_RADIUS = 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions: one thread is fastest and does not fight other jobs for the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _upscaler() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 8, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 8, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 3, 3, padding=1),
        nn.Upsample(scale_factor=4, mode="nearest"),
        nn.Conv2d(3, 3, 3, padding=1),
    )
    return net.eval()


def _downscaler() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 8, 4, stride=4), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 3, 3, padding=1),
    )
    return net.eval()


def _image(height: int, width: int, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, height, width, generator=generator)


@pytest.fixture(scope="module")
def up() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    net = _upscaler()
    image = _image(37, 53)  # odd sizes on purpose
    with torch.no_grad():
        whole = net(image)
    return net, image, whole


@pytest.mark.parametrize(("tile", "overlap"), [(8, 5), (13, 6), (16, 8), (20, 5), (36, 7), (7, 12)])
def test_tiled_upscale_equals_whole_image_everywhere(up, tile: int, overlap: int) -> None:
    net, image, whole = up
    assert overlap >= UP_RADIUS
    tiled = tiled_apply(net, image, scale=4, tile=tile, overlap=overlap)
    assert tiled.shape == whole.shape == (1, 3, 148, 212)
    # Everywhere, borders included: border tiles see the real border, as the whole-image pass does.
    assert (tiled - whole).abs().max().item() < 1e-5


def test_too_small_overlap_shows_seams(up) -> None:
    """The comparison above is sensitive: with overlap < receptive field the tiles disagree."""
    net, image, whole = up
    tiled = tiled_apply(net, image, scale=4, tile=12, overlap=1)
    assert (tiled - whole).abs().max().item() > 1e-3


def test_tile_larger_than_image_or_zero_runs_once(up) -> None:
    net, image, whole = up
    shapes: list[tuple[int, ...]] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return net(x)

    for tile in (0, 53, 64, 1000):
        shapes.clear()
        result = tiled_apply(fn, image, scale=4, tile=tile, overlap=8)
        assert shapes == [(1, 3, 37, 53)]
        assert torch.equal(result, whole)


def test_tiles_are_bounded_and_cover_the_image() -> None:
    grid = tile_grid(37, 53, tile=16, overlap=6)
    covered = torch.zeros(37, 53, dtype=torch.int32)
    for rows, cols in grid:
        assert rows.core1 - rows.core0 <= 16 and cols.core1 - cols.core0 <= 16
        assert rows.win1 - rows.win0 <= 16 + 12 and cols.win1 - cols.win0 <= 16 + 12
        assert rows.win0 == max(0, rows.core0 - 6) and cols.win1 == min(53, cols.core1 + 6)
        covered[rows.core0 : rows.core1, cols.core0 : cols.core1] += 1
    assert torch.all(covered == 1)  # cores tile the image exactly once


def test_memory_is_bounded_by_the_tile(up) -> None:
    net, image, _ = up
    biggest = 0

    def fn(x: torch.Tensor) -> torch.Tensor:
        nonlocal biggest
        biggest = max(biggest, x.shape[2], x.shape[3])
        return net(x)

    tiled_apply(fn, image, scale=4, tile=10, overlap=5)
    assert biggest <= 10 + 2 * 5


def test_progress_counts_every_tile(up) -> None:
    net, image, _ = up
    calls: list[tuple[int, int]] = []
    tiled_apply(net, image, scale=4, tile=16, overlap=5, progress=lambda d, t: calls.append((d, t)))
    total = len(tile_grid(37, 53, tile=16, overlap=5))
    assert total == 3 * 4
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_batched_tiles_match_and_progress_reaches_total(up) -> None:
    net, image, whole = up
    calls: list[tuple[int, int]] = []
    batches: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        batches.append(x.shape[0])
        return net(x)

    tiled = tiled_apply(fn, image, scale=4, tile=8, overlap=5, batch_size=4,
                        progress=lambda d, t: calls.append((d, t)))
    assert (tiled - whole).abs().max().item() < 1e-5
    total = len(tile_grid(37, 53, tile=8, overlap=5))
    assert sum(batches) == total and max(batches) == 4 and len(batches) < total
    assert calls[-1] == (total, total) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_preallocated_output_is_filled_in_place(up) -> None:
    net, image, whole = up
    out = torch.full((1, 3, 148, 212), float("nan"), dtype=torch.float64)
    result = tiled_apply(net, image, scale=4, tile=16, overlap=6, out=out)
    assert result is out
    assert (out - whole.double()).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="out has shape"):
        tiled_apply(net, image, scale=4, tile=16, overlap=6, out=torch.empty(1, 3, 10, 10))


def test_wrong_output_size_is_reported(up) -> None:
    _, image, _ = up
    with pytest.raises(ValueError, match="expected"):
        tiled_apply(lambda x: x, image, scale=4, tile=16, overlap=4)


@pytest.mark.parametrize("scale", [(1, 4), Fraction(1, 4), 0.25])
@pytest.mark.parametrize("tile", [8, 10, 12, 20])
def test_tiled_downscale_equals_whole_image(scale, tile: int) -> None:
    net = _downscaler()
    image = _image(40, 56, seed=3)
    with torch.no_grad():
        whole = net(image)
    seen: list[tuple[int, ...]] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return net(x)

    tiled = tiled_apply(fn, image, scale=scale, tile=tile, overlap=DOWN_RADIUS)
    assert tiled.shape == whole.shape == (1, 3, 10, 14)
    assert (tiled - whole).abs().max().item() < 1e-5
    assert len(seen) > 1 and all(h % 4 == 0 and w % 4 == 0 for _, _, h, w in seen)
    for rows, cols in tile_grid(40, 56, tile=tile, overlap=DOWN_RADIUS, scale=scale):
        assert rows.core0 % 4 == 0 and rows.win0 % 4 == 0 and cols.core0 % 4 == 0 and cols.win0 % 4 == 0


def test_downscale_needs_sides_multiple_of_factor() -> None:
    net = _downscaler()
    with pytest.raises(ValueError, match="multiples of 4"):
        tiled_apply(net, _image(42, 56), scale=(1, 4), tile=16, overlap=8)


def test_as_ratio() -> None:
    assert as_ratio(4) == (4, 1)
    assert as_ratio((2, 8)) == (1, 4)
    assert as_ratio(Fraction(3, 2)) == (3, 2)
    assert as_ratio(0.25) == (1, 4)
    for bad in (0, -2, (1, 0), 0.123456789):
        with pytest.raises((ValueError, ZeroDivisionError)):
            as_ratio(bad)


def test_auto_tile_rule() -> None:
    kib = 1024
    # The whole image fits: no tiling.
    assert auto_tile(100, 100, device="cpu", bytes_per_pixel_estimate=kib, budget_bytes=100 * 100 * kib) == 0
    budget = 64 * 1024 * kib
    tile = auto_tile(4000, 3000, device="cpu", bytes_per_pixel_estimate=kib, budget_bytes=budget, overlap=16)
    assert tile > 0 and tile % 8 == 0
    assert (tile + 32) ** 2 * kib <= budget < (tile + 8 + 32) ** 2 * kib  # the largest that fits
    bigger = auto_tile(4000, 3000, device="cpu", bytes_per_pixel_estimate=kib, budget_bytes=4 * budget)
    assert bigger > tile
    # The default RRDBNet estimate and CPU budget give the documented 328.
    assert auto_tile(2000, 2000, device="cpu") == 328
    # A tiny budget still returns a usable tile.
    assert auto_tile(4000, 3000, device="cpu", bytes_per_pixel_estimate=kib, budget_bytes=1) == 32


@pytest.mark.parametrize("size", [(1, 2000), (2000, 1), (3, 700)])
def test_thin_images_stay_within_the_tile_budget_including_the_border(monkeypatch, size) -> None:
    """A 1 x N image padded by the upscaler's border is 21 x (N + 20): the largest tensor fed to the
    network must still fit the per-tile budget (it used to run whole: 21 times its pixels)."""
    import numpy as np

    from ddnsr.inference import upscaler as upscaler_module
    from ddnsr.nets import RRDBNet

    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    up = upscaler_module.Upscaler(net, device=torch.device("cpu"), precision="fp32")
    budget_pixels = 64 * 64
    monkeypatch.setattr(upscaler_module, "_cpu_budget", lambda pixels, held=0: budget_pixels * up.bytes_per_pixel)
    fed: list[tuple[int, ...]] = []
    net.register_forward_pre_hook(lambda module, args: fed.append(tuple(args[0].shape)))
    rgb = np.random.default_rng(0).random((*size, 3), dtype=np.float32)
    out = up.upscale_array(rgb)
    assert out.shape == (4 * size[0], 4 * size[1], 3)
    assert fed and max(h * w for *_, h, w in fed) <= budget_pixels, max(fed, key=lambda s: s[2] * s[3])
    assert auto_tile(1, 50000, device="cpu", bytes_per_pixel_estimate=1024, budget_bytes=1024 * 300 * 300,
                     border=10) > 0

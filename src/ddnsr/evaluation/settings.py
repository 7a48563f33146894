"""The settings of an evaluation, with their defaults in one place (the command line reads them from here)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ddnsr import defaults
from ddnsr.errors import SettingError

__all__ = ["DEFAULT", "NIQE_CHANNELS", "Settings"]

NIQE_CHANNELS = ("gray", "y")


@dataclass(frozen=True)
class Settings:
    """How :func:`ddnsr.evaluation.evaluate` (and :func:`~ddnsr.evaluation.scoring.evaluate_sr`) work.

    Attributes:
        crops: how many images get a side-by-side crop picture (evenly spaced in the sorted list).
        crop_size: the crop's size in HR pixels (at least 8).
        niqe_channel: ``"gray"`` (MATLAB ``niqe_release``'s ``rgb2gray``) or ``"y"`` (BT.601 Y, BasicSR).
        use_lpips: compute LPIPS when its AlexNet backbone is present locally (it is never downloaded).
        device, precision, tile: how models are run (``Upscaler.load`` / ``Degrader.load``; tile 0: whole image);
            precision is fp32 by default (:data:`ddnsr.defaults.PRECISION`: scores are of the network itself).
        seed: the seed given to degradation models.
        progress: show progress bars on stderr.
        max_pixels: images (LR, HR or reference) with more pixels are skipped, refused from their header
            before decoding (None: no limit; default :data:`ddnsr.defaults.EVALUATE_MAX_PIXELS`).
    """

    crops: int = 3
    crop_size: int = 128
    niqe_channel: str = "gray"
    use_lpips: bool = True
    device: str = defaults.DEVICE
    precision: str = defaults.PRECISION["evaluation"]
    tile: int | None = None
    seed: int = 0
    progress: bool = True
    max_pixels: int | None = defaults.EVALUATE_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.max_pixels is not None and (isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int)
                                            or self.max_pixels < 1):
            raise SettingError(f"max_pixels must be an integer of at least 1 (or None), got {self.max_pixels!r}")
        if self.niqe_channel not in NIQE_CHANNELS:
            raise SettingError(f"niqe_channel must be 'gray' or 'y', not {self.niqe_channel!r}")
        if self.crops < 0 or self.crop_size < 8:
            raise SettingError("crops must be >= 0 and crop_size >= 8")

    def changed(self) -> dict[str, object]:
        """The settings that differ from the defaults, ``{name: value}`` in declaration order."""
        default = DEFAULT
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}


#: The default settings (a frozen instance, safe as a default argument).
DEFAULT = Settings()

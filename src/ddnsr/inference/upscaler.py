"""Running the trained networks on whole images: :class:`Upscaler` (R, x4) and :class:`Degrader` (D, x1/4).

::

    from ddnsr import Upscaler
    up = Upscaler.load("track1")          # a bundled name, a .safetensors from ``ddnsr train``, or ESRGAN weights
    sr = up(image)                        # PIL image or NumPy array in, the same type back, 4x the size

Images of any size run tile by tile (:func:`ddnsr.inference.tiling.tiled_apply`) in bounded memory: the input is
kept as one float32 array, each tile's output is clipped, rounded to the output's integer type and
written straight into one preallocated output array, so a big image never exists as a float32 output.
The tiled result equals the whole-image one up to float rounding (and, where the network reaches further
than the tile overlap, a difference well below 1/255; see :mod:`ddnsr.inference.tiling`).

Defaults and why (measured by ``benchmarks/infer.py``; numbers in its docstring):

* ``device="auto"``: CUDA, else Apple's MPS, else the CPU.
* ``precision="auto"``: :func:`ddnsr.defaults.precision_rule` for inference: fp16 autocast on CUDA,
  bf16 on CPUs that compute it natively (within 40 dB PSNR of fp32 on real photos, at most a few levels
  apart at the 8-bit output), else fp32. ``fp16`` is refused on the CPU with a SettingError (a choice:
  CPU half-precision convolutions are no fast path and lose precision; bf16 is the CPU's reduced
  precision); on CUDA and MPS it runs under autocast.
* the fast path is always on: ``torch.inference_mode()``, the network and each tile in
  ``channels_last`` memory format (same result within float rounding, markedly faster with oneDNN on
  the CPU), one tile at a time (batching equal tiles gave no gain on the CPU and multiplies memory).
* ``tile=None``: :func:`ddnsr.inference.tiling.auto_tile` with a per-pixel estimate scaled to the network's width
  and, on the CPU, a budget that leaves room for the input and output arrays (see :func:`_cpu_budget`),
  so that a 4000x3000 photo stays within its 8-bit output plus 1.5 GB. ``tile=0``: whole image.
* ``threads``: ``torch.set_num_threads`` (process-wide), left alone when None.

Thread safety: one instance may be called from several threads at once; the network call is serialised
by a lock held only around it, everything else is per-call state.

Colour handling shared with the command line: gray images go through the network as three equal
channels and come back as their BT.601 luma (as :func:`ddnsr.imageio.write_image` reduces them); alpha is
kept (transparent colour is bled from the nearest visible pixel first, the alpha plane is resized with
bicubic interpolation, see :mod:`ddnsr.imageio`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import ddnsr.imageio as dio
from ddnsr import defaults
from ddnsr.errors import ModelFileError, SettingError
from ddnsr.formats.modelfile import bundled_models, load_model
from ddnsr.inference.backends import choose as choose_backend
from ddnsr.inference.backends import make_engine
from ddnsr.inference.device import DEVICES, PRECISIONS, resolve_device, set_threads
from ddnsr.inference.device import autocast_dtype as _autocast_dtype
from ddnsr.inference.outscale import OutputSize, resize_planes
from ddnsr.inference.tiling import DEFAULT_BYTES_PER_PIXEL, DEFAULT_OVERLAP, auto_tile, tiled_apply
from ddnsr.nets import DegradationNet, RRDBNet

__all__ = [
    "DEFAULT_DEGRADE_OVERLAP",
    "DEFAULT_MODEL",
    "DEVICES",
    "PRECISIONS",
    "Degrader",
    "Upscaler",
    "crop_to_multiple",
    "reference_crop",
    "resolve_device",
]

#: The model used when none is named (:data:`ddnsr.defaults.DEFAULT_MODEL`, a bundled name:
#: ``src/ddnsr/models/<name>-reconstruction.safetensors`` and ``<name>-degradation.safetensors``), and the
#: small fast one (:data:`ddnsr.defaults.FAST_MODEL`).
DEFAULT_MODEL, FAST_MODEL = defaults.DEFAULT_MODEL, defaults.FAST_MODEL


#: HR pixels of context around each degradation tile (16 LR pixels): D's reach is wider than the
#: upscaler's per input pixel, and D is cheap.
DEFAULT_DEGRADE_OVERLAP = 64

#: LR pixels of reflection padding around the whole image before the upscaler's network (cropped
#: after): without it the network's zero padding draws a bright frame 4-6 output pixels wide along
#: every border (Real-ESRGAN pads by 10, its ``pre_pad``). Measured in tests/test_infer.py.
BORDER_PAD = 10

#: Peak bytes per HR input pixel of the default DegradationNet (64 filters), float32, no gradients: the
#: first two full-resolution convolutions (64 and 128 channels, input and output alive) dominate. Measured:
#: 1.3-1.4 KiB (channels_last, 256 and 384 pixel inputs); 2 KiB leaves room for the tile's output.
_DEGRADER_BYTES_PER_PIXEL = 2 * 1024

#: Memory kept free for everything but the tile on the CPU (Python, torch, the decoded file, slack).
_CPU_RESERVE = 640 * 1024**2
#: What the whole process may add on top of its output array (the issue's bound for a 4000x3000 input).
_CPU_LIMIT_OVER_OUTPUT = 1536 * 1024**2

_LUMA = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(1, 3, 1, 1)
_ALPHA_OVERLAP = 8  # bicubic reaches 2 input pixels (x4 up) or 8 (x1/4 down, antialiased): exact tiles

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------- settings


def _cpu_budget(input_pixels: int, held: int = 0) -> int:
    """Bytes one tile may use on the CPU: the process's bound over its output, less the float32 input
    (held once, plus a tile-sized copy), a fixed reserve and ``held`` (what the engine keeps beyond the
    torch path's weights: ncnn's transformed kernels); between 256 MiB and 2 GiB."""
    budget = _CPU_LIMIT_OVER_OUTPUT - _CPU_RESERVE - 12 * input_pixels - held
    return int(min(max(budget, 256 * 1024**2), 2 * 1024**3))


def _no_bundled_model_error(kind: str) -> ModelFileError:
    return ModelFileError(
        f"no bundled model is installed (the default {DEFAULT_MODEL!r} has no {kind} network yet); "
        "pass --model PATH (a .safetensors from 'ddnsr train' or ESRGAN-family RRDBNet x4 weights)"
    )


def _load_network(model: str | os.PathLike | nn.Module, kind: str) -> tuple[nn.Module, str]:
    """(network in eval mode, a name for messages) from a module, a bundled name or a file."""
    if isinstance(model, nn.Module):
        return model.eval(), type(model).__name__
    name = os.fspath(model)
    if name == DEFAULT_MODEL and not Path(name).is_file() and kind not in bundled_models().get(name, {}):
        raise _no_bundled_model_error(kind)
    return load_model(model, kind=kind), name


# ------------------------------------------------------------------------------------------ the engine


class _Engine:
    """A network on a device with its precision: ``engine(*tiles)`` -> float32 output on the device.

    Inputs are float32 NCHW tensors (any device); they are moved to the device in ``channels_last``.
    The network call runs under ``inference_mode`` (and autocast), serialised by a lock.
    """

    def __init__(self, net: nn.Module, device: torch.device, autocast: torch.dtype | None,
                 channels_last: bool = True) -> None:
        self.device = device
        self.autocast = autocast
        self.channels_last = channels_last
        self.net = net.to(device).eval()
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def __call__(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        args = [None if x is None else self._prepare(x) for x in inputs]
        with self._lock, torch.inference_mode():
            if self.autocast is not None:
                with torch.autocast(self.device.type, dtype=self.autocast):
                    y = self.net(*args)
            else:
                y = self.net(*args)
            return y.float()


def _finish(y: torch.Tensor, *, gray: bool, channels: int, levels: int | None) -> torch.Tensor:
    """Network output NxCxhxw -> clipped [0, 1], gray reduced by BT.601 luma (then repeated to
    ``channels``), times ``levels`` and rounded when the output is an integer type."""
    y = y.clamp_(0.0, 1.0)
    if gray:
        y = (y * _LUMA.to(y.device)).sum(dim=1, keepdim=True).clamp_(0.0, 1.0)
        if channels > 1:
            y = y.expand(-1, channels, -1, -1)
    if levels is not None:
        y = y.mul(levels).round_()
    return y


def _levels(dtype: np.dtype) -> int | None:
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    return None


def _nchw_view(array: np.ndarray) -> torch.Tensor:
    """HxWxC NumPy array -> a 1xCxHxW tensor sharing its memory (writes go into the array)."""
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def _resize_alpha_into(alpha: np.ndarray, out: torch.Tensor, *, up: bool, levels: int | None) -> None:
    """Bicubic x4 (``up``) or antialiased x1/4 resize of an HxW alpha into a 1x1xH'xW' view, tile by tile
    (exactly the whole-image result: tiles carry enough context for the kernel)."""
    scale = (4, 1) if up else (1, 4)

    def resize(t: torch.Tensor) -> torch.Tensor:
        h, w = t.shape[-2:]
        size = (h * 4, w * 4) if up else (h // 4, w // 4)
        r = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=not up).clamp_(0.0, 1.0)
        return r.mul_(levels).round_() if levels is not None else r

    source = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
    with torch.inference_mode():
        tiled_apply(resize, source, scale=scale, tile=512, overlap=_ALPHA_OVERLAP, out=out)


@dataclass(frozen=True)
class _Layout:
    """How an array or PIL image maps to planes and back."""

    gray: bool  # colour reduced to luma on the way out
    channels: int  # colour channels of the output (1 or 3; 3 for gray into formats without gray)
    alpha: bool
    dtype: np.dtype


def _render(
    run: Callable[[torch.Tensor], torch.Tensor],
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    layout: _Layout,
    *,
    up: bool,
    tile: int,
    overlap: int,
    progress: Progress | None,
    border: int = 0,
) -> np.ndarray:
    """Run ``run`` over ``rgb`` (HxWx3 float32) into a new HxWxC array of ``layout`` (H, W scaled)."""
    height, width = rgb.shape[:2]
    out_h, out_w = (height * 4, width * 4) if up else (height // 4, width // 4)
    channels = layout.channels + (1 if layout.alpha else 0)
    out = np.empty((out_h, out_w, channels), dtype=layout.dtype)
    view = _nchw_view(out)
    levels = _levels(layout.dtype)
    source = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)  # a view: no float copy of the image

    def colour(t: torch.Tensor) -> torch.Tensor:
        return _finish(run(t), gray=layout.gray, channels=layout.channels, levels=levels)

    with torch.inference_mode():
        tiled_apply(colour, source, scale=(4, 1) if up else (1, 4), tile=tile, overlap=overlap,
                    out=view[:, : layout.channels], progress=progress, border=border)
    if layout.alpha:
        if alpha is None:
            view[:, -1:].fill_(levels if levels is not None else 1.0)
        else:
            _resize_alpha_into(alpha, view[:, -1:], up=up, levels=levels)
    return out


# ------------------------------------------------------------------------------ arrays and PIL images


@dataclass
class _Planes:
    rgb: np.ndarray  # HxWx3 float32 [0, 1]
    alpha: np.ndarray | None  # HxW float32 [0, 1]
    layout: _Layout
    squeeze: bool  # an HxW array: give HxW back
    pil_mode: str | None  # the PIL mode to return, None for arrays
    icc: bytes | None = None


def _array_planes(array: np.ndarray) -> _Planes:
    """uint8 / uint16 / float ([0, 1]) HxW or HxWxC (C = 1, 2, 3, 4) -> planes and the layout to return."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16) and not np.issubdtype(array.dtype, np.floating):
        raise SettingError(f"image array must be uint8, uint16 or float in [0, 1], not {array.dtype}")
    squeeze = array.ndim == 2
    if squeeze:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4) or 0 in array.shape:
        raise SettingError(f"image array must be HxW or HxWxC with C in 1..4, got shape {array.shape}")
    planes = dio.as_float_planes(array, "image")
    c = array.shape[2]
    gray = c <= 2
    colour = planes[..., :1] if gray else planes[..., :3]
    rgb = np.repeat(colour, 3, axis=2) if gray else np.ascontiguousarray(colour)
    alpha = np.ascontiguousarray(planes[..., -1]) if c in (2, 4) else None
    layout = _Layout(gray=gray, channels=1 if gray else 3, alpha=alpha is not None, dtype=array.dtype)
    return _Planes(rgb, alpha, layout, squeeze, None)


def _pil_planes(image: Image.Image) -> _Planes:
    """A PIL image -> planes; the result keeps the mode where an upscaled image can (P -> RGB/RGBA)."""
    mode = image.mode
    icc = image.info.get("icc_profile") or None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        data = np.asarray(image).astype(np.uint16)
        out_mode = "I;16"
    elif mode == "I":
        data = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        out_mode = "I"
    elif mode == "F":
        data = np.asarray(image, dtype=np.float32)
        out_mode = "F"
    else:
        if mode in ("1", "L"):
            converted = image.convert("L")
        elif mode in ("LA", "La"):
            converted = image.convert("LA")
        elif mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
            converted = image.convert("RGBA")
        else:
            converted = image.convert("RGB")
        data = np.asarray(converted)
        out_mode = converted.mode
    planes = _array_planes(data)
    planes.pil_mode = out_mode
    planes.icc = icc
    return planes


def _back(result: np.ndarray, planes: _Planes) -> Image.Image | np.ndarray:
    if planes.pil_mode is None:
        return result[..., 0] if planes.squeeze and result.shape[2] == 1 else result
    mode = planes.pil_mode
    if mode in ("I;16", "I", "F"):
        plane = result[..., 0]
        image = Image.fromarray(plane.astype(np.int32) if mode == "I" else plane)
    else:
        image = Image.fromarray(result[..., 0] if result.shape[2] == 1 else result)
    if planes.icc:
        image.info["icc_profile"] = planes.icc
    return image


def _as_rgb(reference: Image.Image | np.ndarray) -> np.ndarray:
    """A reference photo (PIL or array, any layout) -> HxWx3 float32 in [0, 1] (alpha dropped)."""
    if isinstance(reference, Image.Image):
        return _pil_planes(reference).rgb
    return _array_planes(reference).rgb


def crop_to_multiple(array: np.ndarray, multiple: int = 4) -> np.ndarray:
    """Crop the bottom rows and right columns so both sides are multiples of ``multiple`` (a view).

    Raises:
        ValueError: a side shorter than ``multiple``.
    """
    height, width = array.shape[:2]
    if height < multiple or width < multiple:
        raise SettingError(f"image {width}x{height} is too small (sides of at least {multiple} pixels needed)")
    return array[: height - height % multiple, : width - width % multiple]


def reference_crop(reference: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ``size`` (h, w) crop of an HxWx3 reference at a position drawn from ``rng``.

    A reference smaller than the crop along a side is first extended by mirror tiling (numpy's
    ``symmetric`` padding, repeated as often as needed) at its bottom / right.
    """
    h, w = size
    rh, rw = reference.shape[:2]
    if rh < h or rw < w:
        reference = np.pad(reference, ((0, max(0, h - rh)), (0, max(0, w - rw)), (0, 0)), mode="symmetric")
        rh, rw = reference.shape[:2]
    y = int(rng.integers(0, rh - h + 1))
    x = int(rng.integers(0, rw - w + 1))
    return reference[y : y + h, x : x + w]


# ---------------------------------------------------------------------------------------------- Upscaler


class _TiledNetwork:
    """What :class:`Upscaler` and :class:`Degrader` share: loading, the settings checks, the engine that
    runs the network, and the automatic tile size."""

    scale: int = 4
    _kind = ""  # the network kind that load_model picks from a bundled name
    _default_overlap = DEFAULT_OVERLAP
    _tile_rule: dict = {}  # extra auto_tile arguments
    bytes_per_pixel: int

    def _setup(self, net: nn.Module, device: torch.device, precision: str, tile: int | None, overlap: int,
               name: str, channels_last: bool, backend: str = "torch") -> None:
        if tile is not None and tile < 0:
            raise SettingError(f"tile must be >= 0 (0: whole image), got {tile}")
        if overlap < 0:
            raise SettingError(f"tile overlap must be >= 0, got {overlap}")
        self.device = device
        self.tile = tile
        self.overlap = overlap
        self.name = name
        # the runtime and its precision (ddnsr.inference.backends: auto, torch, onnxruntime, openvino, ncnn)
        self.backend, self.precision = choose_backend(backend, device, precision, net)
        if self.backend == "torch":
            self._engine = _Engine(net, device, _autocast_dtype(self.precision, device), channels_last)
        else:  # OpenVINO / ONNX Runtime / ncnn on the CPU: the same tiling and formats, another network call
            self._engine = make_engine(self.backend, net, self.precision)
            self.precision = getattr(self._engine, "precision", self.precision)

    @classmethod
    def load(cls, model: str | os.PathLike | nn.Module = DEFAULT_MODEL, *, device: str | torch.device = "auto",
             precision: str = "auto", tile: int | None = None, threads: int | None = None,
             overlap: int | None = None, backend: str = "auto"):
        """Load the network from a bundled name, a model file (see :func:`ddnsr.load_model`) or a module.

        Args:
            model: bundled name (default :data:`DEFAULT_MODEL`; its R for :class:`Upscaler`, its D for
                :class:`Degrader`), a ``.safetensors`` / ``.pth`` / ncnn path, or an ``nn.Module``.
            device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
            precision: ``auto`` (default: :func:`ddnsr.inference.device.inference_precision`), ``fp32``,
                ``bf16`` or ``fp16`` (not on the CPU).
            tile: tile size (Upscaler: input pixels; Degrader: HR pixels, a multiple of 4); None: automatic
                (bounded memory); 0: whole image.
            threads: CPU threads for torch (process-wide); None leaves the setting alone.
            overlap: pixels of context around each tile (None: the class default).
            backend: ``auto`` (default: the fastest runtime within 40 dB of fp32 on this machine), ``torch``,
                ``onnxruntime``, ``openvino`` or ``ncnn`` (CPU; see :mod:`ddnsr.inference.backends`).

        Raises:
            ModelFileError, SettingError: no such model, a network of the wrong kind or scale, an unusable
                device or precision.
        """
        dev = resolve_device(device)
        _autocast_dtype(precision, dev)  # fail before loading
        set_threads(threads)
        net, name = _load_network(model, cls._kind)
        return cls(net, device=dev, precision=precision, tile=tile,
                   overlap=cls._default_overlap if overlap is None else overlap, name=name, backend=backend)

    def tile_for(self, height: int, width: int) -> int:
        """The tile size used for an input of ``height`` x ``width`` (0: whole image)."""
        if self.tile is not None:
            return self.tile
        budget = None
        if self.device.type == "cpu":
            budget = _cpu_budget(height * width, getattr(self._engine, "resident_bytes", 0))
        return auto_tile(height, width, device=self.device, bytes_per_pixel_estimate=self.bytes_per_pixel,
                         budget_bytes=budget, overlap=self.overlap, border=getattr(self, "border", 0),
                         **self._tile_rule)


class Upscaler(_TiledNetwork):
    """x4 super-resolution with a reconstruction network R (RRDBNet), tiled, thread-safe.

    Build it with :meth:`load`. ``up(image)`` takes a PIL image or an array (uint8, uint16 or float in
    [0, 1]; HxW or HxWxC with C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) and returns the same type,
    dtype and layout at 4x the height and width. :meth:`upscale_array` is the float RGB core.
    The torch backend takes ``net`` over as it is (moved to the device, eval mode and channels_last in
    place, not copied): give it a copy to keep using the module elsewhere in NCHW.
    """

    _kind = "reconstruction"

    def __init__(self, net: nn.Module, *, device: torch.device, precision: str = "fp32", tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, name: str = "", channels_last: bool = True,
                 border: int = BORDER_PAD, backend: str = "torch") -> None:
        check_reconstruction(net, name)
        self._setup(net, device, precision, tile, overlap, name, channels_last, backend)
        self.border = int(border)
        # measured peak RSS per input pixel with channels_last: 16.0 KiB at 64 features (23 blocks), 8.1-8.5 KiB
        # at 32 (6 blocks): proportional to the width; +1 KiB for the tile's output and its rounding
        feat = getattr(net, "config", {}).get("num_feat", 64) if isinstance(net, RRDBNet) else 64
        self.bytes_per_pixel = DEFAULT_BYTES_PER_PIXEL * int(feat) // 64 + 1024

    def upscale_planes(self, rgb: np.ndarray, alpha: np.ndarray | None = None, *, gray: bool = False,
                       channels: int | None = None, keep_alpha: bool = True, dtype: np.dtype | type = np.uint8,
                       progress: Progress | None = None) -> np.ndarray:
        """Upscale decoded planes into a new 4Hx4WxC array of ``dtype`` (the command line's path).

        Args:
            rgb: HxWx3 float32 in [0, 1] (as :func:`ddnsr.imageio.read_image` gives).
            alpha: HxW float32 in [0, 1] or None; transparent colour is bled before the network.
            gray: reduce the output to BT.601 luma (``channels`` then 1 by default, or 3 repeated).
            channels: colour channels of the output (default 1 if gray else 3).
            keep_alpha: append the resized alpha as the last channel (when ``alpha`` is given).
            dtype: uint8 / uint16 (rounded per tile) or float32 (clipped to [0, 1]).
            progress: ``progress(done, total)`` after each tile.

        Returns:
            4Hx4WxC array, C = channels (+1 for alpha).
        """
        rgb = _check_rgb(rgb)
        if alpha is not None:
            rgb = dio.prepare_rgb_for_alpha(rgb, alpha)
        layout = _Layout(gray=gray, channels=channels or (1 if gray else 3),
                         alpha=alpha is not None and keep_alpha, dtype=np.dtype(dtype))
        return _render(self._engine, rgb, alpha, layout, up=True, tile=self.tile_for(*rgb.shape[:2]),
                       overlap=self.overlap, progress=progress, border=self.border)

    def upscale_file(self, source: str | os.PathLike, dest: str | os.PathLike, *, quality: int = 95,
                     max_pixels: int | None = dio.DEFAULT_MAX_PIXELS, progress: Progress | None = None,
                     size: OutputSize | None = None) -> np.ndarray:
        """Read ``source``, upscale it and write ``dest`` atomically: the path of ``ddnsr upscale``.

        16-bit inputs give 16-bit outputs where the format has them (PNG, TIFF); gray stays gray, alpha
        is kept, the ICC profile is carried. ``size`` (``--outscale``/``--width``/``--height``): the x4
        result downscaled to that size (:mod:`ddnsr.inference.outscale`). Returns the written HxWxC array
        (uint8 or uint16; 4x the input's size by default).

        Raises:
            ImageError: the input cannot be read or the output cannot be written, or ``size`` does not
                fit it (more than x4).
        """
        loaded = dio.read_image(source, max_pixels=max_pixels)
        out_size = None
        if size is not None and not size.is_x4:
            h, w = loaded.rgb.shape[:2]
            try:
                out_size = size.for_input(w, h)
            except SettingError as exc:
                raise dio.ImageError(source, str(exc)) from None
        depth = _file_depth(loaded, dest)
        data = self.upscale_planes(loaded.rgb, loaded.alpha, gray=loaded.is_gray, dtype=depth, progress=progress)
        if out_size is not None:
            data = resize_planes(data, out_size)
        icc = loaded.icc_profile
        del loaded  # the decoded input is not needed while encoding
        dio.write_planes(dest, data, icc_profile=icc, quality=quality)
        return data

    def upscale_array(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 float32 in [0, 1] -> 4Hx4Wx3 float32 in [0, 1] (clipped)."""
        return self.upscale_planes(rgb, dtype=np.float32)

    def __call__(self, image: Image.Image | np.ndarray, *,
                 progress: Progress | None = None) -> Image.Image | np.ndarray:
        """Upscale a PIL image or an array x4; the same type, dtype and layout come back (see the class)."""
        planes = _pil_planes(image) if isinstance(image, Image.Image) else _array_planes(image)
        rgb = planes.rgb if planes.alpha is None else dio.prepare_rgb_for_alpha(planes.rgb, planes.alpha)
        out = _render(self._engine, rgb, planes.alpha, planes.layout, up=True,
                      tile=self.tile_for(*rgb.shape[:2]), overlap=self.overlap, progress=progress,
                      border=self.border)
        return _back(out, planes)

    def __repr__(self) -> str:
        return (f"Upscaler({self.name!r}, device={self.device.type!r}, precision={self.precision!r}, "
                f"tile={self.tile!r})")


def _file_depth(loaded: dio.LoadedImage, dest: str | os.PathLike) -> type:
    """uint16 for a 16-bit input written as PNG or TIFF (the formats with 16 bits), else uint8."""
    return np.uint16 if loaded.bit_depth == 16 and dio.output_format(dest) in ("PNG", "TIFF") else np.uint8


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise SettingError(f"expected an HxWx3 array, got shape {rgb.shape}")
    if rgb.dtype != np.float32:
        rgb = dio.as_float_planes(rgb, "rgb")
    return rgb


def check_reconstruction(net: nn.Module, name: str) -> None:
    label = name or type(net).__name__
    if isinstance(net, DegradationNet) or getattr(net, "kind", None) == "degradation":
        raise SettingError(f"{label}: is a degradation network (D); upscaling needs a reconstruction network "
                         "(R, RRDBNet x4)")
    if isinstance(net, RRDBNet):
        cfg = net.config
        if cfg.get("scale") != 4:
            raise SettingError(f"{label}: is an x{cfg.get('scale')} model; ddnsr upscales x4 only")
        if cfg.get("num_in_ch") != 3 or cfg.get("num_out_ch") != 3:
            raise SettingError(f"{label}: has {cfg.get('num_in_ch')} input / {cfg.get('num_out_ch')} output "
                             "channels; an RGB model (3 / 3) is needed")
    elif getattr(net, "scale", 4) != 4:
        raise SettingError(f"{label}: is an x{net.scale} model; ddnsr upscales x4 only")
    elif not isinstance(net, RRDBNet) and getattr(net, "kind", "reconstruction") != "reconstruction":
        raise SettingError(f"{label}: is not a reconstruction network")


# ---------------------------------------------------------------------------------------------- Degrader


class Degrader(_TiledNetwork):
    """HR photo -> realistic LR (x1/4) of the learned camera with a degradation network D, tiled.

    ``deg(hr, reference)``: ``hr`` a PIL image or array (as for :class:`Upscaler`), ``reference`` a real LR
    photo of the target camera (PIL or array, any size); the result has the type, dtype and layout of
    ``hr`` and (H // 4) x (W // 4) pixels. HR sides that are not multiples of 4 are cropped at the bottom
    and right first. For each tile, D gets a crop of the reference of that tile's LR size, at a position
    drawn from ``seed`` and the tile's index (a reference smaller than the crop is mirror-tiled), so a
    result is reproducible for a given seed and tile size. Single-input D models need no reference.
    """

    _kind = "degradation"
    _default_overlap = DEFAULT_DEGRADE_OVERLAP
    _tile_rule = {"multiple": 8, "min_tile": 64}  # HR tiles: multiples of 8, at least 64

    def __init__(self, net: nn.Module, *, device: torch.device, precision: str = "fp32", tile: int | None = None,
                 overlap: int = DEFAULT_DEGRADE_OVERLAP, name: str = "", channels_last: bool = True,
                 backend: str = "torch") -> None:
        label = name or type(net).__name__
        if isinstance(net, RRDBNet) or getattr(net, "kind", None) == "reconstruction":
            raise SettingError(f"{label}: is a reconstruction network (R); degrading needs a degradation network (D)")
        if getattr(net, "scale_down", 4) != 4:
            raise SettingError(f"{label}: downscales x1/{net.scale_down}; ddnsr degrades x1/4 only")
        self._setup(net, device, precision, tile, overlap, name, channels_last, backend)
        self.needs_reference = getattr(net, "input_type", "dual") != "single"
        filters = getattr(net, "config", {}).get("filters", 64) if isinstance(net, DegradationNet) else 64
        self.bytes_per_pixel = max(_DEGRADER_BYTES_PER_PIXEL * int(filters) // 64, 256)

    def _runner(self, reference: np.ndarray | None, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``fn(hr_tiles)`` for tiled_apply: D with a fresh reference crop per tile (per-call state)."""
        if self.needs_reference and reference is None:
            raise SettingError("this degradation model (dual input) needs a reference LR photo")
        ref = None if reference is None or not self.needs_reference else _check_rgb(reference)
        count = [0]

        def fn(tiles: torch.Tensor) -> torch.Tensor:
            n, _, h, w = tiles.shape
            crops = None
            if ref is not None:
                picked = []
                for _ in range(n):
                    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, count[0]])
                    count[0] += 1
                    picked.append(reference_crop(ref, (h // 4, w // 4), rng).transpose(2, 0, 1))
                crops = torch.from_numpy(np.ascontiguousarray(np.stack(picked)))
            return self._engine(tiles, crops)

        return fn

    def degrade_planes(self, hr_rgb: np.ndarray, reference: np.ndarray | None, alpha: np.ndarray | None = None,
                       *, seed: int = 0, gray: bool = False, channels: int | None = None, keep_alpha: bool = True,
                       dtype: np.dtype | type = np.uint8, progress: Progress | None = None) -> np.ndarray:
        """Degrade decoded planes into a new (H//4)x(W//4)xC array of ``dtype`` (the command line's path).

        Args:
            hr_rgb: HxWx3 float32 in [0, 1]; cropped to multiples of 4 (bottom / right).
            reference: HxWx3 float32 in [0, 1] real LR photo (any size), or None for single-input D.
            alpha, gray, channels, keep_alpha, dtype, progress: as for :meth:`Upscaler.upscale_planes`.
            seed: picks the reference crops.
        """
        hr_rgb = crop_to_multiple(_check_rgb(hr_rgb))
        if alpha is not None:
            alpha = crop_to_multiple(alpha)
            hr_rgb = dio.prepare_rgb_for_alpha(hr_rgb, alpha)
        layout = _Layout(gray=gray, channels=channels or (1 if gray else 3),
                         alpha=alpha is not None and keep_alpha, dtype=np.dtype(dtype))
        return _render(self._runner(reference, seed), np.ascontiguousarray(hr_rgb), alpha, layout, up=False,
                       tile=self.tile_for(*hr_rgb.shape[:2]), overlap=self.overlap, progress=progress)

    def degrade_file(self, source: str | os.PathLike, dest: str | os.PathLike, reference: np.ndarray | None = None,
                     *, seed: int = 0, pair: str | os.PathLike | None = None, quality: int = defaults.QUALITY,
                     max_pixels: int | None = dio.DEFAULT_MAX_PIXELS, progress: Progress | None = None
                     ) -> np.ndarray:
        """Read the HR photo ``source``, degrade it and write ``dest`` atomically: the path of ``ddnsr degrade``
        and of the page's degradation view.

        Args:
            reference: HxWx3 float32 in [0, 1] real LR photo (ignored by single-input D models).
            seed: picks the reference crops.
            pair: also write the HR, cropped to multiples of 4 (bottom / right), here (a paired training set).
            quality, max_pixels, progress: as for :meth:`Upscaler.upscale_file`.

        Returns:
            The written (H//4)x(W//4)xC array (uint8, or uint16 for 16-bit inputs written as PNG / TIFF).

        Raises:
            ImageError: the input cannot be read, is smaller than 4x4, or an output cannot be written.
        """
        loaded = dio.read_image(source, max_pixels=max_pixels)
        if loaded.height < 4 or loaded.width < 4:
            raise dio.ImageError(source, f"too small: {loaded.width}x{loaded.height} (4x4 at least)")
        depth = _file_depth(loaded, dest)
        data = self.degrade_planes(loaded.rgb, reference if self.needs_reference else None, loaded.alpha, seed=seed,
                                   gray=loaded.is_gray, dtype=depth, progress=progress)
        dio.write_planes(dest, data, icc_profile=loaded.icc_profile, quality=quality)
        if pair is not None:
            alpha = None if loaded.alpha is None else crop_to_multiple(loaded.alpha)
            dio.write_image(pair, crop_to_multiple(loaded.rgb), alpha=alpha, is_gray=loaded.is_gray,
                            bit_depth=16 if depth == np.uint16 else 8, icc_profile=loaded.icc_profile,
                            quality=quality)
        return data

    def degrade_array(self, hr_rgb: np.ndarray, ref_rgb: np.ndarray | None, *, seed: int = 0) -> np.ndarray:
        """HxWx3 float [0, 1] HR + a real LR reference (any size) -> (H//4)x(W//4)x3 float32 in [0, 1]."""
        reference = None if ref_rgb is None else _as_rgb(ref_rgb)
        return self.degrade_planes(hr_rgb, reference, seed=seed, dtype=np.float32)

    def __call__(self, hr: Image.Image | np.ndarray, reference: Image.Image | np.ndarray | None = None, *,
                 seed: int = 0, progress: Progress | None = None) -> Image.Image | np.ndarray:
        """Degrade ``hr`` (PIL or array) with crops of ``reference``; the type of ``hr`` comes back."""
        planes = _pil_planes(hr) if isinstance(hr, Image.Image) else _array_planes(hr)
        ref = None if reference is None else _as_rgb(reference)
        rgb = crop_to_multiple(planes.rgb)
        alpha = None if planes.alpha is None else crop_to_multiple(planes.alpha)
        if alpha is not None:
            rgb = dio.prepare_rgb_for_alpha(rgb, alpha)
        out = _render(self._runner(ref, seed), np.ascontiguousarray(rgb), alpha, planes.layout, up=False,
                      tile=self.tile_for(*rgb.shape[:2]), overlap=self.overlap, progress=progress)
        return _back(out, planes)

    def __repr__(self) -> str:
        return (f"Degrader({self.name!r}, device={self.device.type!r}, precision={self.precision!r}, "
                f"tile={self.tile!r})")

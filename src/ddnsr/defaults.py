"""Every default a user sees, in one place: the command line, the page (``ddnsr serve``) and evaluation
read them from here, so that the three doors agree.

Nothing here imports torch: the precision rule is a pure function of what the device offers
(:func:`ddnsr.inference.device.auto_precision` asks the machine and calls :func:`precision_rule`).
"""

from __future__ import annotations

__all__ = [
    "DECODE_MAX_PIXELS",
    "DEFAULT_MODEL",
    "DEVICE",
    "EVALUATE_MAX_PIXELS",
    "FAST_MODEL",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MIN_OVERLAP",
    "MIN_TILE",
    "OUTPUT_FORMATS",
    "PRECISION",
    "PRECISIONS",
    "PURPOSES",
    "QUALITY",
    "SERVE_MAX_VIDEO_SECONDS",
    "check_tile",
    "precision_rule",
]

#: The bundled model used when none is named (``ddnsr upscale``, the page, ``Upscaler.load``): the
#: full-size R (Real-ESRGAN x4plus fine-tuned with DDNSR), the best on real photos it was not trained on.
DEFAULT_MODEL = "track1-ft"
#: The small bundled model, about 13 times less arithmetic per pixel (``--model track1``).
FAST_MODEL = "track1"

DEVICE = "auto"
#: The explicit precisions; ``auto`` (the default everywhere but evaluation) picks one of them.
PRECISIONS = ("fp32", "bf16", "fp16")
#: What each purpose uses when no precision is given. Upscaling (command line and page alike) and
#: training take ``auto``; evaluation scores the network itself, so it runs fp32 (the published
#: tables in docs/results.md are fp32), whatever the machine.
PRECISION = {"inference": "auto", "training": "auto", "evaluation": "fp32"}
PURPOSES = tuple(PRECISION)

#: The most input pixels ``ddnsr upscale`` and the page take (an image, or a video frame): 64
#: megapixels in, about a gigapixel (3 GB as 8-bit RGB) out.
MAX_PIXELS = 64_000_000
#: The decoder's own bound (:func:`ddnsr.imageio.read_image` called from code, ``ddnsr degrade``'s HR
#: inputs, which shrink 16 times): 256 megapixels, about 0.8 GB as 8-bit RGB, 3 GB as float32.
DECODE_MAX_PIXELS = 16_000 * 16_000
#: The most pixels one evaluated image may have: scoring a pair takes about 140 bytes per HR pixel, so
#: 25 M (e.g. 5000x5000) stays near 3.5 GB.
EVALUATE_MAX_PIXELS = 25_000_000

#: The file extensions read as images (folder listings, the page's uploads), lower case.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
#: The formats results are written in (``--ext``, the page's "Save as"), the first the default.
OUTPUT_FORMATS = ("png", "jpg", "webp", "tif")
#: JPEG / WebP quality of results (1..100; WebP 100 is lossless).
QUALITY = 95

#: The longest video the page (``ddnsr serve``) takes, in seconds of the clip (its declared duration, or its
#: frames at its frame rate when that is longer): 10 minutes, tens of thousands of frames, already hours
#: of work on most machines. Videos also meet the page's byte limit per upload and ``MAX_PIXELS`` per frame;
#: they are written with :class:`ddnsr.inference.video.VideoSettings`' defaults, as ``ddnsr upscale``'s.
SERVE_MAX_VIDEO_SECONDS = 600.0

#: Smallest tile and tile overlap the command line and the page accept (the library takes any): a
#: 1-pixel tile is all overlap and makes a 40x32 image take minutes; no overlap leaves seams of up
#: to 200/255.
MIN_TILE = 16
MIN_OVERLAP = 8


def precision_rule(purpose: str, device_type: str, *, native_bf16: bool = False,
                   cuda_bf16: bool = True) -> str:
    """The precision ``auto`` means for ``purpose`` (one of :data:`PURPOSES`) on a device kind.

    Inference: fp16 on CUDA (as Real-ESRGAN; fp16 keeps 3 more mantissa bits than bf16), bf16 on CPUs
    that compute it natively (measured within 40 dB PSNR of fp32 on real photos, docs/speed.md), else
    fp32. Training: bf16 on CUDA (fp16 where the GPU lacks bf16) and on native-bf16 CPUs, else fp32.
    Evaluation: fp32 always. Emulated bf16 is several times slower than fp32, so it is never chosen.
    """
    if purpose not in PRECISION:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    if purpose == "evaluation":
        return "fp32"
    if device_type == "cuda":
        return "fp16" if purpose == "inference" or not cuda_bf16 else "bf16"
    if device_type == "cpu" and native_bf16:
        return "bf16"
    return "fp32"


def check_tile(tile: int | None) -> str | None:
    """Why a tile size cannot be used by the command line or the page (None: it can; 0 is the whole image)."""
    if tile is None or tile == 0 or tile >= MIN_TILE:
        return None
    return f"must be 0 (whole image) or at least {MIN_TILE}, got {tile}"

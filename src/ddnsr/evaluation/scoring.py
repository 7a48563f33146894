"""Scoring x4 super-resolution methods and degradation methods on lists of :class:`~ddnsr.evaluation.pairing.Pair`.

:func:`evaluate_sr` runs each method (a :class:`Method`: bicubic, a model, any ``HxWx3 float ->
4Hx4Wx3`` function) on every LR image and scores the x4 results:

* with HR: PSNR-Y and SSIM-Y (BT.601 Y as MATLAB ``rgb2ycbcr``, 4-pixel border cropped: the
  NTIRE / BasicSR convention), LPIPS (AlexNet v0.1, whole image) when an LPIPS scorer is given, NIQE
  and PIQE;
* without HR: NIQE and PIQE only.

**bicubic** is MATLAB ``imresize(lr, 4)`` (Keys cubic a = -0.5, through :func:`ddnsr.metrics.imresize`,
which reproduces MATLAB's sample positions and border handling; PIL's BICUBIC differs at the borders).
NIQE is MATLAB ``niqe_release`` on the ``rgb2gray`` channel (``niqe_channel="y"`` for BasicSR's Y),
PIQE is MATLAB ``piqe``; both on the whole image (no border crop). All results, like the HR image, are
scored as 8-bit images (clipped to [0, 1] and rounded, as when saved to PNG), so the full-reference
metrics round Y the MATLAB way; an alpha channel is ignored (colour only). Averages are means over the
images (a value that could not be computed, e.g. NIQE of an image with fewer than two 96x96 patches, is
left out and a note says so; NumPy's warnings from NIQE become notes too, never stderr lines).

:func:`evaluate_degradation` scores degradation methods (``(hr, reference) -> lr``): for each pair ``i``,
``D(HR_i, reference)`` with the LR image of another pair of the same camera as reference
(:func:`~ddnsr.evaluation.pairing.reference_indices`), against the real ``LR_i``
(:func:`ddnsr.metrics.degradation_fidelity`: PSNR-Y, SSIM-Y with no crop, Immerkær noise sigma of
both). :data:`BICUBIC_DOWN` (MATLAB ``imresize(hr, 1/4)``, antialiased) is the baseline method.

A pair that cannot be scored (unreadable file, HR not x4 of LR, too small for SSIM after the border
crop, a method that fails or returns the wrong shape) is skipped: it is counted in ``problems`` with a
one-line reason, and the other pairs go on.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ddnsr import errors, imageio
from ddnsr.errors import SettingError, one_line
from ddnsr.evaluation.pairing import Pair, reference_indices
from ddnsr.evaluation.report import DEG_COLUMNS, Crop, crop_tiles
from ddnsr.evaluation.settings import DEFAULT, Settings
from ddnsr.metrics import degradation_fidelity, imresize, niqe, piqe, psnr, ssim

__all__ = [
    "BICUBIC_DOWN",
    "BICUBIC_UP",
    "CROP_BORDER",
    "SCALE",
    "Method",
    "Problem",
    "Scores",
    "bicubic_downscale",
    "bicubic_upscale",
    "degrader_method",
    "evaluate_degradation",
    "evaluate_sr",
    "finite_mean",
    "load_lpips",
    "lpips_backbone",
    "to_uint8",
    "unique_labels",
    "upscaler_method",
]

SCALE = 4
CROP_BORDER = 4
SSIM_MIN = 11  # SSIM's Gaussian window
#: What reading an image raises for a bad file.
_READ_ERRORS = (errors.ImageError, OSError, ValueError, MemoryError)
SkipHandler = Callable[[str, str], None]


# ------------------------------------------------------------------------------------------ methods


@dataclass(frozen=True)
class Method:
    """One row of a table: a label and what makes its image.

    ``run``: for :func:`evaluate_sr`, ``HxWx3 float [0, 1] -> 4Hx4Wx3`` (float in [0, 1] or uint8);
    for :func:`evaluate_degradation`, ``(hr HxWx3, reference hxwx3 or None) -> (H/4)x(W/4)x3``.
    ``kind``: "bicubic", "model" or "degrader"; ``source``: where it came from (a file, a name);
    ``needs_reference``: a degradation method that must be given a reference image.
    """

    label: str
    run: Callable[..., np.ndarray]
    kind: str = "model"
    source: str = ""
    needs_reference: bool = False


def bicubic_upscale(lr: np.ndarray) -> np.ndarray:
    """x4 bicubic as MATLAB ``imresize(lr, 4)`` (Keys, a = -0.5): HxWx3 float [0, 1] -> 4Hx4Wx3 float32."""
    return np.clip(imresize(lr, SCALE), 0.0, 1.0).astype(np.float32)


def bicubic_downscale(hr: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """/4 bicubic as MATLAB ``imresize(hr, 1/4)`` (antialiased): HxWx3 float [0, 1] -> float32.

    ``reference`` is ignored (it is there so that bicubic is an ordinary degradation method).
    """
    return np.clip(imresize(hr, 1.0 / SCALE), 0.0, 1.0).astype(np.float32)


BICUBIC_UP = Method("bicubic", bicubic_upscale, "bicubic", "MATLAB imresize x4 (ddnsr.metrics.imresize)")
BICUBIC_DOWN = Method("bicubic", bicubic_downscale, "bicubic", "MATLAB imresize 1/4 (ddnsr.metrics.imresize)")


def _source(spec: Any) -> str:
    return str(spec) if isinstance(spec, (str, os.PathLike)) else type(spec).__name__


def upscaler_method(spec: Any, label: str, settings: Settings = DEFAULT, source: str | None = None) -> Method:
    """A :class:`Method` from a bundled model name, a model file or an object with ``upscale_array(rgb)``.

    Files and names are loaded with :meth:`ddnsr.inference.upscaler.Upscaler.load` (``settings``' device,
    precision and tile); errors there (a bad file, a device this machine lacks) propagate.
    """
    if not hasattr(spec, "upscale_array"):
        from ddnsr.inference.upscaler import Upscaler

        spec_obj = Upscaler.load(spec, device=settings.device, precision=settings.precision, tile=settings.tile)
        return Method(label, spec_obj.upscale_array, "model", source or _source(spec))
    return Method(label, spec.upscale_array, "model", source or _source(spec))


def degrader_method(spec: Any, label: str, settings: Settings = DEFAULT, source: str | None = None) -> Method:
    """A degradation :class:`Method` from a model name or file, or an object with ``degrade_array(hr, ref, seed=)``.

    The seed is ``settings.seed``; ``needs_reference`` is the object's (True when it does not say).
    """
    obj = spec
    if not hasattr(spec, "degrade_array"):
        from ddnsr.inference.upscaler import Degrader

        obj = Degrader.load(spec, device=settings.device, precision=settings.precision)
    return Method(label, partial(obj.degrade_array, seed=settings.seed), "degrader", source or _source(spec),
                  bool(getattr(obj, "needs_reference", True)))


def unique_labels(specs: Sequence[Any], given: Sequence[str] | None, what: str, taken: set[str]) -> list[str]:
    """Row labels for ``specs``: ``given`` (one per spec) or each name / file stem, made unique against ``taken``.

    Raises:
        SettingError: ``given`` has a different length than ``specs``.
    """
    if given and len(given) != len(specs):
        raise SettingError(f"{len(given)} label(s) given for {len(specs)} {what}(s): give one per {what} or none")
    out = []
    for i, spec in enumerate(specs):
        if given:
            base = str(given[i])
        elif isinstance(spec, (str, os.PathLike)):
            base = Path(spec).stem if Path(spec).expanduser().is_file() else str(spec)
        else:
            base = str(getattr(spec, "name", None) or type(spec).__name__)
        label, k = base, 2
        while label in taken:
            label, k = f"{base}-{k}", k + 1
        taken.add(label)
        out.append(label)
    return out


def lpips_backbone() -> tuple[Path | None, str]:
    """Where the LPIPS AlexNet backbone is (``DDNSR_ALEXNET``, then the cache), without downloading.

    Returns ``(path, "")`` or ``(None, one-line reason)``.
    """
    from ddnsr.datasets.pretrained import ALEXNET_TORCHVISION, find_local

    path, why = find_local(ALEXNET_TORCHVISION)
    return path, (f"{why} (evaluate never downloads it)" if path is None else "")


def load_lpips(settings: Settings, has_hr: bool) -> tuple[Any | None, str]:
    """The LPIPS scorer for an evaluation (or None) and a one-line note on what was used or why not."""
    if not has_hr:
        return None, "not applicable: no HR images"
    if not settings.use_lpips:
        return None, "switched off (--no-lpips)"
    backbone, why = lpips_backbone()
    if backbone is None:
        return None, why
    from ddnsr.metrics import LPIPS

    return LPIPS("alex", backbone_path=backbone), f"AlexNet v0.1, backbone {backbone}"


# ------------------------------------------------------------------------------------------ results


@dataclass
class Problem:
    """A file (or pair) that was skipped, and why (one line)."""

    file: str
    reason: str


@dataclass
class Scores:
    """What :func:`evaluate_sr` / :func:`evaluate_degradation` found.

    ``rows``: one dict per scored image and method (``image``, ``method``, the ``columns``' values,
    ``lr``/``hr`` paths or None, ``reference`` for degradation); ``averages`` / ``counts``:
    ``{label: {column: mean or None / number of finite values}}``; ``scored``: the pairs scored, in
    order; ``problems``: the pairs skipped; ``notes``: values left out and why; ``crops``: crop tiles.
    """

    methods: list[Method]
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    averages: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    scored: list[Pair] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.scored)

    def seconds_per_image(self) -> dict[str, float | None]:
        """Mean run time of each method per image (None when it never ran)."""
        return {m.label: (self.seconds[m.label] / self.calls[m.label] if self.calls.get(m.label) else None)
                for m in self.methods}

    def summary(self) -> dict[str, Any]:
        """The JSON-ready table: ``n_images``, ``methods``, ``columns``, ``averages``, ``counts``, ``per_image``."""
        return {"n_images": self.n_images,
                "methods": [{"label": m.label, "kind": m.kind, "source": m.source} for m in self.methods],
                "columns": self.columns, "averages": self.averages, "counts": self.counts, "per_image": self.rows,
                "seconds_per_image": self.seconds_per_image()}

    def _skip(self, file: Any, reason: str, on_skip: SkipHandler | None) -> None:
        problem = Problem(str(file), " ".join(str(reason).split()))
        self.problems.append(problem)
        if on_skip is not None:
            on_skip(problem.file, problem.reason)

    def _timed(self, method: Method, *args: Any) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.asarray(method.run(*args))
        self.seconds[method.label] = self.seconds.get(method.label, 0.0) + time.perf_counter() - t0
        self.calls[method.label] = self.calls.get(method.label, 0) + 1
        return out

    def _average(self) -> None:
        n = self.n_images
        for m in self.methods:
            mine = [r for r in self.rows if r["method"] == m.label]
            self.averages[m.label], self.counts[m.label] = {}, {}
            for key in self.columns:
                self.averages[m.label][key], self.counts[m.label][key] = finite_mean(r.get(key) for r in mine)
        for key in self.columns:
            short = [f"{m.label} ({self.counts[m.label][key]} of {n})" for m in self.methods
                     if self.counts[m.label][key] < n]
            if short:
                self.notes.append(f"{key} averaged over fewer images (missing or non-finite values): "
                                  + ", ".join(short))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (clipped; NaN -> 0) -> uint8, rounded to nearest, as PNG writing does."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
    return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def finite_mean(values: Iterable[float | None]) -> tuple[float | None, int]:
    """Mean of the finite values and how many there were (``(None, 0)`` when none)."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    return (float(np.mean(vals)), len(vals)) if vals else (None, 0)


def _rgb(image: Path | np.ndarray, max_pixels: int | None = DEFAULT.max_pixels) -> np.ndarray:
    """An image file (refused over ``max_pixels`` before decoding) or array as HxWx3 float32 in [0, 1]
    (uint8 / uint16 scaled; alpha dropped)."""
    if isinstance(image, Path):
        return imageio.read_image(image, max_pixels=max_pixels).rgb
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
        raise ValueError(f"array of shape {arr.shape} is not an HxWx3 image")
    arr = np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr[..., :3]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return arr.astype(np.float32)


def _read(image: Path | np.ndarray, max_pixels: int | None = DEFAULT.max_pixels) -> tuple[np.ndarray | None, str]:
    """``(rgb, "")`` or ``(None, "unreadable image: reason")`` (a file over ``max_pixels`` included)."""
    try:
        return _rgb(image, max_pixels), ""
    except _READ_ERRORS as exc:
        return None, f"unreadable image: {getattr(exc, 'reason', None) or one_line(exc)}"


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


# ------------------------------------------------------------------------------------------ SR


class _CropPicker:
    """Crops for ``count`` evenly spaced pairs of ``n``; a pick that is skipped passes to the next scored pair,
    or (at the end of the list) to the last scored pairs not picked, kept as spares."""

    def __init__(self, count: int, n: int) -> None:
        self.planned = {int(round(x)) for x in np.linspace(0, n - 1, min(count, n))} if count and n else set()
        self.spares: deque[Crop] = deque(maxlen=max(count, 1))
        self.chosen: list[Crop] = []
        self.owed = 0

    def visit(self, k: int) -> None:
        self.owed += k in self.planned

    def offer(self, crop: Crop) -> None:
        if self.owed:
            self.owed -= 1
            self.chosen.append(crop)
        else:
            self.spares.append(crop)

    def result(self) -> list[Crop]:
        while self.owed and self.spares:
            self.chosen.append(self.spares.pop())
            self.owed -= 1
        return sorted(self.chosen, key=lambda c: c.index)


def _no_reference(img8: np.ndarray, niqe_channel: str) -> tuple[dict[str, float | None], str | None, list[str]]:
    """NIQE and PIQE of a uint8 result, the reason NIQE failed (or None) and NumPy's warnings (caught)."""
    failure = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            niqe_value: float | None = niqe(img8, channel=niqe_channel)
        except (ValueError, np.linalg.LinAlgError) as exc:
            niqe_value, failure = None, f"{type(exc).__name__}: {one_line(exc)}"
        values = {"niqe": niqe_value, "piqe": piqe(img8)}
    messages = []
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            messages.append(str(w.message))
        else:  # not ours to silence
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return values, failure, sorted(set(messages))


def _too_small_for_sr(lr: np.ndarray) -> str | None:
    side = min(lr.shape[:2]) * SCALE - 2 * CROP_BORDER
    if side >= SSIM_MIN:
        return None
    need = -(-(SSIM_MIN + 2 * CROP_BORDER) // SCALE)
    return (f"too small to score: the x{SCALE} result of this {_size(lr.shape)} LR image is under {SSIM_MIN}x"
            f"{SSIM_MIN} after the {CROP_BORDER}-pixel border crop (SSIM needs at least {SSIM_MIN}x{SSIM_MIN}; "
            f"LR at least {need}x{need})")


def _load_sr_pair(pair: Pair, scores: Scores, on_skip: SkipHandler | None, max_pixels: int | None
                  ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The LR image and the HR image as uint8 (or None without HR); None (pair skipped) on a problem."""
    lr, why = _read(pair.lr, max_pixels)
    if lr is None:
        scores._skip(pair.file("lr") or pair.name, why, on_skip)
        return None
    if pair.hr is None:
        return lr, None
    hr, why = _read(pair.hr, max_pixels)
    hr_name = Path(pair.file("hr")).name if pair.file("hr") else "image"
    where = pair.file("lr") or pair.name
    if hr is None:
        scores._skip(pair.file("hr") or f"{pair.name} (HR)", why, on_skip)
        scores._skip(where, f"its HR partner {hr_name} is unreadable", on_skip)
        return None
    want = (lr.shape[0] * SCALE, lr.shape[1] * SCALE)
    reason = None
    if hr.shape[:2] != want:
        reason = (f"HR {hr_name} is {_size(hr.shape)}, not x{SCALE} of the LR {_size(lr.shape)} "
                  f"(expected {want[1]}x{want[0]})")
    reason = reason or _too_small_for_sr(lr)
    if reason:
        scores._skip(where, reason, on_skip)
        return None
    return lr, to_uint8(hr)


def _run_sr(lr: np.ndarray, scores: Scores) -> tuple[dict[str, np.ndarray] | None, str]:
    """Each method's x4 result as uint8, or ``(None, why)`` when one fails or returns the wrong shape."""
    outputs: dict[str, np.ndarray] = {}
    want = (lr.shape[0] * SCALE, lr.shape[1] * SCALE, 3)
    for m in scores.methods:
        try:
            out = scores._timed(m, lr)
        except Exception as exc:  # one image a model cannot handle: skip the image, say why
            return None, f"{m.label} failed: {type(exc).__name__}: {one_line(exc)}"
        if out.shape != want:
            return None, f"{m.label} returned shape {out.shape}, expected x{SCALE} of {lr.shape}"
        outputs[m.label] = out if out.dtype == np.uint8 else to_uint8(out)
    return outputs, ""


def _sr_rows(pair: Pair, outputs: dict[str, np.ndarray], hr8: np.ndarray | None, lpips: Any,
             niqe_channel: str, niqe_issues: dict[tuple[str, str, str], list[str]]) -> list[dict[str, Any]]:
    """One row per method for one pair (ValueError from a metric propagates)."""
    rows = []
    for label, out8 in outputs.items():
        row: dict[str, Any] = {"image": pair.name, "method": label, "lr": pair.file("lr"), "hr": pair.file("hr")}
        if hr8 is not None:
            row["psnr_y"] = psnr(out8, hr8, crop_border=CROP_BORDER, channel="y")
            row["ssim_y"] = ssim(out8, hr8, crop_border=CROP_BORDER, channel="y")
            if lpips is not None:
                row["lpips"] = lpips.score(out8, hr8)
        values, failure, warned = _no_reference(out8, niqe_channel)
        row.update(values)
        if failure:
            niqe_issues.setdefault((pair.name, "failed", failure), []).append(label)
        elif warned:
            niqe_issues.setdefault((pair.name, "warned", "; ".join(warned)), []).append(label)
        rows.append(row)
    return rows


def _niqe_notes(issues: dict[tuple[str, str, str], list[str]]) -> list[str]:
    notes = []
    for (name, what, text), labels in issues.items():
        if what == "failed":
            notes.append(f"NIQE of {name} not computed for {', '.join(labels)}: {text} (NIQE needs at least two "
                         "96x96 patches with some texture)")
        else:
            notes.append(f"NIQE of {name} for {', '.join(labels)}: NumPy warned ({text}); the value may be "
                         "unreliable")
    return notes


def evaluate_sr(pairs: Sequence[Pair], methods: Sequence[Method], settings: Settings = DEFAULT, *,
                lpips: Any = None, on_skip: SkipHandler | None = None) -> Scores:
    """Score x4 SR ``methods`` (bicubic is :data:`BICUBIC_UP`) on ``pairs``; see the module docstring.

    Args:
        pairs: LR images with or without HR (4x the LR size); the PSNR/SSIM(/LPIPS) columns appear when
            any pair has HR (a pair without HR has no value there).
        methods: the rows, labels unique.
        settings: ``niqe_channel``, ``crops``, ``crop_size`` and ``progress`` are used.
        lpips: an object with ``score(a_uint8, b_uint8) -> float`` (e.g. :class:`ddnsr.metrics.LPIPS`), or None.
        on_skip: called with ``(file, reason)`` for each pair skipped, as it happens.

    Returns:
        :class:`Scores`; ``crops`` holds up to ``settings.crops`` crop pictures' tiles.
    """
    _check_labels(methods)
    has_hr = any(p.hr is not None for p in pairs)
    columns = (["psnr_y", "ssim_y"] + (["lpips"] if lpips is not None else []) if has_hr else []) + ["niqe", "piqe"]
    scores = Scores(list(methods), columns)
    picker = _CropPicker(settings.crops, len(pairs))
    niqe_issues: dict[tuple[str, str, str], list[str]] = {}
    for k, pair in enumerate(tqdm(pairs, desc="evaluate", unit="img", disable=not settings.progress,
                                  file=sys.stderr)):
        picker.visit(k)
        loaded = _load_sr_pair(pair, scores, on_skip, settings.max_pixels)
        if loaded is None:
            continue
        lr, hr8 = loaded
        outputs, why = _run_sr(lr, scores)
        if outputs is None:
            scores._skip(pair.file("lr") or pair.name, why, on_skip)
            continue
        try:
            rows = _sr_rows(pair, outputs, hr8, lpips, settings.niqe_channel, niqe_issues)
        except ValueError as exc:  # a metric that cannot use this pair (e.g. a size no check foresaw)
            scores._skip(pair.file("lr") or pair.name, f"cannot score: {one_line(exc)}", on_skip)
            continue
        scores.rows += rows
        scores.scored.append(pair)
        if settings.crops:
            picker.offer(crop_tiles(k, pair.name, to_uint8(lr), hr8, outputs, settings.crop_size))
    scores.crops = picker.result()
    scores.notes += _niqe_notes(niqe_issues)
    scores._average()
    return scores


def _check_labels(methods: Sequence[Method]) -> None:
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise SettingError(f"method labels must differ: {', '.join(labels)}")


# ------------------------------------------------------------------------------------------ degradation


def _load_degradation_pair(pair: Pair, scores: Scores, on_skip: SkipHandler | None, max_pixels: int | None
                           ) -> tuple[np.ndarray, np.ndarray] | None:
    """The real LR and the HR image (float), or None (pair skipped) on a problem."""
    where = pair.file("lr") or pair.name
    if pair.hr is None:
        scores._skip(where, "degradation table: no HR image", on_skip)
        return None
    lr, why = _read(pair.lr, max_pixels)
    hr, why_hr = _read(pair.hr, max_pixels) if lr is not None else (None, "")
    if lr is None or hr is None:
        scores._skip(where, f"degradation table: {why or 'HR ' + why_hr}", on_skip)
        return None
    if hr.shape[:2] != (lr.shape[0] * SCALE, lr.shape[1] * SCALE):
        scores._skip(where, f"degradation table: HR is {_size(hr.shape)}, not x{SCALE} of the LR "
                            f"{_size(lr.shape)}", on_skip)
        return None
    if min(lr.shape[:2]) < SSIM_MIN:
        scores._skip(where, f"degradation table: too small to score: LR {_size(lr.shape)} is under "
                            f"{SSIM_MIN}x{SSIM_MIN} (SSIM needs at least {SSIM_MIN}x{SSIM_MIN})", on_skip)
        return None
    return lr, hr


def _degradation_rows(pair: Pair, ref_name: str | None, lr: np.ndarray, hr: np.ndarray, ref: np.ndarray | None,
                      scores: Scores) -> tuple[list[dict[str, Any]] | None, str]:
    """One row per method for one pair, or ``(None, why)`` when a method fails or returns the wrong shape."""
    real8 = to_uint8(lr)
    rows = []
    for m in scores.methods:
        try:
            gen = scores._timed(m, hr, ref)
        except Exception as exc:  # skip the image, say why
            return None, f"degradation table: {m.label} failed: {type(exc).__name__}: {one_line(exc)}"
        if gen.shape != lr.shape:
            return None, f"degradation table: {m.label} returned shape {gen.shape}, expected {lr.shape}"
        fid = degradation_fidelity(gen if gen.dtype == np.uint8 else to_uint8(gen), real8)
        fid["abs_sigma_diff"] = abs(fid["sigma_diff"])
        rows.append({"image": pair.name, "method": m.label, "reference": ref_name, "lr": pair.file("lr"),
                     "hr": pair.file("hr"), **fid})
    return rows, ""


def evaluate_degradation(pairs: Sequence[Pair], methods: Sequence[Method], settings: Settings = DEFAULT, *,
                         on_skip: SkipHandler | None = None) -> Scores:
    """Score degradation ``methods`` (bicubic is :data:`BICUBIC_DOWN`) on HR/LR ``pairs``; see the module docstring.

    Each pair's reference is the LR image of the pair :func:`reference_indices` names (from the pair
    names); a pair without one is skipped when any method needs a reference. Only ``settings.progress``
    is used (a model's seed is bound in its method, see :func:`degrader_method`).
    """
    _check_labels(methods)
    scores = Scores(list(methods), list(DEG_COLUMNS))
    refs = reference_indices([p.name for p in pairs])
    needs_reference = any(m.needs_reference for m in methods)
    for i, pair in enumerate(tqdm(pairs, desc="degradation", unit="img", disable=not settings.progress,
                                  file=sys.stderr)):
        if needs_reference and refs[i] is None:
            scores._skip(pair.file("lr") or pair.name,
                         "degradation table: no other LR image to use as reference", on_skip)
            continue
        loaded = _load_degradation_pair(pair, scores, on_skip, settings.max_pixels)
        if loaded is None:
            continue
        ref, ref_name = None, None
        if refs[i] is not None:
            ref_name = pairs[refs[i]].name
            ref, why = _read(pairs[refs[i]].lr, settings.max_pixels)
            if ref is None and needs_reference:
                scores._skip(pair.file("lr") or pair.name, f"degradation table: reference {ref_name}: {why}",
                             on_skip)
                continue
        rows, why = _degradation_rows(pair, ref_name, *loaded, ref, scores)
        if rows is None:
            scores._skip(pair.file("lr") or pair.name, why, on_skip)
            continue
        scores.rows += rows
        scores.scored.append(pair)
    scores._average()
    return scores

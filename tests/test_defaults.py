"""One home for every user-visible default (ddnsr.defaults): the command line, the page and evaluation
read the same model, precision rule, pixel limits, tile limits and image extensions."""

from __future__ import annotations

import pytest

from ddnsr import defaults
from ddnsr.cli import build_parser, flag_message
from ddnsr.errors import SettingError


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_the_command_line_and_the_page_share_the_defaults(tmp_path):
    pytest.importorskip("flask")
    from ddnsr.serve.app import IMAGE_EXTENSIONS, ServeConfig, _precisions

    up = parse("upscale", "x.png", "-o", str(tmp_path))
    serve = parse("serve")
    page = ServeConfig()
    assert up.model == serve.model == page.model == defaults.DEFAULT_MODEL == "track1-ft"
    assert up.max_pixels == serve.max_pixels == page.max_pixels == defaults.MAX_PIXELS
    assert up.precision == _precisions("cpu")[0] == "auto"
    assert up.quality == serve.quality == page.quality == defaults.QUALITY
    assert up.ext == defaults.OUTPUT_FORMATS[0]
    import ddnsr.imageio as dio

    assert IMAGE_EXTENSIONS == dio.IMAGE_EXTENSIONS == defaults.IMAGE_EXTENSIONS and ".gif" in IMAGE_EXTENSIONS


def test_evaluation_reads_its_defaults_from_the_same_place():
    from ddnsr.evaluation.settings import Settings

    assert Settings().precision == defaults.PRECISION["evaluation"] == "fp32"
    assert Settings().max_pixels == defaults.EVALUATE_MAX_PIXELS


@pytest.mark.parametrize("command", [("upscale", "x.png", "-o", "out"), ("serve",)])
def test_tiles_under_the_minimum_are_refused_by_every_door(command, capsys):
    for tile in ("1", "15"):
        with pytest.raises(SystemExit) as exit_:
            parse(*command, "--tile", tile)
        assert exit_.value.code == 2 and f"at least {defaults.MIN_TILE}" in capsys.readouterr().err
    assert parse(*command, "--tile", "0").tile == 0 and parse(*command, "--tile", "16").tile == 16


def test_the_page_refuses_a_tile_under_the_minimum(tmp_path):
    pytest.importorskip("flask")
    from ddnsr.serve.app import ServeConfig, create_app

    with pytest.raises(SettingError, match="tile must be 0 .whole image. or at least 16, got 8"):
        create_app(ServeConfig(tile=8, workdir=str(tmp_path)))


def test_precision_rule_per_purpose():
    rule = defaults.precision_rule
    assert [rule(p, "cuda") for p in defaults.PURPOSES] == ["fp16", "bf16", "fp32"]
    assert rule("training", "cuda", cuda_bf16=False) == "fp16"
    assert [rule(p, "cpu", native_bf16=True) for p in defaults.PURPOSES] == ["bf16", "bf16", "fp32"]
    assert [rule(p, "cpu") for p in defaults.PURPOSES] == ["fp32"] * 3
    assert rule("inference", "mps") == "fp32"


def test_library_errors_name_the_setting_and_the_command_line_its_flag():
    exc = SettingError("crf 99: h264 takes 0..51 (a crf of 18 is about lossless)").named("crf")
    assert flag_message(exc) == "--crf 99: h264 takes 0..51 (a --crf of 18 is about lossless)"
    exc = SettingError("container avi: choose from mp4, mkv").named("container")
    assert flag_message(exc) == "--video-ext avi: choose from mp4, mkv"
    assert flag_message(SettingError("output_dir x: exists").named("output_dir")) == "-o x: exists"
    assert flag_message(SettingError("codec x")) == "codec x"  # names no setting: left as it is


def test_video_settings_errors_name_the_setting_and_upscale_names_the_flag(tmp_path, capsys):
    pytest.importorskip("av")
    from ddnsr.cli import main
    from ddnsr.inference.video import VideoSettings, check_settings

    cases = [(VideoSettings(crf=99), "crf 99: h264 takes 0..51", "--crf 99: h264 takes 0..51"),
             (VideoSettings(codec="ffv1", crf=3), "crf: ffv1 is lossless", "--crf: ffv1 is lossless"),
             (VideoSettings(segment_seconds=0), "segment_seconds must be above 0", "--segment must be above 0")]
    for settings, library, _ in cases:
        with pytest.raises(SettingError, match=f"^{library}"):
            check_settings(settings)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.mp4").write_bytes(b"")  # any video input makes upscale check the settings
    for argv, (_, _, flag) in zip((["--crf", "99"], ["--codec", "ffv1", "--crf", "3"], ["--segment", "0"]), cases,
                                  strict=True):
        assert main(["upscale", str(tmp_path / "in" / "clip.mp4"), "-o", str(tmp_path / "out"), "--model", "track1",
                     "-q", *argv]) == 1
        assert f"error: {flag}" in capsys.readouterr().err

"""The models shipped in the package: present, loadable by name, labelled, within the size budget."""

from __future__ import annotations

import pytest
from PIL import Image

from ddnsr.cli import main
from ddnsr.formats.modelfile import BUNDLED_DIR, bundled_models, load_model, read_metadata
from ddnsr.inference.upscaler import DEFAULT_MODEL
from ddnsr.nets import DegradationNet, RRDBNet

FACTS = ("training_steps", "training_data", "training_preset", "commit", "date", "license", "training_time")


# the models of the README's results table
SHIPPED = ("track1", "track1-single", "track1-bicubic", "track1-ft", "track2-div2k", "track2-cleanup",
           "track2-mixed")


def test_default_model_is_bundled_with_both_networks():
    assert set(bundled_models()[DEFAULT_MODEL]) == {"reconstruction", "degradation"}


def test_the_table_models_are_shipped():
    models = bundled_models()
    assert set(SHIPPED) <= set(models)
    # every model ships both networks except the bicubic baseline, whose degradation is bicubic
    assert {n for n in SHIPPED if "degradation" not in models[n]} == {"track1-bicubic"}


@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_bundled_model_loads_by_name_and_is_labelled(name):
    r = load_model(name)
    assert isinstance(r, RRDBNet) and r.scale == 4
    kinds = sorted(bundled_models()[name])
    if "degradation" in kinds:
        assert isinstance(load_model(name, kind="degradation"), DegradationNet)
    for kind in kinds:
        meta = read_metadata(bundled_models()[name][kind])
        missing = [k for k in FACTS if not meta.get(k)]
        assert not missing, f"{name} {kind}: metadata lacks {missing}"
        if meta.get("init_r"):  # started from someone else's weights: their licence is named
            assert "Real-ESRGAN" in meta["license"] and "BSD" in meta["license"], name


def test_bundled_weights_budget():
    total = sum(p.stat().st_size for p in BUNDLED_DIR.glob("*.safetensors"))
    assert total <= 60 * 1024 * 1024


def test_upscale_demo_with_the_default_model(tmp_path):
    assert main(["upscale", "--demo", "-o", str(tmp_path), "--quiet"]) == 0
    out = tmp_path / "demo.png"
    with Image.open(out) as im, Image.open(BUNDLED_DIR.parent / "assets" / "demo.png") as src:
        assert im.size == (src.width * 4, src.height * 4)

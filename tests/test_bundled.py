"""The models shipped in the package: present, loadable by name, labelled, within the size budget."""

from __future__ import annotations

import pytest
from PIL import Image

from ddnsr.cli import main
from ddnsr.infer import DEFAULT_MODEL
from ddnsr.modelfile import BUNDLED_DIR, bundled_models, load_model, read_metadata
from ddnsr.nets import DegradationNet, RRDBNet

FACTS = ("training_steps", "training_data", "training_preset", "commit", "date", "license", "training_time")


def test_default_model_is_bundled_with_both_networks():
    assert set(bundled_models()[DEFAULT_MODEL]) == {"reconstruction", "degradation"}


@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_bundled_model_loads_by_name_and_is_labelled(name):
    r = load_model(name)
    d = load_model(name, kind="degradation")
    assert isinstance(r, RRDBNet) and r.scale == 4
    assert isinstance(d, DegradationNet)
    for kind in ("reconstruction", "degradation"):
        meta = read_metadata(bundled_models()[name][kind])
        missing = [k for k in FACTS if not meta.get(k)]
        assert not missing, f"{name} {kind}: metadata lacks {missing}"


def test_bundled_weights_budget():
    total = sum(p.stat().st_size for p in BUNDLED_DIR.glob("*.safetensors"))
    assert total <= 60 * 1024 * 1024


def test_upscale_demo_with_the_default_model(tmp_path):
    assert main(["upscale", "--demo", "-o", str(tmp_path), "--quiet"]) == 0
    out = tmp_path / "demo.png"
    with Image.open(out) as im, Image.open(BUNDLED_DIR.parent / "assets" / "demo.png") as src:
        assert im.size == (src.width * 4, src.height * 4)

"""load_model / save_model / convert, and the bad-file messages."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import GOLDEN, need
from ddnsr.formats.modelfile import ModelFileError, convert, load_model, read_metadata, save_half, save_model
from ddnsr.nets import DegradationNet, RRDBNet


@pytest.mark.parametrize("name", ["R", "D", "Dhr", "Dlr"])
def test_official_h5_round_trip(tmp_path, name):
    src = need(GOLDEN / f"official_{name}.h5")
    original = load_model(src)
    out = convert(src, tmp_path / f"{name}.safetensors")
    meta = read_metadata(out)
    assert meta["source"] == src.name and meta["arch"] == type(original).__name__
    again = load_model(out)
    assert type(again) is type(original) and again.config == original.config
    torch.manual_seed(0)
    y, x = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 32, 32)
    args = {"R": (x,), "D": (y, x), "Dhr": (y,), "Dlr": (x,)}[name]
    with torch.no_grad():
        assert torch.equal(original(*args), again(*args))


def test_half_storage_round_trip(tmp_path):
    net = RRDBNet(num_feat=16, num_block=1, num_grow_ch=8)
    path = save_model(net, tmp_path / "r.safetensors", {"steps": 3}, half=True)
    back = load_model(path)
    assert read_metadata(path)["dtype"] == "float16" and read_metadata(path)["steps"] == "3"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (net(x) - back(x)).abs().max() < 1 / 255


def _basicsr_state(net: RRDBNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("wrap", [None, "params_ema", "params"])
def test_real_esrgan_layout_pth(tmp_path, wrap):
    net = RRDBNet(num_feat=16, num_block=2, num_grow_ch=8, init="esrgan")
    state = _basicsr_state(net)
    path = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({wrap: state} if wrap else state, path)
    back = load_model(path)
    assert back.config == net.config
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(net(x), back(x))


def test_x2_pixel_unshuffle_variant_inferred(tmp_path):
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=2)
    from safetensors.torch import save_file

    save_file(_basicsr_state(net), tmp_path / "x2.safetensors")
    assert load_model(tmp_path / "x2.safetensors").scale == 2


def test_old_esrgan_key_names(tmp_path):
    net = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4)
    old = {}
    for k, v in net.state_dict().items():
        parts = k.split(".")
        if parts[0] == "body":
            old[f"model.1.sub.{parts[1]}.RDB{parts[2][-1]}.conv{parts[3][-1]}.0.{parts[4]}"] = v
        else:
            idx = {"conv_first": 0, "conv_up1": 3, "conv_up2": 6, "conv_hr": 8, "conv_last": 10}.get(parts[0])
            old[f"model.1.sub.2.{parts[1]}" if idx is None else f"model.{idx}.{parts[1]}"] = v
    torch.save(old, tmp_path / "old.pth")
    back = load_model(tmp_path / "old.pth")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), back(x))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_refused_without_running(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"conv_first.weight": torch.zeros(1), "x": Evil()}, path)
    with pytest.raises(ModelFileError, match="refused.*pickled") as err:
        load_model(path)
    assert "\n" not in str(err.value) and "evil.pth" in str(err.value)
    assert "pwned" not in capsys.readouterr().out


def test_h5_that_is_not_a_ddnsr_network(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"conv1d"]
        layer = g.create_group("conv1d")
        layer.attrs["weight_names"] = [b"conv1d/kernel:0"]
        layer.create_dataset("conv1d/kernel:0", data=np.zeros((3, 1, 1), np.float32))
    with pytest.raises(ModelFileError, match="other.h5: not a DDNSR network"):
        load_model(path)


def test_truncated_h5(tmp_path):
    src = need(GOLDEN / "official_D.h5").read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(src[: len(src) // 3])
    with pytest.raises(ModelFileError, match="cut.h5") as err:
        load_model(path)
    assert "\n" not in str(err.value)


def test_unknown_and_missing(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="unknown model file type"):
        load_model(tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nothing.safetensors")
    with pytest.raises(ModelFileError, match="neither a file nor a bundled model"):
        load_model("no-such-model")


def test_degradation_net_saved_and_loaded(tmp_path):
    d = DegradationNet(filters=8, res_blocks=1, input_type="single")
    back = load_model(save_model(d, tmp_path / "d.safetensors"))
    assert isinstance(back, DegradationNet) and back.input_type == "single"


def test_cli_convert_and_bad_input(tmp_path):
    src = need(GOLDEN / "official_R.h5")
    out = tmp_path / "r.safetensors"
    ok = subprocess.run([sys.executable, "-m", "ddnsr.cli", "convert", str(src), "-o", str(out)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "RRDBNet" in ok.stdout and out.is_file()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    res = subprocess.run([sys.executable, "-m", "ddnsr.cli", "convert", str(bad), "-o",
                          str(tmp_path / "o.safetensors")], capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "bad.pth" in res.stderr and "Traceback" not in res.stderr


def test_convert_refuses_its_input_and_other_names_before_writing(tmp_path):
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    src = tmp_path / "m.pth"
    torch.save(net.state_dict(), src)
    before = src.read_bytes()
    for dst in (src, tmp_path / "noext", tmp_path / "m.onnx"):
        res = subprocess.run([sys.executable, "-m", "ddnsr.cli", "convert", str(src), "-o", str(dst)],
                             capture_output=True, text=True)
        assert res.returncode == 1 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
        assert ".safetensors" in res.stderr
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]
    same = save_model(net, tmp_path / "s.safetensors")
    with pytest.raises(ValueError, match="is the input file"):
        convert(same, same)


def test_non_finite_weights_are_refused(tmp_path):
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    with torch.no_grad():
        net.conv_last.weight[0, 0, 0, 0] = float("nan")
    for path in (save_model(net, tmp_path / "nan.safetensors"), tmp_path / "nan.pth"):
        torch.save(net.state_dict(), tmp_path / "nan.pth")
        with pytest.raises(ModelFileError, match="conv_last.weight holds NaN or infinite"):
            load_model(path)


def test_a_pth_that_unpacks_far_beyond_its_size_is_refused_before_reading(tmp_path):
    import zipfile

    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/data/0", bytes(80 * 1024**2))  # 80 MiB of zeros in ~80 KB
    assert path.stat().st_size < 1024**2
    with pytest.raises(ModelFileError, match="bomb.pth: refused, its archive unpacks to 83,886,"):
        load_model(path)


def test_random_bytes_in_a_pth_are_not_called_pickles(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match="noise.pth: not a PyTorch file") as err:
        load_model(path)
    assert "pickled" not in str(err.value)


def _keras_file(path, shape, *, data=None):
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"conv2d"]
        layer = g.create_group("conv2d")
        layer.attrs["weight_names"] = [b"conv2d/kernel:0"]
        if data is not None:
            layer.create_dataset("conv2d/kernel:0", data=data)
        else:  # declared, never written: the file stays tiny
            layer.create_dataset("conv2d/kernel:0", shape=shape, dtype="f4", chunks=(1, 1, 64, 64))


def test_h5_declaring_a_huge_or_scalar_weight_is_refused_before_reading(tmp_path):
    huge = tmp_path / "huge.h5"
    _keras_file(huge, (3, 3, 30000, 30000))
    assert huge.stat().st_size < 100_000
    with pytest.raises(ModelFileError, match=r"huge.h5: conv2d/kernel:0 declares 8,100,000,000 values"):
        load_model(huge)
    scalar = tmp_path / "scalar.h5"
    _keras_file(scalar, (), data=np.float32(1.0))
    with pytest.raises(ModelFileError, match=r"scalar.h5: conv2d/kernel:0 has shape \(\) float32"):
        load_model(scalar)


@pytest.mark.parametrize("kind", ["reconstruction", "degradation"])
def test_save_half_keeps_metadata_and_reports_the_float16_error(tmp_path, kind):
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4) if kind == "reconstruction" else DegradationNet(8, 2, 1)
    src = save_model(net, tmp_path / "src.safetensors", {"training_steps": "7", "note": "old"})
    dst, diff = save_half(src, tmp_path / "half.safetensors", {"note": "new"})
    meta = read_metadata(dst)
    assert meta["dtype"] == "float16" and meta["training_steps"] == "7" and meta["note"] == "new"
    assert meta["kind"] == kind
    with safe_open(str(dst), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    assert 0 < diff < 1  # float16 rounding shows, within one 8-bit level


@pytest.fixture
def no_real_build_over(monkeypatch):
    """Fail the test when an RRDBNet is built on a real device (memory allocated) with the given config."""
    from ddnsr.formats import modelfile

    built: list[dict] = []

    def recording(**config):
        if torch.get_default_device().type != "meta":
            built.append(config)
            if config.get("num_block", 0) > 64 or config.get("num_feat", 0) > 64:
                raise AssertionError(f"a network was built from an unchecked declaration: {config}")
        return RRDBNet(**config)

    monkeypatch.setitem(modelfile.ARCHS, "RRDBNet", recording)
    return built


def test_a_tiny_file_declaring_a_huge_network_is_refused_before_building(tmp_path, no_real_build_over):
    from safetensors.torch import save_file

    path = tmp_path / "crafted.safetensors"
    save_file({"conv_first.weight": torch.zeros(1)}, str(path),
              metadata={"format": "ddnsr", "arch": "RRDBNet", "config": json.dumps({"num_block": 1500})})
    assert path.stat().st_size < 300
    with pytest.raises(ModelFileError, match="num_block 1500") as exc:
        load_model(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    assert no_real_build_over == []


def test_declared_widths_are_checked_against_the_tensors(tmp_path, no_real_build_over):
    from safetensors.torch import save_file

    small = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    path = tmp_path / "wide.safetensors"
    config = {**small.config, "num_feat": 2048, "num_grow_ch": 1024}
    save_file(small.state_dict(), str(path),
              metadata={"format": "ddnsr", "arch": "RRDBNet", "config": json.dumps(config)})
    with pytest.raises(ModelFileError, match="does not match the tensors present"):
        load_model(path)
    assert no_real_build_over == []


def test_a_pth_with_thousands_of_block_keys_is_refused_before_building(tmp_path, no_real_build_over):
    net = RRDBNet(num_feat=4, num_block=1, num_grow_ch=2)
    state = dict(net.state_dict())
    for n in range(1, 3000):  # tiny stand-ins: the key names declare 3000 blocks
        state[f"body.{n}.rdb1.conv1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "many.pth")
    with pytest.raises(ModelFileError, match="num_block 3000"):
        load_model(tmp_path / "many.pth")
    assert no_real_build_over == []
    state = dict(net.state_dict())
    state["body.0.rdb1.conv1.weight"] = torch.zeros(2, 4, 1, 1)  # the right count, a wrong shape
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ModelFileError, match="body.0.rdb1.conv1.weight is"):
        load_model(tmp_path / "shape.pth")

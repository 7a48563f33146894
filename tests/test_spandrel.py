"""Interoperability: reconstruction weights written by ddnsr load in spandrel as an ESRGAN model.

spandrel needs a newer torch than ours, so it runs in a venv of its own: ``$DDNSR_SPANDREL_VENV``, else
``<repo>/.cache/spandrel-venv`` under CI (``CI`` set), else ``.cache/spandrel-venv`` beside the
checkout (``/work/.cache/spandrel-venv`` here), so that it is built once and kept between sessions.
Building it installs ``torch==2.14.1 torchvision==0.29.1 spandrel`` (about 5.5 GB, a few minutes), so
the test is marked slow (``pytest -m slow tests/test_spandrel.py``) and skips, giving the reason, when
the venv cannot be made. A venv is used only once a marker file says its install finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CHECK_SCRIPT = Path(__file__).resolve().parent / "spandrel_check.py"
PACKAGES = ("torch==2.14.1", "torchvision==0.29.1", "spandrel")
READY_MARKER = ".ddnsr-spandrel-ready"
INSTALL_TIMEOUT_S = 40 * 60


def venv_dir() -> Path:
    """Where the spandrel venv lives (see the module docstring)."""
    env = os.environ.get("DDNSR_SPANDREL_VENV")
    if env:
        return Path(env)
    if os.environ.get("CI"):
        return REPO / ".cache" / "spandrel-venv"
    return REPO.parent / ".cache" / "spandrel-venv"


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock on ``path`` (so two test runs do not build the same venv at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): no lock
            pass
        yield


def ensure_venv() -> tuple[Path, str]:
    """The venv's python, building the venv first if needed; returns (python, 'cached' | 'built in Ns').

    Raises RuntimeError (one line) when it cannot be built.
    """
    venv = venv_dir()
    with _lock(venv.with_name(venv.name + ".lock")):
        if (venv / READY_MARKER).is_file() and _python(venv).is_file():
            return _python(venv), "cached"
        if venv.exists():
            shutil.rmtree(venv)  # an interrupted build: start again
        start = time.monotonic()
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(_python(venv)), "-m", "pip", "install", "--quiet", *PACKAGES],
        ]
        for command in steps:
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"{' '.join(command[:4])}: {exc}") from exc
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
                raise RuntimeError(f"{' '.join(command[:4])} failed: {lines[-1]}")
        (venv / READY_MARKER).write_text(" ".join(PACKAGES) + "\n")
        return _python(venv), f"built in {time.monotonic() - start:.0f}s"


@pytest.mark.slow
def test_spandrel_loads_ddnsr_reconstruction_weights(tmp_path: Path) -> None:
    from ddnsr import Upscaler
    from ddnsr.formats.modelfile import load_model, save_model
    from ddnsr.nets import RRDBNet

    try:
        python, how = ensure_venv()
    except RuntimeError as exc:
        pytest.skip(f"cannot make the spandrel venv at {venv_dir()}: {exc}")

    torch.manual_seed(0)
    # 64 features: spandrel recognises ESRGAN by its key names and shapes; 2 blocks keep it small
    net = RRDBNet(num_feat=64, num_block=2, num_grow_ch=32, init="esrgan")
    with torch.no_grad():  # outputs spread like an image's (random ESRGAN-init outputs are all near 0)
        net.conv_last.weight.mul_(10.0)
        net.conv_last.bias.fill_(0.5)
    model_path = save_model(net, tmp_path / "r.safetensors")
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 20, 28), dtype=np.float32)
    np.save(tmp_path / "in.npy", image)

    done = subprocess.run(
        [str(python), str(CHECK_SCRIPT), str(model_path), str(tmp_path / "in.npy"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["architecture"] == "ESRGAN", info
    assert info["scale"] == 4, info
    print(f"spandrel venv {how}: {info}")

    theirs = np.load(tmp_path / "out.npz")
    ours_net = load_model(model_path)
    with torch.no_grad():
        ours_raw = ours_net(torch.from_numpy(image)).numpy()
    assert theirs["raw"].shape == ours_raw.shape == (1, 3, 80, 112)
    assert 0.1 < ours_raw.std() and np.mean((ours_raw > 0) & (ours_raw < 1)) > 0.5  # a meaningful comparison
    assert np.abs(theirs["raw"] - ours_raw).max() <= 1e-5

    # spandrel runs the network on the image as it is; our Upscaler pads the image first (no frame along the
    # borders), so the padding is switched off for this comparison
    up = Upscaler(ours_net, device=torch.device("cpu"), precision="fp32", tile=0, border=0)
    ours_clipped = up.upscale_array(image[0].transpose(1, 2, 0))
    assert np.abs(theirs["clamped"][0].transpose(1, 2, 0) - ours_clipped).max() <= 1e-5

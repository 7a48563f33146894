"""Start from a model: ``--from NAME|PATH`` (a bundled model, a ``ddnsr train`` run folder, or a model file).

R (and D when the source has one) start from the source's weights, with the source's architecture: the
run's ``r_blocks``/``r_feat``/``r_grow`` (and ``d_filters``/``d_res_blocks``/``input_type`` when D is
taken) are set from the files, so config.json tells the truth. The discriminators always start fresh.
A source without D gets a fresh D, and then R is held for the first sixth of the run (``--r-start``)
unless the user chose a hold: a new D would feed R nonsense at first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ddnsr.errors import ModelFileError, SettingError
from ddnsr.training.config import TrainConfig

__all__ = ["StartModel", "resolve_start", "with_start_architecture"]


@dataclasses.dataclass(frozen=True)
class StartModel:
    """The files a run starts from: R's (always) and D's (None: D starts fresh)."""

    reconstruction: str
    degradation: str | None


def resolve_start(source: str) -> StartModel:
    """``--from`` value -> the R and D files. A folder means a run folder (``reconstruction.safetensors``
    and, if present, ``degradation.safetensors``); a name, a bundled model; a file, R alone.

    Raises:
        ModelFileError: one line when nothing usable is found.
    """
    from ddnsr.formats.modelfile import bundled_models

    path = Path(source).expanduser()
    if path.is_dir():
        r, d = path / "reconstruction.safetensors", path / "degradation.safetensors"
        if not r.is_file():
            raise ModelFileError(f"--from {source}: folder has no reconstruction.safetensors (not a ddnsr run)")
        return StartModel(str(r), str(d) if d.is_file() else None)
    if path.is_file():
        return StartModel(str(path), None)
    bundled = bundled_models()
    if source in bundled and "reconstruction" in bundled[source]:
        d = bundled[source].get("degradation")
        return StartModel(str(bundled[source]["reconstruction"]), str(d) if d else None)
    names = ", ".join(bundled) or "none"
    raise ModelFileError(f"--from {source}: neither a run folder, a model file nor a bundled model ({names})")


def with_start_architecture(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``init_r``/``init_d`` and the architecture of ``cfg.from_model`` (unchanged without it).

    Raises:
        ModelFileError, SettingError: the source cannot be read, or is not an x4 RRDBNet (R) or a
        DegradationNet (D).
    """
    if not cfg.from_model:
        return cfg
    from ddnsr.formats.modelfile import load_model
    from ddnsr.nets import DegradationNet, RRDBNet

    start = resolve_start(cfg.from_model)
    R = load_model(start.reconstruction)
    if not isinstance(R, RRDBNet) or R.scale != 4:
        raise SettingError(f"--from {cfg.from_model}: {start.reconstruction} is not an x4 RRDBNet")
    rc = R.config
    changes = dict(init_r=start.reconstruction, r_blocks=rc["num_block"], r_feat=rc["num_feat"],
                   r_grow=rc["num_grow_ch"])
    if start.degradation and cfg.degradation == "learned":
        D = load_model(start.degradation, kind="degradation")
        if not isinstance(D, DegradationNet):
            raise SettingError(f"--from {cfg.from_model}: {start.degradation} is not a DegradationNet")
        dc = D.config
        changes.update(init_d=start.degradation, d_filters=dc["filters"], d_res_blocks=dc["res_blocks"],
                       input_type=dc["input_type"])
    elif cfg.degradation == "learned" and cfg.r_start == 0:
        changes["r_start"] = max(1, cfg.steps // 6)
        print(f"--from {cfg.from_model}: no degradation network to start from; D starts fresh and R is held "
              f"for the first {changes['r_start']} steps (--r-start)", flush=True)
    return dataclasses.replace(cfg, **changes).validate()

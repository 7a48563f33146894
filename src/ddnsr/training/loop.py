"""The training loop: D and R trained together on unpaired real LR and clean HR (docs/method.md).

A run folder holds ``config.json``, ``checkpoints/ckpt-<step>.pt`` (the last two; checkpoint.py),
``tb/``, ``samples/step-<step>.png``, ``losses.csv`` and at the end ``loss_curves.png`` (runlog.py),
``reconstruction.safetensors`` and ``degradation.safetensors`` (export.py), and ``.lock`` (runlock.py:
one trainer per folder). :func:`train` reads top to bottom; each stage is a named helper below it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ddnsr.errors import SettingError
from ddnsr.files import atomic_write, is_temporary_name
from ddnsr.inference.device import describe
from ddnsr.training.budget import PROBE_STEPS, Budget
from ddnsr.training.checkpoint import Checkpointer, get_rng_state, set_rng_state
from ddnsr.training.config import TrainConfig, config_differences
from ddnsr.training.distributed import Processes
from ddnsr.training.ema import EMA
from ddnsr.training.export import export_models
from ddnsr.training.losses import Networks, StepOutput, apply_gradients, detach_losses, step_gradients
from ddnsr.training.networks import build_networks, loss_config, make_optimisers, set_learning_rate
from ddnsr.training.precision import AUTOCAST, LossScaler, resolve_precision
from ddnsr.training.runlock import RunLock
from ddnsr.training.runlog import RunLog
from ddnsr.training.start import with_start_architecture

if TYPE_CHECKING:
    from ddnsr.training.camera import CameraModel

__all__ = ["Trainer", "default_records", "train"]


def train(cfg: TrainConfig) -> dict[str, Path]:
    """Run (or resume) training; returns the paths of the final model files (rank 0; {} on other ranks)."""
    t0 = time.monotonic()
    cfg.validate()
    procs = Processes.start(cfg.device)
    cfg = with_start_architecture(cfg)  # --from: R's (and D's) weights and architecture
    run_dir, ckpts = Path(cfg.run_dir), Checkpointer(cfg.run_dir)
    check_run_folder(run_dir)  # never write into a user's folder that is not a run
    data = locate_data(cfg)  # fail fast on bad data settings, before building anything
    with RunLock(run_dir) if procs.main else contextlib.nullcontext():
        saved = read_checkpoint_to_resume(cfg, ckpts, procs.main)  # None for a new run
        cfg = keep_fitted_schedule(cfg, saved and saved["config"], run_dir)
        cfg = resolve_precision(cfg, procs.device, saved and saved["config"])
        check_same_configuration(cfg, saved)
        camera = camera_estimate(cfg, data, run_dir, procs.main) if cfg.degradation == "camera" else None
        t = Trainer(cfg, procs, camera)
        start = t.restore(saved) if saved else 0
        if saved and start >= saved["config"]["steps"] and cfg.steps <= start:  # (a killed run may be exported)
            raise SettingError(f"--resume: {run_dir} is a finished run (step {start} of {start}); give --steps "
                               f"above {start} to train on")
        procs.broadcast_weights(t.nets)
        budget = Budget(cfg, start, t0)
        if budget.active:  # probe at least a few steps before the count is fitted
            cfg = t.cfg = dataclasses.replace(cfg, steps=max(cfg.steps, PROBE_STEPS + 1))
        if procs.main:
            write_config(run_dir, cfg)
            print(f"training from step {start} of {cfg.steps} on {describe(procs.device, cfg.precision)}", flush=True)
        batches = make_batches(cfg, data, procs, start)
        log = RunLog(run_dir, start, enabled=procs.main)
        validator = make_validation(cfg, run_dir, procs.main, camera)
        bar = progress_bar(cfg, start, procs.main)
        if validator and start == 0 and cfg.init_r:  # round 0: the start model is a candidate too
            validate(validator, t, cfg, 0, log, bar)
        step, failed = start, False
        try:
            while step < cfg.steps:
                lr = set_learning_rate(t.opts, cfg, step)
                out = t.step(*next(batches), step)
                step += 1
                bar.update(1)
                losses = detach_losses(out.losses)
                if (failed := diverged(losses, step, procs)):
                    break
                if (fitted := budget.after_step(cfg, step)) is not None:
                    cfg = t.cfg = fit_on_every_rank(fitted, procs)
                    bar.total = cfg.steps
                    if procs.main:
                        write_config(run_dir, cfg)
                        print(f"\n--minutes {cfg.minutes:g}: timed at step {step}, the run is set to {cfg.steps} "
                              "steps (config.json)", flush=True)
                if procs.main and due(step, cfg.log_every, cfg.steps):
                    log.losses(step, lr, losses)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k.startswith("loss_")}, refresh=False)
                if procs.main and due(step, cfg.sample_every, cfg.steps):
                    log.samples(step, out.images)
                stop = bool(procs.broadcast_int(budget.time_up())) if budget.minutes else False
                if stop and cfg.fitted_steps is None:  # time ran out while timing: record what was done
                    cfg = t.cfg = dataclasses.replace(cfg, steps=step, fitted_steps=step)
                    if procs.main:
                        write_config(run_dir, cfg)
                if validator and (due(step, cfg.val_every or cfg.save_every, cfg.steps) or stop):
                    validate(validator, t, cfg, step, log, bar)
                if procs.main and (due(step, cfg.save_every, cfg.steps) or stop):
                    ckpts.save(step, t.checkpoint_state())
                del out
                if stop:
                    print(f"\n--minutes {cfg.minutes:g}: time is up at step {step} of {cfg.steps}", flush=True)
                    break
        finally:
            bar.close()
            log.close()
        procs.check_agreement(run_dir, t.nets)
        result: dict[str, Path] = {}
        if procs.main:
            log.finish()
            result = export_run(validator, t, run_dir, cfg, step, failed)
            if validator is not None:
                print(closing_report(validator, run_dir, cfg, result, procs), flush=True)
        procs.barrier()
    return result


# ---------------------------------------------------------------------------------------------
# the stages of train()
# ---------------------------------------------------------------------------------------------

def default_records() -> Path:
    """The repository's ``records.json`` (official ``datasets/...`` layout) or the working folder's."""
    here = Path(__file__).resolve()
    for cand in (Path.cwd() / "records.json", here.parents[3] / "records.json"):
        if cand.is_file():
            return cand
    raise SettingError("no records.json found: pass --records FILE --data-root DIR")


def locate_data(cfg: TrainConfig) -> tuple[dict[str, list[str]], Path]:
    """The records and the folder they are relative to, with both streams' folders checked.

    With ``--real-lr``/``--clean-hr`` the records are made from the user's folders (training/folders.py).
    """
    from ddnsr.training.data import load_records, resolve_sources, stream_keys

    if cfg.real_lr or cfg.clean_hr:
        from ddnsr.training.folders import folder_records

        keys = stream_keys(cfg.source, cfg.target)
        recs = folder_records(cfg.real_lr or (), cfg.clean_hr or (), keys, cfg.lr_crop, Path(cfg.run_dir))
        return recs, Path("/")
    records = Path(cfg.records) if cfg.records else default_records()
    data_root = Path(cfg.data_root) if cfg.data_root else records.parent
    recs = load_records(records)
    for key in stream_keys(cfg.source, cfg.target):
        resolve_sources(recs, data_root, key)
    return recs, data_root


#: What ``ddnsr train`` writes into a run folder (a folder holding anything else is not a run)
RUN_ENTRIES = {"config.json", "checkpoints", "tb", "samples", "losses.csv", "loss_curves.png", "validation.csv",
               "report.md", "report.png", "reconstruction.safetensors", "last-reconstruction.safetensors",
               "best-reconstruction.safetensors", "degradation.safetensors", "clean-hr-self", "camera.json",
               "camera-noise.npz"}
CAMERA_FILE = "camera.json"
CAMERA_NOISE_FILE = "camera-noise.npz"  # the estimate's noise patches (training/camera.py, NoisePatches)


def check_run_folder(run_dir: Path) -> None:
    """Refuse a ``--run-dir`` that exists and holds anything but a ddnsr run's files, before writing.

    A run folder is new, empty, or holds only the names a run writes with a ``config.json`` of a run, so a
    user's own folder (their photos, another tool's ``config.json`` or ``report.md``) is never written into.

    Raises:
        SettingError: one line naming the folder and what in it is not a run's.
    """
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise SettingError(f"--run-dir {run_dir}: not a folder")
    names = {p.name for p in run_dir.iterdir()}
    foreign = sorted(n for n in names if n not in RUN_ENTRIES and not is_temporary_name(n))  # (.lock is hidden)
    if not foreign and "config.json" in names:
        try:
            config = json.loads((run_dir / "config.json").read_text())
        except (OSError, ValueError):
            config = None
        if not (isinstance(config, dict) and {"source", "target", "preset", "steps", "run_dir"} <= set(config)):
            foreign = ["config.json (not a ddnsr run's)"]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise SettingError(f"--run-dir {run_dir}: an existing folder that is not a ddnsr run (it holds {shown}); "
                           "choose a new or empty folder")


def read_checkpoint_to_resume(cfg: TrainConfig, ckpts: Checkpointer, main: bool) -> dict[str, Any] | None:
    """With ``--resume`` the newest readable checkpoint (older ones if newer cannot be read); without it,
    None, and a run folder that holds checkpoints is refused (they would be overwritten)."""
    if cfg.resume:
        path, state = ckpts.load_latest(warn=None if main else (lambda line: None))
        state["path"] = str(path)
        return state
    if ckpts.latest() is not None:
        raise SettingError(f"{cfg.run_dir} already holds checkpoints: pass --resume, or choose another --run-dir")
    return None


def keep_fitted_schedule(cfg: TrainConfig, saved: dict[str, Any] | None, run_dir: Path) -> TrainConfig:
    """A resumed ``--minutes`` run keeps the schedule it fitted (steps, warm-up, hold, intervals): the
    checkpoint's, or RUN/config.json's when the checkpoint predates the fit."""
    if not saved:
        return cfg
    if saved.get("fitted_steps") is None:
        try:
            saved = json.loads((run_dir / "config.json").read_text())
        except (OSError, ValueError):
            return cfg
        if not isinstance(saved, dict) or saved.get("fitted_steps") is None:
            return cfg
    keep = ("steps", "fitted_steps", "psnr_warmup", "r_start", "save_every", "sample_every")
    return dataclasses.replace(cfg, **{k: saved[k] for k in keep if k in saved})


def make_validation(cfg: TrainConfig, run_dir: Path, main: bool, camera: CameraModel | None = None):
    """The run's Validator (rank 0; --val-lr, or a few --real-lr photos), or None (no validation)."""
    if not main or not (cfg.val_lr or cfg.real_lr):
        return None
    from ddnsr.training.validation import make_validator

    return make_validator(cfg, run_dir, camera)


def camera_estimate(cfg: TrainConfig, data: tuple[dict[str, list[str]], Path], run_dir: Path,
                    main: bool) -> CameraModel:
    """``--degradation camera``: the camera estimated from the real LR photos against the clean HR ones
    (training/camera.py), written to RUN/camera.json (and its noise patches to RUN/camera-noise.npz) once; a
    resumed run reads them back."""
    from ddnsr.training.camera import CameraModel, NoisePatches, estimate_camera
    from ddnsr.training.data import list_images, resolve_sources, stream_keys

    saved, noise_file = run_dir / CAMERA_FILE, run_dir / CAMERA_NOISE_FILE
    if saved.is_file():
        patches = NoisePatches.load(noise_file) if noise_file.is_file() else None
        return CameraModel.from_plain(json.loads(saved.read_text()), patches)
    recs, root = data
    real_key, clean_key = stream_keys(cfg.source, cfg.target)
    camera = estimate_camera(list_images(resolve_sources(recs, root, real_key)),
                             list_images(resolve_sources(recs, root, clean_key)),
                             with_patches=cfg.camera_noise == "patches")
    if main:
        if camera.patches is not None:  # written first: camera.json is what marks the estimate as done
            camera.patches.save(noise_file)
        atomic_write(saved, json.dumps(camera.as_plain(), indent=1) + "\n")
        print(f"camera estimate ({CAMERA_FILE}): {camera.describe()}", flush=True)
    return camera


def validate(validator, t: Trainer, cfg: TrainConfig, step: int, log: RunLog, bar) -> None:
    """A validation round of the exported R (the EMA when on): validation.csv, TensorBoard, the progress
    line, and best-reconstruction.safetensors when it is the best so far."""
    import copy

    from ddnsr.formats.modelfile import save_model
    from ddnsr.training.export import training_facts

    model = t.exported().R

    def save(path: Path) -> None:
        plain = copy.deepcopy(getattr(model, "_orig_mod", model)).cpu().float().eval()
        save_model(plain, path, {**training_facts(cfg, step), "selected_by": validator.select})

    scores = validator.run(step, model, t.procs.device, tb=getattr(log, "_writer", None), save=save)
    line = " ".join(f"{k} {v:.4g}" for k, v in scores.items())
    bar.set_postfix_str(f"val {line}", refresh=False)
    if cfg.quiet:
        print(f"step {step}: validation {line}", flush=True)


def diverged(losses: dict[str, float], step: int, procs: Processes) -> bool:
    """True (on every rank, with one line) when a loss of this step is not finite: the weights are lost."""
    bad = not all(math.isfinite(v) for v in losses.values())
    if not procs.broadcast_int(bad):
        return False
    if procs.main:
        print(f"\nstep {step}: a loss is not finite, training stops (it diverged: a smaller --lr?)", flush=True)
    return True


def export_run(validator, t: Trainer, run_dir: Path, cfg: TrainConfig, step: int, failed: bool) -> dict[str, Path]:
    """The run's model files: R and D of the last step (R as ``last-reconstruction`` when validating) and,
    with validation, the best round as ``reconstruction.safetensors``. A diverged run exports only its best
    round (its last weights are not numbers); without validation it has nothing to export.

    Raises:
        SettingError: a diverged run without validation (one line; its earlier checkpoints are kept).
    """
    if failed and validator is None:
        raise SettingError(f"training diverged at step {step} (a loss is not finite): nothing exported; the "
                           f"checkpoints before it are kept in {run_dir / 'checkpoints'} (resume with a smaller --lr)")
    result = {} if failed else export_models(run_dir, t.exported(), cfg, step, last=validator is not None)
    if validator is not None:
        result["reconstruction"] = export_best(validator, run_dir, result.get("last"))
    return result


def export_best(validator, run_dir: Path, last: Path | None) -> Path:
    """``RUN/reconstruction.safetensors`` := the best validation round (round 0 is the start model), so a run
    never exports a model its own validation scored worse than its start; ``last`` stays beside it.

    The best round's file was written when that round ran (validation.py's BEST_FILE); if it is gone (a user
    removed it), the last model is exported and a line says so.
    """
    from ddnsr.files import publish
    from ddnsr.formats.modelfile import read_metadata
    from ddnsr.training.validation import BEST_FILE

    final, best = run_dir / "reconstruction.safetensors", run_dir / BEST_FILE
    if best.is_file():
        publish(best, final)
    elif final.is_file() and read_metadata(final).get("training_steps") == str(validator.best_step):
        pass  # the best round is older than this part of a resumed run, and was exported at its end
    elif last is None:
        raise SettingError(f"{best} is missing and the run has no last model to export")
    else:
        print(f"{best} is missing: exporting the last model as {final.name}", flush=True)
        atomic_write(final, last.read_bytes())
    return final


def closing_report(validator, run_dir: Path, cfg: TrainConfig, files: dict[str, Path], procs: Processes) -> str:
    """RUN/report.md and report.png: the verdict, then bicubic, the start model, the last and the exported R
    on the validation crops."""
    from ddnsr.formats.modelfile import load_model
    from ddnsr.training.closing import write_report

    models = {}
    if cfg.init_r:
        models[f"start ({cfg.from_model or cfg.init_r})"] = load_model(cfg.init_r)
    if "last" in files:
        models["last"] = load_model(files["last"])
    models["exported"] = load_model(files["reconstruction"])
    models = {name: m.to(procs.device).eval() for name, m in models.items()}
    return write_report(validator, run_dir, models, has_start=bool(cfg.init_r), device=procs.device)


def fit_on_every_rank(fitted: TrainConfig, procs: Processes) -> TrainConfig:
    """Rank 0's fitted schedule on every rank (each rank timed its own steps)."""
    keys = ("steps", "fitted_steps", "psnr_warmup", "r_start", "save_every", "sample_every")
    return dataclasses.replace(fitted, **{k: procs.broadcast_int(getattr(fitted, k)) for k in keys})


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    atomic_write(run_dir / "config.json", json.dumps(cfg.as_plain(), indent=1) + "\n")


def check_same_configuration(cfg: TrainConfig, saved: dict[str, Any] | None) -> None:
    """Refuse to resume with settings that change what is computed (config.RESUMABLE may differ)."""
    if saved is None:
        return
    diffs = config_differences(saved["config"], cfg)
    if diffs:
        raise SettingError(f"{saved['path']}: cannot resume with a different configuration ({'; '.join(diffs)})")


def make_batches(cfg: TrainConfig, data: tuple[dict[str, list[str]], Path], procs: Processes, start: int):
    """An iterator of (real LR ``B x 3 x c x c``, clean HR ``B x 3 x 4c x 4c``) float32 batches from batch
    ``start`` on: this rank's part of the stream, the same batches as an uninterrupted run."""
    from ddnsr.training.data import make_unpaired

    recs, data_root = data
    return iter(make_unpaired(
        recs, data_root, cfg.source, cfg.target, batch_size=cfg.batch_size, lr_crop=cfg.lr_crop,
        crops_per_image=cfg.crops_per_image, shuffle_buffer=cfg.shuffle_buffer, num_workers=cfg.num_workers,
        seed=cfg.seed, rank=procs.rank, world_size=procs.world, start_batch=start,
    ))


def progress_bar(cfg: TrainConfig, start: int, main: bool):
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start, disable=cfg.quiet or not main, dynamic_ncols=True, unit="step")


def due(step: int, every: int, last: int) -> bool:
    """True on every ``every``-th step and on the last one."""
    return step % every == 0 or step == last


class Trainer:
    """The networks, optimisers and loss scaler of a run, and one training step."""

    def __init__(self, cfg: TrainConfig, procs: Processes, camera: CameraModel | None = None) -> None:
        self.cfg, self.procs, self.camera = cfg, procs, camera
        self.nets: Networks = build_networks(cfg, procs.device)
        self.opts = make_optimisers(self.nets, cfg, procs.device)
        self.scaler = LossScaler(cfg.precision == "fp16")
        self.loss_cfg = loss_config(cfg)
        self.warmup_cfg = dataclasses.replace(self.loss_cfg, mode="psnr")
        self.autocast = AUTOCAST[cfg.precision]
        self.ema = EMA(self.nets.R, cfg.ema) if cfg.ema > 0 else None
        if cfg.compile:
            self.nets.R = torch.compile(self.nets.R)  # type: ignore[assignment]
        for net in self.nets.trained().values():
            net.train()

    def step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> StepOutput:
        """One step (0-based ``step``): every network's gradient of its own loss, averaged over the ranks,
        applied unless fp16 overflowed (the step still counts). R is held before ``--r-start``."""
        device = self.procs.device
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        cfg = self.warmup_cfg if step < self.cfg.psnr_warmup else self.loss_cfg
        y_lr = None
        if self.camera is not None:  # the step's own draw, the same on a resumed run
            y_lr = self.camera.degrade(y, np.random.default_rng((self.cfg.seed, step, self.procs.rank)))
        with torch.autocast(device.type, dtype=self.autocast, enabled=self.autocast is not None):
            out = step_gradients(self.nets, x, y, cfg, loss_scale=self.scaler.scale if self.scaler.enabled else 1.0,
                                 frozen=("R",) if step < self.cfg.r_start else (), y_lr=y_lr)
        self.procs.average_gradients(out.grads)
        if self.scaler.update(out.grads):
            apply_gradients(self.nets, out.grads)
            for opt in self.opts.values():
                opt.step()
            if self.ema is not None:
                self.ema.update(self.nets.R)
        return out

    def exported(self) -> Networks:
        """The networks to export: R replaced by its moving average when ``--ema`` is on."""
        return self.nets if self.ema is None else dataclasses.replace(self.nets, R=self.ema.shadow)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and plain values (checkpoint.py's format)."""
        return {
            "config": self.cfg.as_plain(),
            "nets": {name: _plain_module(net).state_dict() for name, net in self.nets.trained().items()},
            "optimisers": {name: opt.state_dict() for name, opt in self.opts.items()},
            "scaler": self.scaler.state_dict(),
            "rng": get_rng_state(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Load a checkpoint's state (see :meth:`checkpoint_state`); returns its step."""
        for name, net in self.nets.trained().items():
            _plain_module(net).load_state_dict(state["nets"][name])
        for name, opt in self.opts.items():
            opt.load_state_dict(state["optimisers"][name])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        return int(state["step"])


def _plain_module(net: torch.nn.Module) -> torch.nn.Module:
    """The module under ``torch.compile`` (so checkpoints keep the plain parameter names)."""
    return getattr(net, "_orig_mod", net)

"""``ddnsr train``: D and R trained together on unpaired real LR and clean HR photos (docs/method.md).

Every option left out takes the preset's value (``--preset``, default ``paper``: the official
configuration; ``cpu``: about an hour on 2 CPU cores; ``smoke``: seconds, for tests), so a flag given
always wins over the preset. The run folder holds config.json, checkpoints/ (the last two),
losses.csv, samples/, tb/ (TensorBoard), and at the end loss_curves.png, reconstruction.safetensors
and degradation.safetensors. ``--resume`` continues from the newest readable checkpoint. One trainer
per run folder (RUN/.lock). Several processes: ``torchrun --nproc_per_node N -m ddnsr.cli train ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from ddnsr.training.config import CHOICES, PRESETS, TrainConfig

__all__ = ["add_arguments", "config_from_args", "register", "run"]


def _default(name: str) -> str:
    """'default X' from TrainConfig, with the presets' own values where they set one."""
    base = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)
    own = {p: v[name] for p, v in PRESETS.items() if name in v and v[name] != base}

    def show(v: Any) -> str:
        return ",".join(f"{x:g}" for x in v) if isinstance(v, tuple) else str(v)

    text = f"default {show(base)}"
    return text + "".join(f"; {p} preset: {show(v)}" for p, v in own.items()) if own else text


def int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _finite(text: str) -> float:
    from ddnsr.cli.types import finite

    return finite(text)


def positive_float(text: str) -> float:
    """A finite number above 0 (argparse type)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _minutes(text: str) -> float:
    """``--minutes``: above 0 and at most :data:`~ddnsr.training.config.MAX_MINUTES` (argparse type)."""
    from ddnsr.training.config import MAX_MINUTES

    value = positive_float(text)
    if value > MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_MINUTES} minutes (a year), got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of at least 0 (argparse type)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def _decay(text: str) -> float:
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def weights(text: str) -> tuple[float, float, float]:
    """Three comma-separated finite numbers of at least 0 (argparse type)."""
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}")
    return tuple(non_negative_float(p.strip()) for p in parts)  # type: ignore[return-value]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option defaults to None: TrainConfig and the preset fill what the user did not give."""
    count, at_least_1 = int_at_least(0), int_at_least(1)
    p.add_argument("--source", choices=CHOICES["source"], help=f"real LR stream X ({_default('source')})")
    p.add_argument("--target", choices=CHOICES["target"], help=f"clean HR stream Y ({_default('target')})")
    p.add_argument("--records", help="records.json mapping data set names to folders (default: ./records.json)")
    p.add_argument("--real-lr", action="append", metavar="DIR",
                   help="a folder of your camera's photos (repeatable); instead of records.json")
    p.add_argument("--clean-hr", action="append", metavar="DIR",
                   help="a folder of clean high-quality photos (repeatable), or 'self': your photos halved "
                        "with the official clean-up (bicubic x0.5), made once in RUN/clean-hr-self")
    p.add_argument("--from", dest="from_model", metavar="NAME|PATH",
                   help="start R and D from a bundled model, a `ddnsr train` run folder or a model file, with "
                        "its architecture; discriminators start fresh. Fine-tuning defaults unless given: "
                        "a constant lr 1e-4, no PSNR warm-up, --ema 0.99, R's L1 weight 1, and without --preset the "
                        "'finetune' preset (600 steps, batch 4; docs/adapt.md)")
    p.add_argument("--minutes", type=_minutes,
                   help="fit the whole schedule to N minutes of wall clock (steps timed at the start; the "
                        "count goes into config.json and --resume keeps it), then stop and export")
    p.add_argument("--ema", type=_decay,
                   help="keep a moving average of R with this decay (0: off) and export it (default 0; "
                        "0.99 with --from)")
    p.add_argument("--val-lr", action="append", metavar="DIR",
                   help="validation photos (repeatable; the first few, centre 64x64 crops); default: a few of "
                        "the --real-lr photos, NIQE/PIQE only")
    p.add_argument("--val-hr", metavar="DIR", help="ground truth of --val-lr (same names) for PSNR-Y/SSIM-Y")
    p.add_argument("--val-every", type=int_at_least(1), help="validate every N steps (default: at every save)")
    p.add_argument("--select", choices=("psnr_y", "ssim_y", "niqe", "piqe"),
                   help="metric that picks the exported round, the start model included (default psnr_y "
                        "with --val-hr, else niqe)")
    p.add_argument("--data-root", help="folder the records are relative to (default: the records file's folder)")
    p.add_argument("--run-dir", help="run folder (default: runs/<source>-<target>-<preset>)")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help="the configuration options start from (default paper; with --from: finetune)")
    p.add_argument("--steps", type=at_least_1, help=f"total steps; the schedule's phases scale with it "
                   f"({_default('steps')})")
    p.add_argument("--mode", choices=CHOICES["mode"], help=_default("mode"))
    p.add_argument("--psnr-warmup", type=count,
                   help="esrgan mode: train R with the psnr loss (MSE) for the first N steps, as ESRGAN's "
                        f"PSNR-oriented start ({_default('psnr_warmup')})")
    p.add_argument("--input", dest="input_type", choices=CHOICES["input_type"], help=_default("input_type"))
    p.add_argument("--loss-weights", type=weights,
                   help=f"w1,w2,w3 of loss_D = w1 content + w2 adversarial + w3 cycle ({_default('loss_weights')})")
    p.add_argument("--loss-weights-up", type=weights,
                   help=f"esrgan mode: content,adversarial,L1 weights of loss_R ({_default('loss_weights_up')})")
    p.add_argument("--init-r", help="start R from these weights (any file ddnsr.load_model reads)")
    p.add_argument("--r-start", type=count,
                   help="hold R for the first N steps while D and the discriminators learn (fine-tuning a "
                        "pretrained R: a D started from scratch would feed it nonsense at first; "
                        f"{_default('r_start')})")
    p.add_argument("--init", choices=CHOICES["init"], help=f"weight initialisation ({_default('init')})")
    p.add_argument("--batch-size", type=at_least_1, help=_default("batch_size"))
    p.add_argument("--lr-crop", type=int_at_least(4),
                   help=f"side of the real LR training crops in px; clean HR crops are 4x ({_default('lr_crop')})")
    p.add_argument("--lr", type=positive_float, help=f"learning rate ({_default('lr')})")
    p.add_argument("--schedule", choices=CHOICES["schedule"],
                   help="halving: the learning rate halves after each phase of the schedule (official); "
                        f"constant: it stays ({_default('schedule')}; constant with --from)")
    p.add_argument("--restart-adam", action="store_true", default=None,
                   help="reset Adam moments at each phase (official)")
    p.add_argument("--bn-mode", choices=CHOICES["bn_mode"], help=_default("bn_mode"))
    p.add_argument("--vgg-preprocess", choices=CHOICES["vgg_preprocess"], help=_default("vgg_preprocess"))
    p.add_argument("--color-weight", type=non_negative_float,
                   help="add W x (L1 of D's local mean colours against the HR's) to loss_D; not in the official "
                        f"code ({_default('color_weight')}; see docs/results.md, 'Colour drift')")
    p.add_argument("--color-weight-up", type=non_negative_float,
                   help="add W x (L1 of R(real LR)'s local mean colours against the real LR's) to loss_R; not in "
                        f"the official code ({_default('color_weight_up')}; see docs/results.md, 'Colour drift')")
    p.add_argument("--degradation", choices=CHOICES["degradation"],
                   help="R's training input: D(y, x) (the method; the default without --from), the bicubic x4 "
                   "downscale of y (baseline), or camera: y through the pipeline estimated from the --real-lr "
                   "photos (their JPEG, sharpening, noise and blur; the default with --from, docs/adapt.md)")
    p.add_argument("--camera-noise", choices=CHOICES["camera_noise"],
                   help="--degradation camera's noise: the camera's own noise cut from flat squares of its photos, "
                   "plus Gaussian luma noise for what they miss (patches), or the Gaussian alone "
                   f"({_default('camera_noise')}; docs/adapt.md)")
    p.add_argument("--vgg-weights", help="Keras VGG19 notop .h5 (default: $DDNSR_VGG19 or the cache)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue from the run folder's newest readable checkpoint")
    p.add_argument("--save-every", type=at_least_1, help=_default("save_every"))
    p.add_argument("--sample-every", type=at_least_1, help=_default("sample_every"))
    p.add_argument("--log-every", type=at_least_1, help=_default("log_every"))
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps (default auto)")
    p.add_argument("--precision", choices=CHOICES["precision"],
                   help="autocast precision; auto: bf16 on CUDA and on CPUs with native bf16, else fp32; "
                        "a resumed run keeps the one it recorded (default auto)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile R")
    p.add_argument("--workers", dest="num_workers", type=count,
                   help=f"DataLoader worker processes per stream ({_default('num_workers')})")
    p.add_argument("--seed", type=count, help=_default("seed"))
    p.add_argument("--quiet", action="store_true", default=None, help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset's TrainConfig with every option the user gave (not None) put over it."""
    keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset", "extra", "init_d", "fitted_steps"}
    given = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    preset = getattr(args, "preset", None) or ("finetune" if given.get("from_model") else "paper")
    return TrainConfig.from_preset(preset, **given)


def run(args: argparse.Namespace) -> int:
    from ddnsr.training.loop import train

    out = train(config_from_args(args))
    for kind, path in out.items():
        print(f"{kind}: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train D and R together on unpaired real LR and clean HR photos",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


if __name__ == "__main__":
    import sys

    from ddnsr.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))

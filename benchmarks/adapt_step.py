"""Where the time of one adaptation step goes (``ddnsr train --from track1``, the ``finetune`` preset).

    python benchmarks/adapt_step.py [--from track1] [--steps 10] [--precision auto|fp32|bf16]

Builds the networks exactly as the fine-tuning run does (R and D from ``--from``, fresh discriminators,
the VGG19 taps, channels_last, the run's precision) and times, after warm-up and on fixed tensors of the
run's shapes (batch 4 of 32 px LR crops, 128 px HR):

* the whole step (the forward pass, the four per-network gradients, the four Adam updates), and
* each part alone, with the same shapes and the same number of calls as in a step: R (two forward
  passes, on x and on D(y, x), and the backward of R's loss), D (two passes and its backward), VGG19
  (the three taps on the data and on the outputs, with the backward through the outputs), the HR and LR
  discriminators (two calls each, backward), the Adam updates, and one batch of the real crop stream
  (``--real-lr``/``--clean-hr`` folders, else random data is used and the data row is left out).

The parts are printed in ms and as a share of their sum; the sum is close to the whole step (the parts
overlap little). Needs the VGG19 weights (``DDNSR_VGG19`` or the cache). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch

from ddnsr.inference.device import cpu_has_native_bf16, describe
from ddnsr.training.config import TrainConfig
from ddnsr.training.losses import apply_gradients, step_gradients
from ddnsr.training.networks import build_networks, loss_config, make_optimisers
from ddnsr.training.precision import AUTOCAST, resolve_precision
from ddnsr.training.start import with_start_architecture


def cpu_model() -> str:
    """The CPU's model name as lscpu shows it (Linux), else the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


def timed(fn: Callable[[], object], steps: int, warmup: int = 2) -> float:
    """Mean seconds of ``fn()`` over ``steps`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def backward(loss: torch.Tensor, params) -> None:
    torch.autograd.grad(loss, [p for p in params if p.requires_grad], allow_unused=True)


def parts(cfg: TrainConfig, nets, x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], object]]:
    """Each part of a step as a closure that runs it (forward and backward) as often as a step does."""
    lc = loss_config(cfg)
    vgg = nets.vgg
    y_lr = nets.D(y, x).detach()
    sr_x = nets.R(x).detach()
    y_sr = nets.R(y_lr).detach()

    def r_part():
        out = nets.R(y_lr)
        nets.R(x)
        backward(out.square().mean(), nets.R.parameters())

    def d_part():
        a, b = nets.D(y, x), nets.D(sr_x, x)
        backward(a.square().mean() + b.square().mean(), nets.D.parameters())

    def vgg_part():
        pooled = torch.nn.functional.avg_pool2d(y, 4)
        for target, output, tap in ((y, y_sr, lc.tap_up), (pooled, y_lr, lc.tap_content_down),
                                    (x, sr_x, lc.tap_cycle_down)):
            with torch.no_grad():
                vgg(target, until=tap)
            o = output.clone().requires_grad_(True)
            torch.autograd.grad(vgg(o, until=tap)[tap].square().mean(), o)

    def dhr_part():
        backward(nets.Dhr(y).mean() + nets.Dhr(y_sr).mean(), nets.Dhr.parameters())

    def dlr_part():
        backward(nets.Dlr(x).mean() + nets.Dlr(y_lr).mean(), nets.Dlr.parameters())

    out = {"R (2 passes + backward)": r_part, "D (2 passes + backward)": d_part,
           "VGG19 taps (data + outputs, backward)": vgg_part}
    if nets.Dhr is not None:
        out["HR discriminator"] = dhr_part
    out["LR discriminator"] = dlr_part
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="from_model", default="track1")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--real-lr", help="camera photos: time the real crop stream too")
    ap.add_argument("--clean-hr", help="clean photos (with --real-lr)")
    args = ap.parse_args()
    device = torch.device("cpu")
    cfg = TrainConfig.from_preset("finetune", from_model=args.from_model, precision=args.precision,
                                  degradation="learned", run_dir="/tmp/ddnsr-adapt-step")
    cfg = resolve_precision(with_start_architecture(cfg), device, None)
    print(f"{cpu_model()}; native bf16: {cpu_has_native_bf16()}; "
          f"{describe(device, cfg.precision)}; batch {cfg.batch_size} x {cfg.lr_crop} px LR")
    nets = build_networks(cfg, device)
    opts = make_optimisers(nets, cfg, device)
    x = torch.rand(cfg.batch_size, 3, cfg.lr_crop, cfg.lr_crop).contiguous(memory_format=torch.channels_last)
    y = torch.rand(cfg.batch_size, 3, 4 * cfg.lr_crop, 4 * cfg.lr_crop).contiguous(memory_format=torch.channels_last)
    dtype = AUTOCAST[cfg.precision]

    def autocast():
        return torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)

    def whole():
        with autocast():
            out = step_gradients(nets, x, y, loss_config(cfg))
        apply_gradients(nets, out.grads)
        for opt in opts.values():
            opt.step()

    step = timed(whole, args.steps)
    rows: dict[str, float] = {}
    with autocast():
        for name, fn in parts(cfg, nets, x, y).items():
            rows[name] = timed(fn, args.steps)
    rows["Adam updates (4 networks)"] = timed(lambda: [o.step() for o in opts.values()], args.steps)
    if args.real_lr and args.clean_hr:
        from ddnsr.training.loop import locate_data, make_batches

        data_cfg = TrainConfig.from_preset("finetune", real_lr=(args.real_lr,), clean_hr=(args.clean_hr,),
                                           run_dir="/tmp/ddnsr-adapt-step")
        batches = make_batches(data_cfg, locate_data(data_cfg), type("P", (), {"rank": 0, "world": 1})(), 0)
        rows["data (one batch of the crop stream)"] = timed(lambda: next(batches), args.steps)
    total = sum(rows.values())
    print(f"\nwhole step: {1000 * step:.0f} ms; the parts alone add up to {1000 * total:.0f} ms\n")
    print("| part | ms | share |\n| --- | ---: | ---: |")
    for name, s in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {1000 * s:.0f} | {100 * s / total:.0f}% |")
    camera_step(args, device, step)


def camera_step(args: argparse.Namespace, device: torch.device, learned_step: float) -> None:
    """The default adaptation step (``--degradation camera``): the camera pipeline on the HR batch, then R
    alone (MSE, psnr mode) and its Adam update; against the learned-D step timed above, same run."""
    import numpy as np

    from ddnsr.training.camera import CameraModel, JpegSetting

    cfg = TrainConfig.from_preset("finetune", from_model=args.from_model, precision=args.precision,
                                  run_dir="/tmp/ddnsr-adapt-step")
    cfg = resolve_precision(with_start_architecture(cfg), device, None)
    nets = build_networks(cfg, device)
    opts = make_optimisers(nets, cfg, device)
    camera = CameraModel(jpeg=JpegSetting(subsampling=2, quality=75), sharpen=0.5, noise=3.0)
    y = torch.rand(cfg.batch_size, 3, 4 * cfg.lr_crop, 4 * cfg.lr_crop).contiguous(memory_format=torch.channels_last)
    x = torch.rand(cfg.batch_size, 3, cfg.lr_crop, cfg.lr_crop).contiguous(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    dtype = AUTOCAST[cfg.precision]
    y_lr = camera.degrade(y, rng)

    def r_step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = step_gradients(nets, x, y, loss_config(cfg), y_lr=y_lr)
        apply_gradients(nets, out.grads)
        for opt in opts.values():
            opt.step()

    pipeline, r = timed(lambda: camera.degrade(y, rng), args.steps), timed(r_step, args.steps)
    print(f"\n--degradation camera (the --from default): the camera pipeline {1000 * pipeline:.0f} ms + R's step "
          f"{1000 * r:.0f} ms = {1000 * (pipeline + r):.0f} ms, x{learned_step / (pipeline + r):.1f} the steps of the "
          "learned-D step above in the same minutes")


if __name__ == "__main__":
    main()

"""Training-step speed: plain eager fp32 against the fast path, in the same run.

    python benchmarks/train_step.py [--config paper|cpu|both] [--device cpu|cuda] [--steps N]

For each configuration it times full training steps (forward, the four per-network gradients,
four Adam updates) on random data of the right shapes, after warm-up, and prints steps/s of
every variant and its ratio to the eager fp32 baseline. Variants: eager fp32; channels_last;
bf16 autocast; bf16 autocast + channels_last; on CUDA also torch.compile of R and D (bf16) —
whatever the device supports. It also prints the arithmetic of one step (counted by
``torch.utils.flop_counter`` on one sample, times the batch) and so the TFLOP/s each variant sustains.
Needs the VGG19 weights (``DDNSR_VGG19`` or the cache).
"""

from __future__ import annotations

import argparse
import time

import torch

from ddnsr.training.config import TrainConfig
from ddnsr.training.losses import LossConfig, apply_gradients, step_gradients
from ddnsr.training.networks import build_networks, make_optimisers


def bench(cfg: TrainConfig, device: torch.device, *, dtype, channels_last: bool, compile_: bool,
          steps: int, warmup: int) -> float:
    nets = build_networks(cfg, device)
    if compile_:
        nets.R = torch.compile(nets.R)
        nets.D = torch.compile(nets.D)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    for net in (*nets.trained().values(), nets.vgg):
        net.to(memory_format=mf)
    opts = make_optimisers(nets, cfg, device)
    loss_cfg = LossConfig(mode=cfg.mode)
    x = torch.rand(cfg.batch_size, 3, cfg.lr_crop, cfg.lr_crop, device=device).contiguous(memory_format=mf)
    y = torch.rand(cfg.batch_size, 3, 4 * cfg.lr_crop, 4 * cfg.lr_crop, device=device).contiguous(memory_format=mf)

    def one() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = step_gradients(nets, x, y, loss_cfg)
        apply_gradients(nets, out.grads)
        for opt in opts.values():
            opt.step()

    for _ in range(warmup):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t)


def step_flops(cfg: TrainConfig) -> float:
    """Floating-point operations of one training step of ``cfg`` (forward and the four gradients; the Adam
    updates are negligible), counted on the CPU for one sample and multiplied by the batch size."""
    from torch.utils.flop_counter import FlopCounterMode

    nets = build_networks(cfg, torch.device("cpu"))
    x, y = torch.rand(1, 3, cfg.lr_crop, cfg.lr_crop), torch.rand(1, 3, 4 * cfg.lr_crop, 4 * cfg.lr_crop)
    with FlopCounterMode(display=False) as counter:
        step_gradients(nets, x, y, LossConfig(mode=cfg.mode))
    return float(counter.get_total_flops()) * cfg.batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=("paper", "cpu", "both"), default="both")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")
    variants = [("eager fp32", None, False, False), ("channels_last fp32", None, True, False),
                ("bf16 autocast", torch.bfloat16, False, False), ("bf16 + channels_last", torch.bfloat16, True, False)]
    if gpu and not args.no_compile:
        variants.append(("bf16 + channels_last + compile", torch.bfloat16, True, True))
    configs = ["paper", "cpu"] if args.config == "both" else [args.config]
    for preset in configs:
        cfg = TrainConfig.from_preset(preset)
        steps = args.steps or (30 if gpu else (2 if preset == "paper" else 5))
        warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
        flops = step_flops(cfg)
        print(f"\n{preset}: batch {cfg.batch_size}, R {cfg.r_blocks} blocks x {cfg.r_feat}, "
              f"D {cfg.d_filters} filters, {steps} timed steps, {flops / 1e12:.2f} TFLOP per step")
        base = None
        for label, dtype, cl, comp in variants:
            try:
                sps = bench(cfg, device, dtype=dtype, channels_last=cl, compile_=comp, steps=steps, warmup=warmup)
            except Exception as exc:  # report and go on: one variant failing must not hide the others
                print(f"  {label:34s} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
                continue
            base = base or sps
            print(f"  {label:34s} {sps:8.3f} steps/s  ({1 / sps:7.3f} s/step)  x{sps / base:.2f} vs eager fp32"
                  f"  {sps * flops / 1e12:8.2f} TFLOP/s")


if __name__ == "__main__":
    main()

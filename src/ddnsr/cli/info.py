"""Small sub-commands: ``ddnsr info`` and ``ddnsr convert``."""

from __future__ import annotations

import argparse
import os

from ddnsr.datasets.pretrained import ALEXNET_TORCHVISION, VGG19_KERAS, cache_dir, offline


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="build the networks, print their sizes and where weights are looked for")
    p.set_defaults(func=run_info)
    p = sub.add_parser("convert", help="convert a model file (.h5, .pth, .safetensors, ncnn) to our .safetensors")
    p.add_argument("input", help="official Keras .h5, ESRGAN-family .pth/.safetensors, or ncnn .param")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    p.set_defaults(func=run_convert)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_info(args: argparse.Namespace) -> int:
    import torch

    from ddnsr import __version__
    from ddnsr.formats.modelfile import BUNDLED_DIR, bundled_models, read_metadata
    from ddnsr.inference.upscaler import DEFAULT_MODEL, FAST_MODEL
    from ddnsr.nets import DegradationNet, PatchGANDiscriminator, RRDBNet, VGGStyleDiscriminator

    print(f"ddnsr {__version__}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    print("networks at the official defaults (parameters):")
    nets = {
        "R  reconstruction, RRDBNet x4 (23 blocks, 64 features, growth 32)": RRDBNet(init="torch"),
        "D  degradation, dual input (64 filters, 2 downscale layers, 8 res blocks)": DegradationNet(init="torch"),
        "Dhr VGG-style discriminator (64, 5) on 128x128": VGGStyleDiscriminator(64, 5, 128, init="torch"),
        "Dlr VGG-style discriminator (128, 3) on 32x32": VGGStyleDiscriminator(128, 3, 32, init="torch"),
        "PatchGAN discriminator (64), Track 2 HR": PatchGANDiscriminator(64, init="torch"),
    }
    for name, net in nets.items():
        print(f"  {_count(net):>11,}  {name}")
    print("weights are looked for in:")
    for spec in (VGG19_KERAS, ALEXNET_TORCHVISION):
        env = os.environ.get(spec.env_var)
        where = env if env else str(cache_dir() / spec.filename)
        state = "present" if os.path.isfile(where) else ("missing" if offline() else "missing, downloaded on first use")
        print(f"  {spec.filename}: {where} ({state}; set {spec.env_var} to override)")
    bundled = bundled_models()
    print(f"bundled models in {BUNDLED_DIR}:" + ("" if bundled else " none yet"))
    for name, kinds in bundled.items():
        meta = read_metadata(kinds["reconstruction"]) if "reconstruction" in kinds else {}
        facts = ", ".join(x for x in (f"{meta['training_steps']} steps" if meta.get("training_steps") else "",
                                      meta.get("training_time", "")) if x)
        default = {DEFAULT_MODEL: " (default)", FAST_MODEL: " (fast: --model " + FAST_MODEL + ")"}.get(name, "")
        print(f"  {name}{default}: {' + '.join(sorted(kinds))}; {facts}; {meta.get('note', '')}".rstrip("; "))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ddnsr.formats.modelfile import convert, load_model, read_metadata

    out = convert(args.input, args.output, half=args.half)
    model = load_model(out)
    meta = read_metadata(out)
    print(f"{out}: {meta['arch']} {meta['config']} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0

"""``ddnsr export MODEL --format onnx|ncnn [-o PATH] [--half | --fp32] [--degradation]``.

MODEL: a bundled name (its R; ``--degradation`` for its D) or any file :func:`ddnsr.load_model` reads
(our .safetensors, the official Keras .h5, ESRGAN-family .pth / .safetensors, ncnn). PATH: the output
file (``.onnx``; ``.param`` or ``.bin`` for the ncnn pair) or a folder (created) that gets a name made
from MODEL: ``<name>-x4.onnx``, ``<name>-x4-fp16.onnx``, ``<name>-x4.param``/``.bin``,
``<name>-degradation.onnx``. Default PATH: the current folder. See docs/export.md.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ddnsr.errors import SettingError

FORMATS = ("onnx", "ncnn")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a model as ONNX or ncnn (Upscayl, chaiNNer, vs-mlrt, TensorRT)")
    p.add_argument("model", metavar="MODEL", help="bundled name or model file (.safetensors, .pth, .h5, ncnn .param)")
    p.add_argument("--format", choices=FORMATS, required=True, help="onnx (R or D) or ncnn (R only)")
    p.add_argument("-o", "--output", type=Path, default=Path("."),
                   help="output file (.onnx / .param) or folder (default: the current folder)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--half", action="store_true",
                           help="float16 (ONNX: weights and input/output; ncnn: weight storage, its default)")
    precision.add_argument("--fp32", action="store_true",
                           help="float32 (the ONNX default; ncnn: float32 weight storage instead of float16)")
    p.add_argument("--degradation", action="store_true", help="a bundled name's D instead of its R (ONNX only)")
    p.set_defaults(func=run_export)


def _base_name(model: str, degradation: bool) -> str:
    """A file name stem from MODEL: a bundled name as is, a file's stem without our kind suffix."""
    path = Path(model)
    stem = path.stem if path.suffix else path.name
    stem = re.sub(r"-(reconstruction|degradation)$", "", stem)
    return stem + "-degradation" if degradation else stem


def output_path(model: str, fmt: str, output: Path, *, half: bool, degradation: bool) -> Path:
    """Where the export goes: ``output`` when it names a file of the format, else a name inside it."""
    suffixes = (".onnx",) if fmt == "onnx" else (".param", ".bin")
    if output.suffix.lower() in suffixes:
        return output
    if output.suffix and not output.is_dir():
        raise SettingError(f"{output}: an {fmt} export is written as {' or '.join(suffixes)} (or give a folder)")
    stem = _base_name(model, degradation)
    if not degradation and not re.search(r"x4|4x", stem, re.IGNORECASE):
        stem += "-x4"
    if fmt == "onnx":
        return output / f"{stem}{'-fp16' if half else ''}.onnx"
    return output / f"{stem}.param"


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file (through symlinks and hard links too)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_own_input(model: str, kind: str, outputs: list[Path]) -> None:
    """Refuse (one-line ``SettingError``) an export whose output would replace one of its input files.

    The inputs are MODEL's file (a bundled name's file included) and, for ncnn, both files of the pair.
    """
    from ddnsr.formats.modelfile import resolve_model_path
    from ddnsr.formats.ncnn_export import ncnn_files

    source = resolve_model_path(model, kind)
    inputs = list(ncnn_files(source)) if source.suffix.lower() in (".param", ".bin") else [source]
    for out in outputs:
        for given in inputs:
            if _same_file(out, given):
                raise SettingError(f"output {out}: is the input file {given}; choose another name "
                                   "(an export never replaces its input)")


def run_export(args: argparse.Namespace) -> int:
    from ddnsr.formats.modelfile import load_model
    from ddnsr.formats.ncnn_export import export_ncnn, ncnn_files
    from ddnsr.formats.onnx_export import OPSET, check_exportable, export_onnx
    from ddnsr.nets import DegradationNet

    kind = "degradation" if args.degradation else "reconstruction"
    net = load_model(args.model, kind=kind)
    check_exportable(net, args.model, args.format)
    is_d = isinstance(net, DegradationNet)
    half = args.half if args.format == "onnx" else not args.fp32
    dest = output_path(args.model, args.format, args.output, half=half, degradation=is_d)
    refuse_own_input(args.model, kind, [dest] if args.format == "onnx" else list(ncnn_files(dest)))
    params = sum(p.numel() for p in net.parameters())
    what = f"{type(net).__name__} {'x1/4' if is_d else 'x4'}, {params:,} parameters, {'float16' if half else 'float32'}"
    if args.format == "onnx":
        out = export_onnx(net, dest, half=half, label=args.model, metadata={"source": Path(args.model).name})
        print(f"{out}: ONNX opset {OPSET}, {what}")
    else:
        param, binary = export_ncnn(net, dest, half=half, label=args.model)
        print(f"{param} + {binary.name}: ncnn ({what} weights), input blob 'data', output blob 'output'")
    return 0

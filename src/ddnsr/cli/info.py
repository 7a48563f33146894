"""Small sub-commands: ``ddnsr info [MODEL]`` and ``ddnsr convert``.

``ddnsr info`` lists the networks, the weight files and the bundled models; ``ddnsr info MODEL`` describes
one model, whatever its format (a bundled name, .safetensors, .pth, Keras .h5, ncnn .param/.bin, .onnx):
architecture, scale, parameters, file size, stored precision and the metadata the file carries.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from ddnsr.datasets.pretrained import ALEXNET_TORCHVISION, VGG19_KERAS, cache_dir, offline
from ddnsr.errors import ModelFileError, one_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="without MODEL: the networks, weight files and bundled models; "
                       "with MODEL: that model's architecture, scale, size, precision and metadata")
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="a bundled name or a model file (.safetensors, .pth, .h5, ncnn .param/.bin, .onnx)")
    p.set_defaults(func=run_info)
    p = sub.add_parser("convert", help="convert a model file (.h5, .pth, .safetensors, ncnn) to our .safetensors")
    p.add_argument("input", help="official Keras .h5, ESRGAN-family .pth/.safetensors, or ncnn .param")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    p.set_defaults(func=run_convert)


def escaped(text: str) -> str:
    """``text`` with control and other unprintable characters as Python escapes (``\\n``, ``\\x1b``),
    so that what a file carries can neither move the terminal's cursor nor forge a line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_info(args: argparse.Namespace) -> int:
    if getattr(args, "model", None):
        for block in describe_model(args.model):
            print("\n".join(f"{escaped(key) + ':':<14}{escaped(value)}" if key else escaped(value)
                            for key, value in block))
        return 0
    import torch

    from ddnsr import __version__
    from ddnsr.formats.modelfile import BUNDLED_DIR, bundled_models, read_metadata
    from ddnsr.inference.upscaler import DEFAULT_MODEL, FAST_MODEL
    from ddnsr.nets import DegradationNet, PatchGANDiscriminator, RRDBNet, VGGStyleDiscriminator

    print(f"ddnsr {__version__}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    from ddnsr.inference.device import default_precision, describe, inference_precision, resolve_device

    device = resolve_device("auto")
    print(f"upscaling runs on {describe(device, inference_precision(device))}; "
          f"training on {describe(device, default_precision(device))} (--precision auto)")
    print(_backend_line(device))
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


def _backend_line(device) -> str:
    """Which runtime ``ddnsr upscale`` / ``degrade`` pick with ``--backend auto`` here, in what precision, why,
    and the versions."""
    from importlib.metadata import PackageNotFoundError, version

    from ddnsr.inference.backends import auto_choice
    from ddnsr.nets import DegradationNet

    backend, precision, why = auto_choice(device)
    line = f"--backend auto runs {backend} {precision} here ({why}"
    d_backend, d_precision, d_why = auto_choice(device, DegradationNet(filters=4, res_blocks=1))
    if (d_backend, d_precision) != (backend, precision):
        line += f"; D: {d_backend} {d_precision}"
    found = []
    for package in ("ncnn", "openvino", "onnxruntime"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    return f"{line}; {', '.join(found)})"


def run_convert(args: argparse.Namespace) -> int:
    from ddnsr.formats.modelfile import convert, load_model, read_metadata

    out = convert(args.input, args.output, half=args.half)
    model = load_model(out)
    meta = read_metadata(out)
    print(f"{out}: {meta['arch']} {meta['config']} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0


# ------------------------------------------------------------------------------------------ info MODEL

Facts = list[tuple[str, str]]


def _mb(*paths: Path) -> str:
    size = sum(p.stat().st_size for p in paths)
    return f"{size / 1e6:.2f} MB" + (f" ({' + '.join(p.name for p in paths)})" if len(paths) > 1 else "")


def _precision(dtypes: set[str]) -> str:
    return " + ".join(sorted(dtypes)) if dtypes else "unknown"


def _stored_dtypes(path: Path) -> set[str]:
    """The dtypes the weights are stored in (before load_model turns them into float32)."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {str(f.get_slice(k).get_dtype()).lower().replace("f16", "float16").replace("f32", "float32")
                    .replace("bf16", "bfloat16") for k in f.keys()}
    if suffix in (".pth", ".pt", ".ckpt"):
        import torch

        from ddnsr.formats.modelfile import _unwrap

        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            return set()
        return {str(v.dtype).removeprefix("torch.") for v in _unwrap(state).values()}
    if suffix in (".h5", ".hdf5", ".keras"):
        import h5py

        found: set[str] = set()
        with h5py.File(path, "r") as f:
            f.visititems(lambda _, obj: found.add(str(obj.dtype)) if isinstance(obj, h5py.Dataset) else None)
        return found
    return set()


def _network_facts(net, path: Path) -> Facts:
    from ddnsr.nets import DegradationNet, RRDBNet

    config = getattr(net, "config", {})
    if isinstance(net, RRDBNet):
        scale = f"x{config.get('scale')}"
    elif isinstance(net, DegradationNet):
        scale = f"x1/{net.scale_down} ({config.get('input_type')} input)"
    else:
        scale = "-"
    return [("architecture", f"{type(net).__name__} ({getattr(net, 'kind', 'discriminator')})"),
            ("config", json.dumps(config)), ("scale", scale),
            ("parameters", f"{sum(p.numel() for p in net.parameters()):,}")]


def _dtype_name(code: int) -> str:
    """The NumPy name of an ONNX element type, or ``unknown type N`` for a code this onnx lacks."""
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(code).name
    except (KeyError, ValueError, TypeError):
        return f"unknown type {code}"


def _read_onnx(path: Path):
    """The ONNX model in ``path`` (without external data); one-line ModelFileError for what is not a model."""
    import onnx
    from google.protobuf.message import DecodeError

    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not an ONNX model ({one_line(exc)[:120]})") from exc
    if not model.graph.node or not model.graph.output:
        raise ModelFileError(f"{path}: not an ONNX model (it holds no graph)")
    return model


def _onnx_parameters(path: Path, model) -> int:
    """The number of weights in the initializers, each checked against the values it really holds."""
    from onnx import TensorProto, numpy_helper

    total = 0
    for t in model.graph.initializer:
        dims = list(t.dims)
        if any(d < 0 for d in dims):
            raise ModelFileError(f"{path}: initializer {t.name!r} has a negative dimension {dims}")
        if t.data_location == TensorProto.EXTERNAL:
            total += math.prod(dims)
            continue
        if _dtype_name(t.data_type).startswith("unknown"):
            raise ModelFileError(f"{path}: initializer {t.name!r} has an {_dtype_name(t.data_type)}")
        try:
            total += int(numpy_helper.to_array(t).size)
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelFileError(f"{path}: initializer {t.name!r} does not hold the {math.prod(dims):,} values "
                                 f"its shape {dims} declares") from exc
    return total


def _onnx_shape(path: Path, value) -> str:
    """``name [d1 x d2 ...] dtype`` of a graph input or output (named dims as named)."""
    dims = []
    for d in value.type.tensor_type.shape.dim:
        if not d.dim_param and d.dim_value < 0:
            raise ModelFileError(f"{path}: {value.name!r} has a negative dimension {d.dim_value}")
        dims.append(d.dim_param or str(d.dim_value))
    return f"{value.name} [{' x '.join(dims)}] {_dtype_name(value.type.tensor_type.elem_type)}"


def _onnx_facts(path: Path) -> Facts:
    model = _read_onnx(path)
    meta = {p.key: p.value for p in model.metadata_props}
    inits = model.graph.initializer
    dtypes = {_dtype_name(t.data_type) for t in inits}
    init_names = {t.name for t in inits}
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    facts: Facts = [("format", f"ONNX (opset {opsets}; producer {model.producer_name or '?'})"),
                    ("architecture", meta.get("arch", "not recorded (not written by ddnsr)")
                     + (f" ({meta['kind']})" if "kind" in meta else ""))]
    if "config" in meta:
        facts.append(("config", meta["config"]))
    facts += [("scale", "x" + meta["scale"] if "scale" in meta else "not recorded"),
              ("parameters", f"{_onnx_parameters(path, model):,}"),
              ("inputs", "; ".join(_onnx_shape(path, v) for v in model.graph.input if v.name not in init_names)),
              ("outputs", "; ".join(_onnx_shape(path, v) for v in model.graph.output)),
              ("precision", _precision(dtypes))]
    return facts + _meta_facts(meta, ("arch", "config", "kind", "scale", "dtype"))


def _file_facts(path: Path) -> Facts:
    from ddnsr.formats.modelfile import load_model, read_metadata

    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return [("file", str(path)), ("size", _mb(path)), *_onnx_facts(path)]
    net = load_model(path)
    if suffix in (".param", ".bin"):
        param, binary = path.with_suffix(".param"), path.with_suffix(".bin")
        meta = dict(getattr(net, "metadata", {}))
        facts: Facts = [("file", str(param)), ("size", _mb(param, binary)),
                        ("format", "ncnn (.param + .bin; the scale Upscayl uses comes from the file name)")]
        return facts + _network_facts(net, path) + [("precision", meta.get("ncnn_weights", "unknown"))]
    names = {".safetensors": "safetensors", ".pth": "PyTorch state dict", ".pt": "PyTorch state dict",
             ".ckpt": "PyTorch state dict", ".h5": "Keras HDF5 (official DDNSR)", ".hdf5": "Keras HDF5",
             ".keras": "Keras"}
    meta = read_metadata(path) if suffix == ".safetensors" else {}
    fmt = names.get(suffix, suffix) + (" (ddnsr)" if meta.get("format") == "ddnsr" else "")
    facts = [("file", str(path)), ("size", _mb(path)), ("format", fmt), *_network_facts(net, path),
             ("precision", _precision(_stored_dtypes(path)))]
    return facts + _meta_facts(meta, ("format", "arch", "config", "kind", "dtype"))


def _meta_facts(meta: dict[str, str], shown: tuple[str, ...]) -> Facts:
    """The metadata not shown above, sorted, as indented ``key = value`` lines under ``metadata``."""
    rest = sorted((k, v) for k, v in meta.items() if k not in shown)
    return [("metadata", f"{len(rest)} entries")] + [("", f"  {k} = {v}") for k, v in rest] if rest else []


def describe_model(model: str) -> list[Facts]:
    """Facts about a model file, or about each network (R, D) of a bundled name; one list per file."""
    from ddnsr.formats.modelfile import bundled_models, resolve_model_path

    path = Path(model).expanduser()
    if path.is_file():
        return [_file_facts(path)]
    bundled = bundled_models()
    if model in bundled:
        return [_file_facts(bundled[model][kind]) for kind in sorted(bundled[model], reverse=True)]
    return [_file_facts(resolve_model_path(model))]  # raises the one-line error for a missing file

"""Model files in and out: ``load_model``, ``save_model`` and ``convert``.

``load_model(path_or_name)`` returns the network (R or D, recognised from the file) as an
``nn.Module`` in eval mode, float32, on the CPU, for:

- a bundled model name (``ddnsr.models``: ``track1``, ``track1-single`` ...; R by default,
  ``kind="degradation"`` for its D);
- a ``.safetensors`` file written by this project (architecture and configuration in its metadata);
- an official DDNSR Keras ``.h5`` (``track1_div2k.h5``, ``*-network.h5``, see :mod:`ddnsr.formats.keras_h5`);
- an ESRGAN-family RRDBNet state dict in ``.pth`` (read with ``torch.load(weights_only=True)``:
  nothing but tensors is ever unpickled) or ``.safetensors``, with BasicSR / Real-ESRGAN key names
  (``conv_first``, ``body.N.rdb1.conv1`` ...) or the original ESRGAN ones (``model.0``,
  ``model.1.sub.N.RDB1.conv1.0`` ...), optionally wrapped in ``params_ema`` / ``params``; the
  architecture is inferred from the shapes;
- an ncnn RRDBNet (``.param`` + ``.bin``, see :mod:`ddnsr.formats.ncnn`) where that module is present.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from safetensors.torch import save as save_safetensors
from torch import nn

from ddnsr.errors import ModelFileError, SettingError, one_line
from ddnsr.files import atomic_write
from ddnsr.formats.keras_h5 import load_keras_model
from ddnsr.formats.ncnn import load_ncnn_rrdbnet
from ddnsr.nets import DegradationNet, PatchGANDiscriminator, RRDBNet, VGGStyleDiscriminator

FORMAT = "ddnsr"
ARCHS: dict[str, type[nn.Module]] = {
    "RRDBNet": RRDBNet,
    "DegradationNet": DegradationNet,
    "VGGStyleDiscriminator": VGGStyleDiscriminator,
    "PatchGANDiscriminator": PatchGANDiscriminator,
}
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"
KINDS = ("reconstruction", "degradation")


# ---------------------------------------------------------------------------------------------
# bundled models
# ---------------------------------------------------------------------------------------------

def bundled_models() -> dict[str, dict[str, Path]]:
    """Bundled model names -> {'reconstruction': path, 'degradation': path} (what is present)."""
    out: dict[str, dict[str, Path]] = {}
    for p in sorted(BUNDLED_DIR.glob("*.safetensors")):
        m = re.fullmatch(r"(.+)-(reconstruction|degradation)\.safetensors", p.name)
        if m:
            out.setdefault(m.group(1), {})[m.group(2)] = p
    return out


def resolve_model_path(model: str | os.PathLike, kind: str = "reconstruction") -> Path:
    """A bundled name or a path -> an existing file path (one-line ModelFileError otherwise)."""
    if kind not in KINDS:
        raise ModelFileError(f"kind must be one of {KINDS}, got {kind!r}")
    p = Path(model).expanduser()
    if p.is_file():
        return p
    bundled = bundled_models()
    name = str(model)
    if name in bundled:
        if kind not in bundled[name]:
            raise ModelFileError(f"bundled model {name!r} has no {kind} network")
        return bundled[name][kind]
    if p.suffix or os.sep in name:
        raise ModelFileError(f"{p}: no such file")
    names = ", ".join(bundled) or "none"
    raise ModelFileError(f"{name!r} is neither a file nor a bundled model (bundled: {names})")


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

#: The most repeated blocks a model file may declare (RRDBNet's ``num_block``, D's ``res_blocks`` and
#: ``down_layers``, a discriminator's ``blocks``); ESRGAN has 23. More is refused before anything is built.
MAX_BLOCKS = 128
_BLOCK_SETTINGS = ("num_block", "res_blocks", "down_layers", "blocks")


def _declared(arch: str, config: object, path: str) -> nn.Module:
    """The network ``arch(**config)`` built on the ``meta`` device (shapes only, no memory), bounded first."""
    if arch not in ARCHS:
        raise ModelFileError(f"{path}: unknown architecture {arch!r}")
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: the configuration is not a JSON object")
    for name in _BLOCK_SETTINGS:
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_BLOCKS:
            raise ModelFileError(f"{path}: refused, it declares {name} {value}, outside 0..{MAX_BLOCKS}")
    try:
        with torch.device("meta"):
            return ARCHS[arch](**config)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ModelFileError(f"{path}: bad {arch} configuration ({one_line(exc)[:160]})") from exc


def _build(arch: str, config: object, shapes: dict[str, tuple[int, ...]], path: str = "") -> nn.Module:
    """``arch(**config)``, built only once its parameters match ``shapes`` (the tensors the file holds).

    So a small crafted file cannot make ddnsr build (and allocate) a network far larger than itself.
    """
    want = {k: tuple(v.shape) for k, v in _declared(arch, config, path).state_dict().items()}
    missing, extra = sorted(want.keys() - shapes.keys()), sorted(shapes.keys() - want.keys())
    if missing or extra:
        example = (f"{len(missing)} missing, e.g. {missing[0]}" if missing
                   else f"{len(extra)} unexpected, e.g. {extra[0]}")
        raise ModelFileError(f"{path}: the declared {arch} does not match the tensors present ({example})")
    for key, shape in want.items():
        if tuple(shapes[key]) != shape:
            raise ModelFileError(f"{path}: the declared {arch} does not match the tensors present "
                                 f"({key} is {list(shapes[key])} in the file, {list(shape)} declared)")
    return ARCHS[arch](**config)  # type: ignore[arg-type]


def _unwrap(state: dict) -> dict[str, torch.Tensor]:
    for key in ("params_ema", "params", "state_dict", "model"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


_OLD_ESRGAN = [
    (re.compile(r"^model\.0\.(weight|bias)$"), r"conv_first.\1"),
    (re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$"), r"body.\1.rdb\2.conv\3.\4"),
]


def _from_old_esrgan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original ESRGAN key names (``model.N...``) -> BasicSR names."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))}
    nb = max(blocks) + 1 if blocks else 0
    # the upsampling convs sit at model.3, model.6 (and further every 3), then conv_hr, conv_last
    ups = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight", k))} - {0})
    rename = {f"model.1.sub.{nb}": "conv_body"}
    *up_idx, hr_idx, last_idx = ups
    for i, idx in enumerate(up_idx, 1):
        rename[f"model.{idx}"] = f"conv_up{i}"
    rename[f"model.{hr_idx}"] = "conv_hr"
    rename[f"model.{last_idx}"] = "conv_last"
    out = {}
    for k, v in state.items():
        for pattern, repl in _OLD_ESRGAN:
            if pattern.match(k):
                out[pattern.sub(repl, k)] = v
                break
        else:
            prefix, _, leaf = k.rpartition(".")
            if prefix not in rename:
                raise KeyError(k)
            out[f"{rename[prefix]}.{leaf}"] = v
    return out


def infer_rrdbnet(state: dict[str, torch.Tensor], path: str = "") -> RRDBNet:
    """Build the RRDBNet a BasicSR-named state dict describes (raises KeyError if it is none).

    Raises ModelFileError when the tensors do not make up that network (checked before it is built).
    """
    first = state["conv_first.weight"]
    num_feat, in_ch = first.shape[0], first.shape[1]
    num_block = len({k.split(".")[1] for k in state if k.startswith("body.")})
    grow = state["body.0.rdb1.conv1.weight"].shape[0]
    num_up = len({k.split(".")[0] for k in state if re.match(r"conv_up\d+\.", k)})
    out_ch = state["conv_last.weight"].shape[0]
    # pixel-unshuffle variants (Real-ESRGAN x2 / x1) fold the input: 12 or 48 channels for RGB
    scale, in_img = 2**num_up, in_ch
    if num_up == 2 and in_ch % 16 == 0 and in_ch // 16 in (1, 3):
        scale, in_img = 1, in_ch // 16
    elif num_up == 2 and in_ch % 4 == 0 and in_ch // 4 in (1, 3):
        scale, in_img = 2, in_ch // 4
    config = dict(num_in_ch=in_img, num_out_ch=out_ch, num_feat=num_feat, num_block=num_block, num_grow_ch=grow,
                  scale=scale)
    return _build("RRDBNet", config, {k: tuple(v.shape) for k, v in state.items()}, path)  # type: ignore[return-value]


def model_from_state_dict(state: dict[str, torch.Tensor], path: str = "") -> nn.Module:
    """An RRDBNet from a (possibly wrapped, possibly old-ESRGAN-named) state dict."""
    state = _unwrap(state)
    try:
        if "conv_first.weight" not in state and "model.0.weight" in state:
            state = _from_old_esrgan(state)
        model = infer_rrdbnet(state, path)
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except ModelFileError:
        raise
    except (KeyError, RuntimeError, ValueError, IndexError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise ModelFileError(f"{path}: not an ESRGAN-family RRDBNet state dict ({reason})") from exc
    return model


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (empty when it has none)."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _load_safetensors(path: Path) -> nn.Module:
    try:
        meta = read_metadata(path)
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable .safetensors file ({exc})") from exc
    if meta.get("format") == FORMAT and "arch" in meta:
        try:
            config = json.loads(meta.get("config", "{}"))
        except ValueError as exc:
            raise ModelFileError(f"{path}: its configuration is not JSON ({one_line(exc)[:120]})") from exc
        model = _build(meta["arch"], config, {k: tuple(v.shape) for k, v in state.items()}, str(path))
        try:
            model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        except (ValueError, TypeError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0][:160]
            raise ModelFileError(f"{path}: metadata and weights do not agree ({reason})") from exc
        model.metadata = meta  # type: ignore[attr-defined]
        return model
    return model_from_state_dict(state, str(path))


#: A zipped ``.pth`` may unpack to at most this many times its size (PyTorch stores its archives
#: uncompressed, so real files are near 1x; a 1.5 MB deflated file unpacking to 1 GB is refused).
MAX_UNPACK_RATIO = 4
MAX_UNPACK_FLOOR = 64 * 1024**2


def _check_archive_size(path: Path) -> None:
    """Refuse a zip ``.pth`` whose members declare far more bytes than the file holds (before reading)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable PyTorch file (broken zip: {exc})") from exc
    limit = max(MAX_UNPACK_RATIO * path.stat().st_size, MAX_UNPACK_FLOOR)
    if declared > limit:
        raise ModelFileError(f"{path}: refused, its archive unpacks to {declared:,} bytes, over {limit:,} "
                             f"({MAX_UNPACK_RATIO}x the file's size)")


def _load_pth(path: Path) -> nn.Module:
    _check_archive_size(path)
    if not zipfile.is_zipfile(path) and _looks_random(path):
        raise ModelFileError(f"{path}: not a PyTorch file (neither a zip archive nor a pickle)")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{path}: refused, the file holds pickled Python objects beyond tensors "
            "(only plain state dicts are read; nothing was executed)"
        ) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable PyTorch file ({str(exc).splitlines()[0][:160]})") from exc
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return model_from_state_dict(state, str(path))


def load_model(model: str | os.PathLike, kind: str = "reconstruction") -> nn.Module:
    """Load a network from a bundled name or a file (see the module docstring); eval mode, float32.

    ``kind`` picks R or D of a bundled model; for files the network is recognised from the file.
    Raises :class:`ModelFileError` (one line naming the file and the reason) for anything else.
    """
    path = resolve_model_path(model, kind)
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: empty file")
    if suffix == ".safetensors":
        net = _load_safetensors(path)
    elif suffix in (".pth", ".pt", ".ckpt"):
        net = _load_pth(path)
    elif suffix in (".h5", ".hdf5", ".keras"):
        net = load_keras_model(path)
    elif suffix in (".param", ".bin"):
        net = load_ncnn_rrdbnet(path)
    else:
        raise ModelFileError(f"{path}: unknown model file type {suffix!r} "
                             "(expected .safetensors, .pth, .h5 or an ncnn .param)")
    _check_finite(net, path)
    return net.float().eval()


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

def arch_name(model: nn.Module) -> str:
    for name, cls in ARCHS.items():
        if type(model) is cls:
            return name
    raise SettingError(f"cannot save a {type(model).__name__}: not one of {', '.join(ARCHS)}")


# the metadata keys save_model writes itself (how the file is made, not facts about the model)
FORMAT_KEYS = ("format", "arch", "config", "kind", "ddnsr_version", "dtype")


def _looks_random(path: Path) -> bool:
    """True when a non-zip ``.pth`` does not start like a pickle (protocol 2+ opcode 0x80, or legacy magic)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return not head or head[0] != 0x80


def _check_finite(model: nn.Module, path: Path) -> None:
    """Refuse weights with NaN or infinity: such a network gives black or garbage pictures."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{path}: weight {name} holds NaN or infinite values; the file is damaged")


def save_model(model: nn.Module, path: str | os.PathLike, metadata: dict[str, object] | None = None,
               half: bool = False) -> Path:
    """Write ``model`` as ``.safetensors`` with its architecture and configuration in the metadata.

    ``metadata`` values are stored as strings (JSON for non-strings). ``half`` stores float16
    weights (loaded back as float32). Written to a temporary file, then renamed.
    """
    path = Path(path)
    arch = arch_name(model)
    meta = {"format": FORMAT, "arch": arch, "config": json.dumps(model.config),
            "kind": getattr(model, "kind", "discriminator"), "ddnsr_version": _version(),
            "dtype": "float16" if half else "float32"}
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v)
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, save_safetensors(state, metadata=meta))


def _version() -> str:
    from ddnsr import __version__

    return __version__


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(src: str | os.PathLike, dst: str | os.PathLike, half: bool = False) -> Path:
    """Any readable model file -> our ``.safetensors``, recording the source in the metadata.

    Raises:
        SettingError: ``dst`` is not a ``.safetensors`` name, or is the source itself (checked before
            anything is read or written).
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise SettingError(f"output {dst}: must be a .safetensors file name (ddnsr convert writes safetensors)")
    if dst.resolve() == src.resolve():
        raise SettingError(f"output {dst}: is the input file; choose another name")
    model = load_model(src)
    meta = {k: v for k, v in getattr(model, "metadata", {}).items() if k not in FORMAT_KEYS}
    meta.update({"source": src.name, "source_sha256": sha256_file(src),
                 "converted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    return save_model(model, dst, meta, half=half)


def save_half(src: str | os.PathLike, dst: str | os.PathLike, metadata: dict[str, object] | None = None
              ) -> tuple[Path, float]:
    """A float16 copy of the R or D model file ``src`` with its own metadata (updated by ``metadata``).

    Returns the written path and the largest difference between the two files' outputs on a fixed
    random test image (64x64 HR, its 16x16 average-pooled LR), clipped to [0, 1], in 8-bit levels.
    """
    model = load_model(src)
    meta = {k: v for k, v in read_metadata(src).items() if k not in FORMAT_KEYS}
    meta.update(metadata or {})
    dst = save_model(model, dst, meta, half=True)
    back = load_model(dst)
    hr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    with torch.no_grad():
        outs = [m(lr) if isinstance(m, RRDBNet) else m(hr, lr) for m in (model.eval(), back.eval())]
    return dst, float((outs[0].clamp(0, 1) - outs[1].clamp(0, 1)).abs().max()) * 255

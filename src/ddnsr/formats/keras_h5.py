"""Reading the official DDNSR Keras ``.h5`` files (``model.save(...)``) into our PyTorch networks.

The official networks are Keras models saved by TensorFlow: ``model_weights/<layer>/.../<var>:0``
datasets, kernels HWIO (Dense: in x out). Groups sort alphabetically (``conv2d_10`` before
``conv2d_6``), so the order is taken from the file itself: the ``layer_names`` attribute and each
layer's ``weight_names``. The network kind and its configuration are recognised from the
``model_config`` JSON and the weight shapes.

Convolutions are matched to our modules in the order the official code *created* them (the
``conv2d_N`` counter Keras gives each new layer), which is the order our modules are defined in;
functional models list their layers topologically instead (D's two branches interleave).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import h5py
import numpy as np
import torch
from torch import nn

from ddnsr.errors import ModelFileError
from ddnsr.nets import DegradationNet, PatchGANDiscriminator, RRDBNet, VGGStyleDiscriminator


@dataclass
class KerasVariable:
    layer: str  # top-level layer name, e.g. 'rrdb_1' or 'conv2d_31'
    name: str  # full weight name, e.g. 'rrdb_1/dense_block_3/conv2d_16/kernel:0'
    value: np.ndarray


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


#: The most values one Keras variable of a DDNSR network may declare: the largest real one (the paper
#: Dhr's dense layer) has under a million; a crafted file declaring more is refused before it is read.
MAX_VARIABLE_VALUES = 1 << 24


def _read_variable(dataset: object, name: str, path: str | os.PathLike) -> np.ndarray:
    """A weight's values, after its declared shape and type were checked (nothing large is read first)."""
    if not isinstance(dataset, h5py.Dataset):
        raise ModelFileError(f"{path}: {name} is not a dataset")
    if not 1 <= dataset.ndim <= 4 or dataset.dtype.kind != "f":
        raise ModelFileError(f"{path}: {name} has shape {dataset.shape} {dataset.dtype}, not a float weight of "
                             "1 to 4 dimensions")
    if dataset.size > MAX_VARIABLE_VALUES:
        raise ModelFileError(f"{path}: {name} declares {dataset.size:,} values (shape {dataset.shape}), more than "
                             f"any DDNSR layer ({MAX_VARIABLE_VALUES:,} at most)")
    return np.asarray(dataset)


def read_keras_h5(path: str | os.PathLike) -> tuple[dict, list[KerasVariable]]:
    """Return (model_config, variables in file order: layer_names, then each layer's weight_names)."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with f:
        try:
            config = json.loads(_s(f.attrs["model_config"])) if "model_config" in f.attrs else {}
            root = f["model_weights"] if "model_weights" in f else f
            variables = []
            for layer in (_s(n) for n in root.attrs["layer_names"]):
                group = root[layer]
                for wname in (_s(n) for n in group.attrs.get("weight_names", [])):
                    variables.append(KerasVariable(layer, wname, _read_variable(group[wname], wname, path)))
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: not a Keras model file ({type(exc).__name__}: {exc})") from exc
    if not variables:
        raise ModelFileError(f"{path}: the Keras file holds no weights")
    return config, variables


_COUNTER = re.compile(r"(?:^|/)(conv2d|dense|batch_normalization)(?:_(\d+))?/")


def _creation_key(var: KerasVariable) -> tuple[int, int]:
    """(layer counter, position) for sorting layers back into creation order."""
    m = list(_COUNTER.finditer(var.name))
    return (int(m[-1].group(2) or 0) if m else 0, 0)


def _group_layers(variables: list[KerasVariable]) -> list[list[KerasVariable]]:
    """Group variables into leaf layers (kernel + bias, or the four BN variables), in file order."""
    groups: dict[str, list[KerasVariable]] = {}
    for v in variables:
        groups.setdefault(v.name.rsplit("/", 1)[0], []).append(v)
    return list(groups.values())


def _classes(config: dict) -> list[str]:
    layers = config.get("config", {}).get("layers", [])
    return [layer.get("class_name", "") for layer in layers]


def _leaf_targets(module: nn.Module) -> list[tuple[str, list[str]]]:
    """Our leaf layers in definition order, each with its tensors in Keras order."""
    out = []
    for name, m in module.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            out.append((name, ["weight", "bias", "running_mean", "running_var"]))
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            out.append((name, ["weight", "bias"] if m.bias is not None else ["weight"]))
    return out


def build_from_keras(config: dict, variables: list[KerasVariable], path: str = "") -> nn.Module:
    """Recognise the network in a Keras file and build ours with the same configuration."""
    classes = _classes(config)
    layers = _group_layers(variables)
    kernels = [g[0].value for g in layers if g[0].name.endswith("kernel:0")]
    if "RRDB" in classes or any("dense_block" in v.name for v in variables):
        rrdb_layers = sorted({v.layer for v in variables if "dense_block" in v.name})
        num_block = len(rrdb_layers)
        first = kernels[0]
        grow = next(v.value.shape[-1] for v in variables if "dense_block" in v.name and v.name.endswith("kernel:0"))
        convs_after = len(layers) - 1 - 15 * num_block  # conv_body, ups, conv_hr, conv_last
        num_up = convs_after - 3
        return RRDBNet(first.shape[2], kernels[-1].shape[-1], first.shape[-1], num_block, grow, 2**num_up)
    if "ResBlock" in classes or any(v.layer.startswith("res_block") for v in variables):
        res_blocks = len({v.layer for v in variables if v.layer.startswith("res_block")})
        down_layers = sum(1 for k in kernels if k.shape[0] == 4)
        return DegradationNet(kernels[0].shape[-1], down_layers, res_blocks, "dual")
    if "Dense" in classes or any(v.layer.startswith("dense") for v in variables):
        filters = kernels[0].shape[-1]
        blocks = sum(1 for k in kernels if k.shape[0] == 4)
        dense_in = next(g[0].value.shape[0] for g in layers if g[0].layer.startswith("dense"))
        side = int(round((dense_in / (filters * 2 ** (blocks - 1))) ** 0.5))
        return VGGStyleDiscriminator(filters, blocks, side * 2**blocks)
    if kernels and all(k.shape[0] == 4 for k in kernels):
        return PatchGANDiscriminator(kernels[0].shape[-1])
    raise ModelFileError(f"{path}: not a DDNSR network (no RRDB, ResBlock, dense or PatchGAN layers found)")


def keras_mapping(module: nn.Module, variables: list[KerasVariable], path: str = "") -> list[tuple[str, KerasVariable]]:
    """Pair each Keras variable with the name of our tensor (``'body.0.rdb1.conv1.weight'``)."""
    layers = _group_layers(variables)
    if isinstance(module, (RRDBNet, DegradationNet)):
        layers = sorted(layers, key=lambda g: _creation_key(g[0]))
    targets = _leaf_targets(module)
    if len(layers) != len(targets):
        raise ModelFileError(f"{path}: {len(layers)} weighted layers, expected {len(targets)} for "
                             f"{type(module).__name__}")
    pairs = []
    for group, (mod_name, tensors) in zip(layers, targets, strict=True):
        if len(group) != len(tensors):
            raise ModelFileError(f"{path}: layer {group[0].name} has {len(group)} variables, expected {len(tensors)}")
        for var, t in zip(group, tensors, strict=True):
            pairs.append((f"{mod_name}.{t}" if mod_name else t, var))
    return pairs


def _to_torch(value: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    if t.ndim == 4:
        return t.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
    if t.ndim == 2:
        return t.t().contiguous()  # Dense: in x out -> out x in
    return t


def load_keras_into(module: nn.Module, variables: list[KerasVariable], path: str = "") -> nn.Module:
    """Copy the Keras variables into ``module`` (shapes checked); returns the module."""
    state = module.state_dict()
    new = {}
    for name, var in keras_mapping(module, variables, path):
        t = _to_torch(var.value)
        if name not in state or state[name].shape != t.shape:
            want = tuple(state[name].shape) if name in state else None
            raise ModelFileError(f"{path}: {var.name} has shape {tuple(var.value.shape)}, does not fit {name} {want}")
        new[name] = t
    module.load_state_dict(new, strict=False)
    return module


def load_keras_model(path: str | os.PathLike) -> nn.Module:
    """An official DDNSR ``.h5`` (R, D or a discriminator) as our network, in eval mode."""
    config, variables = read_keras_h5(path)
    module = build_from_keras(config, variables, str(path))
    return load_keras_into(module, variables, str(path)).eval()


def keras_trainable_order(module: nn.Module, path: str | os.PathLike) -> list[str]:
    """Our parameter names in the order of the Keras model's ``trainable_variables`` (the file's
    layer order, BatchNorm moving statistics left out): how the official code lists gradients."""
    _, variables = read_keras_h5(path)
    by_var = {id(v): name for name, v in keras_mapping(module, variables, str(path))}
    params = dict(module.named_parameters())
    return [by_var[id(v)] for v in variables if by_var[id(v)] in params]

"""The speed benchmark measures what it says (benchmarks/infer.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ddnsr.nets import RRDBNet


def load_benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "infer.py"
    spec = importlib.util.spec_from_file_location("bench_infer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_eager_baseline_keeps_plain_weights_beside_the_torch_default():
    # the torch default converts its network to channels_last in place; built on a shared module, that
    # made the "eager fp32" baseline run channels_last weights (a third faster on an AVX2 EPYC)
    bench = load_benchmark()
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    fast = bench._build(net, "torch")
    eager = bench._build(net, "eager")
    assert fast._engine.net.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    for module in (eager._engine.net, net):
        assert module.conv_first.weight.is_contiguous()

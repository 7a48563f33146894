"""Run an RRDBNet weights file through spandrel (in a venv of its own) and save what it gives.

    python tests/spandrel_check.py MODEL INPUT.npy OUTPUT.npz

Used by ``tests/test_spandrel.py``; imports nothing from ddnsr (ddnsr is not installed in that venv).
MODEL is loaded with ``spandrel.ModelLoader().load_from_file``; INPUT is a float32 1x3xHxW array in
[0, 1]. OUTPUT gets ``raw`` (the bare network's output, 1x3x4Hx4W float32, unclipped) and ``clamped``
(the descriptor's call, which clamps to [0, 1]). One JSON line on stdout describes the loaded model.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model_path, input_path, output_path = argv
    import spandrel

    torch.set_num_threads(1)
    descriptor = spandrel.ModelLoader().load_from_file(model_path)
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        print(f"not an image model: {type(descriptor).__name__}", file=sys.stderr)
        return 1
    descriptor.eval()
    image = torch.from_numpy(np.load(input_path)).float()
    with torch.no_grad():
        raw = descriptor.model(image)
        clamped = descriptor(image)
    np.savez(output_path, raw=raw.numpy(), clamped=clamped.numpy())
    info = {
        "architecture": descriptor.architecture.id,
        "scale": descriptor.scale,
        "input_channels": descriptor.input_channels,
        "output_channels": descriptor.output_channels,
        "spandrel": getattr(spandrel, "__version__", "?"),
        "torch": torch.__version__,
    }
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

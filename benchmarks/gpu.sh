#!/usr/bin/env bash
# Every GPU measurement of the speed issue in one call (about 8 minutes on one H200), printing tables.
# Run from the repository root on the device machine, e.g. through the device tool:
#   bash benchmarks/gpu.sh 2>&1 | tee $OUT/gpu.log
# Needs: torch with CUDA, this package importable (PYTHONPATH=src), and for the training step the Keras
# VGG19 file ($DDNSR_VGG19). Every figure is a ratio against the plain eager fp32 pass measured in the
# same run; nothing here is reported unless this script printed it.
set -uo pipefail
export PYTHONPATH="${PYTHONPATH:-}:$PWD/src" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || exit 3
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== inference: full-size R (23x64) and the bundled size, 512 px inputs, eager fp32 vs the default path"
timeout 240 python benchmarks/infer.py --device cuda --models paper,cpu --size 512 --repeats 5

echo "== inference: ddnsr upscale on a 4000x3000 photo (automatic tiles from free GPU memory)"
timeout 120 python benchmarks/infer.py --device cuda --big --big-model paper --big-size 4000x3000

echo "== training: the paper configuration (batch 16), steps/s per variant"
timeout 180 python benchmarks/train_step.py --device cuda --config paper --steps 20 --warmup 5

#!/bin/bash
# Session 3, device call 1 of 3 (carry .gpu/c: vgg19_fp16.h5, records.json, smoke-records.json,
# data/{track1-train-source,smoke-hr}). The bundled models stay behind (taken out of the index for the calls)
# so that the data fits the 64 MiB a call may carry. Stages the files, then a CUDA smoke test of this
# session's options (R's colour term, the bicubic baseline with the cpu recipe, single input).
set -u
. docs/device-records/common.sh; export OMP_NUM_THREADS=2
stage .gpu/c
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch,sys;print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
T0=$(date +%s)
timeout 100 python3 tools/train_models.py --records $G/smoke-records.json --data-root $G/data --out /root/smoke \
  --preset smoke --only track1-cu5,track1-bicubic-cpu,track1-single-cu5 --parallel 3 --device cuda \
  > $OUT/smoke.txt 2>&1; echo "smoke rc $? in $(( $(date +%s) - T0 )) s"
grep -c '"finished": true' /root/smoke/summary.json

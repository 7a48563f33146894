#!/bin/bash
# Session 3, device call 2 of 3 (carry .gpu/d: x4plus.safetensors = realesrgan-x4plus.param converted with
# `ddnsr convert --half`, and the first part of data/clean-hr). Measures track1-ft's steps/s alone on the GPU
# (60 steps on the small smoke target), which sets its step count in call 3.
set -u
. docs/device-records/common.sh; export OMP_NUM_THREADS=2; need vgg19_fp16.h5
stage .gpu/d
T0=$(date +%s)
timeout 150 python3 -m ddnsr train --preset cpu --records $G/smoke-records.json --data-root $G/data \
  --run-dir /root/probe --init-r $G/x4plus.safetensors --psnr-warmup 0 --r-start 5 --color-weight-up 5 \
  --precision fp32 --steps 60 --log-every 10 --save-every 1000 --device cuda --quiet 2>&1 | tail -n 3
echo "probe $(( $(date +%s) - T0 )) s"
python3 - <<'PY' | tee $G/ft-sps.txt
import csv
rows = {int(r["step"]): float(r["time"]) for r in csv.DictReader(open("/root/probe/losses.csv"))}
print(f"{40 / (rows[60] - rows[20]):.2f}")
PY
ls $G/data/clean-hr | wc -l

#!/bin/bash
# Used in session 2 with the device tool: .gpu/a (carried) held vgg19_fp16.h5, records.json, smoke-records.json,
# data/{track1-train-source,track2-train-source,smoke-hr}; .gpu/b held data/{clean-hr,track2-target-cleanup}.
# (64 MiB travel per call, so the data went in two calls to the same warm machine.)
# device call 1: stage VGG19 (fp16) and the small data sets, CUDA smoke test of every table model, benchmark
set -u
. docs/device-records/common.sh; export OMP_NUM_THREADS=2
stage .gpu/a
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch,sys;print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
T0=$(date +%s)
timeout 100 python3 tools/train_models.py --records $G/smoke-records.json --data-root $G/data --out /root/smoke \
  --preset smoke --parallel 10 --large-steps 4 --device cuda > $OUT/smoke.txt 2>&1; echo "smoke rc $? in $(( $(date +%s) - T0 )) s"
for f in /root/smoke/*.log; do echo "== $f"; tail -n 2 $f; done >> $OUT/smoke.txt 2>&1
grep -c '"finished": true' /root/smoke/summary.json
timeout 60 python3 docs/device-records/pack.py /root/smoke /root/smokepack > $OUT/smokepack.txt 2>&1; echo "pack rc $?"; tail -n 3 $OUT/smokepack.txt
T0=$(date +%s)
timeout 170 python3 benchmarks/train_step.py --config paper --steps 20 --warmup 5 2>&1 | tee $G/bench-paper.txt
echo "paper bench $(( $(date +%s) - T0 )) s"
timeout 70 python3 benchmarks/train_step.py --config cpu --steps 40 --warmup 5 --no-compile 2>&1 | tee $G/bench-cpu.txt
cp $G/bench-*.txt $OUT/

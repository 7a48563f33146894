#!/bin/bash
# Session 3, second machine, call 2 of 2 (carry .gpu/f: data/clean-hr): track1-single at the cpu preset as it
# now is (R's colour term 20), fp32 (faster than bf16 autocast on the H200), stopped at the deadline if need be.
set -u
. docs/device-records/common.sh; export OMP_NUM_THREADS=4; need vgg19_fp16.h5
stage .gpu/f
python3 tools/train_models.py --records $G/records.json --data-root $G/data --out /root/runs --parallel 1 \
  --deadline-min ${DL:-3.2} --device cuda --only track1-single --extra "--precision fp32" 2>&1 | tee $OUT/train.txt
python3 docs/device-records/pack.py /root/runs /root/pack > $OUT/pack.txt 2>&1; echo "pack rc $?"
cp /root/runs/*.log /root/runs/summary.json /root/pack/ && cd /root && tar cf $OUT/pack.tar pack && ls -la $OUT

#!/bin/bash
# device call 2 (on the machine call 1 warmed): train every table model at once until the deadline, pack
set -u
. docs/device-records/common.sh; need vgg19_fp16.h5
stage .gpu/b
DL=${DL:-6}
SPS=$(grep "bf16 + channels_last " $G/bench-cpu.txt | grep -v compile | awk "{print \$4}"); SPS=${SPS:-20}
LS=$(python3 -c "print(max(2100, int(float('$SPS') * 0.3 * $DL * 60) // 100 * 100))")
echo "cpu preset alone: $SPS steps/s; deadline $DL min; track1-large steps $LS"
python3 tools/train_models.py --records $G/records.json --data-root $G/data --out /root/runs --parallel 10 \
  --deadline-min $DL --large-steps $LS --device cuda 2>&1 | tee $OUT/train.txt
nvidia-smi --query-gpu=name --format=csv,noheader
python3 docs/device-records/pack.py /root/runs /root/pack > $OUT/pack.txt 2>&1; echo "pack rc $?"
cp /root/runs/*.log /root/runs/summary.json /root/pack/
cd /root && tar cf pack.tar pack && split -b 15M pack.tar $OUT/pack.tar.part- && ls -la $OUT

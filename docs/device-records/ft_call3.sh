#!/bin/bash
# Session 3, device call 3 of 3 (carry .gpu/e: the rest of data/clean-hr). Trains track1-ft and this session's
# cpu-preset variants side by side until the deadline (DL minutes), packs float16 copies, and returns them in
# 15 MiB parts (at most 60 MiB; any part beyond stays in /root/parts for one more call to fetch).
set -u
. docs/device-records/common.sh; need x4plus.safetensors
stage .gpu/e
ls $G/data/clean-hr | wc -l
DL=${DL:-6.5}
SPS=$(cat $G/ft-sps.txt 2>/dev/null); SPS=${SPS:-5}
FT=$(python3 -c "print(min(2100, max(700, int(float('$SPS') * 0.5 * ($DL * 60 - 75)) // 100 * 100)))")
echo "track1-ft alone: $SPS steps/s; deadline $DL min; track1-ft steps $FT"
python3 tools/train_models.py --records $G/records.json --data-root $G/data --out /root/runs --parallel 8 \
  --deadline-min $DL --device cuda --ft-from $G/x4plus.safetensors --ft-steps $FT \
  --only track1-ft,track1-seed1,track1-cu5,track1-cu5-seed1,track1-cu20,track1-single-cpu,track1-single-cu5,track1-bicubic-cpu \
  2>&1 | tee $OUT/train.txt | grep -v '^ '
python3 docs/device-records/pack.py /root/runs /root/pack > $OUT/pack.txt 2>&1; echo "pack rc $?"
cp /root/runs/*.log /root/runs/summary.json /root/pack/
find /root/pack -name last-sample.png ! -path '*track1-ft*' -delete
mkdir -p /root/parts && cd /root && tar cf pack.tar pack && split -b 15M pack.tar /root/parts/pack.tar.part-
du -b /root/parts/*; n=0
for f in /root/parts/*; do n=$((n + 1)); [ $n -le 4 ] && cp $f $OUT/; done; ls $OUT

#!/bin/bash
# Session 3, second machine, call 1 of 2 (carry .gpu/c: VGG19 fp16, records, data/track1-train-source): stage.
set -u
. docs/device-records/common.sh; stage .gpu/c && ls $G $G/data && nvidia-smi --query-gpu=name --format=csv,noheader

#!/bin/bash
# Session 3, second machine, call 1 of 2 (carry .gpu/c: VGG19 fp16, records, data/track1-train-source): stage.
set -u
G=/root/g; mkdir -p $G && cp -r .gpu/c/. $G/ && ls $G $G/data && nvidia-smi --query-gpu=name --format=csv,noheader

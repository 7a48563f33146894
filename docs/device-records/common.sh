# Sourced by the device scripts: where the carried files are staged on the device machine (they stay there
# between calls to a warm machine), the environment of every run, and the two staging steps.
G=/root/g
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 DDNSR_OFFLINE=1 DDNSR_VGG19=$G/vgg19_fp16.h5 OMP_NUM_THREADS=1
# stage DIR: copy a carried folder's contents into $G (merging folders such as data/)
stage() { mkdir -p $G && cp -r "$1"/. $G/; }
# need FILE: stop (exit 3) when an earlier call's staged file is gone, i.e. the machine went cold
need() { test -f "$G/$1" || { echo "COLD: no $G/$1 (an earlier call's files are gone)"; exit 3; }; }

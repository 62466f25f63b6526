#!/usr/bin/env bash
# Train MobileNetV3-Large (160 px) and -Small (128 px) at once with the same `mobilefer train`
# arguments; both fit on one GPU. Used by train_fer2013.sh and train_ferplus.sh.
#   scripts/train_both.sh OUT_DIR EPOCHS_LARGE EPOCHS_SMALL TRAIN_ARGS...
# Logs: OUT_DIR/{large,small}.log; runs: OUT_DIR/{large,small}/. $MOBILEFER overrides the command.
set -euo pipefail
out=${1:?OUT_DIR}; epochs_large=${2:?EPOCHS_LARGE}; epochs_small=${3:?EPOCHS_SMALL}
shift 3
mobilefer=${MOBILEFER:-mobilefer}
mkdir -p "$out"
$mobilefer train "$@" --arch mobilenet_v3_large --img-size 160 --epochs "$epochs_large" \
    --out "$out/large" >"$out/large.log" 2>&1 &
$mobilefer train "$@" --arch mobilenet_v3_small --img-size 128 --epochs "$epochs_small" \
    --out "$out/small" >"$out/small.log" 2>&1 &
status=0
wait -n || status=$?
wait -n || status=$?
tail -n 3 "$out/large.log" "$out/small.log"
exit $status

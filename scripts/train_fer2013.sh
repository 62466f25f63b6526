#!/usr/bin/env bash
# Reproduce the bundled FER2013 models with `mobilefer train` alone (a GPU is strongly advised).
#   scripts/train_fer2013.sh DATA_DIR OUT_DIR [EPOCHS_LARGE] [EPOCHS_SMALL]
# DATA_DIR holds train.zip (FER2013 Training) and publictest.zip (PublicTest, used for model
# selection only). Both archs train at once on one GPU: they are small enough to share it.
set -euo pipefail
data=${1:?DATA_DIR with train.zip and publictest.zip}
out=${2:?OUT_DIR}
epochs_large=${3:-100}
epochs_small=${4:-120}
mobilefer=${MOBILEFER:-mobilefer}
common=(--data "$data/train.zip" --val-data "$data/publictest.zip" --select accuracy --tta flip
        --batch-size 256 --lr 2e-3 --weight-decay 0.05 --label-smoothing 0.1 --bn-momentum 0.01 --seed 0 ${EXTRA_ARGS:-})
mkdir -p "$out"
$mobilefer train "${common[@]}" --arch mobilenet_v3_large --img-size 160 --epochs "$epochs_large" \
    --out "$out/large" >"$out/large.log" 2>&1 &
$mobilefer train "${common[@]}" --arch mobilenet_v3_small --img-size 128 --epochs "$epochs_small" \
    --out "$out/small" >"$out/small.log" 2>&1 &
status=0
wait -n || status=$?
wait -n || status=$?
tail -n 3 "$out/large.log" "$out/small.log"
exit $status

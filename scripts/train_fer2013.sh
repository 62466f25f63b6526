#!/usr/bin/env bash
# Reproduce the bundled FER2013 models with `mobilefer train` alone (a GPU is strongly advised).
#   scripts/train_fer2013.sh DATA_DIR OUT_DIR [EPOCHS_LARGE] [EPOCHS_SMALL]
# DATA_DIR holds train.zip (FER2013 Training) and publictest.zip (PublicTest, used for model
# selection only). Both archs train at once on one GPU: they are small enough to share it.
set -euo pipefail
data=${1:?DATA_DIR with train.zip and publictest.zip}
out=${2:?OUT_DIR}
exec "$(dirname "$0")/train_both.sh" "$out" "${3:-100}" "${4:-120}" \
    --data "$data/train.zip" --val-data "$data/publictest.zip" --pretrained none --select accuracy --tta flip \
    --batch-size 256 --lr 2e-3 --weight-decay 0.05 --label-smoothing 0.1 --bn-momentum 0.01 --seed 0 ${EXTRA_ARGS:-}

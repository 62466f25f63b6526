#!/usr/bin/env bash
# Train the FER+ models (eight emotions) with `mobilefer train` alone. A GPU is needed for the
# real run; this recipe has NOT been run at full length yet (see MODEL_CARD.md).
#   scripts/train_ferplus.sh DATA_DIR OUT_DIR [EPOCHS_LARGE] [EPOCHS_SMALL]
# DATA_DIR holds ferplus_train.zip (FER+ Train) and ferplus_valid.zip (FER+ Valid, used for model
# selection only; the FER+ test split stays held out). Soft labels (the ten annotators' vote
# distribution), validation on majority labels. Both archs train at once on one GPU.
# EXTRA_ARGS is appended to both runs (e.g. "--limit 200 --val-limit 100 --device cpu" for a smoke run).
set -euo pipefail
data=${1:?DATA_DIR with ferplus_train.zip and ferplus_valid.zip}
out=${2:?OUT_DIR}
epochs_large=${3:-100}
epochs_small=${4:-120}
mobilefer=${MOBILEFER:-mobilefer}
common=(--data "$data/ferplus_train.zip" --val-data "$data/ferplus_valid.zip" --labels soft
        --select accuracy --tta flip --batch-size 256 --lr 2e-3 --weight-decay 0.05 --label-smoothing 0.0
        --bn-momentum 0.01 --seed 0 ${EXTRA_ARGS:-})
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

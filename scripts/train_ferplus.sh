#!/usr/bin/env bash
# Train the FER+ models (eight emotions) with `mobilefer train` alone. A GPU is needed for the
# real run; this recipe has NOT been run at full length yet (see MODEL_CARD.md).
#   scripts/train_ferplus.sh DATA_DIR OUT_DIR [EPOCHS_LARGE] [EPOCHS_SMALL]
# DATA_DIR holds ferplus_train.zip (FER+ Train) and ferplus_valid.zip (FER+ Valid, used for model
# selection only; the FER+ test split stays held out). Soft labels (the ten annotators' vote
# distribution), validation on majority labels. Both archs train at once on one GPU.
# EXTRA_ARGS is appended (e.g. "--limit 200 --val-limit 100 --device cpu" for a smoke run).
set -euo pipefail
data=${1:?DATA_DIR with ferplus_train.zip and ferplus_valid.zip}
out=${2:?OUT_DIR}
exec "$(dirname "$0")/train_both.sh" "$out" "${3:-100}" "${4:-120}" \
    --data "$data/ferplus_train.zip" --val-data "$data/ferplus_valid.zip" --labels soft \
    --select accuracy --tta flip --batch-size 256 --lr 2e-3 --weight-decay 0.05 --label-smoothing 0.0 \
    --bn-momentum 0.01 --seed 0 ${EXTRA_ARGS:-}

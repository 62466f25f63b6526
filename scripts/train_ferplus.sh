#!/usr/bin/env bash
# Make the bundled FER+ models (eight emotions) on a 2-core CPU with `mobilefer train` alone:
# each fine-tunes the bundled FER2013 model of its architecture on FER+ Train with the ten
# annotators' vote distribution (soft labels), picks its best epoch on FER+ Valid (majority
# labels, flip test-time augmentation) and keeps an average of its weights (--ema). Each then
# gets a second, shorter cycle at a larger input (Small 160 px instead of 128, Large 192 instead
# of 160), and each a third, trained for the camera's faces (--degrade 0.3: a third of the
# faces blurred, noised or lit badly). The Small gets three such cycles from its second, one of
# them also weighing each emotion by its count to the power -0.5 (--balance sqrt), one with half
# its faces degraded and half with a patch erased (--degrade 0.5 --erase 0.5), and the Small that
# ships is the average of these three (scripts/average_weights.py). The
# Large gets three more from its third, one balanced so, one at 224 px, one degraded and erased
# as the Small's, and the Large that ships is the average of its third and these three.
#   scripts/train_ferplus.sh DATA_DIR OUT_DIR
# DATA_DIR holds ferplus_train.zip and ferplus_valid.zip; the FER+ test split stays held out.
# The Small's cycles and the Large's run side by side, one thread each, niced (the machine
# is shared). Each writes its checkpoint every epoch: run the script again with the same OUT_DIR
# to resume an interrupted run exactly where it stopped (a finished one is kept). Logs:
# OUT_DIR/{small,small160,small160bal,small160deg,small160occ,large,large192,large192deg,large192bal,
# large224,large192occ}.log.
# At the end it writes the shipped files, OUT_DIR/ferplus_mobilenet_v3_{small,large}.onnx;
# copied into src/mobilefer/weights/, `python scripts/calibrate_bundled.py --prior-correction
# ferplus-small=0 --prior-correction ferplus-large=0.1` fits their temperature and writes their
# prior correction (MODEL_CARD.md).
# Environment: EPOCHS_SMALL (12), EPOCHS_SMALL160 (6), EPOCHS_SMALL160BAL (4),
# EPOCHS_SMALL160DEG (5), EPOCHS_SMALL160OCC (5), EPOCHS_LARGE (6), EPOCHS_LARGE192 (2), EPOCHS_LARGE192DEG (3),
# EPOCHS_LARGE192BAL (2), EPOCHS_LARGE224 (2), EPOCHS_LARGE192OCC (2),
# THREADS (1 each), EXTRA_ARGS (appended, e.g. "--limit 400 --val-limit 200" for a smoke run),
# MOBILEFER (the command), PYTHON (the interpreter of scripts/average_weights.py).
set -euo pipefail
data=${1:?DATA_DIR with ferplus_train.zip and ferplus_valid.zip}
out=${2:?OUT_DIR}
mobilefer=${MOBILEFER:-mobilefer}
mkdir -p "$out"

common=(--data "$data/ferplus_train.zip" --val-data "$data/ferplus_valid.zip" --labels soft
        --label-smoothing 0 --freeze-epochs 0 --batch-size 128 --ema 0.998 --tta flip
        --select accuracy --face-margin 0 --seed 0 --threads "${THREADS:-1}")

run() {  # NAME START_MODEL EPOCHS LR [MORE ARGS]: a finished run is left as it is
    local dir="$out/$1"
    if [[ -f "$dir/best.safetensors" && -f "$out/$1.done" ]]; then
        return 0
    elif [[ -f "$dir/config.json" ]]; then
        nice -n 10 $mobilefer train --resume "$dir" >>"$out/$1.log" 2>&1
    else
        # shellcheck disable=SC2086
        nice -n 10 $mobilefer train --pretrained "$2" --epochs "$3" --lr "$4" "${common[@]}" "${@:5}" \
            ${EXTRA_ARGS:-} --out "$dir" >"$out/$1.log" 2>&1
    fi
    touch "$out/$1.done"
}

# The Small: 12 epochs at 128 px from fer2013-small, then 6 at 160 px from its best epoch
# (a shorter warm-up, half the peak lr, another seed), then from that one's best 4 with its
# emotions balanced and a third of its faces degraded (epoch picked by macro-F1), 5 with a
# third of its faces degraded, and 5 with half degraded and half with a patch erased.
{ run small fer2013-small "${EPOCHS_SMALL:-12}" 1e-3 &&
  run small160 "$out/small/best.safetensors" "${EPOCHS_SMALL160:-6}" 5e-4 --img-size 160 \
      --warmup-epochs 0.5 --seed 2 &&
  run small160bal "$out/small160/best.safetensors" "${EPOCHS_SMALL160BAL:-4}" 3e-4 --img-size 160 \
      --warmup-epochs 0.5 --balance sqrt --degrade 0.3 --label-smoothing 0.1 --select macro_f1 \
      --seed 17 &&
  run small160deg "$out/small160/best.safetensors" "${EPOCHS_SMALL160DEG:-5}" 5e-4 --img-size 160 \
      --warmup-epochs 0.5 --degrade 0.3 --seed 5 &&
  run small160occ "$out/small160/best.safetensors" "${EPOCHS_SMALL160OCC:-5}" 5e-4 --img-size 160 \
      --warmup-epochs 0.5 --degrade 0.5 --erase 0.5 --seed 8; } &
# The Large: 6 epochs at 160 px from fer2013-large, then 2 at 192 px from its best epoch, then
# 3 from that one's best with a third of its faces degraded, then from that one's best 2 with its
# emotions balanced too (epoch picked by macro-F1), 2 at 224 px and 2 with half its faces
# degraded and half with a patch erased.
{ run large fer2013-large "${EPOCHS_LARGE:-6}" 6e-4 &&
  run large192 "$out/large/best.safetensors" "${EPOCHS_LARGE192:-2}" 2e-4 --img-size 192 \
      --warmup-epochs 0.25 --seed 2 &&
  run large192deg "$out/large192/best.safetensors" "${EPOCHS_LARGE192DEG:-3}" 3e-4 --degrade 0.3 \
      --warmup-epochs 0.5 --label-smoothing 0.1 --select macro_f1 --seed 7 &&
  run large192bal "$out/large192deg/best.safetensors" "${EPOCHS_LARGE192BAL:-2}" 2e-4 --balance sqrt \
      --degrade 0.3 --warmup-epochs 0.25 --label-smoothing 0.1 --select macro_f1 --seed 19 &&
  run large224 "$out/large192deg/best.safetensors" "${EPOCHS_LARGE224:-2}" 2e-4 --img-size 224 \
      --degrade 0.3 --warmup-epochs 0.25 --label-smoothing 0.1 --seed 13 &&
  run large192occ "$out/large192deg/best.safetensors" "${EPOCHS_LARGE192OCC:-2}" 2e-4 --degrade 0.5 \
      --erase 0.5 --warmup-epochs 0.25 --label-smoothing 0.1 --seed 23; } &
status=0
wait -n || status=$?
wait -n || status=$?
tail -n 3 "$out/small160occ.log" "$out/large192occ.log"
[[ $status == 0 ]] || exit $status
${PYTHON:-python} "$(dirname "$0")/average_weights.py" "$out/small160bal/best.safetensors" \
    "$out/small160deg/best.safetensors" "$out/small160occ/best.safetensors" --out "$out/small_averaged.safetensors"
${PYTHON:-python} "$(dirname "$0")/average_weights.py" "$out/large192deg/best.safetensors" \
    "$out/large192bal/best.safetensors" "$out/large224/best.safetensors" "$out/large192occ/best.safetensors" \
    --out "$out/large_averaged.safetensors"

# The files that ship (src/mobilefer/weights/): the averaged Small and Large as ONNX, checked
# against PyTorch on FER+ Valid faces; their BatchNorms kept, so fine-tuning makes their
# safetensors from them.
for arch in small large; do
    model=$out/${arch}_averaged.safetensors
    $mobilefer export --model "$model" --out "$out/ferplus_mobilenet_v3_$arch.onnx" \
        --calib-data "$data/ferplus_valid.zip"
done

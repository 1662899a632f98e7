#!/usr/bin/env bash
# A short real-data check with the shipped configs (configs/fmnist-*.cfg, scripts/demo.sh):
# import Fashion-MNIST (Debian's dataset-fashion-mnist), pretrain on classes 0-4 for 200 steps,
# fine-tune on classes 5-9 (convolutions frozen, new head) for 200 steps, 2 ranks each. The
# test accuracy (5000 samples each) must rise from chance (0.2) above sane floors: 0.7 after
# pretraining (about 0.8 seen), 0.85 after fine-tuning (about 0.93 seen); the frozen layers
# stay bit-identical to the pretrained model. Skipped (77) when the dataset is not installed.
# About 40 s on 2 cores.
# Usage (ctest): t_fmnist_demo.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
FMNIST=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -r "$FMNIST/train-images-idx3-ubyte.gz" ]; then
    echo "SKIP: $FMNIST/train-images-idx3-ubyte.gz not found" \
        "(Debian: dataset-fashion-mnist, or set FASHION_MNIST_DIR)"
    exit 77
fi
ft_init "$@"
FT_TIMEOUT=300

import() { # NAME SPLIT(train|t10k) CLASSES
    ft "import-$1" 0 data import-idx --images "$FMNIST/$2-images-idx3-ubyte.gz" \
        --labels "$FMNIST/$2-labels-idx1-ubyte.gz" --classes "$3" -o "$TMP/$1.h5"
    expect_ok "import-$1"
}
import pre-train train 0,1,2,3,4
import pre-test t10k 0,1,2,3,4
import ft-train train 5,6,7,8,9
import ft-test t10k 5,6,7,8,9
grep -qF "wrote 5000 samples" "$TMP/import-ft-test.out" ||
    fail "classes 5-9 of the test set: $(cat "$TMP/import-ft-test.out")"

# accuracy NAME MODEL DATA: the accuracy of `ftune eval --json` (2 ranks).
accuracy() {
    ft "$1" 2 eval "$2" --data "$3" --json
    expect_ok "$1"
    awk -F'"accuracy":' 'NF > 1 { split($2, a, ","); print a[1] }' "$TMP/$1.out"
}

# above NAME VALUE FLOOR
above() {
    if awk -v v="$2" -v f="$3" 'BEGIN { exit !(v + 0 > f + 0) }'; then
        note "ok: $1 accuracy $2 > $3"
    else
        fail "$1 accuracy '$2' is not above $3"
    fi
}

# No evaluation during training (data.eval = ""): the trainer would evaluate the 5000 test
# samples before the first step and at the end, and the time goes to `ftune eval` instead.
common=(--set log.progress=plain --set log.every=50 --set checkpoint.every=0
    --set eval.every=0 --set data.eval= --set train.max_steps=200)

ft pretrain 2 train "$SRC/configs/fmnist-pretrain.cfg" "${common[@]}" \
    --set "run.dir=$TMP/pre" --set "data.train=$TMP/pre-train.h5"
expect_ok pretrain
above pretrain "$(accuracy eval-pre "$TMP/pre/model.h5" "$TMP/pre-test.h5")" 0.7

ft finetune 2 train "$SRC/configs/fmnist-finetune.cfg" "${common[@]}" \
    --set "run.dir=$TMP/ft" --set "data.train=$TMP/ft-train.h5" \
    --set "pretrained.file=$TMP/pre/model.h5"
expect_ok finetune
above finetune "$(accuracy eval-ft "$TMP/ft/model.h5" "$TMP/ft-test.h5")" 0.85

# the shipped fine-tuning config freezes conv1 .. pool2
for p in conv1/weight conv1/bias conv2/weight conv2/bias; do
    h5_same "$TMP/pre/model.h5" "$TMP/ft/model.h5" "/model/$p"
done
h5_differ "$TMP/pre/model.h5" "$TMP/ft/model.h5" /model/fc1/weight

ft_done

#!/usr/bin/env bash
# Few-shot (data.k_shot = K): an epoch visits exactly K rows of every class, the same rows on
# every rank count (1 and 2 ranks give the same model), another seed draws other rows, the
# zero-shot baseline is evaluated before the first step and reported beside the final result,
# and a class with fewer than K rows is refused with the class and its count.
# Usage (ctest): t_kshot.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"
FT_TIMEOUT=120

make_data k.h5 200 16 4 51 0.6
write_mlp_cfg mlp.cfg "$TMP/unused" "$TMP/k.h5" "$TMP/k.h5"

for np in 1 2; do
    ft "k$np" "$np" train mlp.cfg --set "run.dir=$TMP/k$np" --set data.k_shot=5 \
        --set train.epochs=3 --set train.batch_size=8
    expect_ok "k$np"
    grep -q ' 20 training samples' "$TMP/k$np.out" ||
        fail "[k$np] expected 20 training samples (4 classes x 5): $(grep 'training samples' "$TMP/k$np.out")"
    # 20 rows, batch 8: 3 steps per epoch, 9 in all
    grep -q ' 9 steps' "$TMP/k$np.out" || fail "[k$np] expected 9 steps: $(grep -m1 steps "$TMP/k$np.out")"
    grep -q 'eval baseline' "$TMP/k$np.out" || fail "[k$np] no zero-shot baseline evaluation"
    grep -q 'baseline accuracy' "$TMP/k$np.out" ||
        fail "[k$np] the final report does not show the baseline beside the result"
done
h5_close "$TMP/k1/model.h5" "$TMP/k2/model.h5" /model

# every row (no k_shot) and another seed give other models
ft all 1 train mlp.cfg --set "run.dir=$TMP/all" --set train.epochs=3 --set train.batch_size=8
expect_ok all
grep -q ' 200 training samples' "$TMP/all.out" || fail "[all] expected 200 training samples"
ft seed 1 train mlp.cfg --set "run.dir=$TMP/seed" --set data.k_shot=5 --set run.seed=8 \
    --set train.epochs=3 --set train.batch_size=8
expect_ok seed
if h5diff -q "$TMP/k1/model.h5" "$TMP/seed/model.h5" /model >/dev/null 2>&1; then
    fail "another seed gave the same model"
fi

# too few rows in a class: 200 rows over 4 classes cannot give 100 per class
ft short 2 train mlp.cfg --set "run.dir=$TMP/short" --set data.k_shot=100
expect_fail short 2 "data.k_shot = 100" "class" "only"
ft neg 1 train mlp.cfg --set "run.dir=$TMP/neg" --set data.k_shot=-1
expect_fail neg 2 "k_shot"
ft_done

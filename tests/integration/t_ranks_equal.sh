#!/usr/bin/env bash
# The rank count does not change the training (README): the same config (batchnorm, dropout,
# shuffling) on 1, 2 and 3 ranks gives the same weights up to the order of floating-point sums:
# within 1e-5 relative, or 1e-6 absolute for values near zero (see h5_close in lib.sh).
# Runs cross epoch boundaries; batch 32 does not split evenly over 3 ranks; one variant
# accumulates gradients over 2 batches and clips the gradient norm. The evaluation at the end
# (accuracy, loss) must agree too.
# Usage (ctest): t_ranks_equal.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

STEPS=25
make_data d16.h5 300 16 4 31 0.5
make_data d36.h5 300 36 4 32 0.5
write_mlp_cfg mlp.cfg "$TMP/unused" "$TMP/d16.h5" "$TMP/d16.h5"
write_cnn_cfg cnn.cfg "$TMP/unused" "$TMP/d36.h5" "$TMP/d36.h5"

# variant NAME CFG ARGS...: trains on 1, 2 and 3 ranks and compares the results with 1 rank.
variant() {
    local name=$1 cfg=$2 np
    shift 2
    note "== $name"
    for np in 1 2 3; do
        ft "$name-np$np" "$np" train "$cfg" --set "run.dir=$TMP/$name-np$np" \
            --set "train.max_steps=$STEPS" "$@"
        expect_ok "$name-np$np"
        grep -qF "$np rank" "$TMP/$name-np$np.out" || fail "[$name-np$np] did not run on $np ranks"
    done
    for np in 2 3; do
        h5_close "$TMP/$name-np1/model.h5" "$TMP/$name-np$np/model.h5" /model
        # the final evaluation, as printed: "eval final step N loss L accuracy A ...": the
        # same accuracy, and the loss (4 decimals) within rounding
        local a b
        a=$(grep -m1 '^eval final' "$TMP/$name-np1.out" | awk '{print $6, $8}')
        b=$(grep -m1 '^eval final' "$TMP/$name-np$np.out" | awk '{print $6, $8}')
        if [ -z "$a" ] || ! awk -v a="$a" -v b="$b" 'BEGIN {
                split(a, x, " "); split(b, y, " ")
                d = x[1] - y[1]; if (d < 0) d = -d
                exit !(d <= 0.00011 && x[2] == y[2]) }'; then
            fail "[$name] final evaluation (loss accuracy) on 1 rank '$a', on $np ranks '$b'"
        fi
    done
}

variant mlp mlp.cfg
variant cnn cnn.cfg
variant mlp-accum mlp.cfg --set train.accum_steps=2 --set train.clip_grad_norm=0.5 \
    --set train.batch_size=20

ft_done

#!/usr/bin/env bash
# Non-finite loss or gradients (train.max_bad_steps), on 2 ranks:
#  - a dataset with one NaN value (row 40; made with tests/fuzz/h5forge): the step whose batch
#    holds it is skipped on every rank and counted (one warning, printed once), training
#    finishes (exit 0), the weights and the batchnorm running statistics stay finite;
#  - the same with +Inf;
#  - a learning rate so large that training diverges: after train.max_bad_steps = 3
#    consecutive skipped steps the run stops (exit 1) with a message and a checkpoint that holds
#    the last good weights (finite, checksum ok), and a resume with a sane lr finishes.
# Usage (ctest): t_fault_nonfinite.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"
FORGE=${BUILD:+$BUILD/fuzz/h5forge}
[ -n "$FORGE" ] && [ -x "$FORGE" ] || skip "tests/fuzz/h5forge not built (BUILD_DIR=$BUILD)"

make_data d.h5 192 16 4 21
"$FORGE" poison d.h5 nan.h5 40 nan || die "h5forge poison failed"
"$FORGE" poison d.h5 inf.h5 40 inf || die "h5forge poison failed"
write_mlp_cfg mlp.cfg "$TMP/unused" "$TMP/d.h5"
common=(--set train.epochs=2 --set log.every=1)

# no_nan FILE: every parameter of a model or checkpoint is finite (h5dump prints nan/inf)
no_nan() {
    local values
    values=$(h5dump -d /model/fc1/weight -d /model/bn1/running_mean -d /model/bn1/running_var \
        -d /model/fc2/weight "$1" | grep -E '^ *\([0-9]+' || true)
    [ -n "$values" ] || fail "no values dumped from $1"
    if printf '%s\n' "$values" | grep -iE '(^|[ ,:])-?(nan|inf)' >/dev/null; then
        fail "$1 holds NaN or Inf parameters"
    else
        note "ok: ${1##*/}: fc1, bn1 running statistics and fc2 are finite"
    fi
}

for kind in nan inf; do
    ft "$kind" 2 train mlp.cfg "${common[@]}" --set "run.dir=$TMP/$kind" --set "data.train=$TMP/$kind.h5"
    expect_ok "$kind"
    n=$(count_lines "$TMP/$kind.out" "non-finite loss or gradient, update skipped")
    # shuffled: row 40 is in one batch per epoch
    [ "$n" = 2 ] || fail "[$kind] $n skipped steps reported, expected 2 (one per epoch)"
    grep -q "(1 in a row, 2 in this run" "$TMP/$kind.out" || fail "[$kind] the skips are not counted"
    note "ok: [$kind] $(grep -m1 'update skipped' "$TMP/$kind.out")"
    grep -q "model written to" "$TMP/$kind.out" || fail "[$kind] the run did not finish"
    no_nan "$TMP/$kind/model.h5"
    ft "$kind-inspect" 0 inspect "$TMP/$kind/model.h5"
    expect_ok "$kind-inspect"
done

# divergence: lr 1e30 overflows after the first update
ft diverge 2 train mlp.cfg "${common[@]}" --set "run.dir=$TMP/div" --set train.optimizer.lr=1e30 \
    --set train.max_bad_steps=3 --set checkpoint.every=1000
expect_fail diverge 1 "3 consecutive steps had a non-finite loss or gradient" \
    "train.max_bad_steps = 3" "holds the last good state" "--resume"
n=$(count_lines "$TMP/diverge.err" "ftune train:")
[ "$n" = 1 ] || fail "[diverge] the message was printed $n times, expected once"
c=$(find "$TMP/div/checkpoints" -name 'ckpt-*.h5' | LC_ALL=C sort | tail -n 1)
[ -n "$c" ] || die "[diverge] no checkpoint written on the stop"
grep -qF "$c" "$TMP/diverge.err" || fail "[diverge] the message does not name $c"
ft div-inspect 0 inspect "$c"
expect_ok div-inspect
grep -q '^checksum .*: ok$' "$TMP/div-inspect.out" || fail "[diverge] checksum of $c not ok"
no_nan "$c"
step=$(basename "$c" .h5)
step=$((10#${step#ckpt-}))
ft div-resume 2 train mlp.cfg "${common[@]}" --set "run.dir=$TMP/div" --set train.optimizer.lr=0.01 \
    --set "train.max_steps=$((step + 4))" --resume
expect_ok div-resume
grep -qF "resuming from $c at step $step" "$TMP/div-resume.out" || fail "[diverge] not resumed from $c"
no_nan "$TMP/div/model.h5"
ft_done

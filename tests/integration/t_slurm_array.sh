#!/usr/bin/env bash
# A job-array sweep on a real single-node Slurm cluster: slurm/sweep-array.sbatch with three
# learning rates (SWEEP_LRS) and one freeze depth, --array=0-2, 2 ranks per task, fine-tuning a
# pretrained model. Checks: every array task COMPLETED 0:0 and logged its array task id;
# `ftune report SWEEP/*` prints one row per run (3) with the right learning rates and a final
# accuracy; --json gives the same three runs; a job that depends on the array
# (--dependency=afterany) runs the same report.
# Usage (ctest): t_slurm_array.sh FTUNE_BIN SOURCE_DIR BUILD_DIR (skips without Slurm/root).
set -euo pipefail
# shellcheck source=tests/integration/t_slurm_lib.bash
source "$(dirname "$0")/t_slurm_lib.bash"
sl_init "$@"
sl_need_slurm

make_data pre-train.h5 640 16 4 301 0.8
make_data pre-eval.h5 200 16 4 302 0.8
make_data ft-train.h5 640 16 4 303 0.6
make_data ft-eval.h5 200 16 4 304 0.6
write_pretrain_cfg pre.cfg "$TMP/pre" "$TMP/pre-train.h5" "$TMP/pre-eval.h5"
write_finetune_cfg ft.cfg "$TMP/unused" "$TMP/ft-train.h5" "$TMP/ft-eval.h5" "$TMP/pre/model.h5"
timeout 120 mpirun -np 2 "$FTUNE" train pre.cfg >pre.log 2>&1 || {
    tail -n 20 pre.log
    die "pretraining failed"
}

sl_cluster_start 17831 8 # three 2-rank tasks at once
export SWEEP_LRS="0.01 0.05 0.2" SWEEP_FREEZE="relu1" SWEEP_DIR=$TMP/sweep
job=$(sl_submit --array=0-2 -o "sweep-%A_%a.out" "$SRC/slurm/sweep-array.sbatch" ft.cfg)
rep=$(sl_submit --dependency="afterany:$job" -o report.out -e report.err \
    --wrap "$FTUNE report $TMP/sweep/*")
note "submitted array job $job (3 tasks) and report job $rep"
sl_wait "$rep" 150

for t in 0 1 2; do
    st=$(sl_state "${job}_$t")
    [ "$st" = "COMPLETED 0:0" ] || fail "array task ${job}_$t ended as '$st'"
    grep -qF "(array task $t)" "sweep-${job}_$t.out" ||
        fail "sweep-${job}_$t.out lacks '(array task $t)' in its slurm line"
done
[ "$FAILS" = 0 ] || die "array tasks failed"
note "ok: 3 array tasks COMPLETED 0:0 ($SECONDS s)"

"$FTUNE" report "$TMP"/sweep/* >report-direct.out 2>report-direct.err ||
    fail "ftune report exited with $?: $(cat report-direct.err)"
cat report-direct.out
rows=$(grep -c "^$TMP/sweep/lr" report-direct.out || true)
[ "$rows" = 3 ] || fail "ftune report printed $rows run rows, expected 3"
for lr in 0.01 0.05 0.2; do
    grep -E "^$TMP/sweep/lr$lr-freeze-relu1 +done +sgd +$lr +relu1 +32 +3 +60 +[01]\.[0-9]{4} " \
        report-direct.out >/dev/null || fail "no complete row for lr $lr"
done
"$FTUNE" report --json "$TMP"/sweep/* >report.json 2>/dev/null || fail "ftune report --json failed"
[ "$(grep -c '"status":"done"' report.json)" = 3 ] || fail "report --json has not 3 finished runs"
[ "$(grep -c '"accuracy":[01]' report.json)" = 3 ] || fail "report --json lacks 3 accuracies"
st=$(sl_state "$rep")
if [ "$st" = "COMPLETED 0:0" ] && diff -q report.out report-direct.out >/dev/null; then
    note "ok: the report job (afterany:$job) printed the same table"
else
    fail "report job $rep ended as '$st' or printed another table"
    cat report.out report.err
fi
sl_done

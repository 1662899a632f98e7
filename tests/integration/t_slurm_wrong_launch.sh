#!/usr/bin/env bash
# The launch check of mpi/slurm.c (rule in docs/cluster.md): an srun step with several tasks
# and no MPI launcher behind them (srun --mpi=none: N single-rank jobs) stops at once with exit
# code 2 and a message that says how to launch; legitimate launches are left alone.
#   1. Without Slurm (always runs): the environment of such a task, set by hand, for train and
#      eval; the other tasks stay quiet; the batch-script case (no step) is not an error.
#   2. With a real single-node Slurm cluster (skipped without root or the packages):
#      srun --mpi=none -n 2 fails fast (FAILED 2:0, one message, no run directory), while
#      mpirun -np 2 inside a 4-task allocation trains normally.
# Usage (ctest): t_slurm_wrong_launch.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/t_slurm_lib.bash
source "$(dirname "$0")/t_slurm_lib.bash"
sl_init "$@"

make_data train.h5 200 16 4 401 0.8
write_pretrain_cfg run.cfg "$TMP/run" "$TMP/train.h5" "$TMP/train.h5"

# ---- 1. a task of 'srun --mpi=none -n 2', simulated ------------------------------------------
task_env=(env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_RANK -u PMI_SIZE SLURM_JOB_ID=99
    SLURM_NTASKS=2 SLURM_STEP_ID=0 SLURM_STEP_NUM_TASKS=2)
check_wrong() { # NAME PROCID COMMAND...: exit 2; task 0 explains, the others are quiet
    local name=$1 procid=$2 rc=0
    shift 2
    timeout 30 "${task_env[@]}" SLURM_PROCID="$procid" "$FTUNE" "$@" >"$name.out" 2>"$name.err" ||
        rc=$?
    [ $rc = 2 ] || fail "[$name] exited with $rc, expected 2"
    if [ "$procid" = 0 ]; then
        for t in "srun started 2 tasks (SLURM_STEP_NUM_TASKS=2)" "srun --mpi=pmix" "mpirun"; do
            grep -qF -- "$t" "$name.err" || fail "[$name] stderr lacks '$t'"
        done
    else
        [ ! -s "$name.err" ] || fail "[$name] task $procid should leave the message to task 0"
    fi
    [ ! -e run ] || fail "[$name] created the run directory: it did not stop before starting"
    [ "$FAILS" != 0 ] || note "ok: [$name] exit 2$([ "$procid" = 0 ] && echo ": $(head -n1 "$name.err" | cut -c1-90)...")"
}
check_wrong train-task0 0 train run.cfg
check_wrong train-task1 1 train run.cfg
check_wrong eval-task0 0 eval "$TMP/none.h5" --data train.h5

# the batch script itself (no step id) running one process in a 2-task allocation: allowed
rc=0
timeout 60 env -u OMPI_COMM_WORLD_SIZE SLURM_JOB_ID=99 SLURM_NTASKS=2 SLURM_JOB_NUM_NODES=1 \
    SLURM_PROCID=0 "$FTUNE" train run.cfg --set train.max_steps=2 >batch.out 2>batch.err || rc=$?
if [ $rc = 0 ] && grep -qF "slurm: job 99, 1 node, 1 rank, restart 0" batch.out &&
    grep -qF "slurm: note: the allocation has 2 tasks but ftune train runs as 1 rank" batch.out; then
    note "ok: one process in the batch script trains, with a note"
else
    fail "a single process in the batch script: exit $rc (expected 0 with the slurm line and a note)"
    cat batch.out batch.err | tail -n 20
fi
rm -rf run

# ---- 2. the real thing ------------------------------------------------------------------------
rc=0
msg=$(bash "$SRC/scripts/local-slurm.sh" check 2>&1) || rc=$?
if [ $rc != 0 ]; then
    note "SKIP part 2 (real Slurm): ${msg#local-slurm: }"
    sl_done
fi
sl_cluster_start 17841
jw=$(sl_submit -n 2 -o wrong.out --wrap "srun --mpi=none $FTUNE train run.cfg")
jr=$(sl_submit -n 4 -o right.out --wrap \
    "mpirun -np 2 $FTUNE train run.cfg --set 'run.dir=\"$TMP/right\"'")
sl_wait "$jw" 60
sl_wait "$jr" 90
st=$(sl_state "$jw")
[ "$st" = "FAILED 2:0" ] || fail "srun --mpi=none job $jw ended as '$st', expected FAILED 2:0"
n=$(grep -c "srun started 2 tasks" wrong.out || true)
[ "$n" = 1 ] || fail "wrong.out has the explanation $n times, expected once (task 0)"
grep -qF "srun --mpi=pmix" wrong.out || fail "wrong.out does not say how to launch"
! grep -qF "training samples" wrong.out || fail "the srun --mpi=none job started training"
[ ! -e run ] || fail "the srun --mpi=none job created its run directory"
[ "$FAILS" != 0 ] || note "ok: srun --mpi=none -n 2: FAILED 2:0 with one explanation, nothing trained"
st=$(sl_state "$jr")
if [ "$st" = "COMPLETED 0:0" ] && grep -qF "slurm: job $jr, 1 node, 2 ranks" right.out &&
    [ -f right/model.h5 ]; then
    note "ok: mpirun -np 2 in a 4-task allocation trains"
else
    fail "mpirun -np 2 in a 4-task allocation: job $jr ended as '$st'"
    tail -n 20 right.out
fi
sl_done

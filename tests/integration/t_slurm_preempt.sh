#!/usr/bin/env bash
# Preemption on a real single-node Slurm cluster, with slurm/train-preemptible.sbatch (2 ranks):
#   A  mpirun launcher; USR1 to the batch script (scancel --signal=USR1 --batch, what
#      --signal=B:USR1@N does before a time limit); the script forwards it to mpirun.
#   B  srun --mpi=pmix launcher; SIGTERM straight to the ranks (scancel --signal=TERM, as
#      Slurm does to the tasks on preemption).
#   C  like A with MAX_RESTARTS=0: checkpoints, is not requeued, ends FAILED with exit 75.
# A and B: every rank stops at the same step boundary, one checkpoint is written, ftune exits
# with 75, the script requeues the job (scontrol requeue), the job starts again
# (SLURM_RESTART_COUNT=1), resumes with --resume auto and finishes; its final weights are
# bit-identical to an uninterrupted plain mpirun run (h5diff, exact).
# Usage (ctest): t_slurm_preempt.sh FTUNE_BIN SOURCE_DIR BUILD_DIR (skips without Slurm/root).
set -euo pipefail
# shellcheck source=tests/integration/t_slurm_lib.bash
source "$(dirname "$0")/t_slurm_lib.bash"
sl_init "$@"
sl_need_slurm

# 300 steps of an MLP big enough that a step takes a few milliseconds: the signal lands in the
# middle of training, however busy the machine is.
make_data train.h5 2400 64 4 201 0.5
cat >preempt.cfg <<EOF
run = { dir = "runs/unset"; seed = 5; };
data = { train = "$TMP/train.h5"; shuffle = true; };
model = { input = [64]; layers = (
  { name = "fc1"; type = "dense"; units = 1024; }, { name = "relu1"; type = "relu"; },
  { name = "fc2"; type = "dense"; units = 1024; }, { name = "relu2"; type = "relu"; },
  { name = "drop"; type = "dropout"; rate = 0.1; },
  { name = "fc3"; type = "dense"; units = 4; } ); };
train = { epochs = 2; batch_size = 16;
  optimizer = { type = "adamw"; lr = 0.001; weight_decay = 0.01; };
  schedule = { type = "cosine"; warmup_steps = 10; }; };
checkpoint = { every = 0; keep_last = 2; };
log = { every = 10; progress = "auto"; };
EOF

timeout 120 mpirun -np 2 "$FTUNE" train preempt.cfg --set 'run.dir="ref"' >ref.log 2>&1 || {
    tail -n 20 ref.log
    die "the uninterrupted reference run failed"
}
note "ok: uninterrupted reference run (plain mpirun -np 2) done ($SECONDS s)"

sl_cluster_start 17821 8 # three 2-rank jobs at once
submit() { # NAME ENV... : submits the preemptible template for run directory NAME
    local name=$1
    shift
    env "$@" sbatch --parsable -n 2 -o "$name.out" "$SRC/slurm/train-preemptible.sbatch" \
        preempt.cfg --set "run.dir=\"$name\""
}
ja=$(submit usr1-mpirun FTUNE_LAUNCHER=mpirun)
jb=$(submit term-srun FTUNE_LAUNCHER=srun)
jc=$(submit capped FTUNE_LAUNCHER=mpirun MAX_RESTARTS=0)
note "submitted $ja (USR1, mpirun), $jb (TERM, srun), $jc (USR1, MAX_RESTARTS=0)"

# each job gets its signal as soon as it has logged step 20
declare -A SIG=(["$ja"]="--signal=USR1 --batch" ["$jb"]="--signal=TERM" ["$jc"]="--signal=USR1 --batch")
declare -A OUT=(["$ja"]=usr1-mpirun.out ["$jb"]=term-srun.out ["$jc"]=capped.out)
t0=$SECONDS
while [ ${#SIG[@]} -gt 0 ]; do
    for j in "${!SIG[@]}"; do
        if grep -qF "step 20/" "${OUT[$j]}" 2>/dev/null; then
            # shellcheck disable=SC2086
            scancel ${SIG[$j]} "$j" || fail "scancel ${SIG[$j]} $j failed"
            unset "SIG[$j]"
        fi
    done
    [ $((SECONDS - t0)) -le 90 ] || die "jobs ${!SIG[*]} did not reach step 20 within 90 s"
    sleep 0.2
done
note "signals sent ($SECONDS s)"
for j in "$ja" "$jb" "$jc"; do
    sl_wait "$j" 150
done
note "jobs done ($SECONDS s)"

# requeued NAME JOB: stopped, checkpointed, requeued, resumed, finished, same weights.
requeued() {
    local name=$1 job=$2 out=$1.out st step
    st=$(sl_state "$job")
    [ "$st" = "COMPLETED 0:0" ] || fail "[$name] job $job ended as '$st', expected COMPLETED 0:0"
    step=$(sed -n 's/^stop requested (signal): checkpoint written at step \([0-9]*\);.*/\1/p' "$out" |
        head -n1)
    if [ -z "$step" ]; then
        fail "[$name] no 'stop requested (signal): checkpoint written' line"
    elif [ "$step" -ge 300 ] || [ "$step" -lt 20 ]; then
        fail "[$name] stopped at step $step, expected mid-training"
    fi
    grep -qF "ftune exited with 75" "$out" || fail "[$name] ftune did not exit with 75"
    grep -qF "requeueing job $job (restart 1 of" "$out" || fail "[$name] the job did not requeue"
    grep -qF "slurm: job $job, 1 node, 2 ranks, restart 1" "$out" ||
        fail "[$name] no second start with SLURM_RESTART_COUNT=1"
    grep -qF "resuming from $name/checkpoints/ckpt-$(printf %08d "${step:-0}").h5 at step $step" \
        "$out" || fail "[$name] did not resume from the step-$step checkpoint"
    [ "$(grep -c 'Restarts=1' <(scontrol show job "$job"))" = 1 ] ||
        fail "[$name] scontrol does not show Restarts=1"
    h5_same ref/model.h5 "$name/model.h5" /model && note "ok: [$name] stopped at step $step," \
        "requeued, resumed; final weights bit-identical"
}
requeued usr1-mpirun "$ja"
requeued term-srun "$jb"

st=$(sl_state "$jc")
if [ "$st" = "FAILED 75:0" ] && grep -qF "not requeued: 0 restarts reached" capped.out &&
    ls capped/checkpoints/ckpt-*.h5 >/dev/null 2>&1; then
    note "ok: [capped] checkpointed and not requeued (FAILED 75:0)"
else
    fail "[capped] job $jc ended as '$st', expected FAILED 75:0 with a checkpoint and no requeue"
    tail -n 5 capped.out
fi
sl_done

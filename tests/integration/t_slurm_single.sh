#!/usr/bin/env bash
# A real single-node Slurm cluster (munged + slurmctld + slurmd, started and stopped here):
# the demo's two stages (pretrain, then fine-tune with frozen layers and a new head) on small
# synthetic data, submitted with slurm/train-single.sbatch, 2 ranks each, the fine-tune job
# depending on the pretrain job. Checks:
#   - both jobs COMPLETED 0:0; the log names the Slurm job ("slurm: job J, 1 node, 2 ranks,
#     restart 0") and has plain progress lines (no terminal control characters);
#   - the models are bit-identical to a plain `mpirun -np 2` run of the same configs;
#   - the data directory is read-only for the job (it runs as 'nobody'; the run directories
#     are its own), as on a cluster file system;
#   - `ftune eval` under `srun --mpi=pmix` with 2 ranks: JSON on stdout, the Slurm line on
#     stderr, the same accuracy as the training run reported;
#   - --cpus-per-task=2 gives 2 BLAS threads per rank.
# Usage (ctest): t_slurm_single.sh FTUNE_BIN SOURCE_DIR BUILD_DIR. Skips (77) without root or
# the slurm-wlm and munge packages.
set -euo pipefail
# shellcheck source=tests/integration/t_slurm_lib.bash
source "$(dirname "$0")/t_slurm_lib.bash"
sl_init "$@"
sl_need_slurm

# ---- data (read-only) and configs -----------------------------------------------------------
mkdir data
make_data data/pre-train.h5 640 16 4 101 0.8
make_data data/pre-eval.h5 200 16 4 102 0.8
make_data data/ft-train.h5 640 16 4 103 0.6
make_data data/ft-eval.h5 200 16 4 104 0.6
rm -f data/*.log
chmod 444 data/*.h5
chmod 555 data
write_pretrain_cfg pre.cfg runs/pre "$TMP/data/pre-train.h5" "$TMP/data/pre-eval.h5"
write_finetune_cfg ft.cfg runs/ft "$TMP/data/ft-train.h5" "$TMP/data/ft-eval.h5" runs/pre/model.h5

# ---- the reference: plain mpirun, 2 ranks ---------------------------------------------------
mkdir ref
(
    cd ref
    for stage in pre ft; do
        timeout 120 mpirun -np 2 "$FTUNE" train "../$stage.cfg" >"../ref-$stage.log" 2>&1 ||
            die "reference run $stage failed (see below)"
    done
) || {
    tail -n 20 ref-*.log
    die "reference runs failed"
}
note "ok: reference runs (plain mpirun -np 2) done ($SECONDS s)"

# ---- the jobs ---------------------------------------------------------------------------------
# The jobs run as 'nobody' when it can reach the binary: then the read-only data is really
# read-only for them (root ignores permission bits).
mkdir job
AS=()
if id nobody >/dev/null 2>&1 && setpriv --reuid=nobody --regid=nogroup --clear-groups \
    sh -c 'test -x "$1" && test -r "$2"' sh "$FTUNE" "$TMP/data/ft-eval.h5" 2>/dev/null; then
    chown nobody job
    AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    note "jobs run as nobody; the data directory is read-only for them"
else
    note "note: 'nobody' cannot run $FTUNE or read $TMP; the jobs run as root (read-only data" \
        "not enforced)"
fi
sl_cluster_start 17811
cd job
j1=$("${AS[@]}" sbatch --parsable -n 2 -o pre-%j.out "$SRC/slurm/train-single.sbatch" ../pre.cfg)
j2=$("${AS[@]}" sbatch --parsable -n 2 -o ft-%j.out --dependency="afterok:$j1" \
    "$SRC/slurm/train-single.sbatch" ../ft.cfg)
note "submitted pretrain job $j1 and fine-tune job $j2 (after $j1)"
sl_wait "$j2" 150
for j in "$j1" "$j2"; do
    st=$(sl_state "$j")
    [ "$st" = "COMPLETED 0:0" ] || fail "job $j ended as '$st', expected COMPLETED 0:0"
done
[ "$FAILS" = 0 ] || die "jobs failed"
note "ok: both jobs COMPLETED 0:0 ($SECONDS s)"

out=ft-$j2.out
grep -qF "slurm: job $j2, 1 node, 2 ranks, restart 0" "$out" ||
    fail "$out lacks 'slurm: job $j2, 1 node, 2 ranks, restart 0'"
grep -qE '^epoch [0-9]+ step [0-9]+/[0-9]+ +loss' "$out" || fail "$out has no plain progress lines"
if grep -q $'\r\|\033' "$out"; then fail "$out has terminal control characters"; fi
grep -q '"when":"final"' runs/ft/metrics.jsonl || fail "runs/ft/metrics.jsonl has no final eval"

h5_same ../ref/runs/pre/model.h5 runs/pre/model.h5 /model
h5_same ../ref/runs/ft/model.h5 runs/ft/model.h5 /model

# ---- ftune eval through srun --mpi=pmix ------------------------------------------------------
j3=$("${AS[@]}" sbatch --parsable -n 2 -o eval-%j.out -e eval-%j.err --wrap \
    "srun --mpi=pmix $FTUNE eval runs/ft/model.h5 --data $TMP/data/ft-eval.h5 --json")
# ranks x threads follow --cpus-per-task (the template exports OPENBLAS_NUM_THREADS)
j4=$("${AS[@]}" sbatch --parsable -n 1 -c 2 -o threads-%j.out "$SRC/slurm/train-single.sbatch" \
    ../pre.cfg --set 'run.dir="runs/threads"' --set train.max_steps=2)
sl_wait "$j3" 60
sl_wait "$j4" 60
if grep -qF "1 rank x 2 BLAS threads" "threads-$j4.out" &&
    grep -qF "slurm: job $j4, 1 node, 1 rank, restart 0, 2 CPUs per task" "threads-$j4.out"; then
    note "ok: --cpus-per-task=2 gives 2 BLAS threads per rank"
else
    fail "job $j4 (-n 1 -c 2) does not report 1 rank x 2 BLAS threads"
    tail -n 5 "threads-$j4.out"
fi
st=$(sl_state "$j3")
[ "$st" = "COMPLETED 0:0" ] || fail "eval job $j3 ended as '$st'"
grep -qF "slurm: job $j3, 1 node, 2 ranks" "eval-$j3.err" || fail "eval-$j3.err lacks the slurm line"
acc=$(grep -o '"accuracy":[0-9.e+-]*' "eval-$j3.out" | head -n1 | cut -d: -f2)
want=$(grep '"when":"final"' runs/ft/metrics.jsonl | grep -o '"accuracy":[0-9.e+-]*' | cut -d: -f2)
if [ -n "$acc" ] && [ "$acc" = "$want" ]; then
    note "ok: srun --mpi=pmix eval on 2 ranks: accuracy $acc, as in training"
else
    fail "eval accuracy '$acc' (eval-$j3.out) differs from the final training eval '$want'"
fi
sl_done

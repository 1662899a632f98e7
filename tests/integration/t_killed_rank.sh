#!/usr/bin/env bash
# A rank dies (SIGKILL) in the middle of a 2-rank training: mpirun must end the job with a
# non-zero status within 30 s (the surviving rank must not hang in a collective), the newest
# checkpoint on disk must be intact (`ftune inspect` verifies its checksum) and
# `ftune train --resume` must finish the run from it. Once killing rank 1 (rank 0 then waits in
# an all-reduce), once killing rank 0 (which writes the checkpoints).
# Usage (ctest): t_killed_rank.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

make_data d36.h5 300 36 4 61 0.6
write_cnn_cfg cnn.cfg "$TMP/unused" "$TMP/d36.h5"

# rank_pid PARENT RANK: the pid of the rank among PARENT's children (Open MPI puts the rank in
# each process's environment; MPICH/Hydra sets PMI_RANK).
rank_pid() {
    local p
    for p in $(pgrep -P "$1" || true); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxE "(OMPI_COMM_WORLD_RANK|PMI_RANK)=$2"; then
            echo "$p"
            return 0
        fi
    done
    return 0
}

# newest_ckpt DIR: the newest checkpoints/ckpt-*.h5 in a run directory ("" if none).
newest_ckpt() {
    find "$1/checkpoints" -maxdepth 1 -name 'ckpt-*.h5' 2>/dev/null | LC_ALL=C sort | tail -n 1
}

scenario() { # NAME RANK-TO-KILL
    local name=$1 victim=$2 dir=$TMP/$1 i
    note "== $name: kill -9 rank $victim"
    mpi_cmd 2
    # A long run (an epoch is 10 steps, thousands of steps a second); checkpoints every 200
    # steps, the last 2 kept. timeout is only a safety net for the whole job.
    timeout -k 5 300 "${MPI_CMD[@]}" "$FTUNE" train cnn.cfg --set "run.dir=$dir" \
        --set train.epochs=1000000 --set checkpoint.every=200 --set checkpoint.keep_last=2 \
        --set log.every=100000 >"$TMP/$name.out" 2>"$TMP/$name.err" &
    local job=$!
    BG_PIDS+=("$job")

    # wait for two checkpoints, so that the job is well into training
    for ((i = 0; i < 600; i++)); do
        [ "$(find "$dir/checkpoints" -maxdepth 1 -name 'ckpt-*.h5' 2>/dev/null | wc -l)" -ge 2 ] &&
            break
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$job" 2>/dev/null || {
        show "$name"
        die "[$name] the training ended before it could be killed"
    }
    [ -n "$(newest_ckpt "$dir")" ] || die "[$name] no checkpoint after 60 s"

    # timeout -> mpirun (scripts/mpirun.sh execs it) -> the ranks
    local mpirun pid other
    mpirun=$(pgrep -P "$job" | head -n 1)
    pid=$(rank_pid "$mpirun" "$victim")
    other=$(rank_pid "$mpirun" $((1 - victim)))
    if [ -z "$pid" ] || [ -z "$other" ]; then
        die "[$name] cannot find the ranks (mpirun $mpirun: $(pgrep -P "$mpirun" | xargs))"
    fi
    kill -9 "$pid"

    local t0=$SECONDS rc=0
    while kill -0 "$job" 2>/dev/null && ((SECONDS - t0 < 30)); do
        sleep 0.2
    done
    if kill -0 "$job" 2>/dev/null; then
        fail "[$name] mpirun still running 30 s after rank $victim was killed (hang)"
        kill_tree "$job"
    fi
    wait "$job" || rc=$?
    note "[$name] mpirun exited with $rc after $((SECONDS - t0)) s"
    [ "$rc" != 0 ] || fail "[$name] mpirun exited with 0 after a rank was killed"
    [ "$rc" != 124 ] || fail "[$name] the job hung until the safety timeout"
    # mpirun kills the other ranks as it exits; give the kernel a moment to reap them
    for ((i = 0; i < 50; i++)); do
        kill -0 "$other" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$other" 2>/dev/null; then
        ps -o pid,ppid,stat,etime,cmd -p "$other" || true
        fail "[$name] the surviving rank (pid $other) is still running"
        kill -9 "$other" 2>/dev/null || true
    fi

    # the newest checkpoint on disk is complete
    local c step
    c=$(newest_ckpt "$dir")
    [ -n "$c" ] || die "[$name] no checkpoint left"
    ft "$name-inspect" 0 inspect "$c"
    expect_ok "$name-inspect"
    grep -q '^checksum .*: ok$' "$TMP/$name-inspect.out" ||
        fail "[$name] ftune inspect does not report an ok checksum for $c"
    step=$(basename "$c" .h5)
    step=$((10#${step#ckpt-}))

    # and the run resumes from it: 30 more steps
    ft "$name-resume" 2 train cnn.cfg --set "run.dir=$dir" --set "train.max_steps=$((step + 30))" \
        --set train.epochs=1000000 --set checkpoint.every=200 --set checkpoint.keep_last=2 \
        --resume
    expect_ok "$name-resume"
    grep -qF "resuming from $c at step $step" "$TMP/$name-resume.out" ||
        fail "[$name] did not resume from $c: $(grep -m1 resum "$TMP/$name-resume.out" || true)"
    [ -f "$dir/model.h5" ] || fail "[$name] no model.h5 after the resumed run"
    [ -f "$dir/$(ckpt $((step + 30)))" ] || fail "[$name] no final checkpoint at step $((step + 30))"
}

scenario kill-rank1 1
scenario kill-rank0 0

ft_done

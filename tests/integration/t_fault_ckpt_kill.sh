#!/usr/bin/env bash
# kill -9 of rank 0 WHILE it writes a checkpoint (2 ranks). Checkpoints are made large (a
# 2048x2048 dense layer with SGD momentum: ~33 MB each) and written every step; the test polls
# for the temporary file (checkpoints/ckpt-*.h5.tmp.<pid>) and kills rank 0 as soon as it
# appears. Then: the job ends (no hang), the half-written file is never taken for a checkpoint
# (`--resume` skips it: only complete ckpt-*.h5 files count, and each is verified), the previous
# checkpoint is intact (checksum ok) and `--resume` finishes the run from it.
# (A rank killed between checkpoints: t_killed_rank.sh.)
# Usage (ctest): t_fault_ckpt_kill.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

make_data d.h5 256 16 4 5
cat >big.cfg <<EOF2
run = { dir = "$TMP/run"; seed = 1; };
data = { train = "$TMP/d.h5"; };
model = { input = [16]; layers = (
  { name = "fc1"; type = "dense"; units = 2048; },
  { name = "relu1"; type = "relu"; },
  { name = "fc2"; type = "dense"; units = 2048; },
  { name = "relu2"; type = "relu"; },
  { name = "fc3"; type = "dense"; units = 4; }
); };
train = { epochs = 1000; batch_size = 16; optimizer = { type = "sgd"; lr = 0.001; momentum = 0.9; }; };
checkpoint = { every = 1; keep_last = 2; };
log = { every = 1000; progress = "plain"; };
EOF2

rank0_pid() { # MPIRUN_PID
    local p
    for p in $(pgrep -P "$1" || true); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxE "(OMPI_COMM_WORLD_RANK|PMI_RANK)=0"; then
            echo "$p"
            return 0
        fi
    done
}

killed_mid_write=0
for attempt in 1 2 3; do
    rm -rf "$TMP/run"
    mpi_cmd 2
    timeout -k 5 300 "${MPI_CMD[@]}" "$FTUNE" train big.cfg >"$TMP/job.out" 2>"$TMP/job.err" &
    job=$!
    BG_PIDS+=("$job")
    # wait for two complete checkpoints, then for the next write to start
    tmpfile=
    for ((i = 0; i < 6000; i++)); do
        n=$(find "$TMP/run/checkpoints" -maxdepth 1 -name 'ckpt-*.h5' 2>/dev/null | wc -l || true)
        if [ "$n" -ge 2 ]; then
            tmpfile=$(find "$TMP/run/checkpoints" -maxdepth 1 -name 'ckpt-*.h5.tmp.*' 2>/dev/null | head -n 1 || true)
            [ -n "$tmpfile" ] && break
        fi
        kill -0 "$job" 2>/dev/null || break
        sleep 0.01
    done
    kill -0 "$job" 2>/dev/null || { show job; die "the training ended before it could be killed"; }
    [ -n "$tmpfile" ] || die "no checkpoint write seen in 60 s"
    mpirun=$(pgrep -P "$job" | head -n 1)
    victim=$(rank0_pid "$mpirun")
    [ -n "$victim" ] || die "cannot find rank 0"
    kill -9 "$victim"
    t0=$SECONDS
    rc=0
    while kill -0 "$job" 2>/dev/null && ((SECONDS - t0 < 30)); do sleep 0.2; done
    if kill -0 "$job" 2>/dev/null; then
        fail "mpirun still running 30 s after rank 0 was killed (hang)"
        kill_tree "$job"
    fi
    wait "$job" || rc=$?
    note "attempt $attempt: rank 0 killed while ${tmpfile##*/} was being written; mpirun exited" \
        "with $rc after $((SECONDS - t0)) s"
    [ "$rc" != 0 ] || fail "mpirun exited with 0 after rank 0 was killed"
    if [ -e "$tmpfile" ]; then
        killed_mid_write=1
        break
    fi
    note "the write had finished before the kill landed; again"
done
[ "$killed_mid_write" = 1 ] || die "could not kill rank 0 in the middle of a checkpoint write"
note "ok: left behind: $(ls -s "$tmpfile" | awk '{print $1}') KiB in ${tmpfile##*/}"

# the half-written file is not a checkpoint: it does not open as one
ft tmp-inspect 0 inspect "$tmpfile"
[ "$RC" != 0 ] || fail "the half-written $tmpfile inspects as a valid file"

# the newest complete checkpoint is intact
newest=$(find "$TMP/run/checkpoints" -maxdepth 1 -name 'ckpt-*.h5' | LC_ALL=C sort | tail -n 1)
[ -n "$newest" ] || die "no complete checkpoint left"
ft inspect 0 inspect "$newest"
expect_ok inspect
grep -q '^checksum .*: ok$' "$TMP/inspect.out" || fail "checksum of $newest not ok"
step=$(basename "$newest" .h5)
step=$((10#${step#ckpt-}))

# --resume takes it (not the .tmp file) and finishes the run
ft resume 2 train big.cfg --set "train.max_steps=$((step + 3))" --resume
expect_ok resume
grep -qF "resuming from $newest at step $step" "$TMP/resume.out" ||
    fail "did not resume from $newest: $(grep -m1 resum "$TMP/resume.out" || true)"
[ -f "$TMP/run/model.h5" ] || fail "no model.h5 after the resumed run"
[ -f "$TMP/run/$(ckpt $((step + 3)))" ] || fail "no checkpoint at step $((step + 3))"
ft_done

#!/usr/bin/env bash
# The disk fills up while a checkpoint is written. The checkpoints directory is a small tmpfs
# (mounted by this test: root only) with room for one checkpoint but not two, so the first
# checkpoint is written and the second fails with ENOSPC, on 2 ranks:
#  - checkpoint.on_error = "stop" (the default): exit 1 with a message naming the file and
#    "No space left on device"; the previous checkpoint is intact and a run resumes from it;
#    no temporary file is left behind;
#  - checkpoint.on_error = "continue": a warning per failed checkpoint, the run finishes
#    (model.h5, outside the full file system, is written), exit 0, previous checkpoint intact.
# And a file-size limit (ulimit -f, SIGXFSZ ignored by ftune) on `ftune data import-csv`: a
# clear "File too large" error, no output file and no temporary file.
# Usage (ctest): t_fault_disk_full.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

MOUNTS=()
cleanup_mounts() {
    local m rc=$?
    for m in "${MOUNTS[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    ft_cleanup
    exit "$rc"
}
trap cleanup_mounts EXIT

make_data d.h5 192 16 4 3
write_mlp_cfg mlp.cfg "$TMP/probe" "$TMP/d.h5"
common=(--set train.epochs=1 --set checkpoint.every=2 --set checkpoint.keep_last=1)

# ---- file-size limit (any user) -------------------------------------------------------------
make_csv big.csv 2000 16 4 9
rc=0
(ulimit -f 16 && exec "$FTUNE" data import-csv big.csv -o limited.h5 --no-header) \
    >"$TMP/fsize.out" 2>"$TMP/fsize.err" || rc=$?
RC=$rc
expect_fail fsize 1 "limited.h5" "File too large"
[ ! -e limited.h5 ] || fail "a partial limited.h5 was left behind"
if ls limited.h5.tmp.* >/dev/null 2>&1; then fail "a temporary file was left behind"; fi

# ---- a full file system under checkpoints/ (root: mount a tmpfs) ----------------------------
# the size of one checkpoint of this model
ft probe 0 train mlp.cfg --set train.max_steps=2 --set checkpoint.every=2
expect_ok probe
size=$(stat -c %s "$TMP/probe/$(ckpt 2)")
# room for one checkpoint and some slack, not for two
kib=$(((size * 3 / 2 + 4095) / 4096 * 4))
note "a checkpoint is $size bytes; tmpfs of $kib KiB"

small_run() { # DIR: a run directory whose checkpoints/ is a fresh small tmpfs
    mkdir -p "$1/checkpoints"
    if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o "size=${kib}k" tmpfs "$1/checkpoints" 2>/dev/null; then
        note "SKIP (rest): cannot mount a tmpfs (needs root and mount permission)"
        ft_done
    fi
    MOUNTS+=("$1/checkpoints")
}

# stop (default)
small_run "$TMP/stop"
ft stop 2 train mlp.cfg "${common[@]}" --set "run.dir=$TMP/stop"
expect_fail stop 1 "$(ckpt 4)" "No space left on device" 'checkpoint.on_error = "stop"' \
    "the previous checkpoint is intact"
n=$(count_lines "$TMP/stop.err" "ftune train:")
[ "$n" = 1 ] || fail "[stop] the error was printed $n times, expected once (rank 0)"
ft stop-inspect 0 inspect "$TMP/stop/$(ckpt 2)"
expect_ok stop-inspect
grep -q '^checksum .*: ok$' "$TMP/stop-inspect.out" || fail "[stop] $(ckpt 2) checksum not ok"
if ls "$TMP"/stop/checkpoints/*.tmp.* >/dev/null 2>&1; then
    fail "[stop] a temporary file was left on the full file system"
fi
[ ! -e "$TMP/stop/$(ckpt 4)" ] || fail "[stop] a partial $(ckpt 4) exists"
# resumable: copy the checkpoint to a run directory with space and finish there
mkdir -p "$TMP/stop2/checkpoints"
cp "$TMP/stop/$(ckpt 2)" "$TMP/stop2/checkpoints/"
ft stop-resume 2 train mlp.cfg "${common[@]}" --set "run.dir=$TMP/stop2" --resume
expect_ok stop-resume
grep -qF "resuming from $TMP/stop2/$(ckpt 2) at step 2" "$TMP/stop-resume.out" ||
    fail "[stop] the resumed run did not start from step 2"
[ -f "$TMP/stop2/model.h5" ] || fail "[stop] no model.h5 after resuming"

# continue
small_run "$TMP/cont"
ft cont 2 train mlp.cfg "${common[@]}" --set "run.dir=$TMP/cont" --set checkpoint.on_error=continue
expect_ok cont
n=$(count_lines "$TMP/cont.out" "checkpoint not written")
[ "$n" -ge 2 ] || fail "[continue] expected a warning per failed checkpoint, got $n"
grep -q "No space left on device" "$TMP/cont.out" || fail "[continue] the warning lacks the reason"
note "ok: [cont] $n checkpoints failed with a warning, the run went on: $(grep -m1 'checkpoint not written' "$TMP/cont.out")"
[ -f "$TMP/cont/model.h5" ] || fail "[continue] no model.h5"
ft cont-inspect 0 inspect "$TMP/cont/$(ckpt 2)"
expect_ok cont-inspect
grep -q '^checksum .*: ok$' "$TMP/cont-inspect.out" || fail "[continue] $(ckpt 2) not intact"
ft_done

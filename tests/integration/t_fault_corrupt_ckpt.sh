#!/usr/bin/env bash
# Damaged checkpoints. Checkpoints carry a checksum of their parameter data (FNV-1a,
# docs/formats.md); a damaged one is refused with the reason, and `--resume` (auto) skips it
# for the previous good one:
#  - bytes flipped inside /model/fc1/weight of the newest checkpoint: `--resume CKPT` exits 2
#    with "parameter checksum mismatch"; `ftune inspect` says MISMATCH (exit 2);
#    `--resume` warns "skipping checkpoint ..." and resumes from the one before;
#  - optimizer state damaged: "optimizer state checksum mismatch", and `--resume` falls back;
#    a checkpoint that is intact but does not fit the config (another optimizer) is an error;
#  - a checkpoint truncated to half its size: refused, and skipped by `--resume`;
#  - pretrained.file pointing at the damaged file: refused the same way.
# Usage (ctest): t_fault_corrupt_ckpt.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

make_data d.h5 192 16 4 31
write_mlp_cfg mlp.cfg "$TMP/run" "$TMP/d.h5"
ft train 2 train mlp.cfg --set train.epochs=1 --set checkpoint.every=2
expect_ok train
# steps 2, 4 and 6 (the last)
for s in 2 4 6; do [ -f "run/$(ckpt $s)" ] || die "no checkpoint at step $s"; done

# flip DATASET FILE: overwrite 4 bytes in the middle of a contiguous dataset's data
flip() {
    local off size
    off=$(h5dump -p -H -d "$1" "$2" | awk '/OFFSET/ { print $2; exit }')
    size=$(h5dump -p -H -d "$1" "$2" | awk '/SIZE/ { print $2; exit }')
    [ -n "$off" ] && [ -n "$size" ] || die "cannot find the data of $1 in $2"
    printf '\xde\xad\xbe\xef' | dd of="$2" bs=1 seek=$((off + size / 2)) conv=notrunc status=none
}

cp "run/$(ckpt 6)" good6.h5
flip /model/fc1/weight "run/$(ckpt 6)"

ft explicit 2 train mlp.cfg --set train.epochs=2 --resume "$TMP/run/$(ckpt 6)"
expect_fail explicit 2 "$(ckpt 6)" "parameter checksum mismatch"
ft inspect 0 inspect "run/$(ckpt 6)"
expect_fail inspect 2 "parameter checksum mismatch"
grep -q '^checksum .*MISMATCH' "$TMP/inspect.out" || fail "inspect does not print MISMATCH"
ft pretrained 0 train mlp.cfg --set "run.dir=$TMP/pre" --set "pretrained.file=$TMP/run/$(ckpt 6)"
expect_fail pretrained 2 "parameter checksum mismatch"

ft auto 2 train mlp.cfg --set train.epochs=2 --resume
expect_ok auto
grep -qF "skipping checkpoint $TMP/run/$(ckpt 6)" "$TMP/auto.err" ||
    fail "[auto] no warning about the damaged $(ckpt 6)"
grep -qF "parameter checksum mismatch" "$TMP/auto.err" || fail "[auto] the warning lacks the reason"
grep -qF "resuming from $TMP/run/$(ckpt 4) at step 4" "$TMP/auto.out" ||
    fail "[auto] did not resume from $(ckpt 4): $(grep -m1 resum "$TMP/auto.out" || true)"
note "ok: [auto] $(grep -m1 'skipping checkpoint' "$TMP/auto.err")"

# optimizer state damaged (the parameters are fine)
cp good6.h5 opt6.h5
flip /optimizer/fc1/weight/momentum_buffer opt6.h5
ft optim 0 train mlp.cfg --set "run.dir=$TMP/o" --set train.epochs=2 --resume "$TMP/opt6.h5"
expect_fail optim 2 "opt6.h5" "optimizer state checksum mismatch"
mkdir -p o/checkpoints
cp "run/$(ckpt 4)" o/checkpoints/
cp opt6.h5 "o/$(ckpt 6)"
ft optim-auto 0 train mlp.cfg --set "run.dir=$TMP/o" --set train.epochs=2 --resume
expect_ok optim-auto
grep -qF "optimizer state checksum mismatch" "$TMP/optim-auto.err" ||
    fail "[optim-auto] the damaged optimizer state was not reported"
grep -qF "resuming from $TMP/o/$(ckpt 4) at step 4" "$TMP/optim-auto.out" ||
    fail "[optim-auto] did not fall back to $(ckpt 4)"
# a checkpoint that is intact but does not fit the configuration is an error, not skipped
ft optim-other 0 train mlp.cfg --set "run.dir=$TMP/run" --set train.epochs=2 \
    --set train.optimizer.type=adamw --resume
expect_fail optim-other 2 "optimizer is sgd" "adamw"

# truncated: what a full disk or a copy cut short leaves
mkdir -p t/checkpoints
cp "run/$(ckpt 2)" "run/$(ckpt 4)" t/checkpoints/
cp good6.h5 "t/$(ckpt 6)"
truncate -s $(($(stat -c %s good6.h5) / 2)) "t/$(ckpt 6)"
ft trunc 0 train mlp.cfg --set "run.dir=$TMP/t" --set train.epochs=2 --resume "$TMP/t/$(ckpt 6)"
expect_fail trunc 2 "$(ckpt 6)"
note "ok: [trunc] $(grep -m1 'ftune train' "$TMP/trunc.err")"
ft trunc-auto 2 train mlp.cfg --set "run.dir=$TMP/t" --set train.epochs=2 --resume
expect_ok trunc-auto
grep -qF "skipping checkpoint $TMP/t/$(ckpt 6)" "$TMP/trunc-auto.err" ||
    fail "[trunc-auto] the truncated checkpoint was not skipped"
grep -qF "resuming from $TMP/t/$(ckpt 4) at step 4" "$TMP/trunc-auto.out" ||
    fail "[trunc-auto] did not resume from $(ckpt 4)"
ft_done

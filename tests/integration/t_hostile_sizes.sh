#!/usr/bin/env bash
# Hostile and degenerate inputs: absurd sizes are refused before anything is allocated, with a
# message naming the file (exit 2), in well under a second and within a small address space;
# degenerate data gives a clear error or documented behaviour, never a hang on other ranks.
# The HDF5 files are forged with tests/fuzz/h5forge (a few KiB declaring terabytes).
#  - datasets: inputs [2^40, 4] (labels [2^40]), [10^12, 10^12], a 16 GiB sample, data
#    declared but not stored, a sample above FTUNE_MAX_ALLOC_MB;
#  - model files: a [2^30, 2^30] weight (inspect, pretrained.file), a stored config asking for
#    2^60 parameters (eval), a stored config with @include;
#  - IDX headers claiming 4 billion labels or 4096x4096 images in a tiny file;
#  - CSV with NaN and Inf values (refused with line and column), labels out of range;
#  - an empty dataset, a label beyond "classes", and 2 samples on 3 ranks (finishes).
# Usage (ctest): t_hostile_sizes.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"
FORGE=${BUILD:+$BUILD/fuzz/h5forge}
[ -n "$FORGE" ] && [ -x "$FORGE" ] || skip "tests/fuzz/h5forge not built (BUILD_DIR=$BUILD)"
forge() { "$FORGE" "$@" || die "h5forge $* failed"; }

make_data d.h5 96 16 4 41
write_mlp_cfg mlp.cfg "$TMP/run" "$TMP/d.h5"
base=(--set train.max_steps=2)

# quick NAME NP ARGS...: like ft, but the run must end within 20 s and (single process) in
# 3 GiB of address space, so that an attempt to allocate what the file declares would fail.
# (Not with AddressSanitizer, which reserves terabytes of shadow address space.)
VLIMIT=1
if ldd "$FTUNE" 2>/dev/null | grep -q 'libasan'; then VLIMIT=0; fi
quick() {
    local name=$1 np=$2
    shift 2
    local t0=$SECONDS
    if [ "$np" = 0 ] && [ "$VLIMIT" = 1 ]; then
        RC=0
        (ulimit -v 3145728 && exec timeout -k 5 20 "$FTUNE" "$@") >"$TMP/$name.out" \
            2>"$TMP/$name.err" || RC=$?
    else
        FT_TIMEOUT=20 ft "$name" "$np" "$@"
    fi
    [ $((SECONDS - t0)) -le 20 ] || fail "[$name] took $((SECONDS - t0)) s"
}

# ---- datasets ------------------------------------------------------------------------------
forge huge-n huge-n.h5
forge huge-dims huge-dims.h5
forge huge-sample huge-sample.h5
forge short-storage short.h5
forge wide wide.h5
forge empty empty.h5
forge relabel d.h5 badlabel.h5 17 9

for f in huge-n huge-sample short; do
    quick "data-$f" 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/$f.h5"
    expect_fail "data-$f" 2 "$TMP/$f.h5" "but the file stores only"
done
quick data-huge-dims 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/huge-dims.h5"
expect_fail data-huge-dims 2 "$TMP/huge-dims.h5" "unusable shape [1000000000000, 1000000000000]"
cat >wide.cfg <<EOF2
data = { train = "$TMP/wide.h5"; };
model = { input = [1, 1024, 1024]; layers = (
  { name = "pool"; type = "maxpool2d"; size = 64; },
  { name = "flat"; type = "flatten"; },
  { name = "fc"; type = "dense"; units = 2; }
); };
run = { dir = "$TMP/wide"; };
EOF2
FTUNE_MAX_ALLOC_MB=3 quick data-wide 0 train wide.cfg "${base[@]}"
expect_fail data-wide 2 "$TMP/wide.h5" "one sample" "above the memory limit" "FTUNE_MAX_ALLOC_MB"
# the same on 2 ranks: every rank refuses it, the message comes once, nobody waits
quick data-huge-n-mpi 2 train mlp.cfg "${base[@]}" --set "data.train=$TMP/huge-n.h5"
expect_fail data-huge-n-mpi 2 "$TMP/huge-n.h5"
quick data-empty 2 train mlp.cfg "${base[@]}" --set "data.train=$TMP/empty.h5"
expect_fail data-empty 2 "$TMP/empty.h5" "no samples (N = 0)"
quick data-badlabel 2 train mlp.cfg "${base[@]}" --set "data.train=$TMP/badlabel.h5"
expect_fail data-badlabel 2 "$TMP/badlabel.h5" "row 17" "label 9" "[0, 4)"
quick eval-badlabel 0 eval "$TMP/d.h5" --data "$TMP/badlabel.h5"
[ "$RC" = 2 ] || fail "[eval-badlabel] exit $RC, expected 2"

# ---- model files ---------------------------------------------------------------------------
forge huge-param huge-param.h5
forge huge-config huge-config.h5
forge include-config include.h5 /etc/hostname
quick inspect-huge 0 inspect huge-param.h5
expect_fail inspect-huge 2 "huge-param.h5" "/model/fc1/" "but the file stores only"
quick pretrained-huge 0 train mlp.cfg "${base[@]}" --set "pretrained.file=$TMP/huge-param.h5" \
    --set "run.dir=$TMP/p"
expect_fail pretrained-huge 2 "huge-param.h5"
quick eval-huge 0 eval huge-config.h5 --data d.h5
expect_fail eval-huge 2 "the model (its parameters) needs" "above the memory limit"
quick eval-include 0 eval include.h5 --data d.h5
expect_fail eval-include 2 "include.h5" "@include"

# ---- IDX headers -----------------------------------------------------------------------------
printf '\x00\x00\x08\x01\xff\xff\xff\xff' >huge.labels
printf '\x00\x00\x08\x03\xff\xff\xff\xff\x00\x00\x00\x1c\x00\x00\x00\x1c' >huge.images
quick idx-huge-count 0 data import-idx --labels huge.labels --images huge.images -o x.h5
expect_fail idx-huge-count 2 "huge.labels" "truncated: header says 4294967295 labels"
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02' >two.labels
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x10\x00\x00\x00\x10\x00' >big.images
quick idx-huge-image 0 data import-idx --labels two.labels --images big.images -o x.h5
expect_fail idx-huge-image 2 "big.images" "truncated"
[ ! -e x.h5 ] || fail "a partial x.h5 was left behind"

# ---- CSV -------------------------------------------------------------------------------------
printf '1,2,0\n3,nan,1\n' >nan.csv
quick csv-nan 0 data import-csv nan.csv -o x.h5
expect_fail csv-nan 2 "nan.csv:2:2" "expected a finite number" '"nan"'
printf '1,2,0\n3,4,1\n-inf,4,1\n' >inf.csv
quick csv-inf 0 data import-csv inf.csv -o x.h5
expect_fail csv-inf 2 "inf.csv:3:1" '"-inf"'
printf '1,2,0\n3,4,99999999999\n' >label.csv
quick csv-label 0 data import-csv label.csv -o x.h5
expect_fail csv-label 2 "label.csv:2:3"
printf '1,2,0\n3,4,-1\n' >neg.csv
quick csv-neg 0 data import-csv neg.csv -o x.h5
expect_fail csv-neg 2 "neg.csv:2:3" "outside"

# ---- fewer samples than ranks -----------------------------------------------------------------
make_data two.h5 2 16 2 43
write_mlp_cfg two.cfg "$TMP/two" "$TMP/two.h5" "$TMP/two.h5"
quick two-on-three 3 train two.cfg --set model.layers.fc2.units=2 --set train.epochs=2 \
    --set train.batch_size=2
expect_ok two-on-three
grep -q "model written to" "$TMP/two-on-three.out" || fail "[two-on-three] no model written"
quick two-eval 3 eval "$TMP/two/model.h5" --data "$TMP/two.h5" --json
expect_ok two-eval
grep -q '"samples":2,' "$TMP/two-eval.out" || fail "[two-eval] the 2 samples were not counted once"
note "ok: 2 samples on 3 ranks: trained and evaluated"
ft_done

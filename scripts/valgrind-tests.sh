#!/usr/bin/env bash
# The test suite under valgrind memcheck (docs/reliability.md, "Hygiene"): every unit test, the
# fuzz corpus replays, and small single-process ftune runs (import, train with a checkpoint,
# resume, eval, inspect), each with --error-exitcode=1 --leak-check=full. Errors and definite
# or indirect leaks fail; suppressions for Open MPI, PMIx, HDF5 and OpenBLAS internals are in
# tests/valgrind.supp, each with its reason.
#
#   scripts/valgrind-tests.sh [BUILD_DIR]     (default: build; a Release or Debug build, not ASan)
#
# ctest runs it as valgrind.memcheck (label "valgrind"). Exit 77 when valgrind is missing.
# A run is stopped after FT_VG_TIMEOUT seconds (default 180) and reported as not checked. The
# exit status of a test itself is shown but not judged here (ctest runs the tests for that).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
command -v valgrind >/dev/null 2>&1 || { echo "SKIP: valgrind not found (Debian: valgrind)"; exit 77; }
[ -x "$BUILD/ftune" ] || { echo "no $BUILD/ftune"; exit 2; }
if grep -q 'FTUNE_SANITIZE:BOOL=ON\|FTUNE_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    echo "SKIP: $BUILD is a sanitizer build (valgrind and ASan do not mix)"
    exit 77
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# OpenBLAS picks kernels by CPU; valgrind does not emulate every AVX-512 instruction
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
export HDF5_USE_FILE_LOCKING=FALSE
# a singleton MPI process: no network transports to probe
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
T=$(mktemp -d "${TMPDIR:-/tmp}/ftune-valgrind.XXXXXX")
[ -n "${FT_KEEP_VG:-}" ] && echo "logs in $T" || trap 'rm -rf "$T"' EXIT
VG=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-origins=no --num-callers=30
    --suppressions="$SRC/tests/valgrind.supp" --gen-suppressions=all)
fails=0
runs=0
vg() { # NAME CMD...: runs CMD under memcheck; a valgrind error (exit 99) fails, so does a crash
    local name=$1 rc=0 t0=$SECONDS
    shift
    timeout -k 10 "${FT_VG_TIMEOUT:-180}" "${VG[@]}" --log-file="$T/$name.vg" "$@" \
        >"$T/$name.out" 2>&1 || rc=$?
    runs=$((runs + 1))
    if [ "$rc" = 124 ]; then
        # memcheck is ~50x slower: a run that cannot finish is reported, not counted
        echo "note: $name: not finished in ${FT_VG_TIMEOUT:-180} s under valgrind (not checked)"
    elif [ "$rc" = 99 ] || [ -s "$T/$name.vg" ]; then
        fails=$((fails + 1))
        echo "FAIL: $name: memcheck errors (exit $rc)"
        head -n 80 "$T/$name.vg"
    elif [ "$rc" -ge 128 ]; then
        fails=$((fails + 1))
        echo "FAIL: $name: crashed (exit $rc)"
        tail -n 20 "$T/$name.out"
    else
        echo "ok: $name (exit $rc, $((SECONDS - t0)) s)"
    fi
    return 0
}

# ---- unit tests ----
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    vg "unit.$(basename "$t")" "$t"
done
# ---- fuzz corpora (hostile files: every error path) ----
for r in "$BUILD"/tests/fuzz/fuzz_*_replay; do
    [ -x "$r" ] || continue
    h=$(basename "$r" _replay)
    vg "replay.${h#fuzz_}" "$r" "$SRC/tests/fuzz/corpus/${h#fuzz_}"
done
# ---- ftune itself, one process ----
F=$BUILD/ftune
cd "$T"
awk 'BEGIN { s = 7; for (i = 0; i < 96; i++) { l = ""; for (j = 0; j < 16; j++) {
    s = (s * 16807) % 2147483647; l = l sprintf("%.5f,", s / 2147483647 + (j % 4 == i % 4)) }
    print l (i % 4) } }' >d.csv
cat >m.cfg <<CFG
run = { dir = "$T/run"; seed = 3; };
data = { train = "$T/d.h5"; eval = "$T/d.h5"; };
model = { input = [16]; layers = (
  { name = "fc1"; type = "dense"; units = 16; },
  { name = "bn1"; type = "batchnorm"; },
  { name = "relu1"; type = "relu"; },
  { name = "drop"; type = "dropout"; rate = 0.1; },
  { name = "fc2"; type = "dense"; units = 4; }
); };
train = { epochs = 2; batch_size = 16; optimizer = { type = "adamw"; }; };
checkpoint = { every = 4; };
log = { progress = "plain"; };
CFG
vg ftune.import "$F" data import-csv d.csv -o d.h5 --no-header
vg ftune.train "$F" train m.cfg --set train.max_steps=6
vg ftune.resume "$F" train m.cfg --resume
vg ftune.eval "$F" eval run/model.h5 --data d.h5 --json
vg ftune.inspect "$F" inspect run/checkpoints/ckpt-00000008.h5
vg ftune.bad-config "$F" train m.cfg --set train.optimizer.lr=-1
echo "valgrind: $runs runs, $fails with errors"
[ "$fails" = 0 ]

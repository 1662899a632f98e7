# shellcheck shell=bash
# Variables set here (BUILD, PY_H5, HAVE_PY, ...) are used by the scripts that source it.
# shellcheck disable=SC2034
# Helpers for the integration tests (tests/integration/t_*.sh). Source it, then call
#   ft_init "$@"        # $1 = ftune binary, $2 = source dir, $3 = test build dir (ctest)
# which creates a private temporary directory ($TMP, removed on exit; FT_KEEP_TMP=1 keeps it),
# cd's into it and exports OPENBLAS_NUM_THREADS=1: ctest runs two tests at once on a small
# machine, and one BLAS thread per rank keeps the runs reproducible and the cores not
# oversubscribed. Exit code 77 means "skipped" to ctest.
#
# Running a command:  ft NAME NP ARGS...   runs `ftune ARGS` (NP=0: a plain process, NP>=1:
# under scripts/mpirun.sh with NP ranks) under a timeout; stdout goes to $TMP/NAME.out, stderr
# to $TMP/NAME.err and the exit status to $RC. Then expect_ok / expect_fail check it.
set -euo pipefail

FAILS=0
BG_PIDS=()

# ---- reporting ----------------------------------------------------------------------------

note() { printf '%s\n' "$*"; }

# fail MSG: records a failure and goes on (the script exits 1 at ft_done).
fail() {
    FAILS=$((FAILS + 1))
    printf 'FAIL: %s\n' "$*"
}

# die MSG: a failure that later steps depend on.
die() {
    fail "$*"
    exit 1
}

skip() {
    printf 'SKIP: %s\n' "$*"
    exit 77
}

# show NAME: the tail of a run's output, to explain a failure.
show() {
    local f
    for f in "$TMP/$1.out" "$TMP/$1.err"; do
        [ -s "$f" ] || continue
        printf -- '--- %s (last 25 lines)\n' "${f##*/}"
        tail -n 25 "$f"
    done
}

ft_done() {
    if [ "$FAILS" -gt 0 ]; then
        printf '%d check(s) failed\n' "$FAILS"
        exit 1
    fi
    echo "OK"
    exit 0
}

# ---- setup and cleanup --------------------------------------------------------------------

ft_cleanup() {
    local rc=$? pid
    for pid in "${BG_PIDS[@]}"; do
        kill_tree "$pid"
    done
    cd /
    if [ -n "${TMP:-}" ] && [ -d "$TMP" ]; then
        if [ "${FT_KEEP_TMP:-0}" = 1 ]; then
            echo "kept $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}

ft_init() {
    if [ -z "${1:-}" ]; then
        echo "usage: $0 FTUNE_BIN [SOURCE_DIR [BUILD_DIR]]" >&2
        exit 2
    fi
    FTUNE=$(realpath "$1")
    SRC=$(realpath "${2:-$(dirname "${BASH_SOURCE[0]}")/../..}")
    BUILD=${3:-}
    [ -x "$FTUNE" ] || die "ftune binary $1 not found or not executable"
    [ -r "$SRC/scripts/mpirun.sh" ] || die "$SRC/scripts/mpirun.sh not found"
    local tool
    for tool in mpirun h5diff h5ls timeout awk; do
        command -v "$tool" >/dev/null 2>&1 ||
            skip "$tool not found (Debian: openmpi-bin, hdf5-tools, coreutils, mawk)"
    done
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-$(basename "$0" .sh).XXXXXX")
    trap ft_cleanup EXIT
    trap 'exit 130' INT TERM
    export OPENBLAS_NUM_THREADS=1
    # Ranks waiting in MPI calls yield the CPU instead of spinning: with two tests running at
    # once there are more ranks than cores, and Open MPI cannot know it.
    export OMPI_MCA_mpi_yield_when_idle=1
    # Two tests run at once (ctest -j2) on two cores: never bind ranks to cores (two jobs
    # would pin their ranks to the same cores), and allow more ranks than cores. mpirun reads
    # its options up to the program name, and a later --bind-to overrides the one that
    # scripts/mpirun.sh adds.
    read -r -a MPIRUN_FLAGS <<<"${FTUNE_MPIRUN_FLAGS:---oversubscribe --bind-to none}"
    cd "$TMP"
}

# kill_tree PID: SIGKILL a process we started and all its descendants (by pid).
kill_tree() {
    local pid=$1 child
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        kill_tree "$child"
    done
    kill -9 "$pid" 2>/dev/null || true
}

# ---- running ftune ------------------------------------------------------------------------

# mpi_cmd NP: the command prefix that starts NP ranks.
mpi_cmd() {
    MPI_CMD=(bash "$SRC/scripts/mpirun.sh" "$1" "${MPIRUN_FLAGS[@]}")
}

# ft NAME NP ARGS...: see the header. FT_TIMEOUT (seconds, default 120) bounds the run; a
# run that hits it is reported (RC=124) so that a hang fails the test instead of blocking it.
ft() {
    local name=$1 np=$2
    shift 2
    local cmd=("$FTUNE" "$@")
    if [ "$np" -gt 0 ]; then
        mpi_cmd "$np"
        cmd=("${MPI_CMD[@]}" "$FTUNE" "$@")
    fi
    RC=0
    timeout -k 10 "${FT_TIMEOUT:-120}" "${cmd[@]}" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
        RC=$?
    if [ "$RC" = 124 ]; then
        echo "[$name] timed out after ${FT_TIMEOUT:-120} s: ${cmd[*]}" >>"$TMP/$name.err"
    fi
    return 0
}

# expect_ok NAME: the last run (named NAME) exited 0; otherwise a fatal failure.
expect_ok() {
    if [ "$RC" != 0 ]; then
        show "$1"
        die "[$1] exited with $RC, expected 0"
    fi
}

# expect_fail NAME CODE TEXT...: the last run exited with CODE and its stderr contains every
# TEXT (fixed strings). Not fatal.
expect_fail() {
    local name=$1 code=$2 t ok=1
    shift 2
    if [ "$RC" != "$code" ]; then
        fail "[$name] exited with $RC, expected $code"
        ok=0
    fi
    for t in "$@"; do
        if ! grep -qF -- "$t" "$TMP/$name.err"; then
            fail "[$name] stderr lacks: $t"
            ok=0
        fi
    done
    if [ "$ok" = 0 ]; then
        show "$name"
    else
        note "ok: [$name] exit $code: $(grep -m1 -F -- "${1:-}" "$TMP/$name.err" || true)"
    fi
}

# count_lines FILE TEXT: how many lines of FILE contain TEXT.
count_lines() {
    grep -cF -- "$2" "$1" || true
}

# ---- data and configs ---------------------------------------------------------------------

# make_csv OUT N FEATURES CLASSES SEED [SIGNAL]: a deterministic synthetic CSV, one sample a
# line, features then the label. Sample i has label i % CLASSES; feature j is uniform in
# [-0.5, 0.5) plus SIGNAL (default 1) when j % CLASSES == label, so the classes can be learned.
# The generator is a Park-Miller LCG: its products stay below 2^53, so every awk computes the
# same numbers exactly (awk's rand() differs between implementations).
make_csv() {
    awk -v n="$2" -v f="$3" -v k="$4" -v s="$5" -v sig="${6:-1}" 'BEGIN {
        s = s % 2147483646 + 1
        for (i = 0; i < n; i++) {
            y = i % k
            line = ""
            for (j = 0; j < f; j++) {
                s = (s * 16807) % 2147483647
                v = s / 2147483647 - 0.5
                if (j % k == y) v += sig
                line = line sprintf("%.6f,", v)
            }
            print line y
        }
    }' >"$1"
}

# make_data OUT.h5 N FEATURES CLASSES SEED [SIGNAL [IMPORT-CSV OPTIONS...]]
make_data() {
    local out=$1 n=$2 f=$3 k=$4 seed=$5 sig=${6:-1}
    shift 5
    [ $# -gt 0 ] && shift
    make_csv "$out.csv" "$n" "$f" "$k" "$seed" "$sig"
    local name
    name=data-$(basename "$out" .h5)
    ft "$name" 0 data import-csv "$out.csv" -o "$out" --no-header "$@"
    expect_ok "$name"
}

# write_mlp_cfg FILE RUN_DIR TRAIN [EVAL]: an MLP on 16 features / 4 classes with batchnorm
# and dropout, shuffling, SGD with momentum, batch 32, a checkpoint every 4 steps (all kept).
write_mlp_cfg() {
    cat >"$1" <<EOF
# MLP for the integration tests (tests/integration/lib.sh)
run = { dir = "$2"; seed = 7; };
data = { train = "$3"; eval = "${4:-}"; shuffle = true; };
model = {
  input = [16];
  layers = (
    { name = "fc1"; type = "dense"; units = 32; },
    { name = "bn1"; type = "batchnorm"; },
    { name = "relu1"; type = "relu"; },
    { name = "drop"; type = "dropout"; rate = 0.2; },
    { name = "fc2"; type = "dense"; units = 4; }
  );
};
train = {
  epochs = 4;
  batch_size = 32;
  optimizer = { type = "sgd"; lr = 0.05; momentum = 0.9; weight_decay = 0.0001; };
};
checkpoint = { every = 4; keep_last = 1000; };
log = { every = 5; progress = "plain"; };
EOF
}

# write_cnn_cfg FILE RUN_DIR TRAIN [EVAL]: a small CNN on [1, 6, 6] inputs (datasets made by
# import-csv have flat [36] samples; the trainer accepts them because the element counts
# agree) with a 2-d batchnorm, dropout, AdamW and a cosine schedule over 40 steps, 4 classes.
write_cnn_cfg() {
    cat >"$1" <<EOF
# CNN for the integration tests (tests/integration/lib.sh)
run = { dir = "$2"; seed = 3; };
data = { train = "$3"; eval = "${4:-}"; shuffle = true; };
model = {
  input = [1, 6, 6];
  layers = (
    # No bias before a batchnorm: its gradient is zero up to rounding noise, which AdamW
    # scales up to full steps, so the bias would drift differently on different rank counts.
    { name = "conv1"; type = "conv2d"; filters = 4; kernel = 3; padding = 1; bias = false; },
    { name = "bn1"; type = "batchnorm"; },
    { name = "relu1"; type = "relu"; },
    { name = "pool1"; type = "maxpool2d"; size = 2; },
    { name = "flatten"; type = "flatten"; },
    { name = "drop"; type = "dropout"; rate = 0.25; },
    { name = "fc1"; type = "dense"; units = 16; },
    { name = "relu2"; type = "relu"; },
    { name = "fc2"; type = "dense"; units = 4; }
  );
};
train = {
  epochs = 4;
  batch_size = 32;
  optimizer = { type = "adamw"; lr = 0.01; weight_decay = 0.01; };
  # total_steps is explicit: its default (0) is the run's own length, which max_steps
  # changes, and the tests stop and resume runs through max_steps.
  schedule = { type = "cosine"; warmup_steps = 3; total_steps = 40; min_lr = 0.001; };
};
checkpoint = { every = 4; keep_last = 1000; };
log = { every = 5; progress = "plain"; };
EOF
}

# ckpt STEP: the checkpoint file name of a step (checkpoints/ckpt-<8 digits>.h5).
ckpt() {
    printf 'checkpoints/ckpt-%08d.h5' "$1"
}

# ---- comparing HDF5 files -----------------------------------------------------------------

# h5_same A B PATH: PATH (a group, compared recursively with its attributes, or a dataset) is
# bit-identical in A and B. Not fatal.
h5_same() {
    local out rc=0
    out=$(h5diff "$1" "$2" "$3" 2>&1) || rc=$?
    if [ "$rc" != 0 ]; then
        fail "$3 differs between $1 and $2 (h5diff exit $rc)"
        printf '%s\n' "$out" | grep -v '^0 differences found' | head -n 30
        return 0
    fi
    note "ok: $3 identical in ${1##*/} and ${2##*/}"
}

# h5_differ A B PATH: PATH is NOT identical (e.g. a layer that training must change).
h5_differ() {
    local rc=0
    h5diff -q "$1" "$2" "$3" >/dev/null 2>&1 || rc=$?
    case $rc in
    1) note "ok: $3 differs between ${1##*/} and ${2##*/}" ;;
    0) fail "$3 is identical in $1 and $2, expected it to change" ;;
    *) fail "h5diff could not compare $3 in $1 and $2 (exit $rc)" ;;
    esac
}

# h5_close A B PATH [RTOL [ATOL]]: the same objects under PATH, and every value equal within
# RTOL relative (default 1e-5) OR ATOL absolute (default 1e-6). Why both: runs on different
# rank counts sum floats in a different order; a weight that ends near zero (a few 1e-5) then
# differs by ~1e-9 in absolute terms, which is a large relative error although the runs agree.
# h5diff accepts only one of -p and -d, so we ask it for the values beyond RTOL and check their
# absolute differences ourselves.
h5_close() {
    local a=$1 b=$2 path=$3 rtol=${4:-1e-5} atol=${5:-1e-6} rc=0 out bad
    # same structure: object names, kinds and shapes
    if ! diff <(h5ls -r "$a$path" 2>&1) <(h5ls -r "$b$path" 2>&1) >/dev/null; then
        fail "$path has different objects in $a and $b"
        diff <(h5ls -r "$a$path" 2>&1) <(h5ls -r "$b$path" 2>&1) | head -n 20
        return 0
    fi
    out=$(h5diff -r -p "$rtol" "$a" "$b" "$path" 2>&1) || rc=$?
    if [ "$rc" = 0 ]; then
        note "ok: $path equal within rtol $rtol in ${a##*/} and ${b##*/}"
        return 0
    fi
    if [ "$rc" != 1 ]; then
        fail "h5diff could not compare $path in $a and $b (exit $rc)"
        printf '%s\n' "$out" | head -n 20
        return 0
    fi
    # Lines "[ i j ]  a  b  |a-b|  relative" list the values beyond rtol.
    bad=$(printf '%s\n' "$out" | awk -v atol="$atol" '
        /^dataset:|^attribute:/ { what = $0 }
        /^\[/ {
            sub(/^\[[^]]*\]/, "")
            if (!($3 + 0 <= atol + 0) || $3 !~ /^[-+0-9.eE]+$/) print what ": " $0
        }')
    if [ -n "$bad" ]; then
        fail "$path differs beyond rtol $rtol and atol $atol between $a and $b"
        printf '%s\n' "$bad" | head -n 20
        return 0
    fi
    note "ok: $path equal within rtol $rtol / atol $atol in ${a##*/} and ${b##*/}"
}

# h5_attr FILE OBJECT ATTR: the value of a scalar attribute, as h5dump prints it.
h5_attr() {
    h5dump -a "$2/$3" "$1" 2>/dev/null | awk '/\(0\):/ { sub(/.*\(0\): */, ""); print; exit }'
}

# ---- optional tools -----------------------------------------------------------------------

# find_python_h5py: sets PY_H5 to a python3 that imports h5py and numpy, or to "".
find_python_h5py() {
    PY_H5=
    local p
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import h5py, numpy' >/dev/null 2>&1; then
            PY_H5=$(command -v "$p")
            return 0
        fi
    done
}

# json_get FILE EXPR: evaluates a Python expression on the JSON object in FILE (as `d`), or
# fails when python3 is missing (callers check HAVE_PY first).
HAVE_PY=0
command -v python3 >/dev/null 2>&1 && python3 -c 'import json' >/dev/null 2>&1 && HAVE_PY=1
json_get() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$1" "$2"
}

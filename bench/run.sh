#!/usr/bin/env bash
# ftune's benchmark (make bench): ftune and its PyTorch peer (bench/bench_torch.py) on the
# reference workloads W1 (pretrain, fine-tune, fine-tune with the frozen-feature cache) and W2,
# plus an SGEMM microbenchmark on W2's shapes, in one run under one environment. Prints one
# table and writes it as JSON. See bench/README.md.
#
#   bench/run.sh [--quick] [--out FILE] [--work DIR]
#
#   --quick     a smoke run (a few steps of each, one PyTorch setting): checks that everything
#               runs, in well under a minute; its timings mean nothing
#   --out FILE  the JSON results (default bench/results.json; --quick: WORK/results.json)
#   --work DIR  run directories and logs (default: a new temporary directory, removed at the
#               end unless BENCH_KEEP=1)
#
# Environment: FTUNE (default build/ftune), BENCH_DATA (default data/: the Fashion-MNIST HDF5
# files, made here from Debian's dataset-fashion-mnist when missing), FASHION_MNIST_DIR,
# PYTHON (default: a python3 that imports torch and h5py; the PyTorch rows are skipped with a
# note when there is none). OPENBLAS_CORETYPE and the other OPENBLAS_* variables are left as
# they are and reported: every row of one run uses the same setting.
# Exit codes: 0 done, 2 usage or missing input, 1 a run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0
OUT=
WORK=
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --work) WORK=$2; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

FTUNE=$(realpath "${FTUNE:-build/ftune}")
[ -x "$FTUNE" ] || { echo "bench/run.sh: $FTUNE not found: run make first" >&2; exit 2; }
DATA=${BENCH_DATA:-data}
mkdir -p "$DATA"
DATA=$(realpath "$DATA")
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ftune-bench.XXXXXX")
    [ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
if [ -z "$OUT" ]; then
    if [ "$QUICK" = 1 ]; then OUT=$WORK/results.json; else OUT=$ROOT/bench/results.json; fi
fi
LOG=$WORK/logs
mkdir -p "$LOG"
T_START=$(date +%s)

# ---- data --------------------------------------------------------------------------------
FMNIST=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
convert() { # name split classes
    local out="$DATA/fmnist-$1-$2.h5" img=train-images-idx3-ubyte.gz lab=train-labels-idx1-ubyte.gz
    [ -s "$out" ] && return 0
    if [ ! -r "$FMNIST/$img" ]; then
        echo "bench/run.sh: $FMNIST/$img not found: install Debian's dataset-fashion-mnist" \
            "(scripts/install-deps.sh) or set FASHION_MNIST_DIR" >&2
        exit 2
    fi
    local classes=()
    [ -n "$3" ] && classes=(--classes "$3")
    "$FTUNE" data import-idx --images "$FMNIST/$img" --labels "$FMNIST/$lab" "${classes[@]}" \
        -o "$out" >"$LOG/import-$1.log"
}
convert pretrain train 0,1,2,3,4
convert finetune train 5,6,7,8,9
convert all train ""

# ---- tools -------------------------------------------------------------------------------
SGEMM=$WORK/sgemm_bench
# shellcheck disable=SC2046
cc -O2 -o "$SGEMM" bench/sgemm_bench.c $(pkg-config --cflags --libs openblas)

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch, h5py' >/dev/null 2>&1; then
            PY=$(command -v "$p")
            break
        fi
    done
fi
REPORT_PY=$(command -v python3 || command -v /usr/bin/python3 || true)
[ -n "$REPORT_PY" ] || { echo "bench/run.sh: python3 is needed for the report" >&2; exit 2; }

NP2=(bash scripts/mpirun.sh 2)
cores=$(nproc)
if [ "$cores" -lt 2 ]; then NP2+=(--oversubscribe); fi

# ---- header ------------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) x $cores"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "openblas: $("$SGEMM" 16 0.01 | sed 's/.*"core":"\([^"]*\)".*/\1/') kernels;" \
        "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
    echo "ftune: $FTUNE ($("$FTUNE" --version 2>/dev/null | head -n 1 || echo unknown))"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "mode: $([ "$QUICK" = 1 ] && echo quick || echo full)"
} >"$WORK/machine.txt"
sed 's/^/  /' "$WORK/machine.txt"

# ---- SGEMM on W2's shapes ----------------------------------------------------------------
SECS=2
[ "$QUICK" = 1 ] && SECS=0.2
echo "== SGEMM microbenchmark (W2 step shapes)"
: >"$WORK/sgemm.jsonl"
sg() { # label, then the command's JSON lines are tagged with it
    local label=$1
    shift
    "$@" | sed "s/^{/{\"setting\":\"$label\",/" >>"$WORK/sgemm.jsonl"
}
sg "1x1" env OPENBLAS_NUM_THREADS=1 "$SGEMM" 256 "$SECS"
sg "1x2" env OPENBLAS_NUM_THREADS=2 "$SGEMM" 256 "$SECS"
# two processes at once, one per core, each with the per-rank batch of 2 ranks
if command -v taskset >/dev/null 2>&1 && [ "$cores" -ge 2 ]; then
    OPENBLAS_NUM_THREADS=1 taskset -c 0 "$SGEMM" 128 "$SECS" >"$WORK/sg0" &
    OPENBLAS_NUM_THREADS=1 taskset -c 1 "$SGEMM" 128 "$SECS" >"$WORK/sg1"
    wait
else
    OPENBLAS_NUM_THREADS=1 "$SGEMM" 128 "$SECS" >"$WORK/sg0" &
    OPENBLAS_NUM_THREADS=1 "$SGEMM" 128 "$SECS" >"$WORK/sg1"
    wait
fi
sed 's/^{/{"setting":"2x1","proc":0,/' "$WORK/sg0" >>"$WORK/sgemm.jsonl"
sed 's/^{/{"setting":"2x1","proc":1,/' "$WORK/sg1" >>"$WORK/sgemm.jsonl"
sed 's/^/  /' "$WORK/sgemm.jsonl"

# ---- ftune -------------------------------------------------------------------------------
# run NAME NP THREADS CONFIG [--set ...]: one training run; its output goes to LOG/NAME.out
: >"$WORK/ftune_runs.txt"
run() {
    local name=$1 np=$2 threads=$3 cfg=$4
    shift 4
    local cmd=("$FTUNE")
    [ "$np" -gt 1 ] && cmd=("${NP2[@]}" "$FTUNE")
    local limit=()
    if [ "$QUICK" = 1 ]; then
        case "$name" in w2*) limit=(--set train.max_steps=4) ;; *) limit=(--set train.max_steps=12) ;; esac
    else # W2: the first 120 of the epoch's 235 steps keep the whole run under 10 minutes
        case "$name" in w2*) limit=(--set train.max_steps=120) ;; esac
    fi
    echo "== ftune $name ($np rank(s) x $threads BLAS thread(s))"
    if ! OPENBLAS_NUM_THREADS=$threads "${cmd[@]}" train "bench/configs/$cfg" \
        --set "run.dir=\"$WORK/$name\"" --set "run.threads=$threads" \
        --set 'log.progress="plain"' "${limit[@]}" "$@" >"$LOG/$name.out" 2>&1; then
        echo "bench/run.sh: ftune $name failed; the end of $LOG/$name.out:" >&2
        tail -n 20 "$LOG/$name.out" >&2
        exit 1
    fi
    grep -E '^(train:|peak RSS|feature cache|epoch [0-9]+:)' "$LOG/$name.out" | sed 's/^/  /'
    printf '%s\t%s\t%s\t%s\n' "$name" "$np" "$threads" "$LOG/$name.out" >>"$WORK/ftune_runs.txt"
}

W1P=(--set "data.train=\"$DATA/fmnist-pretrain-train.h5\"")
W1F=(--set "data.train=\"$DATA/fmnist-finetune-train.h5\""
     --set "pretrained.file=\"$WORK/w1-pretrain-1x1/model.h5\"")
W2=(--set "data.train=\"$DATA/fmnist-all-train.h5\"")

run w1-pretrain-1x1 1 1 w1-pretrain.cfg "${W1P[@]}"
run w1-pretrain-2x1 2 1 w1-pretrain.cfg "${W1P[@]}"
[ "$QUICK" = 1 ] || run w1-pretrain-1x2 1 2 w1-pretrain.cfg "${W1P[@]}"
run w1-finetune-1x1 1 1 w1-finetune.cfg "${W1F[@]}"
run w1-finetune-2x1 2 1 w1-finetune.cfg "${W1F[@]}"
[ "$QUICK" = 1 ] || run w1-finetune-1x2 1 2 w1-finetune.cfg "${W1F[@]}"
run w1-finetune-cache-1x1 1 1 w1-finetune.cfg "${W1F[@]}" --set 'train.feature_cache="memory"'
run w1-finetune-cache-2x1 2 1 w1-finetune.cfg "${W1F[@]}" --set 'train.feature_cache="memory"'
run w2-1x1 1 1 w2.cfg "${W2[@]}"
run w2-2x1 2 1 w2.cfg "${W2[@]}"
[ "$QUICK" = 1 ] || run w2-1x2 1 2 w2.cfg "${W2[@]}"

# ---- PyTorch -----------------------------------------------------------------------------
TORCH_JSON=$WORK/torch.json
echo "[]" >"$TORCH_JSON"
TORCH_NOTE=
if [ -z "$PY" ]; then
    TORCH_NOTE="PyTorch rows skipped: no python3 that imports torch and h5py (Debian: python3-torch, python3-h5py)"
    echo "== $TORCH_NOTE"
else
    echo "== PyTorch ($("$PY" -c 'import torch; print(torch.__version__)'))"
    quick=()
    [ "$QUICK" = 1 ] && quick=(--quick)
    BENCH_DATA=$DATA "$PY" bench/bench_torch.py all "${quick[@]}" --out "$TORCH_JSON" ||
        { echo "bench/run.sh: the PyTorch benchmark failed" >&2; exit 1; }
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/machine.txt"
echo "total time: $(($(date +%s) - T_START)) s" >>"$WORK/machine.txt"

# ---- report ------------------------------------------------------------------------------
"$REPORT_PY" bench/report.py --work "$WORK" --out "$OUT" --note "$TORCH_NOTE" \
    $([ "$QUICK" = 1 ] && echo --quick)

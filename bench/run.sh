#!/usr/bin/env bash
# ftune's benchmark (make bench): ftune and its PyTorch peers (bench/bench_torch.py,
# bench/bench_torch_gpt2.py) on the reference workloads W1 (pretrain, fine-tune, fine-tune with
# the frozen-feature cache), W2 and T1 (a GPT-2-small full fine-tune, and the same model with
# LoRA adapters and its base frozen), plus an SGEMM microbenchmark on W2's shapes, in one run
# under one environment. Prints one table and writes it as JSON. See bench/README.md.
#
#   bench/run.sh [--quick] [--only LIST] [--out FILE] [--work DIR]
#
#   --quick     a smoke run (a few steps of each, one PyTorch setting): checks that everything
#               runs, in about a minute; its timings mean nothing
#   --only LIST the workload groups to run, comma-separated from w1, w2, t1 (default: all)
#   --out FILE  the JSON results (default bench/results.json; --quick: WORK/results.json)
#   --work DIR  run directories and logs (default: a new temporary directory, removed at the
#               end unless BENCH_KEEP=1)
#
# Environment: FTUNE (default build/ftune), BENCH_DATA (default data/: the Fashion-MNIST HDF5
# files, made here from Debian's dataset-fashion-mnist when missing, and T1's random token
# batch, made by bench/t1_data.py), FASHION_MNIST_DIR,
# PYTHON (default: a python3 that imports torch and h5py; the PyTorch rows are skipped with a
# note when there is none). OPENBLAS_CORETYPE and the other OPENBLAS_* variables are left as
# they are and reported: every row of one run uses the same setting.
# Exit codes: 0 done, 2 usage or missing input, 1 a run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0
ONLY=w1,w2,t1
OUT=
WORK=
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    --out) OUT=$2; shift ;;
    --work) WORK=$2; shift ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

want() { [[ ",$ONLY," == *",$1,"* ]]; }
for w in ${ONLY//,/ }; do
    case "$w" in w1 | w2 | t1) ;; *) echo "bench/run.sh: --only: unknown workload group $w" >&2; exit 2 ;; esac
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
if want w1; then
    convert pretrain train 0,1,2,3,4
    convert finetune train 5,6,7,8,9
fi
want w2 && convert all train ""

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

# T1's batch: 8 rows of random GPT-2 token ids, T = 128 (--quick: 16), real lengths T/2..T,
# written by bench/t1_data.py with h5py (without h5py: the same ids through a CSV and
# `ftune data import-csv`, which stores no lengths; ftune's trainer does not read them yet).
# t1.json tells the report the real tokens of one step and the warm-up steps.
T1_LEN=128 T1_ROWS=8 T1_WARMUP=2 T1_STEPS=6
[ "$QUICK" = 1 ] && T1_LEN=16 T1_WARMUP=1 T1_STEPS=1
T1_DATA=$DATA/t1-gpt2-small-$T1_LEN.h5
if want t1; then
    H5PY=
    for p in "$PY" "$REPORT_PY" /usr/bin/python3; do
        if [ -n "$p" ] && "$p" -c 'import h5py, numpy' >/dev/null 2>&1; then H5PY=$p; break; fi
    done
    if [ ! -s "$T1_DATA" ]; then
        if [ -n "$H5PY" ]; then
            "$H5PY" bench/t1_data.py "$T1_DATA" --rows "$T1_ROWS" --len "$T1_LEN"
        else
            "$REPORT_PY" bench/t1_data.py "$WORK/t1.csv" --csv --rows "$T1_ROWS" --len "$T1_LEN"
            "$FTUNE" data import-csv "$WORK/t1.csv" --no-header -o "$T1_DATA" >"$LOG/import-t1.log"
        fi
    fi
    "$REPORT_PY" bench/t1_data.py --info --rows "$T1_ROWS" --len "$T1_LEN" \
        --warmup "$T1_WARMUP" >"$WORK/t1.json"
fi

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
        case "$name" in
        w2*) limit=(--set train.max_steps=4) ;;
        t1*) ;; # the caller sets the steps and the length
        *) limit=(--set train.max_steps=12) ;;
        esac
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

# T1: one epoch is one step of the fixed batch; warm-up + timed steps
T1=(--set "data.train=\"$T1_DATA\"" --set "model.input=[$T1_LEN]"
    --set "train.epochs=$((T1_WARMUP + T1_STEPS))" --set "train.batch_size=$T1_ROWS")

if want w1; then
    run w1-pretrain-1x1 1 1 w1-pretrain.cfg "${W1P[@]}"
    run w1-pretrain-2x1 2 1 w1-pretrain.cfg "${W1P[@]}"
    [ "$QUICK" = 1 ] || run w1-pretrain-1x2 1 2 w1-pretrain.cfg "${W1P[@]}"
    run w1-finetune-1x1 1 1 w1-finetune.cfg "${W1F[@]}"
    run w1-finetune-2x1 2 1 w1-finetune.cfg "${W1F[@]}"
    [ "$QUICK" = 1 ] || run w1-finetune-1x2 1 2 w1-finetune.cfg "${W1F[@]}"
    run w1-finetune-cache-1x1 1 1 w1-finetune.cfg "${W1F[@]}" --set 'train.feature_cache="memory"'
    run w1-finetune-cache-2x1 2 1 w1-finetune.cfg "${W1F[@]}" --set 'train.feature_cache="memory"'
fi
if want w2; then
    run w2-1x1 1 1 w2.cfg "${W2[@]}"
    run w2-2x1 2 1 w2.cfg "${W2[@]}"
    [ "$QUICK" = 1 ] || run w2-1x2 1 2 w2.cfg "${W2[@]}"
fi
if want t1; then
    run t1-1x1 1 1 t1-gpt2-small.cfg "${T1[@]}"
    [ "$QUICK" = 1 ] || run t1-1x2 1 2 t1-gpt2-small.cfg "${T1[@]}"
    # LoRA (issue 7): the same model with rank-8 adapters, base frozen, started from the full
    # row's model file so that its checkpoint and model files hold only the adapters and head
    T1L=("${T1[@]}" --set "pretrained.file=\"$WORK/t1-1x1/model.h5\"")
    run t1-lora-1x1 1 1 t1-gpt2-small-lora.cfg "${T1L[@]}"
    [ "$QUICK" = 1 ] || run t1-lora-1x2 1 2 t1-gpt2-small-lora.cfg "${T1L[@]}"
fi

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
    wls=()
    want w1 && wls+=(w1-pretrain w1-finetune)
    want w2 && wls+=(w2)
    if [ ${#wls[@]} -gt 0 ]; then
        BENCH_DATA=$DATA "$PY" bench/bench_torch.py all "${quick[@]}" \
            --workloads "$(IFS=,; echo "${wls[*]}")" --out "$TORCH_JSON" ||
            { echo "bench/run.sh: the PyTorch benchmark failed" >&2; exit 1; }
    fi
    if want t1; then
        "$PY" bench/bench_torch_gpt2.py all --data "$T1_DATA" "${quick[@]}" \
            --out "$WORK/torch_t1.json" ||
            { echo "bench/run.sh: the PyTorch T1 benchmark failed" >&2; exit 1; }
        "$PY" bench/bench_torch_gpt2.py all --lora --data "$T1_DATA" "${quick[@]}" \
            --out "$WORK/torch_t1_lora.json" ||
            { echo "bench/run.sh: the PyTorch T1 LoRA benchmark failed" >&2; exit 1; }
    fi
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/machine.txt"
echo "total time: $(($(date +%s) - T_START)) s" >>"$WORK/machine.txt"

# ---- report ------------------------------------------------------------------------------
"$REPORT_PY" bench/report.py --work "$WORK" --out "$OUT" --note "$TORCH_NOTE" \
    $([ "$QUICK" = 1 ] && echo --quick)

# shellcheck shell=bash
# shellcheck disable=SC2034
# Helpers for the Slurm and multi-host tests (t_slurm_*.sh, t_multinode.sh). Not a test itself
# (ctest runs tests/integration/*.sh; this file is .bash). Source it, then:
#
#   sl_init "$@"          $1 = ftune binary, $2 = source dir, $3 = build dir. Creates $TMP (a
#                         private temp dir, removed on exit; FT_KEEP_TMP=1 keeps it), cd's
#                         there, sets the Open MPI environment for root and loopback, and
#                         installs the cleanup trap (sl_on_exit hooks, then cluster stop).
#   sl_need_slurm         skip (77) unless root + slurmctld/slurmd/munged/sbatch/srun exist
#   sl_cluster_start PORT [CPUS]   a private cluster (scripts/local-slurm.sh) in $TMP/slurm
#                         (FTUNE_SLURM_NETNS exported: its nodes are netns hosts; run the
#                         clients with sl_client)
#   sl_submit ARGS...     sbatch --parsable ARGS, prints the job id (the cluster's SLURM_CONF)
#   sl_wait JOB [SECS]    waits until the job has left the queue (fatal on timeout)
#   sl_state JOB          "STATE EXIT" from scontrol (e.g. "COMPLETED 0:0")
#
# Each test starts one cluster, runs its jobs and stops the cluster by PID in the EXIT trap,
# also when a check fails or the test is interrupted.
set -euo pipefail

FAILS=0
SL_EXIT_HOOKS=()
SL_CLUSTER_DIR=

note() { printf '%s\n' "$*"; }
fail() {
    FAILS=$((FAILS + 1))
    printf 'FAIL: %s\n' "$*"
}
die() {
    fail "$*"
    exit 1
}
skip() {
    printf 'SKIP: %s\n' "$*"
    exit 77
}
sl_done() {
    if [ "$FAILS" -gt 0 ]; then
        printf '%d check(s) failed\n' "$FAILS"
        exit 1
    fi
    note "OK ($SECONDS s)"
    exit 0
}

sl_cleanup() {
    local rc=$? h
    trap - EXIT INT TERM
    if [ -n "$SL_CLUSTER_DIR" ]; then
        FTUNE_SLURM_DIR=$SL_CLUSTER_DIR bash "$SRC/scripts/local-slurm.sh" stop \
            >>"$TMP/cluster-stop.log" 2>&1 || true
    fi
    for h in "${SL_EXIT_HOOKS[@]}"; do # after the cluster (its daemons may live in netns)
        $h || true
    done
    if [ $rc != 0 ] && [ $rc != 77 ] && [ -n "${TMP:-}" ]; then
        sl_show_logs
    fi
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

# On failure: the tail of the job outputs and daemon logs, to explain it.
sl_show_logs() {
    local f
    for f in "$TMP"/*.out "$SL_CLUSTER_DIR"/log/slurmctld.log; do
        [ -s "$f" ] || continue
        printf -- '--- %s (last 15 lines)\n' "$f"
        tail -n 15 "$f"
    done
}

sl_init() {
    [ -n "${1:-}" ] || {
        echo "usage: $0 FTUNE_BIN [SOURCE_DIR [BUILD_DIR]]" >&2
        exit 2
    }
    FTUNE=$(realpath "$1")
    SRC=$(realpath "${2:-$(dirname "${BASH_SOURCE[0]}")/../..}")
    [ -x "$FTUNE" ] || die "ftune binary $1 not found"
    local tool
    for tool in mpirun h5diff awk timeout; do
        command -v "$tool" >/dev/null 2>&1 || skip "$tool not found (openmpi-bin, hdf5-tools)"
    done
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-$(basename "$0" .sh).XXXXXX")
    chmod 755 "$TMP"
    trap sl_cleanup EXIT
    trap 'exit 130' INT TERM
    cd "$TMP"
    # One BLAS thread per rank (ctest runs two tests at once on two cores); Open MPI as root,
    # TCP (if any) on loopback only, no binding (two jobs would pin to the same cores).
    export OPENBLAS_NUM_THREADS=1
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
    export OMPI_MCA_btl_vader_single_copy_mechanism=none
    export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
    # the templates in slurm/ read these
    export FTUNE FTUNE_MPIRUN_FLAGS="--bind-to none --oversubscribe"
}

sl_need_slurm() {
    local rc=0 msg
    msg=$(bash "$SRC/scripts/local-slurm.sh" check 2>&1) || rc=$?
    [ $rc = 0 ] || skip "${msg#local-slurm: }"
}

# sl_cluster_start PORT [CPUS]: PORT must differ between tests that may run at once.
sl_cluster_start() {
    SL_CLUSTER_DIR=$TMP/slurm
    local out rc=0 port=$1 try
    # ports in use (another cluster, another program): move up by 100, a few times
    for try in 1 2 3 4 5; do
        [ -z "${FTUNE_SLURM_NETNS:-}" ] && command -v ss >/dev/null 2>&1 || break
        [ -n "$(ss -Hltn "( sport = :$port or sport = :$((port + 1)) )" 2>/dev/null)" ] || break
        port=$((port + 100))
    done
    out=$(FTUNE_SLURM_DIR=$SL_CLUSTER_DIR FTUNE_SLURM_PORT=$port FTUNE_SLURM_CPUS=${2:-4} \
        bash "$SRC/scripts/local-slurm.sh" start 2>&1) || rc=$?
    if [ $rc != 0 ]; then
        printf '%s\n' "$out"
        die "could not start the Slurm cluster"
    fi
    export SLURM_CONF=$SL_CLUSTER_DIR/etc/slurm.conf
    note "cluster up (port $port, $SECONDS s)"
}

# sl_client CMD...: a Slurm client command for the cluster (on host h1 in netns mode)
sl_client() {
    if [ -n "${FTUNE_SLURM_NETNS:-}" ]; then
        FTUNE_SLURM_DIR=$SL_CLUSTER_DIR bash "$SRC/scripts/local-slurm.sh" run "$@"
    else
        "$@"
    fi
}

sl_submit() {
    sl_client sbatch --parsable "$@" | cut -d';' -f1
}

sl_state() {
    sl_client scontrol show job "$1" 2>/dev/null | tr -s ' \n' '\n\n' |
        awk -F= '$1 == "JobState" { s = $2 } $1 == "ExitCode" { e = $2 } END { print s, e }'
}

sl_wait() {
    local job=$1 lim=${2:-120} t0=$SECONDS
    while sl_client squeue -h -j "$job" 2>/dev/null | grep -q .; do
        if [ $((SECONDS - t0)) -gt "$lim" ]; then
            sl_client scancel "$job" 2>/dev/null || true
            die "job $job still queued after $lim s (state $(sl_state "$job"))"
        fi
        sleep 0.3
    done
}

# sl_wait_for FILE TEXT [SECS]: waits until FILE contains TEXT.
sl_wait_for() {
    local lim=${3:-60} t0=$SECONDS
    until grep -qF -- "$2" "$1" 2>/dev/null; do
        [ $((SECONDS - t0)) -le "$lim" ] || die "'$2' did not appear in $1 within $lim s"
        sleep 0.2
    done
}

# ---- data and configs -----------------------------------------------------------------------

# make_csv OUT N FEATURES CLASSES SEED [SIGNAL]: deterministic synthetic CSV (Park-Miller LCG,
# exact in every awk). Sample i has label i % CLASSES; feature j gets SIGNAL (default 1) added
# when j % CLASSES == label.
make_csv() {
    awk -v n="$2" -v f="$3" -v k="$4" -v s="$5" -v sig="${6:-1}" 'BEGIN {
        s = s % 2147483646 + 1
        for (i = 0; i < n; i++) {
            y = i % k; line = ""
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

# make_data OUT.h5 N FEATURES CLASSES SEED [SIGNAL]
make_data() {
    make_csv "$1.csv" "$2" "$3" "$4" "$5" "${6:-1}"
    "$FTUNE" data import-csv "$1.csv" -o "$1" --no-header >"$1.log" 2>&1 ||
        {
            cat "$1.log"
            die "ftune data import-csv $1 failed"
        }
    rm -f "$1.csv"
}

# write_pretrain_cfg FILE RUN_DIR TRAIN EVAL / write_finetune_cfg FILE RUN_DIR TRAIN EVAL
# PRETRAINED: the demo's two stages on 16 features: an MLP pretrained on 4 classes, then
# fine-tuned with fc1 frozen and a fresh head (fc2 re-initialised).
write_pretrain_cfg() {
    cat >"$1" <<EOF
run = { dir = "$2"; seed = 11; };
data = { train = "$3"; eval = "$4"; shuffle = true; };
model = {
  input = [16];
  layers = (
    { name = "fc1"; type = "dense"; units = 32; },
    { name = "relu1"; type = "relu"; },
    { name = "drop"; type = "dropout"; rate = 0.1; },
    { name = "fc2"; type = "dense"; units = 4; }
  );
};
train = {
  epochs = 2; batch_size = 32;
  optimizer = { type = "sgd"; lr = 0.05; momentum = 0.9; };
};
eval = { every = 0; best_metric = "accuracy"; };
checkpoint = { every = 0; keep_last = 2; };
log = { every = 10; progress = "auto"; };
EOF
}

write_finetune_cfg() {
    cat >"$1" <<EOF
run = { dir = "$2"; seed = 12; };
data = { train = "$3"; eval = "$4"; shuffle = true; };
model = {
  input = [16];
  layers = (
    { name = "fc1"; type = "dense"; units = 32; },
    { name = "relu1"; type = "relu"; },
    { name = "drop"; type = "dropout"; rate = 0.1; },
    { name = "fc2"; type = "dense"; units = 4; }
  );
};
pretrained = { file = "$5"; reinit = ["fc2"]; };
freeze = { upto = "relu1"; };
train = {
  epochs = 3; batch_size = 32;
  optimizer = { type = "sgd"; lr = 0.05; momentum = 0.9; };
  schedule = { type = "cosine"; };
};
eval = { every = 20; best_metric = "accuracy"; };
checkpoint = { every = 0; keep_last = 2; };
log = { every = 10; progress = "auto"; };
EOF
}

# ---- comparing results ----------------------------------------------------------------------

# h5_same A B PATH: bit-identical (h5diff exit 0). Not fatal.
h5_same() {
    local out rc=0
    out=$(h5diff "$1" "$2" "$3" 2>&1) || rc=$?
    if [ $rc != 0 ]; then
        fail "$3 differs between $1 and $2 (h5diff exit $rc)"
        printf '%s\n' "$out" | head -n 20
        return 1
    fi
    note "ok: $3 identical in $1 and $2"
}

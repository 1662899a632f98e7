#!/usr/bin/env bash
# One training job across 3 simulated hosts: network namespaces h1..h3 with their own
# addresses on a private subnet, joined by a bridge in a namespace of its own
# (scripts/netns-cluster.sh; nothing is added to the root namespace, so no packet leaves
# them), one rank per host, TCP between hosts. Three launches:
#   A  mpirun with a hostfile and an rsh agent (scripts/netns-mpirun.sh, scripts/netns-rsh.sh)
#   B  a Slurm cluster whose nodes are the three hosts (slurmctld on h1, one slurmd per host):
#      slurm/train-multinode-srun.sbatch (srun --mpi=pmix), -N 3 --ntasks-per-node=1
#   C  the same cluster: slurm/train-multinode-mpirun.sbatch (mpirun inside the allocation)
# Each must give the same weights as 3 ranks on one host (plain mpirun -np 3): bit-identical
# (the reduction order does not depend on the transport); within 1e-5 is reported but fails.
# Usage (ctest): t_multinode.sh FTUNE_BIN SOURCE_DIR BUILD_DIR. Skips without root or
# 'ip netns'; part B/C skip without the slurm-wlm and munge packages.
set -euo pipefail
# shellcheck source=tests/integration/t_slurm_lib.bash
source "$(dirname "$0")/t_slurm_lib.bash"
sl_init "$@"

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
for t in ip nsenter unshare; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not found (iproute2, util-linux)"
done
export FTUNE_NETNS_PREFIX=ftmn$$x FTUNE_NETNS_SUBNET=10.199.77
ip netns add "${FTUNE_NETNS_PREFIX}probe" 2>/dev/null ||
    skip "cannot create network namespaces here (ip netns add failed)"
ip netns del "${FTUNE_NETNS_PREFIX}probe"
netns_down() { bash "$SRC/scripts/netns-cluster.sh" down; }
SL_EXIT_HOOKS+=(netns_down)
bash "$SRC/scripts/netns-cluster.sh" up 3 || die "netns-cluster.sh up 3 failed"

make_data train.h5 960 16 4 501 0.6
make_data eval.h5 200 16 4 502 0.6
write_pretrain_cfg mn.cfg "$TMP/unset" "$TMP/train.h5" "$TMP/eval.h5"

# ---- reference: 3 ranks on one host ---------------------------------------------------------
timeout 120 mpirun -np 3 "$FTUNE" train mn.cfg --set 'run.dir="ref"' >ref.log 2>&1 || {
    tail -n 20 ref.log
    die "the 3-rank reference run failed"
}
note "ok: reference (3 ranks, one host) done ($SECONDS s)"

# same_model NAME: NAME/model.h5 equals ref/model.h5
same_model() {
    local rc=0
    [ -f "$1/model.h5" ] || {
        fail "[$1] no model written"
        return 1
    }
    h5diff -q ref/model.h5 "$1/model.h5" /model >/dev/null 2>&1 || rc=$?
    if [ $rc = 0 ]; then
        note "ok: [$1] weights bit-identical to 3 ranks on one host"
    elif h5diff -q -d 1e-5 ref/model.h5 "$1/model.h5" /model >/dev/null 2>&1; then
        fail "[$1] weights equal within 1e-5 but not bit-identical to 3 ranks on one host"
    else
        fail "[$1] weights differ from 3 ranks on one host"
        h5diff -d 1e-5 ref/model.h5 "$1/model.h5" /model | head -n 10
    fi
}

# ---- A: mpirun + hostfile + rsh agent ---------------------------------------------------------
export OMPI_MCA_btl_tcp_if_include=mpi0 OMPI_MCA_oob_tcp_if_include=mpi0 OMPI_MCA_pml=ob1
printf 'h1 slots=1\nh2 slots=1\nh3 slots=1\n' >hostfile
# (Open MPI may add a harmless "plm:rsh: Warning: setpgid(...) failed" line: names only)
hosts=$(timeout 60 bash "$SRC/scripts/netns-mpirun.sh" -np 3 --hostfile hostfile hostname 2>&1 |
    grep -E '^h[0-9]+$' | sort | paste -sd' ' -) || true
[ "$hosts" = "h1 h2 h3" ] || fail "ranks ran on '$hosts', expected h1 h2 h3"
timeout 120 bash "$SRC/scripts/netns-mpirun.sh" -np 3 --hostfile hostfile \
    "$FTUNE" train mn.cfg --set 'run.dir="mpirun-hostfile"' >mpirun-hostfile.log 2>&1 || {
    tail -n 20 mpirun-hostfile.log
    fail "mpirun across h1..h3 failed"
}
same_model mpirun-hostfile
note "A done ($SECONDS s)"

# ---- B, C: a Slurm cluster of the three hosts ------------------------------------------------
rc=0
msg=$(bash "$SRC/scripts/local-slurm.sh" check 2>&1) || rc=$?
if [ $rc != 0 ]; then
    note "SKIP parts B and C (Slurm): ${msg#local-slurm: }"
    sl_done
fi
export FTUNE_SLURM_NETNS=$FTUNE_NETNS_PREFIX
sl_cluster_start 17851 2
jb=$(sl_submit -N 3 --ntasks-per-node=1 -o srun.out "$SRC/slurm/train-multinode-srun.sbatch" \
    mn.cfg --set 'run.dir="srun-pmix"')
jc=$(sl_submit -N 3 --ntasks-per-node=1 -o mpirun.out \
    "$SRC/slurm/train-multinode-mpirun.sbatch" mn.cfg --set 'run.dir="mpirun-slurm"')
sl_wait "$jb" 120
sl_wait "$jc" 120
for j in "$jb:srun" "$jc:mpirun"; do
    st=$(sl_state "${j%%:*}")
    [ "$st" = "COMPLETED 0:0" ] || fail "job ${j%%:*} (${j#*:}) ended as '$st'"
    grep -qF "slurm: job ${j%%:*}, 3 nodes, 3 ranks, restart 0" "${j#*:}.out" ||
        fail "${j#*:}.out lacks 'slurm: job ${j%%:*}, 3 nodes, 3 ranks'"
done
same_model srun-pmix
same_model mpirun-slurm
sl_done

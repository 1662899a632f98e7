#!/usr/bin/env bash
# netns-mpirun.sh - mpirun across the simulated hosts of scripts/netns-cluster.sh: mpirun runs
# on h1 and starts its daemons on the other hosts through scripts/netns-rsh.sh; MPI traffic
# goes over TCP on mpi0 (shared memory between ranks of one host). Arguments are mpirun's:
#
#   scripts/netns-mpirun.sh -np 3 --host h1,h2,h3 build/ftune train CFG
#   scripts/netns-mpirun.sh -np 4 --hostfile HOSTFILE build/ftune train CFG
#
# Open MPI refuses to run as root unless told: set OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (this script does not do it for you).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${FTUNE_NETNS_PREFIX:-fth}
# 'ip netns exec' also gives the host table of /etc/netns/PREFIX1/hosts (h1..hN)
exec ip netns exec "${PREFIX}1" unshare --uts /bin/sh -c \
    'hostname h1 && exec "$@"' sh \
    mpirun --mca plm rsh --mca plm_rsh_agent "$HERE/netns-rsh.sh" \
    --mca ras ^slurm --mca ess ^slurm \
    --mca btl self,vader,tcp --mca btl_tcp_if_include mpi0 --mca oob_tcp_if_include mpi0 \
    --mca pml ob1 "$@"

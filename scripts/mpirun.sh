#!/usr/bin/env bash
# mpirun with the flags this machine needs: --allow-run-as-root as root,
# --oversubscribe when there are more ranks than cores, and one core per rank
# otherwise. Usage: scripts/mpirun.sh NP COMMAND [ARGS...]
set -euo pipefail
np="$1"
shift
flags=(-np "$np")
if [ "$(id -u)" = 0 ]; then
    flags+=(--allow-run-as-root)
fi
cores=$(nproc)
if [ "$np" -gt "$cores" ]; then
    flags+=(--oversubscribe --bind-to none)
else
    flags+=(--bind-to core)
fi
# Keep Open MPI quiet about missing high-speed fabrics on a workstation.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
exec mpirun "${flags[@]}" "$@"

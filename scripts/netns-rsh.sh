#!/usr/bin/env bash
# netns-rsh.sh - stands in for ssh as Open MPI's rsh launcher (plm_rsh_agent) on the simulated
# hosts of scripts/netns-cluster.sh: "netns-rsh.sh [ssh options] hK COMMAND..." runs COMMAND
# with /bin/sh (as sshd would) in namespace PREFIXK under the hostname hK. A host may also be
# given by its address (SUBNET.K). FTUNE_NETNS_PREFIX / FTUNE_NETNS_SUBNET as for
# netns-cluster.sh (mpirun passes its environment on to this script).
PREFIX=${FTUNE_NETNS_PREFIX:-fth}
SUBNET=${FTUNE_NETNS_SUBNET:-10.199.77}
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do # ssh-style options Open MPI may add
    case $1 in
    -o | -l | -p | -i) shift 2 ;;
    *) shift ;;
    esac
done
host=$1
shift
case $host in
h[0-9]*) k=${host#h} ;;
"$SUBNET".[0-9]*) k=${host##*.} ;;
*)
    echo "netns-rsh.sh: unknown host '$host'" >&2
    exit 255
    ;;
esac
[ -e "/run/netns/$PREFIX$k" ] || {
    echo "netns-rsh.sh: no namespace $PREFIX$k (scripts/netns-cluster.sh up)" >&2
    exit 255
}
# ssh joins its arguments with spaces for the remote shell; so do we
# 'ip netns exec' also gives the host table of /etc/netns/PREFIXK/hosts (h1..hN)
exec ip netns exec "$PREFIX$k" unshare --uts /bin/sh -c \
    'hostname "$0" && exec /bin/sh -c "$1"' "h$k" "$*"

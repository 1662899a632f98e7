#!/usr/bin/env bash
# netns-cluster.sh - simulated hosts on one machine, for trying multi-node runs (and for
# tests/integration/t_multinode.sh): N network namespaces, each a "host" hK with its own
# address on a private subnet, joined by a bridge that lives in a namespace of its own.
# Nothing is added to the root namespace (no interface, address or route), so no traffic can
# leave these namespaces. Needs root and iproute2.
#
#   scripts/netns-cluster.sh up [N]      create hosts h1..hN (default 3)
#   scripts/netns-cluster.sh down        delete them (processes still inside are reported)
#   scripts/netns-cluster.sh status
#   scripts/netns-cluster.sh on K CMD... run CMD on host hK (its network, hostname hK)
#
# Then: scripts/netns-mpirun.sh -np 3 --host h1,h2,h3 build/ftune train CFG (mpirun on h1,
# daemons on the other hosts through scripts/netns-rsh.sh), or a Slurm cluster whose nodes are
# these hosts: FTUNE_SLURM_NETNS=<prefix> scripts/local-slurm.sh start.
#
# Environment: FTUNE_NETNS_PREFIX (namespace names PREFIX1..N and PREFIXsw; default fth),
# FTUNE_NETNS_SUBNET (first three octets, default 10.199.77): host K is SUBNET.K/24 on the
# interface mpi0. /etc/netns/PREFIXK/hosts maps h1..hN for tools run with 'ip netns exec'.
set -euo pipefail
PREFIX=${FTUNE_NETNS_PREFIX:-fth}
SUBNET=${FTUNE_NETNS_SUBNET:-10.199.77}
SW=${PREFIX}sw

log() { echo "[netns-cluster] $*" >&2; }

hosts() { find /run/netns -maxdepth 1 -name "${PREFIX}[0-9]*" -printf '%f\n' 2>/dev/null | sort -V; }

up() {
    local n=${1:-3} i ns
    [ "$(id -u)" = 0 ] || { log "needs root"; exit 77; }
    command -v ip >/dev/null || { log "ip (iproute2) not found"; exit 77; }
    [ -z "$(hosts)" ] || { log "namespaces ${PREFIX}* exist already: run '$0 down' first"; exit 1; }
    ip netns add "$SW"
    ip -n "$SW" link set lo up
    ip -n "$SW" link add br0 type bridge
    ip netns exec "$SW" sysctl -qw net.ipv6.conf.br0.disable_ipv6=1 || true
    ip -n "$SW" link set br0 up
    local table="127.0.0.1 localhost"$'\n'
    for i in $(seq 1 "$n"); do table+="$SUBNET.$i h$i"$'\n'; done
    for i in $(seq 1 "$n"); do
        ns=$PREFIX$i
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # the pair is created straight inside the two namespaces: never in the root namespace
        ip link add mpi0 netns "$ns" type veth peer name "p$i" netns "$SW"
        ip netns exec "$SW" sysctl -qw "net.ipv6.conf.p$i.disable_ipv6=1" || true
        ip -n "$SW" link set "p$i" master br0
        ip -n "$SW" link set "p$i" up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.mpi0.disable_ipv6=1 || true
        ip -n "$ns" addr add "$SUBNET.$i/24" dev mpi0
        ip -n "$ns" link set mpi0 up
        mkdir -p "/etc/netns/$ns"
        printf '%s' "$table" >"/etc/netns/$ns/hosts"
    done
    log "up: hosts h1..h$n = namespaces ${PREFIX}1..$n on $SUBNET.0/24"
}

down() {
    local ns pids
    for ns in $(hosts) $(find /run/netns -maxdepth 1 -name "$SW" -printf '%f\n' 2>/dev/null); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] || log "WARNING: processes still in $ns: $(echo $pids) (not killed)"
        ip netns del "$ns" || true
        [ "$ns" = "$SW" ] || rm -rf "/etc/netns/$ns"
    done
    rmdir /etc/netns 2>/dev/null || true
}

status() {
    local ns
    for ns in $(hosts); do echo "$ns: $(ip -n "$ns" -br addr show mpi0 2>/dev/null)"; done
}

# on K CMD...: enter hK's network namespace with nsenter (not 'ip netns exec', which remounts
# /sys: slurmd then finds no cgroup file system) and a UTS namespace with hostname hK.
on() {
    local k=$1
    shift
    [ -e "/run/netns/$PREFIX$k" ] || { log "no host h$k (namespace $PREFIX$k)"; exit 1; }
    exec nsenter --net="/run/netns/$PREFIX$k" -- unshare --uts /bin/sh -c \
        'hostname "$0" && exec "$@"' "h$k" "$@"
}

case ${1:-} in
up) up "${2:-3}" ;;
down) down ;;
status) status ;;
on)
    shift
    on "$@"
    ;;
*)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
    ;;
esac

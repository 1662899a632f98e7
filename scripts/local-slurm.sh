#!/usr/bin/env bash
# local-slurm.sh - a throw-away Slurm cluster on this machine, for trying the job scripts in
# slurm/ and for the Slurm integration tests (tests/integration/t_slurm_*.sh). Needs root and
# Debian's slurm-wlm and munge packages (scripts/install-deps.sh --with-optional).
#
#   scripts/local-slurm.sh start     munged + slurmctld + slurmd(s); waits until nodes are idle
#   scripts/local-slurm.sh stop      cancels the jobs, stops exactly the daemons it started
#   scripts/local-slurm.sh status    daemons, sinfo, squeue
#   scripts/local-slurm.sh env       prints 'export SLURM_CONF=...' (clients need it)
#   scripts/local-slurm.sh run CMD   runs a client command (sbatch, squeue, ...) for this cluster
#                                    (in netns mode: on host 1)
#   scripts/local-slurm.sh check     exit 0 if the packages and root are there, else print why
#                                    and exit 77
#
# Everything lives in $FTUNE_SLURM_DIR: config, state, logs, its own munged with its own key
# and socket (so several clusters can run side by side and stopping one never touches
# another, nor a munged of the system). Nothing is written to /etc. Daemons run in the
# foreground under setsid; their PIDs are recorded and only those PIDs are ever signalled.
#
# Environment:
#   FTUNE_SLURM_DIR      state directory (default /tmp/ftune-slurm)
#   FTUNE_SLURM_PORT     slurmctld port; slurmd ports follow it (default 17817)
#   FTUNE_SLURM_CPUS     CPUs each node advertises (default 4; more than the machine has is
#                        fine: SlurmdParameters=config_overrides)
#   FTUNE_SLURM_NODES    number of nodes (default 1, named after this host). N > 1 starts N
#                        slurmd on this machine (nodes n1..nN, each in its own UTS namespace
#                        so hostnames differ; they share 127.0.0.1)
#   FTUNE_SLURM_NETNS    PREFIX: nodes are the simulated hosts of scripts/netns-cluster.sh
#                        (network namespaces PREFIX1..PREFIXN, hosts h1..hN); slurmctld runs
#                        on h1 and clients must run there too ('run')
#   FTUNE_SLURM_REQUEUE_DELAY  seconds before a requeued job may start again (default 5;
#                        Slurm's AuthInfo cred_expire, 120 by default on a real cluster)
set -euo pipefail

DIR=${FTUNE_SLURM_DIR:-/tmp/ftune-slurm}
PORT=${FTUNE_SLURM_PORT:-17817}
CPUS=${FTUNE_SLURM_CPUS:-4}
NNODES=${FTUNE_SLURM_NODES:-1}
NETNS=${FTUNE_SLURM_NETNS:-}
DELAY=${FTUNE_SLURM_REQUEUE_DELAY:-5}
CONF=$DIR/etc/slurm.conf
SOCK=$DIR/munge/run/munge.socket
export SLURM_CONF=$CONF

log() { printf '[local-slurm %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# ---- checks ---------------------------------------------------------------------------------

check() {
    local why=""
    [ "$(id -u)" = 0 ] || why="needs root (slurmd and munged run as root/munge)"
    local p
    for p in slurmctld slurmd munged munge sbatch srun scontrol squeue; do
        [ -n "$why" ] && break
        command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] ||
            why="$p not found (Debian packages slurm-wlm and munge: scripts/install-deps.sh --with-optional)"
    done
    if [ -z "$why" ] && [ -n "$NETNS" ]; then
        command -v ip >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 &&
            command -v unshare >/dev/null 2>&1 || why="ip, nsenter or unshare not found"
    fi
    if [ -n "$why" ]; then
        echo "local-slurm: $why" >&2
        return 77
    fi
}

# ---- process helpers ------------------------------------------------------------------------

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
# pid_is PID COMM: alive and still that program (guards against PID reuse)
pid_is() { pid_alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
pid_of() { cat "$DIR/$1.pid.ours" 2>/dev/null || true; }

# spawn NAME COMMAND...: start fully detached; every wrapper in COMMAND execs, so $! is the
# daemon itself (they all run in the foreground).
spawn() {
    local name=$1
    shift
    setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
    echo $! >"$DIR/$name.pid.ours"
}

# on K CMD...: run CMD on simulated host hK (netns mode) or here.
on() {
    local k=$1
    shift
    if [ -n "$NETNS" ]; then
        nsenter --net="/run/netns/$NETNS$k" -- unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' \
            "h$k" "$@"
    else
        "$@"
    fi
}
client() { on 1 "$@"; }

# ---- munge ----------------------------------------------------------------------------------

munge_ok() { munge --socket="$SOCK" -n </dev/null 2>/dev/null | unmunge --socket="$SOCK" >/dev/null 2>&1; }

start_munge() {
    install -d -o munge -g munge -m 0700 "$DIR/munge"
    install -d -o munge -g munge -m 0755 "$DIR/munge/run"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chown munge:munge "$DIR/munge/munge.key"
        chmod 0400 "$DIR/munge/munge.key"
    fi
    chmod 0755 "$DIR/munge" # clients must reach the socket in run/
    spawn munged setpriv --reuid=munge --regid=munge --init-groups \
        "$(command -v munged || echo /usr/sbin/munged)" -F --force --socket="$SOCK" \
        --key-file="$DIR/munge/munge.key" --pid-file="$DIR/munge/run/munged.pid" \
        --log-file="$DIR/munge/run/munged.log" --seed-file="$DIR/munge/run/munged.seed"
    local _
    for _ in $(seq 100); do
        munge_ok && return 0
        pid_alive "$(pid_of munged)" || break
        sleep 0.1
    done
    cat "$DIR/log/munged.out" >&2 2>/dev/null || true
    die "munged did not come up (see $DIR/log/munged.out, $DIR/munge/run/munged.log)"
}

# ---- configuration --------------------------------------------------------------------------

nodes() {
    if [ -n "$NETNS" ]; then
        seq -f 'h%g' 1 "$NNODES"
    elif [ "$NNODES" -gt 1 ]; then
        seq -f 'n%g' 1 "$NNODES"
    else
        hostname -s
    fi
}

write_conf() {
    local ctld_host ctld_addr n i=0
    if [ -n "$NETNS" ]; then
        ctld_host=h1
        ctld_addr=$(netns_addr 1)
    else
        ctld_host=$(hostname -s)
        ctld_addr=127.0.0.1
    fi
    install -d -m 0755 "$DIR"/{etc,log,ctld,spool,run,tmp}
    for n in $(nodes); do
        install -d -m 0755 "$DIR/spool/$n"
        install -d -m 1777 "$DIR/tmp/$n"
    done
    cat >"$CONF" <<EOF
# generated by scripts/local-slurm.sh
ClusterName=ftunetest
SlurmctldHost=$ctld_host($ctld_addr)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# our own munged; cred_expire is also how long a requeued job waits before it starts again
AuthInfo=socket=$SOCK,cred_expire=$DELAY
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# per node: the PMIx plugin keeps spmix_appdir_* here
TmpFS=$DIR/tmp/%n
# no cgroups needed (works in containers)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MpiDefault=pmix
SwitchType=switch/none
SchedulerType=sched/backfill
# look at the queue every second: a requeued job starts as soon as its delay is over
SchedulerParameters=bf_interval=1,sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# nodes may advertise more CPUs than the machine has
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=600
MessageTimeout=10
JobRequeue=1
MaxArraySize=1001
EOF
    for n in $(nodes); do
        i=$((i + 1))
        if [ -n "$NETNS" ]; then
            echo "NodeName=$n NodeAddr=$(netns_addr "$i") CPUs=$CPUS RealMemory=1000 State=UNKNOWN"
        elif [ "$NNODES" -gt 1 ]; then
            echo "NodeName=$n NodeHostname=$n NodeAddr=127.0.0.1 Port=$((PORT + 1 + i)) CPUs=$CPUS RealMemory=1000 State=UNKNOWN"
        else
            echo "NodeName=$n NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN"
        fi
    done >>"$CONF"
    echo "PartitionName=debug Nodes=$(nodes | paste -sd, -) Default=YES MaxTime=INFINITE State=UP" >>"$CONF"
}

# address of simulated host K (netns-cluster.sh writes it into /etc/netns/PREFIXK/hosts)
netns_addr() {
    awk -v h="h$1" '$2 == h { print $1; exit }' "/etc/netns/$NETNS$1/hosts"
}

# ---- start / stop ---------------------------------------------------------------------------

start() {
    check || exit $?
    local t0=$SECONDS n i=0
    mkdir -p "$DIR/log"
    for n in munged slurmctld; do
        pid_is "$(pid_of $n)" "$n" && die "$n already running (pid $(pid_of $n)); run '$0 stop' first"
    done
    if [ -n "$NETNS" ]; then
        [ -e "/run/netns/${NETNS}1" ] || die "no namespace ${NETNS}1: run scripts/netns-cluster.sh up first"
        NNODES=$(find /run/netns -maxdepth 1 -name "${NETNS}[0-9]*" | wc -l)
    fi
    start_munge
    write_conf
    log "starting slurmctld (port $PORT, conf $CONF)"
    local ctld
    ctld=$(command -v slurmctld || echo /usr/sbin/slurmctld)
    if [ -n "$NETNS" ]; then
        spawn slurmctld nsenter --net="/run/netns/${NETNS}1" -- unshare --uts /bin/sh -c \
            'hostname h1 && exec "$@"' sh "$ctld" -D -c -i -f "$CONF"
    else
        spawn slurmctld "$ctld" -D -c -i -f "$CONF"
    fi
    local _
    for _ in $(seq 100); do
        client scontrol ping 2>/dev/null | grep -q 'is UP' && break
        pid_alive "$(pid_of slurmctld)" || break
        sleep 0.2
    done
    client scontrol ping 2>/dev/null | grep -q 'is UP' ||
        die "slurmctld is not answering (see $DIR/log/slurmctld.*)"
    local slurmd
    slurmd=$(command -v slurmd || echo /usr/sbin/slurmd)
    for n in $(nodes); do
        i=$((i + 1))
        if [ -n "$NETNS" ]; then
            # nsenter, not 'ip netns exec': that remounts /sys and slurmd then finds no cgroup fs
            spawn "slurmd-$n" nsenter --net="/run/netns/$NETNS$i" -- unshare --uts /bin/sh -c \
                'hostname "$0" && exec "$@"' "$n" "$slurmd" -D -N "$n" -f "$CONF"
        elif [ "$NNODES" -gt 1 ]; then
            # own UTS namespace: Open MPI names shared-memory files after the host name
            spawn "slurmd-$n" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "$n" \
                "$slurmd" -D -N "$n" -f "$CONF"
        else
            spawn "slurmd-$n" "$slurmd" -D -N "$n" -f "$CONF"
        fi
    done
    local states=""
    for _ in $(seq 150); do
        states=$(client sinfo -h -N -o '%t' 2>/dev/null | sort -u | tr '\n' ' ' || true)
        [ "$states" = "idle " ] && break
        sleep 0.2
    done
    [ "$states" = "idle " ] || die "nodes are not idle (states '$states'; see $DIR/log/)"
    log "up in $((SECONDS - t0)) s: $(nodes | paste -sd' ' -), $CPUS CPUs each"
    echo "export SLURM_CONF=$CONF"
}

# stop_pids NAME...: SIGTERM the recorded PIDs (only while they are still those programs),
# wait up to 10 s, then SIGKILL what is left.
stop_pids() {
    local name pid pids=() _
    for name in "$@"; do
        pid=$(pid_of "$name")
        if pid_is "$pid" "${name%%-*}"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$DIR/$name.pid.ours"
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for _ in $(seq 100); do
        local alive=0
        for pid in "${pids[@]}"; do pid_alive "$pid" && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        pid_alive "$pid" && { log "pid $pid ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
    done
    return 0
}

stop() {
    [ -d "$DIR" ] || return 0
    if pid_is "$(pid_of slurmctld)" slurmctld; then
        local jobs _
        jobs=$(client squeue -h -o '%A' 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            client scancel $jobs 2>/dev/null || true
            for _ in $(seq 75); do
                [ -z "$(client squeue -h -o '%A' 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    local f ds=()
    for f in "$DIR"/slurmd-*.pid.ours; do
        [ -e "$f" ] && ds+=("$(basename "$f" .pid.ours)")
    done
    stop_pids "${ds[@]}" slurmctld
    stop_pids munged
}

status() {
    local f name
    for f in "$DIR"/*.pid.ours; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid.ours)
        if pid_is "$(pid_of "$name")" "${name%%-*}"; then
            echo "$name: pid $(pid_of "$name")"
        else
            echo "$name: not running"
        fi
    done
    client sinfo 2>/dev/null || true
    client squeue 2>/dev/null || true
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
env) echo "export SLURM_CONF=$CONF" ;;
run)
    shift
    client "$@"
    ;;
check) check ;;
*)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
    ;;
esac

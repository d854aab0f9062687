#!/usr/bin/env bash
# A local cluster on loopback: standalone name servers and broker groups
# of one master and its slaves, each its own `shardmq serve` with its own
# data directory, everything under one directory.
#
#   scripts/cluster.sh start [options]   start (builds target/release/shardmq first)
#   scripts/cluster.sh status            what runs, with its ports
#   scripts/cluster.sh stop              SIGTERM everything, wait for it
#
# Options (or the variables in brackets):
#   --dir DIR        everything under DIR                      [CLUSTER_DIR, ./cluster]
#   --namesrvs N     1 or 3 name servers                       [NAMESRVS, 1]
#   --groups N       broker groups (broker-a, broker-b, ...)   [NGROUPS, 2]
#   --slaves N       slaves per group                          [SLAVES, 1]
#   --role ROLE      SYNC_MASTER or ASYNC_MASTER               [ROLE, SYNC_MASTER]
#   --shards N       shards per broker                         [SHARDS, 2]
#   --flush MODE     SYNC_FLUSH or ASYNC_FLUSH                 [FLUSH, SYNC_FLUSH]
#   --base PORT      first port                                [BASE, 20000]
#   --segment-mb N   CommitLog segment size in MiB             [SEGMENT_MB, 128]
#   --controllers N  0, 1 or 3 controllers: automatic failover [CONTROLLERS, 0]
#   --ctl-timeout-ms N  controllers fail a master over after this [CTL_TIMEOUT_MS, 3000]
#                    (brokers heartbeat every N/6 ms and hold a 2N/3 ms lease)
#
# Each shard keeps its active segment and a prepared next one (zero-filled
# with SYNC_FLUSH): 2 × SEGMENT_MB per shard per broker on disk at once,
# 2 GiB for the default 4 brokers × 2 shards (the broker's own default
# segment, 1 GiB, would make that 16 GiB).
#
# Ports: name server i listens on BASE+i. Broker j (groups in order, the
# master first, then its slaves) owns BASE+1000*(j+1) .. +999:
#   +0 remoting, +10.. shard ports, +300.. replication (haListenPort),
#   +600 gRPC (+610.. per shard), +900 REST, +950 metrics.
# Clients use the name servers: `-n 127.0.0.1:20000` (`;`-separated when 3).
#
# Controllers (--controllers 1|3) listen on BASE+100+i. With them every
# broker runs in controller mode (brokerId 1.. as its identity, --role
# says how a master acknowledges): the controller names each group's
# master and elects an in-sync slave when the master dies; a master
# that was replaced starts again in place and rejoins as a slave (with
# restartWhenDemoted=false it exits with status 3 and this script starts
# it again). `shardmq admin controller groups --controllers
# 127.0.0.1:20100;...` shows masters, epochs and in-sync sets. Without
# controllers failover is manual: a dead master's slaves keep serving
# reads; restart the master (same directory) to take writes.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
shift || true
DIR=${CLUSTER_DIR:-./cluster}
NAMESRVS=${NAMESRVS:-1}
NGROUPS=${NGROUPS:-2}
SLAVES=${SLAVES:-1}
ROLE=${ROLE:-SYNC_MASTER}
SHARDS=${SHARDS:-2}
FLUSH=${FLUSH:-SYNC_FLUSH}
BASE=${BASE:-20000}
SEGMENT_MB=${SEGMENT_MB:-128}
CONTROLLERS=${CONTROLLERS:-0}
CTL_TIMEOUT_MS=${CTL_TIMEOUT_MS:-3000}
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=$2; shift 2 ;;
        --namesrvs) NAMESRVS=$2; shift 2 ;;
        --groups) NGROUPS=$2; shift 2 ;;
        --slaves) SLAVES=$2; shift 2 ;;
        --role) ROLE=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --flush) FLUSH=$2; shift 2 ;;
        --base) BASE=$2; shift 2 ;;
        --segment-mb) SEGMENT_MB=$2; shift 2 ;;
        --controllers) CONTROLLERS=$2; shift 2 ;;
        --ctl-timeout-ms) CTL_TIMEOUT_MS=$2; shift 2 ;;
        *) echo "unknown option $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done
BIN=${SHARDMQ_BIN:-target/release/shardmq}

die() { echo "cluster: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_ready() { # log file, what
    for _ in $(seq 1 300); do
        grep -q "shardmq ready" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    tail -20 "$1" >&2
    die "$2 did not become ready (log: $1)"
}

# Runs a broker, and again whenever it exits with status 3 (demoted by the
# controller: it rejoins as a slave); SIGTERM goes to the broker.
supervise() { # conf, log
    (
        child=
        trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM
        while :; do
            "$BIN" serve -c "$1" >>"$2" 2>&1 &
            child=$!
            rc=0
            wait "$child" || rc=$?
            [ "$rc" -eq 3 ] || exit "$rc"
            echo "cluster.sh: demoted; starting again as a slave" >>"$2"
        done
    ) </dev/null >/dev/null 2>&1 &
}

# Waits until the controllers name a master for group $1.
wait_master() {
    for _ in $(seq 1 300); do
        # The table's row: | cluster broker master epoch ... |
        "$BIN" admin controller groups --controllers "$ctl_list" 2>/dev/null |
            awk -v n="$1" '$3 == n && $4 ~ /^[0-9]+$/ { ok = 1 } END { exit !ok }' && return 0
        sleep 0.1
    done
    die "the controllers named no master for $1"
}

start() {
    case "$NAMESRVS" in 1|3) ;; *) die "--namesrvs is 1 or 3" ;; esac
    case "$CONTROLLERS" in 0|1|3) ;; *) die "--controllers is 0, 1 or 3" ;; esac
    case "$ROLE" in SYNC_MASTER|ASYNC_MASTER) ;; *) die "--role is SYNC_MASTER or ASYNC_MASTER" ;; esac
    [ "$NGROUPS" -ge 1 ] && [ "$NGROUPS" -le 26 ] || die "--groups is 1..26"
    [ $((BASE + 1000 * NGROUPS * (SLAVES + 1) + 1000)) -le 65535 ] || die "too many brokers for --base $BASE"
    if [ -z "${SHARDMQ_BIN:-}" ]; then
        cargo build --release --bin shardmq >/dev/null
    fi
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    ns_list=""
    for i in $(seq 0 $((NAMESRVS - 1))); do
        port=$((BASE + i))
        pid="$DIR/namesrv-$i.pid"
        alive "$pid" && die "name server $i already runs (pid $(cat "$pid")); stop first"
        "$BIN" namesrv --port "$port" >"$DIR/namesrv-$i.log" 2>&1 &
        echo $! >"$pid"
        ns_list="${ns_list:+$ns_list;}127.0.0.1:$port"
    done
    for i in $(seq 0 $((NAMESRVS - 1))); do
        port=$((BASE + i))
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
    done
    ctl_list=""
    peers=""
    for i in $(seq 0 $((CONTROLLERS - 1))); do
        peers="${peers:+$peers,}$((i + 1))=127.0.0.1:$((BASE + 100 + i))"
        ctl_list="${ctl_list:+$ctl_list;}127.0.0.1:$((BASE + 100 + i))"
    done
    for i in $(seq 0 $((CONTROLLERS - 1))); do
        pid="$DIR/controller-$i.pid"
        alive "$pid" && die "controller $i already runs (pid $(cat "$pid")); stop first"
        mkdir -p "$DIR/controller-$i"
        "$BIN" controller --id $((i + 1)) --peers "$peers" --data-dir "$DIR/controller-$i" \
            --heartbeat-timeout-ms "$CTL_TIMEOUT_MS" \
            >"$DIR/controller-$i.log" 2>&1 &
        echo $! >"$pid"
    done
    if [ "$CONTROLLERS" -gt 0 ]; then
        for _ in $(seq 1 300); do
            "$BIN" admin controller status --controllers "$ctl_list" --json 2>/dev/null |
                grep -q '"leader_id": [0-9]' && break
            sleep 0.1
        done
        echo "controllers: $ctl_list"
    fi
    j=0
    for g in $(seq 0 $((NGROUPS - 1))); do
        name="broker-$(printf "\\$(printf '%03o' $((97 + g)))")"
        master_ha=$((BASE + 1000 * (j + 1) + 300))
        for m in $(seq 0 "$SLAVES"); do
            b=$((BASE + 1000 * (j + 1)))
            id="$name-$m"
            pid="$DIR/$id.pid"
            alive "$pid" && die "$id already runs (pid $(cat "$pid")); stop first"
            mkdir -p "$DIR/$id"
            if [ "$CONTROLLERS" -gt 0 ]; then
                role="brokerRole=$ROLE"
                extra="enableControllerMode=true
controllerAddr=$ctl_list
brokerHeartbeatInterval=$((CTL_TIMEOUT_MS / 6 > 100 ? CTL_TIMEOUT_MS / 6 : 100))
masterLeaseMillis=$((CTL_TIMEOUT_MS * 2 / 3))"
            elif [ "$m" -eq 0 ]; then
                role="brokerRole=$ROLE"
                extra=""
            else
                role="brokerRole=SLAVE"
                extra="haMasterAddress=127.0.0.1:$master_ha"
            fi
            cat >"$DIR/$id/broker.conf" <<EOF
brokerClusterName=LocalCluster
brokerName=$name
brokerId=$((m + (CONTROLLERS > 0 ? 1 : 0)))
$role
$extra
flushDiskType=$FLUSH
mapedFileSizeCommitLog=$((SEGMENT_MB * 1024 * 1024))
namesrvAddr=$ns_list
embeddedNamesrvEnable=false
brokerIP1=127.0.0.1
storePathRootDir=$DIR/$id/store
shardCount=$SHARDS
listenPort=$b
shardListenPortBase=$((b + 10))
haListenPort=$((b + 300))
grpcListenPort=$((b + 600))
grpcShardPortBase=$((b + 610))
httpListenPort=$((b + 900))
metricsPort=$((b + 950))
EOF
            if [ "$CONTROLLERS" -gt 0 ]; then
                supervise "$DIR/$id/broker.conf" "$DIR/$id/broker.log"
            else
                "$BIN" serve -c "$DIR/$id/broker.conf" >"$DIR/$id/broker.log" 2>&1 &
            fi
            echo $! >"$pid"
            wait_ready "$DIR/$id/broker.log" "$id"
            # The group's first broker is master once the controllers say so
            # (the next ones then follow it).
            [ "$CONTROLLERS" -gt 0 ] && [ "$m" -eq 0 ] && wait_master "$name"
            echo "$id ($(grep '^brokerRole' "$DIR/$id/broker.conf" | cut -d= -f2)) on 127.0.0.1:$b, pid $(cat "$pid")"
            j=$((j + 1))
        done
    done
    echo "name servers: $ns_list"
    echo "data and logs: $DIR"
}

status() {
    [ -d "$DIR" ] || { echo "no cluster in $DIR"; return 0; }
    for pid in "$DIR"/*.pid; do
        [ -e "$pid" ] || continue
        what=$(basename "$pid" .pid)
        if alive "$pid"; then
            port=$(grep -s '^listenPort=' "$DIR/$what/broker.conf" | cut -d= -f2 || true)
            echo "$what: running, pid $(cat "$pid")${port:+, port $port}"
        else
            echo "$what: not running"
        fi
    done
}

stop() {
    [ -d "$DIR" ] || return 0
    pids=()
    for pid in "$DIR"/*.pid; do
        [ -e "$pid" ] || continue
        if alive "$pid"; then
            kill -TERM "$(cat "$pid")" 2>/dev/null || true
            pids+=("$(cat "$pid")")
        fi
        rm -f "$pid"
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 300); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$p" 2>/dev/null && { echo "cluster: pid $p ignored SIGTERM for 30 s; SIGKILL" >&2; kill -KILL "$p" || true; }
    done
    echo "stopped ${#pids[@]} process(es)"
}

case "$cmd" in
    start) start ;;
    status) status ;;
    stop) stop ;;
    *) echo "usage: $0 start|status|stop [options] (see the top of the script)" >&2; exit 2 ;;
esac

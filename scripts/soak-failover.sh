#!/usr/bin/env bash
# The failover soak (not in CI): a controller-mode cluster from
# scripts/cluster.sh (3 controllers, one name server, one group of two
# brokers, SYNC_MASTER, SYNC_FLUSH, 2 shards, 16 MiB segments, controller
# timeout 1500 ms, base port 20000), CYCLES (100) cycles of a burst of
# BURST (200) sends to the master the name server routes and one random
# fault — SIGKILL of the master or the slave (restarted 0-2 s later),
# SIGSTOP of either for 0.3-3 s, SIGKILL of a controller, the replication
# links reset, or none — then both brokers' logs are read in full:
# acknowledged-but-lost messages must be 0, both logs the same
# (src/bin/soak_failover.rs says exactly what is checked). Output:
# bench/results/failover-1/soak-<CYCLES>x<BURST>.txt. Exit status 0 only
# on PASS; the cluster's directory (logs) is kept on failure.
#
#   scripts/soak-failover.sh [CYCLES] [BURST]     SEED=n to replay a run
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-100}
BURST=${2:-200}
BASE=20000
CTL_TIMEOUT_MS=1500
BIN=target/release/shardmq
OUT=bench/results/failover-1
mkdir -p "$OUT"
cargo build --release --bin shardmq --bin soak_failover
# What was built: the tree can change while the soak runs (and the shared
# target/ with it), so the soak runs copies of the binaries.
BUILT="$(git rev-parse --short HEAD)"
CHANGED=$(git status --porcelain -- src controller Cargo.toml Cargo.lock | awk '{print $2}' | tr '\n' ' ')
[ -z "$CHANGED" ] || BUILT="$BUILT + uncommitted changes in: ${CHANGED% }"

# Any cluster already on these ports is stopped first (only shardmq's).
stop_existing() {
    local ports="sport = :$BASE or sport = :$((BASE + 1000)) or sport = :$((BASE + 2000))"
    ports="$ports or sport = :$((BASE + 100)) or sport = :$((BASE + 101)) or sport = :$((BASE + 102))"
    local pids
    pids=$(ss -ltnpH "( $ports )" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
    [ -n "$pids" ] || return 0
    local dirs=() p cmd d
    for p in $pids; do
        cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)
        case "$cmd" in
            *shardmq*) ;;
            *) echo "soak-failover: a port of $BASE.. is used by pid $p ($cmd); stop it first" >&2; exit 1 ;;
        esac
        d=$(sed -n -e 's#.*serve -c \(.*\)/broker-[a-z]-[0-9]*/broker\.conf.*#\1#p' \
            -e 's#.*--data-dir \(.*\)/controller-[0-9]*.*#\1#p' <<<"$cmd")
        [ -n "$d" ] && dirs+=("$d")
    done
    for d in $(printf '%s\n' "${dirs[@]}" | sort -u); do
        echo "soak-failover: stopping the cluster in $d"
        SHARDMQ_BIN=$BIN scripts/cluster.sh stop --dir "$d" || true
    done
    # Whatever still listens (a name server with no directory): SIGTERM.
    pids=$(ss -ltnpH "( $ports )" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
    for p in $pids; do
        echo "soak-failover: SIGTERM to pid $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true))"
        kill -TERM "$p" 2>/dev/null || true
    done
    for _ in $(seq 1 100); do
        [ -z "$(ss -ltnH "( $ports )")" ] && return 0
        sleep 0.1
    done
    echo "soak-failover: ports of $BASE.. still in use" >&2
    exit 1
}
stop_existing

DIR=$(mktemp -d "${TMPDIR:-/tmp}/shardmq-soak-failover.XXXXXX")
finish() {
    rc=$?
    SHARDMQ_BIN=$BIN scripts/cluster.sh stop --dir "$DIR" >/dev/null || true
    # Brokers the soak started itself are in the pid files too; any left:
    pkill -9 -f "serve -c $DIR/" 2>/dev/null || true
    if [ "$rc" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$DIR"
    else
        echo "soak-failover: exit status $rc; cluster directory and logs kept in $DIR" >&2
    fi
}
trap finish EXIT
cp target/release/shardmq target/release/soak_failover "$DIR/"
BIN=$DIR/shardmq
SHARDMQ_BIN=$BIN scripts/cluster.sh start --dir "$DIR" --controllers 3 --namesrvs 1 --groups 1 \
    --slaves 1 --role SYNC_MASTER --flush SYNC_FLUSH --shards 2 --segment-mb 16 \
    --ctl-timeout-ms "$CTL_TIMEOUT_MS" --base "$BASE" | grep -v '^\['
$BIN admin --namesrv "127.0.0.1:$BASE" topic create SoakFailover --queues 8 --cluster LocalCluster >/dev/null
FILE="$OUT/soak-${CYCLES}x${BURST}.txt"
{
    echo "# SEED=${SEED:-(clock)} scripts/soak-failover.sh $CYCLES $BURST"
    echo "# built from $BUILT; $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores"
    SHARDMQ_BIN=$BIN "$DIR/soak_failover" --dir "$DIR" --base "$BASE" --cycles "$CYCLES" \
        --burst "$BURST" --ctl-timeout-ms "$CTL_TIMEOUT_MS" ${SEED:+--seed "$SEED"}
} | tee "$FILE"

#!/usr/bin/env bash
# Failover time over ROUNDS failovers (default 20), not in CI: a cluster
# of 3 controllers, one name server and one broker group of two brokers
# in controller mode (SYNC_MASTER, SYNC_FLUSH, 2 shards), started with
# scripts/cluster.sh; src/bin/failover_time.rs sends without pause and
# kills the master with SIGKILL each round (see its docs for what is
# measured). Output: bench/results/failover-1/ (machine.txt and one
# file per controller timeout).
#
#   scripts/bench-failover.sh [ROUNDS] [CTL_TIMEOUT_MS ...]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
shift || true
TIMEOUTS=("$@")
[ ${#TIMEOUTS[@]} -gt 0 ] || TIMEOUTS=(3000 1500)
OUT=bench/results/failover-1
mkdir -p "$OUT"
cargo build --release --bin shardmq --bin failover_time >/dev/null
scripts/machine-info.sh >"$OUT/machine.txt"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/failover-bench.XXXXXX")
trap 'SHARDMQ_BIN=target/release/shardmq scripts/cluster.sh stop --dir "$DIR" >/dev/null; rm -rf "$DIR"' EXIT
for t in "${TIMEOUTS[@]}"; do
    SHARDMQ_BIN=target/release/shardmq scripts/cluster.sh stop --dir "$DIR" >/dev/null
    rm -rf "${DIR:?}"/*
    SHARDMQ_BIN=target/release/shardmq scripts/cluster.sh start --dir "$DIR" --controllers 3 \
        --groups 1 --slaves 1 --ctl-timeout-ms "$t" --segment-mb 64 --base 20000 | grep -v '^\[' 
    target/release/shardmq admin --namesrv 127.0.0.1:20000 topic create FailoverTime --cluster LocalCluster >/dev/null
    {
        echo "# scripts/bench-failover.sh $ROUNDS, controller heartbeat timeout $t ms"
        target/release/failover_time --dir "$DIR" --base 20000 --rounds "$ROUNDS"
    } | tee "$OUT/timeout-$t.txt"
done

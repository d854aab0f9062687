#!/usr/bin/env bash
# What replication costs (issue 15), for bench/RESULTS.md: the same sync
# send load against a single broker, a master with a slave (ASYNC_MASTER)
# and a master with a slave (SYNC_MASTER), alternating, in one run. Each
# topology comes from scripts/cluster.sh (one standalone name server, one
# broker group, 2 shards per broker, SYNC_FLUSH everywhere) on a fresh
# directory, with its default 128 MiB segments.
#
#   scripts/bench-ha.sh [OUT_DIR]
#
# Environment: DURATION (20 s), WARMUP (5 s), CONNECTIONS (64), SIZE
# (1024), ROUNDS (2), BASE (25000, the cluster's first port).
#
# On this 2-core machine every process shares the same two cores: the
# slave's shards run beside the master's and the bench's, so the
# replicated figures include the slave's CPU as well as its round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/ha-$(date +%Y%m%d-%H%M%S)}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-64}
SIZE=${SIZE:-1024}
ROUNDS=${ROUNDS:-2}
BASE=${BASE:-25000}
BIN=target/release/shardmq-bench
mkdir -p "$OUT"
cargo build --release -p shardmq -p shardmq-bench
{
  scripts/machine-info.sh
  echo "load: $CONNECTIONS connections, sync sends of $SIZE bytes, ${DURATION}s after ${WARMUP}s warm-up"
} | tee "$OUT/machine.txt"

DIR=
stop_cluster() {
  if [[ -n "$DIR" ]]; then
    scripts/cluster.sh stop --dir "$DIR" >/dev/null || true
    rm -rf "$DIR"
    DIR=
  fi
}
trap stop_cluster EXIT

for round in $(seq 1 "$ROUNDS"); do
  for topo in single async-master sync-master; do
    case $topo in
      single) slaves=0 role=ASYNC_MASTER ;;
      async-master) slaves=1 role=ASYNC_MASTER ;;
      sync-master) slaves=1 role=SYNC_MASTER ;;
    esac
    DIR=$(mktemp -d /tmp/shardmq-bench-ha-XXXX)
    SHARDMQ_BIN=target/release/shardmq scripts/cluster.sh start --dir "$DIR" --groups 1 \
      --slaves "$slaves" --role "$role" --base "$BASE" >"$OUT/$topo-$round.start.txt"
    if [[ $slaves -gt 0 ]]; then
      # Both shards' slaves connected before the load starts.
      for _ in $(seq 1 100); do
        [[ $(grep -c "replicating from log offset" "$DIR/broker-a-0/broker.log" || true) -ge 2 ]] && break
        sleep 0.1
      done
    fi
    "$BIN" produce --namesrv "127.0.0.1:$BASE" --topic BenchHa --size "$SIZE" --connections "$CONNECTIONS" \
      --mode sync --duration "$DURATION" --warmup "$WARMUP" --json "$OUT/$topo-$round.json" >"$OUT/$topo-$round.txt"
    cp "$DIR/broker-a-0/broker.log" "$OUT/$topo-$round.master.log"
    stop_cluster
    echo "round $round $topo: $(grep -A2 'summary' "$OUT/$topo-$round.txt" | tail -1)"
  done
done

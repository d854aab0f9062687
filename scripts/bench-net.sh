#!/usr/bin/env bash
# Network benchmark matrix for bench/RESULTS.md ("Broker (network)").
#
#   scripts/bench-net.sh [OUT_DIR]
#
# Starts the release broker on 127.0.0.1 in a fresh data directory for each
# run and drives it with shardmq-bench (release) on the same machine, in two
# placements:
#   split:  broker shardCount=1 (its shard pinned to CPU 0), bench --cores 1
#   shared: broker shardCount=2 (CPUs 0 and 1), bench --cores 0,1
# Then: loopback limit (iperf3), broker RSS with 1, 1000, 10000 queues.
#
# Environment: DURATION (5), WARMUP (2), PLACEMENTS ("split shared"),
# FLUSHES ("SYNC_FLUSH ASYNC_FLUSH"), SKIP_EXTRA=1 (skip iperf3 and RSS).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/net-$(date +%Y%m%d-%H%M%S)}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
PLACEMENTS=${PLACEMENTS:-"split shared"}
FLUSHES=${FLUSHES:-"SYNC_FLUSH ASYNC_FLUSH"}
BROKER=target/release/shardmq
BIN=target/release/shardmq-bench
DATA=${DATA:-/tmp/shardmq-net-data}
NS=127.0.0.1:39876
mkdir -p "$OUT"
cargo build --release -p shardmq -p shardmq-bench
{
  scripts/machine-info.sh
} | tee "$OUT/machine.txt"

BPID=
start_broker() { # shards flush [extra --set ...]
  local shards=$1 flush=$2
  shift 2
  stop_broker
  rm -rf "$DATA" && mkdir -p "$DATA"
  "$BROKER" serve --set storePathRootDir="$DATA" --set listenPort=31911 --set namesrvListenPort=39876 \
    --set shardListenPortBase=31921 --set shardCount="$shards" --set metricsPort=0 --set brokerIP1=127.0.0.1 \
    --set flushDiskType="$flush" "$@" >"$DATA.out" 2>"$DATA.err" &
  BPID=$!
  for _ in $(seq 100); do
    # Ready, and the name server answers (a restart right after a stop can lag).
    grep -q "shardmq ready" "$DATA.out" 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/39876) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "broker did not start" >&2
  cat "$DATA.err" >&2
  exit 1
}
stop_broker() {
  if [ -n "$BPID" ]; then
    kill "$BPID" 2>/dev/null || true
    wait "$BPID" 2>/dev/null || true
    BPID=
  fi
}
trap stop_broker EXIT

run() { # name args...
  local name=$1
  shift
  echo "== $name: $BIN $* --namesrv $NS --json $OUT/$name.json" | tee -a "$OUT/commands.txt"
  "$BIN" "$@" --namesrv "$NS" --json "$OUT/$name.json" --hdr "$OUT/$name.hdr" >"$OUT/$name.out" 2>&1 || {
    echo "FAILED: $name" | tee -a "$OUT/commands.txt"
    tail -5 "$OUT/$name.out"
  }
  grep -A6 '^summary' "$OUT/$name.out" || true
  echo "broker RSS KiB: $(ps -o rss= -p "$BPID" 2>/dev/null || echo -)" >>"$OUT/$name.out"
}

for placement in $PLACEMENTS; do
  if [ "$placement" = split ]; then
    shards=1 cores=1
  else
    shards=2 cores=0,1
  fi
  for flush in $FLUSHES; do
    f=${flush%%_FLUSH}
    for batch in 1 64; do
      for conns in 1 16 64 128; do
        [ "$batch" = 64 ] && [ "$conns" = 64 ] && continue
        start_broker "$shards" "$flush"
        run "$placement-$f-b$batch-c$conns" produce --topic B --cores "$cores" --size 1024 --batch "$batch" \
          --connections "$conns" --mode sync --duration "$DURATION" --warmup "$WARMUP"
      done
    done
    # Pipelined (async) single sends: the broker's best case per connection.
    start_broker "$shards" "$flush"
    run "$placement-$f-b1-c16-async" produce --topic B --cores "$cores" --size 1024 --connections 16 \
      --mode async --inflight 32 --duration "$DURATION" --warmup "$WARMUP"
    # Consume: drain a backlog written just before (recent data, the log's tail).
    start_broker "$shards" "$flush"
    "$BIN" produce --namesrv "$NS" --topic C --cores "$cores" --batch 64 --connections 16 --messages 1000000 \
      --warmup 0 >"$OUT/$placement-$f-backlog.out" 2>&1
    run "$placement-$f-consume-backlog" consume --topic C --cores "$cores" --from-start --connections 16 \
      --messages 1000000 --duration 30 --warmup 0
    # e2e: 16 async producer connections, consumers from the tail.
    start_broker "$shards" "$flush"
    run "$placement-$f-e2e" e2e --topic E --cores "$cores" --connections 16 --mode async --inflight 8 \
      --duration "$DURATION" --warmup "$WARMUP"
    # Open loop at a fixed rate (coordinated-omission corrected latency).
    start_broker "$shards" "$flush"
    run "$placement-$f-e2e-rate50k" e2e --topic E --cores "$cores" --connections 16 --mode async --inflight 64 \
      --rate 50000 --duration "$DURATION" --warmup "$WARMUP"
  done
done
stop_broker

if [ "${SKIP_EXTRA:-0}" != 1 ]; then
  iperf3 -s -1 -p 35201 >/dev/null 2>&1 &
  sleep 0.5
  iperf3 -c 127.0.0.1 -p 35201 -t 5 | tee "$OUT/iperf3.txt"
  iperf3 -s -1 -p 35202 >/dev/null 2>&1 &
  sleep 0.5
  iperf3 -c 127.0.0.1 -p 35202 -t 5 -A 1,0 | tee "$OUT/iperf3-pinned.txt"
  wait

  # Broker RSS by queue count (2 shards, default settings).
  for q in 1 1000 10000; do
    start_broker 2 ASYNC_FLUSH --set defaultTopicQueueNums=8
    rss0=$(ps -o rss= -p "$BPID")
    if [ "$q" -le 1000 ]; then
      "$BIN" create-topics --namesrv "$NS" --prefix Q --count 1 --queues "$q" >>"$OUT/rss.txt"
    else
      "$BIN" create-topics --namesrv "$NS" --prefix Q --count $((q / 1000)) --queues 1000 >>"$OUT/rss.txt"
    fi
    # Write one message to every queue so each has store state.
    "$BIN" produce --namesrv "$NS" --topic Q-0 --messages "$((q < 1000 ? q : 1000))" --warmup 0 --cores 1 \
      --create-topic false >/dev/null 2>&1 || true
    sleep 3
    echo "queues=$q rss_before_KiB=$rss0 rss_after_KiB=$(ps -o rss= -p "$BPID")" | tee -a "$OUT/rss.txt"
  done
  stop_broker
fi
echo "results in $OUT"

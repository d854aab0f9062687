#!/usr/bin/env bash
# The REST API beside the remoting protocol, one run on one broker
# (bench/RESULTS.md, "REST API"): 2 shards, SYNC_FLUSH, 1 KiB messages.
#   remoting sync sends (16 connections)   vs REST POST of 1 message (16 connections)
#   remoting batches of 32 (8 connections) vs REST POST of 32 messages (8 connections)
#   remoting pull of a backlog, POP + batch acks vs REST receive + ack of a backlog
# Usage: scripts/bench-rest.sh OUT_DIR   (builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/bench-rest.sh OUT_DIR}
DUR=${DUR:-10}
BACKLOG=${BACKLOG:-200000}
mkdir -p "$OUT"
cargo build --release -q -p shardmq -p shardmq-bench
B=target/release/shardmq-bench
DATA=$(mktemp -d /tmp/shardmq-bench-rest-XXXX)
target/release/shardmq serve --set storePathRootDir="$DATA" --set shardCount=2 --set listenPort=32911 \
    --set namesrvListenPort=32876 --set shardListenPortBase=32921 --set grpcListenPort=0 \
    --set httpListenPort=32082 --set metricsPort=0 --set flushDiskType=SYNC_FLUSH \
    --set brokerIP1=127.0.0.1 >"$OUT/broker.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
    grep -q "shardmq ready" "$OUT/broker.log" && break
    sleep 0.2
done
NS=127.0.0.1:32876
URL=http://127.0.0.1:32082
git rev-parse --short HEAD >"$OUT/commit.txt"
run() { # name command...
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$OUT/summary.txt"
    "$@" 2>&1 | tee "$OUT/$name.txt" | tee -a "$OUT/summary.txt"
}
run remoting-sync $B produce --namesrv $NS --topic RP --topic-queues 8 --connections 16 --size 1024 --duration "$DUR" --warmup 2
run rest-single $B rest --url $URL --topic RP --mode produce --connections 16 --size 1024 --batch 1 --duration "$DUR" --json "$OUT/rest-single.json"
run remoting-batch32 $B produce --namesrv $NS --topic RP --connections 8 --size 1024 --batch 32 --duration "$DUR" --warmup 2
run rest-batch32 $B rest --url $URL --topic RP --mode produce --connections 8 --size 1024 --batch 32 --duration "$DUR" --json "$OUT/rest-batch32.json"
# A backlog for the consumers, then three groups consume it.
run fill $B produce --namesrv $NS --topic RC --topic-queues 8 --connections 8 --size 1024 --batch 32 --messages "$BACKLOG" --warmup 0
run remoting-pull $B consume --namesrv $NS --topic RC --connections 16 --messages "$BACKLOG" --from-start --duration 120
run remoting-pop-batch $B pop --namesrv $NS --topic RC --group bench_pop_rc --connections 16 --ack batch --messages "$BACKLOG" --duration 120
run rest-consume $B rest --url $URL --topic RC --group bench_rest_rc --mode consume --connections 16 --messages "$BACKLOG" --duration 120 --json "$OUT/rest-consume.json"

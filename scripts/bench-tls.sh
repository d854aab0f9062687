#!/usr/bin/env bash
# The cost of TLS (issue 13), for bench/RESULTS.md: one broker in
# tlsServerMode=permissive (plain and TLS on the same ports), driven by
# shardmq-bench with and without --tls, alternating, in one run.
#
#   scripts/bench-tls.sh [OUT_DIR]
#
# Scenarios (1 KiB bodies, 2 shards, bench on both cores):
#   sync   single sync sends, 64 connections
#   batch  batches of 64, 8 connections
#   pull   consume the batches' backlog, 16 connections, 3 s
# Each scenario runs ROUNDS (2) times per mode, plain first then TLS, each
# on a fresh data directory. Environment: DURATION (5), WARMUP (2),
# FLUSH (ASYNC_FLUSH: the disk stays out of the way of what TLS costs),
# ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/tls-$(date +%Y%m%d-%H%M%S)}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
FLUSH=${FLUSH:-ASYNC_FLUSH}
ROUNDS=${ROUNDS:-2}
BROKER=target/release/shardmq
BIN=target/release/shardmq-bench
DATA=${DATA:-/tmp/shardmq-tls-data}
NS=127.0.0.1:39876
mkdir -p "$OUT"
cargo build --release -p shardmq -p shardmq-bench
{
  scripts/machine-info.sh
  echo "flush: $FLUSH"
} | tee "$OUT/machine.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

BPID=
stop_broker() {
  if [[ -n "$BPID" ]]; then
    kill "$BPID" 2>/dev/null || true
    wait "$BPID" 2>/dev/null || true
    BPID=
  fi
}
trap stop_broker EXIT
start_broker() {
  stop_broker
  rm -rf "$DATA" && mkdir -p "$DATA"
  "$BROKER" serve --set storePathRootDir="$DATA" --set shardCount=2 --set metricsPort=0 \
    --set brokerIP1=127.0.0.1 --set listenPort=30911 --set namesrvListenPort=39876 \
    --set shardListenPortBase=30921 --set grpcListenPort=0 --set httpListenPort=0 --set flushDiskType="$FLUSH" \
    --set tlsServerMode=permissive --set tlsServerCertPath="$OUT/cert.pem" \
    --set tlsServerKeyPath="$OUT/key.pem" >"$OUT/broker.log" 2>&1 &
  BPID=$!
  for _ in $(seq 1 100); do
    grep -q "shardmq ready" "$OUT/broker.log" && return 0
    sleep 0.1
  done
  echo "broker did not start" >&2
  cat "$OUT/broker.log" >&2
  exit 1
}

for round in $(seq 1 "$ROUNDS"); do
  for mode in plain tls; do
    flag=()
    [[ $mode == tls ]] && flag=(--tls)
    start_broker
    "$BIN" produce --namesrv $NS --topic S "${flag[@]}" --size 1024 --connections 64 --mode sync \
      --duration "$DURATION" --warmup "$WARMUP" --json "$OUT/sync-$mode-$round.json" >"$OUT/sync-$mode-$round.txt"
    "$BIN" produce --namesrv $NS --topic B "${flag[@]}" --size 1024 --connections 8 --batch 64 --mode sync \
      --duration "$DURATION" --warmup "$WARMUP" --json "$OUT/batch-$mode-$round.json" >"$OUT/batch-$mode-$round.txt"
    "$BIN" consume --namesrv $NS --topic B "${flag[@]}" --connections 16 --from-start \
      --duration 3 --json "$OUT/pull-$mode-$round.json" >"$OUT/pull-$mode-$round.txt"
    echo "round $round $mode done"
  done
done
stop_broker
python3 - "$OUT" <<'EOF'
import json, sys, glob, os
out = sys.argv[1]
print("| scenario | mode | round | msgs/s | MB/s | p50 µs | p99 µs | p999 µs | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for scen in ["sync", "batch", "pull"]:
    for f in sorted(glob.glob(f"{out}/{scen}-*.json")):
        name = os.path.basename(f)[:-5]
        _, mode, rnd = name.split("-")
        s = json.load(open(f))
        op = s["ops"].get("send") or s["ops"].get("pull") or {}
        lat = op.get("latency_us", {})
        print(f"| {scen} | {mode} | {rnd} | {op.get('msgs_per_sec', 0):.0f} | {op.get('mb_per_sec', 0):.1f} | "
              f"{lat.get('p50', 0):.0f} | {lat.get('p99', 0):.0f} | {lat.get('p999', 0):.0f} | {s.get('errors_total', 0)} |")
EOF

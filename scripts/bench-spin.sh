#!/usr/bin/env bash
# Spin-before-park A/B (bench/RESULTS.md): single sync sends, 64
# connections, SYNC_FLUSH, 1 KiB, 8 s after 2 s warm-up, one broker per run
# with a fresh store, the settings alternating run by run.
#
# Usage: scripts/bench-spin.sh OUTDIR ["0 50 200"] [REPEAT]
# Needs `cargo build --release --workspace` first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$1; spins=${2:-"0 50 200"}; rep=${3:-3}
BIN=$PWD/target/release
mkdir -p "$out"
for r in $(seq 1 "$rep"); do
  for s in $spins; do
    d=$(mktemp -d /tmp/bench-spin.XXXXXX)
    "$BIN/shardmq" serve --set storePathRootDir="$d/data" --set listenPort=31911 --set namesrvListenPort=39876 \
      --set metricsPort=0 --set flushDiskType=SYNC_FLUSH --set mapedFileSizeCommitLog=268435456 \
      --set shardSpinBeforeParkMicros="$s" > "$out/broker-$s-$r.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do grep -q "shardmq ready" "$out/broker-$s-$r.log" && break; sleep 0.2; done
    "$BIN/shardmq-bench" produce --namesrv 127.0.0.1:39876 --connections 64 --duration 8 --warmup 2 \
      --json "$out/spin-$s-$r.json" > "$out/bench-$s-$r.txt" 2>&1
    kill -INT $pid; wait $pid 2>/dev/null
    rm -rf "$d"
    python3 - "$out/spin-$s-$r.json" "$s" "$r" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))["ops"]["send"]
l = o["latency_us"]
print(f"spin={sys.argv[2]} run={sys.argv[3]}: {o['msgs_per_sec']:.0f} msgs/s p50 {l['p50']/1000:.2f} ms p99 {l['p99']/1000:.2f} ms")
PY
  done
done

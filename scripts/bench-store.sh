#!/usr/bin/env bash
# Storage benchmark matrix for bench/RESULTS.md.
#
#   scripts/bench-store.sh [OUT_DIR]
#
# Runs shardmq-bench store over record sizes 1 KiB and 64 KiB x SYNC/ASYNC x
# 1, 16, 256 appenders (REPEAT times each), the pre-zero vs fallocate-only
# comparison (SYNC, 1 KiB, 16 appenders; default 1 GiB segments and 64 MiB
# segments so that segment preparation falls inside the measured window),
# and fio's raw O_DIRECT limits of the same disk. Everything lands in OUT_DIR
# (one JSON per run) and a summary table is printed at the end.
#
# Environment: DURATION (5), WARMUP (1), REPEAT (3), DATA (parent dir of the
# store and fio files, default /tmp/shardmq-bench-data), SKIP_FIO=1,
# QUIET_CORES (0.3) and QUIET_WAIT (300 s): see wait_quiet.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-bench/results/$(date +%Y%m%d-%H%M%S)}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
DATA=${DATA:-/tmp/shardmq-bench-data}
BIN=target/release/shardmq-bench

mkdir -p "$OUT" "$DATA"
cargo build --release -p shardmq-bench
{
  scripts/machine-info.sh
  free -g | sed -n 2p
  df -hT "$DATA" | tail -1
  echo "memlock: $(ulimit -l)"
} | tee "$OUT/machine.txt"

# This machine is shared: wait (up to QUIET_WAIT s) until the other
# processes use less than QUIET_CORES of CPU over a second; each run's JSON
# records how much CPU others took while it was measured.
busy_cores() {
  python3 - <<'PY'
import os, time
def j():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)
a = j(); time.sleep(1); b = j()
print(f"{(b[0] - a[0]) / max(1, b[1] - a[1]) * os.cpu_count():.2f}")
PY
}
wait_quiet() {
  local t=0 b
  while :; do
    b=$(busy_cores)
    if python3 -c "import sys; sys.exit(0 if $b < ${QUIET_CORES:-0.3} else 1)" || ((t >= ${QUIET_WAIT:-300})); then
      echo "  (machine busy $b cores before the run, waited ${t}s)"
      return
    fi
    t=$((t + 1))
  done
}

store() { # name, then bench flags
  local name=$1
  shift
  wait_quiet
  echo "=== $name: $*"
  "$BIN" store --dir "$DATA" --json "$OUT/$name.json" "$@" | tail -5
}

for r in $(seq 1 "$REPEAT"); do
  for size in 1024 65536; do
    for flush in sync async; do
      for n in 1 16 256; do
        store "store-${size}-${flush}-${n}-r${r}" --record-size "$size" --flush "$flush" --appenders "$n" \
          --queues 16 --duration "$DURATION" --warmup "$WARMUP"
      done
    done
  done
  # Pre-zero vs fallocate-only. With 1 GiB segments the first segment is
  # prepared during the warm-up (longer here: zeroing 2 GiB takes a while);
  # with 64 MiB segments the store rolls several times while measured, so the
  # zeroing bandwidth is paid inside the window.
  for seg in 1073741824 67108864; do
    for pz in "" "--pre-zero"; do
      store "prezero-${seg}-$([[ -n $pz ]] && echo zero || echo falloc)-r${r}" --record-size 1024 --flush sync --appenders 16 \
        --queues 16 --segment-size "$seg" $pz --duration "$DURATION" --warmup 3
    done
  done
done

if [[ -z ${SKIP_FIO:-} ]]; then
  command -v fio >/dev/null || { echo "fio missing: apt-get install -y fio" >&2; exit 1; }
  f="$DATA/fio.dat"
  rm -f "$f"
  fio_run() { # name, then fio flags
    local name=$1
    shift
    wait_quiet
    echo "=== fio $name: $*"
    fio --output-format=json --output="$OUT/fio-$name.json" --filename="$f" "$@" >/dev/null
    python3 - "$OUT/fio-$name.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]["write"]
lat = j.get("clat_ns", {}).get("percentile", {})
print(f"  {j['bw_bytes']/2**20:.1f} MiB/s  {j['iops']:.0f} IOPS  clat p50 {lat.get('50.000000', 0)/1e3:.1f} us"
      f"  p99 {lat.get('99.000000', 0)/1e3:.1f} us")
PY
  }
  # Sequential O_DIRECT write bandwidth: first pass allocates (fallocated
  # file, unwritten extents), second pass overwrites written blocks.
  fio_run seq-1m-qd4 --name=seq --rw=write --bs=1M --direct=1 --size=4G --ioengine=io_uring --iodepth=4
  fio_run seq-1m-qd4-overwrite --name=seq --rw=write --bs=1M --direct=1 --size=4G --ioengine=io_uring \
    --iodepth=4
  fio_run seq-4m-qd4-overwrite --name=seq --rw=write --bs=4M --direct=1 --size=4G --ioengine=io_uring \
    --iodepth=4
  rm -f "$f"
  # Per-sync cost: 4 KiB write + fdatasync, on a fresh fallocated file and
  # then overwriting the same (now written) blocks.
  fio_run sync-4k-fresh --name=sync --rw=write --bs=4k --direct=1 --size=64M --ioengine=psync --fdatasync=1 \
    --runtime=10 --time_based=0
  fio_run sync-4k-overwrite --name=sync --rw=write --bs=4k --direct=1 --size=64M --ioengine=psync \
    --fdatasync=1 --runtime=10 --time_based=0
  rm -f "$f"
fi

python3 scripts/bench-store-table.py "$OUT" | tee "$OUT/summary.md"

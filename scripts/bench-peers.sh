#!/usr/bin/env bash
# Peer benchmark (issue 8): one matrix, one run, side by side against
#   before  shardmq at $BEFORE_REV (built in a temporary git worktree)
#   after   shardmq as in this work tree
#   apache  Apache RocketMQ 5.x (name server + broker jars from Maven Central)
#   rust    rocketmq-rust (crates rocketmq-namesrv / rocketmq-broker), when it builds
# all driven by this tree's shardmq-bench on 127.0.0.1.
#
#   scripts/bench-peers.sh [OUT_DIR]
#
# Writes OUT_DIR/raw/<scenario>/<peer>-r<N>.{json,out,cpu}, OUT_DIR/machine.txt,
# OUT_DIR/commands.txt and OUT_DIR/summary.md (scripts/bench-peers-table.py).
#
# Scenarios (1 KiB bodies), each run against a fresh store:
#   send-sync    single sync sends, 64 connections, SYNC_FLUSH
#   send-async   the same with ASYNC_FLUSH (summary: SYNC/ASYNC ratio)
#   batch64      batches of 64 messages, 8 connections, SYNC_FLUSH
#   consume      a $BACKLOG message backlog (written first, batches of 64,
#                ASYNC_FLUSH), then consumed from the start with 16 connections
#   e2e          open loop at $E2E_RATE msgs/s, SYNC_FLUSH, send-to-receive latency
#   alloc        shardmq only (built with --features alloc-count): heap
#                allocations per send request and per batch request
# Broker CPU µs per message: utime+stime of the broker's processes (for
# Apache: broker and name server JVMs; shardmq's name server is embedded) from
# /proc/PID/stat over the measured window (timed scenarios: from WARMUP s after
# the bench has resolved its route, for DURATION s, divided by msgs/s x
# DURATION; consume: the whole bench run, divided by messages consumed).
# Placement (bench-net.sh "shared"): shardmq shardCount=2 (shards pinned to
# CPUs 0 and 1), every JVM and rocketmq-rust under taskset -c 0,1, the bench
# with --cores 0,1.
#
# Environment:
#   DURATION (10) WARMUP (2) REPEAT (2): measured seconds, warm-up seconds,
#     runs of each scenario; every repeat runs the peers in turn, in reverse
#     order on even repeats.
#   JAVA_WARMUP (= WARMUP): warm-up seconds for the Apache (JVM) runs only; each
#     run starts a fresh JVM, whose JIT compiles the hot paths during the
#     first seconds of load (on CPUs 0,1, shared with the bench)
#   BEFORE_REV (HEAD~1)   git revision for "before"
#   PEERS ("before after apache rust")   SCENARIOS ("send-sync send-async batch64 consume e2e alloc")
#   BACKLOG (1000000)  E2E_RATE (5000)  ALLOC_MESSAGES (200000)
#   TIMERS (1000000) TIMER_LEAD (45 s: scheduling must end before the first due
#     time)  SENDBACK (100000): the opt-in scenarios "timers" and "sendback"
#   POPN (300000): the opt-in scenario "pop" (pop + ack a backlog, and pull it)
#   ROCKETMQ_VERSION (5.5.0)  RMQ_HEAP (8g, runbroker.sh)  RMQ_NS_HEAP (4g, runserver.sh)
#   RMQ_SEND_THREADS (8, SYNC_FLUSH only)  RMQ_TRANSIENT_POOL (1)  RMQ_EXTRA_CONF (file)
#   ROCKETMQ_RUST_VERSION (1.0.0)  ROCKETMQ_RUST_BUILD (1: try to build it when not
#     cached; 0: skip)  ROCKETMQ_RUST_BUILD_TIMEOUT (3600 s; the first build took ~50 min on a busy 2-core machine)
#   SHARDMQ_SET: more broker settings for both shardmq builds, space-separated
#     KEY=VALUE, e.g. "diskMaxUsedSpaceRatio=95" on a disk fuller than 90 %
#   Ports (none shared with bench-net.sh): shardmq 33876 (name server), 33911,
#     33921-33922, 33957 (metrics, alloc runs); Apache 33877, 33709/33711/33712;
#     rocketmq-rust 33878, 33611.
#   DATA (/tmp/shardmq-peers-data): run directories, deleted after each run
#   BUILD_NICE (0): nice level for the cargo builds
# Builds are cached under target/peers/ (jars, before's target dir and binaries,
# rocketmq-rust); nothing there is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-bench/results/peers-$(date +%Y%m%d-%H%M%S)}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
JAVA_WARMUP=${JAVA_WARMUP:-$WARMUP}
REPEAT=${REPEAT:-2}
BEFORE_REV=${BEFORE_REV:-HEAD~1}
PEERS=${PEERS:-"before after apache rust"}
SCENARIOS=${SCENARIOS:-"send-sync send-async batch64 consume e2e alloc"}
BACKLOG=${BACKLOG:-1000000}
E2E_RATE=${E2E_RATE:-5000}
ALLOC_MESSAGES=${ALLOC_MESSAGES:-200000}
TIMERS=${TIMERS:-1000000}
TIMER_LEAD=${TIMER_LEAD:-45}
SENDBACK=${SENDBACK:-100000}
POPN=${POPN:-300000}
ROCKETMQ_VERSION=${ROCKETMQ_VERSION:-5.5.0}
RMQ_HEAP=${RMQ_HEAP:-8g}
RMQ_NS_HEAP=${RMQ_NS_HEAP:-4g}
RMQ_SEND_THREADS=${RMQ_SEND_THREADS:-8}
RMQ_TRANSIENT_POOL=${RMQ_TRANSIENT_POOL:-1}
ROCKETMQ_RUST_VERSION=${ROCKETMQ_RUST_VERSION:-1.0.0}
ROCKETMQ_RUST_BUILD=${ROCKETMQ_RUST_BUILD:-1}
ROCKETMQ_RUST_BUILD_TIMEOUT=${ROCKETMQ_RUST_BUILD_TIMEOUT:-3600}
DATA=${DATA:-/tmp/shardmq-peers-data}
BUILD_NICE=${BUILD_NICE:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=$ROOT/target/peers
CLK_TCK=$(getconf CLK_TCK)
SHARDMQ_SETS=()
for kv in ${SHARDMQ_SET:-}; do SHARDMQ_SETS+=(--set "$kv"); done
mkdir -p "$OUT" "$CACHE" "$DATA"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/skipped.txt"
log() { echo "[bench-peers] $*" | tee -a "$OUT/commands.txt" >&2; }
skip() { # peer reason
  echo "$1: $2" >>"$OUT/skipped.txt"
  log "SKIPPING $1: $2"
}
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- cleanup
PIDS=()        # every server process started and not yet stopped
WORKTREE=      # before's temporary worktree
RUN_DIR=       # the current run's data directory
stop_pid() { # pid: TERM, up to 20 s, then KILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop in 20 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_servers() {
  local i
  # Broker first, then its name server (started in the other order).
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${PIDS[$i]}"
  done
  PIDS=()
  if [ -n "$RUN_DIR" ]; then
    rm -rf "$RUN_DIR"
    RUN_DIR=
  fi
}
BENCH_PID=     # a bench running in the background (bench_timed)
cleanup() {
  if [ -n "$BENCH_PID" ]; then kill -TERM "$BENCH_PID" 2>/dev/null || true; fi
  stop_servers
  if [ -n "$WORKTREE" ]; then
    git worktree remove --force "$WORKTREE" 2>/dev/null || rm -rf "$WORKTREE"
    git worktree prune 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits that a signal interrupts at once (bash runs a trap only after the
# foreground command has finished, but interrupts `wait`).
nap() { sleep "$1" & wait $! || true; }
run_fg() { # command...: run it in the background, wait for it
  "$@" &
  BENCH_PID=$!
  local rc=0
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=
  return "$rc"
}

cargo_build() { # cargo args...
  nice -n "$BUILD_NICE" cargo build --release "$@"
}

# ---------------------------------------------------------------- builds
BIN_AFTER=$CACHE/bin/after
mkdir -p "$BIN_AFTER"
log "building shardmq (after) with --features alloc-count, then without"
cargo_build -p shardmq --features alloc-count
cp "$CARGO_TARGET_DIR/release/shardmq" "$BIN_AFTER/shardmq-alloc"
cargo_build -p shardmq -p shardmq-bench
cp "$CARGO_TARGET_DIR/release/shardmq" "$CARGO_TARGET_DIR/release/shardmq-bench" "$BIN_AFTER/"
BENCH=$BIN_AFTER/shardmq-bench

BEFORE_COMMIT=
if has_peer before; then
  if ! BEFORE_COMMIT=$(git rev-parse --verify --quiet "$BEFORE_REV^{commit}"); then
    skip before "BEFORE_REV=$BEFORE_REV is not a commit here"
    BEFORE_COMMIT=
  else
    BIN_BEFORE=$CACHE/bin/before-$BEFORE_COMMIT
    if [ ! -x "$BIN_BEFORE/shardmq" ]; then
      WORKTREE=$CACHE/before-src
      git worktree remove --force "$WORKTREE" 2>/dev/null || rm -rf "$WORKTREE"
      git worktree prune
      git worktree add --detach "$WORKTREE" "$BEFORE_COMMIT" >/dev/null
      log "building shardmq (before, $BEFORE_COMMIT) in $WORKTREE"
      mkdir -p "$BIN_BEFORE.tmp"
      (
        cd "$WORKTREE"
        export CARGO_TARGET_DIR=$CACHE/before-target
        if grep -q '^alloc-count' Cargo.toml; then
          cargo_build -p shardmq --features alloc-count
          cp "$CARGO_TARGET_DIR/release/shardmq" "$BIN_BEFORE.tmp/shardmq-alloc"
        fi
        cargo_build -p shardmq
        cp "$CARGO_TARGET_DIR/release/shardmq" "$BIN_BEFORE.tmp/"
      )
      rm -rf "$BIN_BEFORE" && mv "$BIN_BEFORE.tmp" "$BIN_BEFORE"
      git worktree remove --force "$WORKTREE"
      WORKTREE=
    fi
  fi
fi

RMQ_LIB=$CACHE/rocketmq-$ROCKETMQ_VERSION/lib
if has_peer apache; then
  if [ ! -f "$RMQ_LIB/rocketmq-broker-$ROCKETMQ_VERSION.jar" ] ||
    [ ! -f "$RMQ_LIB/rocketmq-namesrv-$ROCKETMQ_VERSION.jar" ]; then
    log "fetching Apache RocketMQ $ROCKETMQ_VERSION jars with Maven into $RMQ_LIB"
    rm -rf "$RMQ_LIB"
    if ! mvn -B -q -f bench/peers/pom.xml -Drocketmq.version="$ROCKETMQ_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$RMQ_LIB" >"$CACHE/mvn-$ROCKETMQ_VERSION.log" 2>&1; then
      tail -5 "$CACHE/mvn-$ROCKETMQ_VERSION.log" >&2
      skip apache "mvn could not fetch rocketmq-broker/rocketmq-namesrv $ROCKETMQ_VERSION (see $CACHE/mvn-$ROCKETMQ_VERSION.log)"
      rm -rf "$RMQ_LIB"
    fi
  fi
  command -v java >/dev/null || skip apache "no java on PATH"
fi

RR=$CACHE/rocketmq-rust-$ROCKETMQ_RUST_VERSION
if has_peer rust; then
  if [ ! -x "$RR/bin/rocketmq-broker-rust" ] || [ ! -x "$RR/bin/rocketmq-namesrv-rust" ]; then
    if [ "$ROCKETMQ_RUST_BUILD" != 1 ]; then
      skip rust "not built ($RR/bin) and ROCKETMQ_RUST_BUILD=$ROCKETMQ_RUST_BUILD"
    else
      log "building rocketmq-rust $ROCKETMQ_RUST_VERSION from crates.io (cargo install, at most ${ROCKETMQ_RUST_BUILD_TIMEOUT}s)"
      if ! CARGO_TARGET_DIR=$CACHE/rocketmq-rust-target timeout "$ROCKETMQ_RUST_BUILD_TIMEOUT" \
        nice -n "$BUILD_NICE" cargo install --locked --root "$RR" \
        "rocketmq-namesrv@$ROCKETMQ_RUST_VERSION" "rocketmq-broker@$ROCKETMQ_RUST_VERSION" \
        >"$CACHE/rocketmq-rust-build.log" 2>&1; then
        reason=$(grep -m1 -E '^error' "$CACHE/rocketmq-rust-build.log" || echo "timed out or failed")
        skip rust "cargo install rocketmq-namesrv/rocketmq-broker $ROCKETMQ_RUST_VERSION failed: $reason (log: $CACHE/rocketmq-rust-build.log)"
      fi
    fi
  fi
fi

peer_ok() { # peer: wanted and not skipped
  has_peer "$1" && ! grep -q "^$1:" "$OUT/skipped.txt"
}

# ---------------------------------------------------------------- machine
{
  echo "date: $(date -Is)"
  echo "after: $(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!bench/results' || echo ' (dirty)')"
  echo "before: ${BEFORE_COMMIT:--} (BEFORE_REV=$BEFORE_REV)"
  echo "apache rocketmq: $ROCKETMQ_VERSION (heap $RMQ_HEAP, name server heap $RMQ_NS_HEAP)"
  echo "rocketmq-rust: $ROCKETMQ_RUST_VERSION"
  echo "settings: DURATION=$DURATION WARMUP=$WARMUP JAVA_WARMUP=$JAVA_WARMUP REPEAT=$REPEAT BACKLOG=$BACKLOG E2E_RATE=$E2E_RATE ALLOC_MESSAGES=$ALLOC_MESSAGES"
  echo "peers: $PEERS"
  echo "kernel: $(uname -r)"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "java: $(java -version 2>&1 | head -1 || echo -)"
  echo "rustc: $(rustc --version)"
  echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB total, " $7 " MiB available"}')"
  echo "--- lscpu"
  lscpu
} >"$OUT/machine.txt"
cp "$OUT/skipped.txt" "$OUT/skipped-at-start.txt" 2>/dev/null || true

# ---------------------------------------------------------------- servers
NS=         # name server address of the running peer
wait_for() { # seconds file pattern [port]: pattern in file (if any) and port open
  local secs=$1 file=$2 pat=$3 port=${4:-}
  for _ in $(seq $((secs * 10))); do
    if [ -z "$pat" ] || grep -q -- "$pat" "$file" 2>/dev/null; then
      if [ -z "$port" ] || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 0
      fi
    fi
    for p in "${PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || { log "process $p exited during start"; return 1; }
    done
    sleep 0.1
  done
  return 1
}
start_failed() { # what logfile
  log "$1 did not start; last lines of $2:"
  tail -20 "$2" >&2 || true
}

start_shardmq() { # binary flush [metricsPort]
  local bin=$1 flush=$2 mport=${3:-0}
  RUN_DIR=$DATA/run && rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR/store"
  "$bin" serve --set storePathRootDir="$RUN_DIR/store" --set listenPort=33911 --set namesrvListenPort=33876 \
    --set shardListenPortBase=33921 --set shardCount=2 --set metricsPort="$mport" --set brokerIP1=127.0.0.1 \
    --set flushDiskType="$flush" "${SHARDMQ_SETS[@]}" >"$RUN_DIR/broker.out" 2>"$RUN_DIR/broker.err" &
  PIDS+=($!)
  NS=127.0.0.1:33876
  wait_for 30 "$RUN_DIR/broker.out" "shardmq ready" 33876 || { start_failed shardmq "$RUN_DIR/broker.err"; return 1; }
}

RMQ_JVM_COMMON=(-server -XX:+UseG1GC -XX:G1HeapRegionSize=16m -XX:G1ReservePercent=25
  -XX:InitiatingHeapOccupancyPercent=30 -XX:SoftRefLRUPolicyMSPerMB=0 -XX:-OmitStackTraceInFastThrow
  -XX:-UseLargePages -XX:+IgnoreUnrecognizedVMOptions)
start_apache() { # flush
  local flush=$1 conf
  RUN_DIR=$DATA/run && rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR/home/conf" "$RUN_DIR/store"
  conf=$RUN_DIR/broker.conf
  {
    cat bench/peers/apache/broker.conf "bench/peers/apache/broker-$flush.conf"
    echo "namesrvAddr=127.0.0.1:33877"
    echo "listenPort=33711"
    echo "storePathRootDir=$RUN_DIR/store"
    echo "storePathCommitLog=$RUN_DIR/store/commitlog"
    if [ "$flush" = SYNC_FLUSH ]; then
      echo "sendMessageThreadPoolNums=$RMQ_SEND_THREADS"
    else
      echo "transientStorePoolEnable=$([ "$RMQ_TRANSIENT_POOL" = 1 ] && echo true || echo false)"
    fi
    [ -n "${RMQ_EXTRA_CONF:-}" ] && cat "$RMQ_EXTRA_CONF"
  } >"$conf"
  { cat bench/peers/apache/namesrv.conf; echo "listenPort=33877"; } >"$RUN_DIR/namesrv.conf"
  # user.home: the jars' logback configs log to ${user.home}/logs/rocketmqlogs,
  # and the name server keeps ${user.home}/namesrv/kvConfig.json.
  # Name server: runserver.sh's options for Java 9+.
  ROCKETMQ_HOME=$RUN_DIR/home taskset -c 0,1 java "${RMQ_JVM_COMMON[@]}" -Xms"$RMQ_NS_HEAP" -Xmx"$RMQ_NS_HEAP" \
    -XX:MetaspaceSize=128m -XX:MaxMetaspaceSize=320m -Duser.home="$RUN_DIR/home" \
    -Xlog:gc*:file="$RUN_DIR/namesrv_gc.log":time,tags:filecount=5,filesize=30M \
    -cp "$RMQ_LIB/*" org.apache.rocketmq.namesrv.NamesrvStartup -c "$RUN_DIR/namesrv.conf" \
    >"$RUN_DIR/namesrv.out" 2>&1 &
  PIDS+=($!)
  NS=127.0.0.1:33877
  wait_for 60 "$RUN_DIR/namesrv.out" "boot success" 33877 || { start_failed "apache name server" "$RUN_DIR/namesrv.out"; return 1; }
  # Broker: runbroker.sh's options for Java 9+ (-Xms8g -Xmx8g, G1, AlwaysPreTouch,
  # MaxDirectMemorySize=15g, -UseBiasedLocking), numactl left out (one node).
  ROCKETMQ_HOME=$RUN_DIR/home taskset -c 0,1 java "${RMQ_JVM_COMMON[@]}" -Xms"$RMQ_HEAP" -Xmx"$RMQ_HEAP" \
    -XX:+AlwaysPreTouch -XX:MaxDirectMemorySize=15g -XX:-UseBiasedLocking -Duser.home="$RUN_DIR/home" \
    -Xlog:gc*:file="$RUN_DIR/broker_gc.log":time,tags:filecount=5,filesize=30M \
    -cp "$RMQ_LIB/*" org.apache.rocketmq.broker.BrokerStartup -c "$conf" \
    >"$RUN_DIR/broker.out" 2>&1 &
  PIDS+=($!)
  wait_for 120 "$RUN_DIR/broker.out" "boot success" 33711 || { start_failed "apache broker" "$RUN_DIR/broker.out"; return 1; }
  sleep 1 # the broker's first registration with the name server
}

# rocketmq-rust 1.0.0 here: its name server does not exit on SIGTERM
# (stop_pid sends SIGKILL after 20 s); with SYNC_FLUSH its broker stopped
# during start ("core.service.failed: Service lifecycle operation failed"),
# with ASYNC_FLUSH it started but the name server had no TBW102 route.
start_rust() { # flush
  local flush=$1
  RUN_DIR=$DATA/run && rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR/home/conf" "$RUN_DIR/store"
  {
    cat bench/peers/rust/broker.conf
    echo "flushDiskType=$flush"
    echo "namesrvAddr=127.0.0.1:33878"
    echo "listenPort=33611"
    echo "storePathRootDir=$RUN_DIR/store"
    echo "storePathCommitLog=$RUN_DIR/store/commitlog"
  } >"$RUN_DIR/broker.properties"
  HOME=$RUN_DIR/home ROCKETMQ_HOME=$RUN_DIR/home taskset -c 0,1 "$RR/bin/rocketmq-namesrv-rust" \
    --listenPort 33878 --bindAddress 127.0.0.1 --rocketmqHome "$RUN_DIR/home" \
    --kvConfigPath "$RUN_DIR/home/kvConfig.json" >"$RUN_DIR/namesrv.out" 2>&1 &
  PIDS+=($!)
  NS=127.0.0.1:33878
  wait_for 30 "$RUN_DIR/namesrv.out" "" 33878 || { start_failed "rocketmq-rust name server" "$RUN_DIR/namesrv.out"; return 1; }
  HOME=$RUN_DIR/home ROCKETMQ_HOME=$RUN_DIR/home taskset -c 0,1 "$RR/bin/rocketmq-broker-rust" \
    -c "$RUN_DIR/broker.properties" >"$RUN_DIR/broker.out" 2>&1 &
  PIDS+=($!)
  wait_for 60 "$RUN_DIR/broker.out" "" 33611 || { start_failed "rocketmq-rust broker" "$RUN_DIR/broker.out"; return 1; }
  sleep 2 # first registration with the name server
}

start_peer() { # peer flush
  stop_servers
  case $1 in
    before) start_shardmq "$BIN_BEFORE/shardmq" "$2" ;;
    after) start_shardmq "$BIN_AFTER/shardmq" "$2" ;;
    apache) start_apache "$2" ;;
    rust) start_rust "$2" ;;
  esac
}

cpu_ticks() { # utime+stime of all server processes, in clock ticks
  local total=0 p s
  for p in "${PIDS[@]}"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) } # after the command name
    # fields after ')': state(3) ... utime is field 14, stime 15 of the full line
    set -- $s
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# ---------------------------------------------------------------- runs
bench_timed() { # name peer args... : a bench run with a DURATION window sampled for CPU
  local name=$1 peer=$2
  shift 2
  local base=$OUT/raw/$name/$peer-r$REP warm=$WARMUP
  [ "$peer" = apache ] && warm=$JAVA_WARMUP
  mkdir -p "$OUT/raw/$name"
  echo "== $name $peer r$REP: $BENCH $* --namesrv $NS --warmup $warm --json $base.json" >>"$OUT/commands.txt"
  timeout $((warm + DURATION + 180)) "$BENCH" "$@" --namesrv "$NS" --cores 0,1 --size 1024 \
    --duration "$DURATION" --warmup "$warm" --tag peer="$peer" --json "$base.json" >"$base.out" 2>&1 &
  local bpid=$! c0= c1=
  BENCH_PID=$bpid
  # The load starts right after the bench prints its resolved parameters.
  for _ in $(seq 600); do
    grep -q '^parameters:' "$base.out" 2>/dev/null && break
    kill -0 "$bpid" 2>/dev/null || break
    sleep 0.02
  done
  if kill -0 "$bpid" 2>/dev/null; then
    nap "$warm"
    c0=$(cpu_ticks)
    nap "$DURATION"
    c1=$(cpu_ticks)
  fi
  local rc=0
  wait "$bpid" || rc=$?
  BENCH_PID=
  [ -n "$c0" ] && echo "cpu_ticks=$((c1 - c0)) clk_tck=$CLK_TCK window_secs=$DURATION" >"$base.cpu"
  [ "$rc" = 0 ] || { log "FAILED ($rc): $name $peer r$REP"; tail -3 "$base.out" >&2; }
  grep -A5 '^summary' "$base.out" | sed "s/^/  $peer: /" >&2 || true
}

start_or_mark() { # scenario peer flush: start the peer, or leave a note the summary shows as failed
  start_peer "$2" "$3" && return 0
  mkdir -p "$OUT/raw/$1"
  echo "$2 did not start ($3); see the log lines above in the script's output" >"$OUT/raw/$1/$2-r$REP.out"
  return 1
}

run_scenario() { # scenario peer
  local sc=$1 peer=$2
  case $sc in
    send-sync | send-async)
      local flush=SYNC_FLUSH
      [ "$sc" = send-async ] && flush=ASYNC_FLUSH
      start_or_mark "$sc" "$peer" "$flush" || return 0
      bench_timed "$sc" "$peer" produce --topic B --batch 1 --connections 64 --mode sync --tag flush=$flush
      ;;
    batch64)
      start_or_mark "$sc" "$peer" SYNC_FLUSH || return 0
      bench_timed "$sc" "$peer" produce --topic B --batch 64 --connections 8 --mode sync --tag flush=SYNC_FLUSH
      ;;
    e2e)
      start_or_mark "$sc" "$peer" SYNC_FLUSH || return 0
      bench_timed "$sc" "$peer" e2e --topic E --connections 16 --mode async --inflight 64 --rate "$E2E_RATE" \
        --tag flush=SYNC_FLUSH
      ;;
    consume)
      start_or_mark "$sc" "$peer" ASYNC_FLUSH || return 0
      local base=$OUT/raw/$sc/$peer-r$REP
      mkdir -p "$OUT/raw/$sc"
      # 16 queues per broker so that each peer can have 16 consumer connections.
      echo "== $sc $peer r$REP backlog: produce --topic C --topic-queues 16 --batch 64 --connections 16 --messages $BACKLOG" >>"$OUT/commands.txt"
      run_fg timeout 1800 "$BENCH" produce --namesrv "$NS" --topic C --topic-queues 16 --cores 0,1 --size 1024 --batch 64 \
        --connections 16 --mode sync --messages "$BACKLOG" --warmup 0 --json "$base.backlog.json" \
        >"$base.backlog.out" 2>&1 || { log "FAILED: backlog for $peer"; tail -3 "$base.backlog.out" >&2; return 0; }
      # Consume exactly what was stored (a refused request, e.g. flow control, stores nothing).
      local n
      n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["produced_total"])' "$base.backlog.json")
      sleep 2 # let the broker dispatch its consume queues
      echo "== $sc $peer r$REP: consume --topic C --from-start --connections 16 --messages $n --json $base.json" >>"$OUT/commands.txt"
      local c0 c1 rc=0
      c0=$(cpu_ticks)
      run_fg timeout 900 "$BENCH" consume --namesrv "$NS" --topic C --cores 0,1 --from-start --connections 16 \
        --messages "$n" --duration 600 --warmup 0 --tag peer="$peer" --json "$base.json" >"$base.out" 2>&1 || rc=$?
      c1=$(cpu_ticks)
      echo "cpu_ticks=$((c1 - c0)) clk_tck=$CLK_TCK window_secs=whole" >"$base.cpu"
      [ "$rc" = 0 ] || { log "FAILED ($rc): $sc $peer r$REP"; tail -3 "$base.out" >&2; }
      grep -A4 '^summary' "$base.out" | sed "s/^/  $peer: /" >&2 || true
      ;;
    timers | sendback)
      # Scheduled delivery (TIMER_DELIVER_MS, $TIMERS timers due over 60 s)
      # and CONSUMER_SEND_MSG_BACK (to the DLQ, then as a level-3 retry).
      start_or_mark "$sc" "$peer" SYNC_FLUSH || return 0
      local base=$OUT/raw/$sc/$peer-r$REP addr=127.0.0.1:33911 rc=0
      [ "$peer" = apache ] && addr=127.0.0.1:33711
      mkdir -p "$OUT/raw/$sc"
      if [ "$sc" = timers ]; then
        echo "== $sc $peer r$REP: timers --broker $addr --messages $TIMERS --size 100 --lead $TIMER_LEAD --spread 60" >>"$OUT/commands.txt"
        run_fg timeout 1200 "$BENCH" timers --broker "$addr" --messages "$TIMERS" --size 100 --lead "$TIMER_LEAD" \
          --spread 60 --connections 8 --broker-pid "${PIDS[-1]}" >"$base.out" 2>&1 || rc=$?
      else
        for lvl in -1 0; do
          echo "== $sc $peer r$REP: send-back --broker $addr --messages $SENDBACK --delay-level=$lvl" >>"$OUT/commands.txt"
          run_fg timeout 900 "$BENCH" send-back --broker "$addr" --topic "SB$((lvl + 1))" --group "SBG$((lvl + 1))" \
            --messages "$SENDBACK" --connections 8 --delay-level="$lvl" >>"$base.out" 2>&1 || rc=$?
        done
      fi
      [ "$rc" = 0 ] || log "FAILED ($rc): $sc $peer r$REP"
      sed "s/^/  $peer: /" "$base.out" | grep -vE '^\s*$' | tail -6 >&2 || true
      ;;
    pop)
      # Invisible-time consumption of a backlog of $POPN messages: POP with
      # one ACK_MESSAGE per message (what the Java 5.x push consumer sends),
      # POP with one BATCH_ACK_MESSAGE per pop, and pull on the same backlog.
      start_or_mark "$sc" "$peer" SYNC_FLUSH || return 0
      local base=$OUT/raw/$sc/$peer-r$REP rc=0
      mkdir -p "$OUT/raw/$sc"
      echo "== $sc $peer r$REP backlog: produce --topic P --topic-queues 16 --batch 64 --connections 16 --messages $POPN" >>"$OUT/commands.txt"
      run_fg timeout 1800 "$BENCH" produce --namesrv "$NS" --topic P --topic-queues 16 --cores 0,1 --size 1024 --batch 64 \
        --connections 16 --mode sync --messages "$POPN" --warmup 0 >"$base.backlog.out" 2>&1 ||
        { log "FAILED: backlog for $peer"; tail -3 "$base.backlog.out" >&2; return 0; }
      sleep 2
      for ack in single batch; do
        echo "== $sc $peer r$REP: pop --topic P --group PG_$ack --connections 16 --messages $POPN --ack $ack" >>"$OUT/commands.txt"
        run_fg timeout 900 "$BENCH" pop --namesrv "$NS" --topic P --group "PG_$ack" --connections 16 \
          --messages "$POPN" --ack "$ack" --duration 300 >"$base.$ack.out" 2>&1 || rc=$?
        tail -4 "$base.$ack.out" | sed "s/^/  $peer $ack: /" >&2 || true
      done
      echo "== $sc $peer r$REP: consume --topic P --from-start --group PG_pull --connections 16 --messages $POPN" >>"$OUT/commands.txt"
      run_fg timeout 900 "$BENCH" consume --namesrv "$NS" --topic P --cores 0,1 --from-start --group PG_pull \
        --connections 16 --messages "$POPN" --duration 600 --warmup 0 >"$base.pull.out" 2>&1 || rc=$?
      grep -A2 '^summary' "$base.pull.out" | sed "s/^/  $peer pull: /" >&2 || true
      [ "$rc" = 0 ] || log "FAILED ($rc): $sc $peer r$REP"
      ;;
    alloc)
      local bin
      case $peer in
        after) bin=$BIN_AFTER/shardmq-alloc ;;
        before) bin=$BIN_BEFORE/shardmq-alloc ;;
        *) return 0 ;;
      esac
      if [ ! -x "$bin" ]; then
        echo "$peer: no alloc-count feature at this revision" >"$OUT/raw/alloc-$peer-r$REP.txt" 2>/dev/null || true
        return 0
      fi
      mkdir -p "$OUT/raw/$sc"
      stop_servers
      start_shardmq "$bin" SYNC_FLUSH 33957 || return 0
      local f=$OUT/raw/$sc/$peer-r$REP.txt a0 a1 a2
      : >"$f"
      # Warm up (topic creation, connections, first segment), then count.
      "$BENCH" produce --namesrv "$NS" --topic A --cores 0,1 --connections 64 --messages 20000 --warmup 0 \
        >"$OUT/raw/$sc/$peer-r$REP.warm.out" 2>&1 || true
      a0=$(curl -s http://127.0.0.1:33957/metrics | awk '/^shardmq_allocations_total/ {print $2}')
      "$BENCH" produce --namesrv "$NS" --topic A --cores 0,1 --connections 64 --messages "$ALLOC_MESSAGES" \
        --warmup 0 --json "$OUT/raw/$sc/$peer-r$REP.single.json" >"$OUT/raw/$sc/$peer-r$REP.single.out" 2>&1 || true
      a1=$(curl -s http://127.0.0.1:33957/metrics | awk '/^shardmq_allocations_total/ {print $2}')
      "$BENCH" produce --namesrv "$NS" --topic A --cores 0,1 --connections 8 --batch 64 \
        --messages "$((ALLOC_MESSAGES * 4))" --warmup 0 --json "$OUT/raw/$sc/$peer-r$REP.batch.json" \
        >"$OUT/raw/$sc/$peer-r$REP.batch.out" 2>&1 || true
      a2=$(curl -s http://127.0.0.1:33957/metrics | awk '/^shardmq_allocations_total/ {print $2}')
      echo "single_allocations=$((a1 - a0)) single_json=$peer-r$REP.single.json" >>"$f"
      echo "batch_allocations=$((a2 - a1)) batch_json=$peer-r$REP.batch.json" >>"$f"
      stop_servers
      log "alloc $peer: $(tr '\n' ' ' <"$f")"
      ;;
  esac
}

ORDER=()
for p in before after apache rust; do
  peer_ok "$p" && ORDER+=("$p")
done
log "peers: ${ORDER[*]}; scenarios: $SCENARIOS; repeats: $REPEAT"
for ((REP = 1; REP <= REPEAT; REP++)); do
  if ((REP % 2 == 0)); then
    order=()
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do order+=("${ORDER[$i]}"); done
  else
    order=("${ORDER[@]}")
  fi
  for sc in $SCENARIOS; do
    for peer in "${order[@]}"; do
      log "repeat $REP: $sc on $peer"
      run_scenario "$sc" "$peer" || log "FAILED: $sc on $peer"
      stop_servers
    done
  done
done
stop_servers

python3 scripts/bench-peers-table.py "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
echo "results in $OUT"

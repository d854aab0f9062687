#!/usr/bin/env bash
# The replication soak (issue 15; not in CI): a broker group of a
# SYNC_MASTER and a slave from scripts/cluster.sh, CYCLES (100) cycles of
# a burst of sends and one random fault — SIGKILL and restart of the
# master or the slave, SIGSTOP of either for 0.3-3 s, the replication
# links reset — then both logs are read in full: acknowledged-but-lost
# messages and duplicates must be 0 (src/bin/soak_ha.rs says exactly what
# is checked). Exit status 0 only on PASS.
#
#   scripts/soak-ha.sh [CYCLES] [BURST]        SEED=n to replay a run
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-100}
BURST=${2:-200}
BASE=${BASE:-26000}
DIR=$(mktemp -d /tmp/shardmq-soak-ha-XXXX)
cargo build --release --bin shardmq --bin soak_ha
trap 'scripts/cluster.sh stop --dir "$DIR" >/dev/null || true; [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"' EXIT
SHARDMQ_BIN=target/release/shardmq scripts/cluster.sh start --dir "$DIR" --groups 1 --slaves 1 \
  --role SYNC_MASTER --base "$BASE" --segment-mb 64
target/release/shardmq admin --namesrv "127.0.0.1:$BASE" topic create Soak --queues 8 --cluster LocalCluster
SHARDMQ_BIN=target/release/shardmq target/release/soak_ha --dir "$DIR" --base "$BASE" \
  --cycles "$CYCLES" --burst "$BURST" ${SEED:+--seed "$SEED"}

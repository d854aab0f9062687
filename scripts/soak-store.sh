#!/usr/bin/env bash
# kill -9 soak of the storage engine: N cycles (default 150) of a SYNC_FLUSH
# writer killed at random moments, each followed by a full verification of
# every acknowledged message. Usage: scripts/soak-store.sh [CYCLES] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export SHARDMQ_KILL_CYCLES="${1:-150}"
export SHARDMQ_KILL_SEED="${2:-$RANDOM}"
echo "soak: $SHARDMQ_KILL_CYCLES cycles, seed $SHARDMQ_KILL_SEED"
cargo test --release --test store_kill9 -- --nocapture

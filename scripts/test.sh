#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Installs what it
# needs first, so it works on a fresh machine.
#
# Every test binary runs even when one fails (--no-fail-fast); the last line
# is always the total, `N passed, N failed`, and the exit status is non-zero
# when anything failed. Set SHARDMQ_KEEP=1 to keep the temp dirs of failed
# end-to-end tests (their paths are printed).
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
# tests/failover.rs partitions a broker with a network namespace (ip(8),
# as root).
if ! command -v ip >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
fi
# The tests' brokers keep their data under $TMPDIR and refuse writes above
# diskMaxUsedSpaceRatio (95 in the tests, 90 for the README's own commands):
# say so up front when the disk is already that full, rather than leave it
# to a hundred failing sends to tell.
tmp=${TMPDIR:-/tmp}
used=$(df --output=pcent "$tmp" 2>/dev/null | tail -1 | tr -dc 0-9)
echo "disk: $tmp is ${used:-?}% used ($(df -h --output=avail "$tmp" 2>/dev/null | tail -1 | tr -d ' ') free); the build takes ~8 GB more"
if [ -n "$used" ] && [ "$used" -ge 85 ]; then
    echo "warning: $tmp is ${used}% used: tests whose brokers see it above 90-95% will fail with SERVICE_NOT_AVAILABLE (disk full); free space or point TMPDIR elsewhere" >&2
fi
cargo fmt --all -- --check || { echo "0 passed, 1 failed (cargo fmt --check)"; exit 1; }
cargo clippy --workspace --all-targets -- -D warnings || { echo "0 passed, 1 failed (clippy)"; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# One closing line for the whole run (cargo's last line is the doc-tests').
# A test binary that crashed or did not build prints no `test result:` line:
# count it as a failure so that the total never looks clean when it is not.
awk -v status="$status" '
    /^test result:/ { p += $4; f += $6 }
    END {
        if (status != 0 && f == 0) f = 1
        printf "%d passed, %d failed\n", p, f
    }' "$log"
exit "$status"

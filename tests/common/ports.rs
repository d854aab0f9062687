//! Loopback ports for the servers the tests start.
//!
//! A port found by binding port 0 lies in the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768..60999 by default): once the
//! test lets go of it, any outgoing connection on the machine (a client of
//! another test, Maven, the broker's own) may get it as its source port, and
//! the broker that was meant to listen there fails with "Address already in
//! use" — seen in CI on a replication port. So the ports come from below
//! that range, where the kernel never hands out source ports: random blocks
//! (so concurrent test binaries rarely meet), each checked free by binding
//! it, none handed out twice in one test binary.
//!
//! Included by tests/common/mod.rs, tests/interop/harness.rs and
//! bench/tests/net_bench.rs (with `#[path]`).

use std::net::TcpListener;
use std::sync::Mutex;

/// Lowest port handed out.
const FLOOR: u16 = 10_000;

/// The first port of the kernel's ephemeral range (32768 if unreadable).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32_768)
}

struct Picker {
    handed_out: Vec<u16>,
    rng: u64,
}

static PICKER: Mutex<Option<Picker>> = Mutex::new(None);

/// A free TCP port `p` on 127.0.0.1 such that `p - 2` (RocketMQ's VIP
/// channel) and `p + 1 ..= p + extra` (shard or replication ports) are free
/// too; below the ephemeral range unless that range starts too low to leave
/// room (then anywhere from 10000 to 60000).
pub fn free_port_block(extra: u16) -> u16 {
    let mut guard = PICKER.lock().unwrap_or_else(|e| e.into_inner());
    let picker = guard.get_or_insert_with(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Picker {
            handed_out: Vec::new(),
            rng: nanos ^ (u64::from(std::process::id()) << 32) | 1,
        }
    });
    let ceiling = match ephemeral_start() {
        e if e >= FLOOR + 1_000 => e,
        _ => 60_000,
    };
    let span = u64::from(ceiling - FLOOR - extra - 2);
    for _ in 0..5_000 {
        // xorshift64: enough to scatter blocks across test binaries.
        picker.rng ^= picker.rng << 13;
        picker.rng ^= picker.rng >> 7;
        picker.rng ^= picker.rng << 17;
        let p = FLOOR + 2 + (picker.rng % span) as u16;
        let block = p - 2..=p + extra;
        if block.clone().any(|q| picker.handed_out.contains(&q)) {
            continue;
        }
        if block.clone().all(|q| TcpListener::bind(("127.0.0.1", q)).is_ok()) {
            picker.handed_out.extend(block);
            return p;
        }
    }
    panic!(
        "no free block of {} ports on 127.0.0.1 in {FLOOR}..{ceiling}",
        extra + 3
    );
}

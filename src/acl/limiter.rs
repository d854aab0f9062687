//! Slowing down addresses that keep failing authentication.
//!
//! Pure bookkeeping, the clock passed in: per client address and account,
//! the count of failures since its last success and the time of the last
//! one. The account is the access key of a request that named a known one
//! (a wrong secret, a refused address), "" for the rest (no or an unknown
//! access key): a client guessing one account's secret does not slow down
//! the other accounts' clients behind the same address (a NAT, a host
//! running many applications), and guessing access keys is one bucket. After
//! [`LimiterConfig::free_failures`] failures an address must wait
//! `base_delay · 2^(n − free − 1)` (capped at `max_delay`) after its last
//! failure before its next request is checked; the broker answers requests
//! that come earlier with a refusal without verifying anything (so a
//! flood costs no HMAC either).
//!
//! IPv6 clients are counted per /64 (one host usually owns a whole /64).
//! The table holds at most `max_entries` addresses: entries idle for
//! `forget_after` go first, then the one whose last failure is oldest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Addresses tracked at most.
    pub max_entries: usize,
    /// Failures an address may have before it is slowed down.
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones.
    pub base_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// An address without a failure for this long is forgotten.
    pub forget_after: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            free_failures: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            forget_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
}

/// Failure counts per client address; see the module docs.
#[derive(Debug)]
pub struct Limiter {
    cfg: LimiterConfig,
    entries: HashMap<Key, Entry>,
}

/// Longest account name kept in a key.
const MAX_WHO: usize = 256;

type Key = (IpAddr, Box<str>);

/// The key an address is counted under: IPv4 as is (mapped IPv6 too),
/// IPv6 by its /64.
fn key(ip: IpAddr, who: &str) -> Key {
    let who = if who.len() > MAX_WHO { "" } else { who };
    (address(ip), who.into())
}

fn address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

impl Limiter {
    pub fn new(cfg: LimiterConfig) -> Self {
        let cfg = LimiterConfig {
            max_entries: cfg.max_entries.max(1),
            ..cfg
        };
        Self {
            cfg,
            entries: HashMap::new(),
        }
    }

    /// The wait owed after `failures` consecutive failures.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.cfg.free_failures + 1) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        self.cfg.base_delay.saturating_mul(factor).min(self.cfg.max_delay)
    }

    /// `Some(wait)` when a request from `ip` for account `who` arriving at
    /// `now` must be refused unchecked, and how much longer it has to wait.
    pub fn retry_after(&self, ip: IpAddr, who: &str, now: Instant) -> Option<Duration> {
        if self.entries.is_empty() {
            return None;
        }
        let e = self.entries.get(&key(ip, who))?;
        let due = e.last_failure + self.delay_after(e.failures);
        due.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Counts a failed authentication from `ip` for `who`; the wait now owed.
    pub fn record_failure(&mut self, ip: IpAddr, who: &str, now: Instant) -> Duration {
        let k = key(ip, who);
        if !self.entries.contains_key(&k) && self.entries.len() >= self.cfg.max_entries {
            self.make_room(now);
        }
        let e = self.entries.entry(k).or_insert(Entry {
            failures: 0,
            last_failure: now,
        });
        e.failures = e.failures.saturating_add(1);
        e.last_failure = e.last_failure.max(now);
        let failures = e.failures;
        self.delay_after(failures)
    }

    /// A successful authentication from `ip` as `who` clears its count.
    pub fn record_success(&mut self, ip: IpAddr, who: &str) {
        if !self.entries.is_empty() {
            self.entries.remove(&key(ip, who));
        }
    }

    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops idle entries; if none is idle, the least recently failed one.
    fn make_room(&mut self, now: Instant) {
        let forget = self.cfg.forget_after;
        self.entries.retain(|_, e| {
            now.checked_duration_since(e.last_failure)
                .is_none_or(|idle| idle < forget)
        });
        if self.entries.len() >= self.cfg.max_entries {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(LimiterConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn cfg() -> LimiterConfig {
        LimiterConfig {
            max_entries: 3,
            free_failures: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            forget_after: Duration::from_secs(60),
        }
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn free_failures_then_doubling_up_to_the_cap() {
        let l = Limiter::new(cfg());
        let delays: Vec<u64> = (0..10).map(|n| l.delay_after(n).as_millis() as u64).collect();
        assert_eq!(delays, vec![0, 0, 0, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(l.delay_after(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn an_address_waits_after_repeated_failures_and_success_clears_it() {
        let t0 = Instant::now();
        let mut l = Limiter::new(cfg());
        let ip = v4(1);
        assert_eq!(l.record_failure(ip, "", t0), Duration::ZERO);
        assert_eq!(l.record_failure(ip, "", t0), Duration::ZERO);
        assert_eq!(l.retry_after(ip, "", t0), None);
        assert_eq!(l.record_failure(ip, "", t0), 100 * MS);
        assert_eq!(l.retry_after(ip, "", t0), Some(100 * MS));
        assert_eq!(l.retry_after(ip, "", t0 + 40 * MS), Some(60 * MS));
        assert_eq!(l.retry_after(ip, "", t0 + 100 * MS), None);
        // Another address is not affected.
        assert_eq!(l.retry_after(v4(2), "", t0), None);
        assert_eq!(l.record_failure(ip, "", t0 + 100 * MS), 200 * MS);
        assert_eq!(l.retry_after(ip, "", t0 + 250 * MS), Some(50 * MS));
        l.record_success(ip, "");
        assert_eq!(l.retry_after(ip, "", t0 + 250 * MS), None);
        assert!(l.is_empty());
    }

    #[test]
    fn each_account_of_an_address_counts_alone() {
        let t0 = Instant::now();
        let mut l = Limiter::new(cfg());
        for _ in 0..3 {
            l.record_failure(v4(1), "guessed", t0);
        }
        assert!(l.retry_after(v4(1), "guessed", t0).is_some());
        assert_eq!(l.retry_after(v4(1), "other", t0), None);
        assert_eq!(l.retry_after(v4(1), "", t0), None);
        l.record_success(v4(1), "other");
        assert!(l.retry_after(v4(1), "guessed", t0).is_some());
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut l = Limiter::new(cfg());
        for i in 0..3u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            l.record_failure(ip, "", t0);
        }
        let sibling: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(l.retry_after(sibling, "", t0).is_some());
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(l.retry_after(other, "", t0), None);
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        for _ in 0..3 {
            l.record_failure(mapped, "", t0);
        }
        assert!(l.retry_after(v4(9), "", t0).is_some());
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut l = Limiter::new(cfg());
        for i in 0..3 {
            l.record_failure(v4(i), "", t0 + u32::from(i) * MS);
        }
        // Full, none idle: the least recently failed (10.0.0.0) goes.
        l.record_failure(v4(10), "", t0 + 10 * MS);
        assert_eq!(l.len(), 3);
        assert!(!l.entries.contains_key(&key(v4(0), "")));
        // Later, every old entry is idle and is dropped at once.
        l.record_failure(v4(11), "", t0 + Duration::from_secs(120));
        assert_eq!(l.len(), 1);
        for i in 0..1000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            l.record_failure(ip, "", t0 + Duration::from_secs(200));
            assert!(l.len() <= 3);
        }
    }

    #[test]
    fn a_clock_going_backwards_does_not_panic() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut l = Limiter::new(cfg());
        for _ in 0..5 {
            l.record_failure(v4(1), "", t0);
        }
        assert!(l.retry_after(v4(1), "", t0 - Duration::from_secs(5)).is_some());
        l.record_failure(v4(1), "", t0 - Duration::from_secs(5));
        for i in 2..6 {
            l.record_failure(v4(i), "", t0 - Duration::from_secs(9));
        }
        assert!(l.len() <= 3);
    }
}

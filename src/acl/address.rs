//! Client address patterns: `globalWhiteRemoteAddresses` entries and an
//! account's `whiteRemoteAddress`.
//!
//! One pattern is a comma-separated list of alternatives; a remote address
//! matches the pattern when it matches any alternative. Each alternative
//! is one of:
//!
//! ```text
//!   *  *.*.*.*  *:*:*:*:*:*:*:*     any address
//!   192.168.1.20   2001:db8::7          one address
//!   192.168.*.*    192.168.1.1-100      per octet: a number, `*` (0-255) or `lo-hi`
//!   2001:db8::*    2001:db8::1-ff       per 16-bit group (hex), `::` allowed
//!   192.168.1.{1,2,3}  2001:db8::{a,b}  the prefix followed by each listed item
//!   10.0.0.0/8     fd00::/8             CIDR (a shardmq extension)
//! ```
//!
//! The forms are RocketMQ's (`RemoteAddressStrategyFactory`), with two
//! differences: every octet/group is matched (Apache checks only the first
//! ranged one and ignores those after it, so `10.1-2.3.4` also admitted
//! `10.1.9.9`), and alternatives of any form may be mixed in one list
//! (Apache allows only plain addresses in a comma list). An IPv4 client
//! seen through a dual-stack socket (`::ffff:a.b.c.d`) is matched as IPv4.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest pattern text accepted (a long `{...}` list is still far below).
pub const MAX_PATTERN_LEN: usize = 4096;
/// Most alternatives in one pattern.
pub const MAX_ALTERNATIVES: usize = 256;

/// A parsed address pattern; keeps its text for writing the file back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern {
    text: String,
    alternatives: Vec<Matcher>,
}

/// Inclusive range of one octet or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    lo: u16,
    hi: u16,
}

impl Span {
    fn exact(v: u16) -> Self {
        Self { lo: v, hi: v }
    }

    fn contains(self, v: u16) -> bool {
        (self.lo..=self.hi).contains(&v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Any,
    V4([Span; 4]),
    V6([Span; 8]),
    Cidr { net: IpAddr, prefix: u8 },
}

/// Why a pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address pattern {text:?}: {why}")]
pub struct PatternError {
    /// The offending text (bounded).
    pub text: String,
    pub why: String,
}

fn error(text: &str, why: impl Into<String>) -> PatternError {
    PatternError {
        text: text.chars().take(80).collect(),
        why: why.into(),
    }
}

impl AddressPattern {
    /// Parses `text`; surrounding whitespace is ignored. A blank text is an
    /// error: callers decide what "no pattern" means.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(error(text, "empty"));
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(error(text, format!("longer than {MAX_PATTERN_LEN} bytes")));
        }
        let mut alternatives = Vec::new();
        for item in split_top_level(text) {
            let item = item.trim();
            if item.is_empty() {
                return Err(error(text, "empty item in the comma list"));
            }
            match item.find('{') {
                Some(open) => expand_braces(item, open, &mut alternatives)?,
                None => alternatives.push(parse_one(item)?),
            }
            if alternatives.len() > MAX_ALTERNATIVES {
                return Err(error(text, format!("more than {MAX_ALTERNATIVES} alternatives")));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            alternatives,
        })
    }

    /// The pattern as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when every address matches.
    pub fn is_any(&self) -> bool {
        self.alternatives.contains(&Matcher::Any)
    }

    pub fn matches(&self, remote: IpAddr) -> bool {
        let remote = canonical(remote);
        self.alternatives.iter().any(|m| m.matches(remote))
    }
}

/// Splits a list of addresses at commas that are not inside `{...}`, so
/// that `10.0.0.{1,2},10.0.1.1` is two items (the admin request carries a
/// whole list in one comma-separated string).
pub fn split_top_level(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// `prefix{a,b,c}`: one address per listed item.
fn expand_braces(item: &str, open: usize, out: &mut Vec<Matcher>) -> Result<(), PatternError> {
    let (prefix, rest) = item.split_at(open);
    let inner = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .filter(|inner| !inner.contains(['{', '}']))
        .ok_or_else(|| error(item, "a `{...}` list must close the pattern"))?;
    if !(prefix.ends_with('.') || prefix.ends_with(':')) {
        return Err(error(item, "a `{...}` list must follow `.` or `:`"));
    }
    for part in inner.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(error(item, "empty item in `{...}`"));
        }
        out.push(parse_one(&format!("{prefix}{part}"))?);
        if out.len() > MAX_ALTERNATIVES {
            return Err(error(item, format!("more than {MAX_ALTERNATIVES} alternatives")));
        }
    }
    Ok(())
}

fn parse_one(item: &str) -> Result<Matcher, PatternError> {
    if matches!(item, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
        return Ok(Matcher::Any);
    }
    if let Some((addr, bits)) = item.split_once('/') {
        return parse_cidr(item, addr, bits);
    }
    if item.contains(':') {
        parse_v6(item)
    } else {
        parse_v4(item)
    }
}

fn parse_cidr(item: &str, addr: &str, bits: &str) -> Result<Matcher, PatternError> {
    let net: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| error(item, "CIDR needs an address before `/`"))?;
    let net = canonical(net);
    let max = if net.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match bits.trim().parse() {
        Ok(p) if p <= max => p,
        _ => return Err(error(item, format!("CIDR prefix must be 0..={max}"))),
    };
    Ok(Matcher::Cidr {
        net: mask(net, prefix),
        prefix,
    })
}

/// One octet (`radix` 10, max 255) or group (`radix` 16, max 0xffff): a
/// number, `*`, or `lo-hi`.
fn parse_span(item: &str, part: &str, radix: u32, max: u16) -> Result<Span, PatternError> {
    let num = |s: &str| -> Result<u16, PatternError> {
        let s = s.trim();
        let digits = if radix == 10 { 3 } else { 4 };
        let ok = !s.is_empty() && s.len() <= digits && s.chars().all(|c| c.is_digit(radix));
        match u16::from_str_radix(s, radix) {
            Ok(v) if ok && v <= max => Ok(v),
            _ if radix == 10 => Err(error(item, format!("{s:?} is not a number within 0..=255"))),
            _ => Err(error(item, format!("{s:?} is not a hex group within 0..=ffff"))),
        }
    };
    let part = part.trim();
    if part == "*" {
        return Ok(Span { lo: 0, hi: max });
    }
    match part.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(error(item, format!("range {part} is empty")));
            }
            Ok(Span { lo, hi })
        }
        None => Ok(Span::exact(num(part)?)),
    }
}

fn parse_v4(item: &str) -> Result<Matcher, PatternError> {
    let parts: Vec<&str> = item.split('.').collect();
    if parts.len() != 4 {
        return Err(error(item, "an IPv4 pattern has four octets"));
    }
    let mut spans = [Span::exact(0); 4];
    for (span, part) in spans.iter_mut().zip(&parts) {
        *span = parse_span(item, part, 10, 255)?;
    }
    Ok(Matcher::V4(spans))
}

fn parse_v6(item: &str) -> Result<Matcher, PatternError> {
    if !item.contains(['*', '-']) {
        // A plain address: the standard parser knows every form
        // (embedded IPv4 included).
        let addr: Ipv6Addr = item.parse().map_err(|_| error(item, "not an IPv6 address"))?;
        return Ok(match canonical(IpAddr::V6(addr)) {
            IpAddr::V4(v4) => Matcher::V4(v4.octets().map(|o| Span::exact(u16::from(o)))),
            IpAddr::V6(v6) => Matcher::V6(v6.segments().map(Span::exact)),
        });
    }
    let groups = |s: &str| -> Vec<String> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split(':').map(str::to_owned).collect()
        }
    };
    let parts: Vec<String> = match item.split_once("::") {
        Some((head, tail)) => {
            if tail.contains("::") {
                return Err(error(item, "`::` may appear once"));
            }
            let (head, tail) = (groups(head), groups(tail));
            if head.len() + tail.len() > 7 {
                return Err(error(item, "too many groups around `::`"));
            }
            let zeros = vec!["0".to_owned(); 8 - head.len() - tail.len()];
            head.into_iter().chain(zeros).chain(tail).collect()
        }
        None => groups(item),
    };
    if parts.len() != 8 {
        return Err(error(item, "an IPv6 pattern has eight groups (or `::`)"));
    }
    let mut spans = [Span::exact(0); 8];
    for (span, part) in spans.iter_mut().zip(&parts) {
        *span = parse_span(item, part, 16, 0xffff)?;
    }
    Ok(Matcher::V6(spans))
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & bits))
        }
    }
}

impl Matcher {
    fn matches(&self, remote: IpAddr) -> bool {
        match (self, remote) {
            (Matcher::Any, _) => true,
            (Matcher::V4(spans), IpAddr::V4(ip)) => {
                spans.iter().zip(ip.octets()).all(|(s, o)| s.contains(u16::from(o)))
            }
            (Matcher::V6(spans), IpAddr::V6(ip)) => spans.iter().zip(ip.segments()).all(|(s, g)| s.contains(g)),
            (Matcher::Cidr { net, prefix }, ip) if net.is_ipv4() == ip.is_ipv4() => mask(ip, *prefix) == *net,
            _ => false,
        }
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for AddressPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for AddressPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn m(pattern: &str, addr: &str) -> bool {
        AddressPattern::parse(pattern).unwrap().matches(ip(addr))
    }

    #[test]
    fn any_forms() {
        for p in ["*", "*.*.*.*", "*:*:*:*:*:*:*:*", " * "] {
            let pat = AddressPattern::parse(p).unwrap();
            assert!(pat.is_any());
            assert!(pat.matches(ip("10.1.2.3")) && pat.matches(ip("2001:db8::1")), "{p}");
        }
        assert!(!AddressPattern::parse("10.*.*.*").unwrap().is_any());
    }

    #[test]
    fn exact_ipv4_and_ipv6() {
        assert!(m("192.168.1.20", "192.168.1.20"));
        assert!(!m("192.168.1.20", "192.168.1.21"));
        assert!(m("2001:db8::7", "2001:0db8:0:0:0:0:0:7"));
        assert!(!m("2001:db8::7", "2001:db8::8"));
        // Dual-stack sockets report IPv4 clients as mapped IPv6.
        assert!(m("192.168.1.20", "::ffff:192.168.1.20"));
        assert!(m("::ffff:10.0.0.1", "10.0.0.1"));
        assert!(!m("192.168.1.20", "2001:db8::1"));
    }

    #[test]
    fn rocketmq_ipv4_ranges() {
        assert!(m("192.168.*.*", "192.168.200.1"));
        assert!(!m("192.168.*.*", "192.169.0.1"));
        assert!(m("192.168.1.1-100", "192.168.1.100"));
        assert!(m("192.168.1.1-100", "192.168.1.1"));
        assert!(!m("192.168.1.1-100", "192.168.1.101"));
        assert!(!m("192.168.1.1-100", "192.168.1.0"));
        assert!(m("10.10.103.*", "10.10.103.255"));
        assert!(m("192.168.1-10.*", "192.168.7.9"));
        // Every octet counts (Apache ignored octets after the first range).
        assert!(!m("10.1-2.3.4", "10.1.9.9"));
        assert!(m("10.1-2.3.4", "10.2.3.4"));
    }

    #[test]
    fn rocketmq_ipv6_ranges() {
        assert!(m("1050:0000:0000:0000:0005:0600:300c:*", "1050::5:600:300c:abcd"));
        assert!(m("1050::0005:0600:300c:1-ffff", "1050::5:600:300c:1"));
        assert!(!m("1050::0005:0600:300c:1-ffff", "1050::5:600:300c:0"));
        assert!(m("2001:db8::*", "2001:db8::ffff"));
        assert!(!m("2001:db8::*", "2001:db9::1"));
        assert!(!m("2001:db8::*", "10.0.0.1"));
    }

    #[test]
    fn brace_lists_and_comma_lists() {
        let p = "192.168.1.{1,2,3}";
        assert!(m(p, "192.168.1.2") && m(p, "192.168.1.3"));
        assert!(!m(p, "192.168.1.4"));
        assert!(m("2001:db8::{a,b}", "2001:db8::b"));
        assert!(!m("2001:db8::{a,b}", "2001:db8::c"));
        let list = "10.0.0.1, 10.0.1.*,192.168.1.{7,8}";
        assert!(m(list, "10.0.0.1") && m(list, "10.0.1.9") && m(list, "192.168.1.8"));
        assert!(!m(list, "10.0.0.2"));
        assert_eq!(split_top_level("a.{1,2},b"), vec!["a.{1,2}", "b"]);
    }

    #[test]
    fn cidr() {
        assert!(m("10.0.0.0/8", "10.255.1.1"));
        assert!(!m("10.0.0.0/8", "11.0.0.1"));
        // A host part in the network is masked away.
        assert!(m("192.168.1.77/24", "192.168.1.3"));
        assert!(m("0.0.0.0/0", "8.8.8.8"));
        assert!(!m("0.0.0.0/0", "2001:db8::1"));
        assert!(m("fd00::/8", "fdab::1"));
        assert!(!m("fd00::/8", "fe80::1"));
        assert!(m("127.0.0.1/32", "::ffff:127.0.0.1"));
        assert!(m("::/0", "2001:db8::1"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for bad in [
            "",
            "  ",
            "192.168.1",
            "192.168.1.256",
            "192.168.1.1.1",
            "192.168.1.9-3",
            "192.168.1.-3",
            "192.168.1.x",
            "192.168.1.+1",
            "192.168.1.0001",
            "192.168.1.{}",
            "192.168.1.{1,,2}",
            "192.168.{1,2}.3",
            "192.168.1{1,2}",
            "10.0.0.0/33",
            "10.0.0.0/",
            "/8",
            "fd00::/129",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3",
            "1::g",
            "1::12345",
            "1,,2",
            "10.0.0.1,",
            "*.*",
        ] {
            assert!(AddressPattern::parse(bad).is_err(), "{bad:?} parsed");
        }
        let err = AddressPattern::parse("192.168.1.300").unwrap_err().to_string();
        assert!(err.contains("192.168.1.300") && err.contains("300"), "{err}");
    }

    #[test]
    fn too_many_alternatives_is_an_error() {
        let items: Vec<String> = (0..=MAX_ALTERNATIVES).map(|i| format!("{}", i % 250)).collect();
        let text = format!("10.0.0.{{{}}}", items.join(","));
        assert!(AddressPattern::parse(&text).is_err());
    }

    #[test]
    fn text_round_trips() {
        let p = AddressPattern::parse(" 192.168.1.{1,2} ").unwrap();
        assert_eq!(p.as_str(), "192.168.1.{1,2}");
        assert_eq!(p.to_string(), "192.168.1.{1,2}");
    }

    proptest! {
        #[test]
        fn any_text_never_panics(text in "[0-9a-f.:*{},/ -]{0,40}", a in any::<[u8; 4]>(), b in any::<[u16; 8]>()) {
            if let Ok(p) = AddressPattern::parse(&text) {
                let _ = p.matches(IpAddr::from(a));
                let _ = p.matches(IpAddr::from(b));
            }
        }

        #[test]
        fn arbitrary_unicode_never_panics(text in "\\PC{0,40}") {
            let _ = AddressPattern::parse(&text);
        }

        #[test]
        fn an_address_matches_itself_and_its_slash_24(a in any::<[u8; 4]>()) {
            let addr = Ipv4Addr::from(a);
            prop_assert!(m(&addr.to_string(), &addr.to_string()));
            let net = format!("{addr}/24");
            prop_assert!(m(&net, &addr.to_string()));
            let star = format!("{}.{}.{}.*", a[0], a[1], a[2]);
            prop_assert!(m(&star, &addr.to_string()));
        }
    }
}

//! The 5.x gRPC clients' signature: every call carries
//!
//! ```text
//! x-mq-date-time: 20261130T104512Z
//! authorization: MQv2-HMAC-SHA1 Credential=<access key>, SignedHeaders=x-mq-date-time, Signature=<hex>
//! ```
//!
//! with `Signature` the hex HMAC-SHA1 of the date-time under the secret key
//! (the Java client writes upper-case hex; compared here ignoring case, in
//! constant time). Only the date-time is signed, so a captured header can
//! be replayed with any request: Apache's proxy accepts any date-time; we
//! refuse one more than [`MAX_SKEW`] away from the broker's clock, which
//! bounds a replay to that window (TLS is the real protection).

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::refusal::shown_key;
use super::{Acl, Identity, Refusal};

pub const ALGORITHM: &str = "MQv2-HMAC-SHA1";
/// The header the signature covers.
pub const DATE_TIME_HEADER: &str = "x-mq-date-time";
/// How far a request's date-time may be from the broker's clock.
pub const MAX_SKEW_MS: i64 = 15 * 60 * 1000;

/// The parts of an `authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Parses `MQv2-HMAC-SHA1 Credential=…, SignedHeaders=…, Signature=…`
/// (parts in any order, spaces around them ignored).
pub fn parse(header: &str) -> Result<Authorization<'_>, &'static str> {
    let rest = header
        .trim()
        .strip_prefix(ALGORITHM)
        .ok_or("the authorization is not MQv2-HMAC-SHA1")?;
    let (mut access_key, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or("a part of the authorization is not key=value")?;
        match k.trim() {
            // Some clients write `Credential=<ak>/<scope>`: the key is first.
            "Credential" => access_key = v.trim().split('/').next(),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    Ok(Authorization {
        access_key: access_key
            .filter(|k| !k.is_empty())
            .ok_or("the authorization has no Credential")?,
        signed_headers: signed_headers.unwrap_or(DATE_TIME_HEADER),
        signature: signature.ok_or("the authorization has no Signature")?,
    })
}

/// The `Signature` a client with `secret` sends for `date_time`.
pub fn sign(secret: &str, date_time: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(date_time.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02X}")).collect()
}

/// Milliseconds since the epoch as `yyyyMMdd'T'HHmmss'Z'` (UTC), the
/// header a client signs.
pub fn format_date_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::protocol::message_id::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `yyyyMMdd'T'HHmmss'Z'` (UTC) as milliseconds since the epoch.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Acl {
    /// Who made a gRPC call from `remote` with these headers at `now_ms`:
    /// the global white list, or an account whose address rule admits
    /// `remote` and whose secret signed a date-time near `now_ms`.
    pub fn authenticate_grpc(
        &self,
        remote: std::net::IpAddr,
        authorization: Option<&str>,
        date_time: Option<&str>,
        now_ms: i64,
    ) -> Result<Identity<'_>, Refusal> {
        if self.is_globally_white(remote) {
            return Ok(Identity::WhiteListed);
        }
        let Some(header) = authorization.filter(|h| !h.trim().is_empty()) else {
            return Err(Refusal::Anonymous { remote });
        };
        let auth = parse(header).map_err(|reason| Refusal::BadAuthorization { reason })?;
        let Some(account) = self.account(auth.access_key) else {
            return Err(Refusal::UnknownAccessKey {
                access_key: shown_key(auth.access_key),
            });
        };
        if !account.allows_address(remote) {
            return Err(Refusal::AddressNotAllowed {
                access_key: shown_key(auth.access_key),
                remote,
            });
        }
        let bad = || Refusal::BadSignature {
            access_key: shown_key(auth.access_key),
        };
        let date_time = date_time.ok_or_else(bad)?;
        let expected = sign(account.secret().expose(), date_time);
        let got = auth.signature.to_ascii_uppercase();
        if !(expected.len() == got.len() && bool::from(expected.as_bytes().ct_eq(got.as_bytes()))) {
            return Err(bad());
        }
        // Checked after the signature: an unsigned date-time says nothing.
        match parse_date_time(date_time) {
            Some(t) if (t - now_ms).abs() <= MAX_SKEW_MS => Ok(Identity::Account(account)),
            _ => Err(Refusal::StaleDateTime {
                access_key: shown_key(auth.access_key),
                date_time: date_time.chars().take(32).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACL: &str =
        "accounts:\n  - accessKey: grpcUser1\n    secretKey: grpc-secret-1\n    whiteRemoteAddress: 127.0.0.1\n";

    fn header(ak: &str, sig: &str) -> String {
        format!("{ALGORITHM} Credential={ak}, SignedHeaders={DATE_TIME_HEADER}, Signature={sig}")
    }

    #[test]
    fn date_times_format_as_they_parse() {
        assert_eq!(format_date_time(0), "19700101T000000Z");
        assert_eq!(format_date_time(1_796_035_512_999), "20261130T104512Z");
        assert_eq!(format_date_time(951_868_799_000), "20000229T235959Z");
        for ms in [0, 951_868_799_000, 1_796_035_512_000, 4_102_444_800_000] {
            assert_eq!(parse_date_time(&format_date_time(ms)), Some(ms));
        }
    }

    #[test]
    fn date_times_parse_as_utc() {
        assert_eq!(parse_date_time("19700101T000000Z"), Some(0));
        assert_eq!(parse_date_time("20261130T104512Z"), Some(1_796_035_512_000));
        assert_eq!(parse_date_time("20000229T235959Z"), Some(951_868_799_000));
        for bad in [
            "",
            "20261130104512Z",
            "20261330T104512Z",
            "2026113OT104512Z",
            "20261130T104512",
            "+0261130T104512Z",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_client_signature_is_accepted_near_its_time_only() {
        let acl = Acl::parse(ACL).unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let dt = "20261130T104512Z";
        let now = parse_date_time(dt).unwrap();
        let sig = sign("grpc-secret-1", dt);
        assert_eq!(sig.len(), 40);
        let h = header("grpcUser1", &sig);
        assert!(acl.authenticate_grpc(ip, Some(&h), Some(dt), now + 60_000).is_ok());
        // Lower-case hex is the same signature.
        let lower = header("grpcUser1", &sig.to_ascii_lowercase());
        assert!(acl.authenticate_grpc(ip, Some(&lower), Some(dt), now).is_ok());
        let r = acl.authenticate_grpc(ip, Some(&h), Some(dt), now + MAX_SKEW_MS + 1000);
        assert!(matches!(r, Err(Refusal::StaleDateTime { .. })), "{r:?}");
        let wrong = header("grpcUser1", &sign("guess", dt));
        assert!(matches!(
            acl.authenticate_grpc(ip, Some(&wrong), Some(dt), now),
            Err(Refusal::BadSignature { .. })
        ));
        assert!(matches!(
            acl.authenticate_grpc(ip, Some(&h), None, now),
            Err(Refusal::BadSignature { .. })
        ));
        assert!(matches!(
            acl.authenticate_grpc(ip, None, Some(dt), now),
            Err(Refusal::Anonymous { .. })
        ));
        assert!(matches!(
            acl.authenticate_grpc(ip, Some("Basic abc"), Some(dt), now),
            Err(Refusal::BadAuthorization { .. })
        ));
        assert!(matches!(
            acl.authenticate_grpc(ip, Some(&header("nobody01", &sig)), Some(dt), now),
            Err(Refusal::UnknownAccessKey { .. })
        ));
        let far = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            acl.authenticate_grpc(far, Some(&h), Some(dt), now),
            Err(Refusal::AddressNotAllowed { .. })
        ));
    }

    #[test]
    fn headers_parse_in_any_order() {
        let a = parse("MQv2-HMAC-SHA1 Signature=AB, Credential=key1/scope ,SignedHeaders=x-mq-date-time").unwrap();
        assert_eq!(
            (a.access_key, a.signature, a.signed_headers),
            ("key1", "AB", "x-mq-date-time")
        );
        assert!(parse("MQv2-HMAC-SHA1 Credential=, Signature=AB").is_err());
        assert!(parse("MQv2-HMAC-SHA1 Credential=k").is_err());
    }
}

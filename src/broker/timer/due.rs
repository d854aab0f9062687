//! When a message being stored is due (store.md §5): a delay level
//! (`DELAY`, all versions), an absolute or relative time (5.x
//! `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`) or ali-ons'
//! `__STARTDELIVERTIME` (absolute ms).
//!
//! * A level wins over the timer properties, as in RocketMQ; levels above
//!   the configured count are clamped to the last; 0 and negative levels
//!   mean "no delay" (`-1` is the DLQ redirect's marker).
//! * A time at or before now means "deliver now" (RocketMQ delivers it at
//!   once too); a delay beyond `timerMaxDelaySec` is refused
//!   (MESSAGE_ILLEGAL), as is a value that is not a number.
//! * Times are exact to the millisecond: no rounding to a timer precision,
//!   so nothing is ever delivered before the time asked for.

use std::time::Duration;

use std::ops::Range;

use bytes::Bytes;

use crate::protocol::properties::{self, keys, Properties};
use crate::store::{MessageInput, DUE_PROPERTY, MARK_PROPERTY, SCHEDULE_TOPIC};

/// ali-ons' property for a delivery time (absolute ms).
pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";

/// The due time (ms since the epoch) of a message with properties `props`
/// stored at `now`: `Ok(None)` when it is not delayed (or due already).
pub fn due_time(props: &str, now: i64, levels: &[Duration], max_delay: Duration) -> Result<Option<i64>, String> {
    if let Some(level) = properties::find(props, keys::DELAY) {
        let level: i64 = level
            .trim()
            .parse()
            .map_err(|_| format!("property DELAY={level:?} is not a delay level"))?;
        if level <= 0 || levels.is_empty() {
            return Ok(None);
        }
        let i = (level as usize).min(levels.len()) - 1;
        return Ok(Some(now.saturating_add(levels[i].as_millis() as i64)));
    }
    let max_ms = max_delay.as_millis().min(i64::MAX as u128) as i64;
    let (key, due) = if let Some(v) = properties::find(props, keys::TIMER_DELIVER_MS) {
        (keys::TIMER_DELIVER_MS, number(keys::TIMER_DELIVER_MS, v)?)
    } else if let Some(v) = properties::find(props, keys::TIMER_DELAY_SEC) {
        let s = number(keys::TIMER_DELAY_SEC, v)?;
        (keys::TIMER_DELAY_SEC, now.saturating_add(s.saturating_mul(1000)))
    } else if let Some(v) = properties::find(props, keys::TIMER_DELAY_MS) {
        (
            keys::TIMER_DELAY_MS,
            now.saturating_add(number(keys::TIMER_DELAY_MS, v)?),
        )
    } else if let Some(v) = properties::find(props, START_DELIVER_TIME) {
        (START_DELIVER_TIME, number(START_DELIVER_TIME, v)?)
    } else {
        return Ok(None);
    };
    if due <= now {
        return Ok(None);
    }
    if due - now > max_ms {
        return Err(format!(
            "property {key} asks for a delay of {} s, above timerMaxDelaySec {} s",
            (due - now) / 1000,
            max_ms / 1000
        ));
    }
    Ok(Some(due))
}

/// Whether a property string may ask for a delay (a cheap test before
/// [`delivery_time`] parses it).
pub fn might_be_delayed(props: &str) -> bool {
    props.contains("DELAY") || props.contains("TIMER_") || props.contains(START_DELIVER_TIME)
}

/// When a message with the client's properties `props` is due: `None` for
/// now (see [`due_time`]).
pub fn delivery_time(cfg: &crate::config::BrokerConfig, props: &str) -> Result<Option<i64>, String> {
    if !might_be_delayed(props) {
        return Ok(None);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    due_time(props, now, &cfg.message_delay_levels, cfg.timer_max_delay)
}

/// `m` as a scheduled record for the timer: stored in the shard's schedule
/// queue with its real topic and queue and its due time (store.md §5;
/// [`super`]). Properties a client set for those keys are replaced,
/// so a message cannot be redirected by its sender. Returns the range of
/// the UNIQ_KEY in the new properties.
pub fn scheduled(mut m: MessageInput, due: i64) -> Result<(MessageInput, Range<usize>), String> {
    let mut p = Properties::parse_bytes(&m.properties);
    p.insert(keys::REAL_TOPIC, m.topic.clone()).map_err(|e| e.to_string())?;
    p.insert(keys::REAL_QUEUE_ID, m.queue_id.to_string())
        .map_err(|e| e.to_string())?;
    p.insert(DUE_PROPERTY, due.to_string()).map_err(|e| e.to_string())?;
    p.remove(MARK_PROPERTY);
    let encoded = p.encode();
    if encoded.len() > i16::MAX as usize {
        return Err(format!("the message properties length {} exceeds 32767", encoded.len()));
    }
    let uniq = crate::protocol::properties::find(&encoded, keys::UNIQ_KEY).map_or(0..0, |u| {
        let at = u.as_ptr() as usize - encoded.as_ptr() as usize;
        at..at + u.len()
    });
    m.properties = Bytes::from(encoded);
    m.topic = SCHEDULE_TOPIC.to_owned();
    m.queue_id = 0;
    m.tags_code = due;
    m.mark = None;
    Ok((m, uniq))
}

fn number(key: &str, v: &str) -> Result<i64, String> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| format!("property {key}={v:?} is not a number"))?;
    if n < 0 {
        return Err(format!("property {key}={v} is negative"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_delay_levels, DEFAULT_DELAY_LEVELS};

    fn p(pairs: &[(&str, &str)]) -> String {
        pairs.iter().map(|(k, v)| format!("{k}\x01{v}\x02")).collect()
    }

    #[test]
    fn levels_times_and_limits() {
        let levels = parse_delay_levels(DEFAULT_DELAY_LEVELS).unwrap();
        let max = Duration::from_secs(30 * 86_400);
        let now = 1_000_000;
        let due = |props: &str| due_time(props, now, &levels, max);
        assert_eq!(due(&p(&[("DELAY", "3")])), Ok(Some(now + 10_000)));
        assert_eq!(due(&p(&[("DELAY", "18")])), Ok(Some(now + 7_200_000)));
        assert_eq!(due(&p(&[("DELAY", "99")])), Ok(Some(now + 7_200_000)), "clamped");
        assert_eq!(due(&p(&[("DELAY", "0")])), Ok(None));
        assert_eq!(due(&p(&[("DELAY", "-1")])), Ok(None), "the DLQ marker");
        assert!(due(&p(&[("DELAY", "x")])).is_err());
        assert_eq!(
            due(&p(&[("DELAY", "1"), ("TIMER_DELIVER_MS", "5000000")])),
            Ok(Some(now + 1000)),
            "a level wins"
        );
        assert_eq!(due(&p(&[("TIMER_DELIVER_MS", "5000000")])), Ok(Some(5_000_000)));
        assert_eq!(due(&p(&[("TIMER_DELIVER_MS", "5")])), Ok(None), "past: now");
        assert_eq!(due(&p(&[("TIMER_DELAY_SEC", "3")])), Ok(Some(now + 3000)));
        assert_eq!(due(&p(&[("TIMER_DELAY_MS", "1500")])), Ok(Some(now + 1500)));
        assert_eq!(due(&p(&[("__STARTDELIVERTIME", "2000000")])), Ok(Some(2_000_000)));
        assert!(due(&p(&[("TIMER_DELAY_MS", "-5")])).is_err());
        assert!(due(&p(&[("TIMER_DELAY_SEC", "2592001")])).is_err(), "above 30 days");
        assert_eq!(
            due(&p(&[("TIMER_DELAY_SEC", "2592000")])),
            Ok(Some(now + 2_592_000_000))
        );
        assert_eq!(due(&p(&[("KEYS", "k")])), Ok(None));
    }
}

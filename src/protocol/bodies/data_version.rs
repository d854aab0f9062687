//! `DataVersion`: the version stamp of a broker's topic configuration.
//!
//! ```json
//! {"counter":3,"stateVersion":0,"timestamp":1700000000000}
//! ```
//!
//! The broker bumps it whenever its topic configs change; the name server
//! rebuilds a broker's QueueDatas only when the registered DataVersion
//! differs from the stored one (store.md §2, json.md §8). Equality means all
//! three fields equal. 4.x brokers send no `stateVersion` (read as 0).

use serde::{Deserialize, Serialize};

use super::{loose, JsonBody};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataVersion {
    #[serde(deserialize_with = "loose::de")]
    pub counter: i64,
    /// 5.x controller mode epoch; 0 otherwise.
    #[serde(deserialize_with = "loose::de")]
    pub state_version: i64,
    /// Milliseconds since the epoch of the last change.
    #[serde(deserialize_with = "loose::de")]
    pub timestamp: i64,
}

impl JsonBody for DataVersion {
    const NAME: &'static str = "DataVersion";
}

impl DataVersion {
    /// The version after one more change at `now_ms`.
    pub fn next(self, now_ms: i64) -> Self {
        Self {
            counter: self.counter.wrapping_add(1),
            timestamp: now_ms,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"counter":3,"stateVersion":0,"timestamp":1700000000000}"#;

    #[test]
    fn json_md_example_round_trips() {
        let v = DataVersion::decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(
            v,
            DataVersion {
                counter: 3,
                state_version: 0,
                timestamp: 1_700_000_000_000
            }
        );
        assert_eq!(v.encode(), EXAMPLE.as_bytes());
    }

    #[test]
    fn four_x_form_and_loose_numbers() {
        let v = DataVersion::decode(br#"{"counter":"5","timestamp":17}"#).unwrap();
        assert_eq!((v.counter, v.state_version, v.timestamp), (5, 0, 17));
        assert_eq!(
            v.next(20),
            DataVersion {
                counter: 6,
                state_version: 0,
                timestamp: 20
            }
        );
    }
}

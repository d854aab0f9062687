//! Broker-side message trace (`traceBrokerEvents=true`): what the broker
//! itself saw happen to a message — stored, delivered to a consumer,
//! sent back for a retry or to the DLQ, its transaction ended — written to `RMQ_SYS_TRACE_TOPIC`
//! beside the records trace-enabled clients write there, so that
//! `shardmq admin message trace` shows both in one timeline.
//!
//! Records use RocketMQ's trace format (fields split by `\x01`, records by
//! `\x02`) with kinds of their own, which RocketMQ's decoders skip:
//!
//! ```text
//! BrokerStored    time broker producerGroup topic msgId queueId queueOffset client
//! BrokerDelivered time broker consumerGroup topic msgId queueId queueOffset client reconsumeTimes
//! BrokerSendBack  time broker consumerGroup topic msgId target reconsumeTimes
//! BrokerEndTransaction time broker producerGroup topic msgId COMMIT|ROLLBACK
//! ```
//!
//! Each shard buffers its events (at most [`MAX_BUFFERED`]; beyond that
//! they are counted and dropped — tracing never slows or grows the broker
//! unboundedly) and every [`FLUSH_EVERY`] stores them as trace messages of
//! at most [`PER_MESSAGE`] events, keyed by the traced message ids (the
//! key index finds them), in the trace topic's queue this shard owns (the
//! topic is created with one queue per shard on first use).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use crate::protocol::properties::{keys, Properties};
use crate::runtime::epoch_ms;
use crate::store::record::{check_record, RecordCheck};

pub const TRACE_TOPIC: &str = crate::acl::resources::TRACE_TOPIC;
pub const MAX_BUFFERED: usize = 10_000;
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Events per trace message (its KEYS: the key index takes 32 keys).
pub const PER_MESSAGE: usize = 32;

#[derive(Default)]
pub struct BrokerTrace {
    enabled: bool,
    /// (traced message id, encoded record).
    buffer: RefCell<Vec<(String, String)>>,
    pub dropped: Cell<u64>,
}

impl BrokerTrace {
    pub fn new(enabled: bool) -> BrokerTrace {
        BrokerTrace {
            enabled,
            ..Default::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The buffered events, for the writer (`broker::trace_store`).
    pub fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.buffer.borrow_mut())
    }

    fn push(&self, msg_id: &str, fields: &[&str]) {
        if !self.enabled || msg_id.is_empty() {
            return;
        }
        let mut b = self.buffer.borrow_mut();
        if b.len() >= MAX_BUFFERED {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        b.push((msg_id.to_owned(), fields.join("\u{1}")));
    }

    /// A message stored by a producer's send.
    #[allow(clippy::too_many_arguments)]
    pub fn stored(&self, broker: &str, group: &str, topic: &str, msg_id: &str, queue: u32, offset: u64, client: &str) {
        if topic == TRACE_TOPIC {
            return;
        }
        let (t, q, o) = (epoch_ms().to_string(), queue.to_string(), offset.to_string());
        self.push(
            msg_id,
            &["BrokerStored", &t, broker, group, topic, msg_id, &q, &o, client],
        );
    }

    /// The records of a pull body, delivered to `client` of `group`.
    pub fn delivered(&self, broker: &str, group: &str, client: &str, body: &[u8]) {
        if !self.enabled {
            return;
        }
        let t = epoch_ms().to_string();
        let mut at = 0;
        while at < body.len() {
            let RecordCheck::Record(v) = check_record(&body[at..], None, false) else {
                return;
            };
            at += v.total_size as usize;
            if v.topic == TRACE_TOPIC.as_bytes() {
                continue;
            }
            let props = Properties::parse_bytes(v.properties);
            let Some(id) = props.get(keys::UNIQ_KEY) else { continue };
            let topic = String::from_utf8_lossy(v.topic);
            let (q, o, r) = (
                v.queue_id.to_string(),
                v.queue_offset.to_string(),
                v.reconsume_times.to_string(),
            );
            self.push(
                id,
                &["BrokerDelivered", &t, broker, group, &topic, id, &q, &o, client, &r],
            );
        }
    }

    /// A transaction ended by its producer: committed or rolled back.
    pub fn ended(&self, broker: &str, group: &str, topic: &str, msg_id: &str, commit: bool) {
        let t = epoch_ms().to_string();
        let how = if commit { "COMMIT" } else { "ROLLBACK" };
        self.push(msg_id, &["BrokerEndTransaction", &t, broker, group, topic, msg_id, how]);
    }

    /// A consumer sent a message back: to its retry topic or the DLQ.
    pub fn sent_back(&self, broker: &str, group: &str, topic: &str, msg_id: &str, target: &str, reconsume: i32) {
        let (t, r) = (epoch_ms().to_string(), reconsume.to_string());
        self.push(
            msg_id,
            &["BrokerSendBack", &t, broker, group, topic, msg_id, target, &r],
        );
    }
}

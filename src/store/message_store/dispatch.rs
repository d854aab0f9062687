//! Re-dispatch of the records recovery finds: each to its consume queue
//! (and its mark queue), checked against the checkpoint's offsets.

use crate::store::consume_queue::{ConsumeQueue, CqEntry};
use crate::store::record::{property_of, Mark, RecordView, DUE_PROPERTY, MARK_TOPIC, SCHEDULE_TOPIC};
use crate::store::recovery::Refusal;

use super::{is_prepared_or_rollback, QueueTable};

/// Re-dispatch of a recovered record.
///
/// With a checkpoint, its queue offset must continue its queue exactly;
/// anything else means the log and the checkpoint disagree, and the
/// checkpoint (not the log) is refused: the caller rebuilds.
///
/// When rebuilding (no usable checkpoint) a queue starts at the first
/// record seen of it. A record that still does not continue its queue means
/// the log itself is inconsistent; it is kept in the log, reported, and
/// never a reason to truncate: a duplicate or backwards offset is not
/// indexed, a forward gap restarts the queue at the record's offset.
pub(super) fn dispatch_recovered(
    table: &mut QueueTable,
    v: &RecordView<'_>,
    properties: &[u8],
    pos: u64,
    rebuilding: bool,
    problems: &mut Vec<String>,
) -> Result<(), Refusal> {
    // The mark first: a record's mark is dispatched whatever its own queue
    // does with it (a half message is not indexed, its mark still is).
    if let Some(mark) = Mark::of_properties(properties) {
        let qi = table.get_or_create(MARK_TOPIC, mark.queue, 0);
        table.queues[qi].push(CqEntry {
            pos,
            size: v.total_size,
            tags_code: mark.value,
        });
    }
    if is_prepared_or_rollback(v.sys_flag) {
        return Ok(());
    }
    let Ok(topic) = std::str::from_utf8(v.topic) else {
        return Err(Refusal::Record("topic is not UTF-8"));
    };
    let qi = match table.find(topic, v.queue_id) {
        Some(i) => i,
        None if rebuilding || v.queue_offset == 0 => table.get_or_create(topic, v.queue_id, v.queue_offset),
        None => {
            return Err(Refusal::Checkpoint(
                "record of a queue the checkpoint does not know, past offset 0",
            ))
        }
    };
    let q = &mut table.queues[qi];
    if v.queue_offset != q.max_offset {
        if !rebuilding {
            return Err(Refusal::Checkpoint("queue offset does not continue its queue"));
        }
        let what = format!(
            "record at log offset {pos} of {topic}/{} has queue offset {} but the queue is at {}",
            v.queue_id, v.queue_offset, q.max_offset
        );
        if v.queue_offset < q.max_offset {
            log::error!("CommitLog inconsistent: {what}; not indexed");
            problems.push(format!("{what}; not indexed"));
            return Ok(());
        }
        log::error!("CommitLog inconsistent: {what}; the queue restarts at the record's offset");
        problems.push(format!("{what}; queue restarted"));
        *q = ConsumeQueue::new(q.topic.clone(), v.queue_id, v.queue_offset, v.queue_offset);
    }
    let tags_code = if topic == SCHEDULE_TOPIC {
        due_of(properties)
    } else {
        tags_code_of(properties)
    };
    q.push(CqEntry {
        pos,
        size: v.total_size,
        tags_code,
    });
    Ok(())
}

/// `javaStringHashCode(TAGS)` read back from stored properties.
fn tags_code_of(props: &[u8]) -> i64 {
    property_of(props, b"TAGS")
        .and_then(|t| std::str::from_utf8(t).ok())
        .map_or(0, |tag| crate::protocol::java_string_hash(tag) as i64)
}

/// The due time of a scheduled record (its schedule-queue `tags_code`).
fn due_of(props: &[u8]) -> i64 {
    property_of(props, DUE_PROPERTY.as_bytes())
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_code_is_read_back_from_stored_properties() {
        assert_eq!(tags_code_of(b"KEYS\x01k\x02TAGS\x01TagA\x02"), 2598919);
        assert_eq!(tags_code_of(b"KEYS\x01k\x02"), 0);
    }
}

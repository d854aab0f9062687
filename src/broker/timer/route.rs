//! Routing schedule-queue entries into minute buckets, and loading the
//! buckets of the load horizon into memory (see the module docs of
//! [`super`]).

use std::cmp::Reverse;
use std::rc::Rc;

use crate::store::SCHEDULE_TOPIC;

use super::files::{self, Entry};
use super::{record_topic, Due, Shard, LOOKAHEAD_MS, MINUTE_MS, ROUTE_CHUNK};

/// Routes new schedule-queue entries into their buckets (and into memory
/// when their bucket is loaded). Pauses while memory is full: the entries
/// wait in the schedule queue.
pub(super) async fn route(shard: &Rc<Shard>) -> Result<(), String> {
    let t = &shard.timer;
    loop {
        let (from, room) = {
            let st = t.st.borrow();
            (st.routed, t.max_in_memory.saturating_sub(st.heap.len()))
        };
        if room == 0 {
            return Ok(());
        }
        let entries = shard
            .store
            .queue_entries(SCHEDULE_TOPIC, 0, from, ROUTE_CHUNK.min(room))
            .await
            .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok(());
        }
        // The target topic of each entry, for the per-topic counts.
        let mut topics = Vec::with_capacity(entries.len());
        for e in &entries {
            topics.push(record_topic(shard, e.pos, true).await);
        }
        let now = t.now();
        let current = now.div_euclid(MINUTE_MS);
        let mut st = t.st.borrow_mut();
        if st.routed != from {
            continue; // cannot happen (one task routes), but never route twice
        }
        for (i, e) in entries.iter().enumerate() {
            let xoff = from + i as u64;
            if st.done.contains(&xoff) {
                continue;
            }
            if let Some(topic) = &topics[i] {
                st.count(topic, 1);
            }
            // Overdue entries go to the current minute: a bucket whose
            // minute is over never gets new entries.
            let minute = e.tags_code.div_euclid(MINUTE_MS).max(current);
            let entry = Entry {
                xoff,
                due: e.tags_code,
                pos: e.pos,
                size: e.size,
            };
            let b = st.buckets.entry(minute).or_default();
            let take = b.open && b.fully_loaded();
            entry.encode(&mut b.pending);
            b.min_pos = b.min_pos.min(e.pos);
            if take {
                b.loaded += 1;
                b.live += 1;
                st.heap.push(Reverse(Due {
                    due: entry.due,
                    xoff,
                    pos: entry.pos,
                    size: entry.size,
                    minute,
                }));
            }
        }
        st.routed = from + entries.len() as u64;
        st.dirty = true;
    }
}

/// Opens the buckets of the load horizon and takes their entries into
/// memory, as far as `timerMaxInMemory` allows.
pub(super) async fn load(shard: &Rc<Shard>) -> Result<(), String> {
    let t = &shard.timer;
    let horizon = (t.now() + LOOKAHEAD_MS).div_euclid(MINUTE_MS);
    loop {
        // The earliest bucket in the horizon with something left to load.
        let job = {
            let mut st = t.st.borrow_mut();
            let room = t.max_in_memory.saturating_sub(st.heap.len());
            if room == 0 {
                return Ok(());
            }
            let Some((&minute, b)) = st
                .buckets
                .range_mut(..=horizon)
                .find(|(_, b)| !b.open || !b.fully_loaded())
            else {
                return Ok(());
            };
            b.open = true;
            if b.fully_loaded() {
                continue;
            }
            (minute, b.loaded, b.file_slots, room)
        };
        let (minute, loaded, file_slots, room) = job;
        let (entries, slots) = if loaded < file_slots {
            let want = ((file_slots - loaded) as usize).min(room);
            let (e, read) = files::read_bucket(t.dir.clone(), minute, loaded, want).await?;
            // A file shorter than recorded (cannot happen; be safe): skip to
            // the pending part rather than loop.
            (e, if read == 0 { file_slots - loaded } else { read })
        } else {
            let st = t.st.borrow();
            let b = &st.buckets[&minute];
            let skip = (loaded - file_slots) as usize * files::ENTRY_SIZE;
            let e: Vec<Entry> = b.pending[skip..]
                .chunks_exact(files::ENTRY_SIZE)
                .take(room)
                .filter_map(Entry::decode)
                .collect();
            let n = e.len() as u64;
            (e, n)
        };
        let mut st = t.st.borrow_mut();
        let mut pushed = 0;
        for e in entries {
            if st.done.contains(&e.xoff) {
                continue;
            }
            st.heap.push(Reverse(Due {
                due: e.due,
                xoff: e.xoff,
                pos: e.pos,
                size: e.size,
                minute,
            }));
            pushed += 1;
        }
        let Some(b) = st.buckets.get_mut(&minute) else {
            return Ok(());
        };
        if b.loaded != loaded {
            return Err(format!("bucket {minute} changed while it was loading"));
        }
        b.loaded += slots;
        b.live += pushed;
    }
}

//! Writing the broker's trace records (`broker::trace`) to the trace
//! topic: every [`FLUSH_EVERY`], as messages of at most [`PER_MESSAGE`]
//! events keyed by the traced message ids, in the queue of the trace
//! topic this shard owns (the topic is created with one queue per shard
//! on first use).

use std::rc::Rc;

use crate::runtime::mesh::View;

use super::shard::Shard;
use super::trace::{FLUSH_EVERY, PER_MESSAGE, TRACE_TOPIC};

/// Stores the shard's buffered events every [`FLUSH_EVERY`], forever.
pub async fn run(shard: Rc<Shard>) {
    if !shard.trace.enabled() {
        return;
    }
    loop {
        glommio::timer::sleep(FLUSH_EVERY).await;
        let events = shard.trace.take();
        if events.is_empty() {
            continue;
        }
        if let Err(e) = store(&shard, events).await {
            log::warn!("shard {}: broker trace records not stored: {e}", shard.id);
        }
    }
}

async fn store(shard: &Rc<Shard>, events: Vec<(String, String)>) -> Result<(), String> {
    let info = match shard.topic(TRACE_TOPIC) {
        Some(i) => i,
        None => shard
            .auto_create_topic(TRACE_TOPIC, shard.shard_count() as i32, View::Main)
            .await
            .map_err(|(_, e)| e)?,
    };
    let queue = info.owned_by(shard.id).next();
    for chunk in events.chunks(PER_MESSAGE) {
        let mut ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let body: String = chunk.iter().map(|(_, r)| format!("{r}\u{2}")).collect();
        let uniq = shard.uniq.borrow_mut().next_id();
        let props = format!("KEYS\x01{}\x02UNIQ_KEY\x01{uniq}\x02", ids.join(" "));
        let msg = super::retry::broker_message(shard, TRACE_TOPIC, queue.unwrap_or(0), body, props);
        let owner = match queue {
            Some(_) => shard.id,
            None => info.owner(0).unwrap_or(shard.id),
        };
        super::retry::store_on(shard, owner, msg, None)
            .await
            .map_err(|(_, e)| e)?;
    }
    Ok(())
}

//! A slave's metadata follows its master's: the master's controller hands
//! out its topics (with their exact queue-to-shard assignment, so that
//! queue q lives on the same shard on both) and subscription groups as one
//! document; the slave's controller adopts it wholesale, persisting and
//! republishing only what changed. Carried by the replication stream of
//! shard 0 (`broker::ha`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::super::metadata::TopicInfo;
use super::{Controller, Host};

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    topics: HashMap<String, TopicInfo>,
    groups: BTreeMap<String, Value>,
}

impl Controller {
    /// The generation of what [`Self::replica_state`] returns: it moves
    /// whenever topics or groups change.
    pub fn replica_generation(&self) -> (u64, u64) {
        (self.version.get(), self.sub_groups_version.get())
    }

    /// Topics and subscription groups as a slave adopts them.
    pub fn replica_state(&self) -> Result<Vec<u8>, String> {
        let s = State {
            topics: self
                .topics
                .borrow()
                .iter()
                .map(|(k, v)| (k.clone(), (**v).clone()))
                .collect(),
            groups: self.sub_groups.borrow().clone(),
        };
        serde_json::to_vec(&s).map_err(|e| e.to_string())
    }

    /// Makes this controller's topics and groups its master's. Returns
    /// how many topics and groups changed.
    pub async fn adopt(&self, host: &impl Host, state: &[u8]) -> Result<usize, String> {
        let s: State = serde_json::from_slice(state).map_err(|e| format!("master metadata: {e}"))?;
        for t in s.topics.values() {
            if t.queue_shards.len() < t.queue_count() as usize || t.queue_shards.iter().any(|&k| k >= self.shard_count)
            {
                return Err(format!(
                    "master metadata: topic {} has an invalid queue assignment",
                    t.topic_name
                ));
            }
        }
        let mut changed = 0;
        let topics_differ = {
            let mine = self.topics.borrow();
            changed += s
                .topics
                .iter()
                .filter(|(k, v)| mine.get(*k).is_none_or(|m| **m != **v))
                .count();
            changed += mine.keys().filter(|k| !s.topics.contains_key(*k)).count();
            changed > 0
        };
        if topics_differ {
            let new: HashMap<String, Arc<TopicInfo>> = s.topics.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
            let old = std::mem::replace(&mut *self.topics.borrow_mut(), new);
            if let Err(e) = self.save_topics().await {
                *self.topics.borrow_mut() = old;
                return Err(format!("cannot persist the master's topics: {e}"));
            }
            self.republish(host).await;
            self.topics_changed.notify_all();
        }
        let group_changes = {
            let mine = self.sub_groups.borrow();
            s.groups.iter().filter(|(k, v)| mine.get(*k) != Some(*v)).count()
                + mine.keys().filter(|k| !s.groups.contains_key(*k)).count()
        };
        if group_changes > 0 {
            let old = std::mem::replace(&mut *self.sub_groups.borrow_mut(), s.groups);
            if let Err(e) = self.store_subscription_groups().await {
                *self.sub_groups.borrow_mut() = old;
                return Err(format!("cannot persist the master's subscription groups: {e}"));
            }
        }
        Ok(changed + group_changes)
    }
}

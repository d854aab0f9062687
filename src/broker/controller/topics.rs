//! Topics: creation (admin and auto-creation by sends), deletion, the
//! topic table, `config/topics.json`. Every change is persisted, then
//! published to every shard before it is answered.

use std::sync::Arc;

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::View;

use super::super::metadata::{self, perm, TopicInfo};
use super::super::reply::{error, topic_not_exist_because};
use super::{Controller, Host};

impl Controller {
    pub(super) async fn create_topic(&self, host: &impl Host, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let topic = match cmd.required_str("topic") {
            Ok(t) => t.to_string(),
            Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
        };
        if let Err(e) = metadata::validate_topic(&topic) {
            return error(&cmd, response::INVALID_PARAMETER, e);
        }
        let num = |k: &str, d: i64| cmd.ext_i64(k).ok().flatten().unwrap_or(d);
        let (read, write) = (num("readQueueNums", 8), num("writeQueueNums", 8));
        let p = num("perm", (perm::READ | perm::WRITE) as i64) as i32;
        if !(1..=1024).contains(&read) || !(1..=1024).contains(&write) {
            return error(
                &cmd,
                response::INVALID_PARAMETER,
                "queue numbers must be within 1..=1024",
            );
        }
        let only_if_absent = cmd.ext_bool("onlyIfAbsent").ok().flatten().unwrap_or(false);
        let new = match self.topics.borrow().get(&topic) {
            Some(_) if only_if_absent => return Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None)),
            Some(old) => {
                // Growing keeps existing queues where they are.
                let mut t = (**old).clone();
                let n = read.max(write) as u32;
                let extra = metadata::assign_queues(&topic, n, self.shard_count);
                while (t.queue_shards.len() as u32) < n {
                    t.queue_shards.push(extra[t.queue_shards.len()]);
                }
                t.read_queue_nums = read as u32;
                t.write_queue_nums = write as u32;
                t.perm = p;
                t
            }
            None => metadata::new_topic(&topic, read as u32, write as u32, p, self.shard_count),
        };
        if let Err((code, remark)) = self.change_topic(host, &topic, Some(Arc::new(new))).await {
            return error(&cmd, code, remark);
        }
        log::info!("topic {topic} created/updated: read {read} write {write} perm {p}");
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
    }

    /// Writes `config/topics.json` as the topics are now, off the shard
    /// thread (encoded here, so no borrow is held across the write).
    pub(super) async fn save_topics(&self) -> Result<(), String> {
        let json = metadata::encode_topics(self.shard_count, &self.topics.borrow())?;
        metadata::save(self.root.join("config"), metadata::TOPICS_FILE, json).await
    }

    /// Sets (or with `None` removes) one topic, persists the table,
    /// publishes the snapshot to every shard and triggers a registration.
    /// A table that cannot be persisted is put back as it was (unless
    /// another change replaced this one meanwhile): nothing is published
    /// that is not on disk, and a refused change leaves no trace.
    pub(super) async fn change_topic(
        &self,
        host: &impl Host,
        name: &str,
        new: Option<Arc<TopicInfo>>,
    ) -> Result<(), (i32, String)> {
        let previous = match &new {
            Some(t) => self.topics.borrow_mut().insert(name.to_string(), t.clone()),
            None => self.topics.borrow_mut().remove(name),
        };
        if let Err(e) = self.save_topics().await {
            log::error!("cannot persist topics ({name} not changed): {e}");
            let mut topics = self.topics.borrow_mut();
            let still_ours = match (&new, topics.get(name)) {
                (Some(n), Some(now)) => Arc::ptr_eq(n, now),
                (None, None) => true,
                _ => false,
            };
            if still_ours {
                match previous {
                    Some(p) => topics.insert(name.to_string(), p),
                    None => topics.remove(name),
                };
            }
            return Err((response::SYSTEM_ERROR, format!("cannot persist topic config: {e}")));
        }
        self.republish(host).await;
        self.topics_changed.notify_all();
        Ok(())
    }

    /// Auto-creation of a send's unknown topic from the `TBW102` template
    /// (Java `TopicConfigManager.createTopicInSendMessageMethod`): the
    /// template must exist with the INHERIT permission; the new topic gets
    /// its permission without INHERIT and, on each broker entry, the queue
    /// count the client derived from the template's route for that entry
    /// ([`metadata::auto_create_assignment`]). A topic that exists by now
    /// (another shard created it first) is left as it is.
    pub async fn auto_create_topic(
        &self,
        host: &impl Host,
        topic: &str,
        d: i32,
        view: View,
    ) -> Result<(), (i32, String)> {
        metadata::validate_topic(topic).map_err(|e| (response::INVALID_PARAMETER, e))?;
        if topic.starts_with(metadata::RETRY_GROUP_TOPIC_PREFIX) || topic.starts_with(metadata::DLQ_GROUP_TOPIC_PREFIX)
        {
            return self.create_retry_topic(host, topic).await;
        }
        let info = {
            let topics = self.topics.borrow();
            if topics.contains_key(topic) {
                return Ok(());
            }
            let not_exist = |why: String| Err(topic_not_exist_because(topic, &why));
            let Some(tbw) = topics.get(metadata::AUTO_CREATE_TOPIC_KEY) else {
                return not_exist(format!(
                    "the default topic {} does not exist",
                    metadata::AUTO_CREATE_TOPIC_KEY
                ));
            };
            if tbw.perm & perm::INHERIT == 0 {
                return not_exist(format!(
                    "the default topic {} has no INHERIT permission (perm {})",
                    metadata::AUTO_CREATE_TOPIC_KEY,
                    tbw.perm
                ));
            }
            let shards = metadata::auto_create_assignment(topic, tbw, d, view, self.shard_count);
            if shards.is_empty() {
                return not_exist(format!(
                    "the default topic {} has no write queue on this broker entry",
                    metadata::AUTO_CREATE_TOPIC_KEY
                ));
            }
            let n = shards.len() as u32;
            TopicInfo {
                queue_shards: shards,
                ..metadata::new_topic(topic, n, n, tbw.perm & !perm::INHERIT, self.shard_count)
            }
        };
        let (queues, shards) = (info.queue_shards.len(), info.queue_shards.clone());
        self.change_topic(host, topic, Some(Arc::new(info))).await?;
        log::info!(
            "topic {topic} auto-created from {} by a send via {:?} (defaultTopicQueueNums {d}): {queues} queues, shards {shards:?}",
            metadata::AUTO_CREATE_TOPIC_KEY,
            view,
        );
        Ok(())
    }

    /// A retry or dead-letter topic (`%RETRY%<group>`, `%DLQ%<group>`): one
    /// queue, read and write (store.md §6), created on first use.
    pub(super) async fn create_retry_topic(&self, host: &impl Host, topic: &str) -> Result<(), (i32, String)> {
        if self.topics.borrow().contains_key(topic) {
            return Ok(());
        }
        let t = metadata::new_topic(topic, 1, 1, perm::READ | perm::WRITE, self.shard_count);
        self.change_topic(host, topic, Some(Arc::new(t))).await?;
        log::info!("retry/dead-letter topic {topic} created");
        Ok(())
    }

    pub(super) async fn delete_topic(&self, host: &impl Host, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let topic = match cmd.required_str("topic") {
            Ok(t) => t.to_string(),
            Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
        };
        if !self.topics.borrow().contains_key(&topic) {
            return error(&cmd, response::TOPIC_NOT_EXIST, format!("topic {topic} does not exist"));
        }
        match self.change_topic(host, &topic, None).await {
            Ok(()) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None)),
            Err((code, remark)) => error(&cmd, code, remark),
        }
    }

    pub(super) fn all_topics(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let mut table = serde_json::Map::new();
        for (name, t) in self.topics.borrow().iter() {
            table.insert(
                name.clone(),
                serde_json::json!({
                    "topicName": name, "readQueueNums": t.read_queue_nums, "writeQueueNums": t.write_queue_nums,
                    "perm": t.perm, "topicFilterType": "SINGLE_TAG", "topicSysFlag": t.topic_sys_flag, "order": t.order
                }),
            );
        }
        let body = serde_json::json!({ "topicConfigTable": table, "dataVersion": { "counter": self.version.get(), "timestamp": 0 } });
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.to_string().into_bytes()))
    }
}

//! Cluster metadata of one broker: topics, the queue → shard assignment,
//! subscription groups and the subscriptions consumers registered.
//!
//! The controller shard is the single writer; every data shard holds a
//! read-only `Arc<Metadata>` snapshot, replaced as a whole when the
//! controller publishes a new version. Topics are persisted as JSON in
//! `<storePathRootDir>/config/topics.json` (temp file, fsync, rename).
//!
//! Queue identity: a queue is (topic, global queue id). In the shard-aware
//! view a shard's broker entry numbers the queues it owns from 0; the
//! translation is [`TopicInfo::local_to_global`] / [`TopicInfo::global_to_local`].
//! Store files, consumer offsets and message records always use the global
//! id, so switching the view never changes a queue's identity.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::runtime::mesh::View;

/// RocketMQ `PermName`.
pub mod perm {
    pub const INHERIT: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const READ: i32 = 4;
}

pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// `SubscriptionGroupConfig.retryMaxTimes` default (store.md §6).
pub const DEFAULT_RETRY_MAX_TIMES: i32 = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicInfo {
    pub topic_name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: i32,
    #[serde(default)]
    pub topic_sys_flag: i32,
    #[serde(default)]
    pub order: bool,
    /// Owner shard of each global queue id.
    pub queue_shards: Vec<u16>,
}

impl TopicInfo {
    pub fn queue_count(&self) -> u32 {
        self.read_queue_nums.max(self.write_queue_nums)
    }

    pub fn owner(&self, global_qid: u32) -> Option<u16> {
        self.queue_shards.get(global_qid as usize).copied()
    }

    /// Global ids of the queues a shard owns, ascending.
    pub fn owned_by(&self, shard: u16) -> impl Iterator<Item = u32> + '_ {
        self.queue_shards
            .iter()
            .enumerate()
            .filter(move |(_, s)| **s == shard)
            .map(|(i, _)| i as u32)
    }

    pub fn local_to_global(&self, shard: u16, local: u32) -> Option<u32> {
        self.owned_by(shard).nth(local as usize)
    }

    pub fn global_to_local(&self, shard: u16, global: u32) -> Option<u32> {
        self.owned_by(shard).position(|g| g == global).map(|p| p as u32)
    }

    /// Read/write queue counts of this topic in one shard's broker entry.
    pub fn shard_view(&self, shard: u16) -> (u32, u32) {
        let owned: Vec<u32> = self.owned_by(shard).collect();
        let read = owned.iter().filter(|g| **g < self.read_queue_nums).count() as u32;
        let write = owned.iter().filter(|g| **g < self.write_queue_nums).count() as u32;
        (read, write)
    }
}

/// A consumer group's subscription to one topic, from heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub expression: String,
    /// Tag hash codes; empty = everything (`*`).
    pub codes: Vec<i32>,
    pub sub_version: i64,
}

#[derive(Debug, Default)]
pub struct Metadata {
    pub version: u64,
    pub topics: HashMap<String, Arc<TopicInfo>>,
    /// (group, topic) → subscription.
    pub subscriptions: HashMap<(String, String), Subscription>,
    /// Consumer groups with BROADCASTING model.
    pub shard_count: u16,
}

impl Metadata {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicInfo>> {
        self.topics.get(name)
    }
}

/// Spreads a new topic's queues over the shards, starting at a shard
/// derived from the name so that many small topics do not all pile onto
/// shard 0.
pub fn assign_queues(topic: &str, queues: u32, shards: u16) -> Vec<u16> {
    let shards = shards.max(1) as u32;
    let start = crate::protocol::java_string_hash(topic).unsigned_abs() % shards;
    (0..queues).map(|i| ((start + i) % shards) as u16).collect()
}

/// A queue → shard assignment giving shard `j` exactly `counts[j]` queues,
/// interleaved (global ids go round the shards that still need queues,
/// starting at the name-derived shard of [`assign_queues`]). With equal
/// counts it is `assign_queues(topic, sum, shards)`.
pub fn assign_per_shard(topic: &str, counts: &[u32]) -> Vec<u16> {
    let shards = counts.len().max(1) as u32;
    let start = crate::protocol::java_string_hash(topic).unsigned_abs() % shards;
    let mut left = counts.to_vec();
    let total: u32 = counts.iter().sum();
    let mut out = Vec::with_capacity(total as usize);
    let mut k = start;
    while (out.len() as u32) < total {
        let j = (k % shards) as usize;
        if left[j] > 0 {
            left[j] -= 1;
            out.push(j as u16);
        }
        k += 1;
    }
    out
}

/// The queue → shard assignment of a topic auto-created through the
/// `TBW102` template (`tbw`) by a send with the client's
/// `defaultTopicQueueNums` header `client_queues`, arriving through the
/// broker entry `entry` (the connection's [`View`]).
///
/// Java semantics: every broker entry is a broker of its own, and a Java
/// broker auto-creates `min(defaultTopicQueueNums, TBW102.writeQueueNums)`
/// queues — exactly the queue count the Java client derived for that entry
/// from the TBW102 route (`topicRouteData2TopicPublishInfo` caps each
/// entry's queues at the producer's `defaultTopicQueueNums`), so the client's
/// queue ids `0..n` on that entry are all valid at once.
///
/// * [`View::Main`]: one entry advertising all of TBW102's write queues:
///   `min(d, TBW102.writeQueueNums)` queues in total, spread over the shards.
/// * [`View::Shard`]: the shard entries are one topic config underneath, so
///   the topic is created on every entry at once, each shard `j` getting
///   `min(d, TBW102 write queues of entry j)` queues: what the client saw in
///   the TBW102 route for entry `j` (registration advertises
///   [`TopicInfo::shard_view`] per entry), whichever entry the creating send
///   came through. TBW102's queues are spread evenly, so with
///   `defaultTopicQueueNums` a multiple of the shard count every shard
///   gets the same number.
///
/// Empty when the template has no write queue there.
pub fn auto_create_assignment(topic: &str, tbw: &TopicInfo, client_queues: i32, entry: View, shards: u16) -> Vec<u16> {
    let d = client_queues.max(1) as u32;
    match entry {
        View::Main => assign_queues(topic, d.min(tbw.write_queue_nums), shards),
        View::Shard(_) => {
            let counts: Vec<u32> = (0..shards.max(1)).map(|j| d.min(tbw.shard_view(j).1)).collect();
            assign_per_shard(topic, &counts)
        }
    }
}

pub fn new_topic(name: &str, read: u32, write: u32, perm: i32, shards: u16) -> TopicInfo {
    let n = read.max(write);
    TopicInfo {
        topic_name: name.to_string(),
        read_queue_nums: read,
        write_queue_nums: write,
        perm,
        topic_sys_flag: 0,
        order: false,
        queue_shards: assign_queues(name, n, shards),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicsFile {
    shard_count: u16,
    topics: BTreeMap<String, TopicInfo>,
}

/// Loads `config/topics.json`; `Ok(None)` when absent.
pub fn load_topics(root: &Path) -> Result<Option<(u16, Vec<TopicInfo>)>, String> {
    let path = root.join("config").join("topics.json");
    match std::fs::read(&path) {
        Ok(b) => {
            let f: TopicsFile = serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?;
            for t in f.topics.values() {
                if t.queue_shards.len() < t.queue_count() as usize || t.queue_shards.iter().any(|s| *s >= f.shard_count)
                {
                    return Err(format!(
                        "{}: topic {} has an invalid queue assignment",
                        path.display(),
                        t.topic_name
                    ));
                }
            }
            Ok(Some((f.shard_count, f.topics.into_values().collect())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `config/topics.json` atomically (temp file, fsync, rename, fsync
/// of the directory). Blocking: start-up only (main thread); at runtime the
/// controller uses [`encode_topics`] and [`save`].
pub fn store_topics(root: &Path, shard_count: u16, topics: &HashMap<String, Arc<TopicInfo>>) -> Result<(), String> {
    let json = encode_topics(shard_count, topics)?;
    write_atomically(&root.join("config"), TOPICS_FILE, &json)
}

pub const TOPICS_FILE: &str = "topics.json";

/// The bytes of `config/topics.json`.
pub fn encode_topics(shard_count: u16, topics: &HashMap<String, Arc<TopicInfo>>) -> Result<Vec<u8>, String> {
    let f = TopicsFile {
        shard_count,
        topics: topics.iter().map(|(k, v)| (k.clone(), (**v).clone())).collect(),
    };
    serde_json::to_vec_pretty(&f).map_err(|e| e.to_string())
}

/// [`write_atomically`] on the executor's blocking thread, for shard
/// threads at runtime (see [`crate::runtime::blocking`]): the shard keeps
/// serving while the file is written and synced. Saves are applied in the
/// order they are called (one blocking thread, FIFO), so the last caller's
/// bytes are what stays on disk.
pub async fn save(dir: std::path::PathBuf, name: &'static str, bytes: Vec<u8>) -> Result<(), String> {
    crate::runtime::blocking::run(move || write_atomically(&dir, name, &bytes)).await
}

/// Temp file + fsync + rename + directory fsync. A failure before the
/// rename (a full disk, most likely) removes the temp file: the previous
/// file stays as it was and nothing half-written is left behind.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Topic names: `^[%|a-zA-Z0-9_-]+$`, at most 127 bytes (255 for retry and
/// DLQ topics).
pub fn validate_topic(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the topic name is empty".into());
    }
    // Every topic, retry and DLQ ones included: a stored record (magic v1)
    // keeps the topic's length in one byte that readers take as signed,
    // so a longer name could be accepted but never stored. Groups are
    // capped at 120 so that `%RETRY%<group>` and `%DLQ%<group>` fit.
    if name.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "the topic name is longer than {MAX_TOPIC_LEN} characters ({})",
            name.len()
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"%|_-".contains(&b)) {
        return Err(format!(
            "the topic {name} contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    Ok(())
}

/// Longest topic name, for every kind of topic.
pub const MAX_TOPIC_LEN: usize = 127;

/// Longest group name: `%RETRY%<group>` must fit [`MAX_TOPIC_LEN`].
pub const MAX_GROUP_LEN: usize = MAX_TOPIC_LEN - RETRY_GROUP_TOPIC_PREFIX.len();

/// Group names (consumer and producer): the topic charset, at most
/// [`MAX_GROUP_LEN`] bytes. The error names the group and the rule.
pub fn validate_group(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_GROUP_LEN
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"%|_-".contains(&b))
    {
        return Err(format!(
            "the group {name:?} is not valid: 1..={MAX_GROUP_LEN} characters of ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    Ok(())
}

/// Topics clients may not send to.
pub fn is_not_allowed_send(topic: &str) -> bool {
    matches!(
        topic,
        "SCHEDULE_TOPIC_XXXX"
            | "RMQ_SYS_TRANS_HALF_TOPIC"
            | "RMQ_SYS_TRANS_OP_HALF_TOPIC"
            | "TRANS_CHECK_MAX_TIME_TOPIC"
            | "SELF_TEST_TOPIC"
            | "OFFSET_MOVED_EVENT"
    )
}

/// Builds the broker-side filter from a tag expression.
pub fn tag_filter(expression: &str) -> crate::store::TagFilter {
    use crate::store::TagFilter;
    let e = expression.trim();
    if e.is_empty() || e == "*" {
        return TagFilter::All;
    }
    let codes: Vec<i32> = e
        .split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(crate::protocol::java_string_hash)
        .collect();
    if codes.is_empty() {
        TagFilter::All
    } else {
        TagFilter::Codes(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_spread_over_shards_and_translate_both_ways() {
        let t = new_topic("TopicTest", 8, 8, 6, 2);
        assert_eq!(t.queue_shards.len(), 8);
        let s0: Vec<u32> = t.owned_by(0).collect();
        let s1: Vec<u32> = t.owned_by(1).collect();
        assert_eq!(s0.len() + s1.len(), 8);
        assert_eq!(s0.len(), 4);
        for (local, g) in s1.iter().enumerate() {
            assert_eq!(t.local_to_global(1, local as u32), Some(*g));
            assert_eq!(t.global_to_local(1, *g), Some(local as u32));
        }
        assert_eq!(t.local_to_global(1, 4), None);
        assert_eq!(t.shard_view(0), (4, 4));
    }

    #[test]
    fn per_shard_assignment_gives_each_shard_its_count() {
        for counts in [vec![2u32, 2], vec![3, 3, 2], vec![0, 4], vec![1], vec![4, 4, 4, 4]] {
            let a = assign_per_shard("T", &counts);
            assert_eq!(a.len() as u32, counts.iter().sum::<u32>());
            for (j, c) in counts.iter().enumerate() {
                assert_eq!(
                    a.iter().filter(|s| **s as usize == j).count() as u32,
                    *c,
                    "{counts:?}: {a:?}"
                );
            }
        }
        assert_eq!(assign_per_shard("TopicTest", &[2, 2]), assign_queues("TopicTest", 4, 2));
    }

    #[test]
    fn auto_create_matches_what_the_tbw102_route_advertised() {
        // (TBW102 queues = defaultTopicQueueNums, shards, client defaultTopicQueueNums)
        for (tbw_n, shards, d) in [
            (8u32, 2u16, 4i32),
            (4, 2, 4),
            (6, 2, 4),
            (16, 2, 4),
            (8, 3, 4),
            (2, 4, 4),
            (8, 2, 1),
        ] {
            let tbw = new_topic(AUTO_CREATE_TOPIC_KEY, tbw_n, tbw_n, 7, shards);
            // Shard-aware: each entry gets what its TBW102 route entry showed the client.
            for k in 0..shards {
                let a = auto_create_assignment("NewTopic", &tbw, d, View::Shard(k), shards);
                let t = TopicInfo {
                    queue_shards: a.clone(),
                    ..new_topic("NewTopic", a.len() as u32, a.len() as u32, 6, shards)
                };
                for j in 0..shards {
                    let advertised = (d as u32).min(tbw.shard_view(j).1);
                    assert_eq!(
                        t.shard_view(j),
                        (advertised, advertised),
                        "{tbw_n}/{shards}/{d} via s{k}, entry s{j}"
                    );
                }
            }
            // Single entry: min(d, TBW102 write queues) in total.
            let a = auto_create_assignment("NewTopic", &tbw, d, View::Main, shards);
            assert_eq!(a.len() as u32, (d as u32).min(tbw_n));
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_topic("Topic_1-a|%").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("bad topic").is_err());
        assert!(validate_topic(&"x".repeat(128)).is_err());
        assert!(validate_topic(&format!("%RETRY%{}", "x".repeat(120))).is_ok());
        assert!(validate_topic(&format!("%RETRY%{}", "x".repeat(248))).is_err());
        assert!(validate_group(&"g".repeat(120)).is_ok());
        assert!(validate_group(&"g".repeat(121)).is_err());
        assert!(validate_group("../../g").is_err());
        assert!(validate_group("g1").is_ok());
        assert!(validate_group("g 1").is_err());
    }

    #[test]
    fn topics_persist_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut topics = HashMap::new();
        topics.insert("T".to_string(), Arc::new(new_topic("T", 4, 4, 6, 2)));
        store_topics(dir.path(), 2, &topics).unwrap();
        let (n, loaded) = load_topics(dir.path()).unwrap().unwrap();
        assert_eq!(n, 2);
        assert_eq!(loaded, vec![(*topics["T"]).clone()]);
        assert!(load_topics(&dir.path().join("none")).unwrap().is_none());
    }
}

//! Store tests on real files with O_DIRECT, each on its own executor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::record::localhost;
use super::*;
use crate::protocol::java_string_hash;
use crate::runtime::run_on_executor;

fn cfg(dir: &Path, mode: FlushMode) -> StoreConfig {
    let mut c = StoreConfig::new(dir, 1, localhost(10911));
    c.flush_mode = mode;
    c.segment_size = 256 * 1024;
    c.max_record_size = 64 * 1024;
    c.tail_cache_bytes = 1 << 20;
    c.cq_entries_per_file = 1024;
    c.cq_mem_entries = 4;
    c.checkpoint_interval = Duration::from_secs(3600);
    c.clean_interval = Duration::from_secs(3600);
    c.async_flush_interval = Duration::from_millis(5);
    // The tests share the host's disk: refuse appends only at the highest
    // ratio allowed (the cleaning tests set their own usage probes).
    c.disk_max_used_ratio = 95;
    c
}

fn msg(topic: &str, queue_id: u32, body: Vec<u8>, tag: Option<&str>) -> MessageInput {
    let mut props = format!("KEYS\x01k{}\x02", body.len());
    let mut tags_code = 0;
    if let Some(t) = tag {
        props.push_str(&format!("TAGS\x01{t}\x02"));
        tags_code = java_string_hash(t) as i64;
    }
    MessageInput {
        topic: topic.into(),
        queue_id,
        flag: 0,
        body: Bytes::from(body),
        properties: Bytes::from(props),
        sys_flag: 0,
        born_timestamp: 1,
        born_host: localhost(5555),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        tags_code,
        mark: None,
    }
}

fn body_of(i: usize, len: usize) -> Vec<u8> {
    let mut b = format!("m{i}:").into_bytes();
    b.resize(len, (i % 251) as u8);
    b
}

/// Splits a pull body into (queue offset, body) pairs, checking each record.
fn records(body: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        match record::check_record(&body[at..], None, true) {
            record::RecordCheck::Record(v) => {
                out.push((v.queue_offset, v.body.to_vec()));
                at += v.total_size as usize;
            }
            other => panic!("bad record in pull body at {at}: {other:?}"),
        }
    }
    out
}

async fn read_all(store: &MessageStore, topic: &str, qid: u32) -> Vec<(u64, Vec<u8>)> {
    let (min, max) = store.offsets(topic, qid).unwrap_or((0, 0));
    let mut out = Vec::new();
    let mut off = min;
    while off < max {
        let r = store
            .get_messages(topic, qid, off, 32, 1 << 20, &TagFilter::All)
            .await
            .expect("get");
        assert_eq!(r.status, GetStatus::Found, "at offset {off}");
        out.extend(records(&r.body));
        off = r.next_offset;
    }
    out
}

/// Retries an append of message `i` until it is accepted (appends that
/// were refused must resume by themselves), panicking after 10 s.
async fn put_until_accepted(store: &MessageStore, i: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = store.put(msg("T", 0, body_of(i, 3000), None)).await;
        if r.status == PutStatus::Ok {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "appends did not resume: {:?}",
            r.status
        );
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh directory for a store under test. A filesystem already fuller
/// than the store's default `diskMaxUsedSpaceRatio` makes the store refuse
/// segments, which these tests would report as wrong answers or waits:
/// say so plainly instead.
fn tmp() -> tempfile::TempDir {
    use super::retention::{DiskUsage, StatVfs};
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = cfg(dir.path(), FlushMode::Sync).disk_max_used_ratio;
    if let Ok(used) = StatVfs::new(dir.path().to_path_buf()).used_percent() {
        assert!(
            used < limit,
            "the test filesystem of {} is {used}% used, above the store's {limit}% limit: free space or point TMPDIR elsewhere",
            dir.path().display()
        );
    }
    dir
}

/// Appends, then abandons the store without shutdown (no final flush of
/// the checkpoint), like a crash after the last ack.
fn write_and_crash(d: PathBuf, n: usize, size: usize) -> Vec<u64> {
    run_on_executor("writer", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let mut ends = Vec::new();
        for i in 0..n {
            let r = store.put(msg("T", 0, body_of(i, size), None)).await;
            assert_eq!(r.status, PutStatus::Ok);
            ends.push(r.positions[0].log_offset().0);
        }
        ends
    })
}

/// Places a chunk of a master's log (`log_chunk`) at `pos` of a slave's
/// store, waiting for room as the HA stream does.
async fn place(slave: &MessageStore, pos: u64, bytes: &[u8]) {
    let mut at = 0;
    while let Replicate::Partly(n) = slave
        .replicate(pos + at as u64, &bytes[at..], &mut |_, _| {})
        .expect("replicate")
    {
        at += n;
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

fn seg_path(d: &Path, base: u64) -> PathBuf {
    d.join("commitlog").join(position::segment_file_name(base))
}

fn recover_count(d: PathBuf) -> (usize, recovery::RecoveryReport) {
    run_on_executor("reader", move || async move {
        let (store, report) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let got = read_all(&store, "T", 0).await;
        for (i, (o, b)) in got.iter().enumerate() {
            assert_eq!(*o, i as u64);
            assert_eq!(*b, body_of(i, b.len()));
        }
        // The log must accept appends after recovery and survive a restart.
        let r = store.put(msg("T", 0, body_of(got.len(), 300), None)).await;
        assert_eq!(r.status, PutStatus::Ok);
        assert_eq!(r.queue_offset, got.len() as u64);
        store.shutdown().await.unwrap();
        (got.len(), report)
    })
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, at).unwrap();
    f.sync_all().unwrap();
}

struct FixedUsage(std::rc::Rc<std::cell::Cell<u8>>);

impl retention::DiskUsage for FixedUsage {
    fn used_percent_after(&self, _extra: u64) -> Result<u8, StoreError> {
        Ok(self.0.get())
    }
}

mod api;
mod cleaning;
mod disk_faults;
mod disk_faults_cq;
mod encryption;
mod faults;
mod key_index;
mod marks;
mod pipeline;
mod replica;
mod review;
mod truncate;

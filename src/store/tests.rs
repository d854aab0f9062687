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

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn sync_put_then_pull_across_segment_rolls() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let mut sent = vec![Vec::new(); 3];
        for i in 0..300 {
            let q = (i % 3) as u32;
            let b = body_of(i, 1000 + (i * 37) % 3000);
            let r = store.put(msg("T", q, b.clone(), None)).await;
            assert_eq!(r.status, PutStatus::Ok);
            assert_eq!(r.queue_offset, sent[q as usize].len() as u64);
            assert_eq!(r.positions[0].shard(), 1);
            sent[q as usize].push(b);
        }
        assert!(
            store.log().segment_bases().len() > 2,
            "records must span several segments"
        );
        for q in 0..3u32 {
            let got = read_all(&store, "T", q).await;
            let bodies: Vec<_> = got.iter().map(|(_, b)| b.clone()).collect();
            assert_eq!(bodies, sent[q as usize]);
            assert!(got.iter().enumerate().all(|(i, (o, _))| *o == i as u64));
        }
        store.shutdown().await.unwrap();
    });
}

#[test]
fn pull_statuses_follow_rocketmq() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let all = TagFilter::All;
        let r = store.get_messages("none", 0, 0, 32, 1 << 20, &all).await.unwrap();
        assert_eq!(r.status, GetStatus::NoMatchedLogicQueue);
        for i in 0..5 {
            store.put(msg("T", 0, body_of(i, 100), None)).await;
        }
        let r = store.get_messages("T", 0, 5, 32, 1 << 20, &all).await.unwrap();
        assert_eq!((r.status, r.next_offset), (GetStatus::OffsetOverflowOne, 5));
        let r = store.get_messages("T", 0, 9, 32, 1 << 20, &all).await.unwrap();
        assert_eq!((r.status, r.next_offset), (GetStatus::OffsetOverflowBadly, 5));
        let r = store.get_messages("T", 0, 1, 2, 1 << 20, &all).await.unwrap();
        assert_eq!((r.status, r.count, r.next_offset), (GetStatus::Found, 2, 3));
        // max bytes: at least one message, then stop before exceeding.
        let r = store.get_messages("T", 0, 0, 32, 150, &all).await.unwrap();
        assert_eq!(r.count, 1);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn tag_filter_and_search_by_time() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let mut times = Vec::new();
        for i in 0..30 {
            let tag = ["TagA", "TagB", "TagC"][i % 3];
            let r = store.put(msg("T", 0, body_of(i, 64), Some(tag))).await;
            times.push(r.store_timestamp);
            if i % 10 == 9 {
                glommio::timer::sleep(Duration::from_millis(3)).await;
            }
        }
        let f = TagFilter::Codes(vec![java_string_hash("TagA"), java_string_hash("TagC")]);
        let r = store.get_messages("T", 0, 0, 32, 1 << 20, &f).await.unwrap();
        let got: Vec<u64> = records(&r.body).iter().map(|(o, _)| *o).collect();
        let want: Vec<u64> = (0..30).filter(|i| i % 3 != 1).collect();
        assert_eq!(got, want);
        assert_eq!(r.next_offset, 30);
        let only_d = TagFilter::Codes(vec![java_string_hash("TagD")]);
        let r = store.get_messages("T", 0, 0, 32, 1 << 20, &only_d).await.unwrap();
        assert_eq!((r.status, r.next_offset), (GetStatus::NoMatchedMessage, 30));
        // Search: the first offset stored at/after the 11th message's time.
        let t = times[10];
        let lower = store.search_offset_by_time("T", 0, t, Boundary::Lower).await.unwrap();
        assert_eq!(lower, times.iter().position(|&x| x >= t).unwrap() as u64);
        let upper = store.search_offset_by_time("T", 0, t, Boundary::Upper).await.unwrap();
        assert_eq!(upper, times.iter().rposition(|&x| x <= t).unwrap() as u64);
        assert_eq!(
            store
                .search_offset_by_time("T", 0, i64::MAX, Boundary::Lower)
                .await
                .unwrap(),
            30
        );
        assert_eq!(
            store.search_offset_by_time("T", 0, 0, Boundary::Lower).await.unwrap(),
            0
        );
        assert_eq!(store.earliest_store_time("T", 0).await.unwrap(), Some(times[0]));
        store.shutdown().await.unwrap();
    });
}

#[test]
fn reopen_after_clean_shutdown_continues_offsets_and_reads_old_data_from_disk() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Async)).await.unwrap();
        for i in 0..200 {
            store.put(msg("T", (i % 2) as u32, body_of(i, 2000), None)).await;
        }
        store.shutdown().await.unwrap();
        let (store, report) = MessageStore::open(cfg(&d, FlushMode::Async)).await.unwrap();
        assert_eq!(report.records, 0, "a clean shutdown leaves nothing to re-dispatch");
        assert_eq!(store.offsets("T", 0), Some((0, 100)));
        let r = store.put(msg("T", 0, body_of(999, 10), None)).await;
        assert_eq!(r.queue_offset, 100);
        let got = read_all(&store, "T", 0).await;
        assert_eq!(got.len(), 101);
        assert_eq!(got[3].1, body_of(6, 2000));
        store.shutdown().await.unwrap();
    });
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

#[test]
fn crash_without_checkpoint_recovers_everything_acked() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 120, 3000);
    assert!(!dir.path().join("checkpoint").exists());
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 120);
    assert_eq!(report.records, 120);
    assert_eq!(report.stop.map(|s| s.kind), Some(recovery::StopKind::CleanEnd));
    assert!(pos.len() == 120);
}

#[test]
fn torn_write_at_arbitrary_bytes_recovers_to_last_valid_record() {
    for (k, cut) in [(10usize, 1u64), (10, 40), (25, 500), (39, 2999)] {
        let dir = tmp();
        let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
        // Garbage from `cut` bytes into record k to the end of its block+1.
        let at = pos[k] + cut;
        let base = at - at % (256 * 1024);
        let garbage: Vec<u8> = (0..5000).map(|i| (i * 7 + 3) as u8).collect();
        let room = (base + 256 * 1024 - at).min(garbage.len() as u64) as usize;
        overwrite(&seg_path(dir.path(), base), at - base, &garbage[..room]);
        let (n, report) = recover_count(dir.path().to_path_buf());
        assert_eq!(n, k, "torn at record {k} byte {cut}");
        let stop = report.stop.expect("stop info");
        assert_ne!(stop.kind, recovery::StopKind::CleanEnd);
        // A second restart must not resurrect anything past the new end.
        let (n2, _) = recover_count(dir.path().to_path_buf());
        assert_eq!(n2, k + 1, "the append after the first recovery is kept, nothing else");
    }
}

#[test]
fn zeroed_block_in_the_middle_is_reported_as_corruption() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
    let at = pos[20] + 100; // inside record 20
    let block = at - at % 4096;
    let base = at - at % (256 * 1024);
    overwrite(&seg_path(dir.path(), base), block - base, &[0u8; 4096]);
    let first_bad = pos.iter().position(|&p| p + 3100 > block).unwrap();
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, first_bad);
    let stop = report.stop.expect("stop info");
    assert_eq!(stop.kind, recovery::StopKind::MidLogCorruption);
    assert!(stop.file.ends_with(position::segment_file_name(base)));
}

#[test]
fn crc_flip_in_a_body_ends_the_log_before_it() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
    let at = pos[33] + 200; // a body byte of record 33
    let base = at - at % (256 * 1024);
    let mut b = [0u8; 1];
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(seg_path(dir.path(), base)).unwrap();
        f.read_exact_at(&mut b, at - base).unwrap();
    }
    overwrite(&seg_path(dir.path(), base), at - base, &[b[0] ^ 0x10]);
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 33);
    assert_eq!(report.stop.map(|s| s.why), Some("body CRC mismatch".to_string()));
}

#[test]
fn short_segment_recovers_to_its_last_complete_record() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
    let last_base = pos[39] - pos[39] % (256 * 1024);
    let cut = pos[37] + 1234;
    assert_eq!(
        cut - cut % (256 * 1024),
        last_base,
        "test needs records 37..39 in the last segment"
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(seg_path(dir.path(), last_base))
        .unwrap();
    f.set_len(cut - last_base).unwrap();
    drop(f);
    let (n, _) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 37);
}

#[test]
fn retention_deletes_expired_segments_and_moves_min_offsets() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = cfg(&d, FlushMode::Sync);
        c.file_reserved_time = Duration::ZERO;
        let (store, _) = MessageStore::open(c).await.unwrap();
        for i in 0..400 {
            store.put(msg("T", (i % 2) as u32, body_of(i, 3000), None)).await;
        }
        store.checkpoint().await.unwrap();
        let before = store.log().segment_bases().len();
        let deleted = retention::clean_once(&store).await.unwrap();
        assert!(deleted >= 2, "deleted {deleted} of {before}");
        assert_eq!(store.log().segment_bases().len(), before - deleted);
        let (min, max) = store.offsets("T", 0).unwrap();
        assert!(min > 0 && max == 200, "min {min} max {max}");
        let r = store
            .get_messages("T", 0, 0, 32, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        assert_eq!((r.status, r.next_offset), (GetStatus::OffsetTooSmall, min));
        let got = read_all(&store, "T", 0).await;
        assert_eq!(got.first().map(|g| g.0), Some(min));
        assert_eq!(got.len() as u64, 200 - min);
        store.shutdown().await.unwrap();
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        assert_eq!(store.offsets("T", 0), Some((min, 200)), "min offsets survive a restart");
        store.shutdown().await.unwrap();
    });
}

struct FixedUsage(std::rc::Rc<std::cell::Cell<u8>>);

impl retention::DiskUsage for FixedUsage {
    fn used_percent(&self) -> Result<u8, StoreError> {
        Ok(self.0.get())
    }
}

#[test]
fn full_disk_refuses_appends_and_resumes_below_the_ratio() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let usage = std::rc::Rc::new(std::cell::Cell::new(97u8));
        store.set_disk_usage_probe(Box::new(FixedUsage(usage.clone())));
        for i in 0..5 {
            store.put(msg("T", 0, body_of(i, 100), None)).await;
        }
        retention::clean_once(&store).await.unwrap();
        assert!(store.is_disk_full());
        let r = store.put(msg("T", 0, body_of(9, 100), None)).await;
        assert!(matches!(r.status, PutStatus::ServiceNotAvailable(ref m) if m.contains("diskMaxUsedSpaceRatio")));
        usage.set(50);
        retention::clean_once(&store).await.unwrap();
        assert!(!store.is_disk_full());
        assert_eq!(
            store.put(msg("T", 0, body_of(9, 100), None)).await.status,
            PutStatus::Ok
        );
        store.shutdown().await.unwrap();
    });
}

#[test]
fn unflushed_data_beyond_the_tail_cache_gets_busy_not_memory() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = cfg(&d, FlushMode::Async);
        c.async_flush_interval = Duration::from_secs(3600);
        c.async_flush_bytes = usize::MAX;
        c.tail_cache_bytes = 4 * c.max_record_size;
        let (store, _) = MessageStore::open(c).await.unwrap();
        let mut busy = false;
        for i in 0..200 {
            if store.put(msg("T", 0, body_of(i, 8000), None)).await.status == PutStatus::Busy {
                busy = true;
                break;
            }
        }
        assert!(busy, "appends must be refused once unflushed data fills the cache");
        assert!(store.memory_used() <= 4 * 64 * 1024 + 1024);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn oversized_and_malformed_messages_are_refused() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let r = store.put(msg("T", 0, vec![0; 70 * 1024], None)).await;
        assert!(matches!(r.status, PutStatus::MessageIllegal(_)));
        let r = store.put(msg(&"x".repeat(200), 0, vec![1], None)).await;
        assert!(matches!(r.status, PutStatus::MessageIllegal(_)));
        assert_eq!(store.queue_count(), 0);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn ten_thousand_queues_open_fast_and_cost_little_memory() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = cfg(&d, FlushMode::Async);
        c.segment_size = 4 << 20;
        let (store, _) = MessageStore::open(c.clone()).await.unwrap();
        for i in 0..10_000u32 {
            loop {
                let r = store
                    .put(msg(&format!("topic{}", i / 8), i % 8, vec![7; 16], None))
                    .await;
                match r.status {
                    PutStatus::Ok => break,
                    // ASYNC puts never yield: let the flusher catch up.
                    PutStatus::Busy => glommio::timer::sleep(Duration::from_millis(1)).await,
                    other => panic!("put failed: {other:?}"),
                }
            }
        }
        store.shutdown().await.unwrap();
        let t = std::time::Instant::now();
        let (store, report) = MessageStore::open(c).await.unwrap();
        let took = t.elapsed();
        assert_eq!(report.records, 0);
        assert_eq!(store.queue_count(), 10_000);
        let per_queue = (store.memory_used() - store.log().cache_memory()) / 10_000;
        eprintln!("10 000 queues: reopen {took:?}, {per_queue} B/queue of consume-queue memory");
        assert!(
            per_queue <= 4 * 24,
            "idle queues must not hold more than their in-memory allowance"
        );
        assert_eq!(store.offsets("topic1249", 7), Some((0, 1)));
        let r = store
            .get_messages("topic1249", 7, 0, 32, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        assert_eq!(r.count, 1);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn a_flush_slower_than_sync_flush_timeout_answers_flush_disk_timeout_but_keeps_the_message() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = cfg(&d, FlushMode::Sync);
        // No flush can beat a zero timeout: every put reports the timeout.
        c.sync_flush_timeout = Duration::ZERO;
        let (store, _) = MessageStore::open(c).await.unwrap();
        let r = store.put(msg("T", 0, body_of(1, 500), None)).await;
        assert_eq!(r.status, PutStatus::FlushDiskTimeout);
        assert_eq!(r.queue_offset, 0);
        // Stored all the same: it becomes durable and readable.
        while store.flushed_log_offset() < store.log().write_pos() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(read_all(&store, "T", 0).await, vec![(0, body_of(1, 500))]);
        store.shutdown().await.unwrap();
    });
}

/// Shutdown checkpoints while the background checkpointer may be in the
/// middle of its own: concurrent checkpoints must not race on
/// `checkpoint.tmp` (one renaming it away under the other).
#[test]
fn concurrent_checkpoints_do_not_race_on_the_temp_file() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let d2 = d.clone();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        for round in 0..20 {
            for i in 0..5 {
                let r = store.put(msg("T", i % 2, body_of(i as usize, 100), None)).await;
                assert_eq!(r.status, PutStatus::Ok);
            }
            let (a, b) = futures::future::join(store.checkpoint(), store.checkpoint()).await;
            assert!(a.is_ok() && b.is_ok(), "round {round}: {a:?} / {b:?}");
        }
        store.shutdown().await.unwrap();
    });
    run_on_executor("t2", move || async move {
        let (store, report) = MessageStore::open(cfg(&d2, FlushMode::Sync)).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(store.max_offset("T", 0), 60);
        assert_eq!(store.max_offset("T", 1), 40);
        store.shutdown().await.unwrap();
    });
}

//! Truncation of a demoted master's log (`MessageStore::truncate_log`):
//! the log, its queues (marks included) and its key index end at the cut,
//! replication continues there byte for byte, later segments and
//! consume-queue files are gone, a reopen (clean or after a crash) keeps
//! the cut, and refusals change nothing.

use super::*;

/// Message `i` of queue `qid`: keys `key-<i>` and `U<i>`, every fifth
/// carries a mark.
fn kmsg(i: usize, qid: u32, len: usize) -> MessageInput {
    let mut m = msg("T", qid, body_of(i, len), Some("TagA"));
    let mut props = format!("KEYS\x01key-{i}\x02UNIQ_KEY\x01U{i}\x02TAGS\x01TagA\x02");
    if i % 5 == 0 {
        let mark = Mark {
            queue: MARK_QUEUE_TIMER,
            value: i as i64,
        };
        props.push_str(&format!("{MARK_PROPERTY}\x01{}\x02", mark.property()));
        m.mark = Some(mark);
    }
    m.properties = Bytes::from(props);
    m
}

/// Puts messages `range` (queues 0..3), returning each record's log offset.
async fn put_range(store: &MessageStore, range: std::ops::Range<usize>, len: usize) -> Vec<u64> {
    let mut pos = Vec::new();
    for i in range {
        let r = store.put(kmsg(i, (i % 3) as u32, len)).await;
        assert_eq!(r.status, PutStatus::Ok, "put {i}");
        pos.push(r.positions[0].log_offset().0);
    }
    pos
}

/// Replicates `src`'s durable log into `dst` from `dst`'s end up to `upto`
/// (a record boundary of `src`).
async fn copy_upto(src: &MessageStore, dst: &MessageStore, upto: u64) {
    let mut pos = dst.write_log_offset();
    while pos < upto {
        let max = (upto - pos) as usize;
        let Some((bytes, next)) = src.log_chunk(pos, max).await.expect("chunk") else {
            panic!("nothing durable at {pos}")
        };
        place(dst, pos, &bytes).await;
        pos = next;
    }
    wait_flushed(dst).await;
}

async fn wait_flushed(store: &MessageStore) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.flushed_log_offset() < store.write_log_offset() {
        assert!(std::time::Instant::now() < deadline, "never flushed");
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

/// The whole durable log, as replication reads it.
async fn log_bytes(store: &MessageStore) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = store.log_min_offset();
    while let Some((bytes, next)) = store.log_chunk(pos, 1 << 20).await.expect("chunk") {
        out.extend_from_slice(&pos.to_be_bytes());
        out.extend_from_slice(&bytes);
        pos = next;
    }
    out
}

/// Everything a reader sees of a store: log end, every queue's records
/// (marks' offsets included).
async fn snapshot(store: &MessageStore) -> (u64, Vec<Vec<(u64, Vec<u8>)>>, (u64, u64)) {
    let mut queues = Vec::new();
    for q in 0..3 {
        queues.push(read_all(store, "T", q).await);
    }
    let marks = store.offsets(MARK_TOPIC, MARK_QUEUE_TIMER).unwrap_or((0, 0));
    (store.write_log_offset(), queues, marks)
}

async fn hits(store: &MessageStore, key: &str) -> usize {
    store
        .query_key("T", key, 0, i64::MAX, 10)
        .await
        .expect("query")
        .records
        .len()
}

#[test]
fn a_truncated_log_is_the_new_masters_prefix_and_replication_continues_at_the_cut() {
    let (a, b) = (tmp(), tmp());
    let (ad, bd) = (a.path().to_path_buf(), b.path().to_path_buf());
    run_on_executor("t", move || async move {
        // B was master and wrote 120 records; the new master A had only
        // the first 70 when B lost its role.
        let (old, _) = MessageStore::open(cfg(&bd, FlushMode::Sync)).await.unwrap();
        let pos = put_range(&old, 0..120, 900).await;
        // Runs on disk, one reaching past the cut: it must be rewritten.
        old.flush_key_index(true).await.unwrap();
        let to = pos[70];
        assert_ne!(to % old.segment_size(), 0);
        let (new, _) = MessageStore::open(cfg(&ad, FlushMode::Sync)).await.unwrap();
        new.set_slave_of(Some("b".into()));
        copy_upto(&old, &new, to).await;
        let want = snapshot(&new).await;
        assert_eq!(want.0, to);

        old.set_slave_of(Some("a".into()));
        let end = old.write_log_offset();
        let t = old.truncate_log(to).await.expect("truncate");
        assert_eq!(t.removed_bytes, end - to);
        // At most the next segment, prepared ahead (empty).
        assert!(t.removed_segments <= 1, "{t:?}");
        assert_eq!(t.queues_cut, 4, "{t:?}"); // three queues and the marks
        assert_eq!(t.index_runs_cut, 1, "{t:?}");
        assert_eq!(old.flushed_log_offset(), to);
        assert_eq!(snapshot(&old).await, want);
        assert_eq!(log_bytes(&old).await, log_bytes(&new).await);
        for q in 0..3u32 {
            assert_eq!(old.max_offset("T", q), new.max_offset("T", q));
        }
        // Removed records are found neither by key, id nor offset.
        assert_eq!(hits(&old, "key-80").await, 0);
        assert_eq!(hits(&old, "U119").await, 0);
        assert_eq!(hits(&old, "key-70").await, 0);
        assert_eq!(hits(&old, "key-69").await, 1);
        assert_eq!(hits(&old, "U3").await, 1);
        let phys = PhysicalOffset::new(1, LogOffset(pos[80]));
        assert_eq!(old.read_record(phys).await.unwrap(), None);

        // The new master goes on; B follows it from the cut.
        new.set_slave_of(None);
        put_range(&new, 1000..1050, 700).await;
        copy_upto(&new, &old, new.write_log_offset()).await;
        assert_eq!(log_bytes(&old).await, log_bytes(&new).await);
        assert_eq!(snapshot(&old).await, snapshot(&new).await);
        assert_eq!(hits(&old, "key-1020").await, 1);
        assert_eq!(hits(&old, "key-80").await, 0);
        // The key index survives its flushes and upkeep.
        old.flush_key_index(true).await.unwrap();
        old.key_index_pass().await.unwrap();
        assert_eq!((hits(&old, "key-1020").await, hits(&old, "key-69").await), (1, 1));

        let want = snapshot(&new).await;
        let want_log = log_bytes(&new).await;
        old.shutdown().await.unwrap();
        new.shutdown().await.unwrap();
        let (old, report) = MessageStore::open(cfg(&bd, FlushMode::Sync)).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(snapshot(&old).await, want);
        assert_eq!(log_bytes(&old).await, want_log);
        old.key_index_pass().await.unwrap();
        assert_eq!(hits(&old, "key-80").await, 0);
        assert_eq!(hits(&old, "key-1020").await, 1);
        old.shutdown().await.unwrap();
    });
}

#[test]
fn a_truncation_across_segment_rolls_deletes_the_later_segments_and_queue_files() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let mk = |d: &Path| {
        let mut c = cfg(d, FlushMode::Sync);
        c.cq_entries_per_file = 16;
        c
    };
    let (to, seg, counts) = {
        let d = d.clone();
        run_on_executor("t", move || async move {
            let (store, _) = MessageStore::open(mk(&d)).await.unwrap();
            // ~700 KB over 256 KiB segments.
            let pos = put_range(&store, 0..700, 900).await;
            let seg = store.segment_size();
            assert!(store.write_log_offset() > 2 * seg);
            let to = pos[100];
            assert!(to < seg);
            let counts: Vec<u64> = (0..3u64)
                .map(|q| (0..100).filter(|i| i % 3 == q).count() as u64)
                .collect();
            store.set_slave_of(Some("m".into()));
            let t = store.truncate_log(to).await.expect("truncate");
            assert!(t.removed_segments >= 2, "{t:?}");
            assert_eq!(store.write_log_offset(), to);
            for q in 0..3u32 {
                assert_eq!(store.offsets("T", q), Some((0, counts[q as usize])), "queue {q}");
                let got = read_all(&store, "T", q).await;
                assert_eq!(got.len() as u64, counts[q as usize]);
                assert!(got.iter().enumerate().all(|(n, (o, _))| *o == n as u64));
            }
            assert_eq!(store.offsets(MARK_TOPIC, MARK_QUEUE_TIMER), Some((0, 20)));
            assert!(store.log().segment_bases().iter().all(|&b| b <= seg));
            // The segment after the cut's is prepared again, empty; the
            // shard takes appends from the cut (once it is master again).
            store.set_slave_of(None);
            let more = put_range(&store, 2000..2400, 900).await;
            assert_eq!(more[0], to);
            let added = (2000..2400).filter(|i| i % 3 == 0).count() as u64;
            assert_eq!(store.offsets("T", 0).unwrap().1, counts[0] + added);
            // A crash (no shutdown, no final checkpoint) after the cut.
            (to, seg, counts)
        })
    };
    let _ = to;
    run_on_executor("t", move || async move {
        let (store, report) = MessageStore::open(mk(&d)).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.quarantined.is_empty());
        for q in 0..3u32 {
            let got = read_all(&store, "T", q).await;
            let added = (2000..2400).filter(|i| i % 3 == q as usize).count() as u64;
            assert_eq!(got.len() as u64, counts[q as usize] + added, "queue {q}");
            // Queue offsets continue from the cut: no removed record is
            // read back (bodies of 100.. never reappear).
            for (n, (o, body)) in got.iter().enumerate() {
                assert_eq!(*o, n as u64);
                let i: usize = std::str::from_utf8(&body[1..body.iter().position(|&c| c == b':').unwrap()])
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(!(100..2000).contains(&i), "record {i} resurrected");
            }
        }
        assert_eq!(hits(&store, "key-150").await, 0);
        store.key_index_pass().await.unwrap();
        assert_eq!(hits(&store, "key-150").await, 0);
        assert_eq!(hits(&store, "key-2150").await, 1);
        assert!(store.log().segment_bases().iter().all(|&b| b <= 3 * seg));
        store.shutdown().await.unwrap();
    });
}

#[test]
fn a_reopen_after_truncation_keeps_the_cut_and_its_files() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let mk = |d: &Path| {
        let mut c = cfg(d, FlushMode::Sync);
        c.cq_entries_per_file = 16;
        c
    };
    let d2 = d.clone();
    let (want, seg) = run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(mk(&d2)).await.unwrap();
        let pos = put_range(&store, 0..600, 900).await;
        store.set_slave_of(Some("m".into()));
        store.truncate_log(pos[130]).await.expect("truncate");
        let want = snapshot(&store).await;
        store.shutdown().await.unwrap();
        (want, store.segment_size())
    });
    // On disk: no segment with data after the cut's, no queue file past
    // the cut (queue 0 holds 44 entries: files 0, 16 and 32 only).
    for ent in std::fs::read_dir(d.join("commitlog")).unwrap() {
        let ent = ent.unwrap();
        let name = ent.file_name().into_string().unwrap();
        let base: u64 = name.parse().unwrap_or(u64::MAX);
        assert!(base <= seg, "{name} left");
        if base == seg {
            let data = std::fs::read(ent.path()).unwrap();
            assert!(data.iter().all(|&b| b == 0), "{name} holds data");
        }
    }
    let mut cq: Vec<String> = std::fs::read_dir(d.join("consumequeue/T/0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    cq.sort();
    assert_eq!(cq.len(), 3, "{cq:?}");
    run_on_executor("t", move || async move {
        let (store, report) = MessageStore::open(mk(&d)).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(snapshot(&store).await, want);
        assert_eq!(store.max_offset("T", 0), 44);
        store.key_index_pass().await.unwrap();
        assert_eq!(hits(&store, "key-129").await, 1);
        assert_eq!(hits(&store, "key-130").await, 0);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn refused_truncations_change_nothing_and_a_cut_at_or_past_the_end_is_a_no_op() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = cfg(&d, FlushMode::Sync);
        c.file_reserved_time = Duration::ZERO;
        let (store, _) = MessageStore::open(c).await.unwrap();
        let pos = put_range(&store, 0..400, 3000).await;
        let before = snapshot(&store).await;
        let refused = |r: Result<Truncated, StoreError>, what: &str| match r {
            Err(StoreError::Refused(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{other:?}"),
        };
        // Not a slave: puts are still taken.
        refused(store.truncate_log(pos[300]).await, "not a slave");
        store.set_slave_of(Some("m".into()));
        // Inside a record, or in a segment's tail after its BLANK.
        refused(store.truncate_log(pos[300] + 1).await, "not a record boundary");
        refused(store.truncate_log(pos[300] + 200).await, "not a record boundary");
        let seg = store.segment_size();
        let blank_tail = (pos[300] / seg) * seg - 4;
        refused(store.truncate_log(blank_tail).await, "not a record boundary");
        // At or past the end: nothing to do.
        let end = store.write_log_offset();
        assert_eq!(store.truncate_log(end).await.unwrap(), Truncated::default());
        assert_eq!(store.truncate_log(end + 4096).await.unwrap(), Truncated::default());
        assert_eq!(snapshot(&store).await, before);
        // Below the oldest retained segment.
        store.checkpoint().await.unwrap();
        assert!(retention::clean_once(&store).await.unwrap() >= 1);
        let min = store.log_min_offset();
        assert!(min > 0);
        refused(store.truncate_log(pos[0]).await, "below the oldest retained");
        assert_eq!(store.write_log_offset(), end);
        assert_eq!(store.flushed_log_offset(), end);
        for q in 0..3u32 {
            assert_eq!(store.max_offset("T", q), before.1[q as usize].len() as u64);
        }
        // And a truncation still works afterwards.
        let t = store.truncate_log(pos[399]).await.unwrap();
        assert_eq!(t.queues_cut, 1);
        assert_eq!(store.max_offset("T", 0), 133);
        store.shutdown().await.unwrap();
    });
}

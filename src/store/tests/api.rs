//! The store's API: puts, pulls, statuses, limits, timeouts.

use super::*;

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
            loop {
                match store.put(msg("T", (i % 2) as u32, body_of(i, 2000), None)).await.status {
                    PutStatus::Ok => break,
                    // ASYNC puts never yield: let the preparer and flusher run.
                    PutStatus::Busy => glommio::timer::sleep(Duration::from_millis(1)).await,
                    other => panic!("put failed: {other:?}"),
                }
            }
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
        // The tail cache, queue tails and the key index's memtable (one
        // key per message, 24 bytes, a Vec at most twice its length).
        let index = 2 * 24 * store.key_index_stats().mem_entries as usize;
        assert!(index <= 2 * 24 * 40);
        assert!(store.memory_used() <= 4 * 64 * 1024 + 1024 + index);
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

//! The key index on real files: lookups across flushes, merges, restarts,
//! crashes, corrupt runs and failing disks.

use super::*;
use crate::store::faults::{DiskFaults, DiskOp, Fault, FaultRule};
use crate::store::key_index::KeyIndexConfig;

fn keyed(i: usize) -> MessageInput {
    let mut m = msg("T", (i % 3) as u32, body_of(i, 200 + i % 50), None);
    m.properties = Bytes::from(format!("KEYS\x01order-{} k{i}\x02UNIQ_KEY\x01U{i}\x02", i % 50));
    m
}

fn index_cfg(d: &Path) -> StoreConfig {
    let mut c = cfg(d, FlushMode::Sync);
    c.key_index = KeyIndexConfig {
        enabled: true,
        flush_entries: 60,
        flush_interval: Duration::from_secs(3600),
        max_mem_entries: 1 << 20,
    };
    c
}

/// Bodies of what `key` finds in topic T, newest first.
async fn found(store: &MessageStore, key: &str, max: usize) -> Vec<Vec<u8>> {
    let hits = store.query_key("T", key, 0, i64::MAX, max).await.expect("query");
    hits.records
        .iter()
        .map(|r| match record::check_record(r, None, true) {
            record::RecordCheck::Record(v) => v.body.to_vec(),
            other => panic!("not a record: {other:?}"),
        })
        .collect()
}

/// Bodies of messages `i` with `i % 50 == k`, below `n`, newest first.
fn expected_order(k: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .rev()
        .filter(|i| i % 50 == k)
        .map(|i| body_of(i, 200 + i % 50))
        .collect()
}

#[test]
fn keys_and_ids_find_their_records_across_runs_merges_and_restarts() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let d2 = d.clone();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(index_cfg(&d)).await.unwrap();
        for i in 0..1500 {
            assert_eq!(store.put(keyed(i)).await.status, PutStatus::Ok);
            if i % 50 == 49 {
                store.flush_key_index(false).await.unwrap();
                store.key_index_pass().await.unwrap();
            }
        }
        let s = store.key_index_stats();
        assert!(
            s.run_entries > 0 && s.runs < 12,
            "runs must be written and merged: {s:?}"
        );
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 1500));
        assert_eq!(found(&store, "order-7", 5).await, expected_order(7, 1500)[..5].to_vec());
        assert_eq!(found(&store, "U1234", 10).await, vec![body_of(1234, 200 + 1234 % 50)]);
        assert_eq!(found(&store, "k3", 10).await, vec![body_of(3, 203)]);
        assert!(found(&store, "nope", 10).await.is_empty());
        let other = store.query_key("U", "order-7", 0, i64::MAX, 10).await.unwrap();
        assert!(other.records.is_empty(), "another topic's key must not match");
        let past = store.query_key("T", "order-7", 0, 1000, 10).await.unwrap();
        assert!(
            past.records.is_empty(),
            "a time range before the messages finds nothing"
        );
        store.shutdown().await.unwrap();
    });
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(index_cfg(&d2)).await.unwrap();
        assert_eq!(
            store.key_index_stats().pending_bytes,
            0,
            "a clean shutdown leaves no gap"
        );
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 1500));
        for i in 1500..1600 {
            assert_eq!(store.put(keyed(i)).await.status, PutStatus::Ok);
        }
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 1600));
        store.shutdown().await.unwrap();
    });
}

#[test]
fn a_crash_loses_the_memtable_and_the_log_indexes_it_again() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let d2 = d.clone();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(index_cfg(&d)).await.unwrap();
        for i in 0..400 {
            assert_eq!(store.put(keyed(i)).await.status, PutStatus::Ok);
            if i == 199 {
                store.flush_key_index(true).await.unwrap();
            }
        }
        // Abandoned without shutdown: entries of 200.. were only in memory.
        assert!(store.key_index_stats().mem_entries > 0);
    });
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(index_cfg(&d2)).await.unwrap();
        assert!(store.key_index_stats().pending_bytes > 0, "the lost range is a gap");
        store.key_index_pass().await.unwrap();
        assert_eq!(store.key_index_stats().pending_bytes, 0);
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 400));
        assert_eq!(found(&store, "U399", 10).await, vec![body_of(399, 200 + 399 % 50)]);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn a_corrupt_run_is_set_aside_and_its_range_indexed_again() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let (d1, d2) = (d.clone(), d.clone());
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(index_cfg(&d1)).await.unwrap();
        for i in 0..300 {
            store.put(keyed(i)).await;
        }
        store.shutdown().await.unwrap();
    });
    let runs: Vec<PathBuf> = std::fs::read_dir(d.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "run"))
        .collect();
    assert!(!runs.is_empty());
    for r in &runs {
        overwrite(r, 100, b"garbage!");
        let len = std::fs::metadata(r).unwrap().len();
        overwrite(r, len - 100, b"garbage!");
    }
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(index_cfg(&d2)).await.unwrap();
        store.key_index_pass().await.unwrap();
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 300));
        store.shutdown().await.unwrap();
    });
    let aside = std::fs::read_dir(d.join("index"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(aside, runs.len(), "corrupt runs are kept aside for inspection");
}

#[test]
fn failing_index_writes_never_fail_puts_and_lose_no_key() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let faults = DiskFaults::new();
        let mut c = index_cfg(&d);
        c.faults = Some(faults.clone());
        let (store, _) = MessageStore::open(c).await.unwrap();
        faults.add(FaultRule::new(DiskOp::IndexWrite, Fault::Enospc));
        faults.add(FaultRule::new(DiskOp::IndexSync, Fault::Eio));
        for i in 0..300 {
            assert_eq!(store.put(keyed(i)).await.status, PutStatus::Ok);
            if i % 50 == 49 {
                assert!(store.flush_key_index(false).await.is_err());
            }
        }
        let s = store.key_index_stats();
        assert!(s.flush_failures > 0 && s.runs == 0, "{s:?}");
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 300));
        let leftovers = std::fs::read_dir(d.join("index")).unwrap().count();
        assert_eq!(leftovers, 0, "failed runs leave no file behind");
        faults.clear();
        store.flush_key_index(false).await.unwrap();
        let s = store.key_index_stats();
        assert!(s.runs > 0 && s.mem_entries == 0, "{s:?}");
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 300));
        store.shutdown().await.unwrap();
    });
}

#[test]
fn a_disabled_index_finds_nothing_and_writes_nothing() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = index_cfg(&d);
        c.key_index.enabled = false;
        let (store, _) = MessageStore::open(c).await.unwrap();
        store.put(keyed(7)).await;
        assert!(found(&store, "order-7", 10).await.is_empty());
        store.shutdown().await.unwrap();
        assert!(!d.join("index").exists());
    });
}

#[test]
fn a_full_memtable_leaves_keys_to_the_log_and_loses_none() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = index_cfg(&d);
        c.key_index.max_mem_entries = 100; // 3 keys a message: 33 messages
        c.key_index.flush_entries = 1 << 20;
        let (store, _) = MessageStore::open(c).await.unwrap();
        for i in 0..200 {
            assert_eq!(store.put(keyed(i)).await.status, PutStatus::Ok);
            if i == 120 {
                // Written out while full: later records resume the
                // memtable, the skipped ones become a gap.
                store.flush_key_index(false).await.unwrap();
            }
        }
        let s = store.key_index_stats();
        assert!(s.deferred > 0 && s.mem_entries <= 100, "{s:?}");
        assert!(s.pending_bytes > 0, "the skipped records are a gap: {s:?}");
        store.flush_key_index(true).await.unwrap();
        store.key_index_pass().await.unwrap();
        let s = store.key_index_stats();
        assert_eq!(s.pending_bytes, 0, "{s:?}");
        assert_eq!(found(&store, "order-7", 100).await, expected_order(7, 200));
        for i in [0, 40, 99, 121, 150, 199] {
            assert_eq!(found(&store, &format!("U{i}"), 10).await.len(), 1, "U{i}");
        }
        store.shutdown().await.unwrap();
    });
}

#[test]
fn lookups_scan_a_large_memtable_in_slices() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = index_cfg(&d);
        c.key_index.flush_entries = 1 << 20;
        c.segment_size = 16 << 20;
        c.tail_cache_bytes = 8 << 20;
        c.flush_mode = FlushMode::Async;
        let (store, _) = MessageStore::open(c).await.unwrap();
        for i in 0..30_000 {
            let mut m = msg("T", 0, Vec::new(), None);
            m.properties = Bytes::from(format!("KEYS\x01a{i} b{i}\x02UNIQ_KEY\x01U{i}\x02"));
            put_until_accepted_msg(&store, m).await;
        }
        let s = store.key_index_stats();
        assert!(s.mem_entries >= 90_000 && s.runs == 0, "{s:?}");
        for key in ["a0", "b0", "U0", "a21845", "U29999", "b29999"] {
            let hits = store.query_key("T", key, 0, i64::MAX, 10).await.unwrap();
            assert_eq!(hits.records.len(), 1, "{key}");
        }
        store.shutdown().await.unwrap();
    });
}

async fn put_until_accepted_msg(store: &MessageStore, m: MessageInput) {
    loop {
        match store.put(m.clone()).await.status {
            PutStatus::Ok => return,
            PutStatus::Busy => glommio::timer::sleep(Duration::from_millis(1)).await,
            other => panic!("put: {other:?}"),
        }
    }
}

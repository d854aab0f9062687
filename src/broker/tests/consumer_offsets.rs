//! Consumer offsets: journal replay, torn tails, compaction and crashes
//! between its steps, bounds. Each test runs on its own executor over a
//! temp directory; "crash" = drop the table without persisting and load
//! the directory again.

use std::path::Path;

use proptest::prelude::*;

use crate::broker::consumer_offsets::ConsumerOffsets;
use crate::broker::offset_journal::{self as journal, Step, HEADER_LEN};
use crate::runtime::run_on_executor;

fn journal_files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

fn snapshot_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(journal::SNAPSHOT)).unwrap()).unwrap()
}

/// Runs `f` with a fresh temp dir on an executor.
fn with_dir<F, Fut>(f: F)
where
    F: FnOnce(std::path::PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run_on_executor("offsets-test", move || f(dir));
}

#[test]
fn replay_restores_the_latest_values() {
    with_dir(|d| async move {
        let o = ConsumerOffsets::load(&d);
        assert!(o.commit("G", "T", 0, 5));
        assert!(o.commit("G", "T", 1, 7));
        assert!(o.commit("H", "T", 0, 1));
        o.persist().await.unwrap();
        o.commit("G", "T", 0, 9);
        o.persist().await.unwrap();
        drop(o);
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 0), Some(9));
        assert_eq!(o.get("G", "T", 1), Some(7));
        assert_eq!(o.get("H", "T", 0), Some(1));
        assert_eq!(o.get("H", "T", 1), None);
        assert!(!d.join(journal::SNAPSHOT).exists(), "no compaction for a small journal");
        // Appends continue after the replayed records.
        o.commit("G", "T", 2, 3);
        o.persist().await.unwrap();
        drop(o);
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 0), Some(9));
        assert_eq!(o.get("G", "T", 2), Some(3));
        assert_eq!(o.snapshot().len(), 4);
    });
}

#[test]
fn only_changes_are_written() {
    with_dir(|d| async move {
        let o = ConsumerOffsets::load(&d);
        o.commit("G", "T", 0, 5);
        o.persist().await.unwrap();
        let len = journal_files(&d)[0].1;
        assert_eq!(len, (HEADER_LEN + journal::record_len("G", "T")) as u64);
        for _ in 0..100 {
            o.commit("G", "T", 0, 5); // same value: nothing to write
        }
        o.persist().await.unwrap();
        assert_eq!(journal_files(&d)[0].1, len);
        for i in 0..100 {
            o.commit("G", "T", 0, 6 + i); // a hundred commits, one record
        }
        o.persist().await.unwrap();
        assert_eq!(journal_files(&d)[0].1, len + journal::record_len("G", "T") as u64);
    });
}

#[test]
fn a_torn_tail_is_ignored_and_cut_off() {
    with_dir(|d| async move {
        let o = ConsumerOffsets::load(&d);
        o.commit("G", "T", 0, 5);
        o.commit("G", "T", 1, 6);
        o.persist().await.unwrap();
        drop(o);
        let (name, valid) = journal_files(&d)[0].clone();
        // A crash mid-append: half a record, then a whole one whose CRC
        // does not match.
        let mut rec = Vec::new();
        journal::encode_record(&mut rec, "G", "T", 0, 99);
        let mut bytes = std::fs::read(d.join(&name)).unwrap();
        bytes.extend_from_slice(&rec[..rec.len() / 2]);
        std::fs::write(d.join(&name), &bytes).unwrap();
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 0), Some(5), "the torn record is not applied");
        assert_eq!(journal_files(&d)[0].1, valid, "the torn tail is cut at load");
        o.commit("G", "T", 2, 7);
        o.persist().await.unwrap();
        drop(o);
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 2), Some(7), "records after the cut are replayed");
        drop(o);
        // A last record with a flipped bit is a torn tail too.
        let mut bytes = std::fs::read(d.join(&name)).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0x40;
        std::fs::write(d.join(&name), &bytes).unwrap();
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 2), None);
        assert_eq!(o.get("G", "T", 1), Some(6));
    });
}

/// Commits that make the journal pass its bound (min 0: 2 × live).
async fn fill_until_compaction(o: &ConsumerOffsets, d: &Path) -> u64 {
    let mut next = 1000;
    for round in 0..10 {
        for q in 0..8 {
            o.commit("G", "T", q, next + q as u64);
        }
        next += 100;
        o.persist().await.unwrap();
        if d.join(journal::SNAPSHOT).exists() || round == 9 {
            break;
        }
    }
    next - 100
}

#[test]
fn compaction_writes_a_snapshot_and_retires_the_journal() {
    with_dir(|d| async move {
        let o = ConsumerOffsets::load(&d);
        o.set_compact_min_bytes(0);
        let last = fill_until_compaction(&o, &d).await;
        let snap = snapshot_json(&d);
        assert_eq!(snap["journalGeneration"], 2);
        assert_eq!(snap["offsetTable"]["T@G"]["3"], last + 3, "RocketMQ's shape");
        let files = journal_files(&d);
        assert_eq!(files, vec![(journal::journal_name(2), HEADER_LEN as u64)]);
        o.commit("G", "T", 0, 1);
        o.persist().await.unwrap();
        drop(o);
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 0), Some(1));
        assert_eq!(o.get("G", "T", 7), Some(last + 7));
    });
}

#[test]
fn a_crash_between_compaction_steps_loses_nothing() {
    for crash in [Step::JournalCreated, Step::SnapshotRenamed] {
        with_dir(move |d| async move {
            let o = ConsumerOffsets::load(&d);
            o.set_compact_min_bytes(0);
            o.set_crash_after(Some(crash));
            let last = fill_until_compaction(&o, &d).await;
            if crash == Step::JournalCreated {
                assert!(!d.join(journal::SNAPSHOT).exists());
                // A snapshot temp file the crash left behind is ignored.
                std::fs::write(d.join(format!("{}.tmp", journal::SNAPSHOT)), b"{\"offsetTa").unwrap();
            }
            assert_eq!(journal_files(&d).len(), 2, "{crash:?}: old and new journal");
            drop(o); // the crash
            let o = ConsumerOffsets::load(&d);
            for q in 0..8 {
                assert_eq!(o.get("G", "T", q), Some(last + q as u64), "{crash:?} queue {q}");
            }
            if crash == Step::SnapshotRenamed {
                assert_eq!(journal_files(&d).len(), 1, "the stale journal is deleted at load");
            }
            // The table keeps working and compacts fully later.
            o.set_compact_min_bytes(0);
            let last = fill_until_compaction(&o, &d).await;
            drop(o);
            let o = ConsumerOffsets::load(&d);
            assert_eq!(o.get("G", "T", 5), Some(last + 5));
            assert_eq!(journal_files(&d).len(), 1);
        });
    }
}

#[test]
fn a_failed_compaction_keeps_appending_where_replay_looks() {
    // Stopping after the rename without retiring the old journal (as a
    // failed unlink would) must switch appends to the new journal.
    with_dir(|d| async move {
        let o = ConsumerOffsets::load(&d);
        o.set_compact_min_bytes(0);
        o.set_crash_after(Some(Step::SnapshotRenamed));
        fill_until_compaction(&o, &d).await;
        o.set_crash_after(None);
        o.set_compact_min_bytes(1 << 30);
        o.commit("G", "T", 0, 424242);
        o.persist().await.unwrap();
        drop(o);
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 0), Some(424242));
    });
}

#[test]
fn the_journal_stays_bounded() {
    with_dir(|d| async move {
        let o = ConsumerOffsets::load(&d);
        let min = 4096;
        o.set_compact_min_bytes(min);
        let rec = journal::record_len("G", "T") as u64;
        for i in 0..3000u64 {
            o.commit("G", "T", (i % 3) as u32, i);
            o.persist().await.unwrap();
            let total: u64 = journal_files(&d).iter().map(|(_, l)| l).sum();
            // max(min, 2 × live) plus one persist (at most every entry).
            assert!(total <= min + 3 * rec, "journal {total} bytes after {i} persists");
        }
        drop(o);
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 2), Some(2999));
        assert_eq!(o.get("G", "T", 1), Some(2998));
        assert_eq!(o.get("G", "T", 0), Some(2997));
    });
}

#[test]
fn the_table_is_bounded() {
    with_dir(|d| async move {
        let o = ConsumerOffsets::load(&d);
        o.set_max_entries(3);
        assert!(o.commit("G", "T", 0, 1));
        assert!(o.commit("G", "T", 1, 1));
        assert!(o.commit("H", "T", 0, 1));
        assert!(!o.commit("H", "T", 1, 1), "a fourth entry is refused");
        assert!(o.commit("G", "T", 0, 2), "existing entries still update");
        assert_eq!(o.get("H", "T", 1), None);
        assert_eq!(o.snapshot().len(), 3);
    });
}

#[test]
fn a_rocketmq_snapshot_without_journals_loads() {
    with_dir(|d| async move {
        std::fs::write(
            d.join(journal::SNAPSHOT),
            br#"{"offsetTable":{"T@G":{"0":12,"3":4}},"dataVersion":{"counter":1}}"#,
        )
        .unwrap();
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 0), Some(12));
        assert_eq!(o.get("G", "T", 3), Some(4));
        o.commit("G", "T", 0, 13);
        o.persist().await.unwrap();
        drop(o);
        let o = ConsumerOffsets::load(&d);
        assert_eq!(o.get("G", "T", 0), Some(13));
        assert_eq!(o.get("G", "T", 3), Some(4));
    });
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = journal::encode_header(1).to_vec();
        bytes.extend_from_slice(&tail);
        let d = journal::decode_journal(&bytes).unwrap();
        prop_assert!(d.valid_len <= bytes.len());
    }

    #[test]
    fn records_round_trip(recs in proptest::collection::vec(("[a-zA-Z%|_-]{1,40}", "[a-zA-Z%_-]{1,40}", any::<u32>(), any::<u64>()), 0..20), cut in 0usize..64) {
        let mut bytes = journal::encode_header(7).to_vec();
        for (g, t, q, o) in &recs {
            journal::encode_record(&mut bytes, g, t, *q, *o);
        }
        let d = journal::decode_journal(&bytes).unwrap();
        prop_assert_eq!(d.generation, 7);
        prop_assert!(d.torn.is_none());
        prop_assert_eq!(d.records.len(), recs.len());
        for (r, (g, t, q, o)) in d.records.iter().zip(&recs) {
            prop_assert_eq!((&*r.group, &*r.topic, r.queue, r.offset), (g.as_str(), t.as_str(), *q, *o));
        }
        // Any cut inside the last record drops exactly that record.
        if let Some((g, t, _, _)) = recs.last() {
            let last = journal::record_len(g, t);
            let cut = 1 + cut % last;
            let d = journal::decode_journal(&bytes[..bytes.len() - cut]).unwrap();
            prop_assert_eq!(d.records.len(), recs.len() - 1);
            prop_assert!(d.torn.is_some() || cut == last);
        }
    }
}

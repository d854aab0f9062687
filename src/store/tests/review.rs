//! Regression tests for the findings of the storage review.

use super::*;

struct ScriptedUsage(std::rc::Rc<std::cell::Cell<u8>>);
impl retention::DiskUsage for ScriptedUsage {
    fn used_percent_after(&self, _extra: u64) -> Result<u8, StoreError> {
        Ok(self.0.get())
    }
}

/// R1: disk-full retention deletes the segment that holds the last stored
/// checkpoint's log_pos; after a crash, recovery refuses the first record of
/// the next segment and then *hole-punches* every acknowledged record.
#[test]
fn review_retention_with_stale_checkpoint_wipes_acked_data() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked = run_on_executor("w", {
        let d = d.clone();
        move || async move {
            let mut c = cfg(&d, FlushMode::Sync);
            c.disk_full_policy = DiskFullPolicy::DeleteOldest;
            let (store, _) = MessageStore::open(c).await.unwrap();
            let mut n = 0u64;
            // fill most of segment 0
            while store.log().write_pos() < 200 * 1024 {
                assert_eq!(
                    store.put(msg("T", 0, body_of(n as usize, 3000), None)).await.status,
                    PutStatus::Ok
                );
                n += 1;
            }
            store.checkpoint().await.unwrap(); // log_pos inside segment 0
                                               // roll into segment 1 and keep going (all acked, SYNC)
            while store.log().write_pos() < 256 * 1024 + 100 * 1024 {
                assert_eq!(
                    store.put(msg("T", 0, body_of(n as usize, 3000), None)).await.status,
                    PutStatus::Ok
                );
                n += 1;
            }
            // disk fills up: retention deletes segment 0 (sealed, flushed)
            let usage = std::rc::Rc::new(std::cell::Cell::new(97u8));
            store.set_disk_usage_probe(Box::new(ScriptedUsage(usage.clone())));
            let deleted = retention::clean_once(&store).await.unwrap();
            assert_eq!(deleted, 1);
            let (min, max) = store.offsets("T", 0).unwrap();
            eprintln!("before crash: offsets [{min}, {max}), acked {n}");
            n // crash here: no further checkpoint
        }
    });
    let (min, max, report) = run_on_executor("r", move || async move {
        let (store, report) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let (min, max) = store.offsets("T", 0).unwrap_or((0, 0));
        let r = store
            .get_messages("T", 0, 0, 32, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        assert_eq!((r.status, r.next_offset), (GetStatus::OffsetTooSmall, min));
        assert_eq!(read_all(&store, "T", 0).await.len() as u64, max - min);
        (min, max, report)
    });
    eprintln!("after recovery: offsets [{min}, {max}); report {:?}", report.stop);
    assert_eq!(max, acked, "acknowledged SYNC_FLUSH messages were lost by recovery");
}

/// R2: the periodic checkpoint racing a second checkpoint (shutdown does
/// exactly this) stores log_pos from the older snapshot with queue marks from
/// the newer one; recovery then refuses valid records and wipes the tail.
#[test]
fn review_concurrent_checkpoints_store_inconsistent_checkpoint() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked_y = run_on_executor("w", {
        let d = d.clone();
        move || async move {
            let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
            for i in 0..10 {
                store.put(msg("X", 0, body_of(i, 500), None)).await;
                store.put(msg("Y", 0, body_of(i, 500), None)).await;
            }
            // A: the periodic checkpoint, suspended in its first consume-queue write
            let mut a = Box::pin(store.checkpoint());
            let first = futures::poll!(a.as_mut());
            assert!(first.is_pending(), "A must suspend for this test");
            // more acked appends to Y
            for i in 10..30 {
                assert_eq!(
                    store.put(msg("Y", 0, body_of(i, 500), None)).await.status,
                    PutStatus::Ok
                );
            }
            // B (e.g. shutdown()'s checkpoint) starts while A is suspended:
            // it must wait for A, so B's checkpoint is stored last.
            let (ra, rb) = futures::future::join(a, store.checkpoint()).await;
            ra.unwrap();
            rb.unwrap();
            let ck = checkpoint::Checkpoint::load(&d).unwrap().unwrap();
            eprintln!("stored checkpoint: log_pos {} queues {:?}", ck.log_pos, ck.queues);
            assert_eq!(
                ck.log_pos,
                store.flushed_log_offset(),
                "the last stored checkpoint is B's"
            );
            let y = ck.queues.iter().find(|q| q.topic == "Y").unwrap();
            assert_eq!(y.max_offset, 30);
            store.offsets("Y", 0).unwrap().1 // crash
        }
    });
    let (max_y, report) = run_on_executor("r", move || async move {
        let (store, report) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        eprintln!("log end after recovery {}", store.log().write_pos());
        // new appends land where Y's acked records 10..29 used to be
        for i in 100..110 {
            store.put(msg("X", 0, body_of(i, 500), None)).await;
        }
        let r5 = store
            .get_messages("Y", 0, 10, 5, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        let got: Vec<String> = records(&r5.body)
            .iter()
            .map(|(o, b)| format!("qo={o} body={}", String::from_utf8_lossy(&b[..5])))
            .collect();
        eprintln!("pull Y@10 max 5 -> {:?} {:?}", r5.status, got);
        let want: Vec<(u64, Vec<u8>)> = (10..15).map(|i| (i as u64, body_of(i, 500))).collect();
        assert_eq!(records(&r5.body), want, "Y@10 must return Y's own records");
        let r = store.get_messages("Y", 0, 10, 32, 1 << 20, &TagFilter::All).await;
        eprintln!(
            "pull Y@10 after recovery: {:?}",
            r.as_ref().map(|r| (r.status, r.count)).map_err(|e| e.to_string())
        );
        assert_eq!(r.unwrap().count, 20);
        assert!(report
            .stop
            .as_ref()
            .is_none_or(|s| s.kind != recovery::StopKind::MidLogCorruption));
        (store.offsets("Y", 0).map_or(0, |o| o.1), report)
    });
    eprintln!("Y acked {acked_y}, recovered {max_y}; stop {:?}", report.stop);
    assert_eq!(max_y, acked_y, "acked messages lost after an inconsistent checkpoint");
}

/// R3: entries() reads the file part, awaits, then takes the rest from memory
/// with filter_map; a checkpoint in between drops mem entries and the result
/// has a gap, which get_messages labels with consecutive offsets.
#[test]
fn review_get_messages_gap_when_checkpoint_runs_during_file_read() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        for i in 0..20 {
            store.put(msg("T", 0, body_of(i, 200), None)).await;
        }
        store.checkpoint().await.unwrap(); // written 20, mem_base 16
        for i in 20..40 {
            store.put(msg("T", 0, body_of(i, 200), None)).await;
        }
        let mut g = Box::pin(store.get_messages("T", 0, 10, 32, 1 << 20, &TagFilter::All));
        assert!(
            futures::poll!(g.as_mut()).is_pending(),
            "get must suspend in the file read"
        );
        store.checkpoint().await.unwrap(); // written 40, mem_base 36
        let r = g.await.unwrap();
        let recs = records(&r.body);
        let real: Vec<u64> = recs.iter().map(|(o, _)| *o).collect();
        eprintln!("labelled {:?} next {}; real {:?}", r.offsets, r.next_offset, real);
        assert_eq!(r.offsets, real, "offsets reported for the records are wrong");
        store.shutdown().await.unwrap();
    });
}

/// R4: clean_tail only looks 16 MiB past the end for stale bytes. Data of a
/// partially landed big flush beyond that survives and is resurrected once
/// new records (same size, same queue) reach it.
#[test]
fn review_stale_data_beyond_16mib_is_resurrected() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let mk = |d: &Path| {
        let mut c = cfg(d, FlushMode::Sync);
        c.segment_size = 64 << 20;
        c.tail_cache_bytes = 8 << 20;
        c
    };
    let size = 32 * 1024 - 104; // records of exactly 32 KiB: block-aligned ends
                                // incarnation 1: ~24 MiB of records, then "power loss" loses the first
                                // 18 MiB after record 100 (simulated by zeroing them).
    let pos = run_on_executor("w1", {
        let d = d.clone();
        move || async move {
            let (store, _) = MessageStore::open(mk(&d)).await.unwrap();
            let mut pos = Vec::new();
            for i in 0..760 {
                let r = store.put(msg("T", 0, body_of(i, size), None)).await;
                pos.push(r.positions[0].log_offset().0);
            }
            pos
        }
    });
    let x = pos[100];
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(seg_path(&d, 0)).unwrap();
        f.write_all_at(&vec![0u8; 18 << 20], x).unwrap();
        f.sync_all().unwrap();
    }
    // incarnation 2: recovers 100 records, appends 600 new ones, shuts down cleanly
    run_on_executor("w2", {
        let d = d.clone();
        move || async move {
            let (store, rep) = MessageStore::open(mk(&d)).await.unwrap();
            eprintln!(
                "recovered end {} stop {:?}",
                store.log().write_pos(),
                rep.stop.map(|s| s.kind)
            );
            for i in 0..600 {
                store.put(msg("T", 0, body_of(10_000 + i, size), None)).await;
            }
            eprintln!("max after appends {}", store.max_offset("T", 0));
            store.shutdown().await.unwrap();
        }
    });
    // incarnation 3
    let max = run_on_executor("r", move || async move {
        let (store, rep) = MessageStore::open(mk(&d)).await.unwrap();
        eprintln!("re-dispatched {} records after a CLEAN shutdown", rep.records);
        store.max_offset("T", 0)
    });
    assert_eq!(max, 700, "stale records from incarnation 1 were resurrected");
}

/// H1: a checkpoint that disagrees with the log (here: it claims more
/// entries for a queue than its files hold) is discarded and every queue is
/// rebuilt from the oldest segment; no valid record is truncated.
#[test]
fn checkpoint_disagreeing_with_the_log_is_discarded_and_queues_rebuilt() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked = run_on_executor("w", {
        let d = d.clone();
        move || async move {
            let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
            for i in 0..60 {
                store.put(msg("T", 0, body_of(i, 1500), None)).await;
                store.put(msg("U", 1, body_of(i, 1500), None)).await;
            }
            store.checkpoint().await.unwrap();
            for i in 60..120 {
                store.put(msg("T", 0, body_of(i, 1500), None)).await;
                store.put(msg("U", 1, body_of(i, 1500), None)).await;
            }
            (store.max_offset("T", 0), store.max_offset("U", 1))
        }
    });
    let mut ck = checkpoint::Checkpoint::load(&d).unwrap().unwrap();
    ck.queues.iter_mut().find(|q| q.topic == "U").unwrap().max_offset += 3;
    std::fs::write(d.join(checkpoint::FILE), ck.encode()).unwrap();
    let (n, report) = recover_count(d.clone());
    assert_eq!(n as u64, acked.0, "queue 0 intact");
    assert!(
        report.rebuilt,
        "the checkpoint must be discarded: {:?}",
        report.problems
    );
    assert!(report.stop.is_none_or(|s| s.kind == recovery::StopKind::CleanEnd));
    let q1 = run_on_executor("r", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let got = read_all(&store, "U", 1).await;
        store.shutdown().await.unwrap();
        got
    });
    let want: Vec<(u64, Vec<u8>)> = (0..120).map(|k| (k as u64, body_of(k, 1500))).collect();
    assert_eq!(q1, want);
    assert_eq!(acked.1, 120);
}

/// H1: a checkpoint whose log_pos lies below the oldest segment (its segment
/// was deleted) or whose log_min is inconsistent is discarded, not trusted.
#[test]
fn checkpoint_below_the_oldest_segment_or_with_bad_log_min_is_discarded() {
    for bad_min in [false, true] {
        let dir = tmp();
        let d = dir.path().to_path_buf();
        run_on_executor("w", {
            let d = d.clone();
            move || async move {
                let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
                for i in 0..40 {
                    store.put(msg("T", 0, body_of(i, 3000), None)).await;
                }
                store.checkpoint().await.unwrap(); // log_pos in segment 0
                for i in 40..120 {
                    store.put(msg("T", 0, body_of(i, 3000), None)).await;
                }
            }
        });
        let first_kept = if bad_min {
            let mut ck = checkpoint::Checkpoint::load(&d).unwrap().unwrap();
            ck.log_min = ck.log_pos + 256 * 1024; // above log_pos: impossible
            std::fs::write(d.join(checkpoint::FILE), ck.encode()).unwrap();
            0
        } else {
            std::fs::remove_file(seg_path(&d, 0)).unwrap();
            1
        };
        let (min, max, report) = run_on_executor("r", move || async move {
            let (store, report) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
            let (min, max) = store.offsets("T", 0).unwrap();
            let got = read_all(&store, "T", 0).await;
            for (o, b) in &got {
                assert_eq!(*b, body_of(*o as usize, 3000));
            }
            store.shutdown().await.unwrap();
            (min, max, report)
        });
        assert_eq!(max, 120, "bad_min {bad_min}");
        assert!(report.rebuilt || bad_min, "{:?}", report.problems);
        assert!(
            report.problems.iter().any(|p| p.contains("checkpoint")),
            "{:?}",
            report.problems
        );
        assert_eq!(min > 0, first_kept > 0);
    }
}

/// H3: the reader checks topic, queue id and queue offset of the record a
/// consume-queue entry points at.
#[test]
fn consume_queue_entry_pointing_at_another_queues_record_is_an_error() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("w", {
        let d = d.clone();
        move || async move {
            let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
            for i in 0..10 {
                store.put(msg("X", 0, body_of(i, 300), None)).await;
                store.put(msg("Y", 0, body_of(i, 300), None)).await;
            }
            store.shutdown().await.unwrap();
        }
    });
    let name = position::segment_file_name(0);
    let x = std::fs::read(d.join("consumequeue/X/0").join(&name)).unwrap();
    overwrite(&d.join("consumequeue/Y/0").join(&name), 0, &x[..20]);
    run_on_executor("r", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let r = store.get_messages("Y", 0, 0, 4, 1 << 20, &TagFilter::All).await;
        assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{:?}", r.map(|r| r.count));
        store.shutdown().await.unwrap();
    });
}

/// M1: recovery fdatasyncs the segments its scan covered before the log
/// builds on them.
#[test]
fn recovery_syncs_the_scanned_segments() {
    let dir = tmp();
    write_and_crash(dir.path().to_path_buf(), 120, 3000);
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 120);
    assert!(report.synced_segments >= 2, "synced {}", report.synced_segments);
}

/// M2: a checkpoint that fails after writing consume-queue files keeps them
/// on the dirty list; the next checkpoint syncs them.
#[test]
fn failed_checkpoint_keeps_written_files_dirty_for_the_next_one() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        for i in 0..20 {
            store.put(msg("T", (i % 3) as u32, body_of(i, 200), None)).await;
        }
        std::fs::create_dir(d.join("checkpoint.tmp")).unwrap(); // the store step fails
        assert!(store.checkpoint().await.is_err());
        assert!(
            !store.inner.cq_files.dirty().is_empty(),
            "files written by the failed checkpoint must stay dirty"
        );
        std::fs::remove_dir(d.join("checkpoint.tmp")).unwrap();
        store.checkpoint().await.unwrap();
        assert!(store.inner.cq_files.dirty().is_empty());
        assert_eq!(store.log().checkpointed(), store.flushed_log_offset());
        store.shutdown().await.unwrap();
    });
}

/// M3: segments deleted after the stored checkpoint leave its queue minimums
/// stale; open advances them, and a pull below the retained log answers
/// OFFSET_TOO_SMALL with the queue's min, never an error.
#[test]
fn stale_queue_minimums_after_a_crash_are_advanced() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let (min, max) = run_on_executor("w", {
        let d = d.clone();
        move || async move {
            let mut c = cfg(&d, FlushMode::Sync);
            c.file_reserved_time = Duration::ZERO;
            let (store, _) = MessageStore::open(c).await.unwrap();
            for i in 0..400 {
                store.put(msg("T", (i % 2) as u32, body_of(i, 3000), None)).await;
            }
            store.checkpoint().await.unwrap();
            assert!(retention::clean_once(&store).await.unwrap() >= 2);
            store.offsets("T", 0).unwrap() // crash: the stored checkpoint has min 0
        }
    });
    assert!(min > 0);
    run_on_executor("r", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        assert_eq!(store.offsets("T", 0), Some((min, max)));
        let r = store
            .get_messages("T", 0, 0, 32, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        assert_eq!((r.status, r.next_offset), (GetStatus::OffsetTooSmall, min));
        // Even with a stale min in memory, the pull is not an error.
        {
            let mut qs = store.inner.queues.borrow_mut();
            let i = qs.find("T", 1).unwrap();
            qs.queues[i].min_offset = 0;
        }
        let r = store
            .get_messages("T", 1, 0, 32, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        assert_eq!(r.status, GetStatus::OffsetTooSmall);
        assert!(r.next_offset > 0);
        assert_eq!(store.min_offset("T", 1), r.next_offset);
        store.shutdown().await.unwrap();
    });
}

/// Reports full while this store's directory holds more than `keep`
/// segments or any deleted segment is still open (its space not yet free).
struct SegmentCountUsage {
    dir: PathBuf,
    keep: usize,
}

impl retention::DiskUsage for SegmentCountUsage {
    fn used_percent_after(&self, _extra: u64) -> Result<u8, StoreError> {
        let log = self.dir.join("commitlog");
        let files = std::fs::read_dir(&log).unwrap().count();
        let open_deleted = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .any(|l| l.starts_with(&log) && l.to_string_lossy().ends_with("(deleted)"));
        Ok(if open_deleted || files > self.keep { 97 } else { 50 })
    }
}

/// M4: the disk-full loop measures after the deleted segment's space is
/// really free, so it deletes exactly as many segments as needed.
#[test]
fn disk_full_cleaning_deletes_no_more_segments_than_needed() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = cfg(&d, FlushMode::Sync);
        c.disk_full_policy = DiskFullPolicy::DeleteOldest;
        let (store, _) = MessageStore::open(c).await.unwrap();
        for i in 0..400 {
            store.put(msg("T", 0, body_of(i, 3000), None)).await;
        }
        store.checkpoint().await.unwrap();
        let files = std::fs::read_dir(d.join("commitlog")).unwrap().count();
        store.set_disk_usage_probe(Box::new(SegmentCountUsage {
            dir: d.clone(),
            keep: files - 1,
        }));
        assert_eq!(retention::clean_once(&store).await.unwrap(), 1);
        assert!(!store.is_disk_full());
        store.shutdown().await.unwrap();
    });
}

/// M6: a damaged TOTALSIZE larger than the max record size ends the log
/// there without reading up to a whole segment.
#[test]
fn total_size_above_the_max_record_size_is_invalid() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
    let at = pos[30];
    let base = at - at % (256 * 1024);
    overwrite(&seg_path(dir.path(), base), at - base, &200_000u32.to_be_bytes());
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 30);
    assert_eq!(
        report.stop.map(|s| s.why),
        Some("record size above the maximum record size".to_string())
    );
}

/// Low: in SYNC_FLUSH mode a record is not readable by physical offset
/// before it is durable.
#[test]
fn read_record_in_sync_mode_sees_only_durable_records() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let r = store.put_batch(&[msg("T", 0, body_of(1, 100), None)], false).await;
        assert!(store.flushed_log_offset() < store.log().write_pos());
        assert_eq!(store.read_record(r.positions[0]).await.unwrap(), None);
        while store.flushed_log_offset() < store.log().write_pos() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        assert!(store.read_record(r.positions[0]).await.unwrap().is_some());
        store.shutdown().await.unwrap();
    });
}

/// Low: a batch the tail cache can never hold is illegal, not busy forever.
#[test]
fn batch_larger_than_half_the_tail_cache_is_illegal() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let big: Vec<MessageInput> = (0..9).map(|i| msg("T", 0, body_of(i, 60_000), None)).collect();
        let r = store.put_batch(&big, true).await;
        assert!(
            matches!(r.status, PutStatus::MessageIllegal(ref m) if m.contains("tail cache")),
            "{:?}",
            r.status
        );
        let r = store.put_batch(&big[..4], true).await;
        assert_eq!(r.status, PutStatus::Ok);
        store.shutdown().await.unwrap();
    });
}

/// Low: records of a sealed segment become durable even while the next
/// segment cannot be prepared yet.
#[test]
fn sealed_segment_is_flushed_without_waiting_for_the_next_one() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let blocker = seg_path(&d, 512 * 1024);
        std::fs::create_dir(&blocker).unwrap(); // segment 2 cannot be created
        let mut i = 0;
        while store.log().write_pos() < 256 * 1024 + 200 * 1024 {
            assert_eq!(
                store.put(msg("T", 0, body_of(i, 3000), None)).await.status,
                PutStatus::Ok
            );
            i += 1;
        }
        // Without yielding: records up to the end of segment 1; the one
        // that would go to segment 2 is refused (no file for it yet).
        let mut last_in_1 = 0;
        loop {
            let r = store.put_batch(&[msg("T", 0, body_of(i, 3000), None)], false).await;
            i += 1;
            match r.status {
                PutStatus::Ok => {
                    let p = r.positions[0].log_offset().0;
                    assert!(p < 512 * 1024, "a record was placed in segment 2, which does not exist");
                    last_in_1 = p + 3000;
                }
                PutStatus::Busy | PutStatus::ServiceNotAvailable(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        assert_eq!(
            store.log().wait_durable(last_in_1, deadline).await,
            commit_log::Durability::Durable,
            "the sealed segment's records must not wait for the preparer"
        );
        std::fs::remove_dir(&blocker).unwrap();
        store.shutdown().await.unwrap();
    });
}

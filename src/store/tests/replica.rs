//! Replication at the store: a slave's log built from the master's
//! chunks is the master's, byte for byte, across segment rolls and a
//! reopen; a corrupted or misplaced record is refused before anything is
//! placed; a slave's store refuses puts; SYNC_MASTER appends wait on the
//! replica gate.

use super::*;
use crate::store::replication::ReplicaGate;

/// Copies everything durable on `master` to `slave`, chunk by chunk.
async fn copy_all(master: &MessageStore, slave: &MessageStore, chunk: usize) -> usize {
    let mut pos = slave.write_log_offset();
    let mut chunks = 0;
    while let Some((bytes, next)) = master.log_chunk(pos, chunk).await.expect("chunk") {
        place(slave, pos, &bytes).await;
        pos = next;
        chunks += 1;
    }
    chunks
}

#[test]
fn a_slave_log_built_from_chunks_is_the_masters_across_rolls_and_a_reopen() {
    let (m, s) = (tmp(), tmp());
    let (md, sd) = (m.path().to_path_buf(), s.path().to_path_buf());
    run_on_executor("t", move || async move {
        let (master, _) = MessageStore::open(cfg(&md, FlushMode::Sync)).await.unwrap();
        let (slave, _) = MessageStore::open(cfg(&sd, FlushMode::Sync)).await.unwrap();
        slave.set_slave_of(Some("127.0.0.1:1".into()));
        // ~600 KB over 256 KiB segments: two rolls, BLANKs included.
        for i in 0..200 {
            let r = master
                .put(msg("T", (i % 3) as u32, body_of(i, 3000), Some("TagA")))
                .await;
            assert_eq!(r.status, PutStatus::Ok);
        }
        // Batches roll as a whole: a segment can end before a record that
        // alone would have fitted.
        let mut early_rolls = 0;
        for b in 0..60 {
            let batch: Vec<_> = (0..8)
                .map(|i| msg("T", 3, body_of(1000 + b * 8 + i, 3000), None))
                .collect();
            let before = master.write_log_offset();
            let r = master.put_batch(&batch, true).await;
            assert_eq!(r.status, PutStatus::Ok);
            let first = r.positions[0].log_offset().0;
            let seg = master.segment_size();
            if first != before && (seg - before % seg) as usize > batch[0].record_size(&localhost(10911)) + 8 {
                early_rolls += 1;
            }
        }
        assert!(early_rolls > 0, "no batch rolled early");
        let chunks = copy_all(&master, &slave, 20_000).await;
        assert!(chunks > 30, "{chunks}");
        assert_eq!(slave.write_log_offset(), master.write_log_offset());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while slave.flushed_log_offset() < slave.write_log_offset() {
            assert!(std::time::Instant::now() < deadline, "the slave never flushed");
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        for q in 0..4 {
            assert_eq!(
                read_all(&slave, "T", q).await,
                read_all(&master, "T", q).await,
                "queue {q}"
            );
        }
        // Nothing more to copy; the slave refuses puts of its own.
        assert!(master
            .log_chunk(slave.write_log_offset(), 20_000)
            .await
            .unwrap()
            .is_none());
        let r = slave.put(msg("T", 0, body_of(0, 10), None)).await;
        assert!(
            matches!(r.status, PutStatus::ServiceNotAvailable(ref m) if m.contains("SLAVE")),
            "{r:?}"
        );
        let want: Vec<_> = {
            let mut v = Vec::new();
            for q in 0..4 {
                v.push(read_all(&master, "T", q).await);
            }
            v
        };
        slave.shutdown().await.unwrap();
        master.shutdown().await.unwrap();
        // Reopened, the copy recovers like any log (physical offsets and
        // queue offsets checked by recovery).
        let (slave, report) = MessageStore::open(cfg(&sd, FlushMode::Sync)).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        for q in 0..4u32 {
            assert_eq!(
                read_all(&slave, "T", q).await,
                want[q as usize],
                "queue {q} after reopen"
            );
        }
        slave.shutdown().await.unwrap();
    });
}

#[test]
fn corrupted_or_misplaced_records_are_refused_before_anything_is_placed() {
    let (m, s) = (tmp(), tmp());
    let (md, sd) = (m.path().to_path_buf(), s.path().to_path_buf());
    run_on_executor("t", move || async move {
        let (master, _) = MessageStore::open(cfg(&md, FlushMode::Sync)).await.unwrap();
        let (slave, _) = MessageStore::open(cfg(&sd, FlushMode::Sync)).await.unwrap();
        for i in 0..3 {
            master.put(msg("T", 0, body_of(i, 500), None)).await;
        }
        let (bytes, _) = master.log_chunk(0, 1 << 20).await.unwrap().unwrap();
        // A flipped body byte fails the record's CRC.
        let mut bad = bytes.clone();
        bad[120] ^= 0xFF;
        let e = slave.replicate(0, &bad, &mut |_, _| {}).unwrap_err();
        assert!(e.contains("log offset 0"), "{e}");
        assert_eq!(slave.write_log_offset(), 0);
        // A record claimed for an offset it was not stored at.
        let e = slave.replicate(64, &bytes, &mut |_, _| {}).unwrap_err();
        assert!(e.contains("log offset 64"), "{e}");
        assert_eq!(slave.write_log_offset(), 0);
        // A slave whose log already holds something else has diverged.
        slave.put(msg("T", 0, body_of(9, 100), None)).await;
        let e = slave.replicate(0, &bytes, &mut |_, _| {}).unwrap_err();
        assert!(e.contains("diverged"), "{e}");
        master.shutdown().await.unwrap();
        slave.shutdown().await.unwrap();
    });
}

#[test]
fn sync_master_appends_wait_for_the_gate() {
    let d = tmp();
    let dp = d.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&dp, FlushMode::Sync)).await.unwrap();
        let gate = ReplicaGate::new();
        store.set_replica_gate(Some(gate.clone()), true);
        // No slave in sync: stored, SLAVE_NOT_AVAILABLE.
        let r = store.put(msg("T", 0, body_of(0, 100), None)).await;
        assert_eq!(r.status, PutStatus::SlaveNotAvailable);
        assert_eq!(read_all(&store, "T", 0).await.len(), 1);
        // In sync: the put completes when the slave acks past it.
        gate.set_in_sync(1);
        let acker = {
            let (store, gate) = (store.clone(), gate.clone());
            glommio::spawn_local(async move {
                while gate.waiting() == 0 {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                gate.set_acked(store.write_log_offset());
            })
        };
        let r = store.put(msg("T", 0, body_of(1, 100), None)).await;
        assert_eq!(r.status, PutStatus::Ok);
        acker.await;
        // WAIT=false does not wait for the slave either.
        let r = store.put_batch(&[msg("T", 0, body_of(2, 100), None)], false).await;
        assert_eq!(r.status, PutStatus::Ok);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn a_new_slave_starts_at_the_masters_oldest_retained_segment() {
    let (m, s, o) = (tmp(), tmp(), tmp());
    let (md, sd, od) = (m.path().to_path_buf(), s.path().to_path_buf(), o.path().to_path_buf());
    run_on_executor("t", move || async move {
        let mut mc = cfg(&md, FlushMode::Sync);
        mc.file_reserved_time = Duration::ZERO;
        let (master, _) = MessageStore::open(mc).await.unwrap();
        for i in 0..400 {
            let r = master.put(msg("T", (i % 2) as u32, body_of(i, 3000), None)).await;
            assert_eq!(r.status, PutStatus::Ok);
        }
        master.checkpoint().await.unwrap();
        assert!(retention::clean_once(&master).await.unwrap() >= 2);
        let to = master.log_min_offset();
        assert!(to >= 2 * master.segment_size(), "oldest retained {to}");

        // Refused, nothing changed: not a slave's store, not a segment base,
        // a store that holds records.
        let (slave, _) = MessageStore::open(cfg(&sd, FlushMode::Sync)).await.unwrap();
        let e = slave.start_log_at(to).await.unwrap_err().to_string();
        assert!(e.contains("not a slave's"), "{e}");
        slave.set_slave_of(Some("127.0.0.1:1".into()));
        let e = slave.start_log_at(to + 1).await.unwrap_err().to_string();
        assert!(e.contains("not a segment base"), "{e}");
        let (other, _) = MessageStore::open(cfg(&od, FlushMode::Sync)).await.unwrap();
        other.put(msg("T", 0, body_of(0, 100), None)).await;
        other.set_slave_of(Some("127.0.0.1:1".into()));
        let e = other.start_log_at(to).await.unwrap_err().to_string();
        assert!(e.contains("only an empty store moves"), "{e}");
        assert_eq!(other.offsets("T", 0), Some((0, 1)));
        other.shutdown().await.unwrap();

        // The empty slave moves and copies the master from there.
        slave.start_log_at(to).await.unwrap();
        assert_eq!((slave.log_min_offset(), slave.write_log_offset()), (to, to));
        copy_all(&master, &slave, 20_000).await;
        assert_eq!(slave.write_log_offset(), master.write_log_offset());
        assert!(slave.wait_written_durable(Duration::from_secs(5)).await);
        let want = [read_all(&master, "T", 0).await, read_all(&master, "T", 1).await];
        for q in 0..2u32 {
            assert_eq!(slave.offsets("T", q), master.offsets("T", q), "queue {q}");
            assert_eq!(read_all(&slave, "T", q).await, want[q as usize], "queue {q}");
        }
        // Moving again is refused now that it holds records.
        let e = slave
            .start_log_at(to + slave.segment_size() * 4)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("only an empty store moves"), "{e}");
        slave.shutdown().await.unwrap();
        master.shutdown().await.unwrap();

        // Reopened, the log is [to, end) and each queue starts where its
        // first replicated record did.
        let (slave, report) = MessageStore::open(cfg(&sd, FlushMode::Sync)).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(slave.log_min_offset(), to);
        for q in 0..2u32 {
            assert_eq!(
                read_all(&slave, "T", q).await,
                want[q as usize],
                "queue {q} after reopen"
            );
            assert_eq!(
                slave.offsets("T", q).map(|o| o.0),
                want[q as usize].first().map(|r| r.0)
            );
        }
        slave.shutdown().await.unwrap();
    });
}

#[test]
fn a_moved_store_that_crashed_before_its_first_record_starts_at_the_new_base() {
    let s = tmp();
    let sd = s.path().to_path_buf();
    let seg = cfg(&sd, FlushMode::Sync).segment_size;
    let to = 3 * seg;
    let d = sd.clone();
    run_on_executor("moves", move || async move {
        let (slave, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        slave.set_slave_of(Some("127.0.0.1:1".into()));
        slave.start_log_at(to).await.unwrap();
        // No shutdown: the executor ends as a kill -9 would.
    });
    for missing_segment in [false, true] {
        if missing_segment {
            // As if killed after the checkpoint, before segment `to` existed.
            let _ = std::fs::remove_file(seg_path(&sd, to));
        }
        let d = sd.clone();
        run_on_executor("reopens", move || async move {
            let (slave, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
            assert_eq!(
                (slave.log_min_offset(), slave.write_log_offset()),
                (to, to),
                "{missing_segment}"
            );
            assert_eq!(slave.log().segment_bases(), vec![to]);
            slave.shutdown().await.unwrap();
        });
    }
    run_on_executor("moves again", move || async move {
        let (slave, _) = MessageStore::open(cfg(&sd, FlushMode::Sync)).await.unwrap();
        slave.set_slave_of(Some("127.0.0.1:1".into()));
        // Still empty: it moves again (the master's retention went on).
        slave.start_log_at(to + seg).await.unwrap();
        assert_eq!(slave.write_log_offset(), to + seg);
        let e = slave.start_log_at(to).await.unwrap_err().to_string();
        assert!(e.contains("past the log's end"), "{e}");
        slave.shutdown().await.unwrap();
    });
}

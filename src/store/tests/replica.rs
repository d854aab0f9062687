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
        let mut at = 0;
        loop {
            match slave
                .replicate(pos + at as u64, &bytes[at..], &mut |_, _| {})
                .expect("replicate")
            {
                Replicate::Done => break,
                Replicate::Partly(n) => {
                    at += n;
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
        }
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

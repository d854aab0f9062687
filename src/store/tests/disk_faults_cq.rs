//! Consume-queue write-behind and the checkpoint on an injected faulty
//! disk: the checkpoint on disk stays the last valid one, no half-written
//! file is trusted, and every acknowledged message is read back — from
//! memory, from the consume-queue files, and after a reopen.

use super::disk_faults::{nth, on_faulty_store, reopen_and_check};
use super::*;
use crate::store::faults::{DiskOp, Fault, FaultRule};

fn stored_checkpoint(d: &Path) -> checkpoint::Checkpoint {
    checkpoint::Checkpoint::load(d)
        .expect("the stored checkpoint is valid")
        .expect("a checkpoint is stored")
}

/// Puts messages `from..to` one by one, each acknowledged.
async fn put_acked(store: &MessageStore, from: usize, to: usize) {
    for i in from..to {
        assert_eq!(store.put(nth(i)).await.status, PutStatus::Ok, "append {i}");
    }
}

/// Every message `0..n` readable, in order, intact.
async fn assert_reads_all(store: &MessageStore, n: usize) {
    let got = read_all(store, "T", 0).await;
    let want: Vec<(u64, Vec<u8>)> = (0..n).map(|i| (i as u64, body_of(i, 3000))).collect();
    assert!(got == want, "read {} of {n} messages back, or not intact", got.len());
}

#[test]
fn failed_consume_queue_write_keeps_the_old_checkpoint_and_is_written_again() {
    for fault in [Fault::Enospc, Fault::ShortWrite, Fault::Eio] {
        let dir = tmp();
        let d = dir.path().to_path_buf();
        on_faulty_store("cq-write", &d, FlushMode::Sync, {
            let d = d.clone();
            move |store, faults| async move {
                put_acked(&store, 0, 30).await;
                store.checkpoint().await.unwrap();
                let before = stored_checkpoint(&d);
                put_acked(&store, 30, 65).await; // 35 entries: a short write ends mid-entry
                faults.add(FaultRule::new(DiskOp::CqWrite, fault));
                let e = store.checkpoint().await.expect_err("a checkpoint over a failed write");
                assert_eq!(e.is_no_space(), fault != Fault::Eio, "{fault:?}: {e}");
                assert_eq!(
                    stored_checkpoint(&d),
                    before,
                    "{fault:?}: the stored checkpoint changed"
                );
                // The CommitLog is not affected, and nothing is lost to readers.
                put_acked(&store, 65, 70).await;
                assert_reads_all(&store, 70).await;
                faults.clear();
                store.checkpoint().await.unwrap();
                let after = stored_checkpoint(&d);
                assert_eq!(after.log_pos, store.flushed_log_offset());
                assert_eq!(after.queues.iter().map(|q| q.max_offset).collect::<Vec<_>>(), [70]);
                // Only the last few entries stay in memory: the rest is read
                // from the files the failed write had left half written.
                assert_reads_all(&store, 70).await;
                store.shutdown().await.unwrap();
            }
        });
        // Reopened from that checkpoint, the queue is read from its files.
        let ids = reopen_and_check(d, (0..70).collect());
        assert_eq!(ids.len(), 70);
    }
}

#[test]
fn crash_after_a_short_consume_queue_write_rebuilds_the_queue_from_the_log() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    on_faulty_store("cq-short", &d, FlushMode::Sync, move |store, faults| async move {
        put_acked(&store, 0, 20).await;
        store.checkpoint().await.unwrap();
        put_acked(&store, 20, 55).await; // 35 entries: the short write ends mid-entry
        faults.add(FaultRule::new(DiskOp::CqWrite, Fault::ShortWrite));
        assert!(store.checkpoint().await.is_err());
        assert_eq!(faults.injected(DiskOp::CqWrite), 1);
        // crash: the consume-queue file ends in half an entry
    });
    run_on_executor("cq-short-2", {
        let d = d.clone();
        move || async move {
            let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
            assert_reads_all(&store, 55).await;
            // The half-written entries are written again, not trusted.
            store.checkpoint().await.unwrap();
            assert_reads_all(&store, 55).await;
            store.shutdown().await.unwrap();
        }
    });
    reopen_and_check(d, (0..55).collect());
}

#[test]
fn failed_consume_queue_fdatasync_stops_checkpoints_until_a_restart() {
    for fault in [Fault::Eio, Fault::Enospc] {
        let dir = tmp();
        let d = dir.path().to_path_buf();
        on_faulty_store("cq-sync", &d, FlushMode::Sync, {
            let d = d.clone();
            move |store, faults| async move {
                put_acked(&store, 0, 30).await;
                store.checkpoint().await.unwrap();
                let before = stored_checkpoint(&d);
                put_acked(&store, 30, 60).await;
                // One failed fdatasync of the consume-queue file.
                faults.add(FaultRule::new(DiskOp::CqSync, fault).times(1));
                assert!(store.checkpoint().await.is_err());
                assert_eq!(faults.injected(DiskOp::CqSync), 1);
                // The disk is healthy again, but the kernel may have dropped
                // the entries it failed to write back and would let the next
                // fdatasync succeed without them: no checkpoint may claim
                // them any more.
                let e = store
                    .checkpoint()
                    .await
                    .expect_err("a checkpoint after a failed fdatasync");
                assert!(e.to_string().contains("until a restart"), "{e}");
                assert_eq!(
                    stored_checkpoint(&d),
                    before,
                    "{fault:?}: a checkpoint vouched for unsynced files"
                );
                // Appends and reads go on.
                put_acked(&store, 60, 70).await;
                assert_reads_all(&store, 70).await;
                assert!(store.shutdown().await.is_err(), "the final checkpoint is refused too");
                assert_eq!(stored_checkpoint(&d), before);
            }
        });
        // A restart rebuilds the queue from the last good checkpoint.
        run_on_executor("cq-sync-2", {
            let d = d.clone();
            move || async move {
                let (store, report) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
                assert!(report.records >= 40, "re-dispatched {} records", report.records);
                assert_reads_all(&store, 70).await;
                store.checkpoint().await.unwrap();
                store.shutdown().await.unwrap();
            }
        });
        reopen_and_check(d, (0..70).collect());
    }
}

#[test]
fn failed_checkpoint_store_keeps_the_old_checkpoint_and_leaves_no_temporary_file() {
    let cases = [
        (DiskOp::CheckpointWrite, Fault::Enospc),
        (DiskOp::CheckpointWrite, Fault::ShortWrite),
        (DiskOp::CheckpointSync, Fault::Enospc),
        (DiskOp::CheckpointSync, Fault::Eio),
    ];
    for (op, fault) in cases {
        let dir = tmp();
        let d = dir.path().to_path_buf();
        on_faulty_store("ckpt", &d, FlushMode::Sync, {
            let d = d.clone();
            move |store, faults| async move {
                put_acked(&store, 0, 20).await;
                store.checkpoint().await.unwrap();
                let before = stored_checkpoint(&d);
                put_acked(&store, 20, 40).await;
                faults.add(FaultRule::new(op, fault));
                for _ in 0..2 {
                    let e = store.checkpoint().await.expect_err("a checkpoint on a failing disk");
                    assert_eq!(e.is_no_space(), fault != Fault::Eio, "{op:?} {fault:?}: {e}");
                    assert_eq!(stored_checkpoint(&d), before, "{op:?} {fault:?}");
                    assert!(
                        !d.join("checkpoint.tmp").exists(),
                        "{op:?} {fault:?}: temporary file left"
                    );
                }
                assert!(faults.injected(op) >= 2);
                // The checkpoint is needed by retention only: appends go on.
                put_acked(&store, 40, 45).await;
                faults.clear();
                store.checkpoint().await.unwrap();
                let after = stored_checkpoint(&d);
                assert_eq!(after.log_pos, store.flushed_log_offset(), "{op:?} {fault:?}");
                assert!(after.log_pos > before.log_pos);
                assert_eq!(store.log().checkpointed(), after.log_pos);
                // crash
            }
        });
        reopen_and_check(d, (0..45).collect());
    }
}

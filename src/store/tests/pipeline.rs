//! The pipelined group commit on a slow injected disk: group N+1 is
//! written while group N's fdatasync runs, is acknowledged only by a sync
//! of its own, and fails with it.

use std::cell::Cell;
use std::rc::Rc;

use super::disk_faults::{nth, on_faulty_store, put_group, reopen_and_check};
use super::*;
use crate::store::faults::{DiskOp, Fault, FaultRule};

const SLOW_MS: u32 = 300;

#[test]
fn the_next_group_is_written_during_a_slow_fdatasync_and_acked_by_its_own() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked = on_faulty_store("pipeline-slow", &d, FlushMode::Sync, move |store, faults| async move {
        assert_eq!(store.put(nth(0)).await.status, PutStatus::Ok);
        faults.add(FaultRule::new(DiskOp::SegmentSync, Fault::Slow(SLOW_MS)).times(1));
        let durable = store.flushed_log_offset();
        let done_a = Rc::new(Cell::new(false));
        let a = {
            let (store, done) = (store.clone(), done_a.clone());
            glommio::spawn_local(async move {
                let r = put_group(&store, 1, 5).await;
                done.set(true);
                r
            })
        };
        glommio::timer::sleep(Duration::from_millis(60)).await;
        let syncs = faults.calls(DiskOp::SegmentSync);
        let writes = faults.calls(DiskOp::SegmentWrite);
        assert_eq!(syncs, 2, "group A's (slow) fdatasync is running");
        let b = {
            let store = store.clone();
            glommio::spawn_local(async move { put_group(&store, 6, 5).await })
        };
        glommio::timer::sleep(Duration::from_millis(60)).await;
        assert!(
            faults.calls(DiskOp::SegmentWrite) > writes,
            "group B is written while A's fdatasync runs"
        );
        assert_eq!(faults.calls(DiskOp::SegmentSync), syncs, "one fdatasync at a time");
        assert!(!done_a.get(), "A waits for its fdatasync");
        assert_eq!(
            store.flushed_log_offset(),
            durable,
            "nothing is durable before the sync ends"
        );
        let t = std::time::Instant::now();
        assert!(a.await.iter().all(|s| *s == PutStatus::Ok));
        assert!(b.await.iter().all(|s| *s == PutStatus::Ok));
        assert!(t.elapsed() < Duration::from_millis(u64::from(SLOW_MS) * 2));
        assert_eq!(
            faults.calls(DiskOp::SegmentSync),
            syncs + 1,
            "B synced by the next fdatasync"
        );
        assert_eq!(store.flushed_log_offset(), store.log().write_pos());
        assert_eq!(store.log().durability_waiters(), 0, "no waiter left queued");
        store.shutdown().await.expect("shutdown");
        (0..11).collect::<Vec<usize>>()
    });
    assert_eq!(reopen_and_check(d, acked).len(), 11);
}

#[test]
fn a_group_written_behind_a_sync_that_then_fails_is_never_acknowledged() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked = on_faulty_store("pipeline-fail", &d, FlushMode::Sync, move |store, faults| async move {
        assert_eq!(store.put(nth(0)).await.status, PutStatus::Ok);
        // A's fdatasync is slow and succeeds; B's, the next, fails.
        faults.add(FaultRule::new(DiskOp::SegmentSync, Fault::Slow(SLOW_MS)).times(1));
        faults.add(FaultRule::new(DiskOp::SegmentSync, Fault::Eio).after(1).times(1));
        let a = {
            let store = store.clone();
            glommio::spawn_local(async move { put_group(&store, 1, 5).await })
        };
        glommio::timer::sleep(Duration::from_millis(60)).await;
        let b = {
            let store = store.clone();
            glommio::spawn_local(async move { put_group(&store, 6, 5).await })
        };
        let a = a.await;
        let b = b.await;
        assert!(a.iter().all(|s| *s == PutStatus::Ok), "{a:?}");
        for s in &b {
            assert!(
                matches!(s, PutStatus::FlushFailed(why) if why.contains("Input/output error")),
                "{s:?}"
            );
        }
        let r = store.put(nth(11)).await;
        assert!(matches!(r.status, PutStatus::FlushFailed(_)), "{:?}", r.status);
        assert!(store.shutdown().await.is_err(), "shutdown reports the failed flush");
        (0..6).collect::<Vec<usize>>()
    });
    let ids = reopen_and_check(d, acked);
    assert!(ids.len() >= 6, "{ids:?}");
}

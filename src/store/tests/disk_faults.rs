//! The CommitLog on an injected faulty disk (see [`super::faults`]): a
//! failed fdatasync, a short write, a full disk while writing or while
//! preparing a segment. Each test checks that nothing unacknowledged is
//! acknowledged, that the store refuses what it cannot keep, and that a
//! reopen finds every acknowledged message intact.

use std::rc::Rc;

use super::*;
use crate::store::faults::{DiskFaults, DiskOp, Fault, FaultRule};

const LEN: usize = 3000;

pub(super) fn fault_cfg(d: &Path, mode: FlushMode, f: &Rc<DiskFaults>) -> StoreConfig {
    let mut c = cfg(d, mode);
    c.sync_flush_timeout = Duration::from_secs(1);
    c.faults = Some(f.clone());
    c
}

/// Runs `f` on an executor of its own over a store opened in `d` on an
/// injected disk (no rule yet), and returns what `f` returns.
pub(super) fn on_faulty_store<T, F, Fut>(name: &str, d: &Path, mode: FlushMode, f: F) -> T
where
    F: FnOnce(MessageStore, Rc<DiskFaults>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    let d = d.to_path_buf();
    run_on_executor(name, move || async move {
        let faults = DiskFaults::new();
        let (store, _) = MessageStore::open(fault_cfg(&d, mode, &faults))
            .await
            .expect("open on the injected disk");
        f(store, faults).await
    })
}

/// Message `i` of queue T/0.
pub(super) fn nth(i: usize) -> MessageInput {
    msg("T", 0, body_of(i, LEN), None)
}

/// Puts messages `from..from + n` concurrently (one flush group) and
/// returns their statuses in order.
pub(super) async fn put_group(store: &MessageStore, from: usize, n: usize) -> Vec<PutStatus> {
    let puts = (from..from + n).map(|i| store.put(nth(i)));
    futures::future::join_all(puts)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// The `i` a body of [`body_of`] was made from.
fn id_of(body: &[u8]) -> usize {
    let end = body.iter().position(|&b| b == b':').expect("a body of body_of");
    std::str::from_utf8(&body[1..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("a body of body_of")
}

/// Reopens the store without faults and checks what it holds: consecutive
/// queue offsets from 0, every record intact and in append order, and every
/// message of `acked` among them. Then checks that the log takes appends.
/// Returns the ids recovered.
pub(super) fn reopen_and_check(d: PathBuf, acked: Vec<usize>) -> Vec<usize> {
    run_on_executor("reopen", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.expect("reopen");
        let got = read_all(&store, "T", 0).await;
        let mut ids = Vec::with_capacity(got.len());
        for (k, (off, body)) in got.iter().enumerate() {
            assert_eq!(*off, k as u64, "queue offsets are consecutive");
            let id = id_of(body);
            assert_eq!(*body, body_of(id, LEN), "message {id} intact");
            assert!(
                ids.last().is_none_or(|&last| last < id),
                "message {id} out of order: {ids:?}"
            );
            ids.push(id);
        }
        for a in &acked {
            assert!(ids.contains(a), "acknowledged message {a} lost; recovered {ids:?}");
        }
        let r = store.put(nth(1_000_000)).await;
        assert_eq!(r.status, PutStatus::Ok, "appends after recovery");
        store.shutdown().await.expect("shutdown after recovery");
        ids
    })
}

fn is_ok(s: &PutStatus) -> bool {
    *s == PutStatus::Ok
}

#[test]
fn failed_fdatasync_in_sync_mode_acknowledges_nothing_and_is_never_retried() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked = on_faulty_store("eio-sync", &d, FlushMode::Sync, move |store, faults| async move {
        let mut acked = Vec::new();
        for i in 0..20 {
            assert_eq!(store.put(nth(i)).await.status, PutStatus::Ok);
            acked.push(i);
        }
        let durable = store.flushed_log_offset();
        let syncs = faults.calls(DiskOp::SegmentSync);
        // One failed fdatasync, then a healthy disk again.
        faults.add(FaultRule::new(DiskOp::SegmentSync, Fault::Eio).times(1));
        let group = put_group(&store, 20, 10).await;
        for (k, s) in group.iter().enumerate() {
            assert!(
                matches!(s, PutStatus::FlushFailed(why) if why.contains("Input/output error")),
                "append {} waiting on the failed fdatasync answered {s:?}",
                20 + k
            );
        }
        assert_eq!(faults.injected(DiskOp::SegmentSync), 1);
        assert_eq!(store.flushed_log_offset(), durable, "nothing became durable");
        assert_eq!(store.max_offset("T", 0), 20, "readers see only durable records");
        // No fsyncgate retry: the disk is healthy now, but what the
        // failed fdatasync covered is unknown. Appends stay refused and
        // no further fdatasync is attempted.
        glommio::timer::sleep(Duration::from_millis(100)).await;
        let r = store.put(nth(30)).await;
        assert!(matches!(r.status, PutStatus::FlushFailed(_)), "{:?}", r.status);
        assert_eq!(faults.calls(DiskOp::SegmentSync), syncs + 1, "fdatasync retried");
        assert!(store.shutdown().await.is_err(), "shutdown reports the failed flush");
        acked
    });
    let ids = reopen_and_check(d, acked);
    assert!(ids.len() >= 20);
}

#[test]
fn failed_background_flush_in_async_mode_refuses_later_appends() {
    for (op, fault) in [(DiskOp::SegmentSync, Fault::Eio), (DiskOp::SegmentWrite, Fault::Eio)] {
        let dir = tmp();
        let d = dir.path().to_path_buf();
        let durable_ids = on_faulty_store("eio-async", &d, FlushMode::Async, move |store, faults| async move {
            // (id, end offset) of every append answered Ok.
            let mut ends = Vec::new();
            for i in 0..20 {
                assert_eq!(store.put(nth(i)).await.status, PutStatus::Ok);
                ends.push((i, store.write_log_offset()));
            }
            faults.add(FaultRule::new(op, fault));
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut i = 20;
            let why = loop {
                let r = store.put(nth(i)).await;
                match r.status {
                    PutStatus::Ok => ends.push((i, store.write_log_offset())),
                    PutStatus::FlushFailed(why) => break why,
                    other => panic!("{op:?}: append {i} answered {other:?}"),
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{op:?} {fault:?}: the failed background flush was never reported"
                );
                i += 1;
                glommio::timer::sleep(Duration::from_millis(2)).await;
            };
            assert!(why.contains("Input/output error"), "{why}");
            assert!(faults.injected(op) >= 1);
            let flushed = store.flushed_log_offset();
            assert!(flushed < store.write_log_offset());
            // Permanent until a restart, even with a healthy disk.
            faults.clear();
            glommio::timer::sleep(Duration::from_millis(50)).await;
            let r = store.put(nth(i)).await;
            assert!(matches!(r.status, PutStatus::FlushFailed(_)), "{:?}", r.status);
            assert_eq!(store.flushed_log_offset(), flushed);
            assert!(store.shutdown().await.is_err());
            // What was flushed before the failure must survive.
            ends.iter()
                .filter(|(_, end)| *end <= flushed)
                .map(|(i, _)| *i)
                .collect::<Vec<_>>()
        });
        reopen_and_check(d, durable_ids);
    }
}

#[test]
fn short_segment_write_is_rewritten_and_acknowledged_only_once_durable() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked = on_faulty_store("short-write", &d, FlushMode::Sync, move |store, faults| async move {
        let mut acked = Vec::new();
        for i in 0..10 {
            assert_eq!(store.put(nth(i)).await.status, PutStatus::Ok);
            acked.push(i);
        }
        // One short write: the flusher writes the range again.
        faults.add(FaultRule::new(DiskOp::SegmentWrite, Fault::ShortWrite).times(1));
        let group = put_group(&store, 10, 8).await;
        assert!(group.iter().all(is_ok), "{group:?}");
        assert_eq!(faults.injected(DiskOp::SegmentWrite), 1);
        assert_eq!(store.flushed_log_offset(), store.write_log_offset());
        acked.extend(10..18);
        // Short writes that keep coming: nothing more is acknowledged,
        // and new appends are refused with the reason.
        faults.add(FaultRule::new(DiskOp::SegmentWrite, Fault::ShortWrite));
        let durable = store.flushed_log_offset();
        let group = put_group(&store, 18, 8).await;
        assert!(
            group.iter().all(|s| *s == PutStatus::FlushDiskTimeout),
            "appends on a disk that writes short: {group:?}"
        );
        assert_eq!(store.flushed_log_offset(), durable);
        let r = store.put(nth(26)).await;
        assert!(
            matches!(&r.status, PutStatus::ServiceNotAvailable(why) if why.contains("short write")),
            "{:?}",
            r.status
        );
        assert!(faults.injected(DiskOp::SegmentWrite) > 2, "the flusher retries");
        acked // crash: the short-written prefix stays on disk
    });
    // Recovery ends at the last acknowledged record or later, never before.
    let ids = reopen_and_check(d, acked);
    assert!(ids.len() >= 18 && ids.len() <= 26, "{ids:?}");
}

#[test]
fn full_disk_on_segment_write_refuses_appends_and_resumes_when_space_returns() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let acked = on_faulty_store("enospc-write", &d, FlushMode::Sync, move |store, faults| async move {
        let mut acked: Vec<usize> = (0..10).collect();
        for &i in &acked {
            assert_eq!(store.put(nth(i)).await.status, PutStatus::Ok);
        }
        faults.add(FaultRule::new(DiskOp::SegmentWrite, Fault::Enospc));
        let group = put_group(&store, 10, 5).await;
        assert!(
            group.iter().all(|s| *s == PutStatus::FlushDiskTimeout),
            "appends that cannot be written: {group:?}"
        );
        let r = store.put(nth(15)).await;
        assert!(
            matches!(&r.status, PutStatus::ServiceNotAvailable(why) if why.contains("No space left on device")),
            "{:?}",
            r.status
        );
        assert!(r.positions.is_empty(), "a refused append is not stored");
        // Space returns: the stalled records are written, appends resume.
        faults.clear();
        put_until_accepted(&store, 15).await;
        assert_eq!(store.flushed_log_offset(), store.write_log_offset());
        acked.extend(10..16);
        store.shutdown().await.unwrap();
        acked
    });
    // The appends that timed out were stored and are durable now.
    let ids = reopen_and_check(d, acked.clone());
    assert_eq!(ids[..acked.len()], acked[..]);
}

#[test]
fn full_disk_on_segment_prepare_refuses_appends_leaves_no_file_and_resumes() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    // A new store that cannot prepare its first segment does not open.
    let failed = run_on_executor("enospc-first", {
        let d = d.clone();
        move || async move {
            let faults = DiskFaults::new();
            faults.add(FaultRule::new(DiskOp::SegmentPrepare, Fault::Enospc));
            match MessageStore::open(fault_cfg(&d, FlushMode::Sync, &faults)).await {
                Ok(_) => panic!("a store without its first segment opened"),
                Err(e) => e.is_no_space(),
            }
        }
    });
    assert!(failed, "the refusal is classified as a full disk");
    assert!(
        !seg_path(&d, 0).exists(),
        "a half-prepared first segment was left behind"
    );
    let acked = on_faulty_store("enospc-prepare", &d, FlushMode::Sync, {
        let d = d.clone();
        move |store, faults| async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while store.log().segment_bases().len() < 2 {
                assert!(std::time::Instant::now() < deadline, "second segment not prepared");
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            faults.add(FaultRule::new(DiskOp::SegmentPrepare, Fault::Enospc));
            let mut acked = Vec::new();
            let mut i = 0;
            let why = loop {
                let r = store.put(nth(i)).await;
                match r.status {
                    PutStatus::Ok => acked.push(i),
                    PutStatus::ServiceNotAvailable(why) => break why,
                    PutStatus::Busy => glommio::timer::sleep(Duration::from_millis(5)).await,
                    other => panic!("append {i} answered {other:?}"),
                }
                i += 1;
                assert!(i < 400, "appends never refused");
            };
            assert!(
                why.contains("cannot be prepared") && why.contains("No space left on device"),
                "{why}"
            );
            assert!((acked.len() * LEN) < 2 * 256 * 1024);
            assert!(faults.injected(DiskOp::SegmentPrepare) >= 1);
            // The file whose fallocate failed was removed again.
            assert!(
                !seg_path(&d, 2 * 256 * 1024).exists(),
                "half-prepared segment left behind"
            );
            faults.clear();
            put_until_accepted(&store, i).await;
            acked.push(i);
            store.shutdown().await.unwrap();
            acked
        }
    });
    let ids = reopen_and_check(d, acked.clone());
    assert_eq!(ids, acked);
}

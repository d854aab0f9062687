//! Retention by age and by disk use.

use super::*;
use crate::store::ReadOnlyReason;

#[test]
fn retention_deletes_expired_segments_and_moves_min_offsets() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let mut c = cfg(&d, FlushMode::Sync);
        c.file_reserved_time = Duration::ZERO;
        let (store, _) = MessageStore::open(c).await.unwrap();
        for i in 0..400 {
            store.put(msg("T", (i % 2) as u32, body_of(i, 3000), None)).await;
        }
        store.checkpoint().await.unwrap();
        let before = store.log().segment_bases().len();
        let deleted = retention::clean_once(&store).await.unwrap();
        assert!(deleted >= 2, "deleted {deleted} of {before}");
        assert_eq!(store.log().segment_bases().len(), before - deleted);
        let (min, max) = store.offsets("T", 0).unwrap();
        assert!(min > 0 && max == 200, "min {min} max {max}");
        let r = store
            .get_messages("T", 0, 0, 32, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        assert_eq!((r.status, r.next_offset), (GetStatus::OffsetTooSmall, min));
        let got = read_all(&store, "T", 0).await;
        assert_eq!(got.first().map(|g| g.0), Some(min));
        assert_eq!(got.len() as u64, 200 - min);
        store.shutdown().await.unwrap();
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        assert_eq!(store.offsets("T", 0), Some((min, 200)), "min offsets survive a restart");
        store.shutdown().await.unwrap();
    });
}

#[test]
fn full_disk_refuses_appends_and_resumes_below_the_ratio() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let usage = std::rc::Rc::new(std::cell::Cell::new(97u8));
        store.set_disk_usage_probe(Box::new(FixedUsage(usage.clone())));
        for i in 0..5 {
            store.put(msg("T", 0, body_of(i, 100), None)).await;
        }
        retention::clean_once(&store).await.unwrap();
        assert!(store.is_disk_full());
        assert_eq!(store.read_only().map(|r| r.0), Some(ReadOnlyReason::DiskFull));
        let r = store.put(msg("T", 0, body_of(9, 100), None)).await;
        assert!(matches!(r.status, PutStatus::ServiceNotAvailable(ref m) if m.contains("diskMaxUsedSpaceRatio")));
        usage.set(50);
        retention::clean_once(&store).await.unwrap();
        assert!(!store.is_disk_full());
        assert_eq!(store.read_only(), None);
        assert_eq!(
            store.put(msg("T", 0, body_of(9, 100), None)).await.status,
            PutStatus::Ok
        );
        store.shutdown().await.unwrap();
    });
}

/// The default `diskFullPolicy=reject`: a full disk refuses appends and
/// deletes nothing that has not expired, however full it stays; every
/// acknowledged message stays readable.
#[test]
fn full_disk_with_the_default_policy_deletes_nothing_unexpired() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let c = cfg(&d, FlushMode::Sync);
        assert_eq!(c.disk_full_policy, DiskFullPolicy::Reject);
        let (store, _) = MessageStore::open(c).await.unwrap();
        let mut acked = 0;
        while store.log().write_pos() < 3 * 256 * 1024 {
            assert_eq!(
                store.put(msg("T", 0, body_of(acked, 3000), None)).await.status,
                PutStatus::Ok
            );
            acked += 1;
        }
        store.checkpoint().await.unwrap();
        let segments = store.log().segment_bases();
        store.set_disk_usage_probe(Box::new(FixedUsage(std::rc::Rc::new(std::cell::Cell::new(99)))));
        for _ in 0..3 {
            assert_eq!(retention::clean_once(&store).await.unwrap(), 0);
        }
        assert!(store.is_disk_full());
        assert_eq!(store.log().segment_bases(), segments, "a segment was deleted");
        assert_eq!(store.forced_deletions(), 0);
        let r = store.put(msg("T", 0, body_of(acked, 3000), None)).await;
        assert!(matches!(r.status, PutStatus::ServiceNotAvailable(ref m) if m.contains("diskMaxUsedSpaceRatio")));
        let got = read_all(&store, "T", 0).await;
        assert_eq!(got.len(), acked);
        store.shutdown().await.unwrap();
    });
}

/// Use below the ratio now, above it with one more segment.
struct NextSegmentWouldFill(std::rc::Rc<std::cell::Cell<u8>>);

impl retention::DiskUsage for NextSegmentWouldFill {
    fn used_percent_after(&self, extra: u64) -> Result<u8, StoreError> {
        Ok(if extra > 0 { self.0.get() } else { 80 })
    }
}

/// The write path catches a filling disk between retention passes: the
/// preparer will not allocate a segment that takes use above the ratio,
/// so appends are refused (with the reason) when the current segments are
/// full, and resume once the next segment fits.
#[test]
fn a_segment_that_would_overfill_the_disk_is_not_allocated() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let after = std::rc::Rc::new(std::cell::Cell::new(97u8));
        store.set_disk_usage_probe(Box::new(NextSegmentWouldFill(after.clone())));
        let mut acked = 0;
        let why = loop {
            let r = store.put(msg("T", 0, body_of(acked, 3000), None)).await;
            match r.status {
                PutStatus::Ok => acked += 1,
                PutStatus::Busy => glommio::timer::sleep(Duration::from_millis(5)).await,
                PutStatus::ServiceNotAvailable(why) => break why,
                other => panic!("unexpected {other:?}"),
            }
            assert!(acked < 1000, "never refused");
        };
        assert!(why.contains("diskMaxUsedSpaceRatio"), "{why}");
        assert!(!store.is_disk_full(), "use itself is below the ratio");
        // A segment refused for space is a full disk too.
        assert_eq!(store.read_only().map(|r| r.0), Some(ReadOnlyReason::DiskFull));
        // At most the segments prepared before the probe was set are used.
        assert!((acked as u64) * 3000 <= 2 * 256 * 1024, "{acked}");
        after.set(85);
        put_until_accepted(&store, acked).await;
        acked += 1;
        assert_eq!(store.read_only(), None);
        assert_eq!(read_all(&store, "T", 0).await.len(), acked);
        store.shutdown().await.unwrap();
    });
}

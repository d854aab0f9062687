//! Retention by age and by disk use.

use super::*;

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
        let r = store.put(msg("T", 0, body_of(9, 100), None)).await;
        assert!(matches!(r.status, PutStatus::ServiceNotAvailable(ref m) if m.contains("diskMaxUsedSpaceRatio")));
        usage.set(50);
        retention::clean_once(&store).await.unwrap();
        assert!(!store.is_disk_full());
        assert_eq!(
            store.put(msg("T", 0, body_of(9, 100), None)).await.status,
            PutStatus::Ok
        );
        store.shutdown().await.unwrap();
    });
}

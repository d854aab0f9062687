//! Crash recovery with injected faults: torn writes, zeroed blocks, short
//! segments, CRC flips.

use super::*;

#[test]
fn crash_without_checkpoint_recovers_everything_acked() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 120, 3000);
    // Only the checkpoint written at open: recovery scans the whole log.
    let ckpt = checkpoint::Checkpoint::load(dir.path())
        .unwrap()
        .expect("initial checkpoint");
    assert_eq!(ckpt.log_pos, 0);
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 120);
    assert_eq!(report.records, 120);
    assert_eq!(report.stop.map(|s| s.kind), Some(recovery::StopKind::CleanEnd));
    assert!(pos.len() == 120);
}

#[test]
fn torn_write_at_arbitrary_bytes_recovers_to_last_valid_record() {
    for (k, cut) in [(10usize, 1u64), (10, 40), (25, 500), (39, 2999)] {
        let dir = tmp();
        let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
        // Garbage from `cut` bytes into record k to the end of its block+1.
        let at = pos[k] + cut;
        let base = at - at % (256 * 1024);
        let garbage: Vec<u8> = (0..5000).map(|i| (i * 7 + 3) as u8).collect();
        let room = (base + 256 * 1024 - at).min(garbage.len() as u64) as usize;
        overwrite(&seg_path(dir.path(), base), at - base, &garbage[..room]);
        let (n, report) = recover_count(dir.path().to_path_buf());
        assert_eq!(n, k, "torn at record {k} byte {cut}");
        let stop = report.stop.expect("stop info");
        assert_ne!(stop.kind, recovery::StopKind::CleanEnd);
        // A second restart must not resurrect anything past the new end.
        let (n2, _) = recover_count(dir.path().to_path_buf());
        assert_eq!(n2, k + 1, "the append after the first recovery is kept, nothing else");
    }
}

#[test]
fn zeroed_block_in_the_middle_is_reported_as_corruption() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
    let at = pos[20] + 100; // inside record 20
    let block = at - at % 4096;
    let base = at - at % (256 * 1024);
    overwrite(&seg_path(dir.path(), base), block - base, &[0u8; 4096]);
    let first_bad = pos.iter().position(|&p| p + 3100 > block).unwrap();
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, first_bad);
    let stop = report.stop.expect("stop info");
    assert_eq!(stop.kind, recovery::StopKind::MidLogCorruption);
    assert!(stop.file.ends_with(position::segment_file_name(base)));
}

#[test]
fn crc_flip_in_a_body_ends_the_log_before_it() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
    let at = pos[33] + 200; // a body byte of record 33
    let base = at - at % (256 * 1024);
    let mut b = [0u8; 1];
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(seg_path(dir.path(), base)).unwrap();
        f.read_exact_at(&mut b, at - base).unwrap();
    }
    overwrite(&seg_path(dir.path(), base), at - base, &[b[0] ^ 0x10]);
    let (n, report) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 33);
    assert_eq!(report.stop.map(|s| s.why), Some("body CRC mismatch".to_string()));
}

#[test]
fn short_segment_recovers_to_its_last_complete_record() {
    let dir = tmp();
    let pos = write_and_crash(dir.path().to_path_buf(), 40, 3000);
    let last_base = pos[39] - pos[39] % (256 * 1024);
    let cut = pos[37] + 1234;
    assert_eq!(
        cut - cut % (256 * 1024),
        last_base,
        "test needs records 37..39 in the last segment"
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(seg_path(dir.path(), last_base))
        .unwrap();
    f.set_len(cut - last_base).unwrap();
    drop(f);
    let (n, _) = recover_count(dir.path().to_path_buf());
    assert_eq!(n, 37);
}

#[test]
fn a_segment_that_cannot_be_prepared_refuses_appends_until_it_can() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("unpreparable", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Async)).await.unwrap();
        // Segments 0 and 1 exist (the active one and the one prepared
        // ahead). Take the directory away: no further segment can be made.
        // Only once the preparer is idle: glommio 0.9's DmaFile::open
        // statfs()s the path after opening it and panics if it vanished.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.log().segment_bases().len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the segment after the first was not prepared within 10 s"
            );
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        let log_dir = d.join("commitlog");
        let moved = d.join("commitlog.away");
        std::fs::rename(&log_dir, &moved).unwrap();
        // Writable while the active segment has room.
        assert_eq!(store.read_only(), None);
        let mut acked = 0usize;
        let mut refused = None;
        for i in 0..400 {
            let r = store.put(msg("T", 0, body_of(i, 3000), None)).await;
            match r.status {
                PutStatus::Ok => acked += 1,
                PutStatus::ServiceNotAvailable(why) => {
                    refused = Some(why);
                    break;
                }
                PutStatus::Busy => glommio::timer::sleep(Duration::from_millis(5)).await,
                other => panic!("unexpected {other:?} after {acked} appends"),
            }
        }
        let why = refused.expect("appends never refused although no segment can be prepared");
        assert!(why.contains("cannot be prepared"), "{why}");
        let (reason, detail) = store.read_only().expect("read-only once appends are refused");
        assert_eq!(reason, crate::store::ReadOnlyReason::SegmentUnavailable, "{detail}");
        // Everything acknowledged fits the two segments that exist: it was
        // acknowledged into a segment file, not only into memory.
        assert!((acked as u64) * 3000 < 2 * 256 * 1024, "{acked} acked");
        assert!(acked > 0);
        // Space (here: the directory) comes back: appends resume by
        // themselves once the preparer retries.
        std::fs::rename(&moved, &log_dir).unwrap();
        put_until_accepted(&store, acked).await;
        acked += 1;
        assert_eq!(store.read_only(), None, "writable again once a segment is prepared");
        store.shutdown().await.unwrap();
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Async)).await.unwrap();
        assert_eq!(read_all(&store, "T", 0).await.len(), acked);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn a_store_that_cannot_create_its_first_segment_does_not_open() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    // Where the first segment file must go there is a directory.
    std::fs::create_dir_all(seg_path(&d, 0)).unwrap();
    let res = run_on_executor("no-first-segment", move || async move {
        MessageStore::open(cfg(&d, FlushMode::Sync)).await.map(|_| ())
    });
    assert!(res.is_err());
}

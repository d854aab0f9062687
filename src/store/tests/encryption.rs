//! Encryption at rest (`store::crypt`) on real files: what is written is
//! sealed, what is read is plaintext, recovery after a crash re-indexes
//! sealed records (tags, marks, due times from sealed properties), key
//! rotation, and starts that could not read are refused untouched.

use std::sync::Arc;

use super::*;
use crate::store::crypt::KeyRing;

const K1: &str = "1 8c1f0e5a2b3d4c6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";
const K2: &str = "2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn sealed_cfg(dir: &Path, keys: &str) -> StoreConfig {
    let mut c = cfg(dir, FlushMode::Sync);
    c.encryption = Some(Arc::new(KeyRing::parse(keys).expect("keys")));
    c
}

fn secret_body(i: usize) -> Vec<u8> {
    format!("SECRET-BODY-{i:04}-the-quick-brown-fox").into_bytes()
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sealed_on_disk_plaintext_to_readers_across_a_crash_and_a_key_rotation() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let d1 = d.clone();
    run_on_executor("sealed-writer", move || async move {
        let (store, _) = MessageStore::open(sealed_cfg(&d1, K1)).await.unwrap();
        for i in 0..20 {
            let mut m = msg("T", 0, secret_body(i), Some(if i % 2 == 0 { "TagA" } else { "TagB" }));
            // A client may not set the key-id bits.
            m.sys_flag = 0x7F << 24;
            let r = store.put(m).await;
            assert_eq!(r.status, PutStatus::Ok);
        }
        let got = read_all(&store, "T", 0).await;
        assert_eq!(got.len(), 20);
        for (i, (o, b)) in got.iter().enumerate() {
            assert_eq!((*o, b.clone()), (i as u64, secret_body(i)), "plaintext to readers");
        }
        // The pull body is whole plaintext records: CRC of the plaintext,
        // no key id, properties readable.
        let r = store
            .get_messages("T", 0, 0, 32, 1 << 20, &TagFilter::All)
            .await
            .unwrap();
        let mut at = 0;
        while at < r.body.len() {
            let record::RecordCheck::Record(v) = record::check_record(&r.body[at..], None, true) else {
                panic!("a pulled record does not check");
            };
            assert_eq!(crypt::key_id_of(v.sys_flag), 0);
            assert!(
                contains(v.properties, b"TAGS\x01Tag"),
                "{:?}",
                String::from_utf8_lossy(v.properties)
            );
            at += v.total_size as usize;
        }
        // By position too (view by id).
        let rec = store.read_record(r_first(&store).await).await.unwrap().unwrap();
        let record::RecordCheck::Record(v) = record::check_record(&rec, None, true) else {
            panic!("read_record");
        };
        assert_eq!(v.body, &secret_body(0)[..]);
        // Tag filtering from the consume queue works as before.
        let a = java_string_hash("TagA");
        let r = store
            .get_messages("T", 0, 0, 32, 1 << 20, &TagFilter::Codes(vec![a]))
            .await
            .unwrap();
        assert_eq!(records(&r.body).len(), 10);
        // Crash: no shutdown.
    });
    let on_disk = all_bytes(&d);
    for i in 0..20 {
        assert!(!contains(&on_disk, &secret_body(i)), "body {i} in plaintext on disk");
    }
    assert!(!contains(&on_disk, b"TAGS\x01Tag"), "properties in plaintext on disk");

    // Restart with a rotated key file: recovery re-indexes the sealed
    // records (tags from sealed properties), old records open with key 1,
    // new ones are sealed with key 2.
    let d2 = d.clone();
    run_on_executor("sealed-rotated", move || async move {
        let (store, _) = MessageStore::open(sealed_cfg(&d2, &format!("{K1}\n{K2}")))
            .await
            .unwrap();
        let r = store.put(msg("T", 0, secret_body(20), Some("TagA"))).await;
        assert_eq!(r.status, PutStatus::Ok);
        let got = read_all(&store, "T", 0).await;
        assert_eq!(got.len(), 21);
        for (i, (_, b)) in got.iter().enumerate() {
            assert_eq!(*b, secret_body(i));
        }
        let a = java_string_hash("TagA");
        let r = store
            .get_messages("T", 0, 0, 32, 1 << 20, &TagFilter::Codes(vec![a]))
            .await
            .unwrap();
        assert_eq!(records(&r.body).len(), 11, "tags re-indexed from sealed properties");
        store.shutdown().await.unwrap();
    });
    let text = std::fs::read_to_string(d.join(crypt::SEALED_KEYS_FILE)).unwrap();
    assert_eq!(text, "1\n2\n");

    // Starts that could not read are refused, and touch nothing.
    let before = all_bytes(&d.join("commitlog"));
    for (keys, why) in [(None, "storeEncryptionEnable=true"), (Some(K2), "key 1")] {
        let d3 = d.clone();
        let e = run_on_executor("refused", move || async move {
            let c = match keys {
                Some(k) => sealed_cfg(&d3, k),
                None => cfg(&d3, FlushMode::Sync),
            };
            MessageStore::open(c).await.err().expect("refused").to_string()
        });
        assert!(e.contains(why), "{e}");
    }
    assert!(
        all_bytes(&d.join("commitlog")) == before,
        "a refused start changed the log"
    );
}

async fn r_first(store: &MessageStore) -> position::PhysicalOffset {
    let e = store.queue_entries("T", 0, 0, 1).await.unwrap();
    position::PhysicalOffset::new(store.shard(), position::LogOffset(e[0].pos))
}

/// A sealed record changed on disk is refused at recovery (the start
/// fails, nothing is truncated) rather than served or cut.
#[test]
fn a_sealed_record_changed_on_disk_fails_the_start_without_truncation() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let d1 = d.clone();
    let first = run_on_executor("w", move || async move {
        let (store, _) = MessageStore::open(sealed_cfg(&d1, K1)).await.unwrap();
        for i in 0..3 {
            assert_eq!(store.put(msg("T", 0, secret_body(i), None)).await.status, PutStatus::Ok);
        }
        // No checkpoint: recovery scans every record.
        store.queue_entries("T", 0, 0, 3).await.unwrap()[1]
    });
    // Flip a byte of the second record's sealed PROPERTIES (its last byte
    // is in the tag) and fix nothing else: the body CRC still matches.
    let seg = seg_path(&d, 0);
    let end = first.pos + first.size as u64 - 1;
    let mut b = [0u8; 1];
    {
        use std::os::unix::fs::FileExt;
        std::fs::File::open(&seg).unwrap().read_exact_at(&mut b, end).unwrap();
    }
    overwrite(&seg, end, &[b[0] ^ 0x40]);
    let d2 = d.clone();
    let e = run_on_executor("r", move || async move {
        MessageStore::open(sealed_cfg(&d2, K1))
            .await
            .err()
            .expect("refused")
            .to_string()
    });
    assert!(e.contains("does not authenticate"), "{e}");
    assert!(std::fs::metadata(&seg).unwrap().len() > end, "nothing truncated");
}

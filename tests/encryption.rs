//! Encryption at rest (issue 13) on the real `shardmq serve`: messages
//! acknowledged with SYNC_FLUSH survive kill -9 with
//! `storeEncryptionEnable=true`, read back intact, while no file of the
//! data directory holds a body or a property in plaintext; a restart
//! without the key is refused.

mod common;

use std::path::Path;

use common::{pull_all, Broker, Client};
use shardmq::protocol::codes::response;

fn all_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
}

fn holds(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sealed_commitlog_survives_kill9_without_plaintext_on_disk() {
    let dir = common::test_dir();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key_file = keys.join("store.keys");
    std::fs::write(
        &key_file,
        "# test key\n7 5f2a9c0e1d3b4a6978c5e2f10a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let settings = [
        "flushDiskType=SYNC_FLUSH".to_string(),
        "storeEncryptionEnable=true".to_string(),
        format!("storeEncryptionKeyFile={}", key_file.display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let mut b = Broker::start(dir.path(), 2, &settings);
    b.create_topic("Sealed", 4);
    let mut c = Client::connect(&b.addr());
    let n = 60;
    for i in 0..n {
        let props = format!(
            "KEYS\u{1}ENC-KEY-{i:04}\u{2}TAGS\u{1}Tag{}\u{2}WAIT\u{1}true\u{2}",
            i % 2
        );
        let r = c.call(common::send_v2(
            "Sealed",
            (i % 4) as i64,
            &format!("ENC-SECRET-{i:04}-body"),
            props,
        ));
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
    }
    b.kill9();

    let mut files = Vec::new();
    all_files(&dir.path().join("data"), &mut files);
    let log_bytes: usize = files
        .iter()
        .filter(|(p, _)| p.contains("commitlog"))
        .map(|(_, b)| b.len())
        .sum();
    assert!(log_bytes > 0, "the CommitLog is on disk");
    for (path, bytes) in &files {
        for needle in [&b"ENC-SECRET-"[..], b"ENC-KEY-", b"TAGS\x01Tag"] {
            assert!(
                !holds(bytes, needle),
                "{path} holds {:?} in plaintext",
                String::from_utf8_lossy(needle)
            );
        }
    }

    b.spawn();
    let mut c = common::Client::connect(&b.addr());
    let mut bodies = Vec::new();
    for q in 0..4 {
        for (_, body, props) in pull_all(&mut c, "Sealed", q, "*") {
            assert!(props.contains("ENC-KEY-"), "properties intact: {props:?}");
            bodies.push(body);
        }
    }
    bodies.sort();
    let want: Vec<String> = (0..n).map(|i| format!("ENC-SECRET-{i:04}-body")).collect();
    assert_eq!(bodies, want, "every acknowledged message, intact, once");
    // Tag filtering still runs on the (plaintext) consume queues.
    let tagged: usize = (0..4).map(|q| pull_all(&mut c, "Sealed", q, "Tag1").len()).sum();
    assert_eq!(tagged, n / 2);
    b.stop();

    // Without the key the start is refused, naming what is missing.
    b.extra = vec!["flushDiskType=SYNC_FLUSH".to_string()];
    let log = b.try_spawn().expect_err("a start without the key");
    assert!(log.contains("storeEncryptionEnable=true"), "{log}");
}

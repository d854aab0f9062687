//! A full disk with the real broker on a real (loop-mounted, 256 MiB ext4)
//! filesystem: SYNC_FLUSH sends are refused with SERVICE_NOT_AVAILABLE and
//! the reason *before* the disk is full; no acknowledged, unexpired message
//! is ever deleted (default `diskFullPolicy=reject`), not even when another
//! process fills the disk; the broker restarts on the full disk and serves
//! every acknowledged message; writes resume by themselves when space
//! returns. Throughout, shard 0's write state is read from `/metrics`
//! (`shardmq_shard_writable`, `shardmq_shard_read_only_reason`) and
//! `shardmq admin stats`, and each change is logged once.
//!
//! Needs root (mount, losetup): CI runs as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{pull_all, Broker, Client};
use shardmq::protocol::codes::response;

/// A loop-mounted ext4 filesystem, unmounted on drop.
struct LoopFs {
    mnt: PathBuf,
}

impl LoopFs {
    fn new(dir: &Path, mib: u64) -> LoopFs {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "tests/disk_full.rs mounts a loop filesystem and needs root (CI runs as root)"
        );
        let img = dir.join("fs.img");
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).expect("mnt");
        let f = std::fs::File::create(&img).expect("image");
        f.set_len(mib << 20).expect("size image");
        drop(f);
        // No blocks reserved for root: full means full, for us too.
        run("mkfs.ext4", &["-q", "-F", "-m", "0", img.to_str().expect("utf8")]);
        run(
            "mount",
            &["-o", "loop", img.to_str().expect("utf8"), mnt.to_str().expect("utf8")],
        );
        LoopFs { mnt }
    }

    fn free_bytes(&self) -> u64 {
        let c = std::ffi::CString::new(self.mnt.to_str().expect("utf8")).expect("cstr");
        // SAFETY: statvfs on a NUL-terminated path into a zeroed struct we own.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
        s.f_bavail * s.f_frsize
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends 32 KiB messages until the broker refuses; returns the
/// acknowledged (offset, body) and the refusal's remark.
fn fill(c: &mut Client, prefix: &str) -> (Vec<(u64, String)>, String) {
    let pad = "z".repeat(32 * 1024);
    let mut acked = Vec::new();
    for i in 0..20_000 {
        let body = format!("{prefix}-{i}-{pad}");
        let r = c.call(common::send_v2("Full", 0, &body, String::new()));
        match r.code {
            response::SUCCESS => {
                let off = r.ext_str("queueOffset").and_then(|o| o.parse().ok()).expect("offset");
                acked.push((off, body));
            }
            response::SERVICE_NOT_AVAILABLE => return (acked, r.remark.unwrap_or_default()),
            response::SYSTEM_BUSY => std::thread::sleep(Duration::from_millis(10)),
            other => panic!(
                "send {i}: code {other} {:?} (a full disk must refuse, not fail)",
                r.remark
            ),
        }
    }
    panic!("the broker never refused although the disk is 256 MiB");
}

/// Shard 0's `shardmq_shard_writable` and the reasons reported as 1.
fn write_state(b: &Broker) -> (String, Vec<String>) {
    let (status, body) = common::http_get(b.metrics_port, "/metrics");
    assert!(status.contains("200"), "{status}");
    let writable = body
        .lines()
        .find_map(|l| l.strip_prefix("shardmq_shard_writable{shard=\"0\"} "))
        .unwrap_or_else(|| panic!("no shardmq_shard_writable in /metrics:\n{body}"))
        .to_string();
    let reasons = body
        .lines()
        .filter_map(|l| l.strip_prefix("shardmq_shard_read_only_reason{shard=\"0\",reason=\""))
        .filter_map(|l| l.strip_suffix("\"} 1"))
        .map(String::from)
        .collect();
    (writable, reasons)
}

/// The shard table of `shardmq admin stats`.
fn admin_stats(b: &Broker) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["admin", "--timeout", "15", "--broker", &b.addr(), "stats"])
        .output()
        .expect("run shardmq admin stats");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_all_there(addr: &str, acked: &[(u64, String)]) {
    let mut c = Client::connect(addr);
    let stored: std::collections::HashMap<u64, String> = pull_all(&mut c, "Full", 0, "*")
        .into_iter()
        .map(|(o, b, _)| (o, b))
        .collect();
    let missing = acked.iter().filter(|(o, b)| stored.get(o) != Some(b)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged messages are gone",
        acked.len()
    );
}

#[test]
fn a_full_disk_refuses_sends_deletes_nothing_and_restarts() {
    let dir = common::test_dir();
    let fs = LoopFs::new(dir.path(), 256);
    let data = fs.mnt.join("data");
    let settings = [
        format!("storePathRootDir={}", data.display()),
        "flushDiskType=SYNC_FLUSH".to_string(),
        "mapedFileSizeCommitLog=16777216".into(),
        "maxMessageSize=1048576".into(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let mut b = Broker::start(dir.path(), 1, &settings);
    b.create_topic("Full", 1);
    let mut c = Client::connect(&b.addr());
    let (mut acked, why) = fill(&mut c, "a");
    assert!(why.contains("diskMaxUsedSpaceRatio"), "refusal remark: {why}");
    let free = fs.free_bytes();
    assert!(free > 8 << 20, "refused only once the disk was full: {free} bytes free");
    assert!(acked.len() > 1000, "only {} acknowledged before refusing", acked.len());
    let refused_state = (String::from("0"), vec![String::from("disk_full")]);
    assert_eq!(write_state(&b), refused_state, "while refusing for space");
    eprintln!(
        "{} messages of 32 KiB acknowledged, then refused ({why}); {} MiB free",
        acked.len(),
        free >> 20
    );
    // Another process takes the rest of the disk.
    let filler = fs.mnt.join("filler");
    let f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![1u8; 1 << 20];
    use std::io::Write;
    let mut w = std::io::BufWriter::new(f);
    for _ in 0..512 {
        if w.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = w.flush();
    let _ = w.get_ref().sync_all();
    drop(w);
    assert!(
        fs.free_bytes() < 1 << 20,
        "the filler left {} bytes free",
        fs.free_bytes()
    );
    // A retention pass (every 10 s) sees the full disk: it must delete nothing.
    std::thread::sleep(Duration::from_secs(12));
    let r = c.call(common::send_v2("Full", 0, "while full", String::new()));
    assert_eq!(r.code, response::SERVICE_NOT_AVAILABLE, "{:?}", r.remark);
    assert_eq!(write_state(&b), refused_state, "with the disk full");
    let stats = admin_stats(&b);
    assert!(stats.contains("READ-ONLY: disk_full"), "admin stats:\n{stats}");
    assert_all_there(&b.addr(), &acked);
    let log = std::fs::read_to_string(&b.log).unwrap_or_default();
    assert!(!log.contains("DELETED UNEXPIRED"), "segments were deleted");
    // Restart on the full disk: it serves what it holds.
    drop(c);
    b.kill9();
    b.spawn();
    assert_all_there(&b.addr(), &acked);
    // Space returns: writes resume by themselves.
    std::fs::remove_file(&filler).expect("remove filler");
    let mut c = Client::connect(&b.addr());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = "after the disk had room again".to_string();
        let r = c.call(common::send_v2("Full", 0, &body, String::new()));
        if r.code == response::SUCCESS {
            let off = r.ext_str("queueOffset").and_then(|o| o.parse().ok()).expect("offset");
            acked.push((off, body));
            break;
        }
        assert_eq!(r.code, response::SERVICE_NOT_AVAILABLE, "{:?}", r.remark);
        assert!(Instant::now() < deadline, "writes did not resume: {:?}", r.remark);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_all_there(&b.addr(), &acked);
    assert_eq!(write_state(&b), ("1".to_string(), vec![]), "after space returned");
    let stats = admin_stats(&b);
    assert!(
        stats.contains("writable") && !stats.contains("READ-ONLY"),
        "admin stats:\n{stats}"
    );
    // Logged once per change (the restart's process logs its own); the
    // log watch looks every 500 ms.
    let logged = |what: &str| {
        let log = std::fs::read_to_string(&b.log).unwrap_or_default();
        log.matches(what).count()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while logged("shard 0 is writable again") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let read_only = logged("shard 0 is read-only (disk_full)");
    let writable = logged("shard 0 is writable again (was read-only: disk_full)");
    assert!(
        (1..=2).contains(&read_only) && writable == 1,
        "read-only logged {read_only} times, writable again {writable} times"
    );
    drop(c);
    b.stop();
}

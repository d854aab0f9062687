//! `tuning/check.sh` on this machine: one line per setting, valid `--json`,
//! an exit code that matches its FAIL lines, and a FAIL naming the fix when
//! the locked-memory limit is below what glommio needs. Nothing here needs
//! root or changes the machine (`apply.sh` only runs with `--dry-run`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every setting check.sh reports, in the order of shardmq-tuning.conf.
const SETTINGS: &[&str] = &[
    "kernel.version",
    "kernel.io_uring_disabled",
    "ulimit.nofile",
    "ulimit.memlock",
    "fs.file-max",
    "fs.nr_open",
    "fs.aio-max-nr",
    "vm.swappiness",
    "vm.dirty_ratio",
    "vm.dirty_background_ratio",
    "vm.dirty_expire_centisecs",
    "vm.dirty_writeback_centisecs",
    "vm.max_map_count",
    "vm.zone_reclaim_mode",
    "thp.enabled",
    "thp.defrag",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "disk.scheduler",
    "disk.filesystem",
    "cpu.governor",
    "numa.nodes",
    "irq.affinity",
    "irq.irqbalance",
];

const STATUSES: &[&str] = &["OK", "WARN", "FAIL", "n/a"];

/// A script run should take well under a second; this bounds a hang.
const DEADLINE: Duration = Duration::from_secs(60);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `bash -c SCRIPT` in the crate root with a deadline.
fn bash(script: &str) -> Run {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bash");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{script}` still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().expect("exit code, not a signal"),
        stdout: out_t.join().unwrap().expect("stdout utf-8"),
        stderr: err_t.join().unwrap().expect("stderr utf-8"),
    }
}

fn check(args: &str, dir: &Path) -> Run {
    bash(&format!("tuning/check.sh --data-dir '{}' {args}", dir.display()))
}

/// The report line of `name`: its status (last column) and the fix line
/// printed under it, if any.
fn line_of<'a>(out: &'a str, name: &str) -> (&'a str, Option<&'a str>) {
    let mut lines = out.lines();
    while let Some(l) = lines.next() {
        if l.split_whitespace().next() == Some(name) {
            let status = l.split_whitespace().last().unwrap();
            let fix = lines.next().and_then(|f| f.trim_start().strip_prefix("fix:"));
            return (status, fix);
        }
    }
    panic!("no line for {name} in:\n{out}");
}

#[test]
fn check_reports_every_setting_and_exit_code_matches_fail_lines() {
    let dir = data_dir();
    let r = check("", dir.path());
    assert!(r.stderr.is_empty(), "stderr: {}", r.stderr);
    let mut any_fail = false;
    for name in SETTINGS {
        let (status, fix) = line_of(&r.stdout, name);
        assert!(STATUSES.contains(&status), "{name}: status {status}\n{}", r.stdout);
        if status == "WARN" || status == "FAIL" {
            assert!(
                fix.is_some_and(|f| !f.trim().is_empty()),
                "{name} {status} without a fix"
            );
        }
        any_fail |= status == "FAIL";
    }
    assert!(r.stdout.contains("summary: "), "{}", r.stdout);
    assert_eq!(r.code, i32::from(any_fail), "exit code vs FAIL lines:\n{}", r.stdout);
}

#[test]
fn check_json_is_valid_and_complete() {
    let dir = data_dir();
    let r = check("--json", dir.path());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", r.stdout));
    for key in [
        "data_dir",
        "mount",
        "fstype",
        "device",
        "disks",
        "cpus",
        "shards",
        "checks",
        "summary",
        "exit_code",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert!(v["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(v["shards"], v["cpus"], "default: one shard per CPU");
    let checks = v["checks"].as_array().expect("checks array");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, SETTINGS);
    let mut counts = [0u64; 4];
    for c in checks {
        for key in ["current", "recommended", "status", "severity", "note"] {
            assert!(c[key].is_string(), "{}: {key} is {}", c["name"], c[key]);
        }
        let status = c["status"].as_str().unwrap();
        let i = STATUSES.iter().position(|s| *s == status).expect("known status");
        counts[i] += 1;
        match status {
            "WARN" | "FAIL" => assert!(c["fix"].is_string(), "{} {status} without fix", c["name"]),
            _ => assert!(c["fix"].is_null(), "{} {status} with a fix", c["name"]),
        }
        if status == "FAIL" {
            assert_eq!(c["severity"], "FAIL", "only FAIL-severity settings may FAIL");
        }
    }
    let s = &v["summary"];
    assert_eq!(
        [
            s["ok"].as_u64(),
            s["warn"].as_u64(),
            s["fail"].as_u64(),
            s["na"].as_u64()
        ],
        counts.map(Some)
    );
    let expect = i64::from(counts[2] > 0);
    assert_eq!(v["exit_code"].as_i64(), Some(expect));
    assert_eq!(i64::from(r.code), expect);
}

#[test]
fn low_memlock_fails_and_names_the_fix() {
    let dir = data_dir();
    let r = bash(&format!(
        "ulimit -l 64; exec tuning/check.sh --data-dir '{}'",
        dir.path().display()
    ));
    assert_eq!(r.code, 1, "{}", r.stdout);
    let (status, fix) = line_of(&r.stdout, "ulimit.memlock");
    assert_eq!(status, "FAIL", "{}", r.stdout);
    let fix = fix.expect("fix line");
    assert!(fix.contains("ulimit -l unlimited"), "{fix}");
    assert!(fix.contains("LimitMEMLOCK=infinity"), "{fix}");
    assert!(
        r.stdout.contains("FAIL: ") && r.stdout.contains("ulimit.memlock"),
        "{}",
        r.stdout
    );

    let j = bash(&format!(
        "ulimit -l 64; exec tuning/check.sh --json --data-dir '{}'",
        dir.path().display()
    ));
    let v: serde_json::Value = serde_json::from_str(&j.stdout).expect("json");
    let m = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ulimit.memlock")
        .unwrap();
    assert_eq!(m["status"], "FAIL");
    assert!(
        m["current"].as_str().unwrap().contains("hard 64 KiB"),
        "{}",
        m["current"]
    );
    assert_eq!(j.code, 1);
}

#[test]
fn low_nofile_fails() {
    let dir = data_dir();
    let r = bash(&format!(
        "ulimit -n 1024; exec tuning/check.sh --data-dir '{}'",
        dir.path().display()
    ));
    assert_eq!(r.code, 1, "{}", r.stdout);
    let (status, fix) = line_of(&r.stdout, "ulimit.nofile");
    assert_eq!(status, "FAIL");
    assert!(fix.unwrap().contains("LimitNOFILE="));
}

#[test]
fn missing_data_dir_and_bad_arguments() {
    // A data dir that does not exist yet is judged by its nearest parent.
    let dir = data_dir();
    let r = check("--json", &dir.path().join("not/yet/created"));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["checks"].as_array().unwrap().len(), SETTINGS.len());
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    let r = bash("tuning/check.sh --no-such-flag");
    assert_eq!(r.code, 2);
    let r = bash("tuning/check.sh --shards many");
    assert_eq!(r.code, 2);
}

#[test]
fn fewer_shards_than_cpus_names_housekeeping_cpus() {
    let dir = data_dir();
    let r = check("--json --shards 1", dir.path());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["shards"], 1);
    let irq = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "irq.affinity")
        .unwrap();
    if v["cpus"].as_u64().unwrap() > 1 && irq["status"] != "n/a" {
        assert!(irq["recommended"].as_str().unwrap().contains("shards on 0"), "{irq}");
    }
}

/// check.sh must not need root: when the tests run as root, run it again
/// as `nobody` (setpriv is util-linux) and expect the same settings.
#[test]
fn runs_unprivileged() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        let r = check("", &std::env::temp_dir());
        assert!(r.stdout.contains("summary: "));
        return;
    }
    let probe =
        bash("command -v setpriv && setpriv --reuid=65534 --regid=65534 --clear-groups test -r tuning/check.sh");
    if probe.code != 0 {
        eprintln!("skipped: setpriv missing or tuning/ not readable by nobody");
        return;
    }
    let r = bash("setpriv --reuid=65534 --regid=65534 --clear-groups tuning/check.sh --json --data-dir /tmp/shardmq-x");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stderr));
    assert_eq!(v["checks"].as_array().unwrap().len(), SETTINGS.len());
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn apply_dry_run_prints_commands_only() {
    let dir = data_dir();
    let r = bash(&format!(
        "tuning/apply.sh --dry-run --persist '{}'",
        dir.path().display()
    ));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("#!/bin/sh\n"));
    assert!(r.stdout.contains("LimitMEMLOCK=infinity"), "{}", r.stdout);
    assert!(
        r.stdout.contains("cat > /etc/security/limits.d/99-shardmq.conf"),
        "{}",
        r.stdout
    );
    // The output is a script: it parses.
    let path = dir.path().join("dry.sh");
    std::fs::write(&path, &r.stdout).unwrap();
    let syntax = bash(&format!("bash -n '{}'", path.display()));
    assert_eq!(syntax.code, 0, "{}", syntax.stderr);
}

/// The scripts stay shellcheck-clean (skipped where shellcheck is missing).
#[test]
fn scripts_pass_shellcheck() {
    if bash("command -v shellcheck").code != 0 {
        eprintln!("skipped: shellcheck not installed");
        return;
    }
    let r =
        bash("shellcheck -x tuning/check.sh tuning/apply.sh tuning/lib.sh && bash -n tuning/check.sh && bash -n tuning/apply.sh");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

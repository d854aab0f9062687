//! kill -9 durability: a child process appends with SYNC_FLUSH from several
//! concurrent tasks and reports every acknowledged (queue, offset, crc); we
//! SIGKILL it at random moments, restart it, and check after each cycle that
//! every acknowledged message is there, intact, in order, and never twice.
//!
//! `SHARDMQ_KILL_CYCLES` sets the number of cycles (default 20);
//! `scripts/soak-store.sh` runs 100+.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_store_torture"))
}

#[test]
fn acknowledged_messages_survive_kill_9() {
    let cycles: u64 = std::env::var("SHARDMQ_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("shard");
    let acks_path = dir.path().join("acks.txt");
    let mut acks = std::fs::File::create(&acks_path).expect("acks file");
    let mut rng: u64 = std::env::var("SHARDMQ_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED);
    let mut total_acks = 0usize;
    let started = Instant::now();
    for run in 0..cycles {
        let mut child = torture()
            .args([
                "--dir",
                data.to_str().expect("utf8 path"),
                "--tasks",
                "12",
                "--queues",
                "4",
            ])
            .args(["--run", &run.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn store_torture");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Kill somewhere between 20 and 400 ms after start (start-up and
        // recovery included, so some kills land during recovery).
        let after = Duration::from_millis(20 + rng % 380);
        std::thread::sleep(after);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "child must die by the signal");
        let lines = reader.join().expect("reader thread");
        let n = lines.iter().filter(|l| l.starts_with("A ")).count();
        total_acks += n;
        for l in lines.iter().filter(|l| l.starts_with("A ")) {
            writeln!(acks, "{l}").expect("write acks");
        }
        acks.flush().expect("flush acks");
        let out = torture()
            .args(["--dir", data.to_str().expect("utf8 path"), "--queues", "4"])
            .args(["--verify", acks_path.to_str().expect("utf8 path")])
            .output()
            .expect("run verifier");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "cycle {run} (killed after {after:?}, {n} acks this cycle): verification failed\n{stderr}\n{stdout}"
        );
        eprintln!("cycle {run}: killed after {after:?}, {n} acks; {}", stdout.trim());
    }
    assert!(total_acks > 0, "the children must have acknowledged something");
    eprintln!(
        "{cycles} kill -9 cycles, {total_acks} acknowledged appends verified in {:?}",
        started.elapsed()
    );
}

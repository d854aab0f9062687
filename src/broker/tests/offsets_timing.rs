//! Timing of offset persistence and of the blocking-thread round trip
//! (not a pass/fail test): `cargo test --lib offsets_timing -- --ignored
//! --nocapture`. "Shard busy" is the time spent inside `poll` of the
//! measured future — how long the shard thread could not run anything
//! else — and "wall" the time until it completed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::broker::consumer_offsets::ConsumerOffsets;
use crate::runtime::run_on_executor;

/// Sums the time spent in `poll`.
struct Busy<F> {
    inner: Pin<Box<F>>,
    busy: Duration,
    longest: Duration,
}

/// Time in `poll`: total, and the longest single poll (the longest the
/// shard could not switch to another task).
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Held {
    total: Duration,
    longest: Duration,
}

impl<F: Future> Future for Busy<F> {
    type Output = (F::Output, Held);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let t = Instant::now();
        let r = self.inner.as_mut().poll(cx);
        let spent = t.elapsed();
        self.busy += spent;
        self.longest = self.longest.max(spent);
        match r {
            Poll::Ready(v) => Poll::Ready((
                v,
                Held {
                    total: self.busy,
                    longest: self.longest,
                },
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// (output, shard busy, wall)
async fn measure<F: Future>(f: F) -> (F::Output, Held, Duration) {
    let t = Instant::now();
    let (v, held) = Busy {
        inner: Box::pin(f),
        busy: Duration::ZERO,
        longest: Duration::ZERO,
    }
    .await;
    (v, held, t.elapsed())
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn fill(o: &ConsumerOffsets, n: u32, base: u64) {
    for i in 0..n {
        o.commit(
            &format!("group-{}", i / 100),
            "TopicTest",
            i % 100 + (i / 10_000) * 100,
            base + i as u64,
        );
    }
}

#[test]
#[ignore]
fn offsets_timing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run_on_executor("offsets-timing", move || async move {
        // Blocking-thread round trip, empty closure.
        let mut rt = Vec::new();
        for _ in 0..2000 {
            let t = Instant::now();
            crate::runtime::blocking::run(|| ()).await;
            rt.push(t.elapsed());
        }
        println!(
            "spawn_blocking round trip (empty closure): p50 {:?} p99 {:?}",
            pct(&mut rt, 50),
            pct(&mut rt, 99)
        );
        // glommio::io::remove (blocking thread inside glommio).
        let files: Vec<_> = (0..500).map(|i| dir.join(format!("rm-{i}"))).collect();
        for f in &files {
            std::fs::write(f, b"x").unwrap();
        }
        let mut rm = Vec::new();
        for f in &files {
            let t = Instant::now();
            crate::runtime::blocking::remove_file(f).await.unwrap();
            rm.push(t.elapsed());
        }
        println!(
            "glommio::io::remove: p50 {:?} p99 {:?}",
            pct(&mut rm, 50),
            pct(&mut rm, 99)
        );

        for n in [1_000u32, 100_000] {
            let d = dir.join(format!("n{n}"));
            std::fs::create_dir_all(&d).unwrap();
            // Before: the whole table as JSON, std::fs on the shard thread.
            let o = ConsumerOffsets::load(&d);
            fill(&o, n, 0);
            let entries: Vec<_> = o.snapshot();
            let mut old = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
                    Default::default();
                for (g, tp, q, off) in &entries {
                    out.entry(format!("{tp}@{g}")).or_default().insert(q.to_string(), *off);
                }
                let json = serde_json::json!({ "offsetTable": out });
                crate::broker::metadata::write_atomically(&d, "old-consumerOffset.json", json.to_string().as_bytes())
                    .unwrap();
                old.push(t.elapsed());
            }
            println!(
                "{n} offsets, old full rewrite on the shard thread: p50 {:?} (shard blocked all of it)",
                pct(&mut old, 50)
            );
            // After: first persist writes every entry to the journal.
            o.set_compact_min_bytes(u64::MAX);
            let (r, busy, wall) = measure(o.persist()).await;
            r.unwrap();
            println!("{n} offsets, first journal append of all: shard busy {busy:?}, wall {wall:?}");
            // A persist of 1 000 changed entries (and of 1).
            for changed in [1u32, 1000] {
                let mut b = Vec::new();
                let mut w = Vec::new();
                for round in 0..20u64 {
                    fill(&o, changed, 1_000_000 * (round + 1));
                    let (r, busy, wall) = measure(o.persist()).await;
                    r.unwrap();
                    b.push(busy.longest);
                    w.push(wall);
                }
                println!(
                    "{n} offsets, persist of {changed} changed: longest poll p50 {:?}, wall p50 {:?}",
                    pct(&mut b, 50),
                    pct(&mut w, 50)
                );
            }
            // Compaction of the whole table: grow the journal past 2 × live
            // first (not measured), then one change triggers it.
            fill(&o, n, 5_000_000);
            o.persist().await.unwrap();
            o.set_compact_min_bytes(0);
            fill(&o, 1, 42);
            let (r, busy, wall) = measure(o.persist()).await;
            r.unwrap();
            println!("{n} offsets, persist with compaction: shard busy {busy:?}, wall {wall:?}");
            assert!(d.join(crate::broker::offset_journal::SNAPSHOT).exists(), "compacted");
            drop(o);
            let t = Instant::now();
            let o = ConsumerOffsets::load(&d);
            println!("{n} offsets, load (start-up): {:?}", t.elapsed());
            assert_eq!(o.snapshot().len(), n as usize);
        }
    });
}

//! Blocking system calls off the shard thread.
//!
//! A shard thread must not block at runtime (issue 8): a 300 ms fsync of a
//! big file stalls every connection of the shard. What cannot go through
//! io_uring runs here, on the executor's blocking thread.
//!
//! Which mechanism for which call:
//! * Reads and writes of files we keep open, and `fdatasync`: glommio's
//!   `BufferedFile`/`DmaFile` (io_uring; no thread hop).
//! * A single `unlink` or `rename`: `glommio::io::remove` / `rename`. glommio
//!   0.9 does not put these on io_uring either: it sends them to the same
//!   blocking thread as [`run`], so they cost one round trip.
//! * Sequences of calls (write a temp file, fsync, rename, fsync the
//!   directory; list a directory and unlink; `statvfs`; `stat` for an
//!   mtime): one [`run`] closure for the whole sequence, one round trip
//!   instead of one per call.
//!
//! The blocking pool is glommio's default for `LocalExecutorBuilder`: one
//! thread, placed like its executor (pinned to the shard's CPU). One thread
//! means closures run one at a time in submission order, which the callers
//! rely on: two saves of the same file (same temp name) never interleave,
//! and the later one lands last.
//!
//! Measured (`cargo test --lib offsets_timing -- --ignored --nocapture`,
//! 2-vCPU dev VM shared with other builds): an empty closure's round trip
//! p50 7.5–51 µs, p99 46 µs–2.7 ms; `glommio::io::remove` p50 19–60 µs.
//! The p99 is the blocking thread waiting for a CPU, not the call. A
//! whole-table rewrite of 100 k consumer offsets took 101–126 ms on the
//! shard thread before this; see `README.md`, "Blocking work".

/// Runs `f` on this executor's blocking thread and waits for its result
/// without blocking the shard. Must be called on a glommio executor.
pub async fn run<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(f).await
}

/// Unlinks `path` without blocking the shard (one blocking-thread round
/// trip, see the module docs).
pub async fn remove_file(path: &std::path::Path) -> std::io::Result<()> {
    glommio::io::remove(path).await.map_err(std::io::Error::from)
}

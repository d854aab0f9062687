//! A shard's epoch history (controller mode): which master epoch wrote
//! which part of the log.
//!
//! Every time this broker becomes master at epoch `e` each of its shards
//! records `(e, log end)`: records at or past that offset, up to the next
//! entry's start, were written by the master of epoch `e`. A slave adopts
//! its master's history when it starts following, so two brokers of a
//! group can tell where their logs stop being the same without comparing
//! bytes — the log-matching rule of Raft and Kafka's leader epochs: one
//! epoch has one master, so two logs that both hold epoch `e` hold the
//! same records of it up to where the shorter one's epoch `e` ends.
//!
//! [`common_end`] is that computation; the master does it for a slave's
//! HELLO and the slave truncates its log to the answer before it takes
//! anything, which is how a returning old master drops the tail that it
//! wrote but never replicated (and never acknowledged, under
//! SYNC_MASTER).
//!
//! On disk: `epochs.json` in the shard's store directory, a JSON array
//! of `[epoch, start_offset]` pairs in ascending order, replaced
//! atomically (temp file, fsync, rename, directory fsync).

use std::path::{Path, PathBuf};

pub const FILE: &str = "epochs.json";

/// At most this many entries are kept (and sent in a HELLO): the oldest
/// go first. An entry older than every other broker's oldest is never
/// the common one anyway.
pub const MAX_ENTRIES: usize = 256;

/// `(epoch, first log offset written in it)`, ascending in both.
pub type History = Vec<(u32, u64)>;

/// Where the logs of two brokers stop being the same: the end of the
/// newest epoch both histories hold (an epoch ends where the next entry
/// starts, or at the log end), capped by the slave's log end. A broker
/// with no history (it never ran in controller mode) shares everything
/// up to its log end — the pre-controller rule, where a slave only ever
/// copied its one master. Histories that share no epoch share nothing
/// past the older of their first entries.
pub fn common_end(slave: &[(u32, u64)], slave_end: u64, master: &[(u32, u64)], master_end: u64) -> u64 {
    if slave.is_empty() {
        return slave_end;
    }
    if master.is_empty() {
        return slave_end.min(master_end);
    }
    let end_of = |h: &[(u32, u64)], i: usize, log_end: u64| h.get(i + 1).map_or(log_end, |n| n.1);
    // Newest epoch present in both.
    for (i, (e, _)) in slave.iter().enumerate().rev() {
        if let Some(j) = master.iter().position(|(m, _)| m == e) {
            let end = end_of(slave, i, slave_end).min(end_of(master, j, master_end));
            return end.min(slave_end);
        }
    }
    slave[0].1.min(master[0].1).min(slave_end)
}

/// This broker became master at `epoch` with its log ending at `end`:
/// entries that start past `end` (epochs it heard of but holds no
/// records of) go, and `(epoch, end)` is appended. Returns false when
/// `epoch` is not newer than the last entry (nothing changes).
pub fn begin(h: &mut History, epoch: u32, end: u64) -> bool {
    // Master again of the epoch it recorded, its log now ending before
    // that epoch's recorded start (only if records it had made durable
    // were lost): the epoch starts where the log does.
    if let Some(last) = h.last_mut().filter(|(e, s)| *e == epoch && *s > end) {
        last.1 = end;
        return true;
    }
    if h.last().is_some_and(|(e, _)| *e >= epoch) {
        return false;
    }
    h.retain(|(_, s)| *s <= end);
    h.push((epoch, end));
    trim(h);
    true
}

/// Keeps the newest [`MAX_ENTRIES`].
pub fn trim(h: &mut History) {
    if h.len() > MAX_ENTRIES {
        h.drain(..h.len() - MAX_ENTRIES);
    }
}

/// Checks a history read from disk or the wire: ascending epochs and
/// starts, at most [`MAX_ENTRIES`].
pub fn validate(h: &[(u32, u64)]) -> Result<(), String> {
    if h.len() > MAX_ENTRIES {
        return Err(format!("{} epoch entries (at most {MAX_ENTRIES})", h.len()));
    }
    for w in h.windows(2) {
        if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
            return Err(format!("epoch entries out of order: {:?} then {:?}", w[0], w[1]));
        }
    }
    Ok(())
}

pub fn path(store_dir: &Path) -> PathBuf {
    store_dir.join(FILE)
}

/// Reads a shard's history (blocking: call through `runtime::blocking`).
/// A missing file is an empty history.
pub fn load(store_dir: &Path) -> Result<History, String> {
    let p = path(store_dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    let h: History = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    validate(&h).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(h)
}

/// Replaces a shard's history durably, off the shard thread.
pub async fn save(store_dir: &Path, h: &History) -> Result<(), String> {
    let bytes = serde_json::to_vec(h).map_err(|e| e.to_string())?;
    crate::broker::metadata::save(store_dir.to_path_buf(), FILE, bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_of_the_same_epoch_keeps_its_whole_log() {
        let m = vec![(1, 0), (2, 500)];
        assert_eq!(common_end(&m, 700, &m, 900), 700);
        assert_eq!(common_end(&[(1, 0)], 400, &m, 900), 400);
    }

    #[test]
    fn an_old_master_drops_what_it_wrote_after_the_new_epoch_began() {
        // Broker A was master of epoch 1 up to 1000; B had copied 800 of
        // it when A died and B became master of epoch 2 at 800.
        let b = vec![(1, 0), (2, 800)];
        assert_eq!(common_end(&[(1, 0)], 1000, &b, 1200), 800);
        // A slave that had less than that keeps all of it.
        assert_eq!(common_end(&[(1, 0)], 600, &b, 1200), 600);
    }

    #[test]
    fn an_epoch_only_one_side_knows_ends_the_common_part_where_it_began() {
        // A was master of 1, then briefly of 3 from 900 (its records never
        // replicated); B was master of 2 from 700 and now of 4 from 1100.
        let a = vec![(1, 0), (3, 900)];
        let b = vec![(1, 0), (2, 700), (4, 1100)];
        assert_eq!(common_end(&a, 1000, &b, 1500), 700);
    }

    #[test]
    fn histories_without_a_common_epoch_share_only_what_precedes_both() {
        assert_eq!(common_end(&[(5, 100)], 300, &[(6, 200)], 400), 100);
        assert_eq!(common_end(&[], 300, &[], 400), 300, "pre-controller: a prefix");
        assert_eq!(
            common_end(&[], 300, &[(1, 0)], 200),
            300,
            "a slave without history keeps its log"
        );
        assert_eq!(common_end(&[(1, 0)], 300, &[], 200), 200);
    }

    #[test]
    fn begin_drops_entries_past_the_log_end_and_refuses_old_epochs() {
        let mut h = vec![(1, 0), (3, 1000)];
        assert!(begin(&mut h, 4, 800));
        assert_eq!(h, vec![(1, 0), (4, 800)]);
        assert!(!begin(&mut h, 4, 900));
        assert!(!begin(&mut h, 2, 900));
        assert!(
            begin(&mut h, 4, 700),
            "a log that ends before its epoch's start moves the start"
        );
        assert_eq!(h, vec![(1, 0), (4, 700)]);
        let mut long: History = (1..=MAX_ENTRIES as u32).map(|e| (e, e as u64)).collect();
        assert!(begin(&mut long, 999, 10_000));
        assert_eq!(long.len(), MAX_ENTRIES);
        assert_eq!(long.last(), Some(&(999, 10_000)));
    }

    #[test]
    fn load_of_a_missing_file_is_empty_and_save_round_trips() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()), Ok(vec![]));
        std::fs::write(path(d.path()), b"[[2,0],[1,5]]").unwrap();
        assert!(load(d.path()).is_err());
        std::fs::write(path(d.path()), b"[[1,0],[2,5]]").unwrap();
        assert_eq!(load(d.path()), Ok(vec![(1, 0), (2, 5)]));
    }
}

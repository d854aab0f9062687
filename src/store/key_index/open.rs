//! Opening the key index: leftovers of interrupted writes removed,
//! corrupt runs set aside, covered and expired runs dropped, and the gaps
//! of the retained log listed for the background task.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use super::run::{self, Run};
use super::{KeyIndex, KeyIndexConfig, Mem};
use crate::store::error::StoreError;
use crate::store::faults::DiskFaults;

impl KeyIndex {
    /// Opens `<shard>/index`: removes leftovers of interrupted writes, sets
    /// aside corrupt runs, drops runs another covers (a merge interrupted
    /// before it deleted its inputs) and expired ones, and lists the gaps
    /// of `[log_min, log_end)` for the background task.
    pub async fn open(
        dir: PathBuf,
        cfg: KeyIndexConfig,
        faults: Option<Rc<DiskFaults>>,
        log_min: u64,
        log_end: u64,
    ) -> Result<KeyIndex, StoreError> {
        let mut index = KeyIndex {
            mem: RefCell::new(Mem {
                entries: Vec::new(),
                from: log_end,
                since: None,
                full_at: None,
                deferred: 0,
            }),
            runs: RefCell::new(Vec::new()),
            gaps: RefCell::new(Vec::new()),
            cfg,
            dir,
            faults,
            flush_failures: Cell::new(0),
            last_error_log: Cell::new(None),
            upkeep: glommio::sync::Semaphore::new(1),
            flushing: glommio::sync::Semaphore::new(1),
        };
        if !index.cfg.enabled {
            return Ok(index);
        }
        let dir = index.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let mut names = Vec::new();
        for ent in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let ent = ent.map_err(|e| StoreError::io(&dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                std::fs::remove_file(ent.path()).map_err(|e| StoreError::io(ent.path(), e))?;
            } else if let Some(r) = run::parse_name(&name) {
                names.push((r, ent.path()));
            }
        }
        // Widest first among equal starts, so covered runs come after.
        names.sort_by_key(|((from, to), _)| (*from, std::cmp::Reverse(*to)));
        let mut runs: Vec<Rc<Run>> = Vec::new();
        for ((from, to), path) in names {
            let covered = runs.iter().any(|r| r.from <= from && to <= r.to);
            if covered || to <= log_min {
                std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                continue;
            }
            match Run::open(&path).await {
                Ok(r) => runs.push(Rc::new(r)),
                Err(e) => {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let aside = path.with_extension(format!("run.corrupt-{secs}"));
                    log::error!(
                        "key index: {e}; set aside as {} and its range is indexed again from the CommitLog",
                        aside.display()
                    );
                    std::fs::rename(&path, &aside).map_err(|e| StoreError::io(&path, e))?;
                }
            }
        }
        // A run may reach past the recovered end (records lost in a
        // crash): its entries there are stale and verified away.
        let mut gaps = Vec::new();
        let mut at = log_min;
        for r in &runs {
            if r.from > at && at < log_end {
                gaps.push((at, r.from.min(log_end)));
            }
            at = at.max(r.to);
        }
        if at < log_end {
            gaps.push((at, log_end));
        }
        if !gaps.is_empty() {
            let bytes: u64 = gaps.iter().map(|(a, b)| b - a).sum();
            log::info!(
                "key index {}: {} runs; {bytes} log bytes in {} ranges to index from the CommitLog",
                dir.display(),
                runs.len(),
                gaps.len()
            );
        }
        index.runs = RefCell::new(runs);
        index.gaps = RefCell::new(gaps);
        Ok(index)
    }
}

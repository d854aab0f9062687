//! The data directory's life around a start: one broker process per
//! directory (an exclusive lock), and the removal of what a failed start
//! created.

/// What a start creates in the data directory, so that a failed start can
/// remove it again: the whole root if it did not exist, else every entry
/// of the root that was not there before (shard directories, config/).
pub(super) struct Created {
    root: std::path::PathBuf,
    /// Entries of the root before the start; None if it did not exist.
    before: Option<std::collections::HashSet<std::ffi::OsString>>,
}

impl Created {
    pub(super) fn before_start(root: &std::path::Path) -> Created {
        let before = std::fs::read_dir(root)
            .ok()
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect());
        Created {
            root: root.to_path_buf(),
            before,
        }
    }

    pub(super) fn remove_after_failed_start(&self) {
        let remove = |p: &std::path::Path| {
            let r = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
            match r {
                Ok(()) => log::info!("removed {} (created by the failed start)", p.display()),
                Err(e) => log::warn!("cannot remove {} after the failed start: {e}", p.display()),
            }
        };
        let Some(before) = &self.before else {
            if self.root.exists() {
                remove(&self.root);
            }
            return;
        };
        for entry in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            if !before.contains(&entry.file_name()) {
                remove(&entry.path());
            }
        }
    }
}

/// One broker process per data directory: an exclusive `flock` on
/// `<root>/lock`, held for the life of the process.
pub(super) fn lock_data_dir(root: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::unix::io::AsRawFd;
    let path = root.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "{} is locked: another shardmq uses this data directory",
            path.display()
        ));
    }
    Ok(f)
}

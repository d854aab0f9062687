//! Start-up checks of the OS settings `tuning/check.sh` reports in full:
//! the broker raises its open-files limit to the hard limit itself and logs
//! one warning line naming whatever else the check would flag.

use std::path::Path;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the result.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The block device (sysfs name) holding `dir`, following partitions to
/// their disk.
fn block_device(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let link = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let name = link.file_name()?.to_string_lossy().to_string();
    let parent = link.parent()?.file_name()?.to_string_lossy().to_string();
    // A partition's parent directory is its disk.
    if Path::new(&format!("/sys/block/{parent}/{name}")).exists() {
        Some(parent)
    } else {
        Some(name)
    }
}

/// What `tuning/check.sh` would flag, as short phrases.
pub fn findings(data_dir: &Path, nofile: u64) -> Vec<String> {
    let mut out = Vec::new();
    if nofile < 65536 {
        out.push(format!("open-files limit {nofile} < 65536"));
    }
    if let Some(s) = read_trim("/proc/sys/vm/swappiness").and_then(|v| v.parse::<u32>().ok()) {
        if s > 1 {
            out.push(format!("vm.swappiness {s} > 1"));
        }
    }
    if let Some(t) = read_trim("/sys/kernel/mm/transparent_hugepage/enabled") {
        if t.contains("[always]") {
            out.push("transparent huge pages = always (use madvise or never)".into());
        }
    }
    if let Some(dev) = block_device(data_dir) {
        if let Some(sched) = read_trim(&format!("/sys/block/{dev}/queue/scheduler")) {
            let active = sched
                .split_whitespace()
                .find(|s| s.starts_with('['))
                .unwrap_or("")
                .trim_matches(['[', ']']);
            if !matches!(active, "mq-deadline" | "deadline" | "none" | "") {
                out.push(format!("I/O scheduler of {dev} is {active} (use mq-deadline)"));
            }
        }
    }
    out
}

/// Logs one warning line when something is off.
pub fn warn_at_start(data_dir: &Path) {
    let nofile = raise_nofile();
    let f = findings(data_dir, nofile);
    if !f.is_empty() {
        log::warn!("OS tuning: {}; run tuning/check.sh for the fixes", f.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_nofile_never_lowers_it_and_findings_do_not_panic() {
        let n = raise_nofile();
        assert!(n > 0);
        let f = findings(Path::new("/"), n);
        assert!(f.iter().all(|s| !s.is_empty()));
        assert!(findings(Path::new("/definitely/not/here"), 1)
            .iter()
            .any(|s| s.contains("open-files")));
    }
}

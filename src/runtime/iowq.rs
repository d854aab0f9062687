//! Where a shard's io_uring worker threads may run.
//!
//! Some operations never complete inline in io_uring: `fdatasync` above
//! all, and O_DIRECT writes the filesystem cannot issue without blocking.
//! The kernel hands them to the *io-wq* workers of the submitting thread
//! (`iou-wrk-<tid>`), which inherit that thread's CPU affinity. A shard is
//! pinned to one CPU, so its fdatasync worker can only run there — behind
//! the shard itself, which keeps the CPU for as long as it has requests to
//! serve. The flush then completes only when the scheduler lets the worker
//! run — one candidate for the 4–8 ms fdatasync tails under load that
//! PLATFORM.md puts down to "one scheduler tick".
//!
//! `IORING_REGISTER_IOWQ_AFF` sets the CPUs of the calling thread's io-wq
//! workers (the workers are `PF_NO_SETAFFINITY`: `sched_setaffinity` on
//! them fails). The call needs the fd of one of the thread's rings; glommio
//! does not expose it, so we find the `anon_inode:[io_uring]` fds in
//! `/proc/thread-self/fd` — an in-memory procfs read, once, when the shard
//! starts. Any of the thread's rings will do: the setting is per thread.
//!
//! Measured on 2 cores with the load generator beside the broker
//! (bench/RESULTS.md, "fdatasync completion path"), it did not pay: the
//! other CPU is as busy, and a worker that moves there competes with the
//! other shard. The broker therefore keeps the kernel's default unless
//! `shardIoWorkersOnAllCpus=true`; machines with spare cores may differ.

use std::io;

/// `IORING_REGISTER_IOWQ_AFF` (include/uapi/linux/io_uring.h, Linux 5.14).
const IORING_REGISTER_IOWQ_AFF: libc::c_uint = 17;

/// Lets the calling thread's io-wq workers run on `cpus` (all CPUs this
/// process may use when `None`). Call it on the shard's own thread, after
/// its executor started. Returns the CPUs set.
pub fn set_worker_cpus(cpus: Option<&[usize]>) -> io::Result<Vec<usize>> {
    let cpus = match cpus {
        Some(c) => c.to_vec(),
        None => process_cpus()?,
    };
    if cpus.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no CPU to run io-wq workers on",
        ));
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in &cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {c} out of range"),
            ));
        }
        // SAFETY: `c` is below CPU_SETSIZE (checked above), so CPU_SET
        // writes inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let fd = own_ring_fd()?;
    // SAFETY: io_uring_register reads `size_of::<cpu_set_t>()` bytes from
    // the pointer, which points at `set`, alive for the whole call; it
    // changes only the io-wq affinity of the calling thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            fd,
            IORING_REGISTER_IOWQ_AFF,
            &set as *const libc::cpu_set_t,
            std::mem::size_of::<libc::cpu_set_t>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cpus)
}

/// The CPUs the whole process may use (the main thread's affinity is the
/// one the process started with; shards narrow their own).
fn process_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let pid = std::process::id() as libc::pid_t; // the main thread's tid
                                                 // SAFETY: sched_getaffinity writes at most `size_of::<cpu_set_t>()`
                                                 // bytes into `set`, which we own.
    if unsafe { libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads inside `set` for every c < CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// One io_uring fd of the process (the call acts on the caller's thread
/// whichever ring it names).
fn own_ring_fd() -> io::Result<i32> {
    for entry in std::fs::read_dir("/proc/thread-self/fd")? {
        let entry = entry?;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.as_os_str() == "anon_inode:[io_uring]" {
            if let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no io_uring fd in /proc/thread-self/fd",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_executor_can_let_its_workers_run_on_every_cpu() {
        let got =
            crate::runtime::run_on_executor("iowq", || async { set_worker_cpus(None).map_err(|e| e.to_string()) });
        let cpus = got.expect("IORING_REGISTER_IOWQ_AFF");
        assert!(!cpus.is_empty());
        assert_eq!(cpus, process_cpus().expect("affinity"));
    }
}

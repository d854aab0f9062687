//! Starting the process again in place (`restartWhenDemoted`): after a
//! clean shutdown the broker executes its own image again — same pid,
//! arguments, environment and working directory — so a demoted master
//! rejoins its group as a slave with none of the in-memory state it built
//! as master, and without a supervisor.
//!
//! Every descriptor above stderr is first marked close-on-exec: the new
//! image must not inherit a listening socket (its own bind would fail), the
//! data directory's lock (it would lock itself out) or an io_uring ring.
//! Rust's std and glommio already open most with `O_CLOEXEC`; this makes
//! it hold for every descriptor, whoever opened it.

use std::os::unix::process::CommandExt;

/// Marks every descriptor above 2 close-on-exec, then executes
/// `/proc/self/exe` (the image this process runs, even if its file was
/// replaced since) with this process's arguments. Returns only on failure.
pub fn exec_self() -> std::io::Error {
    if let Err(e) = cloexec_all() {
        return e;
    }
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new("/proc/self/exe");
    if let Some(argv0) = args.next() {
        cmd.arg0(argv0);
    }
    cmd.args(args).exec()
}

fn cloexec_all() -> std::io::Result<()> {
    // Collected first: the directory's own descriptor is in the listing.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: fcntl(F_GETFD/F_SETFD) reads and sets the descriptor's
        // flags only; no memory is passed. A descriptor closed since the
        // listing (the listing's own) gives EBADF, which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_descriptor_above_stderr_becomes_close_on_exec() {
        // A pipe opened without O_CLOEXEC, as a library might.
        let mut p = [0i32; 2];
        // SAFETY: pipe(2) writes two descriptors into the array we own.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        // SAFETY: reads the flags of descriptors we just opened.
        let before = unsafe { libc::fcntl(p[0], libc::F_GETFD) };
        assert_eq!(before & libc::FD_CLOEXEC, 0);
        super::cloexec_all().expect("cloexec");
        for fd in p {
            // SAFETY: as above; then closes the descriptors we own.
            unsafe {
                assert_ne!(libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC, 0, "fd {fd}");
                libc::close(fd);
            }
        }
    }
}

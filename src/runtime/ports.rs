//! Refusing to share a port.
//!
//! Every broker listener sets SO_REUSEPORT (glommio does it, and the shards
//! need it to share the main port), so a second broker started on the same
//! ports would bind them silently and the kernel would split connections
//! between the two. Before any shard binds, [`check_free`] binds each port
//! once *without* SO_REUSEPORT: that fails with EADDRINUSE when anything
//! listens there, reuse-port or not, and the error names the port, what we
//! wanted it for and, from `/proc`, the process holding it.

use std::net::{SocketAddr, TcpListener};

/// One port the broker will listen on, and what for.
pub struct Wanted {
    pub addr: SocketAddr,
    pub what: String,
}

/// Binds (and releases) every address in turn without SO_REUSEPORT; the
/// first that is taken is an error naming it and its holder.
pub fn check_free(wanted: &[Wanted]) -> Result<(), String> {
    for w in wanted {
        if let Err(e) = TcpListener::bind(w.addr) {
            let holder = if e.kind() == std::io::ErrorKind::AddrInUse {
                who_listens(w.addr.port())
                    .map(|p| format!(" by {p}"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            return Err(format!(
                "cannot listen on {} ({}): {e}{holder}; is another broker running? \
                 (choose other ports with --set, e.g. listenPort, namesrvListenPort, \
                 shardListenPortBase, metricsPort)",
                w.addr, w.what
            ));
        }
    }
    Ok(())
}

/// `pid N (comm)` of a process with a listening TCP socket on `port`, read
/// from /proc (best effort: needs permission to read other processes' fds).
pub fn who_listens(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let hit = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| inodes.contains(&n));
            if hit {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("pid {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

/// Inodes of the LISTEN (state 0A) sockets on `port` in a /proc/net/tcp
/// table: `sl local_address rem_address st ... uid timeout inode`.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            (local.ends_with(&want) && *state == "0A").then(|| inode.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_sockets_of_a_port() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:2694 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n\
           1: 0100007F:2694 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n\
           2: 00000000:15B5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0\n";
        assert_eq!(listening_inodes(table, 9876), vec![4242]);
        assert_eq!(listening_inodes(table, 5557), vec![99]);
        assert!(listening_inodes(table, 10911).is_empty());
        assert!(listening_inodes("garbage\nshort line\n", 1).is_empty());
    }

    #[test]
    fn a_taken_port_is_refused_with_its_holder() {
        // A reuse-port listener, as every broker listener is.
        let held = socket2_reuseport_listener();
        let addr = held.local_addr().unwrap();
        let err = check_free(&[Wanted {
            addr,
            what: "test".into(),
        }])
        .unwrap_err();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("pid "), "holder not named: {err}");
        drop(held);
        check_free(&[Wanted {
            addr,
            what: "test".into(),
        }])
        .unwrap();
    }

    fn socket2_reuseport_listener() -> std::net::TcpListener {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket syscalls on a descriptor we create and hand
        // to TcpListener, which owns it from then on; every pointer passed
        // points to a live local of the size given.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as u16;
            sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            assert_eq!(
                libc::bind(
                    fd,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as u32
                ),
                0
            );
            assert_eq!(libc::listen(fd, 16), 0);
            std::net::TcpListener::from_raw_fd(fd)
        }
    }
}

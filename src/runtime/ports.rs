//! Refusing to share a port.
//!
//! Every broker listener sets SO_REUSEPORT (glommio does it, and the shards
//! need it to share the main port), so a second broker started on the same
//! ports would bind them silently and the kernel would split connections
//! between the two. Before any shard binds, [`check_free`] looks for a
//! socket in LISTEN state on each port in `/proc/net/tcp` and `tcp6`
//! (whose address overlaps ours: the same, or either one the wildcard) and
//! refuses to start, naming the port, what we wanted it for and, when
//! `/proc` tells, the process holding it.
//!
//! A bind probe without SO_REUSEPORT would not do: connections of the
//! previous broker still closing on the port (FIN_WAIT, TIME_WAIT) make it
//! fail although nothing listens, so a prompt restart would be refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One port the broker will listen on, and what for.
pub struct Wanted {
    pub addr: SocketAddr,
    pub what: String,
}

/// The first wanted address some socket already listens on is an error
/// naming it and its holder.
///
/// A listener that no process holds is waited for, up to
/// [`ORPHAN_WAIT`]: an io_uring process that just exited (a broker being
/// restarted) releases its sockets only when the kernel tears its rings
/// down, a moment after the process is gone.
pub fn check_free(wanted: &[Wanted]) -> Result<(), String> {
    let deadline = std::time::Instant::now() + ORPHAN_WAIT;
    loop {
        let Some((w, l)) = first_taken(wanted) else {
            return Ok(());
        };
        let holder = holder_of(&[l.inode]);
        if holder.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        }
        let holder = match holder {
            Some(p) => format!(" by {p}"),
            None => " (no process found holding it)".into(),
        };
        return Err(format!(
            "cannot listen on {} ({}): already listened on at {}{holder}; is another broker running? \
             (choose other ports with --set, e.g. listenPort, namesrvListenPort, \
             shardListenPortBase, metricsPort)",
            w.addr, w.what, l.addr
        ));
    }
}

/// How long a listener no process holds may take to go away.
pub const ORPHAN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn first_taken(wanted: &[Wanted]) -> Option<(&Wanted, Listener)> {
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => listening.extend(listeners(&text)),
            Err(e) if table.ends_with('6') && e.kind() == std::io::ErrorKind::NotFound => {} // no IPv6
            Err(e) => {
                log::warn!("cannot read {table} ({e}): not checking whether our ports are taken");
                return None;
            }
        }
    }
    wanted.iter().find_map(|w| {
        let i = listening
            .iter()
            .position(|l| l.addr.port() == w.addr.port() && overlaps(l.addr.ip(), w.addr.ip()))?;
        Some((w, listening.swap_remove(i)))
    })
}

fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let (a, b) = (v4(a), v4(b));
    a == b || a.is_unspecified() || b.is_unspecified()
}

struct Listener {
    addr: SocketAddr,
    inode: u64,
}

/// LISTEN (state 0A) sockets of a /proc/net/tcp or tcp6 table:
/// `sl local_address rem_address st ... uid timeout inode`, addresses in
/// hex as the kernel stores them (32-bit words in host byte order).
fn listeners(table: &str) -> Vec<Listener> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != "0A" {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = parse_ip(ip)?;
            Some(Listener {
                addr: SocketAddr::new(ip, port),
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

fn parse_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// `pid N (comm)` of a process with a listening TCP socket on `port`, read
/// from /proc (best effort: needs permission to read other processes' fds).
pub fn who_listens(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(
                listeners(&text)
                    .into_iter()
                    .filter(|l| l.addr.port() == port)
                    .map(|l| l.inode),
            );
        }
    }
    holder_of(&inodes)
}

/// The process owning one of these socket inodes.
fn holder_of(inodes: &[u64]) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_sockets() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:2694 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n\
           1: 0100007F:2694 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n\
           2: 00000000:15B5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0\n\
           3: garbage\n";
        let l = listeners(table);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].addr, "127.0.0.1:9876".parse().unwrap());
        assert_eq!(l[0].inode, 4242);
        assert_eq!(l[1].addr, "0.0.0.0:5557".parse().unwrap());
        let v6 = "  sl  local_address                         remote_address                        st\n\
           0: 00000000000000000000000000000000:2694 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 7 1\n\
           1: 0000000000000000FFFF00000100007F:2695 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 8 1\n";
        let l = listeners(v6);
        assert_eq!(l[0].addr, "[::]:9876".parse().unwrap());
        assert_eq!(l[1].addr, "[::ffff:127.0.0.1]:9877".parse().unwrap());
    }

    #[test]
    fn addresses_overlap_when_equal_or_wildcard() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(overlaps(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(overlaps(ip("0.0.0.0"), ip("127.0.0.1")));
        assert!(overlaps(ip("127.0.0.1"), ip("::")));
        assert!(overlaps(ip("::ffff:127.0.0.1"), ip("127.0.0.1")));
        assert!(!overlaps(ip("127.0.0.1"), ip("127.0.0.2")));
    }

    #[test]
    fn a_closed_listener_leaves_the_port_free_even_with_connections_closing() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        drop(l);
        drop(s); // server side closes first: FIN_WAIT / TIME_WAIT on the port
        drop(c);
        check_free(&[Wanted {
            addr,
            what: "test".into(),
        }])
        .unwrap();
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
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "holder not named: {err}"
        );
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

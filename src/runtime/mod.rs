//! Our small layer over glommio: executor start-up, the checks it needs on
//! this platform, and helpers to run a future on a fresh executor. Keeping
//! glommio behind this module (see PLATFORM.md: it is in low-maintenance
//! mode) lets us swap it without touching the store or the broker.

use std::future::Future;
use std::path::Path;

/// glommio refuses to start below this much lockable memory.
const MIN_MEMLOCK: u64 = 512 * 1024;

/// Raises the soft RLIMIT_MEMLOCK to the hard limit and checks that
/// glommio can start; the error says how to fix it.
pub fn ensure_memlock() -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other effects.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(format!(
            "getrlimit(RLIMIT_MEMLOCK): {}",
            std::io::Error::last_os_error()
        ));
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising soft to hard
        // is always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < MIN_MEMLOCK {
        return Err(format!(
            "locked-memory limit is {} KiB; io_uring (glommio) needs at least {} KiB. \
             Raise it with `ulimit -l unlimited` or systemd `LimitMEMLOCK=infinity`",
            lim.rlim_cur / 1024,
            MIN_MEMLOCK / 1024
        ));
    }
    Ok(lim.rlim_cur)
}

/// glommio probes polled-I/O support with the first DMA file an executor
/// opens on a device; on an empty file the probe wrongly succeeds and every
/// later read fails with EOPNOTSUPP (glommio #605, #670). Opening a
/// non-empty file first makes the probe answer correctly. Call on each
/// executor before it opens any DMA file under `dir`.
pub async fn prime_dma_probe(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".dma-probe-{}", std::process::id()));
    if let Err(e) = std::fs::write(&path, [0u8; 4096]) {
        let _ = std::fs::remove_file(&path);
        // A full disk: any existing non-empty file of the store on the
        // same device serves as the probe (a broker must restart there).
        let existing = std::fs::read_dir(dir.join("commitlog"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() >= 4096));
        let Some(existing) = existing else {
            return Err(e);
        };
        let f = glommio::io::DmaFile::open(&existing)
            .await
            .map_err(|e| std::io::Error::other(format!("probe open {}: {e}", existing.display())))?;
        return f.close().await.map_err(|e| std::io::Error::other(e.to_string()));
    }
    let f = glommio::io::DmaFile::open(&path).await;
    let _ = std::fs::remove_file(&path);
    let f = f.map_err(|e| std::io::Error::other(format!("probe open {}: {e}", path.display())))?;
    f.close().await.map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}

/// Runs `make()`'s future to completion on a new executor thread and
/// returns its output (tests, tools, the torture child).
pub fn run_on_executor<F, Fut, T>(name: &str, make: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    if let Err(e) = ensure_memlock() {
        panic!("{e}");
    }
    glommio::LocalExecutorBuilder::default()
        .name(name)
        .spawn(move || async move { make().await })
        .unwrap_or_else(|e| panic!("cannot start executor {name}: {e}"))
        .join()
        .unwrap_or_else(|e| panic!("executor {name} failed: {e}"))
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is
/// before it): the time RocketMQ stamps on everything.
pub fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `n` random bytes from the kernel, as lower-case hex (made-up accounts,
/// bench keys). Blocking: at start-up only.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub mod blocking;
pub mod client;
pub mod connection;
pub mod doctor;
pub mod iowq;
pub mod mesh;
pub mod ports;
pub mod reexec;
pub mod shutdown;
pub mod tls;

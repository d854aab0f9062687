//! Process shutdown: SIGINT/SIGTERM set [`SHUTDOWN`], which every shard
//! and server loop polls; a second signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set by the signal handler; every shard polls it.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// How long a graceful shutdown may take before the process gives up on
/// the shards still flushing and exits non-zero saying so.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Installs SIGINT/SIGTERM handling: the first signal starts a graceful
/// shutdown (flush, checkpoint, offsets; bounded by [`SHUTDOWN_GRACE`]),
/// a second one exits at once.
pub fn install_signal_handler() -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::spawn(move || {
        let mut seen = 0;
        for sig in signals.forever() {
            seen += 1;
            if seen == 1 {
                log::info!(
                    "signal {sig}: shutting down (flushing; at most {SHUTDOWN_GRACE:?}; a second signal exits at once)"
                );
                SHUTDOWN.store(true, Ordering::SeqCst);
            } else {
                eprintln!("shardmq: second signal: exiting now, without waiting for the final flush");
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

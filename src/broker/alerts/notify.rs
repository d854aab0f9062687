//! Webhook delivery: a thread of its own (never a shard's), a bounded
//! queue, retries with exponential backoff.
//!
//! A notification is one HTTP(S) POST of a JSON body; any 2xx answer
//! delivers it. A failure (no connection, a timeout, another status) is
//! retried after 1 s, 2 s, 4 s … (at most 60 s apart), [`MAX_ATTEMPTS`] in
//! all, then given up and logged. At most [`MAX_PENDING`] notifications
//! wait (queued or between attempts); beyond that new ones are dropped,
//! counted and logged — a dead endpoint never grows the broker's memory.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MAX_PENDING: usize = 1024;
pub const MAX_ATTEMPTS: u32 = 8;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Delivery counters, shared with the engine (status, metrics).
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub given_up: AtomicU64,
    pub dropped: AtomicU64,
}

struct Job {
    url: String,
    body: String,
    attempt: u32,
    due: Instant,
}

impl PartialEq for Job {
    fn eq(&self, o: &Self) -> bool {
        self.due == o.due
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Job {
    // The earliest due first out of a max-heap.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.due.cmp(&self.due)
    }
}

pub struct Notifier {
    tx: SyncSender<Job>,
    pub counters: Arc<Counters>,
}

impl Notifier {
    /// Starts the delivery thread. `tls`: the client configuration for
    /// https:// URLs (public roots unless `alertWebhookTrustCertPath`).
    pub fn start(tls: Option<Arc<rustls::ClientConfig>>) -> Result<Notifier, String> {
        let (tx, rx) = std::sync::mpsc::sync_channel(MAX_PENDING);
        let counters = Arc::new(Counters::default());
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirects(0);
        if let Some(c) = tls {
            agent = agent.tls_config(c);
        }
        let agent = agent.build();
        let c = counters.clone();
        std::thread::Builder::new()
            .name("alert-webhooks".into())
            .spawn(move || deliver(agent, rx, c))
            .map_err(|e| format!("cannot start the alert webhook thread: {e}"))?;
        Ok(Notifier { tx, counters })
    }

    /// Queues a POST of `body` to `url`; never blocks.
    pub fn post(&self, url: &str, body: String) {
        let job = Job {
            url: url.to_owned(),
            body,
            attempt: 0,
            due: Instant::now(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(job) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            log::error!("alert webhook {url}: {MAX_PENDING} notifications pending, this one is dropped");
        }
    }
}

fn deliver(agent: ureq::Agent, rx: Receiver<Job>, c: Arc<Counters>) {
    let mut retries: BinaryHeap<Job> = BinaryHeap::new();
    loop {
        let wait = retries.peek().map_or(Duration::from_secs(3600), |j| {
            j.due.saturating_duration_since(Instant::now())
        });
        // A due retry goes before new notifications: a steady stream of
        // them must not starve it.
        let due_retry = if wait.is_zero() { retries.pop() } else { None };
        let next = match due_retry {
            Some(j) => Ok(j),
            None => rx.recv_timeout(wait),
        };
        let job = match next {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => match retries.pop() {
                Some(j) => j,
                None => continue,
            },
            Err(RecvTimeoutError::Disconnected) if retries.is_empty() => return,
            Err(RecvTimeoutError::Disconnected) => match retries.pop() {
                Some(j) => {
                    std::thread::sleep(j.due.saturating_duration_since(Instant::now()));
                    j
                }
                None => return,
            },
        };
        let res = agent
            .post(&job.url)
            .set("Content-Type", "application/json")
            .set("User-Agent", "shardmq-alerts")
            .send_string(&job.body);
        match res {
            Ok(_) => {
                c.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                c.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let attempt = job.attempt + 1;
                if attempt >= MAX_ATTEMPTS {
                    c.given_up.fetch_add(1, Ordering::Relaxed);
                    log::error!("alert webhook {}: given up after {attempt} attempts: {e}", job.url);
                } else if retries.len() + 1 >= MAX_PENDING {
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    log::error!("alert webhook {}: too many retries pending, dropped: {e}", job.url);
                } else {
                    let backoff = Duration::from_secs(1 << (attempt - 1).min(6)).min(MAX_BACKOFF);
                    log::warn!(
                        "alert webhook {}: attempt {attempt} failed ({e}); retried in {backoff:?}",
                        job.url
                    );
                    retries.push(Job {
                        attempt,
                        due: Instant::now() + backoff,
                        ..job
                    });
                }
            }
        }
    }
}

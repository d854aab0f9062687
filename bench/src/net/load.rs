//! What runs on each executor: producer connections (pipelined sends with
//! a window of in-flight requests, matched by opaque) and consumer
//! connections (one pull in flight per queue).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::header::pull_sys_flag;
use shardmq::protocol::{
    encode_batch_entry, encode_frame, CommandHeader, FrameDecoder, PullMessageRequestHeader, PullMessageResponseHeader,
    RemotingCommand, SendMessageRequestHeader, UniqIdGenerator,
};
use shardmq::runtime::tls::{ClientTls, Io};

use super::setup::Target;
use super::stats::{code_kind, AliveGuard, Done, Local, Op, Shared};

/// Bench bodies start with this and the send time in ns (little endian).
pub const BODY_MAGIC: &[u8; 8] = b"SMQBENCH";
const READ_CHUNK: usize = 256 * 1024;
const MAX_WRITE: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// Wait for each reply; `--inflight` requests outstanding per connection.
    Sync,
    /// Replies handled as they come; `--inflight` bounds outstanding requests.
    Async,
    /// Oneway requests (flag bit 1): no reply, no latency.
    Oneway,
}

/// Per-run settings every executor needs.
#[derive(Debug)]
pub struct RunCfg {
    pub topic: String,
    pub producer_group: String,
    pub group: String,
    pub size: usize,
    pub batch: usize,
    pub mode: SendMode,
    pub inflight: usize,
    /// Messages per second per producer connection (open loop).
    pub rate_per_conn: Option<f64>,
    pub pull_batch: i32,
    pub e2e: bool,
    /// How long a send waits for its reply (pulls: on top of the long-poll
    /// suspend time), and connects for the connection.
    pub request_timeout: Duration,
}

/// One connection's job.
#[derive(Debug, Clone)]
pub enum ConnPlan {
    Produce { addr: String, queues: Vec<Target> },
    Consume { addr: String, queues: Vec<(Target, i64)> },
}

pub struct Ctx {
    pub shared: Arc<Shared>,
    pub cfg: Arc<RunCfg>,
    pub local: Local,
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Runs the connections of one executor until `stop`.
pub async fn executor_main(shared: Arc<Shared>, cfg: Arc<RunCfg>, plans: Vec<ConnPlan>) {
    let ctx = Rc::new(Ctx {
        shared,
        cfg,
        local: Local::new(),
    });
    for (i, p) in plans.into_iter().enumerate() {
        let c = ctx.clone();
        match p {
            ConnPlan::Produce { addr, queues } => glommio::spawn_local(produce_conn(c, addr, queues, i)).detach(),
            ConnPlan::Consume { addr, queues } => glommio::spawn_local(consume_conn(c, addr, queues)).detach(),
        };
    }
    while !ctx.shared.stop.load(Relaxed) {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        ctx.local.flush(&ctx.shared);
    }
    ctx.local.flush(&ctx.shared);
}

/// Resolves `addr` (from the name server's route, so it may be anything)
/// and connects within the request timeout.
async fn connect(ctx: &Ctx, addr: &str, op: Op) -> Option<Io> {
    let fail = |detail: String| {
        ctx.local.error(
            &ctx.shared,
            op,
            0,
            format!("connect {addr} failed"),
            Some(&detail),
            ctx.shared.measuring(),
        );
        None
    };
    let sa = match addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(sa)) => sa,
        Ok(None) => return fail("the address resolves to nothing".into()),
        Err(e) => return fail(e.to_string()),
    };
    match TcpStream::connect_timeout(sa, ctx.cfg.request_timeout).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            match super::setup::tls() {
                None => Some(Io::Plain(s)),
                Some(config) => match ClientTls::from_config(config).connect(addr, s).await {
                    Ok(io) => Some(io),
                    Err(e) => fail(e),
                },
            }
        }
        Err(e) => fail(e.to_string()),
    }
}

/// Message bodies and send headers of one producer connection.
struct MsgGen {
    template: Vec<u8>,
    ids: UniqIdGenerator,
    header: SendMessageRequestHeader,
}

impl MsgGen {
    fn new(cfg: &RunCfg) -> MsgGen {
        let mut template = vec![b'x'; cfg.size];
        let n = BODY_MAGIC.len().min(cfg.size);
        template[..n].copy_from_slice(&BODY_MAGIC[..n]);
        MsgGen {
            template,
            ids: UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            header: SendMessageRequestHeader {
                producer_group: cfg.producer_group.clone(),
                topic: cfg.topic.clone(),
                default_topic: "TBW102".into(),
                default_topic_queue_nums: 4,
                queue_id: 0,
                sys_flag: 0,
                born_timestamp: 0,
                flag: 0,
                properties: None,
                reconsume_times: Some(0),
                unit_mode: Some(false),
                batch: None,
                max_reconsume_times: None,
                broker_name: None,
            },
        }
    }

    fn body(&self, now_ns: u64) -> BytesMut {
        let mut b = BytesMut::from(&self.template[..]);
        if b.len() >= 16 {
            b[8..16].copy_from_slice(&now_ns.to_le_bytes());
        }
        b
    }

    fn props(&mut self) -> String {
        format!(
            "UNIQ_KEY\u{1}{}\u{2}WAIT\u{1}true\u{2}TAGS\u{1}bench\u{2}",
            self.ids.next_id()
        )
    }

    /// A SEND_MESSAGE_V2, or a SEND_BATCH_MESSAGE of `n` > 1 messages.
    fn request(&mut self, queue: i32, n: usize) -> RemotingCommand {
        let now_ns = wall_ns();
        let mut h = self.header.clone();
        h.queue_id = queue;
        h.born_timestamp = (now_ns / 1_000_000) as i64;
        let (code, body) = if n == 1 {
            h.properties = Some(self.props());
            (request::SEND_MESSAGE_V2, self.body(now_ns).freeze())
        } else {
            h.batch = Some(true);
            h.properties = Some("WAIT\u{1}true\u{2}".into());
            let mut body = BytesMut::with_capacity(n * (self.template.len() + 100));
            for _ in 0..n {
                let props = self.props();
                let b = self.body(now_ns);
                encode_batch_entry(0, &b, &props, &mut body).expect("batch entry");
            }
            (request::SEND_BATCH_MESSAGE, body.freeze())
        };
        RemotingCommand::new_request(code)
            .with_ext_fields(h.to_ext_v2())
            .with_body(body)
    }
}

#[derive(Clone, Copy)]
struct Pending {
    /// When the request was due (latency counts from here; open loop:
    /// its scheduled time).
    start: Instant,
    /// When it was written (the reply timeout counts from here).
    sent: Instant,
    msgs: u64,
    /// Sent after the warm-up: counts in the measured window and took
    /// its messages from the budget.
    measured: bool,
}

/// What a producer connection's writer, reply reader and timeout sweeper
/// share. `window` holds a permit per request that may still be sent; it
/// is closed when the connection is gone, which ends the writer.
struct SendState {
    pending: RefCell<HashMap<i32, Pending>>,
    window: Semaphore,
    /// The writer has finished (no more requests will be added).
    writer_done: Cell<bool>,
}

impl SendState {
    /// Takes the request `opaque` out of the pending set, returning its
    /// window permit; `None` when it already timed out or was answered.
    fn finish(&self, opaque: i32) -> Option<Pending> {
        let p = self.pending.borrow_mut().remove(&opaque)?;
        self.window.signal(1);
        Some(p)
    }

    /// Fails every request still outstanding (`kind`, `detail`).
    fn fail_all(&self, ctx: &Ctx, kind: &str, detail: &str) {
        let lost: Vec<Pending> = self.pending.borrow_mut().drain().map(|(_, p)| p).collect();
        for p in lost {
            self.window.signal(1);
            ctx.local
                .error(&ctx.shared, Op::Send, p.msgs, kind.into(), Some(detail), p.measured);
        }
    }
}

/// A producer connection: a writer that keeps up to `inflight` requests
/// outstanding (coalescing what is ready into one write), a reader that
/// matches replies by opaque, and a sweeper that fails requests with no
/// reply within the request timeout, so that a lost reply can neither
/// hold a window permit nor keep `--messages` from being reached.
///
/// Whether a request is measured is decided once, when it is sent: sends
/// after the warm-up take their messages from the `--messages` budget and
/// count as done when answered, failed or timed out, so the run ends after
/// exactly the budget whatever the phase its replies arrive in.
async fn produce_conn(ctx: Rc<Ctx>, addr: String, queues: Vec<Target>, index: usize) {
    let shared = ctx.shared.clone();
    let _alive = AliveGuard(&shared.producers_alive, 1);
    let Some(stream) = connect(&ctx, &addr, Op::Send).await else {
        return;
    };
    let (rd, mut wr) = futures_lite::io::split(stream);
    let cfg = ctx.cfg.clone();
    let oneway = cfg.mode == SendMode::Oneway;
    let st = Rc::new(SendState {
        pending: RefCell::new(HashMap::new()),
        window: Semaphore::new(cfg.inflight as u64),
        writer_done: Cell::new(false),
    });
    if !oneway {
        glommio::spawn_local(send_reader(ctx.clone(), rd, st.clone())).detach();
        glommio::spawn_local(expire_sends(ctx.clone(), st.clone())).detach();
    }
    let window = &st.window;
    let mut gen = MsgGen::new(&cfg);
    let interval = cfg
        .rate_per_conn
        .map(|r| Duration::from_secs_f64(cfg.batch as f64 / r.max(1e-9)));
    let mut next_due = Instant::now();
    let mut opaque: i32 = 0;
    let mut rr = index;
    let mut buf = BytesMut::with_capacity(MAX_WRITE + 128 * 1024);
    let budgeted = ctx.shared.budget.load(Relaxed) != i64::MAX;
    let mut done = false;
    while !done && !ctx.shared.stop_send.load(Relaxed) {
        if !oneway && window.acquire(1).await.is_err() {
            // The reader closed the window: the connection is gone.
            break;
        }
        let mut have_permit = true;
        let mut n = 0usize;
        // Oneway: messages written in this round, measured / warm-up.
        let mut oneway_msgs = [0u64; 2];
        loop {
            if !have_permit {
                let more = if oneway {
                    n < cfg.inflight
                } else {
                    window.try_acquire(1).unwrap_or(false)
                };
                if !more {
                    break;
                }
            }
            have_permit = false;
            let give_back = |w: &Semaphore| {
                if !oneway {
                    w.signal(1)
                }
            };
            if interval.is_some() {
                let now = Instant::now();
                if next_due > now {
                    if n > 0 {
                        give_back(window);
                        break;
                    }
                    glommio::timer::sleep(next_due - now).await;
                }
            }
            if ctx.shared.stop_send.load(Relaxed) {
                give_back(window);
                done = true;
                break;
            }
            let mut msgs = cfg.batch;
            // Warm-up sends are outside the budget; measured ones take
            // from it, so `--messages N` sends exactly N measured messages.
            let measured = ctx.shared.measuring();
            if budgeted && measured {
                let before = ctx.shared.budget.fetch_sub(cfg.batch as i64, Relaxed);
                if before <= 0 {
                    give_back(window);
                    done = true;
                    break;
                }
                msgs = msgs.min(before as usize);
            }
            let start = match interval {
                Some(iv) => {
                    let s = next_due;
                    next_due += iv;
                    s
                }
                None => Instant::now(),
            };
            let q = &queues[rr % queues.len()];
            rr += 1;
            let mut cmd = gen.request(q.queue, msgs);
            opaque = opaque.wrapping_add(1);
            cmd.opaque = opaque;
            if oneway {
                cmd = cmd.with_oneway();
            }
            if let Err(e) = encode_frame(&cmd, &mut buf) {
                give_back(window);
                ctx.local.error(
                    &ctx.shared,
                    Op::Send,
                    msgs as u64,
                    "encode failed".into(),
                    Some(&e.to_string()),
                    measured,
                );
                // Every request of this run would fail alike.
                done = true;
                break;
            }
            if oneway {
                oneway_msgs[usize::from(measured)] += msgs as u64;
            } else {
                st.pending.borrow_mut().insert(
                    opaque,
                    Pending {
                        start,
                        sent: Instant::now(),
                        msgs: msgs as u64,
                        measured,
                    },
                );
            }
            n += 1;
            if buf.len() >= MAX_WRITE {
                break;
            }
        }
        if !buf.is_empty() {
            let written = async {
                wr.write_all(&buf).await?;
                wr.flush().await // TLS: out of rustls' buffer
            };
            if let Err(e) = written.await {
                let kind = format!("write to {addr} failed");
                if oneway {
                    for (m, measured) in [(oneway_msgs[0], false), (oneway_msgs[1], true)] {
                        if m > 0 {
                            ctx.local
                                .error(&ctx.shared, Op::Send, m, kind.clone(), Some(&e.to_string()), measured);
                        }
                    }
                } else {
                    st.fail_all(&ctx, &kind, &e.to_string());
                }
                break;
            }
            buf.clear();
            for (m, measured) in [(oneway_msgs[0], false), (oneway_msgs[1], true)] {
                if m > 0 {
                    let reqs = m.div_ceil(cfg.batch as u64);
                    ctx.local.ok(
                        &ctx.shared,
                        Op::Send,
                        Done {
                            reqs,
                            msgs: m,
                            bytes: m * cfg.size as u64,
                        },
                        None,
                        measured,
                    );
                }
            }
        }
    }
    st.writer_done.set(true);
    // Keep the connection open while replies are outstanding (the sweeper
    // fails those that do not come).
    while !oneway && !st.pending.borrow().is_empty() && !ctx.shared.stop.load(Relaxed) {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(wr);
}

/// Fails the requests of a producer connection that had no reply within
/// the request timeout (their late replies, if any, are then ignored).
async fn expire_sends(ctx: Rc<Ctx>, st: Rc<SendState>) {
    let timeout = ctx.cfg.request_timeout;
    let tick = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let detail = format!("no reply within {} s", timeout.as_secs_f64());
    loop {
        glommio::timer::sleep(tick).await;
        if ctx.shared.stop.load(Relaxed) || (st.writer_done.get() && st.pending.borrow().is_empty()) {
            return;
        }
        let now = Instant::now();
        let expired: Vec<i32> = st
            .pending
            .borrow()
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for opaque in expired {
            if let Some(p) = st.finish(opaque) {
                ctx.local.error(
                    &ctx.shared,
                    Op::Send,
                    p.msgs,
                    "timeout".into(),
                    Some(&detail),
                    p.measured,
                );
            }
        }
    }
}

async fn send_reader(ctx: Rc<Ctx>, mut rd: ReadHalf<Io>, st: Rc<SendState>) {
    let decoder = FrameDecoder::new();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let size = ctx.cfg.size as u64;
    let (kind, detail) = 'conn: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) => break 'conn ("connection closed", "by the broker".to_string()),
            Ok(n) => n,
            Err(e) => break 'conn ("read failed", e.to_string()),
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let cmd = match decoder.decode(&mut buf) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => break 'conn ("undecodable reply", e.to_string()),
            };
            if !cmd.is_response() {
                continue;
            }
            let Some(p) = st.finish(cmd.opaque) else {
                continue;
            };
            if cmd.code == response::SUCCESS {
                let ns = p.start.elapsed().as_nanos() as u64;
                ctx.local.ok(
                    &ctx.shared,
                    Op::Send,
                    Done {
                        reqs: 1,
                        msgs: p.msgs,
                        bytes: p.msgs * size,
                    },
                    Some(ns),
                    p.measured,
                );
            } else {
                ctx.local.error(
                    &ctx.shared,
                    Op::Send,
                    p.msgs,
                    code_kind(cmd.code),
                    cmd.remark.as_deref(),
                    p.measured,
                );
            }
        }
    };
    // The connection is gone: what is outstanding failed, and the writer
    // must not wait for permits that no reply will return.
    let idle = st.pending.borrow().is_empty();
    if idle && !st.writer_done.get() && !ctx.shared.stop.load(Relaxed) {
        ctx.local.error(
            &ctx.shared,
            Op::Send,
            0,
            kind.into(),
            Some(&detail),
            ctx.shared.measuring(),
        );
    }
    st.fail_all(&ctx, kind, &detail);
    st.window.close();
}

/// Long-polling pulls ask the broker to hold them this long when the
/// queue has nothing new.
const PULL_SUSPEND: Duration = Duration::from_secs(15);

/// Why a call failed: the connection is gone, or this one request had no
/// reply in time (the connection may still be usable).
enum CallError {
    Closed(String),
    Timeout(Duration),
}

/// A connection with any number of requests in flight, each answered
/// through a oneshot (pulls: low request rate, simplicity first).
struct Conn {
    wr: futures::lock::Mutex<WriteHalf<Io>>,
    pending: RefCell<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next: Cell<i32>,
}

impl Conn {
    /// Sends `cmd` and waits for its reply at most `timeout` (writing
    /// included); a reply that comes later is dropped.
    async fn call(&self, mut cmd: RemotingCommand, timeout: Duration) -> Result<RemotingCommand, CallError> {
        let opaque = self.next.get().wrapping_add(1);
        self.next.set(opaque);
        cmd.opaque = opaque;
        let mut buf = BytesMut::new();
        encode_frame(&cmd, &mut buf).map_err(|e| CallError::Closed(format!("encode: {e}")))?;
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(opaque, tx);
        let exchange = async {
            let mut wr = self.wr.lock().await;
            let written = async {
                wr.write_all(&buf).await?;
                wr.flush().await
            };
            written.await.map_err(|e| CallError::Closed(format!("write: {e}")))?;
            drop(wr);
            rx.await.map_err(|_| CallError::Closed("connection closed".to_string()))
        };
        let timer = async {
            glommio::timer::sleep(timeout).await;
            Err(CallError::Timeout(timeout))
        };
        let r = futures_lite::future::or(exchange, timer).await;
        if r.is_err() {
            self.pending.borrow_mut().remove(&opaque);
        }
        r
    }
}

async fn conn_reader(conn: Rc<Conn>, mut rd: ReadHalf<Io>) {
    let decoder = FrameDecoder::new();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    'read: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(c)) if c.is_response() => {
                    if let Some(tx) = conn.pending.borrow_mut().remove(&c.opaque) {
                        let _ = tx.send(c);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
    }
    // Dropping the senders fails every call waiting on this connection.
    conn.pending.borrow_mut().clear();
}

async fn consume_conn(ctx: Rc<Ctx>, addr: String, queues: Vec<(Target, i64)>) {
    let shared = ctx.shared.clone();
    // Every pull loop counts as alive until it runs (and guards itself).
    let unstarted = AliveGuard(&shared.pullers_alive, queues.len());
    let Some(stream) = connect(&ctx, &addr, Op::Pull).await else {
        return;
    };
    let (rd, wr) = futures_lite::io::split(stream);
    let conn = Rc::new(Conn {
        wr: futures::lock::Mutex::new(wr),
        pending: RefCell::new(HashMap::new()),
        next: Cell::new(0),
    });
    glommio::spawn_local(conn_reader(conn.clone(), rd)).detach();
    for (t, offset) in queues {
        glommio::spawn_local(pull_loop(ctx.clone(), conn.clone(), t, offset)).detach();
    }
    // The loops now account for themselves.
    std::mem::forget(unstarted);
}

/// PULL_MESSAGE from `offset` on, committing the offset reached
/// (COMMIT_OFFSET bit), with long polling, until `stop` or the connection
/// is gone. A pull with no reply within the suspend time plus the request
/// timeout is counted as an error and sent again.
async fn pull_loop(ctx: Rc<Ctx>, conn: Rc<Conn>, t: Target, mut offset: i64) {
    let shared = ctx.shared.clone();
    let _alive = AliveGuard(&shared.pullers_alive, 1);
    let cfg = ctx.cfg.clone();
    let mut committed = offset;
    // The offset the last pull carried (COMMIT_OFFSET): what the broker has.
    let mut sent = -1;
    while !ctx.shared.stop.load(Relaxed) {
        // consume --messages: once the measured window has what it needs,
        // pull no more (what is in flight still counts).
        let left = ctx.shared.pull_budget.load(Relaxed);
        if left <= 0 && ctx.shared.measuring() {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let max_msg_nums = if ctx.shared.measuring() {
            cfg.pull_batch.min(i32::try_from(left).unwrap_or(i32::MAX))
        } else {
            cfg.pull_batch
        };
        let mut sys_flag = pull_sys_flag::SUSPEND | pull_sys_flag::SUBSCRIPTION;
        if committed > 0 {
            sys_flag |= pull_sys_flag::COMMIT_OFFSET;
            sent = committed;
        }
        let h = PullMessageRequestHeader {
            consumer_group: cfg.group.clone(),
            topic: cfg.topic.clone(),
            queue_id: t.queue,
            queue_offset: offset,
            max_msg_nums,
            sys_flag,
            commit_offset: committed,
            suspend_timeout_millis: PULL_SUSPEND.as_millis() as i64,
            subscription: Some("*".into()),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
        };
        let start = Instant::now();
        let req = RemotingCommand::new_request(request::PULL_MESSAGE).with_ext_fields(h.to_ext());
        let r = match conn.call(req, PULL_SUSPEND + cfg.request_timeout).await {
            Ok(r) => r,
            Err(CallError::Timeout(d)) => {
                let detail = format!("no reply within {} s", d.as_secs_f64());
                ctx.local.error(
                    &ctx.shared,
                    Op::Pull,
                    0,
                    "timeout".into(),
                    Some(&detail),
                    ctx.shared.measuring(),
                );
                continue;
            }
            Err(CallError::Closed(e)) => {
                if !ctx.shared.stop.load(Relaxed) {
                    ctx.local.error(
                        &ctx.shared,
                        Op::Pull,
                        0,
                        "connection lost".into(),
                        Some(&e),
                        ctx.shared.measuring(),
                    );
                }
                return;
            }
        };
        let latency = start.elapsed().as_nanos() as u64;
        let next = PullMessageResponseHeader::from_ext(&r.ext_fields)
            .ok()
            .map(|h| h.next_begin_offset);
        let measured = ctx.shared.measuring();
        match r.code {
            response::SUCCESS => {
                let (msgs, bytes) = scan_records(&ctx, &r.body);
                ctx.local.ok(
                    &ctx.shared,
                    Op::Pull,
                    Done { reqs: 1, msgs, bytes },
                    Some(latency),
                    measured,
                );
                offset = next.unwrap_or(offset + msgs as i64);
                committed = offset;
            }
            response::PULL_NOT_FOUND | response::PULL_RETRY_IMMEDIATELY => {
                if let Some(n) = next {
                    offset = n;
                }
            }
            response::PULL_OFFSET_MOVED => {
                ctx.local.error(
                    &ctx.shared,
                    Op::Pull,
                    0,
                    code_kind(r.code),
                    r.remark.as_deref(),
                    measured,
                );
                if let Some(n) = next {
                    offset = n;
                }
            }
            code => {
                ctx.local
                    .error(&ctx.shared, Op::Pull, 0, code_kind(code), r.remark.as_deref(), measured);
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Like a Java consumer shutting down: commit the offset reached, which
    // no later pull will carry, so `consumer-progress` shows what was read.
    if committed > 0 && committed != sent {
        let mut req = RemotingCommand::new_request(request::UPDATE_CONSUMER_OFFSET);
        req.ext_fields.insert("consumerGroup", cfg.group.as_str());
        req.ext_fields.insert("topic", cfg.topic.as_str());
        req.ext_fields.insert("queueId", t.queue.to_string());
        req.ext_fields.insert("commitOffset", committed.to_string());
        match conn.call(req, cfg.request_timeout).await {
            Ok(r) if r.code == response::SUCCESS => {}
            Ok(r) => log::warn!(
                "final offset commit of queue {}: code {} {:?}",
                t.queue,
                r.code,
                r.remark
            ),
            Err(_) => log::warn!("final offset commit of queue {}: no reply", t.queue),
        }
    }
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    b.get(at..at + 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        i64::from_be_bytes(a)
    })
}

/// Born time (ns since the epoch) and body length of a stored record
/// (RocketMQ's MessageExt layout): from the bench body when it carries
/// one, else the record's bornTimestamp (ms).
pub fn record_born(rec: &[u8]) -> Option<(u64, usize)> {
    let sys_flag = be_i32(rec, 36)?;
    let born_ms = be_i64(rec, 40)?;
    let mut p = 48 + if sys_flag & 0x10 != 0 { 20 } else { 8 };
    p += 8 + if sys_flag & 0x20 != 0 { 20 } else { 8 };
    p += 4 + 8;
    let body_len = usize::try_from(be_i32(rec, p)?).ok()?;
    let body = rec.get(p + 4..p + 4 + body_len)?;
    if body.len() >= 16 && &body[..8] == BODY_MAGIC {
        let mut a = [0u8; 8];
        a.copy_from_slice(&body[8..16]);
        return Some((u64::from_le_bytes(a), body_len));
    }
    Some(((born_ms.max(0) as u64) * 1_000_000, body_len))
}

/// Counts the records of a pull body (and their body bytes), recording
/// end-to-end latencies in e2e mode.
fn scan_records(ctx: &Ctx, body: &Bytes) -> (u64, u64) {
    let measuring = ctx.shared.measuring();
    let since = ctx.shared.measure_start_wall_ns.load(Relaxed);
    let now = wall_ns();
    let (mut n, mut bytes, mut at) = (0u64, 0u64, 0usize);
    while let Some(total) = be_i32(body, at) {
        let total = total as usize;
        if total < 88 || at + total > body.len() {
            break;
        }
        let rec = &body[at..at + total];
        if let Some((born, len)) = record_born(rec) {
            bytes += len as u64;
            if ctx.cfg.e2e && measuring && born >= since {
                ctx.local.latency(Op::E2e, now.saturating_sub(born));
            }
        }
        n += 1;
        at += total;
    }
    (n, bytes)
}

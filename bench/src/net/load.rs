//! What runs on each executor: producer connections (pipelined sends with
//! a window of in-flight requests, matched by opaque) and consumer
//! connections (one pull in flight per queue).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
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

use super::setup::Target;
use super::stats::{code_kind, Local, Op, Shared};

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

async fn connect(ctx: &Ctx, addr: &str, op: Op) -> Option<TcpStream> {
    match TcpStream::connect(addr).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            Some(s)
        }
        Err(e) => {
            ctx.local.error(&ctx.shared, op, 0, format!("connect {addr}: {e}"));
            None
        }
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

struct Pending {
    start: Instant,
    msgs: u64,
}

/// A producer connection: a writer that keeps up to `inflight` requests
/// outstanding (coalescing what is ready into one write) and a reader that
/// matches replies by opaque.
async fn produce_conn(ctx: Rc<Ctx>, addr: String, queues: Vec<Target>, index: usize) {
    let Some(stream) = connect(&ctx, &addr, Op::Send).await else {
        return;
    };
    let (rd, mut wr) = futures_lite::io::split(stream);
    let cfg = ctx.cfg.clone();
    let oneway = cfg.mode == SendMode::Oneway;
    let pending: Rc<RefCell<HashMap<i32, Pending>>> = Rc::new(RefCell::new(HashMap::new()));
    let window = Rc::new(Semaphore::new(cfg.inflight as u64));
    if !oneway {
        glommio::spawn_local(send_reader(ctx.clone(), rd, pending.clone(), window.clone())).detach();
    }
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
            break;
        }
        let mut have_permit = true;
        let mut n = 0usize;
        let mut oneway_msgs = 0u64;
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
                        give_back(&window);
                        break;
                    }
                    glommio::timer::sleep(next_due - now).await;
                }
            }
            if ctx.shared.stop_send.load(Relaxed) {
                give_back(&window);
                done = true;
                break;
            }
            let mut msgs = cfg.batch;
            // The budget counts every message sent, warm-up included, so
            // `--messages N` is an exact total however early a connection
            // starts (before measuring begins it used to send uncounted).
            if budgeted {
                let before = ctx.shared.budget.fetch_sub(cfg.batch as i64, Relaxed);
                if before <= 0 {
                    give_back(&window);
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
                oneway_msgs += msgs as u64;
            } else {
                pending.borrow_mut().insert(
                    opaque,
                    Pending {
                        start,
                        msgs: msgs as u64,
                    },
                );
            }
            if let Err(e) = encode_frame(&cmd, &mut buf) {
                ctx.local
                    .error(&ctx.shared, Op::Send, msgs as u64, format!("encode: {e}"));
            }
            n += 1;
            if buf.len() >= MAX_WRITE {
                break;
            }
        }
        if !buf.is_empty() {
            if let Err(e) = wr.write_all(&buf).await {
                ctx.local.error(&ctx.shared, Op::Send, 0, format!("write {addr}: {e}"));
                return;
            }
            buf.clear();
            if oneway {
                let bytes = oneway_msgs * cfg.size as u64;
                ctx.local.ok(&ctx.shared, Op::Send, oneway_msgs, bytes, None);
            }
        }
    }
    // Keep the connection open while replies are outstanding.
    while !oneway && !pending.borrow().is_empty() && !ctx.shared.stop.load(Relaxed) {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(wr);
}

async fn send_reader(
    ctx: Rc<Ctx>,
    mut rd: ReadHalf<TcpStream>,
    pending: Rc<RefCell<HashMap<i32, Pending>>>,
    window: Rc<Semaphore>,
) {
    let decoder = FrameDecoder::new();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let size = ctx.cfg.size as u64;
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                if !ctx.shared.stop.load(Relaxed) {
                    ctx.local.error(&ctx.shared, Op::Send, 0, format!("read: {e}"));
                }
                break;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let cmd = match decoder.decode(&mut buf) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    ctx.local.error(&ctx.shared, Op::Send, 0, format!("decode: {e}"));
                    return;
                }
            };
            if !cmd.is_response() {
                continue;
            }
            let Some(p) = pending.borrow_mut().remove(&cmd.opaque) else {
                continue;
            };
            window.signal(1);
            if cmd.code == response::SUCCESS {
                let ns = p.start.elapsed().as_nanos() as u64;
                ctx.local.ok(&ctx.shared, Op::Send, p.msgs, p.msgs * size, Some(ns));
            } else {
                ctx.local.error(&ctx.shared, Op::Send, p.msgs, code_kind(cmd.code));
            }
        }
    }
    // The connection is gone: what is outstanding failed.
    let lost: Vec<Pending> = pending.borrow_mut().drain().map(|(_, p)| p).collect();
    if !ctx.shared.stop.load(Relaxed) {
        for p in lost {
            ctx.local
                .error(&ctx.shared, Op::Send, p.msgs, "connection closed".into());
        }
    }
}

/// A connection with any number of requests in flight, each answered
/// through a oneshot (pulls: low request rate, simplicity first).
struct Conn {
    wr: futures::lock::Mutex<WriteHalf<TcpStream>>,
    pending: RefCell<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next: Cell<i32>,
}

impl Conn {
    async fn call(&self, mut cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let opaque = self.next.get().wrapping_add(1);
        self.next.set(opaque);
        cmd.opaque = opaque;
        let mut buf = BytesMut::new();
        encode_frame(&cmd, &mut buf).map_err(|e| e.to_string())?;
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(opaque, tx);
        self.wr
            .lock()
            .await
            .write_all(&buf)
            .await
            .map_err(|e| format!("write: {e}"))?;
        rx.await.map_err(|_| "connection closed".to_string())
    }
}

async fn conn_reader(conn: Rc<Conn>, mut rd: ReadHalf<TcpStream>) {
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
    conn.pending.borrow_mut().clear();
}

async fn consume_conn(ctx: Rc<Ctx>, addr: String, queues: Vec<(Target, i64)>) {
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
}

/// PULL_MESSAGE from `offset` on, committing the offset reached
/// (COMMIT_OFFSET bit), with long polling, until `stop`.
async fn pull_loop(ctx: Rc<Ctx>, conn: Rc<Conn>, t: Target, mut offset: i64) {
    let cfg = ctx.cfg.clone();
    let mut committed = offset;
    while !ctx.shared.stop.load(Relaxed) {
        let mut sys_flag = pull_sys_flag::SUSPEND | pull_sys_flag::SUBSCRIPTION;
        if committed > 0 {
            sys_flag |= pull_sys_flag::COMMIT_OFFSET;
        }
        let h = PullMessageRequestHeader {
            consumer_group: cfg.group.clone(),
            topic: cfg.topic.clone(),
            queue_id: t.queue,
            queue_offset: offset,
            max_msg_nums: cfg.pull_batch,
            sys_flag,
            commit_offset: committed,
            suspend_timeout_millis: 15_000,
            subscription: Some("*".into()),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
        };
        let start = Instant::now();
        let r = match conn
            .call(RemotingCommand::new_request(request::PULL_MESSAGE).with_ext_fields(h.to_ext()))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                if !ctx.shared.stop.load(Relaxed) {
                    ctx.local.error(&ctx.shared, Op::Pull, 0, e);
                }
                return;
            }
        };
        let latency = start.elapsed().as_nanos() as u64;
        let next = PullMessageResponseHeader::from_ext(&r.ext_fields)
            .ok()
            .map(|h| h.next_begin_offset);
        match r.code {
            response::SUCCESS => {
                let (msgs, bytes) = scan_records(&ctx, &r.body);
                ctx.local.ok(&ctx.shared, Op::Pull, msgs, bytes, Some(latency));
                offset = next.unwrap_or(offset + msgs as i64);
                committed = offset;
            }
            response::PULL_NOT_FOUND | response::PULL_RETRY_IMMEDIATELY => {
                if let Some(n) = next {
                    offset = n;
                }
            }
            response::PULL_OFFSET_MOVED => {
                ctx.local.error(&ctx.shared, Op::Pull, 0, code_kind(r.code));
                if let Some(n) = next {
                    offset = n;
                }
            }
            code => {
                ctx.local.error(&ctx.shared, Op::Pull, 0, code_kind(code));
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
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

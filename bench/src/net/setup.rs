//! Set-up before the load starts, on the main thread with blocking
//! sockets: the topic's route from the name server, topic creation through
//! `TBW102`'s brokers, and start offsets for consumers.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shardmq::admin::client::Stream;
use shardmq::protocol::bodies::route::TopicRouteData;
use shardmq::protocol::bodies::topic_config::perm;
use shardmq::protocol::bodies::JsonBody;
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::{encode_frame, FrameDecoder, RemotingCommand};

const TIMEOUT: Duration = Duration::from_secs(10);

/// `--tls`: every connection of this run (set-up and load) speaks TLS.
static TLS: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();

/// Turns TLS on for the whole run (the server's certificate is not checked:
/// the bench measures the cost of the channel, not the PKI).
pub fn enable_tls() -> Result<(), String> {
    let config = shardmq::runtime::tls::client_config(&Default::default())?;
    let _ = TLS.set(config);
    Ok(())
}

/// The TLS configuration when `--tls` was given.
pub fn tls() -> Option<std::sync::Arc<rustls::ClientConfig>> {
    TLS.get().cloned()
}

/// One request at a time over a blocking socket; connecting, each write
/// and each read wait at most [`TIMEOUT`].
pub struct BlockingClient {
    addr: String,
    stream: Stream,
    buf: BytesMut,
    decoder: FrameDecoder,
    opaque: i32,
}

impl BlockingClient {
    pub fn connect(addr: &str) -> Result<BlockingClient, String> {
        let sa = addr
            .to_socket_addrs()
            .map_err(|e| format!("address {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("address {addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sa, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| format!("{addr}: {e}"))?;
        let stream = match tls() {
            Some(config) => Stream::Tls(Box::new(shardmq::runtime::tls::blocking_client(config, addr, stream)?)),
            None => Stream::Plain(stream),
        };
        Ok(BlockingClient {
            addr: addr.to_string(),
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(),
            opaque: 1,
        })
    }

    pub fn call(&mut self, mut cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        self.opaque += 1;
        cmd.opaque = self.opaque;
        let mut out = BytesMut::new();
        encode_frame(&cmd, &mut out).map_err(|e| e.to_string())?;
        self.stream
            .write_all(&out)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write {}: {e}", self.addr))?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Some(r) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| format!("{}: {e}", self.addr))?
            {
                if r.is_response() && r.opaque == self.opaque {
                    return Ok(r);
                }
            }
            let n = self.stream.read(&mut chunk).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    format!("{}: no reply within {} s", self.addr, TIMEOUT.as_secs())
                }
                _ => format!("read {}: {e}", self.addr),
            })?;
            if n == 0 {
                return Err(format!("{} closed the connection", self.addr));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A queue to send to or pull from: the broker entry, its master address,
/// and the queue id within that entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub broker: String,
    pub addr: String,
    pub queue: i32,
}

/// GET_ROUTEINFO_BY_TOPIC; `None` when the topic does not exist.
pub fn route(namesrv: &str, topic: &str) -> Result<Option<TopicRouteData>, String> {
    let mut c = BlockingClient::connect(namesrv)?;
    let mut cmd = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC);
    cmd.ext_fields.insert("topic", topic);
    let r = c.call(cmd)?;
    match r.code {
        response::SUCCESS => TopicRouteData::decode(&r.body)
            .map(Some)
            .map_err(|e| format!("route of {topic}: {e}")),
        response::TOPIC_NOT_EXIST => Ok(None),
        code => Err(format!(
            "route of {topic}: code {code} {}",
            r.remark.unwrap_or_default()
        )),
    }
}

/// Every (broker entry, queue) with the permission, whose entry has a
/// master (broker id 0), ordered by queue id then broker name so that
/// taking the first N spreads over the brokers.
pub fn targets(route: &TopicRouteData, write: bool) -> Vec<Target> {
    let mut out = Vec::new();
    for qd in &route.queue_datas {
        let ok = if write {
            perm::is_writeable(qd.perm)
        } else {
            perm::is_readable(qd.perm)
        };
        if !ok {
            continue;
        }
        let Some(addr) = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == qd.broker_name)
            .and_then(|b| b.master_addr())
        else {
            continue;
        };
        let n = if write { qd.write_queue_nums } else { qd.read_queue_nums };
        for q in 0..n.max(0) {
            out.push(Target {
                broker: qd.broker_name.clone(),
                addr: addr.to_string(),
                queue: q,
            });
        }
    }
    out.sort_by(|a, b| (a.queue, &a.broker).cmp(&(b.queue, &b.broker)));
    out
}

/// UPDATE_AND_CREATE_TOPIC (17) to every master of TBW102's route, then
/// wait until the name server lists at least `queues` writable queues.
pub fn create_topic(namesrv: &str, topic: &str, queues: u32) -> Result<(), String> {
    let tbw = route(namesrv, "TBW102")?.ok_or_else(|| {
        format!("topic {topic} does not exist and the name server has no route for TBW102 to find brokers to create it on; create it yourself (mqadmin updateTopic)")
    })?;
    let addrs: BTreeSet<String> = tbw
        .broker_datas
        .iter()
        .filter_map(|b| b.master_addr().map(str::to_string))
        .collect();
    if addrs.is_empty() {
        return Err("TBW102's route lists no master broker".into());
    }
    for addr in &addrs {
        let mut c = BlockingClient::connect(addr)?;
        let mut cmd = RemotingCommand::new_request(request::UPDATE_AND_CREATE_TOPIC);
        let ext = &mut cmd.ext_fields;
        ext.insert("topic", topic);
        ext.insert("defaultTopic", "TBW102");
        ext.insert("readQueueNums", queues.to_string());
        ext.insert("writeQueueNums", queues.to_string());
        ext.insert("perm", perm::READ_WRITE.to_string());
        ext.insert("topicFilterType", "SINGLE_TAG");
        ext.insert("topicSysFlag", "0");
        ext.insert("order", "false");
        let r = c.call(cmd)?;
        if r.code != response::SUCCESS {
            return Err(format!(
                "creating {topic} on {addr}: code {} {}",
                r.code,
                r.remark.unwrap_or_default()
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = route(namesrv, topic)? {
            if targets(&r, true).len() >= queues as usize {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("created {topic}, but its route did not appear within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The route's targets, creating the topic first when allowed.
pub fn resolve(namesrv: &str, topic: &str, create: bool, create_queues: u32) -> Result<TopicRouteData, String> {
    if let Some(r) = route(namesrv, topic)? {
        return Ok(r);
    }
    if !create {
        return Err(format!(
            "topic {topic} does not exist (name server {namesrv}); create it or drop --create-topic false"
        ));
    }
    eprintln!("topic {topic} does not exist: creating it with {create_queues} queues per broker");
    create_topic(namesrv, topic, create_queues)?;
    route(namesrv, topic)?.ok_or_else(|| format!("topic {topic} vanished after creation"))
}

/// GET_MAX_OFFSET (tail) or GET_MIN_OFFSET (oldest) of a queue.
pub fn queue_offset(t: &Target, topic: &str, tail: bool) -> Result<i64, String> {
    let mut c = BlockingClient::connect(&t.addr)?;
    let code = if tail {
        request::GET_MAX_OFFSET
    } else {
        request::GET_MIN_OFFSET
    };
    let mut cmd = RemotingCommand::new_request(code);
    cmd.ext_fields.insert("topic", topic);
    cmd.ext_fields.insert("queueId", t.queue.to_string());
    let r = c.call(cmd)?;
    if r.code != response::SUCCESS {
        return Err(format!(
            "offset of {topic}/{}/{}: code {} {}",
            t.broker,
            t.queue,
            r.code,
            r.remark.unwrap_or_default()
        ));
    }
    r.ext_i64("offset")
        .ok()
        .flatten()
        .ok_or_else(|| format!("offset of {topic}/{}/{}: no offset in reply", t.broker, t.queue))
}

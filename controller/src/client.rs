//! Blocking client (std::net, no tokio) for brokers and admin tools.
//!
//! It keeps one connection, tries the controllers in turn, follows the
//! `NOT_LEADER` hint, and gives up after [`PASSES`] passes over the
//! addresses (with a short pause between passes).

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::types::{AlterReq, BrokerReq, ErrorCode, GroupView, Status};
use crate::wire::{read_frame_blocking, write_frame_blocking};

/// Passes over the address list before giving up.
pub const PASSES: usize = 3;
const PASS_PAUSE: Duration = Duration::from_millis(200);

/// A failed client call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Stale master / epoch (the request lost a race; re-read the group).
    #[error("fenced: {0}")]
    Fenced(String),
    /// The request is malformed or names unknown brokers.
    #[error("invalid: {0}")]
    Invalid(String),
    /// No controller leader answered.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    code: Option<ErrorCode>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    leader: Option<String>,
}

enum Attempt {
    Done(Value),
    Fatal(ClientError),
    /// Try another node, the hinted leader first when there is one.
    Next(Option<String>, String),
}

pub struct Client {
    addrs: Vec<String>,
    timeout: Duration,
    conn: Option<(String, TcpStream)>,
    leader: Option<String>,
}

impl Client {
    /// `addrs`: the controllers, "host:port"; `timeout` bounds connect, read and write.
    pub fn new(addrs: Vec<String>, timeout: Duration) -> Self {
        Client {
            addrs,
            timeout,
            conn: None,
            leader: None,
        }
    }

    fn connect(&self, addr: &str) -> std::io::Result<TcpStream> {
        let mut last = std::io::Error::new(ErrorKind::NotFound, format!("{addr}: no address"));
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))?;
                    s.set_write_timeout(Some(self.timeout))?;
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One request/response with `addr` (reusing the connection).
    fn roundtrip(&mut self, addr: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let reuse = matches!(&self.conn, Some((a, _)) if a == addr);
        if !reuse {
            self.conn = None;
            let s = self.connect(addr)?;
            self.conn = Some((addr.to_string(), s));
        }
        let Some((_, s)) = self.conn.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        let res = write_frame_blocking(s, body).and_then(|_| read_frame_blocking(s));
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    fn attempt(&mut self, addr: &str, body: &[u8]) -> Attempt {
        let bytes = match self.roundtrip(addr, body) {
            Ok(b) => b,
            Err(e) => return Attempt::Next(None, format!("{addr}: {e}")),
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                self.conn = None;
                return Attempt::Next(None, format!("{addr}: bad reply: {e}"));
            }
        };
        let reply: Reply = match serde_json::from_value(value.clone()) {
            Ok(r) => r,
            Err(e) => return Attempt::Next(None, format!("{addr}: bad reply: {e}")),
        };
        if reply.ok {
            return Attempt::Done(value);
        }
        let msg = format!("{addr}: {}", reply.message.unwrap_or_default());
        match reply.code {
            Some(ErrorCode::Fenced) => Attempt::Fatal(ClientError::Fenced(msg)),
            Some(ErrorCode::Invalid) => Attempt::Fatal(ClientError::Invalid(msg)),
            Some(ErrorCode::NotLeader) => Attempt::Next(reply.leader, msg),
            Some(ErrorCode::Unavailable) | None => Attempt::Next(None, msg),
        }
    }

    /// Send to the leader: the remembered one, then each address, following hints.
    fn call(&mut self, req: &Value) -> Result<Value, ClientError> {
        let body = serde_json::to_vec(req).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let mut last = "no controller address".to_string();
        for pass in 0..PASSES {
            if pass > 0 {
                std::thread::sleep(PASS_PAUSE);
            }
            let mut queue: Vec<String> = self.leader.iter().cloned().collect();
            queue.extend(self.addrs.iter().cloned());
            let mut tried: Vec<String> = Vec::new();
            let mut hints = 0;
            while let Some(addr) = if queue.is_empty() { None } else { Some(queue.remove(0)) } {
                if tried.contains(&addr) {
                    continue;
                }
                tried.push(addr.clone());
                match self.attempt(&addr, &body) {
                    Attempt::Done(v) => {
                        self.leader = Some(addr);
                        return Ok(v);
                    }
                    Attempt::Fatal(e) => {
                        self.leader = Some(addr);
                        return Err(e);
                    }
                    Attempt::Next(hint, msg) => {
                        last = msg;
                        if self.leader.as_deref() == Some(addr.as_str()) {
                            self.leader = None;
                        }
                        if let Some(h) = hint {
                            if hints < self.addrs.len() + 1 && !tried.contains(&h) {
                                hints += 1;
                                queue.insert(0, h);
                            }
                        }
                    }
                }
            }
        }
        Err(ClientError::Unavailable(last))
    }

    fn field<T: DeserializeOwned>(v: Value, name: &str) -> Result<T, ClientError> {
        let f = v
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::Unavailable(format!("reply without {name}")))?;
        serde_json::from_value(f).map_err(|e| ClientError::Unavailable(format!("bad {name}: {e}")))
    }

    fn broker_op(&mut self, op: &str, req: &BrokerReq) -> Result<GroupView, ClientError> {
        let mut v = serde_json::to_value(req).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("op".into(), json!(op));
        }
        Self::field(self.call(&v)?, "group")
    }

    pub fn register(&mut self, req: &BrokerReq) -> Result<GroupView, ClientError> {
        self.broker_op("register", req)
    }

    pub fn heartbeat(&mut self, req: &BrokerReq) -> Result<GroupView, ClientError> {
        self.broker_op("heartbeat", req)
    }

    pub fn alter_sync_state_set(&mut self, req: &AlterReq) -> Result<GroupView, ClientError> {
        let mut v = serde_json::to_value(req).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("op".into(), json!("alter_sync_state_set"));
        }
        Self::field(self.call(&v)?, "group")
    }

    pub fn groups(&mut self) -> Result<Vec<GroupView>, ClientError> {
        Self::field(self.call(&json!({"op": "groups"}))?, "groups")
    }

    /// `status` of one node (no leader following).
    pub fn status(&mut self, addr: &str) -> Result<Status, ClientError> {
        let body = serde_json::to_vec(&json!({"op": "status"})).map_err(|e| ClientError::Invalid(e.to_string()))?;
        match self.attempt(addr, &body) {
            Attempt::Done(v) => {
                serde_json::from_value(v).map_err(|e| ClientError::Unavailable(format!("bad status: {e}")))
            }
            Attempt::Fatal(e) => Err(e),
            Attempt::Next(_, msg) => Err(ClientError::Unavailable(msg)),
        }
    }
}

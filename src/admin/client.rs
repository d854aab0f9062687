//! A blocking remoting client (std `TcpStream` + the project's codec): one
//! request at a time, or pipelined by hand with [`Client::send`] /
//! [`Client::recv`]. Used by `shardmq admin` and the end-to-end tests.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use crate::protocol::{encode_frame, FrameDecoder, RemotingCommand};
use crate::runtime::tls;

/// A connection's bytes: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tls::BlockingClient>),
}

impl Stream {
    /// The TCP socket under it (timeouts, shutdown).
    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct Client {
    pub stream: Stream,
    addr: String,
    buf: BytesMut,
    next: i32,
    /// Signs every request (a broker with `aclEnable=true`).
    credentials: Option<Credentials>,
}

/// An account's access key and secret key, to sign requests as RocketMQ's
/// `AclClientRPCHook` does. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    secret_key: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
        }
    }

    /// Adds `AccessKey` and `Signature` to `cmd`.
    pub fn sign(&self, cmd: &mut RemotingCommand) {
        use crate::acl::signature;
        cmd.ext_fields.insert(signature::ACCESS_KEY, &self.access_key);
        let sig = signature::sign(
            &self.secret_key,
            &cmd.ext_fields,
            &cmd.body,
            signature::exclusions_for(cmd),
        );
        cmd.ext_fields.insert(signature::SIGNATURE, sig);
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// `Connection refused (os error 111)` → `Connection refused`.
pub fn io_error_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl Client {
    /// Connects with a 5 s connect timeout and a 10 s read timeout.
    pub fn connect(addr: &str) -> Result<Client, String> {
        Client::connect_with(addr, Duration::from_secs(5), Duration::from_secs(10))
    }

    pub fn connect_with(addr: &str, connect: Duration, read: Duration) -> Result<Client, String> {
        let fail = |e: &std::io::Error| format!("cannot connect to {addr}: {}", io_error_text(e));
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| fail(&e))?.collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, connect) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(read)).map_err(|e| fail(&e))?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Client {
                        stream: Stream::Plain(stream),
                        addr: addr.to_string(),
                        buf: BytesMut::new(),
                        next: 1,
                        credentials: None,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => fail(&e),
            None => format!("cannot connect to {addr}: no address"),
        })
    }

    /// Speaks TLS from now on (`None`: stays plain). Call it right after
    /// connecting: the handshake runs with the first request.
    pub fn with_tls(mut self, config: Option<Arc<rustls::ClientConfig>>) -> Result<Self, String> {
        if let Some(config) = config {
            let Stream::Plain(sock) = self.stream else {
                return Err(format!("{}: TLS already started", self.addr));
            };
            self.stream = Stream::Tls(Box::new(tls::blocking_client(config, &self.addr, sock)?));
        }
        Ok(self)
    }

    /// Signs every request from now on with `credentials`.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn set_read_timeout(&self, d: Duration) {
        let _ = self.stream.socket().set_read_timeout(Some(d));
    }

    /// Sends a request and returns its opaque.
    pub fn send(&mut self, mut cmd: RemotingCommand) -> Result<i32, String> {
        cmd.opaque = self.next;
        self.next = self.next.wrapping_add(1);
        if let Some(c) = &self.credentials {
            c.sign(&mut cmd);
        }
        let mut out = BytesMut::new();
        encode_frame(&cmd, &mut out).map_err(|e| format!("cannot encode the request: {e}"))?;
        self.stream
            .write_all(&out)
            .and_then(|_| self.stream.flush())
            .map_err(|e| format!("{}: {}", self.addr, io_error_text(&e)))?;
        Ok(cmd.opaque)
    }

    /// Reads the next frame: `Ok(None)` at end of stream.
    pub fn recv(&mut self) -> Result<Option<RemotingCommand>, String> {
        let d = FrameDecoder::new();
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(c) = d.decode(&mut self.buf).map_err(|e| format!("{}: {e}", self.addr))? {
                return Ok(Some(c));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Err(format!("{}: no answer in time", self.addr))
                }
                Err(e) => return Err(format!("{}: {}", self.addr, io_error_text(&e))),
            }
        }
    }

    /// Sends and waits for the matching response (skipping server pushes).
    pub fn call(&mut self, cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let op = self.send(cmd)?;
        loop {
            match self.recv()? {
                Some(r) if r.is_response() && r.opaque == op => return Ok(r),
                Some(_) => {}
                None => return Err(format!("{} closed the connection before answering", self.addr)),
            }
        }
    }
}

/// A request with header fields.
pub fn req(code: i32, fields: &[(&str, String)]) -> RemotingCommand {
    let mut c = RemotingCommand::new_request(code);
    for (k, v) in fields {
        c.ext_fields.insert(*k, v.as_str());
    }
    c
}

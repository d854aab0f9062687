//! A small remoting client on glommio: one connection, one request at a
//! time (broker → name server registration; later admin tools).

use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::tls::{ClientTls, Io};
use crate::protocol::{encode_frame, FrameDecoder, RemotingCommand};

pub struct RemotingClient {
    addr: String,
    tls: Option<ClientTls>,
    stream: Option<Io>,
    next_opaque: i32,
    buf: BytesMut,
}

impl RemotingClient {
    pub fn new(addr: impl Into<String>) -> RemotingClient {
        RemotingClient {
            addr: addr.into(),
            tls: None,
            stream: None,
            next_opaque: 1,
            buf: BytesMut::new(),
        }
    }

    /// Connects with TLS from now on (`None`: plain TCP).
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `cmd` and waits for its response. Any error drops the
    /// connection; the next call reconnects.
    pub async fn call(&mut self, cmd: RemotingCommand, timeout: Duration) -> Result<RemotingCommand, String> {
        let r = glommio::timer::timeout(timeout, async { Ok(self.call_inner(cmd).await) }).await;
        match r {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(e) => {
                self.stream = None;
                Err(format!("{}: {e}", self.addr))
            }
        }
    }

    async fn call_inner(&mut self, mut cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr.as_str())
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(match &self.tls {
                Some(tls) => tls.connect(&self.addr, s).await?,
                None => Io::Plain(s),
            });
            self.buf.clear();
        }
        let opaque = self.next_opaque;
        self.next_opaque = self.next_opaque.wrapping_add(1);
        cmd.opaque = opaque;
        let mut out = BytesMut::new();
        encode_frame(&cmd, &mut out).map_err(|e| e.to_string())?;
        let Some(stream) = self.stream.as_mut() else {
            return Err("not connected".into());
        };
        stream
            .write_all(&out)
            .await
            .map_err(|e| format!("write {}: {e}", self.addr))?;
        stream.flush().await.map_err(|e| format!("write {}: {e}", self.addr))?;
        let decoder = FrameDecoder::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Some(resp) = decoder
                .decode(&mut self.buf)
                .map_err(|e| format!("{}: {e}", self.addr))?
            {
                if resp.is_response() && resp.opaque == opaque {
                    return Ok(resp);
                }
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read {}: {e}", self.addr))?;
            if n == 0 {
                return Err(format!("{} closed the connection", self.addr));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

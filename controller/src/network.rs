//! openraft's network: Raft RPCs to the other controllers over the framed
//! JSON protocol of [`crate::wire`] (ops `raft_append`, `raft_vote`,
//! `raft_snapshot`). One connection per target, reused; connect timeout
//! [`CONNECT_TIMEOUT`], each RPC bounded by openraft's `hard_ttl`.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::wire::{read_frame, write_frame, Request};
use crate::TypeConfig;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Creates a [`PeerClient`] per target.
pub struct Network;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

/// A connection to one peer.
pub struct PeerClient {
    target: u64,
    addr: String,
    conn: Option<TcpStream>,
}

#[derive(Deserialize)]
struct RaftReply<T> {
    ok: bool,
    #[serde(default)]
    message: Option<String>,
    result: Option<T>,
}

enum CallError {
    /// Could not connect: openraft backs off.
    Unreachable(std::io::Error),
    Network(std::io::Error),
}

impl PeerClient {
    async fn roundtrip(&mut self, body: &[u8]) -> Result<Vec<u8>, CallError> {
        if self.conn.is_none() {
            let c = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(CallError::Unreachable(e)),
                Err(_) => {
                    return Err(CallError::Unreachable(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connect to {} timed out", self.addr),
                    )))
                }
            };
            let _ = c.set_nodelay(true);
            self.conn = Some(c);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(CallError::Unreachable(std::io::Error::other("no connection")));
        };
        write_frame(conn, body).await.map_err(CallError::Network)?;
        match read_frame(conn).await {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(CallError::Network(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            ))),
            Err(e) => Err(CallError::Network(e)),
        }
    }

    /// Send `req`; the answer's `result` is openraft's `Result<T, E>`.
    async fn call<T, E>(&mut self, req: Request, option: &RPCOption) -> Result<T, RPCError<u64, BasicNode, E>>
    where
        T: DeserializeOwned,
        E: DeserializeOwned + std::error::Error,
    {
        let body = serde_json::to_vec(&req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let ttl = option.hard_ttl();
        let res = match tokio::time::timeout(ttl, self.roundtrip(&body)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Network(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("rpc to {} timed out after {ttl:?}", self.addr),
            ))),
        };
        let bytes = match res {
            Ok(b) => b,
            Err(CallError::Unreachable(e)) => {
                self.conn = None;
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Err(CallError::Network(e)) => {
                self.conn = None;
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        let reply: RaftReply<Result<T, E>> = serde_json::from_slice(&bytes).map_err(|e| {
            self.conn = None;
            RPCError::Network(NetworkError::new(&e))
        })?;
        match (reply.ok, reply.result) {
            (true, Some(Ok(v))) => Ok(v),
            (true, Some(Err(e))) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => {
                let msg = reply.message.unwrap_or_else(|| "malformed raft reply".to_string());
                Err(RPCError::Network(NetworkError::new(&std::io::Error::other(msg))))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(Request::RaftAppend { rpc }, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.call(Request::RaftSnapshot { rpc }, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(Request::RaftVote { rpc }, &option).await
    }
}

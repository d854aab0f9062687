//! Wire format (one TCP port per node serves Raft RPCs and clients).
//!
//! A frame is `u32 big-endian length | JSON body`; the length counts the body
//! only and is at most [`MAX_FRAME`] (16 MiB): a larger length closes the
//! connection. On a connection the client sends one request frame and waits
//! for its response frame; connections are reused for further requests.
//!
//! Requests are JSON objects tagged by `op`:
//!
//! | op | body | answer |
//! | --- | --- | --- |
//! | `register`, `heartbeat` | [`BrokerReq`] fields | `{"ok":true,"group":GroupView}` |
//! | `alter_sync_state_set` | [`AlterReq`] fields | `{"ok":true,"group":GroupView}` |
//! | `groups` | – | `{"ok":true,"groups":[GroupView]}` (leader only) |
//! | `status` | – | `{"ok":true,"node_id","leader_id","term","last_applied","members"}` (any node) |
//! | `raft_append` | `{"rpc": openraft AppendEntriesRequest}` | `{"ok":true,"result":{"Ok":resp}\|{"Err":RaftError}}` |
//! | `raft_vote` | `{"rpc": openraft VoteRequest}` | same shape |
//! | `raft_snapshot` | `{"rpc": openraft InstallSnapshotRequest}` (one chunk) | same shape |
//!
//! Failures are `{"ok":false,"code":"NOT_LEADER"|"FENCED"|"INVALID"|"UNAVAILABLE","message":"...","leader":"host:port"|null}`.

use std::io::{Read, Write};

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::types::{AlterReq, BrokerReq};
use crate::TypeConfig;

/// Largest frame body accepted or sent.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// A request frame's body. Serialized as `{"op":"...",...}`; parsed with
/// [`Request::parse`] (serde's internally tagged enums buffer the body and
/// then cannot read openraft's integer map keys, so no derived Deserialize).
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Register(BrokerReq),
    Heartbeat(BrokerReq),
    AlterSyncStateSet(AlterReq),
    Groups,
    Status,
    RaftAppend { rpc: AppendEntriesRequest<TypeConfig> },
    RaftVote { rpc: VoteRequest<u64> },
    RaftSnapshot { rpc: InstallSnapshotRequest<TypeConfig> },
}

#[derive(Deserialize)]
struct Op {
    op: String,
}

#[derive(Deserialize)]
struct Rpc<T> {
    rpc: T,
}

impl Request {
    /// Parse a request body: read `op`, then the body as that op's type.
    pub fn parse(body: &[u8]) -> Result<Request, String> {
        let op: Op = serde_json::from_slice(body).map_err(|e| format!("bad request: {e}"))?;
        let bad = |e: serde_json::Error| format!("bad {} request: {e}", op.op);
        Ok(match op.op.as_str() {
            "register" => Request::Register(serde_json::from_slice(body).map_err(bad)?),
            "heartbeat" => Request::Heartbeat(serde_json::from_slice(body).map_err(bad)?),
            "alter_sync_state_set" => Request::AlterSyncStateSet(serde_json::from_slice(body).map_err(bad)?),
            "groups" => Request::Groups,
            "status" => Request::Status,
            "raft_append" => Request::RaftAppend {
                rpc: serde_json::from_slice::<Rpc<_>>(body).map_err(bad)?.rpc,
            },
            "raft_vote" => Request::RaftVote {
                rpc: serde_json::from_slice::<Rpc<_>>(body).map_err(bad)?.rpc,
            },
            "raft_snapshot" => Request::RaftSnapshot {
                rpc: serde_json::from_slice::<Rpc<_>>(body).map_err(bad)?.rpc,
            },
            other => return Err(format!("unknown op {other:?}")),
        })
    }
}

fn too_large(len: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds {MAX_FRAME}"),
    )
}

/// Read one frame; `Ok(None)` on a clean end of stream before a frame.
pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(too_large(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Write one frame.
pub async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(too_large(body.len()));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Blocking variant of [`read_frame`] (end of stream is an error here).
pub fn read_frame_blocking<R: Read>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(too_large(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Blocking variant of [`write_frame`].
pub fn write_frame_blocking<W: Write>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(too_large(body.len()));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};

    use super::*;

    #[test]
    fn raft_append_with_membership_roundtrips() {
        let nodes: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::new(format!("127.0.0.1:{i}")))).collect();
        let m = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        let rpc = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 1),
            prev_log_id: None,
            entries: vec![Entry {
                log_id: LogId::new(CommittedLeaderId::new(2, 1), 1),
                payload: EntryPayload::Membership(m),
            }],
            leader_commit: None,
        };
        let body = serde_json::to_vec(&Request::RaftAppend { rpc: rpc.clone() }).unwrap_or_default();
        assert!(body.starts_with(b"{\"op\":\"raft_append\""));
        match Request::parse(&body) {
            Ok(Request::RaftAppend { rpc: got }) => assert_eq!(format!("{got:?}"), format!("{rpc:?}")),
            other => panic!("parsed {other:?}"),
        }
        assert!(Request::parse(b"{\"op\":\"groups\"}").is_ok());
        assert!(Request::parse(b"{\"op\":\"register\",\"cluster\":\"c\"}").is_err());
        assert!(Request::parse(b"{\"op\":\"nope\"}").is_err());
        assert!(Request::parse(b"[1,2]").is_err());
    }

    #[test]
    fn frames_are_size_limited() {
        let mut buf = Vec::new();
        write_frame_blocking(&mut buf, b"{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(buf, b"\0\0\0\x02{}");
        assert_eq!(read_frame_blocking(&mut &buf[..]).ok(), Some(b"{}".to_vec()));
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(read_frame_blocking(&mut &huge[..]).is_err());
        assert!(write_frame_blocking(&mut Vec::new(), &vec![b' '; MAX_FRAME + 1]).is_err());
    }
}

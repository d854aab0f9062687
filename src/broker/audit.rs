//! The audit log: one JSON line per administrative or security-relevant
//! event, append-only.
//!
//! * **What**: every request that changes the broker (topics, groups,
//!   offsets, ACL, configuration; [`AUDITED`]), every dead letter resent by
//!   `shardmq admin dlq resend` (its producer group), and every request the
//!   ACL refused, on the remoting and gRPC ports. Reads are not logged.
//! * **Line**: `{"time", "shard", "client", "accessKey", "code", "request",
//!   "resource", "result": "ok" | "error" | "refused", "responseCode",
//!   "remark"}`. Never a secret: the access key is the account's public
//!   name, remarks are the broker's own (they never hold one either).
//! * **Files**: `<storePathRootDir>/audit/shard-<k>.log`, one per shard (no
//!   shard waits for another to log), rotated when over [`MAX_FILE_BYTES`]
//!   to `.1` … `.{MAX_FILES - 1}`, the oldest dropped.
//! * **Writes**: lines wait in memory and are appended and fdatasync'ed in
//!   batches on the blocking thread, every [`FLUSH_EVERY`] or once
//!   [`BATCH_LINES`] wait, and at shutdown. At most [`MAX_PENDING`] lines
//!   wait; beyond, lines are counted and the count is logged as an event of
//!   its own (`"result": "dropped"`) once there is room, so a flood of
//!   refusals can cost neither unbounded memory nor silent loss.
//!
//! `shardmq admin audit` reads the files with filters.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use crate::acl::Refusal;
use crate::protocol::codes::request;
use crate::protocol::RemotingCommand;

/// Rotation size of one file.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Files kept per shard, the current one included.
pub const MAX_FILES: u32 = 5;
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
pub const BATCH_LINES: usize = 512;
pub const MAX_PENDING: usize = 100_000;
/// The producer group `shardmq admin dlq resend` sends with.
pub const DLQ_RESEND_GROUP: &str = "TOOLS_DLQ_RESEND";

/// Request codes whose every call is logged.
pub const AUDITED: &[i32] = &[
    request::UPDATE_AND_CREATE_TOPIC,
    request::DELETE_TOPIC_IN_BROKER,
    request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    request::DELETE_SUBSCRIPTIONGROUP,
    request::UPDATE_BROKER_CONFIG,
    request::INVOKE_BROKER_TO_RESET_OFFSET,
    request::SET_MESSAGE_REQUEST_MODE,
    request::UPDATE_AND_CREATE_ACL_CONFIG,
    request::DELETE_ACL_CONFIG,
    request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG,
];

/// The directory of the audit files.
pub fn dir(root: &Path) -> PathBuf {
    root.join("audit")
}

/// One shard's audit log.
pub struct Audit {
    shard: u16,
    /// `None`: `auditLogEnable=false`.
    path: Option<PathBuf>,
    pending: RefCell<Vec<String>>,
    dropped: Cell<u64>,
}

/// What to log of an audited request once it is answered ([`note`]).
pub struct Note {
    client: SocketAddr,
    access_key: String,
    code: i32,
    resource: String,
}

/// The resource a request names, for the log: topic, group or account.
fn resource_of(cmd: &RemotingCommand) -> String {
    let ext = &cmd.ext_fields;
    let first = |keys: &[&str]| keys.iter().find_map(|k| ext.get_str(k)).map(str::to_owned);
    if let Some(t) = first(&["topic", "b"]) {
        return format!("topic:{t}");
    }
    if let Some(g) = first(&["groupName", "group", "consumerGroup"]) {
        return format!("group:{g}");
    }
    if let Some(a) = first(&["accessKey"]) {
        return format!("account:{a}");
    }
    if cmd.code == request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP {
        // The group is in the JSON body.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&cmd.body) {
            if let Some(g) = v["groupName"].as_str() {
                return format!("group:{g}");
            }
        }
    }
    String::new()
}

/// A [`Note`] when `cmd` is audited.
pub fn note(cmd: &RemotingCommand, client: SocketAddr) -> Option<Note> {
    let dlq_resend = matches!(cmd.code, request::SEND_MESSAGE | request::SEND_MESSAGE_V2)
        && (cmd.ext_fields.get_str("a") == Some(DLQ_RESEND_GROUP)
            || cmd.ext_fields.get_str("producerGroup") == Some(DLQ_RESEND_GROUP));
    if !dlq_resend && !AUDITED.contains(&cmd.code) {
        return None;
    }
    Some(Note {
        client,
        access_key: access_key_of(cmd),
        code: cmd.code,
        resource: resource_of(cmd),
    })
}

fn access_key_of(cmd: &RemotingCommand) -> String {
    cmd.ext_fields
        .get_str(crate::acl::signature::ACCESS_KEY)
        .map(|k| k.chars().filter(|c| !c.is_control()).take(64).collect())
        .unwrap_or_default()
}

impl Audit {
    /// The log of `shard` under `root` (`enabled=false`: records nothing).
    pub fn new(root: &Path, shard: u16, enabled: bool) -> Self {
        Self {
            shard,
            path: enabled.then(|| dir(root).join(format!("shard-{shard}.log"))),
            pending: RefCell::new(Vec::new()),
            dropped: Cell::new(0),
        }
    }

    fn push(&self, line: serde_json::Value) {
        if self.path.is_none() {
            return;
        }
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= MAX_PENDING {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        pending.push(line.to_string());
    }

    fn line(
        &self,
        client: SocketAddr,
        access_key: &str,
        code: i32,
        request: &str,
        resource: &str,
    ) -> serde_json::Value {
        json!({
            "time": crate::admin::time::format_ms(crate::runtime::epoch_ms()),
            "shard": self.shard,
            "client": client.to_string(),
            "accessKey": access_key,
            "code": code,
            "request": request,
            "resource": resource,
        })
    }

    /// An audited request ([`note`]) and its answer.
    pub fn answered(&self, n: Note, reply: Option<&RemotingCommand>) {
        let name = if n.code == request::SEND_MESSAGE_V2 || n.code == request::SEND_MESSAGE {
            "DLQ_RESEND"
        } else {
            request::name(n.code).unwrap_or("unknown")
        };
        let mut line = self.line(n.client, &n.access_key, n.code, name, &n.resource);
        match reply {
            Some(r) if r.code == crate::protocol::codes::response::SUCCESS => line["result"] = "ok".into(),
            Some(r) => {
                line["result"] = "error".into();
                line["responseCode"] = r.code.into();
                line["remark"] = r.remark.clone().unwrap_or_default().into();
            }
            None => line["result"] = "ok".into(), // oneway
        }
        self.push(line);
    }

    /// A remoting request the ACL refused.
    pub fn refused(&self, cmd: &RemotingCommand, client: SocketAddr, why: &Refusal) {
        if self.path.is_none() {
            return;
        }
        let name = request::name(cmd.code).unwrap_or("unknown");
        let mut line = self.line(client, &access_key_of(cmd), cmd.code, name, &resource_of(cmd));
        line["result"] = "refused".into();
        line["responseCode"] = why.response_code().into();
        line["remark"] = why.remark().into();
        self.push(line);
    }

    /// A gRPC call the ACL refused (`method`: its name).
    pub fn refused_call(&self, client: SocketAddr, access_key: &str, method: &str, why: &Refusal) {
        if self.path.is_none() {
            return;
        }
        let mut line = self.line(client, access_key, 0, method, "");
        line["result"] = "refused".into();
        line["remark"] = why.remark().into();
        self.push(line);
    }

    /// The lines waiting, taken (with a line for those dropped, if any).
    fn take(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *self.pending.borrow_mut());
        let dropped = self.dropped.replace(0);
        if dropped > 0 {
            lines.push(
                json!({
                    "time": crate::admin::time::format_ms(crate::runtime::epoch_ms()),
                    "shard": self.shard,
                    "result": "dropped",
                    "remark": format!("{dropped} audit lines dropped: more than {MAX_PENDING} waited to be written"),
                })
                .to_string(),
            );
        }
        lines
    }

    fn due(&self) -> bool {
        self.pending.borrow().len() >= BATCH_LINES
    }
}

/// Appends `lines` to `path`, fdatasync, rotating first when the file is
/// over `max_bytes` (keeping `max_files` files; blocking: the blocking
/// thread).
fn append(path: &Path, lines: &[String], max_bytes: u64, max_files: u32) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) >= max_bytes {
        let numbered = |n: u32| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..max_files.saturating_sub(1)).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        if max_files > 1 {
            std::fs::rename(path, numbered(1))?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes())?;
    f.sync_data()
}

/// Writes `audit`'s lines in batches until `stopping()` (then a last time).
pub async fn run(audit: Rc<Audit>, stopping: impl Fn() -> bool) {
    let Some(path) = audit.path.clone() else { return };
    let mut since = std::time::Instant::now();
    loop {
        let stop = stopping();
        if stop || audit.due() || since.elapsed() >= FLUSH_EVERY {
            since = std::time::Instant::now();
            let lines = audit.take();
            if !lines.is_empty() {
                let p = path.clone();
                let n = lines.len();
                if let Err(e) =
                    crate::runtime::blocking::run(move || append(&p, &lines, MAX_FILE_BYTES, MAX_FILES)).await
                {
                    log::error!("audit log {}: {n} lines not written: {e}", path.display());
                }
            }
        }
        if stop {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit").join("shard-0.log");
        let line = "x".repeat(99);
        for _ in 0..100 {
            append(&path, std::slice::from_ref(&line), 1000, 4).unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(dir.path().join("audit"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        for f in std::fs::read_dir(dir.path().join("audit")).unwrap() {
            let len = f.unwrap().metadata().unwrap().len();
            assert!(len <= 1000, "{len}");
        }
        // 100 lines written, 4 files of 10 kept: the newest 40.
        let all: usize = names
            .iter()
            .map(|n| {
                std::fs::read_to_string(dir.path().join("audit").join(n))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert_eq!(all, 40);
    }

    #[test]
    fn lines_are_bounded_and_drops_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let a = Audit::new(dir.path(), 3, true);
        let client: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut cmd = RemotingCommand::new_request(request::UPDATE_AND_CREATE_TOPIC);
        cmd.ext_fields.insert("topic", "orders");
        cmd.ext_fields.insert("AccessKey", "admin01");
        for _ in 0..MAX_PENDING + 5 {
            a.answered(note(&cmd, client).unwrap(), None);
        }
        let lines = a.take();
        assert_eq!(lines.len(), MAX_PENDING + 1);
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["resource"], "topic:orders");
        assert_eq!(first["accessKey"], "admin01");
        assert_eq!(first["request"], "UPDATE_AND_CREATE_TOPIC");
        assert_eq!(first["result"], "ok");
        let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(last["result"], "dropped");
        assert!(last["remark"].as_str().unwrap().starts_with("5 audit lines dropped"));
        assert!(a.take().is_empty());
        // Reads are not audited; a DLQ resend is.
        assert!(note(&RemotingCommand::new_request(request::GET_ALL_TOPIC_CONFIG), client).is_none());
        let mut resend = RemotingCommand::new_request(request::SEND_MESSAGE_V2);
        resend.ext_fields.insert("a", DLQ_RESEND_GROUP);
        resend.ext_fields.insert("b", "orders");
        assert!(note(&resend, client).is_some());
        let off = Audit::new(dir.path(), 4, false);
        off.answered(note(&cmd, client).unwrap(), None);
        assert!(off.take().is_empty());
    }
}

//! The ACL's writer: the admin codes 50–53 and the ACL file on disk, on
//! the controller shard (shard 0), which publishes each new ACL to every
//! shard's [`super::access::Access`].
//!
//! * An edit (UPDATE_AND_CREATE_ACL_CONFIG 50, DELETE_ACL_CONFIG 51,
//!   UPDATE_GLOBAL_WHITE_ADDRS_CONFIG 53) is applied to a copy of the ACL,
//!   the copy saved (temp file, fsync, rename, directory fsync, on the
//!   blocking thread), and only then put in force everywhere: an edit the
//!   client was told succeeded survives a crash, and a failed save changes
//!   nothing. Edits and reloads take turns ([`super::access::AclFile`]), so none
//!   starts from an ACL another one is replacing.
//! * The file is also watched: every [`CHECK_INTERVAL`] its size, inode and
//!   mtime are compared with what was last read or written; a change is
//!   loaded and put in force. A file that does not parse is logged (with
//!   its line) and the ACL in force stays.
//! * GET_BROKER_CLUSTER_ACL_INFO (52) answers the version in its header
//!   (`version`, as 4.9.x mqadmin reads it) and the ACL without any secret
//!   in its body (`AclView` JSON).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::acl::{AccountUpdate, Acl, AclError};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;

use super::mesh::Event;
use super::reply::error;
use super::shard::Shard;
use crate::acl::{stamp, Stamp};

/// How often the ACL file is looked at for changes.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub fn is_admin_code(code: i32) -> bool {
    matches!(
        code,
        request::UPDATE_AND_CREATE_ACL_CONFIG
            | request::DELETE_ACL_CONFIG
            | request::GET_BROKER_CLUSTER_ACL_INFO
            | request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG
    )
}

/// Runs an ACL admin request (on the controller).
pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let (Some(current), Some(file)) = (shard.access.current(), shard.acl_file.as_ref()) else {
        return error(
            &cmd,
            response::SYSTEM_ERROR,
            "ACL is off on this broker (aclEnable=false): there is no ACL to show or edit",
        );
    };
    if cmd.code == request::GET_BROKER_CLUSTER_ACL_INFO {
        return view(shard, &cmd, &current);
    }
    let Ok(_turn) = file.turn.acquire_permit(1).await else {
        return error(&cmd, response::SYSTEM_ERROR, "the broker is stopping");
    };
    // Taken again under the turn: a reload may have replaced it meanwhile.
    let Some(current) = shard.access.current() else {
        return error(&cmd, response::SYSTEM_ERROR, "ACL is off on this broker");
    };
    let mut acl = (*current).clone();
    let edited = match cmd.code {
        request::UPDATE_AND_CREATE_ACL_CONFIG => AccountUpdate::from_ext_fields(&cmd.ext_fields)
            .and_then(|u| acl.upsert_account(u, crate::runtime::epoch_ms()))
            .map(|done| format!("{done:?}")),
        request::DELETE_ACL_CONFIG => match cmd.ext_fields.get_str("accessKey") {
            Some(key) => acl
                .delete_account(key, crate::runtime::epoch_ms())
                .map(|()| "Deleted".to_owned()),
            None => Err(AclError::Invalid {
                origin: "ACL update".into(),
                message: "the custom field accessKey is null".into(),
            }),
        },
        _ => acl
            .set_global_white_addrs_text(
                cmd.ext_fields.get_str("globalWhiteAddrs").unwrap_or(""),
                crate::runtime::epoch_ms(),
            )
            .map(|()| "Updated".to_owned()),
    };
    let done = match edited {
        Ok(done) => done,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    let acl = Arc::new(acl);
    let (to_save, path) = (acl.clone(), file.path.clone());
    let saved = crate::runtime::blocking::run(move || -> Result<Stamp, AclError> {
        to_save.save(&path)?;
        stamp(&path).map_err(|source| AclError::Write { path, source })
    })
    .await;
    match saved {
        Ok(s) => file.seen.set(Some(s)),
        Err(e) => {
            log::error!("ACL: an admin change was not made: {e}");
            return error(&cmd, response::SYSTEM_ERROR, format!("not changed: {e}"));
        }
    }
    log::info!(
        "ACL: {} by {} ({done}); {} accounts now",
        request::name(cmd.code).unwrap_or("an edit"),
        cmd.ext_fields
            .get_str(crate::acl::signature::ACCESS_KEY)
            .unwrap_or("a white-listed address"),
        acl.accounts().len()
    );
    publish(shard, acl).await;
    Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
}

fn view(shard: &Shard, cmd: &RemotingCommand, acl: &Acl) -> Option<RemotingCommand> {
    let v = acl.view();
    let body = match serde_json::to_vec(&v) {
        Ok(b) => b,
        Err(e) => return error(cmd, response::SYSTEM_ERROR, e.to_string()),
    };
    let mut reply = RemotingCommand::response_to(cmd, response::SUCCESS, None).with_body(body);
    let version = serde_json::to_string(&v.version).unwrap_or_default();
    let cfg = &shard.cfg;
    reply.ext_fields.insert("version", &version);
    reply.ext_fields.insert("allAclFileVersion", &version);
    reply.ext_fields.insert("brokerName", &cfg.broker_name);
    reply
        .ext_fields
        .insert("brokerAddr", format!("{}:{}", cfg.broker_ip1, cfg.listen_port));
    reply.ext_fields.insert("clusterName", &cfg.broker_cluster_name);
    Some(reply)
}

/// Puts `acl` in force on every shard (this one first).
async fn publish(shard: &Shard, acl: Arc<Acl>) {
    shard.access.install(acl.clone());
    for s in (0..shard.shard_count()).filter(|s| *s != shard.id) {
        shard.mesh.send(s, Event::Acl(acl.clone())).await;
    }
}

/// Watches the ACL file (controller, ACL on) until the broker stops.
pub async fn watch(shard: Rc<Shard>) {
    let Some(file) = shard.acl_file.as_ref() else { return };
    // The last stamp that failed to load: logged once, not every second.
    let mut refused: Option<Option<Stamp>> = None;
    loop {
        glommio::timer::sleep(CHECK_INTERVAL).await;
        if shard.store.is_stopping() {
            return;
        }
        let path = file.path.clone();
        let now = crate::runtime::blocking::run(move || stamp(&path).ok()).await;
        if now == file.seen.get() || refused == Some(now) {
            continue;
        }
        let Ok(_turn) = file.turn.acquire_permit(1).await else {
            return;
        };
        let path = file.path.clone();
        let loaded = crate::runtime::blocking::run(move || {
            // The stamp before the read: a write racing the read is seen
            // again next time.
            let before = stamp(&path).ok();
            (before, Acl::load(&path))
        })
        .await;
        match loaded {
            (s, Ok(acl)) => {
                file.seen.set(s);
                refused = None;
                log::info!(
                    "ACL: {} changed, reloaded: {} accounts, {} global white address patterns",
                    file.path.display(),
                    acl.accounts().len(),
                    acl.global_white_remote_addresses().len()
                );
                publish(&shard, Arc::new(acl)).await;
            }
            (s, Err(e)) => {
                refused = Some(s);
                log::error!("ACL: {e}; the ACL in force stays as it was");
            }
        }
    }
}

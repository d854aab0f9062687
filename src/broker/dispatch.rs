//! Request routing: which shard runs a request, and the handler table.
//!
//! * Queue requests (send, pull, offsets) run on the shard that owns the
//!   queue. On a shard's own port the queue ids are that shard's local ids
//!   and are rewritten to global ids here, before anything else sees them;
//!   replies carrying a queue id are translated back.
//! * Client, group, lock and topic-admin requests run on the controller
//!   (shard 0), which owns that metadata.
//! * Admin statistics and offset resets ([`super::admin`]) run where they
//!   arrive and ask every shard for its part.
//! * Everything else runs where it arrived.
//!
//! Shards reach each other only through typed mesh messages
//! ([`super::mesh`]); [`on_envelope`] is the receiving end.

use std::rc::Rc;
use std::time::Duration;

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, Envelope, View};

use super::mesh::{Event, Reply, Request};
use super::metadata::TopicInfo;
use super::reply::{error, not_supported};
use super::shard::Shard;
use super::{offsets, pop, pull, send};

/// Header keys holding (topic, queue id) for a queue request.
fn queue_keys(cmd: &RemotingCommand) -> Option<(&'static str, &'static str)> {
    match cmd.code {
        request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE if cmd.ext_fields.contains("b") => Some(("b", "e")),
        request::SEND_MESSAGE
        | request::SEND_MESSAGE_V2
        | request::SEND_BATCH_MESSAGE
        | request::PULL_MESSAGE
        | request::LITE_PULL_MESSAGE
        | request::QUERY_CONSUMER_OFFSET
        | request::UPDATE_CONSUMER_OFFSET
        | request::GET_MAX_OFFSET
        | request::GET_MIN_OFFSET
        | request::SEARCH_OFFSET_BY_TIMESTAMP
        | request::GET_EARLIEST_MSG_STORETIME
        | request::ACK_MESSAGE
        | request::CHANGE_MESSAGE_INVISIBLETIME
        | request::PEEK_MESSAGE
        | request::POLLING_INFO => Some(("topic", "queueId")),
        // A pop or notification of queue -1 runs where it arrives (below).
        request::POP_MESSAGE | request::NOTIFICATION => Some(("topic", "queueId")),
        _ => None,
    }
}

fn is_controller_code(code: i32) -> bool {
    matches!(
        code,
        request::HEART_BEAT
            | request::UNREGISTER_CLIENT
            | request::GET_CONSUMER_LIST_BY_GROUP
            | request::LOCK_BATCH_MQ
            | request::UNLOCK_BATCH_MQ
            | request::UPDATE_AND_CREATE_TOPIC
            | request::DELETE_TOPIC_IN_BROKER
            | request::GET_ALL_TOPIC_CONFIG
            | request::QUERY_ASSIGNMENT
            | request::SET_MESSAGE_REQUEST_MODE
            | request::GET_ALL_MESSAGE_REQUEST_MODE
    ) || super::admin::is_controller_code(code)
}

fn is_send_code(code: i32) -> bool {
    matches!(
        code,
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE
    )
}

/// Entry point for a request read from a connection of this shard: the
/// ACL (when on) is checked where it arrives, before any hop.
pub async fn route(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    if let Err(refusal) = shard.access.check(&cmd, client.addr.ip()) {
        shard.audit.refused(&cmd, client.addr, &refusal);
        return super::access::refuse(&cmd, &refusal);
    }
    let Some(note) = super::audit::note(&cmd, client.addr) else {
        return route_trusted(shard, cmd, client).await;
    };
    let reply = route_trusted(shard, cmd, client).await;
    shard.audit.answered(note, reply.as_ref());
    reply
}

/// [`route_trusted`] for the HTTP front doors (REST, gRPC), counted in
/// the shard's metrics as a remoting connection's requests are: the
/// request, its latency (sends and pulls), a send's outcome, an error code.
pub async fn route_counted(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let m = &shard.metrics;
    let code = cmd.code;
    m.request(code);
    let start = std::time::Instant::now();
    let reply = route_trusted(shard, cmd, client).await;
    let op = match code {
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
            m.send_answered(reply.as_ref().is_none_or(|r| r.code != response::SUCCESS));
            crate::metrics::Op::Send
        }
        request::PULL_MESSAGE => crate::metrics::Op::Pull,
        _ => crate::metrics::Op::Other,
    };
    m.record(op, start.elapsed());
    if let Some(r) = reply.as_ref().filter(|r| {
        !matches!(
            r.code,
            response::SUCCESS | response::PULL_NOT_FOUND | response::QUERY_NOT_FOUND | response::PULL_OFFSET_MOVED
        )
    }) {
        m.error(r.code);
    }
    reply
}

/// [`route`] for a request the broker made itself on behalf of a client it
/// has checked already (the gRPC endpoint checks its own signatures).
pub async fn route_trusted(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    if let Some(refusal) = super::group_names::check_header(&cmd) {
        return refusal;
    }
    if is_controller_code(cmd.code)
        || super::acl_admin::is_admin_code(cmd.code)
        || super::alerts::is_alert_code(cmd.code)
    {
        return run_on(shard, 0, cmd, client).await;
    }
    if cmd.code == request::END_TRANSACTION {
        let owner = super::transaction::owner_of(&cmd)
            .filter(|s| *s < shard.shard_count())
            .unwrap_or(shard.id);
        return run_on(shard, owner, cmd, client).await;
    }
    if cmd.code == request::CONSUMER_SEND_MSG_BACK {
        let owner = super::query::owner_of(&cmd)
            .filter(|s| *s < shard.shard_count())
            .unwrap_or(shard.id);
        return run_on(shard, owner, cmd, client).await;
    }
    if cmd.code == request::VIEW_MESSAGE_BY_ID {
        let owner = super::query::owner_of(&cmd)
            .filter(|s| *s < shard.shard_count())
            .unwrap_or(shard.id);
        return run_on(shard, owner, cmd, client).await;
    }
    let Some((topic_key, qid_key)) = queue_keys(&cmd) else {
        return execute(shard, cmd, client).await;
    };
    let qid = match cmd.ext_i32(qid_key) {
        Ok(Some(q)) => q,
        Ok(None) => {
            return error(
                &cmd,
                response::INVALID_PARAMETER,
                format!("the custom field {qid_key} is null"),
            )
        }
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    let is_send = is_send_code(cmd.code);
    // The common case — a known topic and a named queue — reads what it
    // needs from the snapshot in place: no snapshot or topic refcount is
    // touched per request.
    if qid >= 0 {
        let routed = shard.with_topic(cmd.ext_str(topic_key).unwrap_or(""), |info| {
            locate(info, client.view, qid as u32, shard.id)
        });
        match routed {
            Some(Ok((global, owner))) => {
                return run_queue_request(shard, cmd, client, qid_key, qid, global, owner).await
            }
            Some(Err(why)) => return error(&cmd, response::INVALID_PARAMETER, why),
            None => {}
        }
    }
    let known = shard.topic(cmd.ext_str(topic_key).unwrap_or(""));
    let info = match known {
        Some(info) => info,
        // Unknown topic: a send may auto-create it (on the controller, which
        // publishes the new snapshot before answering); it then takes the
        // same path as any later send, so the queue id the client named is
        // translated like every other (the first send is stored where the
        // client asked, and its reply names that queue).
        None if is_send => match send::ensure_topic_of(shard, &cmd, client).await {
            Ok(info) => info,
            Err(reply) => return reply,
        },
        // The rest answer here.
        None => return execute(shard, cmd, client).await,
    };
    if qid < 0 && matches!(cmd.code, request::POP_MESSAGE | request::NOTIFICATION) {
        // Any queue: on a shard entry, that shard's queues (here); on the
        // main entry, the queues of one shard, taking turns.
        let to = match client.view {
            View::Shard(_) => shard.id,
            View::Main => {
                let owners: Vec<u16> = (0..shard.shard_count())
                    .filter(|s| info.owned_by(*s).next().is_some())
                    .collect();
                let turn = shard.pops.next_turn();
                owners.get(turn % owners.len().max(1)).copied().unwrap_or(shard.id)
            }
        };
        return run_on(shard, to, cmd, client).await;
    }
    if qid < 0 {
        let reply = execute(shard, cmd, client).await;
        return if is_send {
            local_reply(reply, &info, client.view)
        } else {
            reply
        };
    }
    match locate(&info, client.view, qid as u32, shard.id) {
        Ok((global, owner)) => run_queue_request(shard, cmd, client, qid_key, qid, global, owner).await,
        Err(why) => error(&cmd, response::INVALID_PARAMETER, why),
    }
}

/// The global id and owner shard of the queue a client numbers `qid` in
/// its view of `info`, or why there is none.
fn locate(info: &TopicInfo, view: View, qid: u32, me: u16) -> Result<(u32, u16), String> {
    let global = match view {
        View::Main => Some(qid),
        View::Shard(k) => info.local_to_global(k, qid),
    };
    match global {
        Some(g) => Ok((g, info.owner(g).unwrap_or(me))),
        None => Err(format!(
            "queueId {qid} is not a queue of topic {} on this broker entry",
            info.topic_name
        )),
    }
}

/// Runs a queue request for queue `global` (the client named `qid` in its
/// numbering) on its owner, and gives a send's reply the client's number.
async fn run_queue_request(
    shard: &Rc<Shard>,
    mut cmd: RemotingCommand,
    client: &ClientRef,
    qid_key: &str,
    qid: i32,
    global: u32,
    owner: u16,
) -> Option<RemotingCommand> {
    let is_send = is_send_code(cmd.code);
    if global != qid as u32 {
        cmd.ext_fields.insert_display(qid_key, global);
    }
    // The owner is usually this shard (shard-aware routes): run it here
    // without the boxed hop of `run_on`.
    let mut reply = if owner == shard.id {
        execute(shard, cmd, client).await
    } else {
        run_on(shard, owner, cmd, client).await
    };
    // A send to a named queue is stored in that queue: its reply names
    // `global`, which the client calls `qid`.
    if let (true, Some(r)) = (is_send && global != qid as u32, reply.as_mut()) {
        if r.ext_i32("queueId").ok().flatten() == Some(global as i32) {
            r.ext_fields.insert_display("queueId", qid);
        }
    }
    reply
}

/// A send reply names the queue in the client's numbering: on a shard port
/// the entry-local id of the global queue the message was stored in.
fn local_reply(reply: Option<RemotingCommand>, info: &TopicInfo, view: View) -> Option<RemotingCommand> {
    match (reply, view) {
        (Some(mut r), View::Shard(k)) => {
            if let Some(g) = r.ext_i32("queueId").ok().flatten() {
                if let Some(l) = info.global_to_local(k, g as u32) {
                    r.ext_fields.insert_display("queueId", l);
                }
            }
            Some(r)
        }
        (r, _) => r,
    }
}

/// Runs a request on this shard (it owns the queue, or the request is
/// not queue-bound).
pub async fn execute(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    match cmd.code {
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
            send::handle(shard, cmd, client).await
        }
        request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => pull::handle(shard, cmd, client).await,
        request::POP_MESSAGE => pop::remoting::pop(shard, cmd, client).await,
        request::ACK_MESSAGE => pop::remoting::ack(shard, cmd).await,
        request::BATCH_ACK_MESSAGE => pop::remoting::batch_ack(shard, cmd, client).await,
        request::CHANGE_MESSAGE_INVISIBLETIME => pop::remoting::change_invisible(shard, cmd).await,
        request::PEEK_MESSAGE => pop::remoting::peek(shard, cmd, client).await,
        request::NOTIFICATION => pop::remoting::notification(shard, cmd, client).await,
        request::POLLING_INFO => pop::remoting::polling_info(shard, cmd),
        request::VIEW_MESSAGE_BY_ID => super::query::view_message(shard, cmd, client).await,
        request::QUERY_MESSAGE => super::query::query_message(shard, cmd, client).await,
        request::QUERY_TOPIC_CONSUME_BY_WHO => super::query::consumed_by(shard, cmd).await,
        request::CONSUMER_SEND_MSG_BACK => super::retry::send_back(shard, cmd, client).await,
        request::END_TRANSACTION => super::transaction::end_transaction(shard, cmd, client).await,
        request::QUERY_CONSUMER_OFFSET
        | request::UPDATE_CONSUMER_OFFSET
        | request::GET_MAX_OFFSET
        | request::GET_MIN_OFFSET
        | request::SEARCH_OFFSET_BY_TIMESTAMP
        | request::GET_EARLIEST_MSG_STORETIME => offsets::handle(shard, cmd).await,
        code if super::admin::is_local_code(code) => super::admin::handle(shard, cmd, client).await,
        super::stats::GET_BROKER_STATS => super::stats::handle(shard, cmd).await,
        code if super::alerts::is_alert_code(code) => match shard.id {
            0 => super::alerts::handle(shard, cmd).await,
            _ => Box::pin(run_on(shard, 0, cmd, client)).await,
        },
        code if super::acl_admin::is_admin_code(code) => match shard.id {
            0 => super::acl_admin::handle(shard, cmd).await,
            _ => Box::pin(run_on(shard, 0, cmd, client)).await,
        },
        code if is_controller_code(code) => match &shard.controller {
            Some(c) => c.handle(&**shard, cmd, client).await,
            None => Box::pin(run_on(shard, 0, cmd, client)).await,
        },
        _ => not_supported(&cmd),
    }
}

/// Runs a client's request on shard `to` (here when it is this shard).
pub async fn run_on(shard: &Rc<Shard>, to: u16, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    if to == shard.id {
        return Box::pin(execute(shard, cmd, client)).await;
    }
    match shard
        .ask(
            to,
            Request::Client {
                cmd,
                client: client.clone(),
            },
        )
        .await
    {
        Some(Reply::Client(reply)) => reply,
        Some(_) => {
            log::error!("{}", super::mesh::unexpected("a client request"));
            None
        }
        None => None,
    }
}

/// A message from another shard.
pub fn on_envelope(shard: &Rc<Shard>, env: Envelope<Request, Reply, Event>) {
    match env {
        Envelope::Call { id, from, req } => {
            let me = shard.clone();
            glommio::spawn_local(async move {
                let rep = answer(&me, req).await;
                me.mesh.reply(from, id, rep).await;
            })
            .detach();
        }
        Envelope::Reply { id, rep } => shard.mesh.complete(id, rep),
        Envelope::Event(Event::Metadata(m)) => shard.install(m),
        Envelope::Event(Event::Acl(acl)) => shard.access.install(acl),
        Envelope::Event(Event::Conn { conn, op }) => shard.on_conn(conn, op),
        Envelope::Event(Event::HaMaster(addr)) => shard.set_ha_master(addr),
        Envelope::Event(Event::Role(view)) => shard.role.submit(view),
        Envelope::Event(Event::ConnClosed(client)) => {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                if let Some(c) = &shard.controller {
                    c.connection_closed(&*shard, &client).await;
                }
            })
            .detach();
        }
    }
}

/// Runs another shard's request here.
async fn answer(shard: &Rc<Shard>, req: Request) -> Reply {
    let controller = || {
        shard.controller.as_ref().ok_or((
            response::SYSTEM_ERROR,
            format!("shard {} is not the controller", shard.id),
        ))
    };
    match req {
        Request::Client { cmd, client } => Reply::Client(execute(shard, cmd, &client).await),
        Request::Stats => {
            let (snap, lag) = super::stats::shard_snapshot(shard);
            Reply::Stats(Box::new(snap), lag)
        }
        Request::QueueRows {
            topics,
            group,
            group_topics,
        } => Reply::QueueRows(super::admin::queue_rows(shard, topics, group.as_deref(), group_topics).await),
        Request::ResetOffsets {
            group,
            topic,
            timestamp,
            queue,
            force,
        } => Reply::Reset(super::admin::reset_here(shard, &group, &topic, timestamp, queue, force).await),
        Request::InconsistentGroups => Reply::Groups(match controller() {
            Ok(c) => c.inconsistent_groups(),
            Err(_) => Vec::new(),
        }),
        Request::GroupInfo { group } => Reply::GroupInfo(match controller() {
            Ok(c) => c.group_info(&group),
            Err(_) => Default::default(),
        }),
        Request::PushReset {
            group,
            topic,
            timestamp,
            offsets,
        } => Reply::Done(match controller() {
            Ok(c) => {
                c.push_reset(&**shard, &group, &topic, timestamp, &offsets).await;
                Ok(())
            }
            Err(e) => Err(e),
        }),
        Request::AutoCreateTopic {
            topic,
            default_queue_nums,
            view,
        } => Reply::Done(match controller() {
            Ok(c) => c.auto_create_topic(&**shard, &topic, default_queue_nums, view).await,
            Err(e) => Err(e),
        }),
        Request::Store { msg, due } => Reply::Stored(super::retry::store_here(shard, msg, due).await),
        Request::PopAck {
            group,
            topic,
            queue,
            items,
        } => Reply::PopAcked(pop::engine::ack(shard, &group, &topic, queue, &items).await),
        Request::PopChange {
            group,
            topic,
            queue,
            offset,
            pop_time,
            invisible_ms,
        } => Reply::PopChanged(pop::engine::change(shard, &group, &topic, queue, offset, pop_time, invisible_ms).await),
        Request::ProducerChannel { group } => {
            Reply::Channel(controller().ok().and_then(|c| c.producer_channel(&group)))
        }
        Request::Pop { req } => Reply::Popped(pop::engine::pop(shard, &req).await),
        Request::PopWait { client, topic, wait_ms } => {
            Reply::Done(pop_wait(shard, client, topic, Duration::from_millis(wait_ms)).await)
        }
        Request::TopicGroups { topic } => Reply::Groups(super::query::topic_groups_here(shard, &topic)),
        Request::QueryKey {
            topic,
            key,
            begin_ms,
            end_ms,
            max,
        } => Reply::Keys(
            shard
                .store
                .query_key(&topic, &key, begin_ms, end_ms, max)
                .await
                .map_err(|e| e.to_string()),
        ),
    }
}

/// Waits until a queue of `topic` this shard owns may have something to pop
/// for anyone, or `wait` passes (a registration in the shard's long polls,
/// woken like a parked pop).
pub async fn pop_wait(shard: &Shard, client: ClientRef, topic: String, wait: Duration) -> Result<(), (i32, String)> {
    let polls = &shard.pops.polls;
    if !polls.has_room(&client) {
        return Err((
            response::POLLING_FULL,
            format!("shard {}: too many waiting receives", shard.id),
        ));
    }
    let (tx, rx) = futures::channel::oneshot::channel();
    polls.park(
        super::long_poll::Parked::waiter(client, topic, super::long_poll::ANY_QUEUE, tx),
        wait,
    );
    let _ = rx.await; // woken, or the registration expired
    Ok(())
}

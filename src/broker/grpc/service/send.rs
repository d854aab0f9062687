//! Producing: SendMessage (each message a SEND_MESSAGE_V2 through the
//! remoting send path) and EndTransaction (an END_TRANSACTION).

use std::rc::Rc;

use crate::acl::{Need, Needs};
use crate::grpc::pb;
use crate::grpc::{GrpcStatus, RequestContext};
use crate::protocol::codes::{request, response};
use crate::protocol::OffsetMessageId;
use crate::runtime::mesh::{ClientRef, View};

use crate::broker::grpc::convert::{self, ok, status};

use super::{name, overall, Inner};

impl Inner {
    pub(super) async fn send_one(&self, m: &pb::Message, client: &ClientRef) -> pb::SendResultEntry {
        let failed = |s: pb::Status| pb::SendResultEntry {
            status: Some(s),
            ..Default::default()
        };
        let o = match convert::outgoing(m) {
            Ok(o) => o,
            Err(s) => return failed(s),
        };
        // The queue: by message group (FIFO), else in turn, among this
        // entry's write queues.
        let n = self
            .shard
            .with_topic(&o.topic, |t| match self.view {
                View::Main => t.write_queue_nums,
                View::Shard(k) => t.shard_view(k).1,
            })
            .unwrap_or(1)
            .max(1);
        let qid = match &o.group {
            Some(g) => (crate::protocol::java_string_hash(g) as u32) % n,
            None => {
                let k = self.rr.get();
                self.rr.set(k.wrapping_add(1));
                (k % n as usize) as u32
            }
        };
        let born = m
            .system_properties
            .as_ref()
            .and_then(|s| s.born_timestamp.as_ref())
            .map_or_else(convert::now_ms, convert::ms_of);
        let mut cmd = crate::admin::client::req(
            request::SEND_MESSAGE_V2,
            &[
                (
                    "a",
                    if o.transactional {
                        o.topic.clone()
                    } else {
                        "GRPC_PRODUCER".into()
                    },
                ),
                ("b", o.topic.clone()),
                ("c", "TBW102".into()),
                ("d", "4".into()),
                ("e", qid.to_string()),
                ("f", o.sys_flag.to_string()),
                ("g", born.to_string()),
                ("h", "0".into()),
                ("i", o.properties),
                ("j", "0".into()),
                ("k", "false".into()),
            ],
        );
        cmd.body = o.body;
        let r = match self.run(cmd, client).await {
            Ok(r) => r,
            Err(s) => return failed(s),
        };
        if r.code != response::SUCCESS {
            return failed(convert::from_remoting(r.code, r.remark.as_deref().unwrap_or("")));
        }
        let queue_offset = r.ext_i64("queueOffset").ok().flatten().unwrap_or(0);
        let transaction_id = if o.transactional {
            let phys = r
                .ext_str("msgId")
                .and_then(|id| OffsetMessageId::decode(id).ok())
                .map_or(0, |id| id.commit_log_offset);
            convert::transaction_id(phys, queue_offset)
        } else {
            String::new()
        };
        pb::SendResultEntry {
            status: Some(ok()),
            message_id: o.message_id,
            transaction_id,
            offset: queue_offset,
            recall_handle: String::new(),
        }
    }
}

pub(super) async fn send_message(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::SendMessageRequest,
) -> Result<pb::SendMessageResponse, GrpcStatus> {
    if ctx.client_id.is_none() {
        return Ok(pb::SendMessageResponse {
            status: Some(status(pb::Code::ClientIdRequired, "x-mq-client-id is required")),
            entries: Vec::new(),
        });
    }
    if req.messages.is_empty() {
        return Ok(pb::SendMessageResponse {
            status: Some(status(pb::Code::BadRequest, "no message to send")),
            entries: Vec::new(),
        });
    }
    let mut needs = Needs::none();
    for m in &req.messages {
        needs.add_topic(name(&m.topic).into(), Need::Pub);
    }
    let client = match me.allowed(ctx, &needs) {
        Ok(c) => c,
        Err(s) => {
            return Ok(pb::SendMessageResponse {
                status: Some(s),
                entries: Vec::new(),
            })
        }
    };
    let mut entries = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        entries.push(me.send_one(m, &client).await);
    }
    let statuses: Vec<pb::Status> = entries.iter().map(|e| e.status.clone().unwrap_or_default()).collect();
    Ok(pb::SendMessageResponse {
        status: Some(overall(&statuses)),
        entries,
    })
}

pub(super) async fn end_transaction(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::EndTransactionRequest,
) -> Result<pb::EndTransactionResponse, GrpcStatus> {
    let done = |s| Ok(pb::EndTransactionResponse { status: Some(s) });
    let Some((phys, queue_offset)) = convert::parse_transaction_id(&req.transaction_id) else {
        return done(status(
            pb::Code::InvalidTransactionId,
            "not a transaction id of this broker",
        ));
    };
    let kind = match pb::TransactionResolution::try_from(req.resolution) {
        Ok(pb::TransactionResolution::Commit) => 8,
        Ok(pb::TransactionResolution::Rollback) => 12,
        _ => return done(status(pb::Code::BadRequest, "resolution must be COMMIT or ROLLBACK")),
    };
    let topic = name(&req.topic).to_string();
    let client = match me.allowed(ctx, &Needs::none().topic(topic.as_str(), Need::Pub)) {
        Ok(c) => c,
        Err(s) => return done(s),
    };
    let cmd = crate::admin::client::req(
        request::END_TRANSACTION,
        &[
            ("producerGroup", topic),
            ("tranStateTableOffset", queue_offset.to_string()),
            ("commitLogOffset", phys.to_string()),
            ("commitOrRollback", kind.to_string()),
            (
                "fromTransactionCheck",
                (req.source == pb::TransactionSource::SourceServerCheck as i32).to_string(),
            ),
            ("msgId", req.message_id.clone()),
            ("transactionId", req.transaction_id.clone()),
        ],
    );
    match me.run(cmd, &client).await {
        Ok(r) if r.code == response::SUCCESS => done(ok()),
        Ok(r) => done(convert::from_remoting(r.code, r.remark.as_deref().unwrap_or(""))),
        Err(s) => done(s),
    }
}

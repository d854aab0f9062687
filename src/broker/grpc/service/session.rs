//! A client's session: Heartbeat, the Telemetry stream (settings merged
//! and answered, transaction checks pushed down it) and
//! NotifyClientTermination.

use std::cell::RefCell;
use std::rc::Rc;

use futures::{SinkExt, StreamExt};

use crate::acl::{Need, Needs};
use crate::grpc::pb::{self, telemetry_command::Command};
use crate::grpc::{GrpcStatus, RequestContext, ResponseStream, Streaming};
use crate::store::record::{check_record, RecordCheck};

use crate::broker::grpc::convert::{self, ok, status};
use crate::broker::mesh::GroupInfo;
use crate::broker::transaction::streams::{CheckSink, Offer, OrphanCheck};

use super::{name, Inner, MAX_LONG_POLL_MS};

/// Clients whose settings a shard keeps at most.
const MAX_CLIENTS: usize = 100_000;
/// Topics of one producer's settings that transaction checks follow.
const MAX_PUBLISHED_TOPICS: usize = 1_000;

/// A Telemetry stream as a place transaction checks go: pushes
/// `RecoverOrphanedTransactionCommand`, never waiting (a full stream is
/// busy; the check comes again next round).
struct TelemetrySink {
    inner: Rc<Inner>,
    out: RefCell<futures::channel::mpsc::Sender<Result<pb::TelemetryCommand, GrpcStatus>>>,
}

impl CheckSink for TelemetrySink {
    fn offer(&self, check: &OrphanCheck) -> Offer {
        let RecordCheck::Record(v) = check_record(&check.record, None, false) else {
            return Offer::Busy;
        };
        let topic = String::from_utf8_lossy(v.topic).into_owned();
        let message = convert::message(&convert::Delivery {
            view: &v,
            topic: &topic,
            queue_id: self.inner.local_queue(&topic, v.queue_id),
            receipt_handle: String::new(),
            invisible_ms: 0,
            reconsume_times: 0,
            store_host: self.inner.shard.store.config().store_host.to_string(),
        });
        let cmd = pb::TelemetryCommand {
            status: Some(ok()),
            command: Some(Command::RecoverOrphanedTransactionCommand(
                pb::RecoverOrphanedTransactionCommand {
                    message: Some(message),
                    transaction_id: convert::transaction_id(check.position, check.half as i64),
                },
            )),
        };
        match self.out.borrow_mut().try_send(Ok(cmd)) {
            Ok(()) => Offer::Sent,
            Err(e) if e.is_full() => Offer::Busy,
            Err(_) => Offer::Closed,
        }
    }
}

impl Inner {
    /// The settings answered to a client: its own, completed with what the
    /// clients need (v5-grpc.md §2); a consumer's `fifo` and max attempts
    /// (`retryMaxTimes` + 1) come from its group's config (`group`).
    pub(super) fn merge(&self, mut s: pb::Settings, group: &GroupInfo) -> pb::Settings {
        let cfg = &self.shard.cfg;
        let ty = s.client_type.and_then(|t| pb::ClientType::try_from(t).ok());
        match &mut s.pub_sub {
            Some(pb::settings::PubSub::Publishing(p)) => {
                p.max_body_size = cfg.max_message_size as i32;
                s.backoff_policy = Some(pb::RetryPolicy {
                    max_attempts: 3,
                    strategy: Some(pb::retry_policy::Strategy::ExponentialBackoff(pb::ExponentialBackoff {
                        initial: Some(convert::duration(10)),
                        max: Some(convert::duration(1000)),
                        multiplier: 2.0,
                    })),
                });
            }
            Some(pb::settings::PubSub::Subscription(sub)) => {
                sub.receive_batch_size = Some(sub.receive_batch_size.unwrap_or(32).clamp(1, 32));
                sub.long_polling_timeout = Some(convert::duration(MAX_LONG_POLL_MS));
                sub.fifo = Some(group.orderly);
                let next = if ty == Some(pb::ClientType::PushConsumer) || s.backoff_policy.is_none() {
                    Some(pb::retry_policy::Strategy::CustomizedBackoff(pb::CustomizedBackoff {
                        next: [
                            1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
                        ]
                        .iter()
                        .map(|s| convert::duration(s * 1000))
                        .collect(),
                    }))
                } else {
                    s.backoff_policy.as_ref().and_then(|b| b.strategy.clone())
                };
                s.backoff_policy = Some(pb::RetryPolicy {
                    max_attempts: group.retry_max_times.saturating_add(1),
                    strategy: next,
                });
            }
            None => {}
        }
        s
    }
}

pub(super) async fn heartbeat(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::HeartbeatRequest,
) -> Result<pb::HeartbeatResponse, GrpcStatus> {
    let group = req.group.as_ref().map_or("", |g| g.name.as_str());
    let needs = if group.is_empty() {
        Needs::none()
    } else {
        Needs::none().group(group)
    };
    if let Err(s) = me.allowed(ctx, &needs) {
        return Ok(pb::HeartbeatResponse { status: Some(s) });
    }
    let s = match &ctx.client_id {
        None => status(pb::Code::ClientIdRequired, "x-mq-client-id is required"),
        Some(id) => {
            me.renewals.seen(id);
            ok()
        }
    };
    Ok(pb::HeartbeatResponse { status: Some(s) })
}

pub(super) async fn telemetry(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    mut requests: Streaming<pb::TelemetryCommand>,
) -> Result<ResponseStream<pb::TelemetryCommand>, GrpcStatus> {
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<pb::TelemetryCommand, GrpcStatus>>(16);
    if let Err(s) = me.allowed(ctx, &Needs::none()) {
        // One answer, then the stream ends.
        let refused = pb::TelemetryCommand {
            status: Some(s),
            command: None,
        };
        return Ok(Box::pin(futures::stream::iter([Ok(refused)])));
    }
    let inner = me.clone();
    let ctx = ctx.clone();
    let client_id = ctx.client_id.clone();
    let streams = &me.shard.tx.streams;
    let stream = streams.new_stream();
    let sink: Rc<dyn CheckSink> = Rc::new(TelemetrySink {
        inner: me.clone(),
        out: RefCell::new(tx.clone()),
    });
    glommio::spawn_local(async move {
        while let Some(Ok(cmd)) = requests.next().await {
            let Some(Command::Settings(s)) = cmd.command else {
                continue; // thread stacks, verify results: nothing to do
            };
            let answer = match &client_id {
                None => pb::TelemetryCommand {
                    status: Some(status(pb::Code::ClientIdRequired, "x-mq-client-id is required")),
                    command: None,
                },
                Some(id) => {
                    inner.renewals.seen(id);
                    let group = match &s.pub_sub {
                        Some(pb::settings::PubSub::Subscription(sub)) => {
                            crate::broker::admin::group_info(&inner.shard, name(&sub.group)).await
                        }
                        _ => GroupInfo::default(),
                    };
                    let merged = inner.merge(s, &group);
                    let mut table = inner.settings.borrow_mut();
                    if table.len() < MAX_CLIENTS || table.contains_key(id) {
                        table.insert(id.clone(), merged.clone());
                    }
                    drop(table);
                    // A producer's topics: where transaction checks of
                    // its messages go (see transaction::streams).
                    if let Some(pb::settings::PubSub::Publishing(p)) = &merged.pub_sub {
                        // Only topics the client may publish to: a
                        // check carries the half message.
                        for t in p.topics.iter().take(MAX_PUBLISHED_TOPICS) {
                            if inner
                                .allowed(&ctx, &Needs::none().topic(t.name.as_str(), Need::Pub))
                                .is_ok()
                            {
                                inner.shard.tx.streams.register(&t.name, stream, sink.clone());
                            }
                        }
                    }
                    pb::TelemetryCommand {
                        status: Some(ok()),
                        command: Some(Command::Settings(merged)),
                    }
                }
            };
            if tx.send(Ok(answer)).await.is_err() {
                break;
            }
        }
        inner.shard.tx.streams.remove(stream);
    })
    .detach();
    Ok(Box::pin(rx))
}

pub(super) async fn notify_client_termination(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    _req: pb::NotifyClientTerminationRequest,
) -> Result<pb::NotifyClientTerminationResponse, GrpcStatus> {
    if let Err(s) = me.allowed(ctx, &Needs::none()) {
        return Ok(pb::NotifyClientTerminationResponse { status: Some(s) });
    }
    if let Some(id) = &ctx.client_id {
        me.settings.borrow_mut().remove(id);
        me.renewals.gone(id);
    }
    Ok(pb::NotifyClientTerminationResponse { status: Some(ok()) })
}

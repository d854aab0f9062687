//! [`MessagingService`] of one shard (see the module docs of [`super`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};

use crate::acl::{Need, Needs, Refusal};
use crate::grpc::pb::{self, telemetry_command::Command};
use crate::grpc::{GrpcStatus, MessagingService, RequestContext, ResponseStream, Streaming};
use crate::protocol::codes::{request, response};
use crate::protocol::{OffsetMessageId, RemotingCommand};
use crate::runtime::mesh::{ClientRef, Verified, View};
use crate::store::record::{check_record, RecordCheck};

use super::convert::{self, ok, status, Handle};
use crate::broker::dispatch;
use crate::broker::long_poll::{Parked, ANY_QUEUE};
use crate::broker::mesh::GroupInfo;
use crate::broker::pop::engine::{self, PopRequest};
use crate::broker::pop::remoting::{ack_on, change_on, MAX_INVISIBLE_MS};
use crate::broker::pop::state::Outcome;
use crate::broker::shard::Shard;
use crate::broker::transaction::streams::{CheckSink, Offer, OrphanCheck};

use super::renew::Renewals;

/// The proxy's bounds of a receive's invisible time and long poll.
const MIN_INVISIBLE_MS: i64 = 10_000;
const MAX_LONG_POLL_MS: i64 = 20_000;
const MIN_LONG_POLL_MS: i64 = 5_000;
/// A receive answers this long before its deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
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

pub struct ShardService {
    inner: Rc<Inner>,
}

struct Inner {
    shard: Rc<Shard>,
    view: View,
    /// Settings per client id, as merged and answered.
    settings: RefCell<HashMap<String, pb::Settings>>,
    rr: Cell<usize>,
    /// Push consumers' leases, renewed while their client lives.
    renewals: Rc<Renewals>,
}

impl ShardService {
    pub fn new(shard: Rc<Shard>, view: View) -> ShardService {
        ShardService {
            inner: Rc::new(Inner {
                shard,
                view,
                settings: RefCell::new(HashMap::new()),
                rr: Cell::new(0),
                renewals: Rc::new(Renewals::default()),
            }),
        }
    }
}

fn name(r: &Option<pb::Resource>) -> &str {
    r.as_ref().map_or("", |r| r.name.as_str())
}

fn resource(name: &str) -> pb::Resource {
    pb::Resource {
        resource_namespace: String::new(),
        name: name.to_string(),
    }
}

fn accepted_types() -> Vec<i32> {
    [
        pb::MessageType::Normal,
        pb::MessageType::Fifo,
        pb::MessageType::Delay,
        pb::MessageType::Transaction,
    ]
    .iter()
    .map(|t| *t as i32)
    .collect()
}

impl Inner {
    fn client_ref(&self, ctx: &RequestContext, verified: Verified) -> ClientRef {
        ClientRef {
            shard: self.shard.id,
            conn: self.shard.new_conn_id() | (1 << 62),
            addr: ctx.peer,
            view: self.view,
            verified,
        }
    }

    /// The ACL's verdict (when on) on a call that needs `needs`: its
    /// `authorization` signature, the account's address rule and the
    /// permissions. The client, as the requests the broker makes on its
    /// behalf carry it.
    fn allowed(&self, ctx: &RequestContext, needs: &Needs<'_>) -> Result<ClientRef, pb::Status> {
        let checked = self.shard.access.check_grpc(
            ctx.peer.ip(),
            ctx.authorization.as_deref(),
            ctx.date_time.as_deref(),
            needs,
        );
        match checked {
            Ok(verified) => Ok(self.client_ref(ctx, verified)),
            Err(r) => {
                let key = ctx
                    .authorization
                    .as_deref()
                    .and_then(|h| crate::acl::grpc_signature::parse(h).ok())
                    .map_or("", |a| a.access_key);
                let key: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
                self.shard.audit.refused_call(ctx.peer, &key, ctx.method.name(), &r);
                let code = if r.is_authentication_failure() || matches!(r, Refusal::Throttled { .. }) {
                    pb::Code::Unauthorized
                } else {
                    pb::Code::Forbidden
                };
                Err(status(code, r.remark()))
            }
        }
    }

    /// The broker entries of the route: (name, shard view, gRPC port).
    fn entries(&self) -> Vec<(String, Option<u16>, u16)> {
        let cfg = &self.shard.cfg;
        if cfg.shard_aware_routes {
            (0..self.shard.shard_count())
                .map(|k| {
                    (
                        format!("{}-s{k}", cfg.broker_name),
                        Some(k),
                        cfg.grpc_shard_port(k as usize),
                    )
                })
                .collect()
        } else {
            vec![(cfg.broker_name.clone(), None, cfg.grpc_listen_port)]
        }
    }

    fn broker(&self, name: &str, port: u16) -> pb::Broker {
        let ip = self.shard.cfg.broker_ip1;
        pb::Broker {
            name: name.to_string(),
            id: 0,
            endpoints: Some(pb::Endpoints {
                scheme: if ip.is_ipv4() {
                    pb::AddressScheme::IPv4 as i32
                } else {
                    pb::AddressScheme::IPv6 as i32
                },
                addresses: vec![pb::Address {
                    host: ip.to_string(),
                    port: port as i32,
                }],
            }),
        }
    }

    /// The global id of the queue a client numbers `id` on this entry.
    fn local_queue(&self, topic: &str, global: u32) -> i32 {
        match self.view {
            View::Main => global as i32,
            View::Shard(k) => self
                .shard
                .with_topic(topic, |t| t.global_to_local(k, global))
                .flatten()
                .map_or(global as i32, |l| l as i32),
        }
    }

    /// Whether `group` consumes in FIFO order: its subscription group
    /// config's `consumeMessageOrderly`, read at each request as Apache's
    /// proxy does (clients never say; the settings answer tells them).
    async fn fifo(&self, group: &str) -> bool {
        crate::broker::admin::group_info(&self.shard, group).await.orderly
    }

    /// The settings answered to a client: its own, completed with what the
    /// clients need (v5-grpc.md §2); a consumer's `fifo` and max attempts
    /// (`retryMaxTimes` + 1) come from its group's config (`group`).
    fn merge(&self, mut s: pb::Settings, group: &GroupInfo) -> pb::Settings {
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

    async fn run(&self, cmd: RemotingCommand, client: &ClientRef) -> Result<RemotingCommand, pb::Status> {
        let shard = &self.shard;
        // Checked by the gRPC endpoint ([`Inner::allowed`]), not signed.
        match dispatch::route_counted(shard, cmd, client).await {
            Some(r) => Ok(r),
            None => Err(status(pb::Code::InternalError, "the broker gave no answer")),
        }
    }

    async fn send_one(&self, m: &pb::Message, client: &ClientRef) -> pb::SendResultEntry {
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

    async fn receive(&self, ctx: &RequestContext, req: pb::ReceiveMessageRequest) -> Vec<pb::ReceiveMessageResponse> {
        let end = |s: pb::Status| {
            vec![
                pb::ReceiveMessageResponse {
                    content: Some(pb::receive_message_response::Content::Status(s)),
                },
                pb::ReceiveMessageResponse {
                    content: Some(pb::receive_message_response::Content::DeliveryTimestamp(
                        convert::timestamp(convert::now_ms()),
                    )),
                },
            ]
        };
        let Some(client_id) = ctx.client_id.as_deref() else {
            return end(status(pb::Code::ClientIdRequired, "x-mq-client-id is required"));
        };
        let group = name(&req.group).to_string();
        let mq = req.message_queue.clone().unwrap_or_default();
        let topic = name(&mq.topic).to_string();
        if let Err(e) = crate::broker::metadata::validate_group(&group) {
            return end(status(pb::Code::IllegalConsumerGroup, e));
        }
        if self.shard.topic(&topic).is_none() {
            return end(status(pb::Code::TopicNotFound, format!("topic {topic} does not exist")));
        }
        let invisible = req
            .invisible_duration
            .as_ref()
            .map_or(self.shard.cfg.default_invisible_ms, convert::duration_ms);
        if !(MIN_INVISIBLE_MS..=MAX_INVISIBLE_MS).contains(&invisible) {
            return end(status(
                pb::Code::IllegalInvisibleTime,
                format!("invisible duration {invisible} ms is out of range: 10 s to 12 h"),
            ));
        }
        let filter = match &req.filter_expression {
            Some(f) if f.r#type == pb::FilterType::Sql as i32 => {
                return end(status(
                    pb::Code::IllegalFilterExpression,
                    "SQL92 filters are not supported",
                ))
            }
            Some(f) => crate::broker::metadata::tag_filter(&f.expression),
            None => crate::store::TagFilter::All,
        };
        let poll_ms = req
            .long_polling_timeout
            .as_ref()
            .map_or(MAX_LONG_POLL_MS, convert::duration_ms)
            .clamp(MIN_LONG_POLL_MS, MAX_LONG_POLL_MS);
        let mut deadline = Instant::now() + Duration::from_millis(poll_ms as u64);
        if let Some(d) = ctx.deadline {
            deadline = deadline.min(d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
        }
        let client = match self.allowed(
            ctx,
            &Needs::none().topic(topic.as_str(), Need::Sub).group(group.as_str()),
        ) {
            Ok(c) => c,
            Err(s) => return end(s),
        };
        let fifo = self.fifo(&group).await;
        self.renewals.seen(client_id);
        let pop = PopRequest {
            group: group.clone(),
            topic: topic.clone(),
            // A receive pops from any queue of this shard, whatever queue the
            // client named: Apache's proxy does the same (it pops the named
            // broker's "acting queue" -1). Clients that take turns over the
            // route's queues (Python, Node) would otherwise wait a whole round
            // of long polls before coming back to a queue with a message due.
            queue: None,
            max: (req.batch_size.clamp(1, engine::MAX_POP as i32)) as usize,
            invisible_ms: invisible,
            filter,
            init_max: false,
            order: fifo,
            attempt_id: req.attempt_id.clone().unwrap_or_default(),
        };
        loop {
            let batch = match engine::pop(&self.shard, &pop).await {
                Ok(b) => b,
                Err((code, remark)) => return end(convert::from_remoting(code, &remark)),
            };
            if !batch.msgs.is_empty() {
                let mut out = vec![pb::ReceiveMessageResponse {
                    content: Some(pb::receive_message_response::Content::Status(ok())),
                }];
                let store_host = self.shard.store.config().store_host.to_string();
                for m in &batch.msgs {
                    let RecordCheck::Record(v) = check_record(&m.record, None, false) else {
                        continue;
                    };
                    let handle = Handle {
                        shard: self.shard.id,
                        queue: m.queue,
                        offset: m.offset,
                        pop_time: batch.pop_time,
                        phys: v.physical_offset as i64,
                    };
                    if req.auto_renew {
                        self.renewals.hold(
                            &self.shard,
                            client_id,
                            &group,
                            &topic,
                            m.queue,
                            m.offset,
                            batch.pop_time,
                            batch.pop_time + batch.invisible_ms,
                        );
                    }
                    let msg = convert::message(&convert::Delivery {
                        view: &v,
                        topic: &topic,
                        queue_id: self.local_queue(&topic, m.queue),
                        receipt_handle: handle.encode(),
                        invisible_ms: batch.invisible_ms,
                        reconsume_times: m.reconsume_times,
                        store_host: store_host.clone(),
                    });
                    out.push(pb::ReceiveMessageResponse {
                        content: Some(pb::receive_message_response::Content::Message(msg)),
                    });
                }
                out.push(pb::ReceiveMessageResponse {
                    content: Some(pb::receive_message_response::Content::DeliveryTimestamp(
                        convert::timestamp(convert::now_ms()),
                    )),
                });
                return out;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return end(status(pb::Code::MessageNotFound, "no new message"));
            };
            let polls = &self.shard.pops.polls;
            if !polls.has_room(&client) {
                return end(status(
                    pb::Code::TooManyRequests,
                    "too many long-polling receives on this shard",
                ));
            }
            let (tx, rx) = futures::channel::oneshot::channel();
            polls.park(Parked::waiter(client.clone(), topic.clone(), ANY_QUEUE, tx), left);
            let _ = rx.await; // woken, or the registration expired
        }
    }

    async fn ack_one(&self, group: &str, topic: &str, handle: &str) -> pb::Status {
        let Some(h) = Handle::decode(handle) else {
            return status(pb::Code::InvalidReceiptHandle, "not a receipt handle of this broker");
        };
        match ack_on(
            &self.shard,
            h.shard,
            group.to_string(),
            topic.to_string(),
            h.queue,
            vec![(h.offset, h.pop_time)],
        )
        .await
        {
            Ok(out) => match out.first() {
                Some(Outcome::Done) => {
                    self.renewals.release(group, topic, h.queue, h.offset);
                    ok()
                }
                Some(Outcome::Stale { .. }) => status(
                    pb::Code::InvalidReceiptHandle,
                    "the receipt handle is stale: the message was received again or its invisible time changed",
                ),
                _ => ok(),
            },
            Err((code, remark)) => convert::from_remoting(code, &remark),
        }
    }
}

/// Several entries' statuses as one: OK, the common failure, or
/// MULTIPLE_RESULTS.
fn overall(statuses: &[pb::Status]) -> pb::Status {
    match statuses.first() {
        None => ok(),
        Some(f) if statuses.iter().all(|s| s.code == f.code) => f.clone(),
        Some(_) => status(pb::Code::MultipleResults, "entries have different results"),
    }
}

impl MessagingService for ShardService {
    async fn query_route(
        &self,
        ctx: &RequestContext,
        req: pb::QueryRouteRequest,
    ) -> Result<pb::QueryRouteResponse, GrpcStatus> {
        let me = &self.inner;
        if let Err(s) = me.allowed(ctx, &Needs::none()) {
            return Ok(pb::QueryRouteResponse {
                status: Some(s),
                message_queues: Vec::new(),
            });
        }
        let topic = name(&req.topic).to_string();
        let Some(info) = me.shard.topic(&topic) else {
            return Ok(pb::QueryRouteResponse {
                status: Some(status(pb::Code::TopicNotFound, format!("topic {topic} does not exist"))),
                message_queues: Vec::new(),
            });
        };
        let mut queues = Vec::new();
        for (broker, view, port) in me.entries() {
            let (read, write) = match view {
                Some(k) => info.shard_view(k),
                None => (info.read_queue_nums, info.write_queue_nums),
            };
            for q in 0..read.max(write) {
                let p = match (q < read, q < write) {
                    (true, true) => pb::Permission::ReadWrite,
                    (true, false) => pb::Permission::Read,
                    (false, true) => pb::Permission::Write,
                    (false, false) => pb::Permission::None,
                };
                queues.push(pb::MessageQueue {
                    topic: Some(resource(&topic)),
                    id: q as i32,
                    permission: p as i32,
                    broker: Some(me.broker(&broker, port)),
                    accept_message_types: accepted_types(),
                });
            }
        }
        Ok(pb::QueryRouteResponse {
            status: Some(ok()),
            message_queues: queues,
        })
    }

    async fn heartbeat(
        &self,
        ctx: &RequestContext,
        req: pb::HeartbeatRequest,
    ) -> Result<pb::HeartbeatResponse, GrpcStatus> {
        let group = req.group.as_ref().map_or("", |g| g.name.as_str());
        let needs = if group.is_empty() {
            Needs::none()
        } else {
            Needs::none().group(group)
        };
        if let Err(s) = self.inner.allowed(ctx, &needs) {
            return Ok(pb::HeartbeatResponse { status: Some(s) });
        }
        let s = match &ctx.client_id {
            None => status(pb::Code::ClientIdRequired, "x-mq-client-id is required"),
            Some(id) => {
                self.inner.renewals.seen(id);
                ok()
            }
        };
        Ok(pb::HeartbeatResponse { status: Some(s) })
    }

    async fn send_message(
        &self,
        ctx: &RequestContext,
        req: pb::SendMessageRequest,
    ) -> Result<pb::SendMessageResponse, GrpcStatus> {
        let me = &self.inner;
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

    async fn query_assignment(
        &self,
        ctx: &RequestContext,
        req: pb::QueryAssignmentRequest,
    ) -> Result<pb::QueryAssignmentResponse, GrpcStatus> {
        let me = &self.inner;
        let topic = name(&req.topic).to_string();
        if let Err(s) = me.allowed(
            ctx,
            &Needs::none().topic(topic.as_str(), Need::Sub).group(name(&req.group)),
        ) {
            return Ok(pb::QueryAssignmentResponse {
                status: Some(s),
                assignments: Vec::new(),
            });
        }
        let Some(info) = me.shard.topic(&topic) else {
            return Ok(pb::QueryAssignmentResponse {
                status: Some(status(pb::Code::TopicNotFound, format!("topic {topic} does not exist"))),
                assignments: Vec::new(),
            });
        };
        let fifo = me.fifo(name(&req.group)).await;
        let mut assignments = Vec::new();
        for (broker, view, port) in me.entries() {
            let read = match view {
                Some(k) => info.shard_view(k).0,
                None => info.read_queue_nums,
            };
            if read == 0 || info.perm & crate::broker::metadata::perm::READ == 0 {
                continue;
            }
            let ids: Vec<i32> = if fifo { (0..read as i32).collect() } else { vec![-1] };
            for id in ids {
                assignments.push(pb::Assignment {
                    message_queue: Some(pb::MessageQueue {
                        topic: Some(resource(&topic)),
                        id,
                        permission: pb::Permission::ReadWrite as i32,
                        broker: Some(me.broker(&broker, port)),
                        accept_message_types: accepted_types(),
                    }),
                });
            }
        }
        let s = if assignments.is_empty() {
            status(pb::Code::Forbidden, format!("topic {topic} has no readable queue"))
        } else {
            ok()
        };
        Ok(pb::QueryAssignmentResponse {
            status: Some(s),
            assignments,
        })
    }

    async fn receive_message(
        &self,
        ctx: &RequestContext,
        req: pb::ReceiveMessageRequest,
    ) -> Result<ResponseStream<pb::ReceiveMessageResponse>, GrpcStatus> {
        let out = self.inner.receive(ctx, req).await;
        Ok(Box::pin(futures::stream::iter(out.into_iter().map(Ok))))
    }

    async fn ack_message(
        &self,
        ctx: &RequestContext,
        req: pb::AckMessageRequest,
    ) -> Result<pb::AckMessageResponse, GrpcStatus> {
        let me = &self.inner;
        let (group, topic) = (name(&req.group).to_string(), name(&req.topic).to_string());
        if let Err(s) = me.allowed(
            ctx,
            &Needs::none().topic(topic.as_str(), Need::Sub).group(group.as_str()),
        ) {
            return Ok(pb::AckMessageResponse {
                status: Some(s),
                entries: Vec::new(),
            });
        }
        let mut entries = Vec::with_capacity(req.entries.len());
        for e in &req.entries {
            let s = me.ack_one(&group, &topic, &e.receipt_handle).await;
            entries.push(pb::AckMessageResultEntry {
                message_id: e.message_id.clone(),
                receipt_handle: e.receipt_handle.clone(),
                status: Some(s),
            });
        }
        let statuses: Vec<pb::Status> = entries.iter().map(|e| e.status.clone().unwrap_or_default()).collect();
        Ok(pb::AckMessageResponse {
            status: Some(overall(&statuses)),
            entries,
        })
    }

    async fn change_invisible_duration(
        &self,
        ctx: &RequestContext,
        req: pb::ChangeInvisibleDurationRequest,
    ) -> Result<pb::ChangeInvisibleDurationResponse, GrpcStatus> {
        let me = &self.inner;
        let answer = |s: pb::Status, handle: String| pb::ChangeInvisibleDurationResponse {
            status: Some(s),
            receipt_handle: handle,
        };
        let needs = Needs::none().topic(name(&req.topic), Need::Sub).group(name(&req.group));
        if let Err(s) = me.allowed(ctx, &needs) {
            return Ok(answer(s, String::new()));
        }
        let Some(h) = Handle::decode(&req.receipt_handle) else {
            return Ok(answer(
                status(pb::Code::InvalidReceiptHandle, "not a receipt handle of this broker"),
                String::new(),
            ));
        };
        let invisible = req.invisible_duration.as_ref().map_or(0, convert::duration_ms);
        if !(1000..=MAX_INVISIBLE_MS).contains(&invisible) {
            return Ok(answer(
                status(
                    pb::Code::IllegalInvisibleTime,
                    format!("invisible duration {invisible} ms is out of range"),
                ),
                String::new(),
            ));
        }
        let (group, topic) = (name(&req.group).to_string(), name(&req.topic).to_string());
        // A push consumer's nack: it wants the message back after its
        // backoff, so the lease is no longer renewed.
        me.renewals.release(&group, &topic, h.queue, h.offset);
        let r = change_on(
            &me.shard, h.shard, group, topic, h.queue, h.offset, h.pop_time, invisible,
        )
        .await;
        Ok(match r {
            Ok((Outcome::Done, new_pop_time)) => answer(
                ok(),
                Handle {
                    pop_time: new_pop_time,
                    ..h
                }
                .encode(),
            ),
            Ok((Outcome::Stale { .. }, _)) => answer(
                status(pb::Code::InvalidReceiptHandle, "the receipt handle is stale"),
                String::new(),
            ),
            Ok((Outcome::NotInFlight, _)) => answer(
                status(pb::Code::InvalidReceiptHandle, "the message was acknowledged already"),
                String::new(),
            ),
            Err((code, remark)) => answer(convert::from_remoting(code, &remark), String::new()),
        })
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        ctx: &RequestContext,
        req: pb::ForwardMessageToDeadLetterQueueRequest,
    ) -> Result<pb::ForwardMessageToDeadLetterQueueResponse, GrpcStatus> {
        let me = &self.inner;
        let done = |s| Ok(pb::ForwardMessageToDeadLetterQueueResponse { status: Some(s) });
        let Some(h) = Handle::decode(&req.receipt_handle) else {
            return done(status(
                pb::Code::InvalidReceiptHandle,
                "not a receipt handle of this broker",
            ));
        };
        let (group, topic) = (name(&req.group).to_string(), name(&req.topic).to_string());
        let client = match me.allowed(
            ctx,
            &Needs::none().topic(topic.as_str(), Need::Sub).group(group.as_str()),
        ) {
            Ok(c) => c,
            Err(s) => return done(s),
        };
        let mut cmd = crate::admin::client::req(
            request::CONSUMER_SEND_MSG_BACK,
            &[
                ("offset", h.phys.to_string()),
                ("group", group.clone()),
                ("delayLevel", "-1".into()),
                ("originMsgId", req.message_id.clone()),
                ("originTopic", topic.clone()),
                ("unitMode", "false".into()),
                ("maxReconsumeTimes", (req.max_delivery_attempts - 1).max(0).to_string()),
            ],
        );
        cmd.version = 399;
        match me.run(cmd, &client).await {
            Ok(r) if r.code == response::SUCCESS => {}
            Ok(r) => return done(convert::from_remoting(r.code, r.remark.as_deref().unwrap_or(""))),
            Err(s) => return done(s),
        }
        done(me.ack_one(&group, &topic, &req.receipt_handle).await)
    }

    async fn end_transaction(
        &self,
        ctx: &RequestContext,
        req: pb::EndTransactionRequest,
    ) -> Result<pb::EndTransactionResponse, GrpcStatus> {
        let me = &self.inner;
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

    async fn telemetry(
        &self,
        ctx: &RequestContext,
        mut requests: Streaming<pb::TelemetryCommand>,
    ) -> Result<ResponseStream<pb::TelemetryCommand>, GrpcStatus> {
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<pb::TelemetryCommand, GrpcStatus>>(16);
        if let Err(s) = self.inner.allowed(ctx, &Needs::none()) {
            // One answer, then the stream ends.
            let refused = pb::TelemetryCommand {
                status: Some(s),
                command: None,
            };
            return Ok(Box::pin(futures::stream::iter([Ok(refused)])));
        }
        let inner = self.inner.clone();
        let ctx = ctx.clone();
        let client_id = ctx.client_id.clone();
        let streams = &self.inner.shard.tx.streams;
        let stream = streams.new_stream();
        let sink: Rc<dyn CheckSink> = Rc::new(TelemetrySink {
            inner: self.inner.clone(),
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

    async fn notify_client_termination(
        &self,
        ctx: &RequestContext,
        _req: pb::NotifyClientTerminationRequest,
    ) -> Result<pb::NotifyClientTerminationResponse, GrpcStatus> {
        if let Err(s) = self.inner.allowed(ctx, &Needs::none()) {
            return Ok(pb::NotifyClientTerminationResponse { status: Some(s) });
        }
        if let Some(id) = &ctx.client_id {
            self.inner.settings.borrow_mut().remove(id);
            self.inner.renewals.gone(id);
        }
        Ok(pb::NotifyClientTerminationResponse { status: Some(ok()) })
    }
}

//! [`MessagingService`] of one shard (see the module docs of [`super`]).

//!
//! One file per RPC family: [`route`] (QueryRoute, QueryAssignment),
//! [`send`] (SendMessage, EndTransaction), [`receive`] (ReceiveMessage,
//! AckMessage, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue)
//! and [`session`] (Heartbeat, Telemetry, NotifyClientTermination); this
//! file holds the shard's state, what every family shares (the ACL check,
//! the remoting round trip), and the trait's dispatch to the families.

mod receive;
mod route;
mod send;
mod session;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::acl::{Needs, Refusal};
use crate::grpc::pb;
use crate::grpc::{GrpcStatus, MessagingService, RequestContext, ResponseStream, Streaming};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, Verified, View};

use super::convert::{ok, status};
use crate::broker::dispatch;
use crate::broker::shard::Shard;

use super::renew::Renewals;

/// The proxy's bounds of a receive's invisible time and long poll.
const MIN_INVISIBLE_MS: i64 = 10_000;
const MAX_LONG_POLL_MS: i64 = 20_000;
const MIN_LONG_POLL_MS: i64 = 5_000;

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

    async fn run(&self, cmd: RemotingCommand, client: &ClientRef) -> Result<RemotingCommand, pb::Status> {
        let shard = &self.shard;
        // Checked by the gRPC endpoint ([`Inner::allowed`]), not signed.
        match dispatch::route_counted(shard, cmd, client).await {
            Some(r) => Ok(r),
            None => Err(status(pb::Code::InternalError, "the broker gave no answer")),
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
        route::query_route(&self.inner, ctx, req).await
    }

    async fn heartbeat(
        &self,
        ctx: &RequestContext,
        req: pb::HeartbeatRequest,
    ) -> Result<pb::HeartbeatResponse, GrpcStatus> {
        session::heartbeat(&self.inner, ctx, req).await
    }

    async fn send_message(
        &self,
        ctx: &RequestContext,
        req: pb::SendMessageRequest,
    ) -> Result<pb::SendMessageResponse, GrpcStatus> {
        send::send_message(&self.inner, ctx, req).await
    }

    async fn query_assignment(
        &self,
        ctx: &RequestContext,
        req: pb::QueryAssignmentRequest,
    ) -> Result<pb::QueryAssignmentResponse, GrpcStatus> {
        route::query_assignment(&self.inner, ctx, req).await
    }

    async fn receive_message(
        &self,
        ctx: &RequestContext,
        req: pb::ReceiveMessageRequest,
    ) -> Result<ResponseStream<pb::ReceiveMessageResponse>, GrpcStatus> {
        receive::receive_message(&self.inner, ctx, req).await
    }

    async fn ack_message(
        &self,
        ctx: &RequestContext,
        req: pb::AckMessageRequest,
    ) -> Result<pb::AckMessageResponse, GrpcStatus> {
        receive::ack_message(&self.inner, ctx, req).await
    }

    async fn change_invisible_duration(
        &self,
        ctx: &RequestContext,
        req: pb::ChangeInvisibleDurationRequest,
    ) -> Result<pb::ChangeInvisibleDurationResponse, GrpcStatus> {
        receive::change_invisible_duration(&self.inner, ctx, req).await
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        ctx: &RequestContext,
        req: pb::ForwardMessageToDeadLetterQueueRequest,
    ) -> Result<pb::ForwardMessageToDeadLetterQueueResponse, GrpcStatus> {
        receive::forward_message_to_dead_letter_queue(&self.inner, ctx, req).await
    }

    async fn end_transaction(
        &self,
        ctx: &RequestContext,
        req: pb::EndTransactionRequest,
    ) -> Result<pb::EndTransactionResponse, GrpcStatus> {
        send::end_transaction(&self.inner, ctx, req).await
    }

    async fn telemetry(
        &self,
        ctx: &RequestContext,
        requests: Streaming<pb::TelemetryCommand>,
    ) -> Result<ResponseStream<pb::TelemetryCommand>, GrpcStatus> {
        session::telemetry(&self.inner, ctx, requests).await
    }

    async fn notify_client_termination(
        &self,
        ctx: &RequestContext,
        req: pb::NotifyClientTerminationRequest,
    ) -> Result<pb::NotifyClientTerminationResponse, GrpcStatus> {
        session::notify_client_termination(&self.inner, ctx, req).await
    }
}

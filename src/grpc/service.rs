//! The service a broker shard implements to answer RocketMQ 5.x clients:
//! one async method per RPC, called on the shard that owns the connection.
//!
//! Error model: RocketMQ outcomes (topic not found, bad receipt handle, …)
//! are *successful* gRPC calls whose response carries a `pb::Status` — the
//! clients read the code there. Return `Err(GrpcStatus)` only for transport
//! failures (the call is then answered with that `grpc-status`; clients
//! treat it as a network error and retry).

use std::pin::Pin;

use futures::Stream;

use super::context::RequestContext;
use super::pb;
use super::status::GrpcStatus;
use super::streaming::Streaming;

/// A stream of response messages; `Err` ends the call with that status.
/// Local (`!Send`): it runs on the connection's shard.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, GrpcStatus>>>>;

/// `apache.rocketmq.v2.MessagingService`, served by [`super::serve_io`].
///
/// The futures are deliberately `!Send` (thread-per-core: handlers hold
/// `Rc`s and `RefCell`s of their shard), hence `async fn` in the trait
/// without `Send` bounds. Never hold a `RefCell` borrow across an `.await`.
///
/// Every method has a default answering UNIMPLEMENTED, so a service can be
/// brought up RPC by RPC.
///
/// Streaming methods return their stream as soon as they can: the response
/// headers go out when the method returns, and the stream is polled only
/// as HTTP/2 flow control allows. A stream that must outlive the call's
/// deadline is cut there with DEADLINE_EXCEEDED; a client that goes away
/// drops the stream.
#[allow(async_fn_in_trait)] // !Send futures are the point (see above)
pub trait MessagingService: 'static {
    /// Topic route: readable/writable queues and the brokers serving them.
    async fn query_route(
        &self,
        _ctx: &RequestContext,
        _req: pb::QueryRouteRequest,
    ) -> Result<pb::QueryRouteResponse, GrpcStatus> {
        Err(unimplemented("QueryRoute"))
    }

    /// Keep-alive of a producer or consumer (every 10 s).
    async fn heartbeat(
        &self,
        _ctx: &RequestContext,
        _req: pb::HeartbeatRequest,
    ) -> Result<pb::HeartbeatResponse, GrpcStatus> {
        Err(unimplemented("Heartbeat"))
    }

    async fn send_message(
        &self,
        _ctx: &RequestContext,
        _req: pb::SendMessageRequest,
    ) -> Result<pb::SendMessageResponse, GrpcStatus> {
        Err(unimplemented("SendMessage"))
    }

    /// Push consumers' load balancing (every 5 s).
    async fn query_assignment(
        &self,
        _ctx: &RequestContext,
        _req: pb::QueryAssignmentRequest,
    ) -> Result<pb::QueryAssignmentResponse, GrpcStatus> {
        Err(unimplemented("QueryAssignment"))
    }

    /// POP: a stream of `status`, the messages, `delivery_timestamp`.
    /// Long polls should end a little before `ctx.deadline`.
    async fn receive_message(
        &self,
        _ctx: &RequestContext,
        _req: pb::ReceiveMessageRequest,
    ) -> Result<ResponseStream<pb::ReceiveMessageResponse>, GrpcStatus> {
        Err(unimplemented("ReceiveMessage"))
    }

    async fn ack_message(
        &self,
        _ctx: &RequestContext,
        _req: pb::AckMessageRequest,
    ) -> Result<pb::AckMessageResponse, GrpcStatus> {
        Err(unimplemented("AckMessage"))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        _ctx: &RequestContext,
        _req: pb::ForwardMessageToDeadLetterQueueRequest,
    ) -> Result<pb::ForwardMessageToDeadLetterQueueResponse, GrpcStatus> {
        Err(unimplemented("ForwardMessageToDeadLetterQueue"))
    }

    async fn end_transaction(
        &self,
        _ctx: &RequestContext,
        _req: pb::EndTransactionRequest,
    ) -> Result<pb::EndTransactionResponse, GrpcStatus> {
        Err(unimplemented("EndTransaction"))
    }

    /// The bidirectional session stream. The client first sends its
    /// `settings`; answer `TelemetryCommand{status: OK, settings: merged}`
    /// (clients hang without it), then push server commands on the same
    /// stream whenever needed. `requests` ends when the client half-closes.
    async fn telemetry(
        &self,
        _ctx: &RequestContext,
        _requests: Streaming<pb::TelemetryCommand>,
    ) -> Result<ResponseStream<pb::TelemetryCommand>, GrpcStatus> {
        Err(unimplemented("Telemetry"))
    }

    async fn notify_client_termination(
        &self,
        _ctx: &RequestContext,
        _req: pb::NotifyClientTerminationRequest,
    ) -> Result<pb::NotifyClientTerminationResponse, GrpcStatus> {
        Err(unimplemented("NotifyClientTermination"))
    }

    async fn change_invisible_duration(
        &self,
        _ctx: &RequestContext,
        _req: pb::ChangeInvisibleDurationRequest,
    ) -> Result<pb::ChangeInvisibleDurationResponse, GrpcStatus> {
        Err(unimplemented("ChangeInvisibleDuration"))
    }
}

fn unimplemented(method: &str) -> GrpcStatus {
    GrpcStatus::unimplemented(format!("{method} is not implemented by this server"))
}

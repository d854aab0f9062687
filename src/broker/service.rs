//! The connection service: what a broker listener (main port, VIP port or
//! a shard port) does with each request it reads.

use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use crate::metrics::Op;
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::connection::Service;
use crate::runtime::mesh::View;

use super::mesh::Event;
use super::shard::Shard;

/// A listener's service: the broker on the main port or a shard port.
pub struct BrokerService {
    pub shard: Rc<Shard>,
    pub view: View,
}

impl Service for BrokerService {
    // Not `async fn`: the trait promises a `'static` future, which this
    // block is (it owns everything it uses).
    #[allow(clippy::manual_async_fn)]
    fn handle(
        self: Rc<Self>,
        conn: u64,
        cmd: RemotingCommand,
        received: Instant,
    ) -> impl Future<Output = Option<RemotingCommand>> + 'static {
        async move {
            let client = self.shard.conns.borrow().get(&conn).map(|(_, c)| c.clone())?;
            let m = &self.shard.metrics;
            let start = Instant::now();
            m.record(Op::Queueing, start - received);
            m.request(cmd.code);
            let oneway = cmd.is_oneway();
            let is_send = matches!(
                cmd.code,
                crate::protocol::codes::request::SEND_MESSAGE
                    | crate::protocol::codes::request::SEND_MESSAGE_V2
                    | crate::protocol::codes::request::SEND_BATCH_MESSAGE
            );
            let op = op_of(cmd.code);
            let reply = super::dispatch::route(&self.shard, cmd, &client).await;
            m.record(op, start.elapsed());
            if let (true, Some(r)) = (is_send, &reply) {
                m.send_answered(r.code != response::SUCCESS);
            }
            if let Some(r) = &reply {
                if !matches!(
                    r.code,
                    response::SUCCESS
                        | response::PULL_NOT_FOUND
                        | response::PULL_RETRY_IMMEDIATELY
                        | response::QUERY_NOT_FOUND
                ) {
                    m.error(r.code);
                }
            }
            if oneway {
                None
            } else {
                reply
            }
        }
    }

    fn traffic(&self, inbound: u64, outbound: u64) {
        self.shard.metrics.bytes(inbound, outbound);
    }

    fn closed(&self, conn: u64) {
        let Some((_, client)) = self.shard.conns.borrow_mut().remove(&conn) else {
            return;
        };
        let shard = self.shard.clone();
        glommio::spawn_local(async move {
            match &shard.controller {
                Some(c) => c.connection_closed(&*shard, &client).await,
                None => shard.mesh.send(0, Event::ConnClosed(client)).await,
            }
        })
        .detach();
    }
}

fn op_of(code: i32) -> Op {
    match code {
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => Op::Send,
        request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => Op::Pull,
        request::UPDATE_CONSUMER_OFFSET => Op::OffsetUpdate,
        _ => Op::Other,
    }
}

//! Consuming: ReceiveMessage (a long-polled pop of this shard's queues),
//! AckMessage, ChangeInvisibleDuration and
//! ForwardMessageToDeadLetterQueue, on receipt handles.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::acl::{Need, Needs};
use crate::grpc::pb;
use crate::grpc::{GrpcStatus, RequestContext, ResponseStream};
use crate::protocol::codes::{request, response};
use crate::store::record::{check_record, RecordCheck};

use crate::broker::grpc::convert::{self, ok, status, Handle};
use crate::broker::long_poll::{Parked, ANY_QUEUE};
use crate::broker::pop::engine::{self, PopRequest};
use crate::broker::pop::remoting::{ack_on, change_on, MAX_INVISIBLE_MS};
use crate::broker::pop::state::Outcome;

use super::{name, overall, Inner, MAX_LONG_POLL_MS, MIN_INVISIBLE_MS, MIN_LONG_POLL_MS};

/// A receive answers this long before its deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

impl Inner {
    pub(super) async fn receive(
        &self,
        ctx: &RequestContext,
        req: pb::ReceiveMessageRequest,
    ) -> Vec<pb::ReceiveMessageResponse> {
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

    pub(super) async fn ack_one(&self, group: &str, topic: &str, handle: &str) -> pb::Status {
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

pub(super) async fn receive_message(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::ReceiveMessageRequest,
) -> Result<ResponseStream<pb::ReceiveMessageResponse>, GrpcStatus> {
    let out = me.receive(ctx, req).await;
    Ok(Box::pin(futures::stream::iter(out.into_iter().map(Ok))))
}

pub(super) async fn ack_message(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::AckMessageRequest,
) -> Result<pb::AckMessageResponse, GrpcStatus> {
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

pub(super) async fn change_invisible_duration(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::ChangeInvisibleDurationRequest,
) -> Result<pb::ChangeInvisibleDurationResponse, GrpcStatus> {
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

pub(super) async fn forward_message_to_dead_letter_queue(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::ForwardMessageToDeadLetterQueueRequest,
) -> Result<pb::ForwardMessageToDeadLetterQueueResponse, GrpcStatus> {
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

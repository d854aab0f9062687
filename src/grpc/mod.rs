//! gRPC transport for RocketMQ 5.x clients (`apache.rocketmq.v2.MessagingService`).
pub mod pb;

//! The protobuf messages of `apache.rocketmq.v2`, generated at build time
//! (build.rs: protox + prost-build) from our own `proto/apache/rocketmq/v2/`.
//! Well-known types are `prost_types::{Timestamp, Duration}`.

// Generated code: its doc comments come from the .proto files and its
// shapes (large oneof variants, enum names like `IPv4`) from the wire API.
#![allow(clippy::all, clippy::pedantic, missing_docs, non_camel_case_types)]

include!(concat!(env!("OUT_DIR"), "/apache.rocketmq.v2.rs"));

//! `MQVersion.Version` ordinals that change protocol behaviour
//! (framing.md §9). The `version` field of every command carries one.

/// What shardmq puts in every command it sends: `V5_3_3`.
///
/// Java clients store the version of the `HEART_BEAT` response as "broker
/// version" and refuse SQL92 pulls below [`V4_1_0_SNAPSHOT`].
pub const CURRENT: i32 = V5_3_3;

/// Broker sends `RESET_CONSUMER_CLIENT_OFFSET` only to clients at or above.
pub const V3_0_7_SNAPSHOT: i32 = 28;
/// Name server expects `RegisterBrokerBody` from brokers at or above.
pub const V3_0_11: i32 = 37;
/// ali-ons; header `maxReconsumeTimes` honoured from this version on.
pub const V3_4_9: i32 = 121;
/// Minimum broker version for SQL92 pulls.
pub const V4_1_0_SNAPSHOT: i32 = 232;
pub const V4_4_0: i32 = 293;
/// rocketmq-client-go.
pub const V4_5_2: i32 = 317;
/// rocketmq-client-cpp default.
pub const V4_6_0: i32 = 333;
/// ACL: `_UNIQUE_KEY_QUERY` excluded from the signature up to this version.
pub const V4_9_3: i32 = 399;
/// Name server returns standard JSON route data from this version on.
pub const V4_9_4: i32 = 401;
pub const V4_9_8: i32 = 409;
pub const V5_0_0: i32 = 413;
pub const V5_1_0: i32 = 433;
/// `GO_AWAY` is sent only to clients above this version.
pub const V5_3_1: i32 = 475;
pub const V5_3_3: i32 = 479;

//! Property tests: no decoder panics, whatever the bytes.

use proptest::prelude::*;

use super::*;

/// Run every body decoder on `bytes`; results are ignored, panics are not.
fn decode_all(bytes: &[u8]) {
    let _ = fastjson_reader::parse_lenient(bytes);
    let _ = TopicRouteData::decode(bytes);
    let _ = ClusterInfo::decode(bytes);
    let _ = TopicList::decode(bytes);
    let _ = GroupList::decode(bytes);
    let _ = GetConsumerListByGroupResponseBody::decode(bytes);
    let _ = KvTable::decode(bytes);
    let _ = DataVersion::decode(bytes);
    let _ = TopicConfig::decode(bytes);
    let _ = RegisterBrokerBody::decode(bytes);
    let _ = RegisterBrokerBody::decode_request(bytes, true, 479);
    let _ = RegisterBrokerBody::decode_request(bytes, true, 300);
    let _ = HeartbeatData::decode(bytes);
    let _ = LockBatchRequestBody::decode(bytes);
    let _ = LockBatchResponseBody::decode(bytes);
    let _ = ConsumeStats::decode(bytes);
    let _ = TopicStatsTable::decode(bytes);
    let _ = ResetOffsetBody::decode(bytes);
    let _ = GetConsumerStatusBody::decode(bytes);
    let _ = ConsumerOffsetSerializeWrapper::decode(bytes);
    let _ = DelayOffsetSerializeWrapper::decode(bytes);
    let _ = ConsumerConnection::decode(bytes);
    let _ = CheckClientRequestBody::decode(bytes);
    let _ = ConsumeMessageDirectlyResult::decode(bytes);
    let _ = QueryConsumeQueueResponseBody::decode(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = TopicConfig::decode_text(text);
    }
}

/// Fragments of real bodies, so random concatenations get deep into the
/// parsers instead of failing at the first byte.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "'",
    "\\",
    "\\u",
    "\\uD83D",
    "0",
    "-1",
    "1.5e3",
    "true",
    "null",
    "$ref",
    "{\"$ref\":\"$\"}",
    "{\"$ref\":\"$.a[0]\"}",
    "\"brokerAddrs\"",
    "{0:\"a:1\"}",
    "\"queueDatas\"",
    "\"topicConfigTable\"",
    "\"offsetTable\"",
    "{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"t\"}",
    "\"consumerDataSet\"",
    "\"messageModel\"",
    "\"mqSet\"",
    "\u{feff}",
    "é",
    " ",
    "\0",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn token_soup_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..64)) {
        let text: String = picks.into_iter().map(|i| TOKENS[i]).collect();
        decode_all(text.as_bytes());
    }

    #[test]
    fn mutated_examples_never_panic(
        which in 0..3usize,
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let example = [
            route::tests::OLD,
            register_broker::tests::EXAMPLE,
            topic_config::tests::EXAMPLE,
        ][which];
        let mut bytes = example.as_bytes().to_vec();
        let i = flip.index(bytes.len());
        bytes[i] = byte;
        bytes.truncate(cut.index(bytes.len() + 1));
        decode_all(&bytes);
    }

    #[test]
    fn corrupted_compressed_bodies_never_panic(
        skip in 0..40usize,
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // A valid zlib stream of garbage content exercises the chunk reader.
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut raw = vec![0, 0, 0, 2, b'{', b'}', 0, 0, 0, 1];
        raw.extend_from_slice(&noise);
        raw.drain(..skip.min(raw.len()));
        z.write_all(&raw).unwrap();
        let _ = RegisterBrokerBody::decode_compressed(&z.finish().unwrap(), 479);
    }
}

#[test]
fn ref_amplification_is_bounded() {
    // Each level references the previous one twice: naive resolution would
    // grow as 2^n. The budget keeps the copy within the input size.
    let mut text = String::from(r#"{"l0":[1,2,3,4,5,6,7,8]"#);
    for i in 1..40 {
        text.push_str(&format!(
            r#","l{i}":[{{"$ref":"$.l{p}"}},{{"$ref":"$.l{p}"}}]"#,
            p = i - 1
        ));
    }
    text.push('}');
    let value = fastjson_reader::parse_lenient(text.as_bytes()).unwrap();
    assert!(value.to_string().len() < 8 * text.len());
}

//! REGISTER_BROKER: `RegisterBrokerBody` (request) and
//! `RegisterBrokerResult` (response) — json.md §8, store.md §8.
//!
//! JSON form (5.x; 4.x lacks the mapping members and `stateVersion`):
//!
//! ```json
//! {"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"mappingDataVersion":{..},"topicConfigTable":{"TopicTest":{..TopicConfig..}},"topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}
//! ```
//!
//! Compressed form (header `compressed=true`): a zlib stream whose inflated
//! content is, all integers big-endian `i32`:
//!
//! ```text
//! len | DataVersion JSON
//! topicCount
//!   topicCount × (len | TopicConfig text "<name> <readQ> <writeQ> <perm> <filterType> <attributes JSON>")
//! len | filterServerList JSON array
//! [broker version >= V5_0_0 (413)] mappingCount
//!   mappingCount × (len | TopicQueueMappingInfo JSON)
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data_version::DataVersion;
use super::kv_table::KvTable;
use super::topic_config::TopicConfig;
use super::{decode_json, loose, BodyError, JsonBody};
use crate::protocol::ext_fields::ExtFields;
use crate::protocol::version;

/// Largest inflated compressed body accepted. zlib cannot exceed ~1032:1,
/// so a body is also capped at that multiple of its compressed size.
pub const MAX_INFLATED_LEN: usize = 64 << 20;

/// A broker's topic configs and their version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    #[serde(deserialize_with = "loose::or_default")]
    pub data_version: DataVersion,
    /// 5.x static-topic mapping version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping_data_version: Option<DataVersion>,
    /// topicName → config.
    #[serde(deserialize_with = "loose::or_default")]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    /// 5.x static topics (kept opaque).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_detail_map: Option<BTreeMap<String, Value>>,
    /// 5.x static topics: topic → TopicQueueMappingInfo (kept opaque).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_info_map: Option<BTreeMap<String, Value>>,
}

impl JsonBody for TopicConfigSerializeWrapper {
    const NAME: &'static str = "TopicConfigSerializeWrapper";
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    #[serde(deserialize_with = "loose::de")]
    pub filter_server_list: Vec<String>,
    #[serde(deserialize_with = "loose::or_default")]
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

impl JsonBody for RegisterBrokerBody {
    const NAME: &'static str = "RegisterBrokerBody";
}

impl RegisterBrokerBody {
    /// Decode a REGISTER_BROKER body as the Java name server does
    /// (`DefaultRequestProcessor.registerBroker`):
    ///
    /// * empty body ⇒ no topics, DataVersion all zero;
    /// * broker version < `V3_0_11` ⇒ the body is a bare
    ///   TopicConfigSerializeWrapper;
    /// * `compressed` ⇒ the zlib form, else JSON.
    pub fn decode_request(body: &[u8], compressed: bool, broker_version: i32) -> Result<Self, BodyError> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        if broker_version < version::V3_0_11 {
            return Ok(Self {
                filter_server_list: Vec::new(),
                topic_config_serialize_wrapper: TopicConfigSerializeWrapper::decode(body)?,
            });
        }
        if compressed {
            Self::decode_compressed(body, broker_version)
        } else {
            Self::decode(body)
        }
    }

    /// Java `RegisterBrokerBody.decode(data, true, version)`.
    ///
    /// Lenient where Java is not harmful to be: a 5.x body that ends right
    /// before the mapping count has no mappings; unreadable topic lines are
    /// skipped (Java would keep a half-initialised config).
    pub fn decode_compressed(data: &[u8], broker_version: i32) -> Result<Self, BodyError> {
        let cap = MAX_INFLATED_LEN.min(data.len().saturating_mul(1032).max(1024));
        let inflated = inflate(data, cap)?;
        let mut r = ByteReader { buf: &inflated, pos: 0 };

        let data_version: DataVersion = decode_json(r.chunk("dataVersion")?, "DataVersion")?;
        let topic_count = r.count("topicCount")?;
        let mut topic_config_table = BTreeMap::new();
        for _ in 0..topic_count {
            let text = String::from_utf8_lossy(r.chunk("topicConfig")?);
            if let Some(tc) = TopicConfig::decode_text(&text) {
                topic_config_table.insert(tc.topic_name.clone(), tc);
            }
        }
        let filter_server_list = decode_json::<Vec<Value>>(r.chunk("filterServerList")?, "filterServerList")
            .map(|list| list.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();

        let mut mapping_info = None;
        if broker_version >= version::V5_0_0 && !r.is_empty() {
            let count = r.count("topicQueueMappingNum")?;
            let mut map = BTreeMap::new();
            for _ in 0..count {
                let info: Value = decode_json(r.chunk("topicQueueMappingInfo")?, "TopicQueueMappingInfo")?;
                let topic = info.get("topic").and_then(Value::as_str).unwrap_or_default().to_owned();
                map.insert(topic, info);
            }
            mapping_info = Some(map);
        }

        Ok(Self {
            filter_server_list,
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                data_version,
                topic_config_table,
                topic_queue_mapping_info_map: mapping_info,
                ..TopicConfigSerializeWrapper::default()
            },
        })
    }

    /// Java `RegisterBrokerBody.encode(true)` (zlib, best compression).
    pub fn encode_compressed(&self, broker_version: i32) -> Vec<u8> {
        let wrapper = &self.topic_config_serialize_wrapper;
        let mut raw = Vec::new();
        push_chunk(&mut raw, &wrapper.data_version.encode());
        push_len(&mut raw, wrapper.topic_config_table.len());
        for tc in wrapper.topic_config_table.values() {
            push_chunk(&mut raw, tc.encode_text().as_bytes());
        }
        push_chunk(
            &mut raw,
            &super::encode_with(
                &self.filter_server_list,
                "filterServerList",
                super::fastjson_writer::STANDARD,
            ),
        );
        if broker_version >= version::V5_0_0 {
            let infos = wrapper.topic_queue_mapping_info_map.as_ref();
            push_len(&mut raw, infos.map_or(0, BTreeMap::len));
            for info in infos.into_iter().flat_map(BTreeMap::values) {
                push_chunk(
                    &mut raw,
                    &super::encode_with(info, "mapping", super::fastjson_writer::STANDARD),
                );
            }
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&raw);
        z.finish().unwrap_or_default()
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
}

fn push_chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    push_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Inflate `data`, failing once the output would exceed `cap` bytes.
fn inflate(data: &[u8], cap: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::ZlibDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Compressed(format!("zlib: {e}")))?;
    if out.len() > cap {
        return Err(BodyError::InflatedTooLarge(cap));
    }
    Ok(out)
}

/// Reads `len | bytes` chunks, checking every length against what is there.
struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn count(&mut self, what: &str) -> Result<usize, BodyError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| BodyError::Compressed(format!("truncated before {what}")))?;
        self.pos += 4;
        let n = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        usize::try_from(n).map_err(|_| BodyError::Compressed(format!("negative {what} {n}")))
    }

    fn chunk(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let len = self.count(what)?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                BodyError::Compressed(format!(
                    "{what} of {len} bytes exceeds the {} bytes left",
                    self.buf.len() - self.pos
                ))
            })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
}

/// What the name server answers a registration with.
///
/// Travels as response header fields `haServerAddr` / `masterAddr` (set
/// only when a slave registers and its master is alive) and, as the body,
/// the `KVTable` of namespace `ORDER_TOPIC_CONFIG` when that namespace has
/// entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterBrokerResult {
    pub ha_server_addr: Option<String>,
    pub master_addr: Option<String>,
    pub kv_table: Option<KvTable>,
}

impl RegisterBrokerResult {
    pub fn to_ext_fields(&self) -> ExtFields {
        let mut ext = ExtFields::new();
        ext.insert_opt("haServerAddr", self.ha_server_addr.as_deref());
        ext.insert_opt("masterAddr", self.master_addr.as_deref());
        ext
    }

    pub fn body(&self) -> Vec<u8> {
        self.kv_table.as_ref().map(JsonBody::encode).unwrap_or_default()
    }

    /// Read a name server's answer (broker side).
    pub fn from_response(ext: &ExtFields, body: &[u8]) -> Result<Self, BodyError> {
        Ok(Self {
            ha_server_addr: ext.get_str("haServerAddr").map(str::to_owned),
            master_addr: ext.get_str("masterAddr").map(str::to_owned),
            kv_table: if body.is_empty() {
                None
            } else {
                Some(KvTable::decode(body)?)
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}},"topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}"#;

    #[test]
    fn json_md_example_round_trips() {
        let body = RegisterBrokerBody::decode(EXAMPLE.as_bytes()).unwrap();
        let w = &body.topic_config_serialize_wrapper;
        assert_eq!(w.data_version.counter, 3);
        assert_eq!(w.topic_config_table["TopicTest"].write_queue_nums, 4);
        assert_eq!(String::from_utf8(body.encode()).unwrap(), EXAMPLE);
    }

    #[test]
    fn four_x_body_and_empty_body() {
        let text = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"timestamp":5},"topicConfigTable":{"T":{"topicName":"T","readQueueNums":2,"writeQueueNums":2,"perm":6}}}}"#;
        let body = RegisterBrokerBody::decode_request(text.as_bytes(), false, 293).unwrap();
        assert_eq!(body.topic_config_serialize_wrapper.topic_config_table.len(), 1);
        assert_eq!(
            RegisterBrokerBody::decode_request(b"", true, 479).unwrap(),
            RegisterBrokerBody::default()
        );
        // Pre-3.0.11 brokers send the wrapper itself.
        let inner = r#"{"dataVersion":{"counter":1,"timestamp":5},"topicConfigTable":{"T":{"topicName":"T"}}}"#;
        let old = RegisterBrokerBody::decode_request(inner.as_bytes(), false, 30).unwrap();
        assert!(old.topic_config_serialize_wrapper.topic_config_table.contains_key("T"));
    }

    fn sample() -> RegisterBrokerBody {
        let mut body = RegisterBrokerBody::default();
        let w = &mut body.topic_config_serialize_wrapper;
        w.data_version = DataVersion {
            counter: 9,
            state_version: 0,
            timestamp: 77,
        };
        for tc in [
            TopicConfig::new("TopicTest", 4, 6),
            TopicConfig::new("TBW102", 8, 7),
            TopicConfig::new("%RETRY%G", 1, 6),
        ] {
            w.topic_config_table.insert(tc.topic_name.clone(), tc);
        }
        body.filter_server_list.push("10.0.0.9:30000".into());
        body
    }

    #[test]
    fn compressed_round_trip_in_both_versions() {
        let body = sample();
        for ver in [version::V4_9_8, version::V5_3_3] {
            let z = body.encode_compressed(ver);
            let mut back = RegisterBrokerBody::decode_request(&z, true, ver).unwrap();
            if ver >= version::V5_0_0 {
                assert_eq!(
                    back.topic_config_serialize_wrapper.topic_queue_mapping_info_map,
                    Some(BTreeMap::new())
                );
                back.topic_config_serialize_wrapper.topic_queue_mapping_info_map = None;
            }
            assert_eq!(back, body, "version {ver}");
        }
        // A 4.x-shaped stream read as 5.x has simply no mappings.
        let z = body.encode_compressed(version::V4_9_8);
        let back = RegisterBrokerBody::decode_compressed(&z, version::V5_3_3).unwrap();
        assert_eq!(back.topic_config_serialize_wrapper.topic_queue_mapping_info_map, None);
    }

    #[test]
    fn corrupt_compressed_bodies_are_errors() {
        let z = sample().encode_compressed(version::V5_3_3);
        assert!(RegisterBrokerBody::decode_compressed(&z[..z.len() / 2], 479).is_err());
        assert!(RegisterBrokerBody::decode_compressed(b"not zlib", 479).is_err());
        // A chunk length larger than the stream.
        let mut raw = Vec::new();
        push_len(&mut raw, 1 << 30);
        let mut zz = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zz.write_all(&raw).unwrap();
        let err = RegisterBrokerBody::decode_compressed(&zz.finish().unwrap(), 479).unwrap_err();
        assert!(matches!(err, BodyError::Compressed(_)), "{err}");
    }

    #[test]
    fn inflation_is_capped() {
        let zeros = vec![0u8; 4 << 20];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&zeros).unwrap();
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 4096, "{}", bomb.len());
        assert!(matches!(inflate(&bomb, 1 << 20), Err(BodyError::InflatedTooLarge(_))));
        assert_eq!(inflate(&bomb, 4 << 20).map(|v| v.len()), Ok(4 << 20));
    }

    #[test]
    fn result_header_and_body() {
        let mut kv = KvTable::default();
        kv.table.insert("TopicOrder".into(), "broker-a:4".into());
        let result = RegisterBrokerResult {
            ha_server_addr: Some("10.0.0.1:10912".into()),
            master_addr: Some("10.0.0.1:10911".into()),
            kv_table: Some(kv),
        };
        let ext = result.to_ext_fields();
        assert_eq!(ext.get_str("masterAddr"), Some("10.0.0.1:10911"));
        assert_eq!(result.body(), br#"{"table":{"TopicOrder":"broker-a:4"}}"#);
        assert_eq!(
            RegisterBrokerResult::from_response(&ext, &result.body()).unwrap(),
            result
        );
        assert!(RegisterBrokerResult::default().to_ext_fields().is_empty());
    }
}

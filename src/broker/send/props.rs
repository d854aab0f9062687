//! The property string a sent message is stored with: the client's, plus
//! `UNIQ_KEY` (when absent) and the broker's `CLUSTER`, appended in one
//! buffer; and where the UNIQ_KEY value sits in it.

use std::ops::Range;

use bytes::Bytes;

use crate::protocol::properties::{self, keys, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
use crate::protocol::Properties;
use crate::store::MARK_PROPERTY;

use crate::broker::shard::Shard;

/// The property string to store for a message sent with `props`: the
/// client's own, plus `UNIQ_KEY` when it set none and the broker's
/// `CLUSTER`; and the range of the UNIQ_KEY value in it.
///
/// The client's string is kept as sent, with the two pairs appended: every
/// reader parses property strings with the same lenient rules
/// (properties.rs), under which appending a pair for a key that is absent
/// means exactly what re-encoding the parsed map would. A string that
/// already names `CLUSTER` (which must be replaced, not repeated) takes
/// the parse-and-encode path.
pub(super) fn stored_properties(shard: &Shard, props: &str) -> Result<(String, Range<usize>), String> {
    let cluster = shard.cfg.broker_cluster_name.as_str();
    // A client cannot forge the store's marks (store::record::Mark).
    let appendable = properties::find(props, keys::CLUSTER).is_none()
        && properties::find(props, MARK_PROPERTY).is_none()
        && !cluster.is_empty()
        && !cluster.contains(PROPERTY_SEPARATOR);
    if !appendable {
        return rebuilt_properties(shard, props);
    }
    let client_uniq = properties::find(props, keys::UNIQ_KEY);
    let terminate = !props.is_empty() && !props.ends_with(PROPERTY_SEPARATOR);
    // Exactly the final length: `Bytes::from` a full `Vec` takes it over
    // without allocating a shared header.
    let mut uniq_gen = shard.uniq.borrow_mut();
    let len = props.len()
        + usize::from(terminate)
        + client_uniq.map_or(keys::UNIQ_KEY.len() + 2 + uniq_gen.id_len(), |_| 0)
        + keys::CLUSTER.len()
        + 2
        + cluster.len();
    let mut out = String::with_capacity(len);
    out.push_str(props);
    if terminate {
        out.push(PROPERTY_SEPARATOR);
    }
    let uniq = match client_uniq {
        // A subslice of `props`, which `out` starts with.
        Some(u) => range_in(props, u),
        None => {
            push_key(&mut out, keys::UNIQ_KEY);
            let at = out.len();
            uniq_gen.next_id_into(&mut out);
            let end = out.len();
            out.push(PROPERTY_SEPARATOR);
            at..end
        }
    };
    push_key(&mut out, keys::CLUSTER);
    out.push_str(cluster);
    out.push(PROPERTY_SEPARATOR);
    debug_assert_eq!(out.len(), len);
    Ok((out, uniq))
}

/// Where `part`, a subslice of `whole` (as `properties::find` returns),
/// sits in it.
fn range_in(whole: &str, part: &str) -> Range<usize> {
    let at = part.as_ptr() as usize - whole.as_ptr() as usize;
    at..at + part.len()
}

/// Where the UNIQ_KEY value sits in an encoded property string.
pub(super) fn uniq_range(props: &Bytes) -> Range<usize> {
    let text = std::str::from_utf8(props).unwrap_or("");
    properties::find(text, keys::UNIQ_KEY).map_or(0..0, |u| range_in(text, u))
}

/// A range of a property string that was built from a `String`.
pub(super) fn text_at(bytes: &Bytes, range: Range<usize>) -> &str {
    bytes.get(range).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
}

fn push_key(out: &mut String, key: &str) {
    out.push_str(key);
    out.push(NAME_VALUE_SEPARATOR);
}

/// [`stored_properties`] by parsing and re-encoding.
fn rebuilt_properties(shard: &Shard, props: &str) -> Result<(String, Range<usize>), String> {
    let mut p = Properties::parse(props);
    p.remove(MARK_PROPERTY);
    if p.get(keys::UNIQ_KEY).is_none() {
        let id = shard.uniq.borrow_mut().next_id();
        p.insert(keys::UNIQ_KEY, id).map_err(|e| e.to_string())?;
    }
    p.insert(keys::CLUSTER, shard.cfg.broker_cluster_name.clone())
        .map_err(|e| e.to_string())?;
    let encoded = p.encode();
    let range = properties::find(&encoded, keys::UNIQ_KEY).map_or(0..0, |u| range_in(&encoded, u));
    Ok((encoded, range))
}

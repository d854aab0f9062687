//! Sealed records (encryption at rest) as readers need them: a whole
//! record opened for a client, or only its PROPERTIES.

use super::{body_crc, check_record, RecordCheck, RecordView, SYSFLAG_POS};
use crate::store::crypt::{self, Field, KeyRing};

/// Appends `rec` (one whole stored record) to `out` as a client must see
/// it: a sealed record opened (BODY and PROPERTIES in plaintext, sizes and
/// BODYCRC of the plaintext, the key id cleared from SYSFLAG), a plaintext
/// one as it is. `ring` is the store's (None: encryption off).
pub fn open_record(ring: Option<&KeyRing>, shard: u16, rec: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let RecordCheck::Record(v) = check_record(rec, None, false) else {
        return Err("not a whole record".into());
    };
    let id = crypt::key_id_of(v.sys_flag);
    if id == 0 {
        out.extend_from_slice(&rec[..v.total_size as usize]);
        return Ok(());
    }
    let Some(ring) = ring else {
        return Err(format!("record sealed with key {id} but storeEncryptionEnable is off"));
    };
    let start = out.len();
    // Everything before BODYLEN is copied, then patched.
    let body_len_at = v.body.as_ptr() as usize - rec.as_ptr() as usize - 4;
    out.extend_from_slice(&rec[..body_len_at + 4]);
    let body_at = out.len();
    let fail = |what: &str, e: crypt::OpenError, out: &mut Vec<u8>| {
        out.truncate(start);
        format!("record at physical offset {}: {what} {e}", v.physical_offset)
    };
    let at = v.site(shard);
    if let Err(e) = ring.open(id, Field::Body, at, v.body, out) {
        return Err(fail("body", e, out));
    }
    let body_len = out.len() - body_at;
    let crc = body_crc(&out[body_at..]);
    out.push(v.topic.len() as u8);
    out.extend_from_slice(v.topic);
    let props_len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let props_at = out.len();
    if let Err(e) = ring.open(id, Field::Properties, at, v.properties, out) {
        return Err(fail("properties", e, out));
    }
    let props_len = out.len() - props_at;
    let total = (out.len() - start) as u32;
    let r = &mut out[start..];
    r[0..4].copy_from_slice(&total.to_be_bytes());
    r[8..12].copy_from_slice(&crc.to_be_bytes());
    r[SYSFLAG_POS..SYSFLAG_POS + 4].copy_from_slice(&(v.sys_flag & !crypt::KEY_ID_MASK).to_be_bytes());
    r[body_len_at..body_len_at + 4].copy_from_slice(&(body_len as u32).to_be_bytes());
    let pl = props_len_at - start;
    r[pl..pl + 2].copy_from_slice(&(props_len as u16).to_be_bytes());
    Ok(())
}

/// The plaintext PROPERTIES of a stored record (opened when sealed).
pub fn properties_of<'a>(
    ring: Option<&KeyRing>,
    shard: u16,
    v: &RecordView<'a>,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], String> {
    let id = crypt::key_id_of(v.sys_flag);
    if id == 0 {
        return Ok(v.properties);
    }
    let Some(ring) = ring else {
        return Err(format!(
            "the record at physical offset {} is sealed with key {id} but storeEncryptionEnable is off",
            v.physical_offset
        ));
    };
    buf.clear();
    let at = v.site(shard);
    ring.open(id, Field::Properties, at, v.properties, buf)
        .map_err(|e| format!("the record at physical offset {}: properties {e}", v.physical_offset))?;
    Ok(&buf[..])
}

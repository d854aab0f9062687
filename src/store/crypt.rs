//! Encryption at rest of the CommitLog (`storeEncryptionEnable`).
//!
//! # What is encrypted
//! A record's BODY and PROPERTIES, each sealed on its own with
//! AES-256-GCM-SIV (RFC 8452). Everything else stays plaintext: the record
//! header (sizes, queue id and offsets, timestamps, hosts), the TOPIC, and
//! the consume queues and checkpoint — the metadata the store needs to
//! recover, index and serve without the key.
//!
//! ```text
//! BODYCRC        crc32 of the stored (sealed) BODY, so recovery checks
//!                records without the key
//! SYSFLAG        bits 24..=30: id (1..=127) of the key that sealed it;
//!                0 = a plaintext record
//! BODYLEN        n + 16
//! BODY           AES-256-GCM-SIV(body) ‖ 16-byte tag
//! PROPERTIESLEN  p + 16
//! PROPERTIES     AES-256-GCM-SIV(properties) ‖ 16-byte tag
//! ```
//!
//! The nonce is derived, never stored: `[field][0][shard u16][physical
//! offset u64]` (field 0 = body, 1 = properties), unique per record of a
//! broker; the topic is the associated data, so a sealed body cannot be
//! moved to another topic's record unnoticed. A record is 32 bytes larger
//! than in plaintext, and nothing else about it (no nonce, no IV) is stored.
//!
//! **Why GCM-SIV.** The physical offset of a record is reused after a crash:
//! recovery cuts a torn tail and the next record is written at the same
//! offset. With plain GCM two different plaintexts under one (key, nonce)
//! leak their XOR and the authentication key. GCM-SIV is
//! nonce-misuse resistant: such a reuse reveals only whether the two
//! sealed fields were identical.
//!
//! # Keys
//! The key file (`storeEncryptionKeyFile`) holds one key per line, `<id>
//! <64 hex digits>` (ids 1..=127, `#` comments). The **last** line's key
//! seals new records; the others stay to open older ones (rotation: append
//! a new line and restart; records written before keep their key id). Each
//! shard remembers the ids it ever sealed with in `<shard dir>/sealed-keys`;
//! a start without one of them, or without encryption over a store that
//! has sealed records, is refused before anything is read or truncated.
//!
//! # Threat model
//! Protects message bodies and properties on stolen disks, discarded
//! drives, backups and snapshots of the data directory — as long as the key
//! file is kept elsewhere. Does not protect against anyone who can read the
//! broker's memory or its key file (a compromised broker process or host
//! account), nor metadata: topics, queue sizes, timestamps, client
//! addresses and message sizes stay visible on disk.

use std::path::Path;

use aes_gcm_siv::aead::AeadInPlace;
use aes_gcm_siv::{Aes256GcmSiv, KeyInit, Nonce, Tag};

/// Bytes an AEAD tag adds to one sealed field.
pub const TAG_LEN: usize = 16;
/// Bytes sealing adds to a record (body and properties).
pub const OVERHEAD: usize = 2 * TAG_LEN;
/// SYSFLAG bits holding the key id.
pub const KEY_ID_SHIFT: u32 = 24;
pub const KEY_ID_MASK: i32 = 0x7F << KEY_ID_SHIFT;

/// The key id of a stored record's SYSFLAG (0: plaintext).
pub fn key_id_of(sys_flag: i32) -> u8 {
    ((sys_flag & KEY_ID_MASK) >> KEY_ID_SHIFT) as u8
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Body = 0,
    Properties = 1,
}

fn nonce(field: Field, shard: u16, physical: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[0] = field as u8;
    n[2..4].copy_from_slice(&shard.to_be_bytes());
    n[4..].copy_from_slice(&physical.to_be_bytes());
    n
}

/// Where a sealed field lives: what its nonce and associated data are
/// made of.
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    pub shard: u16,
    /// The record's PHYSICALOFFSET.
    pub physical: u64,
    pub topic: &'a [u8],
}

/// Why a sealed field does not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The key file has no key of this id.
    UnknownKey(u8),
    /// Shorter than its tag, or the tag does not match: the bytes were
    /// changed, or sealed by another key of the same id.
    Forged,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::UnknownKey(id) => write!(f, "sealed with key {id}, which the key file does not hold"),
            OpenError::Forged => write!(
                f,
                "does not authenticate (changed on disk, or another key of the same id)"
            ),
        }
    }
}

/// The keys of a store: one seals, all open.
pub struct KeyRing {
    keys: Vec<(u8, Aes256GcmSiv)>,
    active: u8,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("KeyRing")
            .field("ids", &ids)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads a key file (startup, main thread). Warns when other users may
    /// read it.
    pub fn load(path: &Path) -> Result<KeyRing, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("storeEncryptionKeyFile {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "storeEncryptionKeyFile {} is readable by other users (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("storeEncryptionKeyFile {}: {e}", path.display()))?;
        KeyRing::parse(&text).map_err(|e| format!("storeEncryptionKeyFile {}: {e}", path.display()))
    }

    /// Parses `<id> <64 hex>` lines; never echoes key material in errors.
    pub fn parse(text: &str) -> Result<KeyRing, String> {
        let mut keys: Vec<(u8, Aes256GcmSiv)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let n = i + 1;
            let mut parts = line.split_whitespace();
            let (Some(id), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("line {n}: expected `<id> <64 hex digits>`"));
            };
            let id: u8 = id
                .parse()
                .ok()
                .filter(|id| (1..=127).contains(id))
                .ok_or_else(|| format!("line {n}: the key id must be 1..=127"))?;
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(format!("line {n}: key id {id} appears twice"));
            }
            let bytes = decode_hex(hex).ok_or_else(|| format!("line {n}: the key must be 64 hex digits (32 bytes)"))?;
            let cipher =
                Aes256GcmSiv::new_from_slice(&bytes).map_err(|_| format!("line {n}: the key must be 32 bytes"))?;
            keys.push((id, cipher));
        }
        let active = keys.last().map(|(id, _)| *id).ok_or("no key in it")?;
        Ok(KeyRing { keys, active })
    }

    /// The id new records are sealed with.
    pub fn active(&self) -> u8 {
        self.active
    }

    pub fn has(&self, id: u8) -> bool {
        self.keys.iter().any(|(k, _)| *k == id)
    }

    fn cipher(&self, id: u8) -> Result<&Aes256GcmSiv, OpenError> {
        self.keys
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, c)| c)
            .ok_or(OpenError::UnknownKey(id))
    }

    /// Seals `buf[start..]` in place with the active key and appends its
    /// tag.
    pub fn seal(&self, field: Field, at: Site<'_>, buf: &mut Vec<u8>, start: usize) {
        let cipher = self.cipher(self.active).expect("the active key is in the ring");
        let n = nonce(field, at.shard, at.physical);
        // Sealing cannot fail for fields under the AEAD's 64 GiB limit, and
        // records are bounded far below it (maxMessageSize).
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&n), at.topic, &mut buf[start..])
            .expect("a record field is far below the AEAD's length limit");
        buf.extend_from_slice(&tag);
    }

    /// Opens a sealed field (`data` = ciphertext ‖ tag) into `out`.
    pub fn open(&self, id: u8, field: Field, at: Site<'_>, data: &[u8], out: &mut Vec<u8>) -> Result<(), OpenError> {
        let cipher = self.cipher(id)?;
        let Some(split) = data.len().checked_sub(TAG_LEN) else {
            return Err(OpenError::Forged);
        };
        let start = out.len();
        out.extend_from_slice(&data[..split]);
        let n = nonce(field, at.shard, at.physical);
        let r = cipher.decrypt_in_place_detached(
            Nonce::from_slice(&n),
            at.topic,
            &mut out[start..],
            Tag::from_slice(&data[split..]),
        );
        if r.is_err() {
            out.truncate(start);
            return Err(OpenError::Forged);
        }
        Ok(())
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The key ids a shard's records were ever sealed with
/// (`<shard dir>/sealed-keys`, one id per line).
pub const SEALED_KEYS_FILE: &str = "sealed-keys";

/// Checks the shard's sealed-key record against the ring (or its absence)
/// and records the ring's active id. Startup only (std::fs, before the
/// shard serves). Refuses when records could not be opened.
pub fn check_and_record(dir: &Path, ring: Option<&KeyRing>) -> Result<(), String> {
    let path = dir.join(SEALED_KEYS_FILE);
    let used: Vec<u8> = match std::fs::read_to_string(&path) {
        Ok(t) => t.lines().filter_map(|l| l.trim().parse().ok()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let Some(ring) = ring else {
        if used.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "{} holds records sealed with key(s) {used:?} ({}): set storeEncryptionEnable=true and \
             storeEncryptionKeyFile to read them",
            dir.display(),
            path.display()
        ));
    };
    if let Some(missing) = used.iter().find(|id| !ring.has(**id)) {
        return Err(format!(
            "{} holds records sealed with key {missing}, which the key file does not hold (keep retired keys \
             in the file until retention has removed their records)",
            dir.display()
        ));
    }
    if !used.contains(&ring.active()) {
        let mut text: String = used.iter().map(|id| format!("{id}\n")).collect();
        text.push_str(&format!("{}\n", ring.active()));
        let tmp = dir.join(format!("{SEALED_KEYS_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "2 ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff";

    #[test]
    fn the_last_key_seals_and_every_key_opens() {
        let old = KeyRing::parse(K1).unwrap();
        let both = KeyRing::parse(&format!("# keys\n{K1}\n\n{K2}  # newest\n")).unwrap();
        assert_eq!((old.active(), both.active()), (1, 2));
        let mut buf = b"head:".to_vec();
        buf.extend_from_slice(b"hello body");
        let site = |shard, physical, topic| Site { shard, physical, topic };
        old.seal(Field::Body, site(3, 4096, b"T"), &mut buf, 5);
        assert_eq!(buf.len(), 5 + 10 + TAG_LEN);
        assert!(!buf.windows(5).any(|w| w == b"hello"), "sealed");
        let mut out = Vec::new();
        both.open(1, Field::Body, site(3, 4096, b"T"), &buf[5..], &mut out)
            .unwrap();
        assert_eq!(out, b"hello body");
        // Anything else refuses: another field, shard, offset, topic, key,
        // or one changed bit.
        for (f, shard, pos, topic) in [
            (Field::Properties, 3u16, 4096u64, &b"T"[..]),
            (Field::Body, 4, 4096, b"T"),
            (Field::Body, 3, 4097, b"T"),
            (Field::Body, 3, 4096, b"U"),
        ] {
            let mut out = Vec::new();
            assert_eq!(
                both.open(1, f, site(shard, pos, topic), &buf[5..], &mut out),
                Err(OpenError::Forged)
            );
            assert!(out.is_empty());
        }
        let mut out = Vec::new();
        assert_eq!(
            both.open(2, Field::Body, site(3, 4096, b"T"), &buf[5..], &mut out),
            Err(OpenError::Forged)
        );
        assert_eq!(
            old.open(2, Field::Body, site(3, 4096, b"T"), &buf[5..], &mut out),
            Err(OpenError::UnknownKey(2))
        );
        let mut bad = buf.clone();
        bad[7] ^= 1;
        assert_eq!(
            both.open(1, Field::Body, site(3, 4096, b"T"), &bad[5..], &mut out),
            Err(OpenError::Forged)
        );
        assert_eq!(
            both.open(1, Field::Body, site(3, 4096, b"T"), &buf[5..15], &mut out),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn bad_key_files_are_refused_without_echoing_keys() {
        for (text, why) in [
            ("", "no key"),
            ("1 abcd", "64 hex"),
            (
                "0 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "1..=127",
            ),
            (
                "128 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "1..=127",
            ),
            (&format!("{K1}\n{K1}"), "twice"),
            (
                "1 zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "64 hex",
            ),
            ("1 00 01", "expected"),
        ] {
            let e = KeyRing::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(!e.contains("0102030405"), "{e}");
        }
        assert!(!format!("{:?}", KeyRing::parse(K1).unwrap()).contains("0102"));
    }

    #[test]
    fn key_ids_live_in_sysflag_bits_24_to_30() {
        assert_eq!(key_id_of(0x7F << 24 | 0x33), 127);
        assert_eq!(key_id_of(5 << 24), 5);
        assert_eq!(key_id_of(0x0FFF), 0);
    }

    #[test]
    fn the_sealed_key_record_refuses_starts_that_could_not_read() {
        let dir = tempfile::tempdir().unwrap();
        check_and_record(dir.path(), None).expect("a plaintext store");
        let r1 = KeyRing::parse(K1).unwrap();
        check_and_record(dir.path(), Some(&r1)).unwrap();
        let e = check_and_record(dir.path(), None).unwrap_err();
        assert!(e.contains("storeEncryptionEnable=true"), "{e}");
        let r2 = KeyRing::parse(K2).unwrap();
        let e = check_and_record(dir.path(), Some(&r2)).unwrap_err();
        assert!(e.contains("key 1"), "{e}");
        let both = KeyRing::parse(&format!("{K1}\n{K2}")).unwrap();
        check_and_record(dir.path(), Some(&both)).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SEALED_KEYS_FILE)).unwrap();
        assert_eq!(text, "1\n2\n");
    }
}

//! Message `sysFlag` bits (message.md §5, Java `MessageSysFlag`).
//!
//! ```text
//!  bit   10..8        7      6       5         4         3..2      1      0
//!       compression  inner  unwrap  storeV6   bornV6   tran type  multi  compressed
//! ```
//!
//! Producers set only the compression and transaction bits; the broker sets
//! the IPv6 host bits from the real socket addresses at store time.

/// Body is compressed (algorithm in [`COMPRESSION_TYPE_MASK`]).
pub const COMPRESSED: i32 = 0x1;
/// Topic filter type MULTI_TAG.
pub const MULTI_TAGS: i32 = 0x2;
/// Transaction type bits.
pub const TRANSACTION_TYPE_MASK: i32 = 0xC;
pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
/// Half (prepared) message.
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
/// Born host is a 16-byte IPv6 address.
pub const BORNHOST_V6: i32 = 0x10;
/// Store host is a 16-byte IPv6 address.
pub const STOREHOST_V6: i32 = 0x20;
/// Inner batch must be unwrapped by the client.
pub const NEED_UNWRAP: i32 = 0x40;
/// Inner-batch record (5.x batch consume queue).
pub const INNER_BATCH: i32 = 0x80;
/// Compression algorithm bits; 0 means unspecified (treat as ZLIB).
pub const COMPRESSION_TYPE_MASK: i32 = 0x700;
pub const COMPRESSION_LZ4: i32 = 0x100;
pub const COMPRESSION_ZSTD: i32 = 0x200;
pub const COMPRESSION_ZLIB: i32 = 0x300;

/// The transaction type bits of `sys_flag`.
pub fn transaction_type(sys_flag: i32) -> i32 {
    sys_flag & TRANSACTION_TYPE_MASK
}

/// `sys_flag` with its transaction type replaced by `tran_type`.
pub fn with_transaction_type(sys_flag: i32, tran_type: i32) -> i32 {
    (sys_flag & !TRANSACTION_TYPE_MASK) | (tran_type & TRANSACTION_TYPE_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_type_bits() {
        let flag = COMPRESSED | TRANSACTION_PREPARED_TYPE | BORNHOST_V6;
        assert_eq!(transaction_type(flag), TRANSACTION_PREPARED_TYPE);
        let committed = with_transaction_type(flag, TRANSACTION_COMMIT_TYPE);
        assert_eq!(transaction_type(committed), TRANSACTION_COMMIT_TYPE);
        assert_eq!(committed & !TRANSACTION_TYPE_MASK, COMPRESSED | BORNHOST_V6);
        assert_eq!(transaction_type(TRANSACTION_ROLLBACK_TYPE | MULTI_TAGS), 0xC);
    }

    #[test]
    fn masks_do_not_overlap() {
        let singles = [
            COMPRESSED,
            MULTI_TAGS,
            TRANSACTION_TYPE_MASK,
            BORNHOST_V6,
            STOREHOST_V6,
            NEED_UNWRAP,
            INNER_BATCH,
            COMPRESSION_TYPE_MASK,
        ];
        let mut seen = 0;
        for mask in singles {
            assert_eq!(seen & mask, 0, "{mask:#x}");
            seen |= mask;
        }
        assert_eq!(seen, 0x7FF);
    }
}

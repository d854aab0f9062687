//! Helpers shared by the protocol unit tests.

/// Parse a hex dump in the spec's `0000  00 01 ..  ascii` format.
pub fn from_dump(dump: &str) -> Vec<u8> {
    dump.lines()
        .filter(|line| !line.trim().is_empty())
        .flat_map(|line| {
            line.split("  ")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect::<Vec<_>>()
        })
        .collect()
}

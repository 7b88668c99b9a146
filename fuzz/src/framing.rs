//! Reading fixed-size values from a fuzz input, the same way in every
//! target: a value past the end of the input reads as zero, so every input
//! decodes to something.

use arbitrary::Unstructured;

/// One byte (0 past the end).
pub fn read_u8(u: &mut Unstructured<'_>) -> u8 {
    u.arbitrary().unwrap_or(0)
}

/// A `u16` (0 past the end).
pub fn read_u16(u: &mut Unstructured<'_>) -> u16 {
    u.arbitrary().unwrap_or(0)
}

/// A `u32` (0 past the end).
pub fn read_u32(u: &mut Unstructured<'_>) -> u32 {
    u.arbitrary().unwrap_or(0)
}

/// Up to `n` bytes: fewer when the input runs out.
pub fn read_bytes(u: &mut Unstructured<'_>, n: usize) -> Vec<u8> {
    let n = n.min(u.len());
    u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
}

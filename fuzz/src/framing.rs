//! Reading fixed-size values from a fuzz input, the same way in every
//! target: a value past the end of the input reads as zero, so every input
//! decodes to something. Integers are little endian, as `Unstructured` reads
//! them; each `put_*` writes what the matching `read_*` reads, for the seed
//! generator.

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

/// An `i32` (0 past the end).
pub fn read_i32(u: &mut Unstructured<'_>) -> i32 {
    u.arbitrary().unwrap_or(0)
}

/// A `u64` (0 past the end).
pub fn read_u64(u: &mut Unstructured<'_>) -> u64 {
    u.arbitrary().unwrap_or(0)
}

/// Up to `n` bytes: fewer when the input runs out.
pub fn read_bytes(u: &mut Unstructured<'_>, n: usize) -> Vec<u8> {
    let n = n.min(u.len());
    u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
}

/// A short byte string: a length byte, then up to that many bytes.
pub fn read_short(u: &mut Unstructured<'_>) -> Vec<u8> {
    let n = usize::from(read_u8(u));
    read_bytes(u, n)
}

/// A long byte string: a `u16` length (at most `max` is taken), then up to
/// that many bytes.
pub fn read_long(u: &mut Unstructured<'_>, max: usize) -> Vec<u8> {
    let n = usize::from(read_u16(u)).min(max);
    read_bytes(u, n)
}

/// Splits the rest of the input into at most `max` operations, until it
/// runs out: each is a code byte (modulo `codes`), then what `op` reads for
/// that code.
pub fn read_ops<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    codes: u8,
    mut op: impl FnMut(&mut Unstructured<'_>, u8) -> T,
) -> Vec<T> {
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < max {
        let code = read_u8(u) % codes;
        ops.push(op(u, code));
    }
    ops
}

/// Writes what [`read_ops`] reads: each operation as `op` writes it (its
/// code byte first), at most `max` of them.
pub fn put_ops<T>(out: &mut Vec<u8>, ops: &[T], max: usize, mut op: impl FnMut(&mut Vec<u8>, &T)) {
    assert!(ops.len() <= max, "{} operations, at most {max}", ops.len());
    for o in ops {
        op(out, o);
    }
}

/// Writes what [`read_u16`] reads.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes what [`read_u32`] reads.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes what [`read_i32`] reads.
pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes what [`read_u64`] reads.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes what [`read_short`] reads (at most 255 bytes).
pub fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).expect("a short byte string fits in u8"));
    out.extend_from_slice(bytes);
}

/// Writes what [`read_long`] reads (at most `max` bytes).
pub fn put_long(out: &mut Vec<u8>, bytes: &[u8], max: usize) {
    assert!(bytes.len() <= max, "a long byte string of {} bytes, at most {max}", bytes.len());
    put_u16(out, u16::try_from(bytes.len()).expect("a long byte string fits in u16"));
    out.extend_from_slice(bytes);
}

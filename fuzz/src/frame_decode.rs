//! `frame_decode`: arbitrary bytes as a datagram, and as a TLV payload.
//!
//! The whole input is the datagram; there is no framing.
//!
//! Checked on every input:
//! - `peek_type` and `Frame::parse` agree: `parse` fails with `peek_type`'s
//!   error when that fails, and a parsed frame has `peek_type`'s type;
//! - a parsed frame is at most `MAX_DATAGRAM` bytes, `buffer_len` is the
//!   input's length, and `emit` writes the input back byte for byte (into a
//!   buffer of exactly that length, and into a larger one), while a buffer
//!   one byte short is refused with `BufferTooSmall`;
//! - `tlv::fields`, over the whole input and over everything after the
//!   header, ends, yields at most `len / 3 + 1` items, at most one of them
//!   an error and only as the last item, every value a sub-slice of the
//!   input, and stays ended once it returned `None`.

use peercollab_core::wire::{Frame, MAX_DATAGRAM, WireError, peek_type, tlv};

/// Checks `tlv::fields` over `payload`.
fn check_tlv(payload: &[u8]) {
    let bound = payload.len() / 3 + 1;
    let mut it = tlv::fields(payload);
    let mut count = 0usize;
    let mut consumed = 0usize;
    let mut failed = false;
    // One more than the bound, so a runaway iterator fails the assertion
    // below instead of looping.
    for item in it.by_ref().take(bound + 1) {
        count += 1;
        assert!(!failed, "tlv::fields yielded an item after an error");
        match item {
            Ok((ty, value)) => {
                assert_ne!(ty, tlv::PADDING, "padding is not a field");
                consumed += 3 + value.len();
                assert!(consumed <= payload.len(), "fields run past the payload");
                // The value is the bytes right after its type and length.
                let start = consumed - value.len();
                assert_eq!(&payload[start..consumed], value, "value is not the payload's bytes");
                assert_eq!(payload[start - 3], ty);
                assert_eq!(
                    usize::from(u16::from_be_bytes([payload[start - 2], payload[start - 1]])),
                    value.len()
                );
            }
            Err(_) => failed = true,
        }
    }
    assert!(count <= bound, "tlv::fields yielded {count} items from {} bytes", payload.len());
    assert!(it.next().is_none(), "tlv::fields resumed after it ended");
    assert!(it.next().is_none(), "tlv::fields resumed after it ended");
}

/// The target's body.
pub fn run(data: &[u8]) {
    let peeked = peek_type(data);
    match Frame::parse(data) {
        Ok(frame) => {
            assert_eq!(peeked, Ok(frame.frame_type()), "peek_type disagrees with parse");
            assert!(data.len() <= MAX_DATAGRAM);
            let len = frame.buffer_len();
            assert_eq!(len, data.len(), "buffer_len is not the parsed length");

            let mut exact = vec![0u8; len];
            assert_eq!(frame.emit(&mut exact), Ok(len));
            assert_eq!(exact, data, "emit does not reproduce the parsed bytes");

            let mut large = vec![0xa5u8; MAX_DATAGRAM + 1];
            assert_eq!(frame.emit(&mut large), Ok(len));
            assert_eq!(&large[..len], data, "emit into a larger buffer differs");
            assert!(large[len..].iter().all(|&b| b == 0xa5), "emit wrote past its length");

            let mut short = vec![0u8; len - 1];
            assert_eq!(frame.emit(&mut short), Err(WireError::BufferTooSmall));

            assert_eq!(Frame::parse(&exact), Ok(frame), "re-parse differs");
        }
        Err(e) => {
            if let Err(pe) = peeked {
                assert_eq!(e, pe, "parse and peek_type refuse for different reasons");
            }
        }
    }
    check_tlv(data);
    if let Some(rest) = data.get(4..) {
        check_tlv(rest);
    }
}

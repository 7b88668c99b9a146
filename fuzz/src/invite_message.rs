//! `invite_message`: arbitrary bytes as an invitation message, and as the
//! text of an invitation's message.
//!
//! The whole input is the message (the plaintext of one transport payload);
//! there is no framing.
//!
//! Checked on every input:
//! - `peek` and `Message::parse` agree: `parse` fails with `peek`'s error
//!   when that fails, and a parsed message has `peek`'s type and invite id;
//! - a parsed message is at most `MAX_TRANSPORT_PAYLOAD` bytes; its
//!   `buffer_len` is at most the input's length, and `emit` writes the
//!   input's first `buffer_len` bytes back byte for byte (into a buffer of
//!   exactly that length, and into a larger one without writing past it),
//!   while a buffer one byte short is refused with `BufferTooSmall`; the
//!   rest of the input (the extensions) is well-formed TLV without a
//!   critical field; the emitted bytes re-parse to the same message, and
//!   the same bytes one shorter are refused with `TooShort`;
//! - a parsed Invite fragment is within the limits: message len ≤
//!   `MAX_MESSAGE_BYTES`, data len ≤ `MAX_APP_DATA`, index below its
//!   fragment count (≤ `MAX_FRAGMENTS`), chunk of `chunk_range`'s length; a
//!   Final has no retry-after unless Busy; texts are ≤ `MAX_REASON_BYTES`;
//! - `validate_message`, over the whole input and over a fragment's chunk,
//!   never panics, and a validated text is the input's bytes, at most
//!   `MAX_MESSAGE_BYTES` bytes and `MAX_MESSAGE_CHARS` characters.

use peercollab_core::invite::message::{
    FinalCode, MAX_APP_DATA, MAX_BODY, MAX_FRAGMENTS, MAX_MESSAGE_BYTES, MAX_MESSAGE_CHARS,
    MAX_REASON_BYTES, Message, MessageError, chunk_range, fragment_count, peek, validate_message,
};
use peercollab_core::wire::{MAX_TRANSPORT_PAYLOAD, tlv};

/// Checks `validate_message` over `bytes`.
fn check_text(bytes: &[u8]) {
    if let Ok(text) = validate_message(bytes) {
        assert_eq!(text.as_bytes(), bytes, "validated text is not the input");
        assert!(text.len() <= MAX_MESSAGE_BYTES, "validated text of {} bytes", text.len());
        assert!(text.chars().count() <= MAX_MESSAGE_CHARS, "validated text too many chars");
    }
}

/// Checks the limits of a parsed message's fields.
fn check_fields(message: &Message<'_>) {
    match message {
        Message::Invite(f) => {
            assert!(usize::from(f.message_len) <= MAX_MESSAGE_BYTES);
            assert!(usize::from(f.data_len) <= MAX_APP_DATA);
            assert!(f.body_len() <= MAX_BODY);
            let count = fragment_count(f.body_len());
            assert_eq!(f.fragment_count(), count);
            assert!(count <= MAX_FRAGMENTS);
            assert!(usize::from(f.index) < count, "index past the count");
            let range = chunk_range(f.body_len(), usize::from(f.index)).expect("index in range");
            assert_eq!(f.chunk.len(), range.len(), "chunk of the wrong length");
            check_text(f.chunk);
        }
        Message::Final(f) => {
            assert!(f.retry_after_ms == 0 || f.code == FinalCode::Busy, "retry-after not busy");
            assert!(f.reason.len() <= MAX_REASON_BYTES);
        }
        Message::Cancel(c) => assert!(c.text.len() <= MAX_REASON_BYTES),
        Message::Sack { .. } | Message::Ringing { .. } | Message::Ack { .. } => {}
    }
}

/// The target's body.
pub fn run(data: &[u8]) {
    let peeked = peek(data);
    match Message::parse(data) {
        Ok(message) => {
            assert_eq!(peeked, Ok((message.message_type(), message.id())), "peek disagrees");
            assert!(data.len() <= MAX_TRANSPORT_PAYLOAD);
            check_fields(&message);
            let len = message.buffer_len();
            assert!(len <= data.len(), "buffer_len {len} past the input");

            let mut exact = vec![0u8; len];
            assert_eq!(message.emit(&mut exact), Ok(len));
            assert_eq!(exact, data[..len], "emit does not reproduce the fixed part");

            let mut large = vec![0xa5u8; MAX_TRANSPORT_PAYLOAD + 1];
            assert_eq!(message.emit(&mut large), Ok(len));
            assert_eq!(&large[..len], &data[..len], "emit into a larger buffer differs");
            assert!(large[len..].iter().all(|&b| b == 0xa5), "emit wrote past its length");

            let mut short = vec![0u8; len - 1];
            assert_eq!(message.emit(&mut short), Err(MessageError::BufferTooSmall));

            for field in tlv::fields(&data[len..]) {
                let (ty, _) = field.expect("accepted extensions are well-formed");
                assert_eq!(ty & tlv::CRITICAL, 0, "a critical extension was accepted");
            }

            assert_eq!(Message::parse(&exact), Ok(message), "re-parse differs");
            assert_eq!(Message::parse(&exact[..len - 1]), Err(MessageError::TooShort));
        }
        Err(e) => {
            if let Err(pe) = peeked {
                assert_eq!(e, pe, "parse and peek refuse for different reasons");
            }
        }
    }
    check_text(data);
}

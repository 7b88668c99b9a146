//! Datagram formats, as zero-copy views.
//!
//! Every datagram starts with the same four-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version ([`VERSION`]) |
//! | 1 | 1 | type ([`FrameType`]) |
//! | 2 | 1 | mode ([`Mode`]) for handshake frames and cookie replies, 0 for transport |
//! | 3 | 1 | reserved, 0 |
//!
//! followed by the type's fields (all integers big-endian):
//!
//! - **Initiation** (type 1): sender index (4), Noise message 1, mac1 (16), mac2 (16).
//! - **Response** (type 2): sender index (4), receiver index (4), Noise message 2, mac1 (16).
//! - **HandshakeFinal** (type 3, XX only): receiver index (4), Noise message 3.
//! - **CookieReply** (type 4): receiver index (4), nonce (24), sealed cookie (16 + 16); 64 bytes in all.
//! - **Transport** (type 5): receiver index (4), counter (8), ciphertext with its 16-byte tag.
//!
//! `spec/wire.md` is the normative text. Parsing checks every length before
//! use (fixed-size frames exactly, the others between their type's minimum
//! and [`MAX_DATAGRAM`]), the
//! version, the type, the mode and that reserved bits are zero; it never
//! panics and never reads outside the buffer, whatever the input. Every frame
//! is at most [`MAX_DATAGRAM`] bytes. [`Frame::emit`] writes into a caller
//! buffer and [`Frame::buffer_len`] says how much it needs.

use crate::noise::{DH_LEN, TAG_LEN};

/// The largest datagram peercollab sends or accepts: it fits the IPv6
/// minimum MTU (1280) minus IPv6 (40) and UDP (8) headers, with room to spare.
pub const MAX_DATAGRAM: usize = 1200;
/// The protocol version carried in every header and in the Noise prologue.
pub const VERSION: u8 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 4;
/// Length of a MAC field.
pub const MAC_LEN: usize = 16;
/// Length of a cookie.
pub const COOKIE_LEN: usize = 16;
/// Length of a cookie reply's nonce (XChaCha20-Poly1305).
pub const COOKIE_NONCE_LEN: usize = 24;
/// Exact length of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = HEADER_LEN + 4 + COOKIE_NONCE_LEN + COOKIE_LEN + TAG_LEN;
/// Bytes of a transport frame before the ciphertext (they are its associated data).
pub const TRANSPORT_HEADER_LEN: usize = HEADER_LEN + 4 + 8;
/// Smallest transport frame: header and an empty payload's tag (a keepalive).
pub const MIN_TRANSPORT_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Largest transport payload that fits one datagram.
pub const MAX_TRANSPORT_PAYLOAD: usize = MAX_DATAGRAM - MIN_TRANSPORT_LEN;
/// Bytes of an initiation around its Noise message.
pub const INITIATION_OVERHEAD: usize = HEADER_LEN + 4 + 2 * MAC_LEN;
/// Bytes of a response around its Noise message.
pub const RESPONSE_OVERHEAD: usize = HEADER_LEN + 8 + MAC_LEN;
/// Bytes of a handshake final around its Noise message.
pub const FINAL_OVERHEAD: usize = HEADER_LEN + 4;
/// Smallest XX initiation. XX message 1 carries only an ephemeral key, but
/// the responder's answer carries its certificate (a 268-byte response), so
/// the initiator pads its initiation to at least this length: no reply sent
/// before authentication is larger than the datagram that caused it. The
/// 32 bytes of headroom leave room for a response extension.
pub const MIN_XX_INITIATION_LEN: usize = 300;
/// Smallest IK initiation. An IK response states the responder's identity
/// by certificate hash (111 bytes) or, when the initiator pinned an older
/// certificate, by the full certificate (220 bytes); initiations are padded
/// to the larger, so a response never exceeds its trigger.
pub const MIN_IK_INITIATION_LEN: usize = 220;

/// Which Noise pattern a handshake runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `Noise_IK_25519_ChaChaPoly_SHA256`: inviting a contact.
    Ik = 1,
    /// `Noise_XX_25519_ChaChaPoly_SHA256`: inviting an endpoint.
    Xx = 2,
}

impl Mode {
    fn from_byte(b: u8) -> Result<Mode, WireError> {
        match b {
            1 => Ok(Mode::Ik),
            2 => Ok(Mode::Xx),
            _ => Err(WireError::BadMode),
        }
    }
}

/// The frame type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Handshake message 1.
    Initiation = 1,
    /// Handshake message 2.
    Response = 2,
    /// Handshake message 3 (XX only).
    HandshakeFinal = 3,
    /// A cookie demanded by a responder under load.
    CookieReply = 4,
    /// Encrypted transport data.
    Transport = 5,
}

/// Why a datagram could not be parsed or emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its type requires.
    TooShort,
    /// Longer than its type allows or than [`MAX_DATAGRAM`].
    TooLong,
    /// A version this implementation does not speak.
    UnknownVersion,
    /// An unknown type byte.
    UnknownType,
    /// An unknown mode, or a mode the type does not allow.
    BadMode,
    /// A reserved bit is set.
    ReservedNonZero,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WireError::TooShort => "datagram too short for its type",
            WireError::TooLong => "datagram too long for its type",
            WireError::UnknownVersion => "unknown protocol version",
            WireError::UnknownType => "unknown frame type",
            WireError::BadMode => "bad handshake mode",
            WireError::ReservedNonZero => "reserved bits set",
            WireError::BufferTooSmall => "output buffer too small",
        })
    }
}

impl core::error::Error for WireError {}

/// Smallest Noise message 1 per mode: IK `e, s, ss` (32 + 48) and an empty
/// payload's tag; XX `e`.
const fn min_noise1(mode: Mode) -> usize {
    match mode {
        Mode::Ik => DH_LEN + DH_LEN + TAG_LEN + TAG_LEN,
        Mode::Xx => DH_LEN,
    }
}

/// Smallest Noise message 2: IK `e` + tag; XX `e, s` + tag.
const fn min_noise2(mode: Mode) -> usize {
    match mode {
        Mode::Ik => DH_LEN + TAG_LEN,
        Mode::Xx => DH_LEN + DH_LEN + TAG_LEN + TAG_LEN,
    }
}

/// Smallest Noise message 3 (XX `s` + tag).
const MIN_NOISE3: usize = DH_LEN + TAG_LEN + TAG_LEN;

/// Handshake message 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Initiation<'a> {
    /// The pattern.
    pub mode: Mode,
    /// The initiator's index for this session.
    pub sender_index: u32,
    /// The Noise message.
    pub noise: &'a [u8],
    /// MAC keyed by the responder's static key (see [`crate::mac`]).
    pub mac1: [u8; MAC_LEN],
    /// MAC keyed by a cookie, or zeros.
    pub mac2: [u8; MAC_LEN],
}

/// Handshake message 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The pattern.
    pub mode: Mode,
    /// The responder's index for this session.
    pub sender_index: u32,
    /// The initiator's index, echoed.
    pub receiver_index: u32,
    /// The Noise message.
    pub noise: &'a [u8],
    /// MAC keyed by the initiator's ephemeral key.
    pub mac1: [u8; MAC_LEN],
}

/// Handshake message 3 (XX only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeFinal<'a> {
    /// The responder's index.
    pub receiver_index: u32,
    /// The Noise message.
    pub noise: &'a [u8],
}

/// A cookie reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieReply {
    /// The pattern of the handshake it answers.
    pub mode: Mode,
    /// The initiator's index.
    pub receiver_index: u32,
    /// XChaCha20-Poly1305 nonce.
    pub nonce: [u8; COOKIE_NONCE_LEN],
    /// The sealed cookie and its tag.
    pub sealed_cookie: [u8; COOKIE_LEN + TAG_LEN],
}

/// Transport data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport<'a> {
    /// The receiver's index.
    pub receiver_index: u32,
    /// The sender's message counter (the AEAD nonce).
    pub counter: u64,
    /// The ciphertext, tag included.
    pub ciphertext: &'a [u8],
}

/// Any datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Handshake message 1.
    Initiation(Initiation<'a>),
    /// Handshake message 2.
    Response(Response<'a>),
    /// Handshake message 3.
    HandshakeFinal(HandshakeFinal<'a>),
    /// Cookie reply.
    CookieReply(CookieReply),
    /// Transport data.
    Transport(Transport<'a>),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

fn array_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut x = [0u8; N];
    x.copy_from_slice(&b[at..at + N]);
    x
}

/// Reads the frame type of a datagram after checking the common header,
/// without looking further (the cheapest first check).
pub fn peek_type(bytes: &[u8]) -> Result<FrameType, WireError> {
    let h: [u8; HEADER_LEN] =
        bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(WireError::TooShort)?;
    if bytes.len() > MAX_DATAGRAM {
        return Err(WireError::TooLong);
    }
    let checked = crate::mutation::enabled(crate::mutation::Defence::HeaderChecks);
    if h[0] != VERSION && checked {
        return Err(WireError::UnknownVersion);
    }
    if h[3] != 0 && checked {
        return Err(WireError::ReservedNonZero);
    }
    match h[1] {
        1 => Ok(FrameType::Initiation),
        2 => Ok(FrameType::Response),
        3 => Ok(FrameType::HandshakeFinal),
        4 => Ok(FrameType::CookieReply),
        5 => Ok(FrameType::Transport),
        _ => Err(WireError::UnknownType),
    }
}

impl<'a> Frame<'a> {
    /// Parses a datagram. Checks are ordered cheapest first and every length
    /// is checked before it is used.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let ty = peek_type(bytes)?;
        let mode_byte = bytes[2];
        let len = bytes.len();
        match ty {
            FrameType::Initiation => {
                let mode = Mode::from_byte(mode_byte)?;
                let padded = match mode {
                    Mode::Ik => MIN_IK_INITIATION_LEN,
                    Mode::Xx => MIN_XX_INITIATION_LEN,
                };
                let no_amplification =
                    crate::mutation::enabled(crate::mutation::Defence::ResponseSize);
                let min = (INITIATION_OVERHEAD + min_noise1(mode)).max(if no_amplification {
                    padded
                } else {
                    0
                });
                if len < min {
                    return Err(WireError::TooShort);
                }
                Ok(Frame::Initiation(Initiation {
                    mode,
                    sender_index: u32_at(bytes, 4),
                    noise: &bytes[8..len - 2 * MAC_LEN],
                    mac1: array_at(bytes, len - 2 * MAC_LEN),
                    mac2: array_at(bytes, len - MAC_LEN),
                }))
            }
            FrameType::Response => {
                let mode = Mode::from_byte(mode_byte)?;
                if len < RESPONSE_OVERHEAD + min_noise2(mode) {
                    return Err(WireError::TooShort);
                }
                Ok(Frame::Response(Response {
                    mode,
                    sender_index: u32_at(bytes, 4),
                    receiver_index: u32_at(bytes, 8),
                    noise: &bytes[12..len - MAC_LEN],
                    mac1: array_at(bytes, len - MAC_LEN),
                }))
            }
            FrameType::HandshakeFinal => {
                if Mode::from_byte(mode_byte)? != Mode::Xx {
                    return Err(WireError::BadMode);
                }
                if len < FINAL_OVERHEAD + MIN_NOISE3 {
                    return Err(WireError::TooShort);
                }
                Ok(Frame::HandshakeFinal(HandshakeFinal {
                    receiver_index: u32_at(bytes, 4),
                    noise: &bytes[8..],
                }))
            }
            FrameType::CookieReply => {
                let mode = Mode::from_byte(mode_byte)?;
                match len.cmp(&COOKIE_REPLY_LEN) {
                    core::cmp::Ordering::Less => return Err(WireError::TooShort),
                    core::cmp::Ordering::Greater => return Err(WireError::TooLong),
                    core::cmp::Ordering::Equal => {}
                }
                Ok(Frame::CookieReply(CookieReply {
                    mode,
                    receiver_index: u32_at(bytes, 4),
                    nonce: array_at(bytes, 8),
                    sealed_cookie: array_at(bytes, 8 + COOKIE_NONCE_LEN),
                }))
            }
            FrameType::Transport => {
                if mode_byte != 0 {
                    return Err(WireError::ReservedNonZero);
                }
                if len < MIN_TRANSPORT_LEN {
                    return Err(WireError::TooShort);
                }
                let mut c = [0u8; 8];
                c.copy_from_slice(&bytes[8..16]);
                Ok(Frame::Transport(Transport {
                    receiver_index: u32_at(bytes, 4),
                    counter: u64::from_be_bytes(c),
                    ciphertext: &bytes[TRANSPORT_HEADER_LEN..],
                }))
            }
        }
    }

    /// The frame's type.
    #[must_use]
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Initiation(_) => FrameType::Initiation,
            Frame::Response(_) => FrameType::Response,
            Frame::HandshakeFinal(_) => FrameType::HandshakeFinal,
            Frame::CookieReply(_) => FrameType::CookieReply,
            Frame::Transport(_) => FrameType::Transport,
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        match self {
            Frame::Initiation(f) => INITIATION_OVERHEAD + f.noise.len(),
            Frame::Response(f) => RESPONSE_OVERHEAD + f.noise.len(),
            Frame::HandshakeFinal(f) => FINAL_OVERHEAD + f.noise.len(),
            Frame::CookieReply(_) => COOKIE_REPLY_LEN,
            Frame::Transport(f) => TRANSPORT_HEADER_LEN + f.ciphertext.len(),
        }
    }

    /// Writes the frame into `out`; returns its length. Refuses a frame that
    /// [`parse`](Self::parse) would refuse, so what is emitted always parses
    /// back to the same frame.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if len > MAX_DATAGRAM {
            return Err(WireError::TooLong);
        }
        let out = out.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        let mode = match self {
            Frame::Initiation(f) => f.mode as u8,
            Frame::Response(f) => f.mode as u8,
            Frame::HandshakeFinal(_) => Mode::Xx as u8,
            Frame::CookieReply(f) => f.mode as u8,
            Frame::Transport(_) => 0,
        };
        out[..HEADER_LEN].copy_from_slice(&[VERSION, self.frame_type() as u8, mode, 0]);
        match self {
            Frame::Initiation(f) => {
                out[4..8].copy_from_slice(&f.sender_index.to_be_bytes());
                out[8..len - 2 * MAC_LEN].copy_from_slice(f.noise);
                out[len - 2 * MAC_LEN..len - MAC_LEN].copy_from_slice(&f.mac1);
                out[len - MAC_LEN..].copy_from_slice(&f.mac2);
            }
            Frame::Response(f) => {
                out[4..8].copy_from_slice(&f.sender_index.to_be_bytes());
                out[8..12].copy_from_slice(&f.receiver_index.to_be_bytes());
                out[12..len - MAC_LEN].copy_from_slice(f.noise);
                out[len - MAC_LEN..].copy_from_slice(&f.mac1);
            }
            Frame::HandshakeFinal(f) => {
                out[4..8].copy_from_slice(&f.receiver_index.to_be_bytes());
                out[8..].copy_from_slice(f.noise);
            }
            Frame::CookieReply(f) => {
                out[4..8].copy_from_slice(&f.receiver_index.to_be_bytes());
                out[8..8 + COOKIE_NONCE_LEN].copy_from_slice(&f.nonce);
                out[8 + COOKIE_NONCE_LEN..].copy_from_slice(&f.sealed_cookie);
            }
            Frame::Transport(f) => {
                out[4..8].copy_from_slice(&f.receiver_index.to_be_bytes());
                out[8..16].copy_from_slice(&f.counter.to_be_bytes());
                out[16..].copy_from_slice(f.ciphertext);
            }
        }
        // Emitting what parse refuses (a too-short Noise message) is local misuse.
        match Frame::parse(out) {
            Ok(_) => Ok(len),
            Err(e) => Err(e),
        }
    }
}

/// Type-length-value fields inside handshake payloads.
///
/// A payload is a sequence of `type (1) ‖ length (2, big-endian) ‖ value`.
/// Type 0 is padding: it has no length field, and it and every byte after it
/// must be zero. Unknown types are skipped, unless their high bit is set
/// ("critical"), in which case the payload is refused.
pub mod tlv {
    /// Padding: the rest of the payload is zeros.
    pub const PADDING: u8 = 0x00;
    /// The sender's static-key certificate (identity statement).
    pub const CERTIFICATE: u8 = 0x01;
    /// The hash of the sender's certificate, which the receiver has pinned
    /// (identity statement).
    pub const CERTIFICATE_HASH: u8 = 0x02;
    /// IK message 1: the hash of the responder certificate the initiator
    /// pinned. A responder whose current certificate differs states its
    /// certificate in full, so the initiator learns it in-band.
    pub const PEER_CERTIFICATE_HASH: u8 = 0x03;
    /// Types with this bit set must be understood.
    pub const CRITICAL: u8 = 0x80;

    /// Why a payload's fields were refused.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum TlvError {
        /// A length runs past the end of the payload.
        Truncated,
        /// Padding contains a non-zero byte.
        NonZeroPadding,
        /// A critical field this implementation does not understand.
        UnknownCritical(u8),
        /// The output buffer is too small.
        BufferTooSmall,
    }

    /// Iterates over `(type, value)` fields, stopping at padding. Items are
    /// `Err` once, then the iteration ends, if the payload is malformed.
    #[derive(Clone, Debug)]
    pub struct Fields<'a> {
        rest: &'a [u8],
        failed: bool,
    }

    /// The fields of `payload`.
    #[must_use]
    pub fn fields(payload: &[u8]) -> Fields<'_> {
        Fields { rest: payload, failed: false }
    }

    impl<'a> Iterator for Fields<'a> {
        type Item = Result<(u8, &'a [u8]), TlvError>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.failed {
                return None;
            }
            let (&ty, after) = self.rest.split_first()?;
            if ty == PADDING {
                self.rest = &[];
                return if after.iter().all(|&b| b == 0) {
                    None
                } else {
                    self.failed = true;
                    Some(Err(TlvError::NonZeroPadding))
                };
            }
            let Some((len, value_and_rest)) = after.split_first_chunk::<2>() else {
                self.failed = true;
                return Some(Err(TlvError::Truncated));
            };
            let len = usize::from(u16::from_be_bytes(*len));
            if value_and_rest.len() < len {
                self.failed = true;
                return Some(Err(TlvError::Truncated));
            }
            let (value, rest) = value_and_rest.split_at(len);
            self.rest = rest;
            Some(Ok((ty, value)))
        }
    }

    /// Appends fields to a buffer.
    #[derive(Debug)]
    pub struct Writer<'a> {
        buf: &'a mut [u8],
        len: usize,
    }

    impl<'a> Writer<'a> {
        /// A writer at the start of `buf`.
        pub fn new(buf: &'a mut [u8]) -> Self {
            Writer { buf, len: 0 }
        }

        /// Appends one field.
        pub fn field(&mut self, ty: u8, value: &[u8]) -> Result<(), TlvError> {
            let vlen = u16::try_from(value.len()).map_err(|_| TlvError::BufferTooSmall)?;
            let end = self.len + 3 + value.len();
            let dst = self.buf.get_mut(self.len..end).ok_or(TlvError::BufferTooSmall)?;
            dst[0] = ty;
            dst[1..3].copy_from_slice(&vlen.to_be_bytes());
            dst[3..].copy_from_slice(value);
            self.len = end;
            Ok(())
        }

        /// Pads with zeros up to `total` bytes (no-op if already longer).
        pub fn pad_to(&mut self, total: usize) -> Result<(), TlvError> {
            if total > self.len {
                let dst = self.buf.get_mut(self.len..total).ok_or(TlvError::BufferTooSmall)?;
                dst.fill(PADDING);
                self.len = total;
            }
            Ok(())
        }

        /// Bytes written so far.
        #[must_use]
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether nothing was written.
        #[must_use]
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(f: Frame<'_>) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = f.emit(&mut buf).unwrap();
        assert_eq!(n, f.buffer_len());
        assert_eq!(Frame::parse(&buf[..n]).unwrap(), f);
    }

    #[test]
    fn each_frame_type_round_trips() {
        let noise = [7u8; 300];
        roundtrip(Frame::Initiation(Initiation {
            mode: Mode::Ik,
            sender_index: 1,
            noise: &noise[..180],
            mac1: [1; 16],
            mac2: [2; 16],
        }));
        roundtrip(Frame::Initiation(Initiation {
            mode: Mode::Xx,
            sender_index: 1,
            noise: &noise[..260],
            mac1: [1; 16],
            mac2: [0; 16],
        }));
        roundtrip(Frame::Response(Response {
            mode: Mode::Xx,
            sender_index: 9,
            receiver_index: 1,
            noise: &noise[..200],
            mac1: [3; 16],
        }));
        roundtrip(Frame::HandshakeFinal(HandshakeFinal { receiver_index: 9, noise: &noise[..64] }));
        roundtrip(Frame::CookieReply(CookieReply {
            mode: Mode::Ik,
            receiver_index: 5,
            nonce: [4; 24],
            sealed_cookie: [5; 32],
        }));
        roundtrip(Frame::Transport(Transport {
            receiver_index: 3,
            counter: u64::MAX - 1,
            ciphertext: &noise[..16],
        }));
    }

    #[test]
    fn header_checks_refuse_version_type_mode_and_reserved_bits() {
        let mut buf = [0u8; 64];
        let f = Frame::Transport(Transport { receiver_index: 3, counter: 1, ciphertext: &[0; 16] });
        let n = f.emit(&mut buf).unwrap();
        let mut b = buf;
        b[0] = 2;
        assert_eq!(Frame::parse(&b[..n]), Err(WireError::UnknownVersion));
        let mut b = buf;
        b[1] = 9;
        assert_eq!(Frame::parse(&b[..n]), Err(WireError::UnknownType));
        let mut b = buf;
        b[2] = 1;
        assert_eq!(Frame::parse(&b[..n]), Err(WireError::ReservedNonZero));
        let mut b = buf;
        b[3] = 0x80;
        assert_eq!(Frame::parse(&b[..n]), Err(WireError::ReservedNonZero));
        assert_eq!(Frame::parse(&buf[..n - 1]), Err(WireError::TooShort));
        assert_eq!(Frame::parse(&buf[..3]), Err(WireError::TooShort));
        assert_eq!(Frame::parse(&[0u8; MAX_DATAGRAM + 1]), Err(WireError::TooLong));
    }

    #[test]
    fn unpadded_xx_initiation_is_refused() {
        let noise = [0u8; 32];
        let f = Frame::Initiation(Initiation {
            mode: Mode::Xx,
            sender_index: 1,
            noise: &noise,
            mac1: [0; 16],
            mac2: [0; 16],
        });
        let mut buf = [0u8; 128];
        assert_eq!(f.emit(&mut buf), Err(WireError::TooShort));
    }

    #[test]
    fn handshake_final_exists_only_in_xx() {
        let mut buf = [0u8; 128];
        let n = Frame::HandshakeFinal(HandshakeFinal { receiver_index: 1, noise: &[0; 64] })
            .emit(&mut buf)
            .unwrap();
        buf[2] = Mode::Ik as u8;
        assert_eq!(Frame::parse(&buf[..n]), Err(WireError::BadMode));
    }

    #[test]
    fn cookie_reply_length_is_exact() {
        let mut buf = [0u8; 80];
        let n = Frame::CookieReply(CookieReply {
            mode: Mode::Xx,
            receiver_index: 1,
            nonce: [0; 24],
            sealed_cookie: [0; 32],
        })
        .emit(&mut buf)
        .unwrap();
        assert_eq!(n, 64);
        assert_eq!(Frame::parse(&buf[..65]), Err(WireError::TooLong));
        assert_eq!(Frame::parse(&buf[..63]), Err(WireError::TooShort));
    }

    #[test]
    fn tlv_fields_padding_and_errors() {
        let mut buf = [0u8; 64];
        let mut w = tlv::Writer::new(&mut buf);
        w.field(tlv::CERTIFICATE_HASH, &[1, 2, 3]).unwrap();
        w.field(0x40, &[]).unwrap();
        w.pad_to(20).unwrap();
        let n = w.len();
        assert_eq!(n, 20);
        {
            let got: heapless::Vec<_, 4> = tlv::fields(&buf[..n]).collect();
            assert_eq!(
                got.as_slice(),
                &[Ok((tlv::CERTIFICATE_HASH, &[1u8, 2, 3][..])), Ok((0x40, &[][..]))]
            );
        }
        buf[15] = 1;
        assert_eq!(tlv::fields(&buf[..n]).last(), Some(Err(tlv::TlvError::NonZeroPadding)));
        assert_eq!(tlv::fields(&[1, 0, 5, 1]).next(), Some(Err(tlv::TlvError::Truncated)));
        assert_eq!(tlv::fields(&[1, 0]).next(), Some(Err(tlv::TlvError::Truncated)));
    }
}

//! Invitation messages, as zero-copy views.
//!
//! An invitation message is the plaintext payload of one transport datagram
//! (at most [`MAX_TRANSPORT_PAYLOAD`] bytes). Every message starts with the
//! same 17-byte header (all integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | type ([`MessageType`]) |
//! | 1 | 16 | invite id ([`InviteId`]) |
//!
//! followed by the type's fixed fields, then by its **extensions**: every
//! byte after the fixed fields is a sequence of [`tlv`] fields. Unknown
//! fields are skipped, padding (type 0) is allowed, and a field with the
//! [`tlv::CRITICAL`] bit set is refused: no extension is defined yet.
//! [`Message::emit`] writes none.
//!
//! - **Invite** fragment (type 1), inviter → invitee, [`INVITE_HEADER_LEN`]
//!   bytes and the chunk:
//!
//!   | offset | size | field |
//!   |---|---|---|
//!   | 17 | 16 | app id ([`AppId`]) |
//!   | 33 | 4 | remaining ms: time left before the invitation expires |
//!   | 37 | 2 | message len (≤ [`MAX_MESSAGE_BYTES`]) |
//!   | 39 | 2 | data len (≤ [`MAX_APP_DATA`]) |
//!   | 41 | 1 | index of this fragment |
//!   | 42 | c | chunk: bytes [`chunk_range`]`(message len + data len, index)` of the body |
//!
//!   The invitation **body** is `message ‖ data`. It is cut into chunks of
//!   [`FRAGMENT_CHUNK`] bytes, one per fragment, [`fragment_count`] fragments
//!   in all (one, with an empty chunk, for an empty body).
//! - **Sack** (type 2), invitee → inviter, [`SACK_LEN`] bytes:
//!
//!   | offset | size | field |
//!   |---|---|---|
//!   | 17 | 2 | received: bit `i` (value `1 << i`) set when fragment `i` is held |
//! - **Ringing** (type 3), invitee → inviter, [`RINGING_LEN`] bytes: the
//!   header only.
//! - **Final** (type 4), invitee → inviter, [`FINAL_HEADER_LEN`] bytes and
//!   the reason:
//!
//!   | offset | size | field |
//!   |---|---|---|
//!   | 17 | 1 | code ([`FinalCode`]) |
//!   | 18 | 4 | retry after ms: 0 unless the code is Busy |
//!   | 22 | 1 | reason len `r` (≤ [`MAX_REASON_BYTES`]) |
//!   | 23 | r | reason, UTF-8 |
//! - **Ack** (type 5), inviter → invitee, [`ACK_LEN`] bytes:
//!
//!   | offset | size | field |
//!   |---|---|---|
//!   | 17 | 1 | code of the final acknowledged ([`FinalCode`]) |
//! - **Cancel** (type 6), inviter → invitee, [`CANCEL_HEADER_LEN`] bytes and
//!   the text:
//!
//!   | offset | size | field |
//!   |---|---|---|
//!   | 17 | 1 | reason ([`CancelReason`]) |
//!   | 18 | 1 | text len `t` (≤ [`MAX_REASON_BYTES`]) |
//!   | 19 | t | text, UTF-8 |
//!
//! `spec/invitation.md` ("Messages") is the normative text. [`Message::parse`]
//! checks every length before use, every limit, code and reason, the UTF-8 of
//! the texts and the extensions; it never panics and never reads outside its
//! input. It does not check what needs several messages: that the fragments
//! of one invitation agree, or that the reassembled message is valid text
//! ([`validate_message`], after reassembly). [`Message::emit`] refuses what
//! `parse` would refuse.

use core::fmt;
use core::ops::Range;

use crate::util::Hex;
use crate::wire::{MAX_TRANSPORT_PAYLOAD, tlv};

/// Length of an invite id and of an app id: 128 random bits, so ids drawn
/// independently by every inviter do not collide.
pub const ID_LEN: usize = 16;
/// Length of the header every message starts with: type and invite id.
pub const HEADER_LEN: usize = 1 + ID_LEN;
/// Bytes of an Invite fragment before its chunk: header, app id, remaining
/// ms, message len, data len, index.
pub const INVITE_HEADER_LEN: usize = HEADER_LEN + ID_LEN + 4 + 2 + 2 + 1;
/// Length of a Sack: header and the 16-bit received set.
pub const SACK_LEN: usize = HEADER_LEN + 2;
/// Length of a Ringing: the header alone.
pub const RINGING_LEN: usize = HEADER_LEN;
/// Bytes of a Final before its reason: header, code, retry after, reason len.
pub const FINAL_HEADER_LEN: usize = HEADER_LEN + 1 + 4 + 1;
/// Length of an Ack: header and the acknowledged code.
pub const ACK_LEN: usize = HEADER_LEN + 1;
/// Bytes of a Cancel before its text: header, reason, text len.
pub const CANCEL_HEADER_LEN: usize = HEADER_LEN + 1 + 1;

/// Most Unicode scalar values in an invitation's message. The Windows peer
/// collaboration API limits an invitation's message (`PEER_INVITATION`'s
/// `pwzMessage`) to 255 characters; a longer text could not be handed to
/// it, so it is refused at the source.
pub const MAX_MESSAGE_CHARS: usize = 255;
/// Most bytes in an invitation's message: 255 characters of at most 4 bytes
/// of UTF-8 each. Implied by [`MAX_MESSAGE_CHARS`] for valid text, it is
/// checked on its own so that the buffer a receiver reserves for the message
/// is bounded by the message len field, before any byte is decoded.
pub const MAX_MESSAGE_BYTES: usize = 4 * MAX_MESSAGE_CHARS;
/// Most bytes of application data in an invitation (16 KiB), the limit of
/// the Windows peer collaboration API (`PEER_INVITATION`'s
/// `applicationData`); it also bounds the buffer an invitee reserves for
/// every invitation it holds.
pub const MAX_APP_DATA: usize = 16 * 1024;
/// Largest invitation body: the longest message and the most data
/// (17 404 bytes).
pub const MAX_BODY: usize = MAX_MESSAGE_BYTES + MAX_APP_DATA;
/// Bytes of the body in every fragment but the last. 1088 is the smallest
/// chunk with which the largest body needs no more than [`MAX_FRAGMENTS`]
/// fragments (17 404 / 16 = 1087.75); the largest fragment
/// ([`MAX_FRAGMENT_LEN`], 1130 bytes) then leaves 38 bytes of the transport
/// payload for extensions.
pub const FRAGMENT_CHUNK: usize = 1088;
/// Most fragments of one invitation, so that a Sack acknowledges all of them
/// in one 16-bit field.
pub const MAX_FRAGMENTS: usize = 16;
/// Largest Invite fragment without extensions (1130 bytes): a full chunk.
pub const MAX_FRAGMENT_LEN: usize = INVITE_HEADER_LEN + FRAGMENT_CHUNK;
/// Most bytes in a Final's reason or a Cancel's text: one line for a log or
/// a notification, and a length that fits its one-byte field.
pub const MAX_REASON_BYTES: usize = 128;

const _: () = {
    assert!(MAX_FRAGMENT_LEN <= MAX_TRANSPORT_PAYLOAD, "the largest fragment fits a datagram");
    assert!(fragment_count(MAX_BODY) == MAX_FRAGMENTS, "the largest body needs every fragment");
    assert!(MAX_BODY.div_ceil(FRAGMENT_CHUNK - 1) > MAX_FRAGMENTS, "the chunk is the smallest");
    assert!(MAX_FRAGMENTS <= u16::BITS as usize, "a Sack holds every fragment");
    assert!(MAX_MESSAGE_BYTES <= u16::MAX as usize, "a message len fits its field");
    assert!(MAX_APP_DATA <= u16::MAX as usize, "a data len fits its field");
    assert!(MAX_REASON_BYTES <= u8::MAX as usize, "a reason's length fits its field");
    assert!(FINAL_HEADER_LEN + MAX_REASON_BYTES <= MAX_TRANSPORT_PAYLOAD);
};

/// Number of fragments of a body of `body_len` bytes: one per started
/// [`FRAGMENT_CHUNK`], and one for an empty body.
#[must_use]
pub const fn fragment_count(body_len: usize) -> usize {
    let n = body_len.div_ceil(FRAGMENT_CHUNK);
    if n == 0 { 1 } else { n }
}

/// The bytes of a body of `body_len` bytes that fragment `index` carries;
/// `None` if the body is longer than [`MAX_BODY`] or the index is not below
/// [`fragment_count`]. Fragment 0 of an empty body carries `0..0`.
#[must_use]
pub fn chunk_range(body_len: usize, index: usize) -> Option<Range<usize>> {
    if body_len > MAX_BODY || index >= fragment_count(body_len) {
        return None;
    }
    let start = index * FRAGMENT_CHUNK;
    Some(start..body_len.min(start + FRAGMENT_CHUNK))
}

/// Checks an invitation's message, reassembled from its fragments: at most
/// [`MAX_MESSAGE_BYTES`] bytes (checked first, before decoding), valid UTF-8,
/// at most [`MAX_MESSAGE_CHARS`] Unicode scalar values.
pub fn validate_message(bytes: &[u8]) -> Result<&str, MessageError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TextTooLong);
    }
    let text = core::str::from_utf8(bytes).map_err(|_| MessageError::NotUtf8)?;
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(MessageError::TextTooLong);
    }
    Ok(text)
}

/// Identifies one invitation, in every message about it. Chosen at random
/// by the inviter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InviteId(pub [u8; ID_LEN]);

impl fmt::Debug for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteId({})", Hex(&self.0))
    }
}

impl fmt::Display for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(&self.0), f)
    }
}

/// Identifies the application an invitation is for (a registered GUID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(pub [u8; ID_LEN]);

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppId({})", Hex(&self.0))
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(&self.0), f)
    }
}

/// The type byte of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// One fragment of an invitation.
    Invite = 1,
    /// The fragments the invitee holds.
    Sack = 2,
    /// The invitee holds the whole invitation and is asking its user.
    Ringing = 3,
    /// The invitee's answer.
    Final = 4,
    /// The inviter received the final answer.
    Ack = 5,
    /// The inviter withdraws the invitation.
    Cancel = 6,
}

impl MessageType {
    /// The type with this byte, if any.
    #[must_use]
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(MessageType::Invite),
            2 => Some(MessageType::Sack),
            3 => Some(MessageType::Ringing),
            4 => Some(MessageType::Final),
            5 => Some(MessageType::Ack),
            6 => Some(MessageType::Cancel),
            _ => None,
        }
    }
}

/// How an invitation ended, as the invitee answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FinalCode {
    /// The invitee's user accepted.
    Accepted = 1,
    /// The invitee's user declined.
    Declined = 2,
    /// The invitee cannot take the invitation now; the Final may say when to
    /// retry (the only code that may).
    Busy = 3,
    /// The invitation expired before an answer.
    Expired = 4,
    /// The inviter cancelled the invitation.
    Cancelled = 5,
    /// No application is registered for the invitation's app id.
    NotRegistered = 6,
    /// The invitee's policy does not accept this invitation.
    NotAccepted = 7,
    /// The invitation broke the protocol (a malformed or inconsistent
    /// fragment, a message that is not valid text...).
    Invalid = 8,
}

impl FinalCode {
    /// The code with this byte, if any.
    #[must_use]
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(FinalCode::Accepted),
            2 => Some(FinalCode::Declined),
            3 => Some(FinalCode::Busy),
            4 => Some(FinalCode::Expired),
            5 => Some(FinalCode::Cancelled),
            6 => Some(FinalCode::NotRegistered),
            7 => Some(FinalCode::NotAccepted),
            8 => Some(FinalCode::Invalid),
            _ => None,
        }
    }
}

/// Why the inviter withdraws an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CancelReason {
    /// The inviter's user cancelled.
    ByUser = 1,
    /// Another invitee, invited at the same time, answered first.
    AnsweredElsewhere = 2,
    /// The inviter stopped waiting.
    GaveUp = 3,
}

impl CancelReason {
    /// The reason with this byte, if any.
    #[must_use]
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(CancelReason::ByUser),
            2 => Some(CancelReason::AnsweredElsewhere),
            3 => Some(CancelReason::GaveUp),
            _ => None,
        }
    }
}

/// Why a message could not be parsed or emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// Shorter than its fixed fields, or than a length it states.
    TooShort,
    /// Longer than [`MAX_TRANSPORT_PAYLOAD`].
    TooLong,
    /// An unknown type byte.
    UnknownType,
    /// An Invite's message len is over [`MAX_MESSAGE_BYTES`] or its data len
    /// over [`MAX_APP_DATA`].
    TooLarge,
    /// An Invite's index is not below its fragment count.
    BadIndex,
    /// An Invite's chunk is not the length its body length and index give
    /// (only when emitting: a parser takes the length it computes).
    BadLength,
    /// An unknown final code (Final, Ack).
    BadCode,
    /// An unknown cancel reason.
    BadReason,
    /// A retry-after time on a Final that is not Busy.
    RetryAfterNotBusy,
    /// A text is not valid UTF-8.
    NotUtf8,
    /// A text is over its limit: [`MAX_REASON_BYTES`] for a reason, or
    /// [`MAX_MESSAGE_BYTES`] or [`MAX_MESSAGE_CHARS`] for a message.
    TextTooLong,
    /// The extensions are malformed or hold a critical field.
    BadExtension(tlv::TlvError),
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageError::TooShort => "invitation message too short",
            MessageError::TooLong => "invitation message longer than a transport payload",
            MessageError::UnknownType => "unknown invitation message type",
            MessageError::TooLarge => "invitation message or data too large",
            MessageError::BadIndex => "fragment index past the fragment count",
            MessageError::BadLength => "fragment chunk of the wrong length",
            MessageError::BadCode => "unknown final code",
            MessageError::BadReason => "unknown cancel reason",
            MessageError::RetryAfterNotBusy => "retry-after on a final that is not busy",
            MessageError::NotUtf8 => "text is not valid UTF-8",
            MessageError::TextTooLong => "text too long",
            MessageError::BadExtension(_) => "malformed or critical extension",
            MessageError::BufferTooSmall => "output buffer too small",
        })
    }
}

impl core::error::Error for MessageError {}

/// One fragment of an invitation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InviteFragment<'a> {
    /// The invitation.
    pub id: InviteId,
    /// The application invited to.
    pub app_id: AppId,
    /// Milliseconds left before the invitation expires, when sent.
    pub remaining_ms: u32,
    /// Length of the message, the first part of the body.
    pub message_len: u16,
    /// Length of the application data, the rest of the body.
    pub data_len: u16,
    /// Which fragment this is.
    pub index: u8,
    /// Bytes [`chunk_range`]`(body_len, index)` of the body.
    pub chunk: &'a [u8],
}

impl core::fmt::Debug for InviteFragment<'_> {
    /// The chunk's length only: its bytes are the users' message and
    /// application data.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InviteFragment")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("remaining_ms", &self.remaining_ms)
            .field("message_len", &self.message_len)
            .field("data_len", &self.data_len)
            .field("index", &self.index)
            .field("chunk_len", &self.chunk.len())
            .finish()
    }
}

impl InviteFragment<'_> {
    /// Length of the whole body, message and data.
    #[must_use]
    pub fn body_len(&self) -> usize {
        usize::from(self.message_len) + usize::from(self.data_len)
    }

    /// Number of fragments of the whole body.
    #[must_use]
    pub fn fragment_count(&self) -> usize {
        fragment_count(self.body_len())
    }
}

/// The invitee's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Final<'a> {
    /// The invitation.
    pub id: InviteId,
    /// The answer.
    pub code: FinalCode,
    /// When the inviter may invite again, for Busy; 0 otherwise (and 0 for
    /// Busy means "no opinion").
    pub retry_after_ms: u32,
    /// Why, for a log or the inviter's user; may be empty.
    pub reason: &'a str,
}

/// The inviter withdraws an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancel<'a> {
    /// The invitation.
    pub id: InviteId,
    /// Why.
    pub reason: CancelReason,
    /// Free text, for a log or the invitee's user; may be empty.
    pub text: &'a str,
}

/// Any invitation message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// One fragment of an invitation.
    Invite(InviteFragment<'a>),
    /// The fragments the invitee holds.
    Sack {
        /// The invitation.
        id: InviteId,
        /// Bit `i` set when fragment `i` is held.
        received: u16,
    },
    /// The invitee holds the whole invitation and is asking its user.
    Ringing {
        /// The invitation.
        id: InviteId,
    },
    /// The invitee's answer.
    Final(Final<'a>),
    /// The inviter received the final answer.
    Ack {
        /// The invitation.
        id: InviteId,
        /// The code of the Final acknowledged.
        code: FinalCode,
    },
    /// The inviter withdraws the invitation.
    Cancel(Cancel<'a>),
}

/// Reads fields front to back; every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(MessageError::TooShort)?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(MessageError::TooShort)?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A reason or a text of `len` bytes.
    fn text(&mut self, len: u8) -> Result<&'a str, MessageError> {
        let len = usize::from(len);
        if len > MAX_REASON_BYTES {
            return Err(MessageError::TextTooLong);
        }
        core::str::from_utf8(self.take(len)?).map_err(|_| MessageError::NotUtf8)
    }

    /// The rest of the message, as extensions.
    fn extensions(self) -> Result<(), MessageError> {
        for field in tlv::fields(self.0) {
            let (ty, _) = field.map_err(MessageError::BadExtension)?;
            if ty & tlv::CRITICAL != 0 {
                return Err(MessageError::BadExtension(tlv::TlvError::UnknownCritical(ty)));
            }
        }
        Ok(())
    }
}

/// Writes fields front to back; every write checks the length first.
struct Writer<'a>(&'a mut [u8]);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), MessageError> {
        let buf = core::mem::take(&mut self.0);
        let (head, rest) =
            buf.split_at_mut_checked(bytes.len()).ok_or(MessageError::BufferTooSmall)?;
        head.copy_from_slice(bytes);
        self.0 = rest;
        Ok(())
    }
}

fn check_text(text: &str) -> Result<u8, MessageError> {
    match u8::try_from(text.len()) {
        Ok(len) if usize::from(len) <= MAX_REASON_BYTES => Ok(len),
        _ => Err(MessageError::TextTooLong),
    }
}

/// Reads the type and invite id of a message without looking further, and
/// checks its overall length: enough to route or log a message cheaply,
/// including one that fails [`Message::parse`] (which a receiver drops).
pub fn peek(bytes: &[u8]) -> Result<(MessageType, InviteId), MessageError> {
    let mut r = Reader(bytes);
    let ty = r.u8()?;
    let id = InviteId(r.array()?);
    if bytes.len() > MAX_TRANSPORT_PAYLOAD {
        return Err(MessageError::TooLong);
    }
    let ty = MessageType::from_byte(ty).ok_or(MessageError::UnknownType)?;
    Ok((ty, id))
}

impl<'a> Message<'a> {
    /// Parses a message: the header, the type's fields, then the
    /// extensions. Every length is checked before it is used.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MessageError> {
        let (ty, id) = peek(bytes)?;
        let mut r = Reader(bytes.get(HEADER_LEN..).ok_or(MessageError::TooShort)?);
        let message = match ty {
            MessageType::Invite => {
                let app_id = AppId(r.array()?);
                let remaining_ms = r.u32()?;
                let message_len = r.u16()?;
                let data_len = r.u16()?;
                let index = r.u8()?;
                if usize::from(message_len) > MAX_MESSAGE_BYTES
                    || usize::from(data_len) > MAX_APP_DATA
                {
                    return Err(MessageError::TooLarge);
                }
                let body_len = usize::from(message_len) + usize::from(data_len);
                let range =
                    chunk_range(body_len, usize::from(index)).ok_or(MessageError::BadIndex)?;
                let chunk = r.take(range.len())?;
                Message::Invite(InviteFragment {
                    id,
                    app_id,
                    remaining_ms,
                    message_len,
                    data_len,
                    index,
                    chunk,
                })
            }
            MessageType::Sack => Message::Sack { id, received: r.u16()? },
            MessageType::Ringing => Message::Ringing { id },
            MessageType::Final => {
                let code = r.u8()?;
                let retry_after_ms = r.u32()?;
                let reason_len = r.u8()?;
                let code = FinalCode::from_byte(code).ok_or(MessageError::BadCode)?;
                if retry_after_ms != 0 && code != FinalCode::Busy {
                    return Err(MessageError::RetryAfterNotBusy);
                }
                let reason = r.text(reason_len)?;
                Message::Final(Final { id, code, retry_after_ms, reason })
            }
            MessageType::Ack => {
                let code = FinalCode::from_byte(r.u8()?).ok_or(MessageError::BadCode)?;
                Message::Ack { id, code }
            }
            MessageType::Cancel => {
                let reason = r.u8()?;
                let text_len = r.u8()?;
                let reason = CancelReason::from_byte(reason).ok_or(MessageError::BadReason)?;
                let text = r.text(text_len)?;
                Message::Cancel(Cancel { id, reason, text })
            }
        };
        r.extensions()?;
        Ok(message)
    }

    /// The invitation the message is about.
    #[must_use]
    pub fn id(&self) -> InviteId {
        match self {
            Message::Invite(m) => m.id,
            Message::Final(m) => m.id,
            Message::Cancel(m) => m.id,
            Message::Sack { id, .. } | Message::Ringing { id } | Message::Ack { id, .. } => *id,
        }
    }

    /// The message's type.
    #[must_use]
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Invite(_) => MessageType::Invite,
            Message::Sack { .. } => MessageType::Sack,
            Message::Ringing { .. } => MessageType::Ringing,
            Message::Final(_) => MessageType::Final,
            Message::Ack { .. } => MessageType::Ack,
            Message::Cancel(_) => MessageType::Cancel,
        }
    }

    /// Bytes [`emit`](Self::emit) writes (no extensions).
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        match self {
            Message::Invite(m) => INVITE_HEADER_LEN + m.chunk.len(),
            Message::Sack { .. } => SACK_LEN,
            Message::Ringing { .. } => RINGING_LEN,
            Message::Final(m) => FINAL_HEADER_LEN + m.reason.len(),
            Message::Ack { .. } => ACK_LEN,
            Message::Cancel(m) => CANCEL_HEADER_LEN + m.text.len(),
        }
    }

    /// Checks what [`parse`](Self::parse) checks of a message's fields.
    fn check(&self) -> Result<(), MessageError> {
        match self {
            Message::Invite(m) => {
                if usize::from(m.message_len) > MAX_MESSAGE_BYTES
                    || usize::from(m.data_len) > MAX_APP_DATA
                {
                    return Err(MessageError::TooLarge);
                }
                let range = chunk_range(m.body_len(), usize::from(m.index))
                    .ok_or(MessageError::BadIndex)?;
                if m.chunk.len() != range.len() {
                    return Err(MessageError::BadLength);
                }
            }
            Message::Final(m) => {
                if m.retry_after_ms != 0 && m.code != FinalCode::Busy {
                    return Err(MessageError::RetryAfterNotBusy);
                }
                check_text(m.reason)?;
            }
            Message::Cancel(m) => {
                check_text(m.text)?;
            }
            Message::Sack { .. } | Message::Ringing { .. } | Message::Ack { .. } => {}
        }
        Ok(())
    }

    /// Writes the message, without extensions, into `out`; returns its
    /// length, [`buffer_len`](Self::buffer_len). Refuses a message that
    /// [`parse`](Self::parse) would refuse, so what is emitted always parses
    /// back to the same message.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, MessageError> {
        self.check()?;
        let len = self.buffer_len();
        let mut w = Writer(out.get_mut(..len).ok_or(MessageError::BufferTooSmall)?);
        w.put(&[self.message_type() as u8])?;
        w.put(&self.id().0)?;
        match self {
            Message::Invite(m) => {
                w.put(&m.app_id.0)?;
                w.put(&m.remaining_ms.to_be_bytes())?;
                w.put(&m.message_len.to_be_bytes())?;
                w.put(&m.data_len.to_be_bytes())?;
                w.put(&[m.index])?;
                w.put(m.chunk)?;
            }
            Message::Sack { received, .. } => w.put(&received.to_be_bytes())?,
            Message::Ringing { .. } => {}
            Message::Final(m) => {
                w.put(&[m.code as u8])?;
                w.put(&m.retry_after_ms.to_be_bytes())?;
                w.put(&[check_text(m.reason)?])?;
                w.put(m.reason.as_bytes())?;
            }
            Message::Ack { code, .. } => w.put(&[*code as u8])?,
            Message::Cancel(m) => {
                w.put(&[m.reason as u8])?;
                w.put(&[check_text(m.text)?])?;
                w.put(m.text.as_bytes())?;
            }
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{MAX_DATAGRAM, MIN_TRANSPORT_LEN};
    use proptest::prelude::*;
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    const ID: InviteId = InviteId([0x1d; 16]);
    const APP: AppId = AppId([0xa9; 16]);

    fn emit(m: &Message<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; m.buffer_len()];
        assert_eq!(m.emit(&mut buf), Ok(buf.len()));
        buf
    }

    fn fragment(message_len: u16, data_len: u16, index: u8, chunk: &[u8]) -> Message<'_> {
        Message::Invite(InviteFragment {
            id: ID,
            app_id: APP,
            remaining_ms: 30_000,
            message_len,
            data_len,
            index,
            chunk,
        })
    }

    /// One valid message of each type, some with text, and their lengths.
    fn samples() -> [(Message<'static>, usize); 10] {
        const CHUNK: [u8; 7] = *b"hi\xffdata";
        [
            (fragment(0, 0, 0, &[]), 42),
            (fragment(2, 5, 0, &CHUNK), 49),
            (Message::Sack { id: ID, received: 0b1011 }, 19),
            (Message::Ringing { id: ID }, 17),
            (
                Message::Final(Final {
                    id: ID,
                    code: FinalCode::Accepted,
                    retry_after_ms: 0,
                    reason: "",
                }),
                23,
            ),
            (
                Message::Final(Final {
                    id: ID,
                    code: FinalCode::Busy,
                    retry_after_ms: 60_000,
                    reason: "in a meeting ☕",
                }),
                23 + "in a meeting ☕".len(),
            ),
            (Message::Ack { id: ID, code: FinalCode::Declined }, 18),
            (Message::Cancel(Cancel { id: ID, reason: CancelReason::GaveUp, text: "" }), 19),
            (
                Message::Cancel(Cancel {
                    id: ID,
                    reason: CancelReason::AnsweredElsewhere,
                    text: "taken on the phone",
                }),
                19 + 18,
            ),
            (
                Message::Final(Final {
                    id: ID,
                    code: FinalCode::Invalid,
                    retry_after_ms: 0,
                    reason: "bad fragment",
                }),
                23 + 12,
            ),
        ]
    }

    #[test]
    fn each_message_type_round_trips() {
        for (m, len) in samples() {
            assert_eq!(m.buffer_len(), len, "{m:?}");
            let bytes = emit(&m);
            assert_eq!(bytes.len(), len);
            assert_eq!(bytes[0], m.message_type() as u8);
            assert_eq!(bytes[1..17], ID.0);
            assert_eq!(Message::parse(&bytes), Ok(m));
            assert_eq!(peek(&bytes), Ok((m.message_type(), ID)));
            assert_eq!(m.id(), ID);
        }
    }

    #[test]
    fn sizes_with_empty_text() {
        assert_eq!(INVITE_HEADER_LEN, 42);
        assert_eq!(SACK_LEN, 19);
        assert_eq!(RINGING_LEN, 17);
        assert_eq!(FINAL_HEADER_LEN, 23);
        assert_eq!(ACK_LEN, 18);
        assert_eq!(CANCEL_HEADER_LEN, 19);
        assert_eq!(MAX_FRAGMENT_LEN, 1130);
        assert_eq!(MAX_BODY, 17_404);
    }

    #[test]
    fn largest_body_cuts_into_sixteen_fragments_that_concatenate_back() {
        let body: Vec<u8> = (0..MAX_BODY).map(|i| (i % 251) as u8).collect();
        let count = fragment_count(body.len());
        assert_eq!(count, MAX_FRAGMENTS);
        assert_eq!(chunk_range(body.len(), count), None);
        let mut joined = Vec::new();
        for index in 0..count {
            let range = chunk_range(body.len(), index).unwrap();
            let m = fragment(
                MAX_MESSAGE_BYTES as u16,
                MAX_APP_DATA as u16,
                index as u8,
                &body[range.clone()],
            );
            let bytes = emit(&m);
            assert!(bytes.len() <= MAX_FRAGMENT_LEN);
            let Ok(Message::Invite(f)) = Message::parse(&bytes) else { panic!("{index}") };
            assert_eq!(f.fragment_count(), count);
            assert_eq!(f.body_len(), MAX_BODY);
            joined.extend_from_slice(f.chunk);
        }
        assert_eq!(joined, body);
        assert_eq!(chunk_range(MAX_BODY, 15), Some(16_320..MAX_BODY));
    }

    #[test]
    fn fragment_count_and_chunk_ranges_at_the_edges() {
        assert_eq!(fragment_count(0), 1);
        assert_eq!(chunk_range(0, 0), Some(0..0));
        assert_eq!(chunk_range(0, 1), None);
        assert_eq!(fragment_count(1), 1);
        assert_eq!(fragment_count(FRAGMENT_CHUNK), 1);
        assert_eq!(chunk_range(FRAGMENT_CHUNK, 0), Some(0..FRAGMENT_CHUNK));
        assert_eq!(fragment_count(FRAGMENT_CHUNK + 1), 2);
        assert_eq!(chunk_range(FRAGMENT_CHUNK + 1, 1), Some(FRAGMENT_CHUNK..FRAGMENT_CHUNK + 1));
        assert_eq!(chunk_range(MAX_BODY + 1, 0), None);
        assert_eq!(chunk_range(usize::MAX, usize::MAX), None);
    }

    #[test]
    fn largest_fragment_fits_a_transport_payload() {
        let chunk = [0x5a; FRAGMENT_CHUNK];
        let bytes = emit(&fragment(MAX_MESSAGE_BYTES as u16, MAX_APP_DATA as u16, 3, &chunk));
        assert_eq!(bytes.len(), MAX_FRAGMENT_LEN);
        assert!(bytes.len() <= MAX_TRANSPORT_PAYLOAD);
        assert!(bytes.len() + MIN_TRANSPORT_LEN <= MAX_DATAGRAM);
    }

    #[test]
    fn every_truncation_of_every_valid_message_is_refused() {
        for (m, _) in samples() {
            let bytes = emit(&m);
            for cut in 0..bytes.len() {
                assert_eq!(Message::parse(&bytes[..cut]), Err(MessageError::TooShort), "{m:?}");
            }
        }
    }

    fn with_extensions(m: &Message<'_>, fields: &[(u8, &[u8])], pad: usize) -> Vec<u8> {
        let mut bytes = emit(m);
        let mut ext = vec![0u8; 2 * MAX_TRANSPORT_PAYLOAD];
        let mut w = tlv::Writer::new(&mut ext);
        for (ty, value) in fields {
            w.field(*ty, value).unwrap();
        }
        let n = w.len();
        w.pad_to(n + pad).unwrap();
        let n = w.len();
        bytes.extend_from_slice(&ext[..n]);
        bytes
    }

    #[test]
    fn unknown_non_critical_extension_is_skipped() {
        for (m, _) in samples() {
            let bytes = with_extensions(&m, &[(0x40, b"later"), (0x7f, b"")], 5);
            assert_eq!(Message::parse(&bytes), Ok(m));
            assert_eq!(emit(&m), bytes[..m.buffer_len()]);
            let padded = with_extensions(&m, &[], 9);
            assert_eq!(Message::parse(&padded), Ok(m));
        }
    }

    #[test]
    fn critical_or_malformed_extension_is_refused() {
        for (m, _) in samples() {
            let bytes = with_extensions(&m, &[(0x40, b"ok"), (0xc0, b"must know")], 0);
            assert_eq!(
                Message::parse(&bytes),
                Err(MessageError::BadExtension(tlv::TlvError::UnknownCritical(0xc0)))
            );
            let mut bytes = with_extensions(&m, &[(0x41, b"cut")], 0);
            bytes.pop();
            assert_eq!(
                Message::parse(&bytes),
                Err(MessageError::BadExtension(tlv::TlvError::Truncated))
            );
            let mut bytes = with_extensions(&m, &[], 3);
            bytes.push(1);
            assert_eq!(
                Message::parse(&bytes),
                Err(MessageError::BadExtension(tlv::TlvError::NonZeroPadding))
            );
        }
    }

    #[test]
    fn message_longer_than_a_transport_payload_is_refused() {
        let m = Message::Ringing { id: ID };
        let bytes = with_extensions(&m, &[], MAX_TRANSPORT_PAYLOAD - RINGING_LEN);
        assert_eq!(Message::parse(&bytes), Ok(m));
        let bytes = with_extensions(&m, &[], MAX_TRANSPORT_PAYLOAD - RINGING_LEN + 1);
        assert_eq!(Message::parse(&bytes), Err(MessageError::TooLong));
    }

    #[test]
    fn unknown_type_code_and_reason_are_refused() {
        let ringing = emit(&Message::Ringing { id: ID });
        for ty in [0u8, 7, 0xff] {
            let mut b = ringing.clone();
            b[0] = ty;
            assert_eq!(Message::parse(&b), Err(MessageError::UnknownType));
        }
        let fin = emit(&Message::Final(Final {
            id: ID,
            code: FinalCode::Declined,
            retry_after_ms: 0,
            reason: "",
        }));
        let ack = emit(&Message::Ack { id: ID, code: FinalCode::Declined });
        for code in [0u8, 9, 0xff] {
            let mut b = fin.clone();
            b[17] = code;
            assert_eq!(Message::parse(&b), Err(MessageError::BadCode));
            let mut b = ack.clone();
            b[17] = code;
            assert_eq!(Message::parse(&b), Err(MessageError::BadCode));
        }
        let cancel =
            emit(&Message::Cancel(Cancel { id: ID, reason: CancelReason::ByUser, text: "" }));
        for reason in [0u8, 4, 0xff] {
            let mut b = cancel.clone();
            b[17] = reason;
            assert_eq!(Message::parse(&b), Err(MessageError::BadReason));
        }
    }

    #[test]
    fn retry_after_on_a_non_busy_final_is_refused() {
        let busy =
            Final { id: ID, code: FinalCode::Busy, retry_after_ms: 1, reason: "call me later" };
        let bytes = emit(&Message::Final(busy));
        for code in 1..=8 {
            let code = FinalCode::from_byte(code).unwrap();
            let m = Message::Final(Final { code, ..busy });
            let mut b = bytes.clone();
            b[17] = code as u8;
            if code == FinalCode::Busy {
                assert_eq!(Message::parse(&b), Ok(m));
            } else {
                assert_eq!(Message::parse(&b), Err(MessageError::RetryAfterNotBusy));
                assert_eq!(m.emit(&mut [0u8; 64]), Err(MessageError::RetryAfterNotBusy));
            }
        }
    }

    /// A Final and a Cancel whose text field holds `text`, as raw bytes.
    fn raw_texts(text: &[u8]) -> [Vec<u8>; 2] {
        let len = u8::try_from(text.len()).unwrap();
        let mut fin = vec![MessageType::Final as u8];
        fin.extend_from_slice(&ID.0);
        fin.extend_from_slice(&[FinalCode::Declined as u8, 0, 0, 0, 0, len]);
        fin.extend_from_slice(text);
        let mut cancel = vec![MessageType::Cancel as u8];
        cancel.extend_from_slice(&ID.0);
        cancel.extend_from_slice(&[CancelReason::ByUser as u8, len]);
        cancel.extend_from_slice(text);
        [fin, cancel]
    }

    #[test]
    fn reason_over_128_bytes_or_not_utf8_is_refused() {
        let longest = "é".repeat(MAX_REASON_BYTES / 2);
        for b in raw_texts(longest.as_bytes()) {
            assert!(Message::parse(&b).is_ok());
        }
        let over = "x".repeat(MAX_REASON_BYTES + 1);
        for b in raw_texts(over.as_bytes()) {
            assert_eq!(Message::parse(&b), Err(MessageError::TextTooLong));
        }
        for b in raw_texts(b"caf\xc3") {
            assert_eq!(Message::parse(&b), Err(MessageError::NotUtf8));
        }
        for b in raw_texts(b"\xed\xa0\x80") {
            assert_eq!(Message::parse(&b), Err(MessageError::NotUtf8));
        }
        let mut buf = [0u8; 256];
        let fin = Final { id: ID, code: FinalCode::Declined, retry_after_ms: 0, reason: &over };
        assert_eq!(Message::Final(fin).emit(&mut buf), Err(MessageError::TextTooLong));
        let cancel = Cancel { id: ID, reason: CancelReason::ByUser, text: &over };
        assert_eq!(Message::Cancel(cancel).emit(&mut buf), Err(MessageError::TextTooLong));
        let huge = "x".repeat(300);
        let cancel = Cancel { id: ID, reason: CancelReason::ByUser, text: &huge };
        assert_eq!(Message::Cancel(cancel).emit(&mut [0u8; 512]), Err(MessageError::TextTooLong));
    }

    #[test]
    fn message_text_limits_are_255_chars_and_1020_bytes() {
        let widest: String = core::iter::repeat_n('😀', MAX_MESSAGE_CHARS).collect();
        assert_eq!(widest.len(), MAX_MESSAGE_BYTES);
        assert_eq!(validate_message(widest.as_bytes()), Ok(widest.as_str()));
        let narrow = "a".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(validate_message(narrow.as_bytes()), Ok(narrow.as_str()));
        assert_eq!(validate_message(b""), Ok(""));
        let too_many = "a".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(validate_message(too_many.as_bytes()), Err(MessageError::TextTooLong));
        // The byte limit is checked before decoding.
        let too_long = [0xffu8; MAX_MESSAGE_BYTES + 1];
        assert_eq!(validate_message(&too_long), Err(MessageError::TextTooLong));
        assert_eq!(validate_message(&too_long[..4]), Err(MessageError::NotUtf8));
    }

    #[test]
    fn fragment_index_at_or_past_the_count_is_refused() {
        let chunk = [1u8; 100];
        let bytes = emit(&fragment(0, 100, 0, &chunk));
        for index in [1u8, 16, 0xff] {
            let mut b = bytes.clone();
            b[41] = index;
            assert_eq!(Message::parse(&b), Err(MessageError::BadIndex));
            let m = fragment(0, 100, index, &chunk);
            assert_eq!(m.emit(&mut [0u8; 200]), Err(MessageError::BadIndex));
        }
        let body = [2u8; MAX_BODY];
        let m = fragment(MAX_MESSAGE_BYTES as u16, MAX_APP_DATA as u16, 16, &body[..0]);
        assert_eq!(m.emit(&mut [0u8; 200]), Err(MessageError::BadIndex));
    }

    #[test]
    fn app_data_over_16_kib_or_message_over_1020_bytes_is_refused() {
        let bytes = emit(&fragment(0, 0, 0, &[]));
        let mut b = bytes.clone();
        b[39..41].copy_from_slice(&16_385u16.to_be_bytes());
        assert_eq!(Message::parse(&b), Err(MessageError::TooLarge));
        let mut b = bytes.clone();
        b[37..39].copy_from_slice(&1021u16.to_be_bytes());
        assert_eq!(Message::parse(&b), Err(MessageError::TooLarge));
        let mut buf = [0u8; 64];
        assert_eq!(fragment(0, 16_385, 0, &[]).emit(&mut buf), Err(MessageError::TooLarge));
        assert_eq!(fragment(1021, 0, 0, &[]).emit(&mut buf), Err(MessageError::TooLarge));
    }

    #[test]
    fn emit_refuses_a_short_buffer_and_a_chunk_of_the_wrong_length() {
        for (m, len) in samples() {
            let mut buf = vec![0u8; len - 1];
            assert_eq!(m.emit(&mut buf), Err(MessageError::BufferTooSmall));
            let mut buf = vec![0xa5u8; len + 10];
            assert_eq!(m.emit(&mut buf), Ok(len));
            assert!(buf[len..].iter().all(|&b| b == 0xa5));
        }
        let chunk = [0u8; 10];
        let mut buf = [0u8; 64];
        assert_eq!(fragment(0, 9, 0, &chunk).emit(&mut buf), Err(MessageError::BadLength));
        assert_eq!(fragment(0, 11, 0, &chunk).emit(&mut buf), Err(MessageError::BadLength));
    }

    #[test]
    fn ids_print_as_hex() {
        let mut id = [0u8; 16];
        id[0] = 0xab;
        id[15] = 0x01;
        assert_eq!(format!("{}", InviteId(id)), "ab000000000000000000000000000001");
        assert_eq!(format!("{:?}", AppId(id)), "AppId(ab000000000000000000000000000001)");
    }

    /// A message with owned text and chunk, for proptest.
    #[derive(Clone, Debug)]
    enum Owned {
        Invite { id: [u8; 16], app: [u8; 16], ms: u32, ml: u16, dl: u16, index: u8, chunk: Vec<u8> },
        Sack([u8; 16], u16),
        Ringing([u8; 16]),
        Final([u8; 16], FinalCode, u32, String),
        Ack([u8; 16], FinalCode),
        Cancel([u8; 16], CancelReason, String),
    }

    impl Owned {
        fn view(&self) -> Message<'_> {
            match self {
                Owned::Invite { id, app, ms, ml, dl, index, chunk } => {
                    Message::Invite(InviteFragment {
                        id: InviteId(*id),
                        app_id: AppId(*app),
                        remaining_ms: *ms,
                        message_len: *ml,
                        data_len: *dl,
                        index: *index,
                        chunk,
                    })
                }
                Owned::Sack(id, received) => {
                    Message::Sack { id: InviteId(*id), received: *received }
                }
                Owned::Ringing(id) => Message::Ringing { id: InviteId(*id) },
                Owned::Final(id, code, retry_after_ms, reason) => Message::Final(Final {
                    id: InviteId(*id),
                    code: *code,
                    retry_after_ms: *retry_after_ms,
                    reason,
                }),
                Owned::Ack(id, code) => Message::Ack { id: InviteId(*id), code: *code },
                Owned::Cancel(id, reason, text) => {
                    Message::Cancel(Cancel { id: InviteId(*id), reason: *reason, text })
                }
            }
        }
    }

    fn code() -> impl Strategy<Value = FinalCode> {
        (1u8..=8).prop_map(|b| FinalCode::from_byte(b).unwrap())
    }

    /// Up to 32 characters: at most 128 bytes.
    fn text() -> impl Strategy<Value = String> {
        "\\PC{0,32}"
    }

    fn valid_message() -> impl Strategy<Value = Owned> {
        let id = any::<[u8; 16]>();
        prop_oneof![
            (
                id,
                any::<[u8; 16]>(),
                any::<u32>(),
                0..=MAX_MESSAGE_BYTES as u16,
                0..=MAX_APP_DATA as u16,
                any::<u8>(),
                any::<u8>()
            )
                .prop_map(|(id, app, ms, ml, dl, index, seed)| {
                    let body_len = usize::from(ml) + usize::from(dl);
                    let index = index % fragment_count(body_len) as u8;
                    let range = chunk_range(body_len, usize::from(index)).unwrap();
                    let chunk = range.map(|i| (i as u8) ^ seed).collect();
                    Owned::Invite { id, app, ms, ml, dl, index, chunk }
                }),
            (id, any::<u16>()).prop_map(|(id, r)| Owned::Sack(id, r)),
            id.prop_map(Owned::Ringing),
            (id, code(), any::<u32>(), text()).prop_map(|(id, code, retry, reason)| {
                let retry = if code == FinalCode::Busy { retry } else { 0 };
                Owned::Final(id, code, retry, reason)
            }),
            (id, code()).prop_map(|(id, code)| Owned::Ack(id, code)),
            (id, 1u8..=3, text()).prop_map(|(id, r, text)| {
                Owned::Cancel(id, CancelReason::from_byte(r).unwrap(), text)
            }),
        ]
    }

    /// Bytes after the fixed fields: none, a non-critical field, padding,
    /// or anything.
    fn extensions() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            (1u8..tlv::CRITICAL, proptest::collection::vec(any::<u8>(), 0..20)).prop_map(
                |(ty, value)| {
                    let mut field = vec![ty];
                    field.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
                    field.extend_from_slice(&value);
                    field
                }
            ),
            proptest::collection::vec(Just(0u8), 1..10),
            proptest::collection::vec(any::<u8>(), 0..40),
        ]
    }

    /// Checks one input: no panic; what parses re-emits to its prefix.
    fn check_parse(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Ok(m) = Message::parse(bytes) {
            let n = m.buffer_len();
            prop_assert!(n <= bytes.len());
            let mut out = vec![0u8; n];
            prop_assert_eq!(m.emit(&mut out), Ok(n));
            prop_assert_eq!(&out[..], &bytes[..n]);
            prop_assert_eq!(Message::parse(&out), Ok(m));
            prop_assert_eq!(peek(bytes), Ok((m.message_type(), m.id())));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn valid_messages_round_trip(owned in valid_message()) {
            let m = owned.view();
            let bytes = emit(&m);
            prop_assert_eq!(bytes.len(), m.buffer_len());
            prop_assert!(bytes.len() <= MAX_TRANSPORT_PAYLOAD);
            prop_assert_eq!(Message::parse(&bytes), Ok(m));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_re_emit_their_prefix(
            bytes in proptest::collection::vec(any::<u8>(), 0..=MAX_TRANSPORT_PAYLOAD + 8),
            ty in 0u8..=7,
        ) {
            check_parse(&bytes)?;
            let mut typed = bytes;
            if let Some(b) = typed.first_mut() {
                *b = ty;
            }
            check_parse(&typed)?;
        }

        #[test]
        fn mutated_valid_messages_never_panic_and_re_emit_their_prefix(
            owned in valid_message(),
            tail in extensions(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut bytes = emit(&owned.view());
            bytes.extend_from_slice(&tail);
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if do_cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            check_parse(&bytes)?;
        }

        #[test]
        fn validated_messages_are_within_both_limits(
            bytes in proptest::collection::vec(any::<u8>(), 0..=MAX_MESSAGE_BYTES + 4),
            s in "\\PC{0,300}",
        ) {
            for b in [&bytes[..], s.as_bytes()] {
                if let Ok(t) = validate_message(b) {
                    prop_assert!(t.len() <= MAX_MESSAGE_BYTES);
                    prop_assert!(t.chars().count() <= MAX_MESSAGE_CHARS);
                    prop_assert_eq!(t.as_bytes(), b);
                }
            }
        }
    }
}

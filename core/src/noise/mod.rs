//! The Noise Protocol Framework, revision 34, for the one suite peercollab
//! uses: `25519_ChaChaPoly_SHA256`.
//!
//! One engine drives every handshake pattern from a table of tokens
//! ([`pattern`]), so IK (contact invitations) and XX (endpoint invitations)
//! share all their code with the other patterns the test vectors exercise.
//!
//! Guarantees, all tested:
//! - a failed `read_message` leaves the [`HandshakeState`] exactly as it was
//!   (it works on a copy and commits only on success);
//! - a [`CipherState`] refuses to encrypt at the reserved nonce `2^64 - 1` and
//!   advances its receive nonce only after a successful decryption;
//! - every X25519 result is checked to be contributory (no low-order points);
//! - secrets are zeroized when dropped and never printed by `Debug`.
//!
//! Nothing here allocates: messages are read from and written to caller
//! slices.

mod cipher;
mod handshake;
pub mod pattern;
mod primitives;
mod symmetric;

pub(crate) use cipher::open_discarded;
pub use cipher::{CipherState, TransportState};
pub use handshake::{HandshakeState, Role, StaticDhCache, Work};
pub use pattern::{HandshakePattern, Token};
pub use primitives::{DH_LEN, HASH_LEN, KeyPair, MAX_MESSAGE_LEN, TAG_LEN, dh, hash, hmac};
pub use symmetric::SymmetricState;

/// Why a Noise operation failed. Every failure leaves the state unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The message is shorter than its tokens require, or longer than allowed.
    BadLength,
    /// Authentication failed: the ciphertext or its associated data was altered,
    /// or the keys do not match.
    Decrypt,
    /// An X25519 result was all zeros: the peer sent a low-order point.
    NonContributory,
    /// The nonce reached `2^64 - 1`, which Noise reserves; the key is used up.
    NonceExhausted,
    /// The output buffer is too small for the message.
    BufferTooSmall,
    /// It is the other party's turn, or the handshake is already finished.
    WrongTurn,
    /// A key the pattern needs (a static or pre-shared key) was not supplied.
    MissingKey,
    /// `into_transport` was called before the last handshake message.
    NotFinished,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::BadLength => "noise message has the wrong length",
            Error::Decrypt => "noise message failed authentication",
            Error::NonContributory => "x25519 result was not contributory",
            Error::NonceExhausted => "noise nonce space exhausted",
            Error::BufferTooSmall => "output buffer too small",
            Error::WrongTurn => "not this party's turn in the handshake",
            Error::MissingKey => "a key required by the pattern is missing",
            Error::NotFinished => "handshake not finished",
        })
    }
}

impl core::error::Error for Error {}

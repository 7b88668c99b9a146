//! `noise_responder`: arbitrary bytes as the messages a Noise responder reads.
//!
//! Input framing (all of it is fuzzed; nothing is rejected):
//! - byte 0: the pattern, low bit `0` = IK, `1` = XX;
//! - IK: the rest of the input is message 1 (`-> e, es, s, ss`);
//! - XX: bytes 1..3 are the length `n` of message 1 (little endian, clipped
//!   to what is left), then message 1 (`-> e`), then the rest is message 3
//!   (`-> s, se`), read after the responder has written message 2.
//!
//! The responder's static key and its entropy are fixed, so message 2 is a
//! function of message 1 and a seed can carry a valid message 3.
//!
//! Checked on every input: nothing panics; a failed read leaves the
//! handshake hash, the message index and the learned remote keys exactly as
//! they were; message 2 is written at its announced length, or refused as
//! non-contributory (a low-order ephemeral in message 1) with nothing
//! changed; a successful read of the last message finishes the handshake.

use std::sync::OnceLock;

use peercollab_core::HashDrbg;
use peercollab_core::noise::{
    Error, HandshakePattern, HandshakeState, KeyPair, MAX_MESSAGE_LEN, Role,
};

/// The prologue both sides use.
pub const PROLOGUE: &[u8] = b"peercollab fuzz noise_responder";
/// Seed of the responder's entropy (its ephemeral keys).
pub const RESPONDER_RNG_SEED: u64 = 0x7265_7370;

/// The responder's fixed static key pair.
#[must_use]
pub fn responder_static() -> KeyPair {
    KeyPair::from_secret_bytes([0x52; 32])
}

/// The initiator's fixed static key pair (used by the seed generator).
#[must_use]
pub fn initiator_static() -> KeyPair {
    KeyPair::from_secret_bytes([0x49; 32])
}

/// Which handshake an input drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `Noise_IK`: one message read.
    Ik,
    /// `Noise_XX`: message 1 read, message 2 written, message 3 read.
    Xx,
}

/// Frames an input for the target (the inverse of [`split`]).
#[must_use]
pub fn encode(mode: Mode, msg1: &[u8], msg3: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    match mode {
        Mode::Ik => {
            v.push(0);
            v.extend_from_slice(msg1);
        }
        Mode::Xx => {
            let n = u16::try_from(msg1.len()).expect("message 1 fits in u16");
            v.push(1);
            v.extend_from_slice(&n.to_le_bytes());
            v.extend_from_slice(msg1);
            v.extend_from_slice(msg3);
        }
    }
    v
}

/// Splits an input into (mode, message 1, message 3). Never fails.
#[must_use]
pub fn split(data: &[u8]) -> (Mode, &[u8], &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (Mode::Ik, &[], &[]);
    };
    if first & 1 == 0 {
        return (Mode::Ik, rest, &[]);
    }
    let (len, rest) = match rest {
        [a, b, tail @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), tail),
        _ => (0, rest),
    };
    let (m1, m3) = rest.split_at(len.min(rest.len()));
    (Mode::Xx, m1, m3)
}

/// A fresh responder for `mode`, with the fixed static key.
#[must_use]
pub fn responder(mode: Mode) -> HandshakeState {
    let pattern = match mode {
        Mode::Ik => HandshakePattern::IK,
        Mode::Xx => HandshakePattern::XX,
    };
    HandshakeState::new(pattern, Role::Responder, PROLOGUE, Some(cached_static()), None, None)
        .expect("a responder with a static key needs nothing else")
}

/// [`responder_static`], computed once: its X25519 base-point
/// multiplication on every input was up to half of the target's time.
fn cached_static() -> KeyPair {
    static STATIC: OnceLock<KeyPair> = OnceLock::new();
    STATIC.get_or_init(responder_static).clone()
}

/// Reads `message`; on failure asserts that nothing observable changed.
fn read_checked(hs: &mut HandshakeState, message: &[u8], payload: &mut [u8]) -> bool {
    let hash = *hs.handshake_hash();
    let index = hs.message_index();
    let rs = hs.remote_static().copied();
    let re = hs.remote_ephemeral().copied();
    match hs.read_message(message, payload) {
        Ok(n) => {
            assert!(n <= message.len(), "payload longer than the message");
            assert_eq!(hs.message_index(), index + 1);
            true
        }
        Err(_) => {
            assert_eq!(hs.handshake_hash(), &hash, "failed read changed the handshake hash");
            assert_eq!(hs.message_index(), index, "failed read advanced the handshake");
            assert_eq!(hs.remote_static().copied(), rs, "failed read changed the remote static");
            assert_eq!(
                hs.remote_ephemeral().copied(),
                re,
                "failed read changed the remote ephemeral"
            );
            false
        }
    }
}

/// The target's body.
pub fn run(data: &[u8]) {
    let (mode, msg1, msg3) = split(data);
    let mut rng = HashDrbg::from_u64(RESPONDER_RNG_SEED);
    let mut hs = responder(mode);
    let mut payload = vec![0u8; MAX_MESSAGE_LEN];
    let mut out = vec![0u8; MAX_MESSAGE_LEN];

    if !read_checked(&mut hs, msg1, &mut payload) {
        return;
    }
    assert!(hs.remote_ephemeral().is_some(), "message 1 carries an ephemeral key");
    let expected = hs.next_message_len(0);
    let hash = *hs.handshake_hash();
    match hs.write_message(b"", &mut out, &mut rng) {
        Ok(n) => assert_eq!(n, expected, "message 2 has the announced length"),
        // Message 1's ephemeral key is only used, and so checked, when message 2
        // is written: a low-order point fails there, changing nothing.
        Err(e) => {
            assert_eq!(e, Error::NonContributory, "only a bad remote ephemeral stops message 2");
            assert_eq!(hs.handshake_hash(), &hash, "failed write changed the handshake hash");
            assert_eq!(hs.message_index(), 1, "failed write advanced the handshake");
            return;
        }
    }
    match mode {
        Mode::Ik => {
            assert!(
                hs.remote_static().is_some(),
                "IK message 1 carries the initiator's static key"
            );
        }
        Mode::Xx => {
            if !read_checked(&mut hs, msg3, &mut payload) {
                return;
            }
            assert!(
                hs.remote_static().is_some(),
                "XX message 3 carries the initiator's static key"
            );
        }
    }
    assert!(hs.is_finished());
    hs.into_transport().expect("a finished handshake splits");
}

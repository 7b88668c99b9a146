//! Pieces of the operation schedules that the stateful targets
//! (`handshake_responder`, `invitation_machine`, `agent_network`) share: the
//! clock, how a datagram is altered on its way, the list of datagrams in
//! flight, and a user's answer to an invitation. Each piece that an input
//! carries has its reader and its writer here (built on [`crate::framing`]),
//! so that every target frames it the same way and the seed generator
//! writes it the way the targets read it.

use std::collections::VecDeque;

use arbitrary::Unstructured;

use crate::framing::{put_short, put_u16, put_u32, read_short, read_u8, read_u16, read_u32};
use peercollab_core::invite::{Answer, MAX_EXPIRY_ON_WIRE};
use peercollab_core::{Duration, Instant};

// ---------------------------------------------------------------------------
// Time.

/// Where the clock starts (milliseconds), so that time can also go
/// backwards from it.
pub const START_MS: u64 = 1_000_000;

/// Most steps the silent network runs after the last operation.
pub const SETTLE_STEPS: usize = 64;

/// One step of the silent network: a day (the longest expiry the wire
/// carries is under 50 days, so [`SETTLE_STEPS`] of them outlast it).
pub const SETTLE_STEP: Duration = Duration::from_secs(24 * 3600);

/// The instant the clock starts at.
#[must_use]
pub fn start() -> Instant {
    Instant::from_millis(START_MS)
}

/// `now` moved by `ms` milliseconds (negative: backwards), saturating at
/// either end of time.
#[must_use]
pub fn moved(now: Instant, ms: i32) -> Instant {
    Instant::from_millis(now.as_millis().saturating_add_signed(i64::from(ms)))
}

// ---------------------------------------------------------------------------
// Mutations.

/// How a delivered datagram is altered. A target reads the first
/// [`NETWORK_MUTATIONS`] kinds (what a network does to a datagram) or all
/// [`ALL_MUTATIONS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Delivered as sent.
    None,
    /// The byte at `at` (modulo the length) is XORed with `xor`.
    Flip {
        /// Position, modulo the datagram's length.
        at: u16,
        /// XOR mask.
        xor: u8,
    },
    /// Cut to `len` modulo (length + 1) bytes.
    Truncate {
        /// New length, modulo the datagram's length plus one.
        len: u16,
    },
    /// These bytes are appended.
    Append(Vec<u8>),
    /// The byte at `at` (modulo the length) is set to `value`.
    Set {
        /// Position, modulo the datagram's length.
        at: u16,
        /// New value.
        value: u8,
    },
}

/// The kinds a network makes: [`Mutation::None`], [`Mutation::Flip`] and
/// [`Mutation::Truncate`].
pub const NETWORK_MUTATIONS: u8 = 3;
/// Every kind of [`Mutation`].
pub const ALL_MUTATIONS: u8 = 5;

impl Mutation {
    /// The kind's code: its position in the declaration.
    fn code(&self) -> u8 {
        match self {
            Mutation::None => 0,
            Mutation::Flip { .. } => 1,
            Mutation::Truncate { .. } => 2,
            Mutation::Append(_) => 3,
            Mutation::Set { .. } => 4,
        }
    }
}

/// Reads a mutation of the first `kinds` kinds: a code byte (modulo
/// `kinds`), then a flip's `u16` position and `u8` mask, a truncation's
/// `u16` length, an append's short byte string, a set's `u16` position and
/// `u8` value.
pub fn read_mutation(u: &mut Unstructured<'_>, kinds: u8) -> Mutation {
    match read_u8(u) % kinds {
        0 => Mutation::None,
        1 => Mutation::Flip { at: read_u16(u), xor: read_u8(u) },
        2 => Mutation::Truncate { len: read_u16(u) },
        3 => Mutation::Append(read_short(u)),
        _ => Mutation::Set { at: read_u16(u), value: read_u8(u) },
    }
}

/// Writes what [`read_mutation`] reads for the same `kinds`.
pub fn put_mutation(out: &mut Vec<u8>, m: &Mutation, kinds: u8) {
    assert!(m.code() < kinds, "{m:?} is not one of the first {kinds} kinds");
    out.push(m.code());
    match m {
        Mutation::None => {}
        Mutation::Flip { at, xor } => {
            put_u16(out, *at);
            out.push(*xor);
        }
        Mutation::Truncate { len } => put_u16(out, *len),
        Mutation::Append(bytes) => put_short(out, bytes),
        Mutation::Set { at, value } => {
            put_u16(out, *at);
            out.push(*value);
        }
    }
}

/// Applies a mutation.
#[must_use]
pub fn mutate(mut v: Vec<u8>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::None => {}
        Mutation::Flip { at, xor } => {
            if !v.is_empty() {
                let i = usize::from(*at) % v.len();
                v[i] ^= xor;
            }
        }
        Mutation::Truncate { len } => v.truncate(usize::from(*len) % (v.len() + 1)),
        Mutation::Append(bytes) => v.extend_from_slice(bytes),
        Mutation::Set { at, value } => {
            if !v.is_empty() {
                let i = usize::from(*at) % v.len();
                v[i] = *value;
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------
// The network.

/// Most datagrams in flight; a transmission beyond it loses the oldest.
pub const MAX_IN_FLIGHT: usize = 64;

/// Most bytes an injected datagram has (a longer length reads as this).
pub const MAX_INJECTED: usize = 1500;

/// The datagrams in flight, oldest first (at most [`MAX_IN_FLIGHT`]).
/// Operations choose one by position: a pick byte, modulo how many there
/// are, 0 the oldest.
#[derive(Debug)]
pub struct InFlight<T>(VecDeque<T>);

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight(VecDeque::new())
    }
}

impl<T: Clone> InFlight<T> {
    /// A datagram is sent; the oldest is lost if the list is full.
    pub fn push(&mut self, t: T) {
        if self.0.len() == MAX_IN_FLIGHT {
            self.0.pop_front();
        }
        self.0.push_back(t);
    }

    fn index(&self, pick: u8) -> Option<usize> {
        (!self.0.is_empty()).then(|| usize::from(pick) % self.0.len())
    }

    /// The picked datagram, to deliver: a copy if it stays in flight (a
    /// duplicate), else taken out. `None` if nothing is in flight.
    pub fn take(&mut self, pick: u8, keep: bool) -> Option<T> {
        let i = self.index(pick)?;
        if keep { Some(self.0[i].clone()) } else { self.0.remove(i) }
    }

    /// The picked datagram is lost.
    pub fn lose(&mut self, pick: u8) {
        if let Some(i) = self.index(pick) {
            self.0.remove(i);
        }
    }

    /// The oldest datagram, taken out.
    pub fn pop_oldest(&mut self) -> Option<T> {
        self.0.pop_front()
    }

    /// Every datagram is lost.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

// ---------------------------------------------------------------------------
// Answers.

/// A user's answer to an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerSpec {
    /// Accept.
    Accept,
    /// Decline.
    Decline,
    /// Busy, retry after this many milliseconds.
    Busy(u32),
    /// Busy, retry after a wait one millisecond longer than the wire
    /// carries (refused with `DurationTooLong`).
    BusyTooLong,
}

impl AnswerSpec {
    /// The answer given to `respond`.
    #[must_use]
    pub fn answer(self) -> Answer {
        match self {
            AnswerSpec::Accept => Answer::Accept,
            AnswerSpec::Decline => Answer::Decline,
            AnswerSpec::Busy(ms) => Answer::Busy { retry_after: Duration::from_millis(ms.into()) },
            AnswerSpec::BusyTooLong => Answer::Busy {
                retry_after: MAX_EXPIRY_ON_WIRE.saturating_add(Duration::from_millis(1)),
            },
        }
    }
}

/// Reads an answer: a code byte (modulo 4: accept, decline, busy and a `u32`
/// wait in milliseconds, busy too long).
pub fn read_answer(u: &mut Unstructured<'_>) -> AnswerSpec {
    match read_u8(u) % 4 {
        0 => AnswerSpec::Accept,
        1 => AnswerSpec::Decline,
        2 => AnswerSpec::Busy(read_u32(u)),
        _ => AnswerSpec::BusyTooLong,
    }
}

/// Writes what [`read_answer`] reads.
pub fn put_answer(out: &mut Vec<u8>, answer: AnswerSpec) {
    match answer {
        AnswerSpec::Accept => out.push(0),
        AnswerSpec::Decline => out.push(1),
        AnswerSpec::Busy(ms) => {
            out.push(2);
            put_u32(out, ms);
        }
        AnswerSpec::BusyTooLong => out.push(3),
    }
}

//! `invitation_machine`: an inviter and an invitee [`Invitation`], each with
//! its own body-buffer pool, driven by an arbitrary schedule: what is sent
//! when, what the network loses, duplicates, reorders, corrupts, reflects or
//! invents, how time moves, what the users command and how the invitee
//! screens.
//!
//! # Cast (fixed, built once)
//! - **Alice**, the inviter: she pinned Bob's certificate (IK).
//! - **Bob**, the invitee: his directory pins Alice.
//! - Four offers (empty; a short message; a message and 1500 bytes of data,
//!   two fragments; the largest message and data, sixteen fragments).
//!
//! # Input
//! The first byte is the [`Config`]: IK (Alice states her certificate, or
//! its hash) or XX (expecting Bob, or anyone), the offer, its expiry (300 s,
//! 5 s, zero, the longest the wire carries), the invitee's maximum expiry,
//! and whether the invitee's one body buffer is taken from the start. The
//! inviter is built from it at once (`Invitation::invite` on a fresh
//! `Session::initiate_contact` or `initiate_endpoint`); the invitee is built
//! on the first datagram delivered to Bob that `Incoming::read` takes and
//! `accept` answers (`Invitation::invitee`), exactly as an agent routes it.
//!
//! The rest is split with [`arbitrary::Unstructured`] into at most
//! [`MAX_OPS`] operations ([`Op`]), until it runs out, by the readers of
//! [`crate::framing`] and [`crate::schedule`] (which `agent_network` shares).
//! Integers are little endian, as `Unstructured` reads them; [`encode`] is
//! the inverse of [`decode`], which the seed generator relies on.
//! Operations:
//! - [`Op::Advance`] / [`Op::Jump`]: time moves (by a signed amount, or to
//!   an absolute instant: also backwards, also to the end of time), then
//!   both sides get `handle_timeout`;
//! - [`Op::Transmit`]: one side's `poll_transmit` is drained into the
//!   in-flight list ([`InFlight`]: at most
//!   [`MAX_IN_FLIGHT`](schedule::MAX_IN_FLIGHT); the oldest is lost first);
//! - [`Op::Deliver`]: an in-flight datagram (chosen by position, so in any
//!   order) goes to its receiver, or back to its sender (reflection), as
//!   sent, with a byte flipped or truncated; it stays in flight (a
//!   duplicate) or leaves it;
//! - [`Op::Drop`]: an in-flight datagram is lost; [`Op::Flush`]: every
//!   in-flight datagram is delivered, oldest first;
//! - [`Op::Inject`]: arbitrary bytes are delivered to one side;
//! - [`Op::Respond`]: the invitee's user answers Accept, Decline or
//!   Busy (also with a wait too long for the wire) with an arbitrary reason
//!   text (also too long); or the inviter is asked to, which is the wrong
//!   role;
//! - [`Op::Cancel`]: the inviter's user cancels for any reason (`GaveUp`
//!   included) with an arbitrary text; or the invitee is asked to;
//! - [`Op::Screen`]: the verdict the invitee's screen will return;
//! - [`Op::Hog`]: someone else takes (or gives back) a buffer of the
//!   invitee's pool.
//!
//! After every operation both sides' events are polled. After the last one,
//! the network goes silent: time runs on (a day at a time, at most
//! [`SETTLE_STEPS`] steps) until both invitations have closed.
//!
//! # Checked
//! - nothing panics;
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than
//!   the latest `now` that side was given (by any call);
//! - every transmitted datagram parses with `Frame::parse` and is at most
//!   `MAX_DATAGRAM` (1200) bytes; one drain sends at most 32;
//! - each side reports at most one `Ended`, equal to its `outcome()`; only
//!   the invitee reports `Invited` and only the inviter `Ringing`, each at
//!   most once; the inviter reports `Ringing` only after the invitee
//!   reported `Invited`; a presented invitation's message and data are the
//!   offer's; the screen is asked at most once on the first fragment and
//!   at most once more when the body is complete (`confirm`), about Alice
//!   and the offered application; an invitation is presented only if
//!   `confirm` said Present (the verdict can change in between:
//!   [`Op::Screen`]);
//! - if the invitee ended `Accepted`, the inviter ended `Accepted`; the
//!   inviter ends `Accepted` only if the invitee's user accepted;
//! - if both ended and neither is `Unreachable`, the outcomes are equal
//!   (corrupted, reflected and invented datagrams cannot forge a message);
//! - a datagram either side drops (`Err(Dropped)`) changes nothing
//!   observable: state, outcome, `poll_timeout()`, no event;
//! - `respond` succeeds exactly when the invitee rings, before its expiry,
//!   and the reason and wait fit (then it answers: state Answering); a
//!   fitting answer at or after the expiry is refused with `Ended` and the
//!   invitation expires (Answering); on the inviter it is `WrongRole`; any
//!   other refused `respond` changes nothing, not even the clock;
//! - `cancel` with `GaveUp` is refused with `ReservedReason`, on the invitee
//!   with `WrongRole`, with a text over `MAX_REASON_BYTES` with
//!   `ReasonTooLong`, and refused it changes nothing; `Abandoned` only while
//!   connecting (then closed, Cancelled), `Withdrawing` only while delivering
//!   or ringing (then Cancelling, Cancelled), `NoEffect` only once decided,
//!   changing nothing;
//! - a closed invitation stays closed, has ended (one `Ended`), has no
//!   deadline, never transmits again and holds no body buffer;
//! - once the network is silent, both invitations end and close (no
//!   invitation is left without a deadline before it closed), even when
//!   time reached `Instant::MAX` (`regressions/invitation_machine/`).

use std::sync::OnceLock;

use arbitrary::Unstructured;

use crate::framing::{
    put_i32, put_long, put_ops, put_short, put_u32, put_u64, read_i32, read_long, read_ops,
    read_short, read_u8, read_u32, read_u64,
};
use crate::schedule::{
    self, AnswerSpec, InFlight, MAX_INJECTED, Mutation, NETWORK_MUTATIONS, SETTLE_STEP,
    SETTLE_STEPS, moved, mutate, put_answer, put_mutation, read_answer, read_mutation,
};
use peercollab_core::identity::{Certificate, EndpointId, LocalIdentity};
use peercollab_core::invite::table::{InviteeState, InviterState};
use peercollab_core::invite::{
    Admission, AppId, BufferId, BufferPool, CancelEffect, CancelReason, DEFAULT_EXPIRY, DataPool,
    InvitationEvent, InviteError, InviteId, InviteeConfig, MAX_APP_DATA, MAX_EXPIRY_ON_WIRE,
    MAX_MESSAGE_CHARS, MAX_REASON_BYTES, Offer, Outcome, Screen, State,
};
use peercollab_core::invite::{Invitation, Party as Role};
use peercollab_core::session::{Incoming, PinnedPeer, Session, StatementForm};
use peercollab_core::wire::{Frame, MAX_DATAGRAM};
use peercollab_core::{Duration, HashDrbg, Instant};

/// Most operations read from one input.
pub const MAX_OPS: usize = 256;
/// Session index of the inviter's session.
pub const INVITER_INDEX: u32 = 0xA11C_E000;
/// Session index of the invitee's session.
pub const INVITEE_INDEX: u32 = 0xB0B0_0000;
/// The invitation's id.
pub const INVITE_ID: InviteId = InviteId(*b"fuzz-invite-id-1");
/// The offered application.
pub const APP_ID: AppId = AppId(*b"fuzz-application");
/// Seeds of the fixed identities.
const ALICE_SEED: u64 = 0xA11CE;
const BOB_SEED: u64 = 0xB0B;
/// Seeds of the parties' entropy during a run.
const ALICE_RNG_SEED: u64 = 0xA11C_E000_0001;
const BOB_RNG_SEED: u64 = 0xB0B0_0001;

/// One of the two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Alice, who invites.
    Inviter,
    /// Bob, who is invited.
    Invitee,
}

impl Side {
    fn from_bit(b: u8) -> Self {
        if b & 1 == 0 { Side::Inviter } else { Side::Invitee }
    }

    fn bit(self) -> u8 {
        self as u8
    }

    fn other(self) -> Self {
        match self {
            Side::Inviter => Side::Invitee,
            Side::Invitee => Side::Inviter,
        }
    }
}

/// The offered body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// No message, no data: no body buffer on either side.
    Empty,
    /// A short message, no data: one fragment.
    Short,
    /// A message and 1500 bytes of data: two fragments.
    Two,
    /// The longest message and the most data: sixteen fragments.
    Largest,
}

/// The inviter's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `DEFAULT_EXPIRY` (300 s).
    Default,
    /// Five seconds.
    Short,
    /// Zero: expired as soon as it arrives.
    Zero,
    /// `MAX_EXPIRY_ON_WIRE` (about 49.7 days; the invitee clamps it unless
    /// its maximum is as long).
    Longest,
}

/// What the first input byte sets up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// XX (else IK).
    pub xx: bool,
    /// IK: Alice states her identity by certificate hash (else in full).
    /// XX: Alice expects Bob's identity (else anyone).
    pub hash_or_expect: bool,
    /// The offered body.
    pub body: Body,
    /// The offered expiry.
    pub expiry: Expiry,
    /// The invitee accepts expiries up to `MAX_EXPIRY_ON_WIRE` (else the
    /// default maximum).
    pub long_max_expiry: bool,
    /// The invitee's only body buffer is taken before anything arrives.
    pub pool_full: bool,
}

impl Config {
    /// The config of a byte.
    #[must_use]
    pub fn from_byte(b: u8) -> Self {
        Config {
            xx: b & 1 != 0,
            hash_or_expect: b & 2 != 0,
            body: [Body::Empty, Body::Short, Body::Two, Body::Largest][usize::from((b >> 2) & 3)],
            expiry: [Expiry::Default, Expiry::Short, Expiry::Zero, Expiry::Longest]
                [usize::from((b >> 4) & 3)],
            long_max_expiry: b & 0x40 != 0,
            pool_full: b & 0x80 != 0,
        }
    }

    /// The byte of a config.
    #[must_use]
    pub fn byte(self) -> u8 {
        u8::from(self.xx)
            | u8::from(self.hash_or_expect) << 1
            | (self.body as u8) << 2
            | (self.expiry as u8) << 4
            | u8::from(self.long_max_expiry) << 6
            | u8::from(self.pool_full) << 7
    }

    fn expires_in(self) -> Duration {
        match self.expiry {
            Expiry::Default => DEFAULT_EXPIRY,
            Expiry::Short => Duration::from_secs(5),
            Expiry::Zero => Duration::ZERO,
            Expiry::Longest => MAX_EXPIRY_ON_WIRE,
        }
    }
}

impl Default for Config {
    /// IK with the full certificate, a short message, the default expiry.
    fn default() -> Self {
        Config::from_byte(0b0000_0100)
    }
}

/// The verdict of the invitee's screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Present it.
    Present,
    /// The application is not registered.
    NotRegistered,
    /// Policy does not accept Alice.
    NotAccepted,
    /// Busy, retry after this many milliseconds.
    Busy(u32),
    /// Busy, retry after longer than the wire carries (clamped).
    BusyForever,
}

impl Verdict {
    fn admission(self) -> Admission {
        match self {
            Verdict::Present => Admission::Present,
            Verdict::NotRegistered => Admission::NotRegistered,
            Verdict::NotAccepted => Admission::NotAccepted,
            Verdict::Busy(ms) => Admission::Busy { retry_after: Duration::from_millis(ms.into()) },
            Verdict::BusyForever => {
                Admission::Busy { retry_after: Duration::from_millis(u64::MAX) }
            }
        }
    }
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Time moves by this many milliseconds (negative: backwards); both
    /// sides get `handle_timeout`.
    Advance {
        /// Milliseconds.
        ms: i32,
    },
    /// Time is set to this instant (milliseconds); both sides get
    /// `handle_timeout`.
    Jump {
        /// Milliseconds since the epoch.
        at: u64,
    },
    /// A side's `poll_transmit` is drained into the in-flight list.
    Transmit {
        /// The sender.
        side: Side,
    },
    /// An in-flight datagram is delivered.
    Deliver {
        /// Position in the in-flight list (modulo its length; 0 the oldest).
        pick: u8,
        /// It stays in flight (the delivery is a duplicate).
        keep: bool,
        /// It goes back to its sender.
        reflect: bool,
        /// What is done to it on the way.
        mutation: Mutation,
    },
    /// An in-flight datagram is lost.
    Drop {
        /// Position in the in-flight list (modulo its length).
        pick: u8,
    },
    /// Every in-flight datagram is delivered, oldest first.
    Flush,
    /// Arbitrary bytes are delivered to a side.
    Inject {
        /// The receiver.
        to: Side,
        /// The datagram (at most 1500 bytes are read).
        bytes: Vec<u8>,
    },
    /// The user answers (the invitee's user, or the wrong role).
    Respond {
        /// The answer.
        answer: AnswerSpec,
        /// The reason text, as bytes (read as lossy UTF-8).
        reason: Vec<u8>,
        /// Asked of the inviter instead.
        on_inviter: bool,
    },
    /// The user cancels (the inviter's user, or the wrong role).
    Cancel {
        /// The reason (`GaveUp` is refused).
        reason: CancelReason,
        /// The text, as bytes (read as lossy UTF-8).
        text: Vec<u8>,
        /// Asked of the invitee instead.
        on_invitee: bool,
    },
    /// The invitee's screen returns this from now on.
    Screen {
        /// The verdict.
        verdict: Verdict,
    },
    /// Someone else takes a buffer of the invitee's pool, or gives back the
    /// last one taken.
    Hog {
        /// Take (else give back).
        take: bool,
    },
}

const OP_COUNT: u8 = 11;

// ---------------------------------------------------------------------------
// Input framing.

fn read_verdict(u: &mut Unstructured<'_>) -> Verdict {
    match read_u8(u) % 5 {
        0 => Verdict::Present,
        1 => Verdict::NotRegistered,
        2 => Verdict::NotAccepted,
        3 => Verdict::Busy(read_u32(u)),
        _ => Verdict::BusyForever,
    }
}

fn put_verdict(out: &mut Vec<u8>, verdict: Verdict) {
    match verdict {
        Verdict::Present => out.push(0),
        Verdict::NotRegistered => out.push(1),
        Verdict::NotAccepted => out.push(2),
        Verdict::Busy(ms) => {
            out.push(3);
            put_u32(out, ms);
        }
        Verdict::BusyForever => out.push(4),
    }
}

fn reason_of(b: u8) -> CancelReason {
    match b % 3 {
        0 => CancelReason::ByUser,
        1 => CancelReason::AnsweredElsewhere,
        _ => CancelReason::GaveUp,
    }
}

fn reason_byte(r: CancelReason) -> u8 {
    match r {
        CancelReason::ByUser => 0,
        CancelReason::AnsweredElsewhere => 1,
        CancelReason::GaveUp => 2,
    }
}

/// Splits an input into its config and operations. Never fails.
#[must_use]
pub fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let mut u = Unstructured::new(data);
    let config = Config::from_byte(read_u8(&mut u));
    let ops = read_ops(&mut u, MAX_OPS, OP_COUNT, |u, code| match code {
        0 => Op::Advance { ms: read_i32(u) },
        1 => Op::Jump { at: read_u64(u) },
        2 => Op::Transmit { side: Side::from_bit(read_u8(u)) },
        3 => {
            let (pick, flags) = (read_u8(u), read_u8(u));
            Op::Deliver {
                pick,
                keep: flags & 1 != 0,
                reflect: flags & 2 != 0,
                mutation: read_mutation(u, NETWORK_MUTATIONS),
            }
        }
        4 => Op::Drop { pick: read_u8(u) },
        5 => Op::Flush,
        6 => {
            let to = Side::from_bit(read_u8(u));
            Op::Inject { to, bytes: read_long(u, MAX_INJECTED) }
        }
        7 => {
            let flags = read_u8(u);
            let answer = read_answer(u);
            Op::Respond { answer, reason: read_short(u), on_inviter: flags & 1 != 0 }
        }
        8 => {
            let flags = read_u8(u);
            Op::Cancel {
                reason: reason_of(flags >> 1),
                text: read_short(u),
                on_invitee: flags & 1 != 0,
            }
        }
        9 => Op::Screen { verdict: read_verdict(u) },
        _ => Op::Hog { take: read_u8(u) & 1 == 0 },
    });
    (config, ops)
}

/// Frames a config and operations as an input (the inverse of [`decode`]).
#[must_use]
pub fn encode(config: Config, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![config.byte()];
    put_ops(&mut out, ops, MAX_OPS, |out, op| match op {
        Op::Advance { ms } => {
            out.push(0);
            put_i32(out, *ms);
        }
        Op::Jump { at } => {
            out.push(1);
            put_u64(out, *at);
        }
        Op::Transmit { side } => out.extend_from_slice(&[2, side.bit()]),
        Op::Deliver { pick, keep, reflect, mutation } => {
            out.extend_from_slice(&[3, *pick, u8::from(*keep) | u8::from(*reflect) << 1]);
            put_mutation(out, mutation, NETWORK_MUTATIONS);
        }
        Op::Drop { pick } => out.extend_from_slice(&[4, *pick]),
        Op::Flush => out.push(5),
        Op::Inject { to, bytes } => {
            out.extend_from_slice(&[6, to.bit()]);
            put_long(out, bytes, MAX_INJECTED);
        }
        Op::Respond { answer, reason, on_inviter } => {
            out.extend_from_slice(&[7, u8::from(*on_inviter)]);
            put_answer(out, *answer);
            put_short(out, reason);
        }
        Op::Cancel { reason, text, on_invitee } => {
            out.extend_from_slice(&[8, reason_byte(*reason) << 1 | u8::from(*on_invitee)]);
            put_short(out, text);
        }
        Op::Screen { verdict } => {
            out.push(9);
            put_verdict(out, *verdict);
        }
        Op::Hog { take } => out.extend_from_slice(&[10, u8::from(!*take)]),
    });
    out
}

// ---------------------------------------------------------------------------
// The cast.

/// The fixed identities, pins and offer bodies.
pub struct Cast {
    /// The inviter.
    pub alice: LocalIdentity,
    /// The invitee.
    pub bob: LocalIdentity,
    /// Alice's pin of Bob.
    pub alice_pins_bob: PinnedPeer,
    /// Bob's directory: Alice.
    pub bob_pins: Vec<PinnedPeer>,
    /// Message and data of each [`Body`], in declaration order.
    pub bodies: [(String, Vec<u8>); 4],
}

fn identity(seed: u64) -> LocalIdentity {
    LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(1))
}

/// The cast, built on first use.
pub fn cast() -> &'static Cast {
    static CAST: OnceLock<Cast> = OnceLock::new();
    CAST.get_or_init(|| {
        let alice = identity(ALICE_SEED);
        let bob = identity(BOB_SEED);
        let alice_pins_bob = PinnedPeer::new(&alice, *bob.certificate()).expect("pin Bob");
        let bob_pins = vec![PinnedPeer::new(&bob, *alice.certificate()).expect("pin Alice")];
        let pattern = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
        let bodies = [
            (String::new(), Vec::new()),
            ("join me ☕".to_string(), Vec::new()),
            ("Review the draft with me?".to_string(), pattern(1500)),
            (std::iter::repeat_n('😀', MAX_MESSAGE_CHARS).collect(), pattern(MAX_APP_DATA)),
        ];
        Cast { alice, bob, alice_pins_bob, bob_pins, bodies }
    })
}

// ---------------------------------------------------------------------------
// The handshakes' Diffie-Hellman work, done once.
//
// Alice's session is a function of the config alone (fixed identities,
// entropy seed and start time), and Bob's `Incoming::read` + `accept` of
// the datagram that builds his invitation a function of the datagram and
// `now` alone (his entropy is fresh until then). Both are computed once and
// cloned: X25519 under the sanitizer's coverage instrumentation is most of
// a run's time otherwise. The clones are the values the calls return, so a
// run behaves exactly as if it made them.

/// Alice's fresh session for a config, with her entropy after it.
fn initiator_session(config: Config) -> (Session, HashDrbg) {
    static SESSIONS: OnceLock<Vec<(Session, HashDrbg)>> = OnceLock::new();
    let sessions = SESSIONS.get_or_init(|| {
        let cast = cast();
        let now = schedule::start();
        (0..4)
            .map(|variant| {
                let mut rng = HashDrbg::from_u64(ALICE_RNG_SEED);
                let session = if variant & 1 != 0 {
                    let expected = (variant & 2 != 0).then(|| cast.bob.identity());
                    Session::initiate_endpoint(&cast.alice, expected, INVITER_INDEX, now, &mut rng)
                } else {
                    let statement = if variant & 2 != 0 {
                        StatementForm::Hash
                    } else {
                        StatementForm::Certificate
                    };
                    Session::initiate_contact(
                        &cast.alice,
                        &cast.alice_pins_bob,
                        INVITER_INDEX,
                        statement,
                        now,
                        &mut rng,
                    )
                }
                .expect("Alice initiates");
                (session, rng)
            })
            .collect()
    });
    sessions[usize::from(config.xx) | usize::from(config.hash_or_expect) << 1].clone()
}

/// Most sessions Bob's cache keeps (it starts again when full).
const ACCEPT_CACHE_LEN: usize = 256;

type AcceptCache = std::collections::HashMap<(Vec<u8>, Instant), (Session, HashDrbg)>;

/// Bob's session for the datagram that builds his invitation, with his
/// entropy after it; `None` if `Incoming::read` or `accept` refuses it.
fn accepted_session(datagram: &[u8], now: Instant) -> Option<(Session, HashDrbg)> {
    thread_local! {
        static CACHE: std::cell::RefCell<AcceptCache> = std::cell::RefCell::default();
    }
    let key = (datagram.to_vec(), now);
    if let Some(hit) = CACHE.with_borrow(|c| c.get(&key).cloned()) {
        return Some(hit);
    }
    let cast = cast();
    let incoming = Incoming::read(&cast.bob, &cast.bob_pins[..], datagram).ok()?;
    if let Some(peer) = incoming.peer() {
        assert_eq!(*peer.identity(), cast.alice.identity(), "an initiation from a stranger");
    }
    let mut rng = HashDrbg::from_u64(BOB_RNG_SEED);
    let session = incoming.accept(&cast.bob, INVITEE_INDEX, now, &mut rng).ok()?;
    CACHE.with_borrow_mut(|c| {
        if c.len() == ACCEPT_CACHE_LEN {
            c.clear();
        }
        c.insert(key, (session.clone(), rng.clone()));
    });
    Some((session, rng))
}

// ---------------------------------------------------------------------------
// The run.

/// The invitee's screen: the verdict the input chose (at the time it is
/// asked), checked and counted.
struct FuzzScreen {
    verdict: Verdict,
    screened: usize,
    confirmed: usize,
    /// `confirm` said Present.
    confirmed_present: bool,
}

impl FuzzScreen {
    fn check(&self, peer: &Certificate, app: AppId, id: InviteId) {
        assert_eq!(id, INVITE_ID, "screened another invitation");
        assert_eq!(*peer.identity(), cast().alice.identity(), "screened another peer");
        assert_eq!(app, APP_ID, "screened another application");
    }
}

impl Screen for FuzzScreen {
    fn screen(&mut self, peer: &Certificate, app: AppId, id: InviteId) -> Admission {
        self.screened += 1;
        assert_eq!(self.screened, 1, "an invitation was screened twice");
        self.check(peer, app, id);
        self.verdict.admission()
    }

    fn confirm(&mut self, peer: &Certificate, app: AppId, id: InviteId) -> Admission {
        self.confirmed += 1;
        assert_eq!(self.screened, 1, "confirmed before it was screened");
        assert_eq!(self.confirmed, 1, "an invitation was confirmed twice");
        self.check(peer, app, id);
        self.confirmed_present = self.verdict == Verdict::Present;
        self.verdict.admission()
    }
}

/// One side: its invitation (the invitee's once it exists), pool and
/// entropy, and what the checks remember.
struct Peer {
    inv: Option<Invitation>,
    pool: Box<DataPool<1>>,
    rng: HashDrbg,
    /// The latest `now` this side was given.
    latest: Instant,
    events: Vec<InvitationEvent>,
    closed: bool,
}

/// What an invitation looks like, to compare before and after a call that
/// must change nothing.
#[derive(Debug, PartialEq, Eq)]
struct Observable {
    state: State,
    outcome: Option<Outcome>,
    timeout: Option<Instant>,
}

fn observe(inv: &Invitation) -> Observable {
    Observable { state: inv.state(), outcome: inv.outcome(), timeout: inv.poll_timeout() }
}

impl Peer {
    fn new(seed: u64) -> Self {
        Peer {
            inv: None,
            pool: Box::new(DataPool::new()),
            rng: HashDrbg::from_u64(seed),
            latest: Instant::ZERO,
            events: Vec::new(),
            closed: false,
        }
    }

    fn ended(&self) -> Option<Outcome> {
        self.events.iter().find_map(|e| match e {
            InvitationEvent::Ended(o) => Some(*o),
            _ => None,
        })
    }

    fn count(&self, f: impl Fn(&InvitationEvent) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

/// What a run did, for the seed generator to check its seeds against.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The inviter's events, in order (the silent settling included).
    pub inviter_events: Vec<InvitationEvent>,
    /// The invitee's events, in order (the silent settling included).
    pub invitee_events: Vec<InvitationEvent>,
    /// Outcomes when the operations ended, before the silent settling:
    /// `[inviter, invitee]`.
    pub before_settle: [Option<Outcome>; 2],
    /// Whether the invitee was built.
    pub invitee_built: bool,
    /// Results of `respond`.
    pub responds: Vec<Result<(), InviteError>>,
    /// Results of `cancel`.
    pub cancels: Vec<Result<CancelEffect, InviteError>>,
    /// Datagrams transmitted, `[inviter, invitee]`.
    pub transmitted: [usize; 2],
    /// Datagrams dropped by an invitation, `[inviter, invitee]`.
    pub dropped: [usize; 2],
    /// Datagrams delivered to Bob before his invitation existed that did
    /// not build it.
    pub unrouted: usize,
}

impl Report {
    /// A side's outcome, once it ended.
    #[must_use]
    pub fn outcome(&self, side: Side) -> Option<Outcome> {
        let events = match side {
            Side::Inviter => &self.inviter_events,
            Side::Invitee => &self.invitee_events,
        };
        events.iter().find_map(|e| match e {
            InvitationEvent::Ended(o) => Some(*o),
            _ => None,
        })
    }
}

struct World {
    config: Config,
    now: Instant,
    alice: Peer,
    bob: Peer,
    screen: FuzzScreen,
    /// Buffers of Bob's pool someone else holds.
    hogged: Vec<BufferId>,
    /// Datagrams in flight, oldest first, with their sender.
    in_flight: InFlight<(Side, Vec<u8>)>,
    /// The invitee's user accepted (a `respond(Accept)` succeeded).
    user_accepted: bool,
    report: Report,
}

impl World {
    fn new(config: Config) -> Self {
        let cast = cast();
        let now = schedule::start();
        let mut alice = Peer::new(ALICE_RNG_SEED);
        let (session, rng) = initiator_session(config);
        alice.rng = rng;
        let (message, data) = &cast.bodies[config.body as usize];
        let offer =
            Offer { id: INVITE_ID, app_id: APP_ID, message, data, expires_in: config.expires_in() };
        let inv =
            Invitation::invite(session, &offer, now, &mut *alice.pool).expect("Alice invites");
        assert_eq!(inv.party(), Role::Inviter);
        alice.inv = Some(inv);
        alice.latest = now;
        let mut bob = Peer::new(BOB_RNG_SEED);
        let mut hogged = Vec::new();
        if config.pool_full {
            hogged.push(bob.pool.take().expect("a fresh pool has a buffer"));
        }
        World {
            config,
            now,
            alice,
            bob,
            screen: FuzzScreen {
                verdict: Verdict::Present,
                screened: 0,
                confirmed: 0,
                confirmed_present: false,
            },
            hogged,
            in_flight: InFlight::default(),
            user_accepted: false,
            report: Report::default(),
        }
    }

    fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Inviter => &mut self.alice,
            Side::Invitee => &mut self.bob,
        }
    }

    /// Polls a side's events, checking each; returns how many there were.
    fn poll_events(&mut self, side: Side) -> usize {
        let cast = cast();
        let (message, data) = &cast.bodies[self.config.body as usize];
        let p = match side {
            Side::Inviter => &mut self.alice,
            Side::Invitee => &mut self.bob,
        };
        let Some(inv) = p.inv.as_mut() else { return 0 };
        let mut n = 0;
        while let Some(e) = inv.poll_event() {
            n += 1;
            assert!(n <= 4, "more events than the queue holds");
            match (side, e) {
                (_, InvitationEvent::Ended(o)) => {
                    assert_eq!(inv.outcome(), Some(o), "Ended differs from outcome()");
                }
                (Side::Invitee, InvitationEvent::Invited) => {
                    assert_eq!(inv.message(&*p.pool), Some(message.as_str()), "forged message");
                    assert_eq!(inv.data(&*p.pool), Some(&data[..]), "forged data");
                    assert_eq!(inv.app_id(), APP_ID);
                    assert_eq!(inv.id(), INVITE_ID);
                    assert!(self.screen.confirmed_present, "presented unconfirmed");
                }
                (Side::Inviter, InvitationEvent::Ringing) => {}
                (_, e) => panic!("{side:?} reported {e:?}"),
            }
            p.events.push(e);
        }
        n
    }

    /// The checks that hold between any two operations.
    fn check(&mut self) {
        self.poll_events(Side::Inviter);
        self.poll_events(Side::Invitee);
        let hogged = self.hogged.len();
        for side in [Side::Inviter, Side::Invitee] {
            let p = self.peer(side);
            assert!(
                p.count(|e| matches!(e, InvitationEvent::Ended(_))) <= 1,
                "{side:?} ended twice"
            );
            assert!(p.count(|e| *e == InvitationEvent::Invited) <= 1, "Invited twice");
            assert!(p.count(|e| *e == InvitationEvent::Ringing) <= 1, "Ringing twice");
            let Some(inv) = p.inv.as_ref() else { continue };
            if p.closed {
                assert!(inv.is_closed(), "{side:?} reopened");
            }
            if inv.is_closed() {
                p.closed = true;
                assert_eq!(inv.poll_timeout(), None, "{side:?} closed with a deadline");
                assert!(p.ended().is_some(), "{side:?} closed without an outcome");
                let held = match side {
                    Side::Inviter => 0,
                    Side::Invitee => hogged,
                };
                assert_eq!(
                    p.pool.free(),
                    p.pool.capacity() - held,
                    "{side:?} closed, kept a buffer"
                );
            }
        }
        let inviter = self.alice.ended();
        let invitee = self.bob.ended();
        if self.alice.events.contains(&InvitationEvent::Ringing) {
            assert!(self.bob.events.contains(&InvitationEvent::Invited), "Ringing, never Invited");
        }
        if invitee == Some(Outcome::Accepted) {
            assert_eq!(inviter, Some(Outcome::Accepted), "the invitee alone ended Accepted");
        }
        if inviter == Some(Outcome::Accepted) {
            assert!(self.user_accepted, "the inviter ended Accepted, the user never accepted");
        }
        if let (Some(a), Some(b)) = (inviter, invitee)
            && a != Outcome::Unreachable
            && b != Outcome::Unreachable
        {
            assert_eq!(a, b, "the outcomes disagree");
        }
    }

    fn advance(&mut self, now: Instant) {
        self.now = now;
        for side in [Side::Inviter, Side::Invitee] {
            let p = self.peer(side);
            let Some(inv) = p.inv.as_mut() else { continue };
            inv.handle_timeout(now, &mut *p.pool, &mut p.rng);
            p.latest = p.latest.max(now);
            if let Some(t) = inv.poll_timeout() {
                assert!(t > p.latest, "{side:?}: deadline {t:?} not after {:?}", p.latest);
            }
        }
    }

    /// Drains a side's `poll_transmit`; returns the datagrams.
    fn transmit(&mut self, side: Side) -> Vec<Vec<u8>> {
        let now = self.now;
        let p = self.peer(side);
        let Some(inv) = p.inv.as_mut() else { return Vec::new() };
        let closed = inv.is_closed();
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut sent = Vec::new();
        while let Some(n) = inv.poll_transmit(now, &*p.pool, &mut buf) {
            assert!(!closed, "{side:?} transmitted while closed");
            assert!(n <= MAX_DATAGRAM, "{n} bytes");
            assert!(sent.len() < 32, "{side:?} transmits without end");
            if let Err(e) = Frame::parse(&buf[..n]) {
                panic!("{side:?} transmitted a datagram that does not parse: {e:?}");
            }
            sent.push(buf[..n].to_vec());
        }
        p.latest = p.latest.max(now);
        self.report.transmitted[side as usize] += sent.len();
        sent
    }

    fn deliver(&mut self, to: Side, datagram: &[u8]) {
        // Events of earlier deliveries (of one Flush) first.
        self.poll_events(to);
        let now = self.now;
        let p = match to {
            Side::Inviter => &mut self.alice,
            Side::Invitee => &mut self.bob,
        };
        let Some(inv) = p.inv.as_mut() else {
            // Bob routes a datagram with no invitation to `Incoming::read`.
            self.build_invitee(datagram);
            return;
        };
        let before = observe(inv);
        let result = inv.handle_datagram(now, datagram, &mut *p.pool, &mut self.screen, &mut p.rng);
        p.latest = p.latest.max(now);
        if let Err(e) = result {
            self.report.dropped[to as usize] += 1;
            let after = observe(self.peer(to).inv.as_ref().expect("present"));
            assert_eq!(after, before, "dropped ({e:?}) but the invitation changed");
            assert_eq!(self.poll_events(to), 0, "a dropped datagram ({e:?}) raised an event");
        }
    }

    fn build_invitee(&mut self, datagram: &[u8]) {
        let now = self.now;
        let Some((session, rng)) = accepted_session(datagram, now) else {
            self.report.unrouted += 1;
            return;
        };
        self.bob.rng = rng;
        let config = InviteeConfig::with_max_expiry(if self.config.long_max_expiry {
            MAX_EXPIRY_ON_WIRE
        } else {
            InviteeConfig::default().max_expiry
        });
        let inv = Invitation::invitee(session, config, now).expect("an accepted session invites");
        assert_eq!(inv.party(), Role::Invitee);
        self.bob.inv = Some(inv);
        // Its clock starts now, whatever Bob was given before it existed.
        self.bob.latest = now;
        self.report.invitee_built = true;
    }

    fn respond(&mut self, answer: AnswerSpec, reason: &[u8], on_inviter: bool) {
        let now = self.now;
        let side = if on_inviter { Side::Inviter } else { Side::Invitee };
        let reason = String::from_utf8_lossy(reason);
        let p = self.peer(side);
        let Some(inv) = p.inv.as_mut() else { return };
        let before = observe(inv);
        let too_long = reason.len() > MAX_REASON_BYTES;
        let wait_too_long = answer == AnswerSpec::BusyTooLong;
        let fits = !on_inviter && !too_long && !wait_too_long;
        // An answer at or after the expiry is too late: the invitation
        // expires instead.
        let too_late = fits
            && before.state == State::Invitee(InviteeState::Ringing)
            && now.max(p.latest) >= inv.expires_at();
        let result = inv.respond(now, answer.answer(), &reason);
        // A refused command does not move the invitation's clock.
        if result.is_ok() || too_late {
            p.latest = p.latest.max(now);
        }
        let after = observe(inv);
        self.report.responds.push(result);
        match result {
            Ok(()) => {
                assert!(!on_inviter, "an inviter answered");
                assert!(!too_long && !wait_too_long, "respond took what does not fit");
                assert!(!too_late, "an answer after the expiry was taken");
                assert_eq!(before.state, State::Invitee(InviteeState::Ringing), "answered early");
                assert_eq!(after.state, State::Invitee(InviteeState::Answering));
                if answer == AnswerSpec::Accept {
                    self.user_accepted = true;
                }
            }
            Err(e) if too_late => {
                assert_eq!(e, InviteError::Ended, "a late answer");
                assert_eq!(after.state, State::Invitee(InviteeState::Answering), "expired");
            }
            Err(e) => {
                assert_eq!(after, before, "a refused respond ({e:?}) changed the invitation");
                assert_eq!(self.poll_events(side), 0, "a refused respond raised an event");
                if on_inviter {
                    assert_eq!(e, InviteError::WrongRole);
                } else if too_long {
                    assert_eq!(e, InviteError::ReasonTooLong);
                } else if wait_too_long {
                    assert_eq!(e, InviteError::DurationTooLong);
                } else {
                    assert_ne!(
                        before.state,
                        State::Invitee(InviteeState::Ringing),
                        "a ringing invitee refused an answer ({e:?})"
                    );
                }
            }
        }
    }

    fn cancel(&mut self, reason: CancelReason, text: &[u8], on_invitee: bool) {
        let now = self.now;
        let side = if on_invitee { Side::Invitee } else { Side::Inviter };
        let text = String::from_utf8_lossy(text);
        let p = self.peer(side);
        let Some(inv) = p.inv.as_mut() else { return };
        let before = observe(inv);
        let result = inv.cancel(now, reason, &text, &mut *p.pool);
        // A refused command does not move the invitation's clock.
        if result.is_ok() {
            p.latest = p.latest.max(now);
        }
        let after = observe(inv);
        self.report.cancels.push(result);
        let too_long = text.len() > MAX_REASON_BYTES;
        if !on_invitee && reason == CancelReason::GaveUp {
            assert_eq!(result, Err(InviteError::ReservedReason), "GaveUp was not refused");
        }
        let cancelled = Some(Outcome::Cancelled(reason));
        match result {
            Ok(effect) => {
                assert!(!on_invitee, "an invitee cancelled");
                assert!(!too_long, "cancel took a text too long");
                let State::Inviter(s) = before.state else { panic!("not an inviter") };
                match effect {
                    CancelEffect::Abandoned => {
                        assert_eq!(s, InviterState::Connecting, "abandoned in {s:?}");
                        assert_eq!(after.state, State::Inviter(InviterState::Closed));
                        assert_eq!(after.outcome, cancelled);
                    }
                    CancelEffect::Withdrawing => {
                        assert!(
                            matches!(s, InviterState::Delivering | InviterState::Ringing),
                            "withdrawing in {s:?}"
                        );
                        assert_eq!(after.state, State::Inviter(InviterState::Cancelling));
                        assert_eq!(after.outcome, cancelled);
                    }
                    CancelEffect::NoEffect => {
                        assert!(before.outcome.is_some(), "no effect before the outcome");
                        assert_eq!(after, before, "a cancel with no effect changed something");
                        assert_eq!(self.poll_events(side), 0, "a cancel with no effect");
                    }
                    other => panic!("a cancel effect this target does not know: {other:?}"),
                }
            }
            Err(e) => {
                assert_eq!(after, before, "a refused cancel ({e:?}) changed the invitation");
                assert_eq!(self.poll_events(side), 0, "a refused cancel raised an event");
                if on_invitee {
                    assert_eq!(e, InviteError::WrongRole);
                } else if reason != CancelReason::GaveUp {
                    assert!(too_long, "cancel refused ({e:?})");
                    assert_eq!(e, InviteError::ReasonTooLong);
                }
            }
        }
    }

    fn hog(&mut self, take: bool) {
        if take {
            if let Some(id) = self.bob.pool.take() {
                self.hogged.push(id);
            }
        } else if let Some(id) = self.hogged.pop() {
            self.bob.pool.release(id);
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Advance { ms } => self.advance(moved(self.now, ms)),
            Op::Jump { at } => self.advance(Instant::from_millis(at)),
            Op::Transmit { side } => {
                for d in self.transmit(side) {
                    self.in_flight.push((side, d));
                }
            }
            Op::Deliver { pick, keep, reflect, mutation } => {
                let Some((from, d)) = self.in_flight.take(pick, keep) else { return };
                let d = mutate(d, &mutation);
                let to = if reflect { from } else { from.other() };
                self.deliver(to, &d);
            }
            Op::Drop { pick } => self.in_flight.lose(pick),
            Op::Flush => {
                while let Some((from, d)) = self.in_flight.pop_oldest() {
                    self.deliver(from.other(), &d);
                }
            }
            Op::Inject { to, bytes } => self.deliver(to, &bytes),
            Op::Respond { answer, reason, on_inviter } => self.respond(answer, &reason, on_inviter),
            Op::Cancel { reason, text, on_invitee } => self.cancel(reason, &text, on_invitee),
            Op::Screen { verdict } => self.screen.verdict = verdict,
            Op::Hog { take } => self.hog(take),
        }
    }

    /// The network goes silent: time runs on, a day at a time, until both
    /// invitations have closed.
    fn settle(&mut self) {
        // From the latest time either side has seen: time may have gone
        // back since.
        self.now = self.now.max(self.alice.latest).max(self.bob.latest);
        for _ in 0..SETTLE_STEPS {
            let open = |p: &Peer| p.inv.as_ref().is_some_and(|inv| !inv.is_closed());
            if !open(&self.alice) && !open(&self.bob) {
                break;
            }
            self.advance(self.now + SETTLE_STEP);
            self.transmit(Side::Inviter);
            self.transmit(Side::Invitee);
            self.check();
        }
        let stuck: Vec<String> = [&self.alice, &self.bob]
            .into_iter()
            .filter_map(|p| p.inv.as_ref().map(|inv| (p, inv)))
            .filter(|(_, inv)| !inv.is_closed())
            .map(|(p, inv)| format!("{:?}, ended {:?}: {inv:?}", inv.party(), p.ended()))
            .collect();
        assert!(stuck.is_empty(), "the network went silent, never closed: {stuck:#?}");
    }
}

/// The target's body.
pub fn run(data: &[u8]) {
    let _ = run_report(data);
}

/// The target's body, reporting what happened.
pub fn run_report(data: &[u8]) -> Report {
    let (config, ops) = decode(data);
    let mut w = World::new(config);
    w.check();
    for op in ops {
        w.apply(op);
        w.check();
    }
    w.report.before_settle = [w.alice.ended(), w.bob.ended()];
    w.settle();
    w.report.inviter_events = w.alice.events.clone();
    w.report.invitee_events = w.bob.events.clone();
    w.report
}

//! `handshake_responder`: a responder, Bob, fed arbitrary and mutated
//! datagrams, next to a genuine initiator whose datagrams it also receives.
//!
//! # Cast (fixed, built once)
//! - **Bob**, the responder under test: endpoint certificate serial 2. His
//!   directory pins Alice.
//! - **Alice**, a known initiator: Bob pinned her certificate.
//! - **Carol**, an initiator Bob does not know.
//! - Bob's serial-1 certificate, same identity and static key, which an
//!   initiator may have pinned instead (Bob then states his full
//!   certificate in the response).
//!
//! # Input: a sequence of operations
//! The input is split with [`arbitrary::Unstructured`] into at most
//! [`MAX_OPS`] operations ([`Op`]), until it runs out, by the readers of
//! [`crate::framing`] and [`crate::schedule`]. Integers are little endian,
//! as `Unstructured` reads them; [`encode`] is the inverse of [`decode`],
//! which the seed generator relies on.
//!
//! A datagram comes from a [`Source`]: raw bytes, or one of the last
//! [`POOL_LEN`] datagrams any genuine party sent (Bob included), possibly
//! mutated (any [`Mutation`]: flipped, truncated, appended to, a byte set).
//! Operations:
//! - [`Op::Start`]: Alice (or Carol) starts a genuine initiator session, IK
//!   to Bob (pinning his current or old certificate, stating her identity by
//!   certificate or hash) or XX; its initiation goes to the pool;
//! - [`Op::Read`]: a datagram into `Incoming::read` with Bob's directory;
//!   on `Ok`, optionally `accept`ed into one of Bob's two session slots
//!   (starts and accepts: at most [`MAX_HANDSHAKES`] each per input);
//! - [`Op::ToBob`] / [`Op::ToInitiator`]: a datagram into a session's
//!   `handle_datagram`;
//! - [`Op::Advance`] / [`Op::Jump`]: time moves (by a signed amount, or to
//!   an absolute instant, so also backwards) and every session gets
//!   `handle_timeout`;
//! - [`Op::Send`]: a session seals a payload (a fixed pattern of the asked
//!   length);
//! - [`Op::Cookie`]: a genuine cookie reply to the newest initiation in the
//!   pool is added to the pool;
//! - [`Op::Close`]: a session is closed.
//!
//! After every operation each session's `poll_transmit` and `poll_event`
//! are drained; what is transmitted joins the pool.
//!
//! # Checked
//! - nothing panics;
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than
//!   the latest `now` the session was given;
//! - every transmitted datagram parses with `Frame::parse` and is at most
//!   `MAX_DATAGRAM` (1200) bytes; a transmitted transport datagram is
//!   addressed to the peer's index;
//! - `stats().received` grows by one on `Ok(Received::Payload | Keepalive)`
//!   and is unchanged by everything else; a received payload is the
//!   pattern a genuine party sent (only authentic data is delivered);
//! - until Bob's session is established, everything it sends is no larger
//!   than the initiation that created the session, nor than the datagram
//!   that made it send; Bob's `send` succeeds only once established;
//! - a datagram refused with `Dropped` changes nothing observable:
//!   `poll_timeout()`, `received`, the state (established, closed, failure),
//!   the peer, the indices; nothing is sent and no event is raised;
//! - `Incoming::read` reports the initiator's certificate in IK (Alice's or
//!   Carol's) and none in XX; `accept` either fails (for example
//!   `Noise(NonContributory)` for a low-order XX ephemeral), sending
//!   nothing, or returns a session with exactly one response ready;
//! - `Established` means the peer is known: Alice or Carol for Bob, Bob for
//!   the initiator; a failed `send` changes nothing; a closed session has no
//!   deadline and refuses every datagram.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::OnceLock;

use arbitrary::Unstructured;

use crate::framing::{
    put_i32, put_long, put_ops, put_u16, put_u32, put_u64, read_i32, read_long, read_ops, read_u8,
    read_u16, read_u32, read_u64,
};
use crate::schedule::{self, ALL_MUTATIONS, Mutation, moved, mutate, put_mutation, read_mutation};
use peercollab_core::identity::{Certificate, EndpointId, IdentityKey, LocalIdentity};
use peercollab_core::mac::MacKey;
use peercollab_core::session::{
    Dropped, Incoming, PinnedPeer, Received, Session, SessionEvent, StatementForm,
};
use peercollab_core::wire::{CookieReply, Frame, MAX_DATAGRAM, MAX_TRANSPORT_PAYLOAD, Mode};
use peercollab_core::{HashDrbg, Instant};

/// Most operations read from one input.
pub const MAX_OPS: usize = 64;
/// Most [`Op::Start`]s, and most `accept`s Bob attempts, acted on in one
/// input (later ones are skipped): each costs several Diffie-Hellman
/// operations, and a handful reach every state.
pub const MAX_HANDSHAKES: usize = 4;
/// How many genuine datagrams the pool keeps (newest first).
pub const POOL_LEN: usize = 16;
/// Seeds of the fixed identities.
const BOB_SEED: u64 = 0xB0B;
const ALICE_SEED: u64 = 0xA11CE;
const CAROL_SEED: u64 = 0xCA201;
/// Seeds of the parties' entropy during a run.
const BOB_RNG_SEED: u64 = 0xB0B_0001;
const INITIATOR_RNG_SEED: u64 = 0x000A_11CE_0001;
/// Session index of the initiators' sessions.
pub const INITIATOR_INDEX: u32 = 0xA11C_E000;

/// Where a delivered datagram comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// These bytes.
    Raw(Vec<u8>),
    /// The pool's datagram `back` places from the newest (modulo the pool's
    /// length; an empty pool gives an empty datagram), mutated.
    Genuine {
        /// 0 is the newest (0..=127).
        back: u8,
        /// What is done to it.
        mutation: Mutation,
    },
}

/// Flags of [`Op::Start`].
pub mod start {
    /// XX (else IK).
    pub const XX: u8 = 1 << 0;
    /// IK: state the identity by certificate hash (else the full certificate).
    pub const HASH: u8 = 1 << 1;
    /// Carol, whom Bob does not know, initiates (else Alice).
    pub const CAROL: u8 = 1 << 2;
    /// IK: the initiator pinned Bob's old (serial 1) certificate.
    pub const OLD_PIN: u8 = 1 << 3;
    /// XX: the initiator expects Bob's identity (else anyone).
    pub const EXPECT_BOB: u8 = 1 << 4;
    /// XX, without [`EXPECT_BOB`]: the initiator expects Carol's identity,
    /// which Bob cannot prove (the handshake fails with `IdentityMismatch`).
    pub const EXPECT_CAROL: u8 = 1 << 5;
}

/// How Bob reads an initiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `Incoming::read`.
    Read,
    /// `Incoming::read_admitting`, admitting nobody.
    AdmitNobody,
    /// `Incoming::read_admitting`, admitting only Alice.
    AdmitAlice,
    /// `Incoming::read_admitting`, admitting only Carol.
    AdmitCarol,
}

impl Policy {
    fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => Policy::Read,
            1 => Policy::AdmitNobody,
            2 => Policy::AdmitAlice,
            _ => Policy::AdmitCarol,
        }
    }

    fn bits(self) -> u8 {
        self as u8
    }

    fn admits(self, id: &IdentityKey) -> bool {
        let cast = cast();
        match self {
            Policy::Read => true,
            Policy::AdmitNobody => false,
            Policy::AdmitAlice => *id == cast.alice.identity(),
            Policy::AdmitCarol => *id == cast.carol.identity(),
        }
    }
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The initiator starts a new genuine session (replacing its previous
    /// one), with [`start`] flags.
    Start {
        /// [`start`] flags.
        flags: u8,
    },
    /// `Incoming::read` (or `read_admitting`) of a datagram; on `Ok`,
    /// `accept` into a slot if asked.
    Read {
        /// The datagram.
        src: Source,
        /// How Bob reads it.
        policy: Policy,
        /// Whether to accept an initiation that reads.
        accept: bool,
        /// Bob's slot (0 or 1) the session replaces.
        slot: u8,
        /// The session index Bob gives it.
        index: u32,
    },
    /// A datagram to Bob's session in a slot (low bit).
    ToBob {
        /// Bob's slot (low bit).
        slot: u8,
        /// The datagram.
        src: Source,
    },
    /// A datagram to the genuine initiator's session.
    ToInitiator {
        /// The datagram.
        src: Source,
    },
    /// Time moves by this many milliseconds (negative: backwards).
    Advance {
        /// Milliseconds.
        ms: i32,
    },
    /// Time is set to this instant (milliseconds).
    Jump {
        /// Milliseconds since the epoch.
        at: u64,
    },
    /// A session sends a payload of `len` bytes (any length above the
    /// limit is sent as one byte above it).
    Send {
        /// 0 the initiator, 1 and 2 Bob's slots (modulo 3).
        who: u8,
        /// Payload length (may exceed the limit).
        len: u16,
    },
    /// A genuine cookie reply to the newest initiation in the pool.
    Cookie {
        /// Fills the nonce.
        nonce: u8,
        /// Fills the cookie.
        cookie: u8,
    },
    /// A session is closed.
    Close {
        /// 0 the initiator, 1 and 2 Bob's slots (modulo 3).
        who: u8,
    },
}

const OP_COUNT: u8 = 9;

/// Most bytes a raw datagram has: as many as its `u16` length says.
const MAX_RAW: usize = u16::MAX as usize;

// ---------------------------------------------------------------------------
// Input framing.

fn read_source(u: &mut Unstructured<'_>) -> Source {
    let k = read_u8(u);
    if k & 0x80 == 0 {
        Source::Raw(read_long(u, MAX_RAW))
    } else {
        Source::Genuine { back: k & 0x7f, mutation: read_mutation(u, ALL_MUTATIONS) }
    }
}

/// Splits an input into operations. Never fails.
#[must_use]
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    read_ops(&mut u, MAX_OPS, OP_COUNT, |u, code| match code {
        0 => Op::Start { flags: read_u8(u) },
        1 => {
            let flags = read_u8(u);
            let index = read_u32(u);
            Op::Read {
                src: read_source(u),
                policy: Policy::from_bits(flags >> 2),
                accept: flags & 1 != 0,
                slot: (flags >> 1) & 1,
                index,
            }
        }
        2 => {
            let slot = read_u8(u);
            Op::ToBob { slot, src: read_source(u) }
        }
        3 => Op::ToInitiator { src: read_source(u) },
        4 => Op::Advance { ms: read_i32(u) },
        5 => Op::Jump { at: read_u64(u) },
        6 => Op::Send { who: read_u8(u), len: read_u16(u) },
        7 => Op::Cookie { nonce: read_u8(u), cookie: read_u8(u) },
        _ => Op::Close { who: read_u8(u) },
    })
}

fn put_source(out: &mut Vec<u8>, src: &Source) {
    match src {
        Source::Raw(bytes) => {
            out.push(0);
            put_long(out, bytes, MAX_RAW);
        }
        Source::Genuine { back, mutation } => {
            assert!(*back < 0x80, "back is 0..=127");
            out.push(0x80 | back);
            put_mutation(out, mutation, ALL_MUTATIONS);
        }
    }
}

/// Frames operations as an input (the inverse of [`decode`]).
#[must_use]
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    put_ops(&mut out, ops, MAX_OPS, |out, op| match op {
        Op::Start { flags } => out.extend_from_slice(&[0, *flags]),
        Op::Read { src, policy, accept, slot, index } => {
            assert!(*slot < 2);
            out.extend_from_slice(&[1, (policy.bits() << 2) | (slot << 1) | u8::from(*accept)]);
            put_u32(out, *index);
            put_source(out, src);
        }
        Op::ToBob { slot, src } => {
            out.extend_from_slice(&[2, *slot]);
            put_source(out, src);
        }
        Op::ToInitiator { src } => {
            out.push(3);
            put_source(out, src);
        }
        Op::Advance { ms } => {
            out.push(4);
            put_i32(out, *ms);
        }
        Op::Jump { at } => {
            out.push(5);
            put_u64(out, *at);
        }
        Op::Send { who, len } => {
            out.extend_from_slice(&[6, *who]);
            put_u16(out, *len);
        }
        Op::Cookie { nonce, cookie } => out.extend_from_slice(&[7, *nonce, *cookie]),
        Op::Close { who } => out.extend_from_slice(&[8, *who]),
    });
    out
}

// ---------------------------------------------------------------------------
// The cast.

/// The fixed identities and pins.
pub struct Cast {
    /// The responder (certificate serial 2).
    pub bob: LocalIdentity,
    /// Bob's serial-1 certificate: same identity and static key.
    pub bob_old: Certificate,
    /// The initiator Bob pinned.
    pub alice: LocalIdentity,
    /// An initiator Bob does not know.
    pub carol: LocalIdentity,
    /// Bob's directory: Alice.
    pub bob_pins: Vec<PinnedPeer>,
    /// Alice's and Carol's pins of Bob's current and old certificates:
    /// `[alice current, alice old, carol current, carol old]`.
    pub pins_of_bob: [PinnedPeer; 4],
}

fn identity(seed: u64) -> LocalIdentity {
    LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(1))
}

/// The cast, built on first use.
pub fn cast() -> &'static Cast {
    static CAST: OnceLock<Cast> = OnceLock::new();
    CAST.get_or_init(|| {
        let bob_v1 = identity(BOB_SEED);
        let bob = LocalIdentity::new(
            bob_v1.secret().clone(),
            bob_v1.static_keys().clone(),
            EndpointId(1),
            2,
        );
        let alice = identity(ALICE_SEED);
        let carol = identity(CAROL_SEED);
        let pin = |local: &LocalIdentity, cert: &Certificate| {
            PinnedPeer::new(local, *cert).expect("a valid certificate pins")
        };
        let bob_pins = vec![pin(&bob, alice.certificate())];
        let pins_of_bob = [
            pin(&alice, bob.certificate()),
            pin(&alice, bob_v1.certificate()),
            pin(&carol, bob.certificate()),
            pin(&carol, bob_v1.certificate()),
        ];
        Cast { bob_old: *bob_v1.certificate(), bob, alice, carol, bob_pins, pins_of_bob }
    })
}

/// The payload a genuine party sends for a length: whatever is delivered
/// must be one of these.
#[must_use]
pub fn payload_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ (len as u8) ^ 0x5a).collect()
}

// ---------------------------------------------------------------------------
// The run.

/// A session with what the checks need to remember about it.
struct Tracked {
    s: Session,
    /// The latest `now` the session was given.
    latest: Instant,
    /// Bob's sessions: the length of the initiation that created it.
    trigger_len: Option<usize>,
    /// The identities an established peer may have.
    peers: Vec<IdentityKey>,
}

/// What a session looked like before a datagram, to compare after a drop.
#[derive(Debug, PartialEq, Eq)]
struct Observable {
    timeout: Option<Instant>,
    received: u64,
    sent: u64,
    established: bool,
    closed: bool,
    can_send: bool,
    failure: Option<peercollab_core::session::Failure>,
    peer: Option<[u8; 32]>,
    remote_index: Option<u32>,
    handshake_hash: Option<[u8; 32]>,
}

impl Tracked {
    fn observe(&mut self, now: Instant) {
        self.latest = self.latest.max(now);
    }

    fn observable(&self) -> Observable {
        Observable {
            timeout: self.s.poll_timeout(),
            received: self.s.stats().received,
            sent: self.s.stats().sent,
            established: self.s.is_established(),
            closed: self.s.is_closed(),
            can_send: self.s.can_send(),
            failure: self.s.failure(),
            peer: self.s.peer().map(|c| *c.identity().as_bytes()),
            remote_index: self.s.remote_index(),
            handshake_hash: self.s.handshake_hash().copied(),
        }
    }

    fn check_deadline(&self) {
        if let Some(t) = self.s.poll_timeout() {
            assert!(
                t > self.latest,
                "after handle_timeout, deadline {t:?} is not after {:?}",
                self.latest
            );
        }
    }
}

/// What a run did, for the seed generator to check its seeds against.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every datagram a session transmitted or `send` sealed, in order.
    pub transmitted: Vec<Vec<u8>>,
    /// Every event, with who raised it (0 the initiator, 1 and 2 Bob's slots).
    pub events: Vec<(u8, SessionEvent)>,
    /// Payload lengths delivered, with who received them.
    pub delivered: Vec<(u8, usize)>,
    /// Sessions Bob accepted.
    pub accepted: usize,
    /// `accept`s that failed.
    pub accept_failed: usize,
    /// Datagrams dropped by a session.
    pub dropped: usize,
    /// Initiator sessions started.
    pub started: usize,
}

struct World {
    report: Report,
    now: Instant,
    bob_rng: HashDrbg,
    init_rng: HashDrbg,
    initiator: Option<Tracked>,
    bob: [Option<Tracked>; 2],
    /// Genuine datagrams, newest first.
    pool: VecDeque<Vec<u8>>,
}

impl World {
    fn new() -> Self {
        World {
            report: Report::default(),
            now: schedule::start(),
            bob_rng: HashDrbg::from_u64(BOB_RNG_SEED),
            init_rng: HashDrbg::from_u64(INITIATOR_RNG_SEED),
            initiator: None,
            bob: [None, None],
            pool: VecDeque::new(),
        }
    }

    fn datagram(&self, src: &Source) -> Vec<u8> {
        match src {
            Source::Raw(bytes) => bytes.clone(),
            Source::Genuine { back, mutation } => {
                if self.pool.is_empty() {
                    return Vec::new();
                }
                let d = &self.pool[usize::from(*back) % self.pool.len()];
                mutate(d.clone(), mutation)
            }
        }
    }

    fn remember(&mut self, datagram: &[u8]) {
        self.report.transmitted.push(datagram.to_vec());
        self.pool.push_front(datagram.to_vec());
        self.pool.truncate(POOL_LEN);
    }

    fn session(&mut self, who: u8) -> (Option<&mut Tracked>, &mut HashDrbg) {
        match who % 3 {
            0 => (self.initiator.as_mut(), &mut self.init_rng),
            n => (self.bob[usize::from(n - 1)].as_mut(), &mut self.bob_rng),
        }
    }

    /// Drains one session's outputs; `cause` is the length of the datagram
    /// that made it act, if a datagram did. Returns how many datagrams it sent.
    fn drain(&mut self, who: u8, cause: Option<usize>) -> usize {
        let now = self.now;
        let (Some(t), _) = self.session(who) else { return 0 };
        let mut sent = Vec::new();
        let mut buf = [0u8; MAX_DATAGRAM];
        t.observe(now);
        while let Some(n) = t.s.poll_transmit(now, &mut buf) {
            assert!(sent.len() < 4, "a session sent more than its output queue holds");
            assert!(n <= MAX_DATAGRAM);
            let d = &buf[..n];
            let frame = Frame::parse(d)
                .unwrap_or_else(|e| panic!("transmitted datagram does not parse: {e:?}"));
            if let Frame::Transport(f) = frame {
                assert_eq!(Some(f.receiver_index), t.s.remote_index(), "transport to a stranger");
            }
            if let Some(trigger) = t.trigger_len
                && !t.s.is_established()
            {
                assert!(
                    n <= trigger,
                    "responder sent {n} bytes before establishment, trigger was {trigger}"
                );
                if let Some(cause) = cause {
                    assert!(n <= cause, "responder answered {cause} bytes with {n}");
                }
            }
            sent.push(d.to_vec());
        }
        let mut events = Vec::new();
        while let Some(e) = t.s.poll_event() {
            events.push((who % 3, e));
            assert!(events.len() <= 2, "more events than the queue holds");
            if e == SessionEvent::Established {
                let peer = t.s.peer().expect("established with a verified peer");
                assert!(
                    t.peers.contains(peer.identity()),
                    "established with an unexpected identity {:?}",
                    peer.identity()
                );
            }
        }
        let count = sent.len();
        self.report.events.extend(events);
        for d in sent {
            self.remember(&d);
        }
        count
    }

    fn drain_all(&mut self) {
        for who in 0..3 {
            self.drain(who, None);
        }
    }

    fn start(&mut self, flags: u8) {
        if self.report.started == MAX_HANDSHAKES {
            return;
        }
        self.report.started += 1;
        let cast = cast();
        let carol = flags & start::CAROL != 0;
        let local = if carol { &cast.carol } else { &cast.alice };
        let now = self.now;
        let rng = &mut self.init_rng;
        let mut peers = vec![cast.bob.identity()];
        let s = if flags & start::XX != 0 {
            let expected = if flags & start::EXPECT_BOB != 0 {
                Some(cast.bob.identity())
            } else if flags & start::EXPECT_CAROL != 0 {
                peers.clear();
                Some(cast.carol.identity())
            } else {
                None
            };
            Session::initiate_endpoint(local, expected, INITIATOR_INDEX, now, rng)
        } else {
            let pin = usize::from(carol) * 2 + usize::from(flags & start::OLD_PIN != 0);
            let statement = if flags & start::HASH != 0 {
                StatementForm::Hash
            } else {
                StatementForm::Certificate
            };
            Session::initiate_contact(
                local,
                &cast.pins_of_bob[pin],
                INITIATOR_INDEX,
                statement,
                now,
                rng,
            )
        };
        let s = s.expect("a genuine initiator starts");
        self.initiator = Some(Tracked { s, latest: now, trigger_len: None, peers });
        assert_eq!(self.drain(0, None), 1, "an initiator sends its initiation at once");
    }

    fn read(&mut self, datagram: &[u8], policy: Policy, accept: bool, slot: u8, index: u32) {
        let cast = cast();
        let asked = Cell::new(None);
        let read = match policy {
            Policy::Read => Incoming::read(&cast.bob, &cast.bob_pins[..], datagram),
            _ => Incoming::read_admitting(&cast.bob, &cast.bob_pins[..], datagram, |id| {
                assert!(asked.replace(Some(*id)).is_none(), "admit asked twice");
                policy.admits(id)
            }),
        };
        let asked = asked.get();
        let incoming = match read {
            Ok(incoming) => incoming,
            Err(Dropped::NotAdmitted) => {
                let id = asked.expect("NotAdmitted without asking the policy");
                assert!(!policy.admits(&id), "NotAdmitted for an identity the policy admits");
                return;
            }
            Err(_) => return,
        };
        match incoming.mode() {
            Mode::Ik => {
                let peer = incoming.peer().expect("IK initiation states the initiator");
                assert!(
                    [cast.alice.identity(), cast.carol.identity()].contains(peer.identity()),
                    "IK initiation from an unknown identity"
                );
                match asked {
                    Some(id) => assert_eq!(&id, peer.identity(), "admit asked about another"),
                    // Only a certificate byte-equal to a pinned one skips the policy.
                    None => assert!(
                        policy == Policy::Read
                            || cast.bob_pins.iter().any(|p| p.certificate() == peer),
                        "the policy was skipped for an unpinned certificate"
                    ),
                }
            }
            Mode::Xx => {
                assert!(incoming.peer().is_none(), "XX message 1 states no identity");
                assert!(asked.is_none(), "XX message 1 has no identity to admit");
            }
        }
        if !accept || self.report.accepted + self.report.accept_failed == MAX_HANDSHAKES {
            return;
        }
        let now = self.now;
        // A failed accept returns no session, so nothing can be sent.
        let Ok(s) = incoming.accept(&cast.bob, index, now, &mut self.bob_rng) else {
            self.report.accept_failed += 1;
            for who in 1..3 {
                assert_eq!(self.drain(who, None), 0, "a failed accept made Bob send");
            }
            return;
        };
        self.report.accepted += 1;
        assert!(!s.is_established(), "a responder is established only after confirmation");
        assert!(!s.can_send(), "a responder cannot send before confirmation");
        let who = 1 + (slot & 1);
        self.bob[usize::from(slot & 1)] = Some(Tracked {
            s,
            latest: now,
            trigger_len: Some(datagram.len()),
            peers: vec![cast.alice.identity(), cast.carol.identity()],
        });
        assert_eq!(self.drain(who, Some(datagram.len())), 1, "accept readies one response");
    }

    fn deliver(&mut self, who: u8, datagram: &[u8]) {
        let now = self.now;
        let (Some(t), rng) = self.session(who) else { return };
        t.observe(now);
        let before = t.observable();
        let mut payload = [0u8; MAX_DATAGRAM];
        let result = t.s.handle_datagram(now, datagram, &mut payload, rng);
        let after = t.observable();
        if before.closed {
            assert_eq!(result, Err(Dropped::Closed), "a closed session took a datagram");
        }
        match result {
            Ok(Received::Payload(n)) => {
                assert!(n > 0 && n <= MAX_TRANSPORT_PAYLOAD);
                assert_eq!(after.received, before.received + 1);
                assert_eq!(payload[..n], payload_pattern(n)[..], "a forged payload was delivered");
            }
            Ok(Received::Keepalive) => assert_eq!(after.received, before.received + 1),
            Ok(Received::Handshake) => assert_eq!(after.received, before.received),
            Err(e) => assert_eq!(after, before, "dropped ({e:?}) but the session changed"),
        }
        let dropped = result.is_err();
        if dropped {
            self.report.dropped += 1;
        }
        if let Ok(Received::Payload(n)) = result {
            self.report.delivered.push((who % 3, n));
        }
        if let Ok(Received::Keepalive) = result {
            self.report.delivered.push((who % 3, 0));
        }
        let sent = self.drain(who, Some(datagram.len()));
        if dropped {
            assert_eq!(sent, 0, "a dropped datagram made the session send");
        }
    }

    fn advance(&mut self, now: Instant) {
        self.now = now;
        for who in 0..3 {
            let (Some(t), rng) = self.session(who) else { continue };
            t.observe(now);
            let received = t.s.stats().received;
            t.s.handle_timeout(now, rng);
            t.check_deadline();
            assert_eq!(t.s.stats().received, received, "a timeout received something");
            self.drain(who, None);
        }
    }

    fn send(&mut self, who: u8, len: u16) {
        let now = self.now;
        let (Some(t), _) = self.session(who) else { return };
        t.observe(now);
        let before = t.observable();
        let payload = payload_pattern(usize::from(len).min(MAX_TRANSPORT_PAYLOAD + 1));
        let mut buf = [0u8; MAX_DATAGRAM];
        match t.s.send(now, &payload, &mut buf) {
            Ok(n) => {
                assert!(usize::from(len) <= MAX_TRANSPORT_PAYLOAD);
                if t.trigger_len.is_some() {
                    assert!(before.established, "a responder sent before confirmation");
                }
                let Ok(Frame::Transport(f)) = Frame::parse(&buf[..n]) else {
                    panic!("send wrote no transport datagram");
                };
                assert_eq!(Some(f.receiver_index), t.s.remote_index());
                assert_eq!(t.s.stats().sent, before.sent + 1);
                assert_eq!(t.s.stats().received, before.received, "sending received something");
                let d = buf[..n].to_vec();
                self.remember(&d);
            }
            Err(e) => {
                assert_eq!(t.observable(), before, "a refused send ({e:?}) changed the session");
            }
        }
        self.drain(who, None);
    }

    fn cookie(&mut self, nonce: u8, cookie: u8) {
        let cast = cast();
        let Some(Frame::Initiation(f)) = self.pool.iter().find_map(|d| match Frame::parse(d) {
            Ok(f @ Frame::Initiation(_)) => Some(f),
            _ => None,
        }) else {
            return;
        };
        let material = match f.mode {
            Mode::Ik => *cast.bob.static_keys().public(),
            Mode::Xx => {
                let mut e = [0u8; 32];
                e.copy_from_slice(&f.noise[..32]);
                e
            }
        };
        let nonce = [nonce; 24];
        let reply = Frame::CookieReply(CookieReply {
            mode: f.mode,
            receiver_index: f.sender_index,
            nonce,
            sealed_cookie: MacKey::cookie(&material).seal_cookie(&nonce, &[cookie; 16], &f.mac1),
        });
        let mut buf = [0u8; 64];
        let n = reply.emit(&mut buf).expect("a cookie reply emits");
        self.remember(&buf[..n]);
    }

    fn close(&mut self, who: u8) {
        let now = self.now;
        let (Some(t), rng) = self.session(who) else { return };
        t.s.close();
        assert!(t.s.is_closed());
        assert_eq!(t.s.poll_timeout(), None, "a closed session has a deadline");
        assert!(!t.s.can_send());
        t.observe(now);
        t.s.handle_timeout(now, rng);
        t.check_deadline();
        assert_eq!(self.drain(who, None), 0, "a closed session sent");
    }
}

/// The target's body.
pub fn run(data: &[u8]) {
    let _ = run_report(data);
}

/// The target's body, reporting what happened.
pub fn run_report(data: &[u8]) -> Report {
    let mut w = World::new();
    for op in decode(data) {
        match op {
            Op::Start { flags } => w.start(flags),
            Op::Read { src, policy, accept, slot, index } => {
                let d = w.datagram(&src);
                w.read(&d, policy, accept, slot, index);
            }
            Op::ToBob { slot, src } => {
                let d = w.datagram(&src);
                w.deliver(1 + (slot & 1), &d);
            }
            Op::ToInitiator { src } => {
                let d = w.datagram(&src);
                w.deliver(0, &d);
            }
            Op::Advance { ms } => w.advance(moved(w.now, ms)),
            Op::Jump { at } => w.advance(Instant::from_millis(at)),
            Op::Send { who, len } => w.send(who, len),
            Op::Cookie { nonce, cookie } => w.cookie(nonce, cookie),
            Op::Close { who } => w.close(who),
        }
        w.drain_all();
    }
    w.report
}

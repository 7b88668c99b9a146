//! `agent_ops`: one [`Agent`] under an arbitrary sequence of commands,
//! fuzzer-crafted datagrams and time steps, with **transparent
//! cryptography** (`peercollab_core::fuzzing`, turned on by [`run`]): AEAD
//! is the plaintext and a zero tag, every MAC is zeros, so the harness
//! builds well-formed frames around fuzzer-chosen contents and the fuzzer
//! reaches what lies behind the handshake (Invite fragments, Sack, Ringing,
//! Final, Ack, Cancel) without breaking any cryptography. Diffie-Hellman and
//! signatures stay real: the peers are fixed identities.
//!
//! # Cast
//! - **The agent**: Bob's endpoint 0 (`agent_network`'s cast), an
//!   `Agent<4, 4, 4, 2, 8>` at `10.0.0.2:7000`.
//! - **Peers**, run by the harness with the core's own `Session` /
//!   `Incoming` (so their handshakes are genuine): 0 Alice (at `10.0.0.1`,
//!   also `[2001:db8::1]`), 1 Bob's endpoint 1 (the agent's own identity, at
//!   `10.0.0.3`), 2 Mallory, a stranger (at `10.0.0.9`, also
//!   `[2001:db8:9::1]`). A peer answers the agent's initiations sent to its
//!   address.
//!
//! # Input
//! The first byte is the [`Config`]; the rest is split with
//! [`arbitrary::Unstructured`] into at most [`MAX_OPS`] operations
//! ([`Op`]; see there for each one's fields). Time moves (also backwards,
//! to the end of time, or with timers late); peers start IK or XX
//! handshakes; datagrams in flight (the agent's and the peers') are
//! delivered by position, mutated, duplicated, re-addressed, or lost;
//! peers send invitation messages (every type, with fuzzer-chosen fields
//! and ids, also the agent's own invite ids learnt from its plaintext) in
//! transport frames with a next, replayed or arbitrary counter; frames of
//! every type are forged around fuzzer bytes; and every `Agent` command
//! runs with valid, stale and bad arguments.
//!
//! # Checked
//! - nothing panics;
//! - capacities: `invitations_in_use` ≤ 4, `handles_in_use` ≤ 4,
//!   `buffers_free` ≤ 2, after every operation;
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than
//!   the latest `now` the agent took in (unless that is the end of time);
//! - every transmitted datagram parses and is at most 1200 bytes; one drain
//!   returns at most 128;
//! - **no amplification**: after a datagram that is not an authenticated
//!   transport or handshake response (an initiation, a final message, a
//!   cookie reply, or anything dropped), the agent sends at most one
//!   datagram, no larger than that datagram; a dropped datagram is answered
//!   only by a cookie reply (`CookieRequired`);
//! - a dropped datagram changes nothing observable (slots, handles,
//!   buffers, policy, applications, contacts, every response and incoming
//!   view) but the counters and a deadline moved later, and reports no
//!   event;
//! - a refused command changes nothing observable (counters included),
//!   sends nothing and reports nothing, but for the late answer of
//!   `spec/agent.md` §2.8;
//! - a handle gets at most one `Ringing` (before its outcome) and at most
//!   one `Responded`, none once closed; `response()` agrees; an accepted
//!   handle names who answered; a handle command succeeds exactly on an
//!   open handle;
//! - an incoming id gets at most one `Invited` and at most one
//!   `IncomingEnded`, in that order; a presented invitation is from a cast
//!   identity, to a registered application whose policy (else the global
//!   one) accepts the inviter's class, with a valid message and data within
//!   the limit; `launch_info` is readable exactly from an
//!   `IncomingEnded(Accepted)` to its `release`; no more incoming
//!   invitations end `Accepted` than `respond(Accept)` succeeded;
//! - once the network is silent, the agent comes to rest: slots in use are
//!   its unreleased launch informations, handles its open ones, no
//!   deadline, every open handle answered and **every presented invitation
//!   ended exactly once**.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use arbitrary::Unstructured;

use crate::agent_network::{self as network, APP, OTHER_APP, REQUESTS};
use crate::framing::{
    put_i32, put_long, put_ops, put_short, put_u16, put_u32, put_u64, read_i32, read_long,
    read_ops, read_short, read_u8, read_u16, read_u32, read_u64,
};
use crate::schedule::{
    self, ALL_MUTATIONS, AnswerSpec, InFlight, MAX_INJECTED, Mutation, SETTLE_STEP, SETTLE_STEPS,
    moved, mutate, put_answer, put_mutation, read_answer, read_mutation,
};
use peercollab_core::agent::{
    Agent, AgentConfig, AgentError, AgentStats, Application, ContactId, ContactUpdate, Dropped,
    Event, Handle, IncomingId, InvitationRequest, InviteOptions, Policy, Sender, Status, Target,
    Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{Certificate, EndpointId, IdentityKey, LocalIdentity};
use peercollab_core::invite::message::{
    Cancel, Final, InviteFragment, chunk_range, fragment_count, validate_message,
};
use peercollab_core::invite::{
    AppId, CancelEffect, CancelReason, DEFAULT_EXPIRY, FinalCode, InviteError, InviteId,
    MAX_APP_DATA, MAX_EXPIRY_ON_WIRE, Message, Outcome,
};
use peercollab_core::session::{Incoming, PinnedPeer, Session, StatementForm};
use peercollab_core::wire::{
    CookieReply, Frame, FrameType, HandshakeFinal, Initiation, MAC_LEN, MAX_DATAGRAM, Mode,
    Response, Transport, peek_type,
};
use peercollab_core::{Duration, HashDrbg, Instant};

/// The agent's type: 4 contacts, 4 applications, 4 invitation slots, 2
/// body buffers, 8 remembered ids.
pub type OpsAgent = Agent<4, 4, 4, 2, 8>;
/// Invitation slots (and handles) of [`OpsAgent`].
pub const SLOTS: usize = 4;
/// Body buffers of [`OpsAgent`].
pub const BUFFERS: usize = 2;
/// Most operations read from one input.
pub const MAX_OPS: usize = 256;
/// Most datagrams one drain of `poll_transmit` may return.
pub const MAX_DRAIN: usize = 128;
/// Peers.
pub const PEERS: usize = 3;
/// Peer 0.
pub const ALICE: u8 = 0;
/// Peer 1: Bob's endpoint 1, the agent's own identity.
pub const BOB1: u8 = 1;
/// Peer 2: a stranger.
pub const MALLORY: u8 = 2;
/// Addresses of the address table ([`addr`]).
pub const ADDRESSES: u8 = 7;
/// Address index of the agent itself.
pub const AGENT_ADDR: u8 = 6;
/// Cards of the card table: Alice's, Bob's (the agent's own), Bob's newer,
/// Carol's, Mallory's.
pub const CARDS: u8 = 5;
/// Transport counters the harness crafts start here (above anything a
/// peer's own session sends).
const CRAFTED_COUNTER: u64 = 1 << 20;

fn v4(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 7000)
}

/// The address table: 0 Alice, 1 Bob's endpoint 1, 2 Mallory, 3 Alice's
/// other address, 4 Mallory's other address, 5 nobody's, 6 the agent's.
#[must_use]
pub fn addr(i: u8) -> SocketAddr {
    match i % ADDRESSES {
        0 => v4(1),
        1 => v4(3),
        2 => v4(9),
        3 => SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 9000),
        4 => SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1)), 9000),
        5 => network::address(network::NOWHERE),
        _ => v4(2),
    }
}

/// The peer listening at an address.
fn listener(a: SocketAddr) -> Option<usize> {
    [0u8, 1, 2, 0, 2].iter().enumerate().find(|(i, _)| addr(*i as u8) == a).map(|(_, &p)| p.into())
}

struct Extra {
    mallory: LocalIdentity,
    mallory_card: ContactCard,
}

fn extra() -> &'static Extra {
    static EXTRA: OnceLock<Extra> = OnceLock::new();
    EXTRA.get_or_init(|| {
        let mut rng = HashDrbg::from_u64(0xA6E7_0F5);
        let mallory = LocalIdentity::generate(&mut rng, EndpointId(0));
        let mallory_card =
            ContactCard::issue(mallory.secret(), "Mallory", &[*mallory.certificate()], &[addr(2)])
                .expect("Mallory's card");
        Extra { mallory, mallory_card }
    })
}

fn peer_local(p: usize) -> &'static LocalIdentity {
    let cast = network::cast();
    match p {
        0 => &cast.alice,
        1 => &cast.bob1,
        _ => &extra().mallory,
    }
}

fn agent_local() -> &'static LocalIdentity {
    &network::cast().bob0
}

fn card(i: u8) -> &'static ContactCard {
    let cards = &network::cast().cards;
    match i % CARDS {
        0 => &cards[0],
        1 => &cards[1],
        2 => &cards[6],
        3 => &cards[2],
        _ => &extra().mallory_card,
    }
}

fn expiry(i: u8) -> Duration {
    match i % 5 {
        0 => DEFAULT_EXPIRY,
        1 => Duration::from_secs(5),
        2 => Duration::ZERO,
        3 => MAX_EXPIRY_ON_WIRE,
        _ => MAX_EXPIRY_ON_WIRE.saturating_add(Duration::from_millis(1)),
    }
}

/// Options byte: bits 0-2 expiry (modulo 5: default, 5 s, zero, longest,
/// too long), bit 3 `Discard`, bits 4-5 expected identity (none, Alice,
/// Bob, Mallory).
fn options(b: u8) -> InviteOptions {
    let mut o = InviteOptions::default().expires_in(expiry(b & 7));
    if b & 8 != 0 {
        o = o.discard_handle();
    }
    if let Some(id) = expected(b) {
        o = o.expect(id);
    }
    o
}

fn expected(b: u8) -> Option<IdentityKey> {
    match (b >> 4) & 3 {
        1 => Some(network::cast().alice.identity()),
        2 => Some(agent_local().identity()),
        3 => Some(extra().mallory.identity()),
        _ => None,
    }
}

fn policy_of(b: u8) -> Policy {
    Policy::ALL[usize::from(b % 3)]
}

fn app(i: u8) -> AppId {
    match i % 6 {
        0 => APP,
        1 => OTHER_APP,
        n => AppId([n; 16]),
    }
}

fn name(i: u8) -> &'static str {
    const TOO_LONG: &str = "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn";
    ["renamed ☕", "", "invoice\u{202e}fdp.exe", TOO_LONG][usize::from(i % 4)]
}

// ---------------------------------------------------------------------------
// Config and operations.

/// What the first input byte sets up: bits 0-1 Alice's relation (0 a
/// stranger, 1 known, 2 trusted, 3 trusted and Mallory known), bit 2
/// [`APP`] registered, bits 3-4 the global policy (0 Anyone, 1
/// TrustedOnly, 2 Nobody, 3 Anyone), bit 5 [`APP`]'s own policy Anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config(pub u8);

impl Default for Config {
    /// Alice trusted, [`APP`] registered, policy Anyone.
    fn default() -> Self {
        Config(2 | 4)
    }
}

/// A message a peer sends, in a transport frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageSpec {
    /// The fragments (bit `i` of `which`; none set: all) of an Invite of
    /// `REQUESTS[request % 4]`.
    Invite {
        /// Id pick.
        id: u8,
        /// Request index (modulo 4: the valid requests).
        request: u8,
        /// Time left, in ms.
        remaining_ms: u32,
        /// Fragments to send.
        which: u8,
    },
    /// Sack.
    Sack {
        /// Id pick.
        id: u8,
        /// Fragments held.
        received: u16,
    },
    /// Ringing.
    Ringing {
        /// Id pick.
        id: u8,
    },
    /// Final.
    Final {
        /// Id pick.
        id: u8,
        /// Code byte (modulo 8, plus 1).
        code: u8,
        /// Retry-after, Busy only.
        retry_ms: u32,
        /// Reason (lossy UTF-8).
        reason: Vec<u8>,
    },
    /// Ack.
    Ack {
        /// Id pick.
        id: u8,
        /// Code byte (modulo 8, plus 1).
        code: u8,
    },
    /// Cancel.
    Cancel {
        /// Id pick.
        id: u8,
        /// Reason byte (modulo 3, plus 1).
        reason: u8,
        /// Text (lossy UTF-8).
        text: Vec<u8>,
    },
}

/// One step. Byte layout: the code byte (modulo [`OP_COUNT`]), then the
/// fields in declaration order: `u8`s as bytes, integers little endian,
/// `Vec<u8>` a short string (length byte) except where it says long (`u16`
/// length), a mutation as `schedule::read_mutation` with every kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// 0: time moves by `ms` (negative: backwards); `handle_timeout`.
    Advance {
        /// Milliseconds.
        ms: i32,
    },
    /// 1: time is set to `at` ms; `handle_timeout`.
    Jump {
        /// Milliseconds.
        at: u64,
    },
    /// 2: time moves, the timers are late (no `handle_timeout`).
    Skew {
        /// Milliseconds.
        ms: i32,
    },
    /// 3: a peer starts a handshake with the agent: bit 0 XX (else IK),
    /// bit 1 (IK) its certificate hash only (else the certificate),
    /// bits 2-4 the source address index (7: its own).
    Initiate {
        /// Peer (modulo 3).
        peer: u8,
        /// Flags.
        flags: u8,
    },
    /// 4: an in-flight datagram is delivered: flags bit 0 it stays in
    /// flight, bits 1-3 the source address index (0: as sent, else index
    /// `n - 1`).
    Deliver {
        /// Position (modulo the count, 0 the oldest).
        pick: u8,
        /// Flags.
        flags: u8,
        /// Mutation.
        mutation: Mutation,
    },
    /// 5: an in-flight datagram is lost.
    Drop {
        /// Position.
        pick: u8,
    },
    /// 6: every datagram in flight is delivered, oldest first.
    Flush,
    /// 7: every peer session gets `handle_timeout` (retransmissions go in
    /// flight).
    PeerTimeout,
    /// 8: a frame forged around fuzzer bytes, with zero MACs and tags, to
    /// the agent: kind (modulo 6) 0 initiation (mode `a & 1`, sender
    /// index `a`), 1 response, 2 final, 3 cookie reply, 4 transport (the
    /// bytes are its plaintext), 5 the bytes as they are; receivers are
    /// picked (`a`) among the agent's indices seen.
    Forge {
        /// Kind.
        kind: u8,
        /// Source address index.
        from: u8,
        /// Index, or index pick, and mode bit.
        a: u32,
        /// Transport counter.
        counter: u64,
        /// Bytes (long).
        bytes: Vec<u8>,
    },
    /// 9: a peer session sends a message in a transport frame, directly to
    /// the agent, from its address: counter mode (modulo 3) 0 the next, 1
    /// the last again (a replay), 2 `counter`.
    Send {
        /// Session pick.
        session: u8,
        /// Counter mode.
        mode: u8,
        /// Counter for mode 2.
        counter: u64,
        /// The message.
        message: MessageSpec,
    },
    /// 10: `invite_contact`: targets (endpoint modulo 4, address index).
    InviteContact {
        /// Contact pick.
        contact: u8,
        /// At most five targets.
        targets: Vec<(u8, u8)>,
        /// Request index (modulo 6).
        request: u8,
        /// Options byte ([`options`]).
        options: u8,
    },
    /// 11: `invite_endpoint`.
    InviteEndpoint {
        /// Address index.
        to: u8,
        /// Request index.
        request: u8,
        /// Options byte.
        options: u8,
    },
    /// 12: `response`.
    Response {
        /// Handle pick.
        handle: u8,
    },
    /// 13: `cancel`.
    Cancel {
        /// Handle pick.
        handle: u8,
    },
    /// 14: `close`.
    Close {
        /// Handle pick.
        handle: u8,
    },
    /// 15: `respond`.
    Respond {
        /// Incoming pick.
        incoming: u8,
        /// The answer.
        answer: AnswerSpec,
        /// The reason (lossy UTF-8).
        reason: Vec<u8>,
    },
    /// 16: `launch_info`, or `incoming` (bit 0).
    LaunchInfo {
        /// Incoming pick.
        incoming: u8,
        /// Flags.
        view: u8,
    },
    /// 17: `release`.
    Release {
        /// Incoming pick.
        incoming: u8,
    },
    /// 18: `add_contact` (bit 0 of `trusted`: trusted).
    AddContact {
        /// Card index.
        card: u8,
        /// Flags.
        trusted: u8,
    },
    /// 19: `update_contact`: bits 0-2 name (1 to 4, else unchanged), bits
    /// 3-4 trust (1 trusted, 2 known), bits 5-7 addresses (1 to 6: the
    /// first 0 to 5 of the table).
    UpdateContact {
        /// Contact pick.
        contact: u8,
        /// Flags.
        flags: u8,
    },
    /// 20: `remove_contact`.
    RemoveContact {
        /// Contact pick.
        contact: u8,
    },
    /// 21: `revoke_endpoint`.
    RevokeEndpoint {
        /// Contact pick.
        contact: u8,
        /// Endpoint (modulo 4).
        endpoint: u8,
    },
    /// 22: `refresh_contact`.
    RefreshContact {
        /// Contact pick.
        contact: u8,
        /// Card index.
        card: u8,
    },
    /// 23: `register_application`: policy 0 none, else `Policy::ALL[p - 1]`.
    Register {
        /// Application index (modulo 6).
        app: u8,
        /// Name index (modulo 4).
        name: u8,
        /// Policy byte (modulo 4).
        policy: u8,
    },
    /// 24: `unregister_application`.
    Unregister {
        /// Application index.
        app: u8,
    },
    /// 25: `set_policy`.
    SetPolicy {
        /// Policy (modulo 3).
        policy: u8,
    },
}

/// Operation codes.
pub const OP_COUNT: u8 = 26;

fn read_message(u: &mut Unstructured<'_>) -> MessageSpec {
    match read_u8(u) % 6 {
        0 => MessageSpec::Invite {
            id: read_u8(u),
            request: read_u8(u),
            remaining_ms: read_u32(u),
            which: read_u8(u),
        },
        1 => MessageSpec::Sack { id: read_u8(u), received: read_u16(u) },
        2 => MessageSpec::Ringing { id: read_u8(u) },
        3 => MessageSpec::Final {
            id: read_u8(u),
            code: read_u8(u),
            retry_ms: read_u32(u),
            reason: read_short(u),
        },
        4 => MessageSpec::Ack { id: read_u8(u), code: read_u8(u) },
        _ => MessageSpec::Cancel { id: read_u8(u), reason: read_u8(u), text: read_short(u) },
    }
}

fn put_message(out: &mut Vec<u8>, m: &MessageSpec) {
    match m {
        MessageSpec::Invite { id, request, remaining_ms, which } => {
            out.extend_from_slice(&[0, *id, *request]);
            put_u32(out, *remaining_ms);
            out.push(*which);
        }
        MessageSpec::Sack { id, received } => {
            out.extend_from_slice(&[1, *id]);
            put_u16(out, *received);
        }
        MessageSpec::Ringing { id } => out.extend_from_slice(&[2, *id]),
        MessageSpec::Final { id, code, retry_ms, reason } => {
            out.extend_from_slice(&[3, *id, *code]);
            put_u32(out, *retry_ms);
            put_short(out, reason);
        }
        MessageSpec::Ack { id, code } => out.extend_from_slice(&[4, *id, *code]),
        MessageSpec::Cancel { id, reason, text } => {
            out.extend_from_slice(&[5, *id, *reason]);
            put_short(out, text);
        }
    }
}

/// Splits an input into its config and operations. Never fails.
#[must_use]
pub fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let mut u = Unstructured::new(data);
    let config = Config(read_u8(&mut u));
    let ops = read_ops(&mut u, MAX_OPS, OP_COUNT, |u, code| match code {
        0 => Op::Advance { ms: read_i32(u) },
        1 => Op::Jump { at: read_u64(u) },
        2 => Op::Skew { ms: read_i32(u) },
        3 => Op::Initiate { peer: read_u8(u), flags: read_u8(u) },
        4 => Op::Deliver {
            pick: read_u8(u),
            flags: read_u8(u),
            mutation: read_mutation(u, ALL_MUTATIONS),
        },
        5 => Op::Drop { pick: read_u8(u) },
        6 => Op::Flush,
        7 => Op::PeerTimeout,
        8 => Op::Forge {
            kind: read_u8(u),
            from: read_u8(u),
            a: read_u32(u),
            counter: read_u64(u),
            bytes: read_long(u, MAX_INJECTED),
        },
        9 => Op::Send {
            session: read_u8(u),
            mode: read_u8(u),
            counter: read_u64(u),
            message: read_message(u),
        },
        10 => {
            let contact = read_u8(u);
            let n = read_u8(u) % 6;
            let targets = (0..n).map(|_| (read_u8(u), read_u8(u))).collect();
            Op::InviteContact { contact, targets, request: read_u8(u), options: read_u8(u) }
        }
        11 => Op::InviteEndpoint { to: read_u8(u), request: read_u8(u), options: read_u8(u) },
        12 => Op::Response { handle: read_u8(u) },
        13 => Op::Cancel { handle: read_u8(u) },
        14 => Op::Close { handle: read_u8(u) },
        15 => {
            let incoming = read_u8(u);
            let answer = read_answer(u);
            Op::Respond { incoming, answer, reason: read_short(u) }
        }
        16 => Op::LaunchInfo { incoming: read_u8(u), view: read_u8(u) },
        17 => Op::Release { incoming: read_u8(u) },
        18 => Op::AddContact { card: read_u8(u), trusted: read_u8(u) },
        19 => Op::UpdateContact { contact: read_u8(u), flags: read_u8(u) },
        20 => Op::RemoveContact { contact: read_u8(u) },
        21 => Op::RevokeEndpoint { contact: read_u8(u), endpoint: read_u8(u) },
        22 => Op::RefreshContact { contact: read_u8(u), card: read_u8(u) },
        23 => Op::Register { app: read_u8(u), name: read_u8(u), policy: read_u8(u) },
        24 => Op::Unregister { app: read_u8(u) },
        _ => Op::SetPolicy { policy: read_u8(u) },
    });
    (config, ops)
}

/// Frames a config and operations as an input (the inverse of [`decode`]).
#[must_use]
pub fn encode(config: Config, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![config.0];
    put_ops(&mut out, ops, MAX_OPS, |out, op| match op {
        Op::Advance { ms } => {
            out.push(0);
            put_i32(out, *ms);
        }
        Op::Jump { at } => {
            out.push(1);
            put_u64(out, *at);
        }
        Op::Skew { ms } => {
            out.push(2);
            put_i32(out, *ms);
        }
        Op::Initiate { peer, flags } => out.extend_from_slice(&[3, *peer, *flags]),
        Op::Deliver { pick, flags, mutation } => {
            out.extend_from_slice(&[4, *pick, *flags]);
            put_mutation(out, mutation, ALL_MUTATIONS);
        }
        Op::Drop { pick } => out.extend_from_slice(&[5, *pick]),
        Op::Flush => out.push(6),
        Op::PeerTimeout => out.push(7),
        Op::Forge { kind, from, a, counter, bytes } => {
            out.extend_from_slice(&[8, *kind, *from]);
            put_u32(out, *a);
            put_u64(out, *counter);
            put_long(out, bytes, MAX_INJECTED);
        }
        Op::Send { session, mode, counter, message } => {
            out.extend_from_slice(&[9, *session, *mode]);
            put_u64(out, *counter);
            put_message(out, message);
        }
        Op::InviteContact { contact, targets, request, options } => {
            assert!(targets.len() <= 5, "at most five targets");
            out.extend_from_slice(&[10, *contact, targets.len() as u8]);
            for (e, a) in targets {
                out.extend_from_slice(&[*e, *a]);
            }
            out.extend_from_slice(&[*request, *options]);
        }
        Op::InviteEndpoint { to, request, options } => {
            out.extend_from_slice(&[11, *to, *request, *options]);
        }
        Op::Response { handle } => out.extend_from_slice(&[12, *handle]),
        Op::Cancel { handle } => out.extend_from_slice(&[13, *handle]),
        Op::Close { handle } => out.extend_from_slice(&[14, *handle]),
        Op::Respond { incoming, answer, reason } => {
            out.extend_from_slice(&[15, *incoming]);
            put_answer(out, *answer);
            put_short(out, reason);
        }
        Op::LaunchInfo { incoming, view } => out.extend_from_slice(&[16, *incoming, *view]),
        Op::Release { incoming } => out.extend_from_slice(&[17, *incoming]),
        Op::AddContact { card, trusted } => out.extend_from_slice(&[18, *card, *trusted]),
        Op::UpdateContact { contact, flags } => out.extend_from_slice(&[19, *contact, *flags]),
        Op::RemoveContact { contact } => out.extend_from_slice(&[20, *contact]),
        Op::RevokeEndpoint { contact, endpoint } => {
            out.extend_from_slice(&[21, *contact, *endpoint]);
        }
        Op::RefreshContact { contact, card } => out.extend_from_slice(&[22, *contact, *card]),
        Op::Register { app, name, policy } => out.extend_from_slice(&[23, *app, *name, *policy]),
        Op::Unregister { app } => out.extend_from_slice(&[24, *app]),
        Op::SetPolicy { policy } => out.extend_from_slice(&[25, *policy]),
    });
    out
}

// ---------------------------------------------------------------------------
// The run.

#[derive(Clone, Debug, Default)]
struct HandleTrack {
    open: bool,
    ringing: bool,
    responded: Option<Outcome>,
}

#[derive(Clone, Debug, Default)]
struct IncomingTrack {
    ended: Option<Outcome>,
    released: bool,
}

/// A peer's session, run by the harness.
struct PeerSession {
    session: Session,
    /// Where it lives.
    at: SocketAddr,
    /// The next crafted transport counter, and the last one used.
    counter: u64,
    last: u64,
}

#[derive(Clone, Debug)]
struct Flight {
    to_agent: bool,
    source: SocketAddr,
    destination: SocketAddr,
    bytes: Vec<u8>,
}

/// What a run did, for the seed generator to check its seeds against.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every command: its name and result.
    pub commands: Vec<(&'static str, Result<(), AgentError>)>,
    /// Datagrams the agent dropped, and why.
    pub drops: Vec<Dropped>,
    /// Datagrams the agent took (`Ok`).
    pub taken: usize,
    /// Datagrams the agent transmitted.
    pub transmitted: usize,
    /// Datagrams checked for amplification.
    pub unauthenticated: usize,
    /// The agent's counters at the end.
    pub stats: AgentStats,
}

#[derive(Debug, PartialEq, Eq)]
enum StatusView {
    Pending(bool),
    Answered(Outcome, Option<Box<Certificate>>, Option<ContactId>, String),
}

type IncomingSummary =
    (Certificate, Option<ContactId>, SocketAddr, AppId, Instant, Option<Outcome>);
type ContactView =
    (ContactId, IdentityKey, String, Trust, Vec<SocketAddr>, Vec<Certificate>, Vec<bool>);

/// What a refused command or a dropped datagram must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Observable {
    invitations: usize,
    handles: usize,
    buffers: usize,
    timeout: Option<Instant>,
    policy: Policy,
    apps: Vec<Application>,
    contacts: Vec<ContactView>,
    responses: Vec<(Handle, Result<StatusView, AgentError>)>,
    incoming: Vec<(IncomingId, Result<IncomingSummary, AgentError>, bool)>,
}

fn status_view(a: &OpsAgent, h: Handle) -> Result<StatusView, AgentError> {
    a.response(h).map(|s| match s {
        Status::Pending { ringing } => StatusView::Pending(ringing),
        Status::Answered(r) => StatusView::Answered(
            r.outcome,
            r.answered_by.map(|c| Box::new(*c)),
            r.contact,
            r.reason.to_owned(),
        ),
        other => panic!("a status this target does not know: {other:?}"),
    })
}

struct World {
    now: Instant,
    agent: Box<OpsAgent>,
    /// The latest `now` the agent surely took in.
    latest: Instant,
    /// The latest `now` the agent was handed.
    seen: Instant,
    sessions: Vec<PeerSession>,
    in_flight: InFlight<Flight>,
    /// The agent's session indices, from its handshake frames.
    indices: Vec<u32>,
    /// Invite ids: the agent's (read from its plaintext) and minted ones.
    ids: Vec<InviteId>,
    minted: u32,
    rng: HashDrbg,
    handles: Vec<Handle>,
    handle_track: BTreeMap<Handle, HandleTrack>,
    incoming: Vec<IncomingId>,
    incoming_track: BTreeMap<IncomingId, IncomingTrack>,
    contacts: Vec<ContactId>,
    accepts: usize,
    report: Report,
}

impl World {
    fn new(config: Config) -> Self {
        let b = config.0;
        let policy = [Policy::Anyone, Policy::TrustedOnly, Policy::Nobody, Policy::Anyone]
            [usize::from((b >> 3) & 3)];
        let mut agent = Box::new(OpsAgent::new(
            agent_local().clone(),
            AgentConfig::with_policy(policy),
            [0x0A; 32],
        ));
        if b & 4 != 0 {
            let own = (b & 0x20 != 0).then_some(Policy::Anyone);
            agent.register_application(APP, "fuzz app", own).expect("register");
        }
        let mut contacts = Vec::new();
        let mut add = |c: u8, trust| contacts.push(agent.add_contact(card(c), trust).expect("add"));
        match b & 3 {
            1 => add(0, Trust::Known),
            2 => add(0, Trust::Trusted),
            3 => {
                add(0, Trust::Trusted);
                add(4, Trust::Known);
            }
            _ => {}
        }
        World {
            now: schedule::start(),
            agent,
            latest: Instant::ZERO,
            seen: Instant::ZERO,
            sessions: Vec::new(),
            in_flight: InFlight::default(),
            indices: Vec::new(),
            ids: Vec::new(),
            minted: 0,
            rng: HashDrbg::from_u64(0x0915),
            handles: Vec::new(),
            handle_track: BTreeMap::new(),
            incoming: Vec::new(),
            incoming_track: BTreeMap::new(),
            contacts,
            accepts: 0,
            report: Report::default(),
        }
    }

    fn observe(&self) -> Observable {
        let a = &self.agent;
        Observable {
            invitations: a.invitations_in_use(),
            handles: a.handles_in_use(),
            buffers: a.buffers_free(),
            timeout: a.poll_timeout(),
            policy: a.policy(),
            apps: a.applications().cloned().collect(),
            contacts: a
                .contacts()
                .map(|(id, c)| {
                    (
                        id,
                        *c.identity(),
                        c.display_name().to_owned(),
                        c.trust(),
                        c.addresses().to_vec(),
                        c.certificates().copied().collect(),
                        (0..4).map(|e| c.is_revoked(EndpointId(e))).collect(),
                    )
                })
                .collect(),
            responses: self.handles.iter().map(|&h| (h, status_view(a, h))).collect(),
            incoming: self
                .incoming
                .iter()
                .map(|&id| {
                    let view = a.incoming(id).map(|v| {
                        (*v.inviter, v.contact, v.address, v.app_id, v.expires_at, v.outcome)
                    });
                    (id, view, a.launch_info(id).is_ok())
                })
                .collect(),
        }
    }

    fn check_capacities(&self) {
        let a = &self.agent;
        assert!(a.invitations_in_use() <= SLOTS, "slots over capacity: {a:?}");
        assert!(a.handles_in_use() <= SLOTS, "handles over capacity: {a:?}");
        assert!(a.buffers_free() <= BUFFERS, "more buffers free than exist: {a:?}");
    }

    // ----- the agent's outputs ---------------------------------------------

    /// Drains the agent's `poll_transmit` into the in-flight list, checking
    /// each datagram and learning its indices and invite ids; returns the
    /// lengths.
    fn drain(&mut self) -> Vec<usize> {
        let now = self.now;
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut lens = Vec::new();
        while let Some(t) = self.agent.poll_transmit(now, &mut buf) {
            assert!(t.len <= MAX_DATAGRAM, "transmitted {} bytes", t.len);
            assert!(lens.len() < MAX_DRAIN, "transmits without end");
            let bytes = &buf[..t.len];
            match Frame::parse(bytes) {
                Ok(Frame::Initiation(f)) => self.learn_index(f.sender_index),
                Ok(Frame::Response(f)) => self.learn_index(f.sender_index),
                Ok(Frame::Transport(f)) => {
                    // Transparent: the ciphertext is the plaintext and a tag.
                    let plain = &f.ciphertext[..f.ciphertext.len().saturating_sub(16)];
                    if let Ok((_, id)) = peercollab_core::invite::message::peek(plain)
                        && !self.ids.contains(&id)
                        && self.ids.len() < 64
                    {
                        self.ids.push(id);
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("transmitted a datagram that does not parse: {e:?}"),
            }
            lens.push(t.len);
            self.in_flight.push(Flight {
                to_agent: false,
                source: addr(AGENT_ADDR),
                destination: t.destination,
                bytes: bytes.to_vec(),
            });
        }
        self.latest = self.latest.max(now);
        self.seen = self.seen.max(now);
        self.report.transmitted += lens.len();
        lens
    }

    fn learn_index(&mut self, index: u32) {
        if !self.indices.contains(&index) && self.indices.len() < 64 {
            self.indices.push(index);
        }
    }

    fn poll_events(&mut self) -> usize {
        let mut count = 0;
        while let Some(e) = self.agent.poll_event() {
            count += 1;
            assert!(count <= 64, "reports without end");
            self.report.events.push(e);
            self.check_event(e);
        }
        count
    }

    fn check_event(&mut self, e: Event) {
        let a = &self.agent;
        match e {
            Event::Ringing(h) => {
                let t = self.handle_track.get_mut(&h).expect("Ringing names a handle never issued");
                assert!(t.open, "Ringing on a closed handle");
                assert!(!t.ringing, "Ringing twice");
                assert!(t.responded.is_none(), "Ringing after Responded");
                t.ringing = true;
                let s = status_view(a, h);
                assert!(
                    matches!(s, Ok(StatusView::Pending(true) | StatusView::Answered(..))),
                    "Ringing, but response() is {s:?}"
                );
            }
            Event::Responded { handle, outcome } => {
                let t = self
                    .handle_track
                    .get_mut(&handle)
                    .expect("Responded names a handle never issued");
                assert!(t.open, "Responded on a closed handle");
                assert_eq!(t.responded, None, "Responded twice");
                t.responded = Some(outcome);
                let Ok(Status::Answered(r)) = a.response(handle) else {
                    panic!("Responded, but response() is {:?}", a.response(handle));
                };
                assert_eq!(r.outcome, outcome, "Responded differs from response()");
                if outcome == Outcome::Accepted {
                    assert!(r.answered_by.is_some(), "accepted by nobody");
                }
            }
            Event::Invited(id) => {
                assert!(!self.incoming_track.contains_key(&id), "Invited twice (or reused id)");
                self.incoming.push(id);
                self.incoming_track.insert(id, IncomingTrack::default());
                match a.incoming(id) {
                    Ok(v) => {
                        let inviter = *v.inviter.identity();
                        let cast = network::cast();
                        assert!(
                            inviter == cast.alice.identity()
                                || inviter == agent_local().identity()
                                || inviter == extra().mallory.identity(),
                            "presented from outside the cast"
                        );
                        assert!(validate_message(v.message.as_bytes()).is_ok(), "a bad message");
                        assert!(v.data.len() <= MAX_APP_DATA, "data too large");
                        let registered =
                            a.application(v.app_id).expect("presented an unregistered app");
                        let sender = if inviter == a.identity().identity() {
                            Sender::Trusted
                        } else {
                            match a.contact_by_identity(&inviter).map(|c| a.contact(c)) {
                                Some(Ok(c)) if c.trust() == Trust::Trusted => Sender::Trusted,
                                Some(Ok(_)) => Sender::Known,
                                _ => Sender::Stranger,
                            }
                        };
                        let policy = registered.policy.unwrap_or(a.policy());
                        assert!(policy.accepts(sender), "{policy:?} presented {sender:?}");
                    }
                    Err(AgentError::NotPresented) => {}
                    Err(e) => panic!("Invited, but incoming() is {e:?}"),
                }
            }
            Event::IncomingEnded { incoming, outcome } => {
                let t =
                    self.incoming_track.get_mut(&incoming).expect("IncomingEnded before Invited");
                assert_eq!(t.ended, None, "IncomingEnded twice");
                t.ended = Some(outcome);
                let launch = a.launch_info(incoming);
                if outcome == Outcome::Accepted {
                    assert!(launch.is_ok(), "accepted, no launch info: {launch:?}");
                    let accepted = self
                        .incoming_track
                        .values()
                        .filter(|t| t.ended == Some(Outcome::Accepted))
                        .count();
                    assert!(
                        accepted <= self.accepts,
                        "{accepted} accepted, {} users",
                        self.accepts
                    );
                } else {
                    assert_eq!(launch.err(), Some(AgentError::NoLaunchInfo), "{outcome:?}");
                }
            }
            Event::ContactUpdated { contact, .. } => {
                assert!(a.contact(contact).is_ok(), "ContactUpdated names no contact");
            }
            other => panic!("an event this target does not know: {other:?}"),
        }
    }

    // ----- inputs to the agent ---------------------------------------------

    fn advance(&mut self, now: Instant) {
        self.now = now;
        self.agent.handle_timeout(now);
        self.latest = self.latest.max(now);
        self.seen = self.seen.max(now);
        if let Some(t) = self.agent.poll_timeout() {
            assert!(
                t > self.latest || self.latest == Instant::MAX,
                "deadline {t:?} not after {:?}",
                self.latest
            );
        }
        self.drain();
        self.poll_events();
    }

    /// Delivers a datagram to the agent and checks what it may do in reply.
    fn to_agent(&mut self, from: SocketAddr, datagram: &[u8]) {
        // What was pending goes first, so the reply can be told apart.
        self.drain();
        self.poll_events();
        let now = self.now;
        let before = self.observe();
        let result = self.agent.handle_datagram(now, from, datagram);
        self.latest = self.latest.max(now);
        self.seen = self.seen.max(now);
        let replies = self.drain();
        let kind = peek_type(datagram);
        let unauthenticated = result.is_err()
            || matches!(
                kind,
                Ok(FrameType::Initiation | FrameType::HandshakeFinal | FrameType::CookieReply)
            );
        if unauthenticated {
            self.report.unauthenticated += 1;
            assert!(
                replies.len() <= 1,
                "{} replies to one unauthenticated datagram",
                replies.len()
            );
            for len in &replies {
                assert!(
                    *len <= datagram.len(),
                    "amplification: {len} bytes in reply to {} ({kind:?}, {result:?})",
                    datagram.len()
                );
            }
        }
        match result {
            Ok(()) => self.report.taken += 1,
            Err(d) => {
                self.report.drops.push(d);
                if d != Dropped::CookieRequired {
                    assert!(replies.is_empty(), "dropped ({d:?}) and replied");
                }
                let mut after = self.observe();
                let later = match (before.timeout, after.timeout) {
                    (Some(b), Some(a)) => a >= b,
                    (b, a) => a == b,
                };
                assert!(later, "dropped ({d:?}), the deadline moved: {before:?} {after:?}");
                after.timeout = before.timeout;
                assert_eq!(after, before, "dropped ({d:?}) but changed");
                assert_eq!(self.poll_events(), 0, "dropped ({d:?}) and raised an event");
            }
        }
        self.poll_events();
    }

    // ----- the peers -------------------------------------------------------

    fn peer_outputs(&mut self, s: usize) {
        let now = self.now;
        let mut buf = [0u8; MAX_DATAGRAM];
        let ps = &mut self.sessions[s];
        while let Some(len) = ps.session.poll_transmit(now, &mut buf) {
            self.in_flight.push(Flight {
                to_agent: true,
                source: ps.at,
                destination: addr(AGENT_ADDR),
                bytes: buf[..len].to_vec(),
            });
        }
        while ps.session.poll_event().is_some() {}
    }

    fn add_session(&mut self, session: Session, at: SocketAddr) {
        if self.sessions.len() >= 32 {
            self.sessions.remove(0);
        }
        self.sessions.push(PeerSession {
            session,
            at,
            counter: CRAFTED_COUNTER,
            last: CRAFTED_COUNTER,
        });
        self.peer_outputs(self.sessions.len() - 1);
    }

    fn initiate(&mut self, peer: u8, flags: u8) {
        let peer = usize::from(peer % PEERS as u8);
        let local = peer_local(peer);
        let index = self.rng_u32();
        let now = self.now;
        let session = if flags & 1 == 0 {
            let pinned = PinnedPeer::new(local, *agent_local().certificate()).expect("pin");
            let form =
                if flags & 2 != 0 { StatementForm::Hash } else { StatementForm::Certificate };
            Session::initiate_contact(local, &pinned, index, form, now, &mut self.rng)
        } else {
            let expect = (flags & 2 != 0).then(|| agent_local().identity());
            Session::initiate_endpoint(local, expect, index, now, &mut self.rng)
        };
        let Ok(session) = session else { return };
        let at = match (flags >> 2) & 7 {
            7 => addr([0, 1, 2][peer]),
            n => addr(n),
        };
        self.add_session(session, at);
    }

    fn rng_u32(&mut self) -> u32 {
        use peercollab_core::Entropy;
        self.rng.next_u32()
    }

    /// A datagram from the agent reaches whoever listens at its destination.
    fn to_peer(&mut self, f: &Flight, bytes: &[u8]) {
        let now = self.now;
        match Frame::parse(bytes) {
            Ok(Frame::Initiation(_)) => {
                let Some(peer) = listener(f.destination) else { return };
                let local = peer_local(peer);
                let Ok(incoming) = Incoming::read(local, &(), bytes) else { return };
                let index = self.rng_u32();
                if let Ok(session) = incoming.accept(local, index, now, &mut self.rng) {
                    self.add_session(session, f.destination);
                }
            }
            Ok(
                Frame::Response(Response { receiver_index: r, .. })
                | Frame::HandshakeFinal(HandshakeFinal { receiver_index: r, .. })
                | Frame::CookieReply(CookieReply { receiver_index: r, .. })
                | Frame::Transport(Transport { receiver_index: r, .. }),
            ) => {
                let Some(s) = self.sessions.iter().position(|s| s.session.local_index() == r)
                else {
                    return;
                };
                let mut payload = [0u8; MAX_DATAGRAM];
                let _ = self.sessions[s].session.handle_datagram(
                    now,
                    bytes,
                    &mut payload,
                    &mut self.rng,
                );
                self.peer_outputs(s);
            }
            Err(_) => {}
        }
    }

    fn deliver(&mut self, f: &Flight, flags: u8, m: &Mutation) {
        let bytes = mutate(f.bytes.clone(), m);
        if f.to_agent {
            let from = match (flags >> 1) & 7 {
                0 => f.source,
                n => addr(n - 1),
            };
            self.to_agent(from, &bytes);
        } else {
            self.to_peer(f, &bytes);
        }
    }

    fn peer_timeout(&mut self) {
        for s in 0..self.sessions.len() {
            let now = self.now;
            self.sessions[s].session.handle_timeout(now, &mut self.rng);
            self.peer_outputs(s);
        }
    }

    fn pick_index(&self, a: u32) -> u32 {
        if self.indices.is_empty() { a } else { self.indices[(a as usize) % self.indices.len()] }
    }

    fn forge(&mut self, kind: u8, from: u8, a: u32, counter: u64, bytes: &[u8]) {
        let mode = if a & 1 == 0 { Mode::Ik } else { Mode::Xx };
        let mut sealed = [0u8; 32];
        let n = bytes.len().min(16);
        sealed[..n].copy_from_slice(&bytes[..n]);
        let mut plain = bytes.to_vec();
        plain.extend_from_slice(&[0; 16]);
        let receiver_index = self.pick_index(a);
        let frame = match kind % 6 {
            0 => Some(Frame::Initiation(Initiation {
                mode,
                sender_index: a,
                noise: bytes,
                mac1: [0; MAC_LEN],
                mac2: [0; MAC_LEN],
            })),
            1 => Some(Frame::Response(Response {
                mode,
                sender_index: a.rotate_left(16),
                receiver_index,
                noise: bytes,
                mac1: [0; MAC_LEN],
            })),
            2 => Some(Frame::HandshakeFinal(HandshakeFinal { receiver_index, noise: bytes })),
            3 => Some(Frame::CookieReply(CookieReply {
                mode,
                receiver_index,
                nonce: [0; 24],
                sealed_cookie: sealed,
            })),
            4 => Some(Frame::Transport(Transport { receiver_index, counter, ciphertext: &plain })),
            _ => None,
        };
        let mut buf = vec![0u8; 4096];
        let datagram = match frame.map(|f| f.emit(&mut buf)) {
            Some(Ok(len)) => &buf[..len],
            _ => bytes,
        };
        let datagram = datagram.to_vec();
        self.to_agent(addr(from), &datagram);
    }

    fn pick_id(&mut self, pick: u8) -> InviteId {
        let n = self.ids.len();
        let i = usize::from(pick) % (n + 1);
        if i < n {
            return self.ids[i];
        }
        self.minted += 1;
        let mut id = [0x1Du8; 16];
        id[..4].copy_from_slice(&self.minted.to_le_bytes());
        let id = InviteId(id);
        if self.ids.len() < 64 {
            self.ids.push(id);
        }
        id
    }

    /// The plaintexts of a message spec (an Invite may be several
    /// fragments).
    fn messages(&mut self, m: &MessageSpec) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut out = Vec::new();
        let mut emit = |msg: Message<'_>| {
            if let Ok(n) = msg.emit(&mut buf) {
                out.push(buf[..n].to_vec());
            }
        };
        let code = |c: u8| FinalCode::from_byte(c % 8 + 1).unwrap_or(FinalCode::Accepted);
        match m {
            MessageSpec::Invite { id, request, remaining_ms, which } => {
                let id = self.pick_id(*id);
                let r = &REQUESTS[usize::from(*request % 4)];
                let mut body = r.message.as_bytes().to_vec();
                body.extend_from_slice(r.data);
                for i in 0..fragment_count(body.len()) {
                    if *which != 0 && which & (1 << i) == 0 {
                        continue;
                    }
                    let Some(range) = chunk_range(body.len(), i) else { continue };
                    emit(Message::Invite(InviteFragment {
                        id,
                        app_id: r.app_id,
                        remaining_ms: *remaining_ms,
                        message_len: r.message.len() as u16,
                        data_len: r.data.len() as u16,
                        index: i as u8,
                        chunk: &body[range],
                    }));
                }
            }
            MessageSpec::Sack { id, received } => {
                let id = self.pick_id(*id);
                emit(Message::Sack { id, received: *received });
            }
            MessageSpec::Ringing { id } => {
                let id = self.pick_id(*id);
                emit(Message::Ringing { id });
            }
            MessageSpec::Final { id, code: c, retry_ms, reason } => {
                let id = self.pick_id(*id);
                let code = code(*c);
                let retry_after_ms = if code == FinalCode::Busy { *retry_ms } else { 0 };
                let reason = String::from_utf8_lossy(reason);
                emit(Message::Final(Final { id, code, retry_after_ms, reason: &reason }));
            }
            MessageSpec::Ack { id, code: c } => {
                let id = self.pick_id(*id);
                emit(Message::Ack { id, code: code(*c) });
            }
            MessageSpec::Cancel { id, reason, text } => {
                let id = self.pick_id(*id);
                let reason =
                    CancelReason::from_byte(reason % 3 + 1).unwrap_or(CancelReason::ByUser);
                let text = String::from_utf8_lossy(text);
                emit(Message::Cancel(Cancel { id, reason, text: &text }));
            }
        }
        out
    }

    fn send(&mut self, session: u8, mode: u8, counter: u64, m: &MessageSpec) {
        if self.sessions.is_empty() {
            return;
        }
        let s = usize::from(session) % self.sessions.len();
        let plaintexts = self.messages(m);
        for plain in plaintexts {
            let ps = &mut self.sessions[s];
            let receiver_index = match ps.session.remote_index() {
                Some(r) => r,
                None => continue,
            };
            let counter = match mode % 3 {
                0 => {
                    ps.last = ps.counter;
                    ps.counter += 1;
                    ps.last
                }
                1 => ps.last,
                _ => counter,
            };
            let at = ps.at;
            let mut ciphertext = plain;
            ciphertext.extend_from_slice(&[0; 16]);
            let mut buf = vec![0u8; 4096];
            let frame =
                Frame::Transport(Transport { receiver_index, counter, ciphertext: &ciphertext });
            let Ok(len) = frame.emit(&mut buf) else { continue };
            self.to_agent(at, &buf[..len]);
        }
    }

    // ----- commands --------------------------------------------------------

    fn command<T>(
        &mut self,
        name: &'static str,
        answering: Option<IncomingId>,
        f: impl FnOnce(&mut OpsAgent, Instant) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let now = self.now;
        self.drain();
        self.poll_events();
        let before = self.observe();
        let stats = self.agent.stats();
        let result = f(&mut self.agent, now);
        self.report.commands.push((name, result.as_ref().map(|_| ()).map_err(|e| *e)));
        self.seen = self.seen.max(now);
        let seen = self.seen;
        let late = |id: IncomingId, e: &AgentError| {
            *e == AgentError::Invitation(InviteError::Ended)
                && before.incoming.iter().any(|(i, v, _)| {
                    *i == id && matches!(v, Ok((.., expires_at, None)) if *expires_at <= seen)
                })
        };
        if let (Some(id), Err(e)) = (answering, &result)
            && late(id, e)
        {
            let mut after = self.observe();
            assert_eq!(self.agent.stats(), stats, "{name} refused ({e:?}), counters changed");
            for ((i, a, _), (_, b, _)) in after.incoming.iter_mut().zip(&before.incoming) {
                if *i == id {
                    let outcome = a.as_ref().map(|v| v.5);
                    assert!(
                        matches!(outcome, Ok(None | Some(Outcome::Expired))),
                        "a late answer, refused: {outcome:?}"
                    );
                    *a = *b;
                }
            }
            after.timeout = before.timeout;
            assert_eq!(after, before, "a late {name} changed more than its expiry");
        } else if let Err(e) = &result {
            assert_eq!(self.observe(), before, "{name} refused ({e:?}) but changed");
            assert_eq!(self.agent.stats(), stats, "{name} refused ({e:?}), counters changed");
            let mut buf = [0u8; MAX_DATAGRAM];
            let sent = self.agent.poll_transmit(now, &mut buf);
            assert!(sent.is_none(), "{name} refused ({e:?}) and sent {sent:?}");
            assert_eq!(self.poll_events(), 0, "{name} refused ({e:?}) and raised an event");
        }
        result
    }

    fn clocked(&mut self) {
        self.latest = self.latest.max(self.now);
    }

    fn pick<T: Copy>(list: &[T], pick: u8) -> Option<T> {
        (!list.is_empty()).then(|| list[usize::from(pick) % list.len()])
    }

    fn new_handle(&mut self, handle: Option<Handle>, discard: bool) {
        assert_eq!(handle.is_none(), discard, "a handle iff Keep");
        if let Some(h) = handle {
            assert!(!self.handle_track.contains_key(&h), "a handle issued twice");
            self.handles.push(h);
            self.handle_track.insert(h, HandleTrack { open: true, ..HandleTrack::default() });
        }
    }

    fn invite(&mut self, contact: Option<(ContactId, Vec<Target>)>, to: u8, request: u8, o: u8) {
        let r = REQUESTS[usize::from(request) % REQUESTS.len()];
        let req = InvitationRequest { app_id: r.app_id, message: r.message, data: r.data };
        let legs = contact.as_ref().map_or(1, |(_, t)| t.len());
        let before = (
            self.agent.invitations_in_use(),
            self.agent.handles_in_use(),
            self.agent.buffers_free(),
        );
        let result = match contact {
            Some((c, targets)) => self.command("invite_contact", None, |a, now| {
                a.invite_contact(now, c, &targets, &req, options(o))
            }),
            None => self.command("invite_endpoint", None, |a, now| {
                a.invite_endpoint(now, addr(to), &req, options(o))
            }),
        };
        if let Ok(handle) = result {
            self.clocked();
            let a = &self.agent;
            let body = !r.message.is_empty() || !r.data.is_empty();
            assert_eq!(a.invitations_in_use(), before.0 + legs, "slots of a new invitation");
            assert_eq!(a.handles_in_use(), before.1 + 1, "handles of a new invitation");
            let buffers = if body { before.2 - legs } else { before.2 };
            // Taking the last buffer gives back those of ended, unaccepted
            // incoming invitations (agent.md §1.7).
            let free = a.buffers_free();
            assert!(
                free == buffers || (buffers == 0 && free > 0),
                "buffers of a new invitation: {free} free, {buffers} expected"
            );
            self.new_handle(handle, o & 8 != 0);
        }
    }

    fn handle_command<T>(
        &mut self,
        pick: u8,
        name: &'static str,
        f: impl FnOnce(&mut OpsAgent, Instant, Handle) -> Result<T, AgentError>,
    ) -> Option<(Handle, HandleTrack, Result<T, AgentError>)> {
        let h = Self::pick(&self.handles, pick)?;
        let t = self.handle_track.get(&h).cloned().unwrap_or_default();
        let result = self.command(name, None, |a, now| f(a, now, h));
        match &result {
            Ok(_) => assert!(t.open, "{name} of a handle not open"),
            Err(e) => {
                assert!(!t.open, "{name} of an open handle refused: {e:?}");
                assert_eq!(*e, AgentError::UnknownHandle);
            }
        }
        Some((h, t, result))
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Advance { ms } => self.advance(moved(self.now, ms)),
            Op::Jump { at } => self.advance(Instant::from_millis(at)),
            Op::Skew { ms } => self.now = moved(self.now, ms),
            Op::Initiate { peer, flags } => self.initiate(peer, flags),
            Op::Deliver { pick, flags, mutation } => {
                if let Some(f) = self.in_flight.take(pick, flags & 1 != 0) {
                    self.deliver(&f, flags, &mutation);
                }
            }
            Op::Drop { pick } => self.in_flight.lose(pick),
            Op::Flush => {
                // What the deliveries cause is delivered too, up to a bound.
                for _ in 0..64 {
                    let Some(f) = self.in_flight.pop_oldest() else { break };
                    self.deliver(&f, 0, &Mutation::None);
                }
            }
            Op::PeerTimeout => self.peer_timeout(),
            Op::Forge { kind, from, a, counter, bytes } => {
                self.forge(kind, from, a, counter, &bytes);
            }
            Op::Send { session, mode, counter, message } => {
                self.send(session, mode, counter, &message);
            }
            Op::InviteContact { contact, targets, request, options } => {
                let Some(c) = Self::pick(&self.contacts, contact) else { return };
                let targets = targets
                    .iter()
                    .map(|&(e, a)| Target {
                        endpoint: EndpointId(u32::from(e % 4)),
                        address: addr(a),
                    })
                    .collect();
                self.invite(Some((c, targets)), 0, request, options);
            }
            Op::InviteEndpoint { to, request, options } => self.invite(None, to, request, options),
            Op::Response { handle } => {
                let r = self.handle_command(handle, "response", |a, _, h| status_view(a, h));
                if let Some((_, t, Ok(s))) = r {
                    match (s, t.responded) {
                        (StatusView::Pending(ringing), None) => {
                            assert_eq!(ringing, t.ringing, "ringing, unreported");
                        }
                        (StatusView::Answered(o, ..), Some(r)) => {
                            assert_eq!(o, r, "another outcome")
                        }
                        (s, r) => panic!("response() is {s:?}, reported {r:?}"),
                    }
                }
            }
            Op::Cancel { handle } => {
                let r = self.handle_command(handle, "cancel", |a, now, h| a.cancel(now, h));
                if let Some((h, t, Ok(effect))) = r {
                    if effect == CancelEffect::NoEffect {
                        assert!(t.responded.is_some(), "a cancel of no effect before the outcome");
                    } else {
                        self.clocked();
                        assert!(t.responded.is_none(), "{effect:?} after the outcome");
                        self.poll_events();
                        assert_eq!(
                            self.handle_track[&h].responded,
                            Some(Outcome::Cancelled(CancelReason::ByUser)),
                            "cancelled ({effect:?}), not reported"
                        );
                    }
                }
            }
            Op::Close { handle } => {
                let r = self.handle_command(handle, "close", |a, now, h| a.close(now, h));
                if let Some((h, _, Ok(()))) = r {
                    self.clocked();
                    self.handle_track.get_mut(&h).expect("tracked").open = false;
                    assert_eq!(self.agent.response(h).err(), Some(AgentError::UnknownHandle));
                }
            }
            Op::Respond { incoming, answer, reason } => {
                let Some(id) = Self::pick(&self.incoming, incoming) else { return };
                let t = self.incoming_track.get(&id).cloned();
                let reason = String::from_utf8_lossy(&reason);
                let result = self.command("respond", Some(id), |a, now| {
                    a.respond(now, id, answer.answer(), &reason)
                });
                if result.is_ok() {
                    self.clocked();
                    let t = t.expect("answered an invitation never presented");
                    assert_eq!(t.ended, None, "answered an ended invitation");
                    if answer == AnswerSpec::Accept {
                        self.accepts += 1;
                    }
                }
            }
            Op::LaunchInfo { incoming, view } => {
                let Some(id) = Self::pick(&self.incoming, incoming) else { return };
                let t = self.incoming_track.get(&id).cloned();
                if view & 1 != 0 {
                    let _ = self.command("incoming", None, |a, _| a.incoming(id).map(|_| ()));
                    return;
                }
                let result =
                    self.command("launch_info", None, |a, _| a.launch_info(id).map(|_| ()));
                let readable = t.is_some_and(|t| t.ended == Some(Outcome::Accepted) && !t.released);
                assert_eq!(result.is_ok(), readable, "launch_info is {result:?}");
            }
            Op::Release { incoming } => {
                let Some(id) = Self::pick(&self.incoming, incoming) else { return };
                let t = self.incoming_track.get(&id).cloned();
                let result = self.command("release", None, |a, _| a.release(id));
                let readable = t.is_some_and(|t| t.ended == Some(Outcome::Accepted) && !t.released);
                assert_eq!(result.is_ok(), readable, "release is {result:?}");
                if result.is_ok() {
                    self.incoming_track.get_mut(&id).expect("tracked").released = true;
                }
            }
            Op::AddContact { card: c, trusted } => {
                let trust = if trusted & 1 != 0 { Trust::Trusted } else { Trust::Known };
                let result =
                    self.command("add_contact", None, |a, _| a.add_contact(card(c), trust));
                if let Ok(id) = result {
                    assert!(!self.contacts.contains(&id), "a contact id issued twice");
                    self.contacts.push(id);
                }
            }
            Op::UpdateContact { contact, flags } => {
                let Some(id) = Self::pick(&self.contacts, contact) else { return };
                let n = (flags >> 5) & 7;
                let list: Vec<SocketAddr> = (0..n.saturating_sub(1)).map(addr).collect();
                let mut update = ContactUpdate::default();
                if let n @ 1..=4 = flags & 7 {
                    update = update.display_name(name(n - 1));
                }
                match (flags >> 3) & 3 {
                    1 => update = update.trust(Trust::Trusted),
                    2 => update = update.trust(Trust::Known),
                    _ => {}
                }
                if (1..=6).contains(&n) {
                    update = update.addresses(&list);
                }
                let _ = self.command("update_contact", None, |a, _| a.update_contact(id, update));
            }
            Op::RemoveContact { contact } => {
                let Some(id) = Self::pick(&self.contacts, contact) else { return };
                if self.command("remove_contact", None, |a, now| a.remove_contact(now, id)).is_ok()
                {
                    self.clocked();
                }
            }
            Op::RevokeEndpoint { contact, endpoint } => {
                let Some(id) = Self::pick(&self.contacts, contact) else { return };
                let e = EndpointId(u32::from(endpoint % 4));
                let _ = self.command("revoke_endpoint", None, |a, _| a.revoke_endpoint(id, e));
            }
            Op::RefreshContact { contact, card: c } => {
                let Some(id) = Self::pick(&self.contacts, contact) else { return };
                let _ =
                    self.command("refresh_contact", None, |a, _| a.refresh_contact(id, card(c)));
            }
            Op::Register { app: i, name: n, policy } => {
                let policy = match policy % 4 {
                    0 => None,
                    p => Some(policy_of(p - 1)),
                };
                let _ = self.command("register_application", None, |a, _| {
                    a.register_application(app(i), name(n), policy)
                });
            }
            Op::Unregister { app: i } => {
                let _ = self.command("unregister_application", None, |a, _| {
                    a.unregister_application(app(i))
                });
            }
            Op::SetPolicy { policy } => {
                let _ = self.command("set_policy", None, |a, _| {
                    a.set_policy(policy_of(policy));
                    Ok(())
                });
            }
        }
        self.drain();
        self.poll_events();
        self.check_capacities();
    }

    fn expected_rest(&self) -> (usize, usize) {
        let launches = self
            .incoming_track
            .values()
            .filter(|t| t.ended == Some(Outcome::Accepted) && !t.released)
            .count();
        let open = self.handle_track.values().filter(|t| t.open).count();
        (launches, open)
    }

    /// The network goes silent: time runs on, a day at a time, until the
    /// agent is at rest.
    fn settle(&mut self) {
        self.in_flight.clear();
        self.now = self.now.max(self.latest);
        for _ in 0..SETTLE_STEPS {
            let a = &self.agent;
            if (a.invitations_in_use(), a.handles_in_use()) == self.expected_rest()
                && a.poll_timeout().is_none()
            {
                break;
            }
            self.advance(self.now + SETTLE_STEP);
            self.check_capacities();
        }
        let (launches, open) = self.expected_rest();
        let a = &self.agent;
        assert_eq!(a.invitations_in_use(), launches, "slots in use once silent: {a:?}");
        assert_eq!(a.handles_in_use(), open, "handles once silent: {a:?}");
        assert_eq!(a.poll_timeout(), None, "a deadline once silent");
        for (h, t) in &self.handle_track {
            if t.open {
                assert!(t.responded.is_some(), "{h:?} never answered");
            }
        }
        for (id, t) in &self.incoming_track {
            assert!(t.ended.is_some(), "{id:?} presented, never ended");
        }
    }
}

/// The target's body: turns transparent cryptography on (this process is
/// a fuzz target: nothing else runs in it), then runs the input.
pub fn run(data: &[u8]) {
    let _ = run_report(data);
}

/// The target's body, reporting what happened.
pub fn run_report(data: &[u8]) -> Report {
    peercollab_core::fuzzing::set_transparent_crypto(true);
    let (config, ops) = decode(data);
    let mut w = World::new(config);
    w.poll_events();
    for op in ops {
        w.apply(op);
    }
    w.settle();
    w.report.stats = w.agent.stats();
    w.report
}

// ---------------------------------------------------------------------------
// Seeds.

fn count(r: &Report, f: impl Fn(&Event) -> bool) -> usize {
    r.events.iter().filter(|e| f(e)).count()
}

/// The committed seeds, by name, each run and checked to reach what it is
/// for (the seed generator writes them to `corpus/agent_ops/`).
#[must_use]
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use MessageSpec as M;
    let home = 7 << 2;
    let send = |message| Op::Send { session: 0, mode: 0, counter: 0, message };
    let invite = |request, which| M::Invite { id: 0xFF, request, remaining_ms: 60_000, which };
    let final_ = |code| M::Final { id: 0, code, retry_ms: 0, reason: b"because".to_vec() };
    let mut seeds = Vec::new();
    // Alice (trusted) invites the agent over IK; the user accepts; Alice acks.
    let incoming_accepted = vec![
        Op::Initiate { peer: ALICE, flags: home },
        Op::Flush,
        send(invite(0, 0)),
        Op::Respond { incoming: 0, answer: AnswerSpec::Accept, reason: Vec::new() },
        send(M::Ack { id: 0, code: 0 }),
        Op::LaunchInfo { incoming: 0, view: 0 },
        Op::Release { incoming: 0 },
    ];
    seeds.push(("incoming_accepted", Config::default(), incoming_accepted, "incoming accepted"));
    // Mallory (a stranger) invites over XX with two fragments; the user declines.
    let incoming_declined = vec![
        Op::Initiate { peer: MALLORY, flags: 1 | home },
        Op::Flush,
        send(invite(2, 0)),
        Op::Respond { incoming: 0, answer: AnswerSpec::Decline, reason: b"not now".to_vec() },
        send(M::Ack { id: 0, code: 1 }),
    ];
    seeds.push(("incoming_declined", Config(4), incoming_declined, "incoming declined"));
    // The agent invites Alice; she rings, then accepts.
    let outgoing_accepted = vec![
        Op::InviteContact { contact: 0, targets: vec![(0, 0)], request: 0, options: 0 },
        Op::Flush,
        send(M::Ringing { id: 0 }),
        send(final_(0)),
        Op::Response { handle: 0 },
        Op::Close { handle: 0 },
    ];
    seeds.push(("outgoing_accepted", Config::default(), outgoing_accepted, "outgoing accepted"));
    // The agent invites Bob's other endpoint over XX; it rings; the user
    // cancels; the Cancel crosses a Busy.
    let outgoing_cancelled = vec![
        Op::InviteEndpoint { to: 1, request: 1, options: 0x20 },
        Op::Flush,
        send(M::Ringing { id: 0 }),
        Op::Cancel { handle: 0 },
        send(M::Final { id: 0, code: 2, retry_ms: 5_000, reason: Vec::new() }),
        Op::Flush,
        Op::Advance { ms: 60_000 },
        Op::Cancel { handle: 0 },
    ];
    seeds.push(("outgoing_cancelled", Config::default(), outgoing_cancelled, "cancelled"));
    // Forged frames of every kind, replays and time tricks around an
    // incoming invitation.
    let mut forged = vec![Op::Initiate { peer: ALICE, flags: 2 | home }, Op::Flush];
    for kind in 0..6 {
        forged.push(Op::Forge { kind, from: 2, a: 0, counter: 7, bytes: vec![0x42; 40] });
    }
    forged.extend([
        send(invite(1, 0)),
        Op::Send { session: 0, mode: 1, counter: 0, message: M::Ringing { id: 0 } },
        Op::Send { session: 0, mode: 2, counter: 3, message: M::Sack { id: 0, received: 1 } },
        Op::Forge { kind: 0, from: 4, a: 1, counter: 0, bytes: vec![0; 300] },
        Op::Skew { ms: -100_000 },
        Op::Respond { incoming: 0, answer: AnswerSpec::Busy(1_000), reason: Vec::new() },
        Op::Jump { at: u64::MAX },
        Op::Advance { ms: -5 },
    ]);
    seeds.push(("forged", Config::default(), forged, "forged"));
    // Every command refused once, then valid ones.
    let commands = vec![
        Op::AddContact { card: 1, trusted: 1 },
        Op::AddContact { card: 0, trusted: 0 },
        Op::AddContact { card: 4, trusted: 0 },
        Op::UpdateContact { contact: 0, flags: 2 },
        Op::UpdateContact { contact: 0, flags: 1 | 1 << 3 | 3 << 5 },
        Op::RevokeEndpoint { contact: 0, endpoint: 3 },
        Op::RefreshContact { contact: 0, card: 2 },
        Op::InviteContact { contact: 0, targets: Vec::new(), request: 0, options: 0 },
        Op::InviteContact { contact: 0, targets: vec![(0, 0), (0, 3)], request: 0, options: 0 },
        Op::InviteEndpoint { to: 2, request: 4, options: 0 },
        Op::InviteEndpoint { to: 2, request: 0, options: 4 },
        Op::Register { app: 2, name: 1, policy: 0 },
        Op::Register { app: 2, name: 0, policy: 3 },
        Op::Unregister { app: 5 },
        Op::SetPolicy { policy: 1 },
        Op::InviteEndpoint { to: 2, request: 2, options: 8 },
        Op::Response { handle: 0 },
        Op::RemoveContact { contact: 1 },
        Op::RemoveContact { contact: 1 },
        Op::Flush,
        Op::PeerTimeout,
        Op::Advance { ms: 40_000 },
    ];
    seeds.push(("commands", Config(2 | 4 | 1 << 5), commands, "commands"));
    seeds
        .into_iter()
        .map(|(name, config, ops, what)| {
            let bytes = encode(config, &ops);
            assert_eq!(decode(&bytes), (config, ops), "{name} decodes back");
            let r = run_report(&bytes);
            let ok = match what {
                "incoming accepted" => {
                    count(&r, |e| matches!(e, Event::Invited(_))) == 1
                        && count(&r, |e| {
                            matches!(e, Event::IncomingEnded { outcome: Outcome::Accepted, .. })
                        }) == 1
                }
                "incoming declined" => {
                    count(&r, |e| {
                        matches!(e, Event::IncomingEnded { outcome: Outcome::Declined, .. })
                    }) == 1
                }
                "outgoing accepted" => {
                    count(&r, |e| matches!(e, Event::Ringing(_))) == 1
                        && count(&r, |e| {
                            matches!(e, Event::Responded { outcome: Outcome::Accepted, .. })
                        }) == 1
                }
                "cancelled" => {
                    count(&r, |e| matches!(e, Event::Ringing(_))) == 1
                        && count(&r, |e| {
                            matches!(e, Event::Responded { outcome: Outcome::Cancelled(_), .. })
                        }) == 1
                }
                "forged" => {
                    r.drops.len() >= 6 && count(&r, |e| matches!(e, Event::Invited(_))) == 1
                }
                _ => r.commands.iter().filter(|c| c.1.is_err()).count() >= 8,
            };
            assert!(ok, "seed {name} does not reach {what}: {r:#?}");
            (name, bytes)
        })
        .collect()
}

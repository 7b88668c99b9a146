//! `agent_network`: three [`Agent`]s with small tables on one network,
//! driven by an arbitrary schedule: what each sends when, what the network
//! loses, duplicates, reorders, corrupts, reflects, re-addresses or invents,
//! how time moves, and every command their users can give, with valid and
//! stale arguments.
//!
//! # Cast (fixed, built once)
//! - **Alice** (agent 0): one endpoint, at `10.0.0.1:7000` and at
//!   `[2001:db8::1]:9000`.
//! - **Bob** (one identity, two agents): endpoint 0 (agent 1, at
//!   `10.0.0.2:7000` and `[2001:db8::2]:9000`) and endpoint 1 (agent 2, at
//!   `10.0.0.3:7000` and `[2001:db8::3]:9000`). Endpoint 1 runs certificate
//!   serial 2; Bob's card names serial 1 of it (same static key), so a
//!   contact pinning the card learns the newer one in-band
//!   (`Event::ContactUpdated`). The card also names endpoint 2, which no
//!   agent runs (its address, `192.0.2.99:7000`, reaches nobody).
//!   A newer card of Bob names endpoint 1 at serial 2.
//! - **Carol**, **Dave**, **Eve**, **Frank**: cards of identities no agent
//!   runs.
//! - Every agent is an `Agent<4, 4, 4, 2, 8>` (4 contacts, 4 applications,
//!   4 invitation slots and handles, 2 body buffers, 8 remembered ids).
//!
//! # Input
//! The first byte is the [`Config`]: for each agent, who its contact is
//! (Alice's is Bob, the Bobs' is Alice): nobody (a stranger), known,
//! trusted, or trusted with Carol and Dave known besides (a fuller table);
//! whether the application [`APP`] is registered at every agent; whether
//! every agent's global policy is `TrustedOnly` (else `Anyone`).
//!
//! The rest is split with [`arbitrary::Unstructured`] (through the shared
//! readers of [`crate::framing`] and [`crate::schedule`], which
//! `invitation_machine` shares) into at most [`MAX_OPS`] operations
//! ([`Op`]), until it runs out. Integers are little endian; [`encode`] is
//! the inverse of [`decode`], which the seed generator relies on. Agents,
//! addresses ([`address`]), requests ([`REQUESTS`]), cards, applications
//! and expiries are indices into fixed tables (modulo their length);
//! handles, incoming ids and contact ids are picks (modulo their count)
//! among every id this agent was ever given, then every id the others
//! were given (so stale and foreign ids too). Operations:
//! - [`Op::Advance`] / [`Op::Jump`]: time moves (by a signed amount, or to
//!   an absolute instant: also backwards, also to `Instant::MAX`), then every
//!   agent gets `handle_timeout`;
//! - [`Op::Skew`]: time moves by a signed amount but the timers are late:
//!   nobody gets `handle_timeout` until the next time step, so commands and
//!   datagrams may come past a deadline first;
//! - [`Op::Transmit`]: an agent's `poll_transmit` is drained into the
//!   in-flight list ([`InFlight`]: at most
//!   [`MAX_IN_FLIGHT`](schedule::MAX_IN_FLIGHT); the oldest is lost first),
//!   after what it sent before its last commands (see below);
//! - [`Op::Deliver`]: an in-flight datagram, chosen by position, goes to
//!   whoever listens at its destination (or back to its sender), from the
//!   sender's address, its other address (roaming) or an address nobody
//!   listens at, as sent, with a byte flipped or truncated; it stays in
//!   flight (a duplicate) or leaves it; [`Op::Drop`] loses one,
//!   [`Op::Flush`] delivers them all, oldest first;
//! - [`Op::Inject`]: arbitrary bytes, from any address, to an agent;
//! - the commands: [`Op::InviteContact`] (zero to five targets: an endpoint
//!   0 to 3 at any address, so also unknown, duplicate and misaddressed
//!   ones), [`Op::InviteEndpoint`] (with or without an expected identity),
//!   both with any request (also a message or data too long), expiry (also
//!   too long) and handle mode (`Keep` or `Discard`); [`Op::Response`],
//!   [`Op::Cancel`], [`Op::Close`]; [`Op::Respond`] (Accept, Decline, Busy,
//!   Busy too long; any reason text), [`Op::LaunchInfo`] (or `incoming`),
//!   [`Op::Release`]; [`Op::AddContact`] (any card: also one's own, one
//!   already added, a sixth identity), [`Op::UpdateContact`] (names empty,
//!   too long or with a bidirectional override; five addresses),
//!   [`Op::RefreshContact`] (any card), [`Op::RemoveContact`],
//!   [`Op::RevokeEndpoint`]; [`Op::Register`] (the
//!   same names, any policy), [`Op::Unregister`], [`Op::SetPolicy`].
//!
//! Byte layout: an operation is its code byte (modulo 24) and then, in this
//! order (`a` an agent byte, modulo 3; `addr` an address byte, modulo 7;
//! `pick` a raw byte; a text is a length byte and that many bytes):
//! - 0 Advance: `i32` ms; 1 Jump: `u64` ms; 2 Transmit: `a`;
//! - 3 Deliver: `pick`, flags (bit 0 keep, bit 1 reflect, bits 2-3 the
//!   source: 1 away, 2 nowhere, else the sender), mutation (0 none; 1 flip:
//!   `u16` position, `u8` mask; 2 truncate: `u16` length); 4 Drop: `pick`;
//!   5 Flush; 6 Inject: `a`, `addr`, `u16` length (at most 1500), bytes;
//! - 7 InviteContact: `a`, contact `pick`, target count (modulo 6), per
//!   target endpoint (modulo 4) and `addr`, request (modulo 6), options
//!   (bits 0-2 expiry modulo 5, bit 3 `Discard`, bits 4-5 expected identity:
//!   none, Alice, Bob, Carol); 8 InviteEndpoint: `a`, `addr`, request,
//!   options;
//! - 9 Response, 10 Cancel, 11 Close: `a`, handle `pick`;
//! - 12 Respond: `a`, incoming `pick`, answer (0 accept, 1 decline, 2 busy
//!   and a `u32` wait in ms, 3 busy too long), reason text; 13 LaunchInfo:
//!   `a`, incoming `pick`, bit 0 `incoming()` instead; 14 Release: `a`,
//!   incoming `pick`;
//! - 15 AddContact: `a`, card (modulo 7), bit 0 trusted; 16 UpdateContact:
//!   `a`, contact `pick`, flags (bits 0-2 name: 1 good, 2 empty, 3 too long,
//!   4 bidirectional, else unchanged; bits 3-4 trust: 1 trusted, 2 known,
//!   else unchanged; bits 5-7: 1 to 6 the first 0 to 5 addresses of the
//!   table, else unchanged); 17 RemoveContact: `a`, contact `pick`;
//!   18 RevokeEndpoint: `a`, contact `pick`, endpoint (modulo 4);
//! - 19 Register: `a`, application (modulo 6), name (modulo 4), policy (0
//!   none, 1 Anyone, 2 TrustedOnly, 3 Nobody); 20 Unregister: `a`,
//!   application; 21 SetPolicy: `a`, policy (modulo 3); 22 Skew: `i32` ms;
//!   23 RefreshContact: `a`, contact `pick`, card (modulo 7).
//!
//! Before a command the agent's pending datagrams are drained into its
//! outbox (they go in flight, in order, at its next [`Op::Transmit`]), so
//! that a refused command can be seen to send nothing. After every
//! operation, and after every single delivery, every agent's events are
//! polled. After the last operation the network goes silent: time runs on
//! (a day at a time, at most [`SETTLE_STEPS`] steps), every agent gets
//! `handle_timeout` and is drained, nothing is delivered.
//!
//! # Checked
//! - nothing panics;
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than
//!   the latest `now` the agent surely took in (inputs, outputs, accepted
//!   commands), unless that is `Instant::MAX`;
//! - every transmitted datagram parses with `Frame::parse` and is at most
//!   `MAX_DATAGRAM` (1200) bytes; one drain returns at most 128; it goes to
//!   an address the agent heard of (a target it was given, or the source of
//!   a datagram it took or answered with a cookie reply);
//! - a handle is new when issued; it gets at most one `Ringing`, before its
//!   `Responded`, at most one `Responded` and no event once closed; its
//!   `response()` is `Answered` with the reported outcome exactly once it was
//!   reported, `Pending` (ringing as reported) before, `UnknownHandle` once
//!   closed; an answered response names the invited contact's identity (or
//!   the expected one); a successful `cancel` before the outcome reports
//!   `Responded(Cancelled(ByUser))` at once, `NoEffect` only after it;
//!   `close` succeeds exactly on an open handle;
//! - an incoming id gets at most one `Invited` and at most one
//!   `IncomingEnded`, `Invited` first; a presented invitation comes from a
//!   cast identity, carries one of the offered requests, is to an
//!   application registered there whose policy (else the global one)
//!   accepts the inviter's class; `launch_info` is readable exactly from an
//!   `IncomingEnded(Accepted)` to its `release`; a successful `respond` is
//!   to a presented invitation that has not ended;
//! - no more handles end `Accepted`, nor incoming invitations, than users'
//!   `respond(Accept)` succeeded;
//! - a `ContactUpdated` names a present contact now pinning Bob's endpoint
//!   1 at serial 2, at most once per contact id;
//! - a successful invitation takes one slot per endpoint, one handle, and
//!   one body buffer per endpoint if it has a body;
//! - a command that returns `Err` changes nothing observable:
//!   `invitations_in_use`, `handles_in_use`, `buffers_free`, `poll_timeout`,
//!   `stats`, the policy, the applications, every contact (name, trust,
//!   addresses, certificates), every known handle's `response` and incoming
//!   id's `incoming` and `launch_info`; it makes no datagram and no event.
//!   The one exception (spec/agent.md §2.8): an answer refused with `Ended`
//!   at or after its invitation's expiry (a late timer, [`Op::Skew`])
//!   expires it: only its deadline and datagrams change, and it has no
//!   outcome or Expired;
//! - a datagram an agent drops (`Err(Dropped)`) changes nothing of the
//!   above but the counters and, an authentic one being a sign of life that
//!   restarts an inviter's silence clock, a deadline moved later; it raises
//!   no event;
//! - once the network is silent, every agent's `invitations_in_use` is the
//!   number of accepted launch informations not released and
//!   `handles_in_use` the number of open handles; it has no deadline; every
//!   open handle got its `Responded` and every presented invitation its
//!   `IncomingEnded`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use arbitrary::Unstructured;

use crate::framing::{
    put_i32, put_long, put_ops, put_short, put_u64, read_i32, read_long, read_ops, read_short,
    read_u8, read_u64,
};
use crate::schedule::{
    self, AnswerSpec, InFlight, MAX_INJECTED, Mutation, NETWORK_MUTATIONS, SETTLE_STEP,
    SETTLE_STEPS, moved, mutate, put_answer, put_mutation, read_answer, read_mutation,
};
use peercollab_core::agent::{
    Agent, AgentConfig, AgentError, AgentStats, Application, ContactId, ContactUpdate, Dropped,
    Event, Handle, IncomingId, InvitationRequest, InviteOptions, Policy, Sender, Status, Target,
    Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{
    Certificate, EndpointId, IdentityKey, IdentitySecret, LocalIdentity,
};
use peercollab_core::invite::{
    AppId, CancelEffect, CancelReason, DEFAULT_EXPIRY, InviteError, MAX_APP_DATA,
    MAX_EXPIRY_ON_WIRE, Outcome,
};
use peercollab_core::noise::KeyPair;
use peercollab_core::wire::{Frame, MAX_DATAGRAM};
use peercollab_core::{Duration, HashDrbg, Instant};

/// The agents' type: 4 contacts, 4 applications, 4 invitation slots, 2
/// body buffers, 8 remembered invitation ids.
pub type FuzzAgent = Agent<4, 4, 4, 2, 8>;

/// Most operations read from one input.
pub const MAX_OPS: usize = 256;
/// Most datagrams one drain of `poll_transmit` may return.
pub const MAX_DRAIN: usize = 128;
/// Agents.
pub const AGENTS: usize = 3;
/// Agent 0: Alice.
pub const ALICE: u8 = 0;
/// Agent 1: Bob's endpoint 0.
pub const BOB0: u8 = 1;
/// Agent 2: Bob's endpoint 1.
pub const BOB1: u8 = 2;

/// The application the config registers.
pub const APP: AppId = AppId(*b"fuzz-app-network");
/// Another application, registered only by a command.
pub const OTHER_APP: AppId = AppId(*b"fuzz-app-another");

fn v4(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
}

fn v6(last: u16, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)), port)
}

/// The address table: each agent's address, each agent's other address
/// (where it also listens: roaming), an address nobody listens at.
pub const ADDRESS_COUNT: usize = 7;

/// The addresses of [`ADDRESS_COUNT`]: `0..3` the agents' own, `3..6`
/// their other addresses, 6 nobody's.
#[must_use]
pub fn address(i: u8) -> SocketAddr {
    match usize::from(i) % ADDRESS_COUNT {
        i @ 0..3 => v4(i as u8 + 1, 7000),
        i @ 3..6 => v6(i as u16 - 2, 9000),
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)), 7000),
    }
}

/// Index of agent `a`'s own address.
#[must_use]
pub const fn home(a: u8) -> u8 {
    a
}

/// Index of agent `a`'s other address.
#[must_use]
pub const fn away(a: u8) -> u8 {
    a + 3
}

/// Index of the address nobody listens at.
pub const NOWHERE: u8 = 6;

fn listener(addr: SocketAddr) -> Option<usize> {
    (0..6u8).find(|&i| address(i) == addr).map(|i| usize::from(i % 3))
}

/// An invitation request of the request table.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpec {
    /// The application.
    pub app_id: AppId,
    /// The message.
    pub message: &'static str,
    /// The data.
    pub data: &'static [u8],
}

static DATA_1500: [u8; 1500] = {
    let mut d = [0u8; 1500];
    let mut i = 0;
    while i < 1500 {
        d[i] = (i % 251) as u8;
        i += 1;
    }
    d
};
static DATA_TOO_LARGE: [u8; MAX_APP_DATA + 1] = [0x5a; MAX_APP_DATA + 1];
/// 256 characters: one more than a message may hold.
const MESSAGE_TOO_LONG: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// The requests: 0 a short body, 1 an empty one (no buffer), 2 two
/// fragments, 3 to an application only a command registers, 4 a message too
/// long, 5 data too large (4 and 5 are refused).
pub static REQUESTS: [RequestSpec; 6] = [
    RequestSpec { app_id: APP, message: "join me ☕", data: b"port=4000" },
    RequestSpec { app_id: APP, message: "", data: b"" },
    RequestSpec { app_id: APP, message: "Review the draft with me?", data: &DATA_1500 },
    RequestSpec { app_id: OTHER_APP, message: "hi", data: b"" },
    RequestSpec { app_id: APP, message: MESSAGE_TOO_LONG, data: b"" },
    RequestSpec { app_id: APP, message: "too much", data: &DATA_TOO_LARGE },
];

const _: () = assert!(MESSAGE_TOO_LONG.len() == 256);

/// Requests a peer can present (the valid ones).
const VALID_REQUESTS: usize = 4;

/// Expiries: the default, 5 s, zero, the longest the wire carries, one
/// millisecond longer (refused).
pub const EXPIRIES: usize = 5;

fn expiry(i: u8) -> Duration {
    match i % EXPIRIES as u8 {
        0 => DEFAULT_EXPIRY,
        1 => Duration::from_secs(5),
        2 => Duration::ZERO,
        3 => MAX_EXPIRY_ON_WIRE,
        _ => MAX_EXPIRY_ON_WIRE.saturating_add(Duration::from_millis(1)),
    }
}

/// Applications: [`APP`], [`OTHER_APP`] and four more (the table holds 4).
pub const APPS: usize = 6;

fn app(i: u8) -> AppId {
    match i % APPS as u8 {
        0 => APP,
        1 => OTHER_APP,
        n => AppId([n; 16]),
    }
}

/// Cards: Alice's, Bob's, Carol's, Dave's, Eve's, Frank's, Bob's newer one.
pub const CARDS: usize = 7;
/// Card index of Alice.
pub const CARD_ALICE: u8 = 0;
/// Card index of Bob.
pub const CARD_BOB: u8 = 1;
/// Card index of Bob's newer card (endpoint 1 at serial 2).
pub const CARD_BOB_NEWER: u8 = 6;

// ---------------------------------------------------------------------------
// Config and operations.

/// Who an agent's contact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// No contact: the other is a stranger.
    Stranger,
    /// A contact, known.
    Known,
    /// A contact, trusted.
    Trusted,
    /// A trusted contact, and Carol and Dave known besides.
    Crowded,
}

impl Relation {
    fn of(b: u8) -> Self {
        [Relation::Stranger, Relation::Known, Relation::Trusted, Relation::Crowded]
            [usize::from(b & 3)]
    }
}

/// What the first input byte sets up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Each agent's relation to its counterpart (Alice's to Bob, the Bobs'
    /// to Alice).
    pub relations: [Relation; AGENTS],
    /// [`APP`] is registered at every agent (with no policy of its own).
    pub registered: bool,
    /// Every agent's global policy is `TrustedOnly` (else `Anyone`).
    pub trusted_only: bool,
}

impl Config {
    /// The config of a byte.
    #[must_use]
    pub fn from_byte(b: u8) -> Self {
        Config {
            relations: [Relation::of(b), Relation::of(b >> 2), Relation::of(b >> 4)],
            registered: b & 0x40 != 0,
            trusted_only: b & 0x80 != 0,
        }
    }

    /// The byte of a config.
    #[must_use]
    pub fn byte(self) -> u8 {
        self.relations[0] as u8
            | (self.relations[1] as u8) << 2
            | (self.relations[2] as u8) << 4
            | u8::from(self.registered) << 6
            | u8::from(self.trusted_only) << 7
    }
}

impl Default for Config {
    /// Everyone trusts the other, [`APP`] registered, policy `Anyone`.
    fn default() -> Self {
        Config { relations: [Relation::Trusted; AGENTS], registered: true, trusted_only: false }
    }
}

/// Where a delivered datagram seems to come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its sender's address (for a reflection: the address it was sent to).
    Sender,
    /// Its sender's other address: the sender roamed.
    Away,
    /// An address nobody listens at.
    Nowhere,
}

/// A name given to a contact or an application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameSpec {
    /// A good one.
    Good,
    /// Empty (refused).
    Empty,
    /// 65 bytes (refused).
    TooLong,
    /// With a bidirectional override (refused: names are shown to people).
    Bidi,
}

impl NameSpec {
    fn of(b: u8) -> Self {
        [NameSpec::Good, NameSpec::Empty, NameSpec::TooLong, NameSpec::Bidi][usize::from(b % 4)]
    }

    fn text(self) -> &'static str {
        match self {
            NameSpec::Good => "renamed ☕",
            NameSpec::Empty => "",
            NameSpec::Bidi => "invoice\u{202e}fdp.exe",
            NameSpec::TooLong => {
                "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
            }
        }
    }
}

/// Options of an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InviteSpec {
    /// Index of the expiry (0 to 4: default, 5 s, zero, longest, too long).
    pub expiry: u8,
    /// `HandleMode::Discard` (else `Keep`).
    pub discard: bool,
    /// Endpoint invitations: the expected identity: 0 none, 1 Alice, 2
    /// Bob, 3 Carol.
    pub expect: u8,
}

impl InviteSpec {
    /// Default expiry, a handle, no expected identity.
    pub const KEEP: InviteSpec = InviteSpec { expiry: 0, discard: false, expect: 0 };

    fn of(b: u8) -> Self {
        InviteSpec { expiry: (b & 7) % EXPIRIES as u8, discard: b & 8 != 0, expect: (b >> 4) & 3 }
    }

    fn byte(self) -> u8 {
        self.expiry | u8::from(self.discard) << 3 | self.expect << 4
    }

    fn options(self) -> InviteOptions {
        let mut o = InviteOptions::default().expires_in(expiry(self.expiry));
        if self.discard {
            o = o.discard_handle();
        }
        if let Some(id) = self.expected() {
            o = o.expect(id);
        }
        o
    }

    fn expected(self) -> Option<IdentityKey> {
        let cast = cast();
        match self.expect {
            1 => Some(cast.alice.identity()),
            2 => Some(cast.bob0.identity()),
            3 => Some(*cast.cards[2].identity()),
            _ => None,
        }
    }
}

/// One step of a run. Agents are `0..3` ([`ALICE`], [`BOB0`], [`BOB1`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Time moves by this many milliseconds (negative: backwards); every
    /// agent gets `handle_timeout`.
    Advance {
        /// Milliseconds.
        ms: i32,
    },
    /// Time is set to this instant (milliseconds); every agent gets
    /// `handle_timeout`.
    Jump {
        /// Milliseconds since the epoch.
        at: u64,
    },
    /// An agent's outbox and `poll_transmit` are drained into the in-flight
    /// list.
    Transmit {
        /// The sender.
        agent: u8,
    },
    /// An in-flight datagram is delivered.
    Deliver {
        /// Position in the in-flight list (modulo its length; 0 the oldest).
        pick: u8,
        /// It stays in flight (the delivery is a duplicate).
        keep: bool,
        /// It goes back to its sender.
        reflect: bool,
        /// Where it seems to come from.
        source: Source,
        /// What is done to it on the way.
        mutation: Mutation,
    },
    /// An in-flight datagram is lost.
    Drop {
        /// Position in the in-flight list (modulo its length).
        pick: u8,
    },
    /// Every in-flight datagram is delivered as sent, oldest first.
    Flush,
    /// Arbitrary bytes are delivered to an agent.
    Inject {
        /// The receiver.
        to: u8,
        /// The source address (index into [`address`]).
        from: u8,
        /// The datagram (at most 1500 bytes are read).
        bytes: Vec<u8>,
    },
    /// `invite_contact`.
    InviteContact {
        /// The inviter.
        agent: u8,
        /// The contact (a pick).
        contact: u8,
        /// Targets: endpoint id (0 to 3) and address index.
        targets: Vec<(u8, u8)>,
        /// Index into [`REQUESTS`].
        request: u8,
        /// The options.
        options: InviteSpec,
    },
    /// `invite_endpoint`.
    InviteEndpoint {
        /// The inviter.
        agent: u8,
        /// Address index.
        to: u8,
        /// Index into [`REQUESTS`].
        request: u8,
        /// The options.
        options: InviteSpec,
    },
    /// `response`.
    Response {
        /// The agent.
        agent: u8,
        /// The handle (a pick).
        handle: u8,
    },
    /// `cancel`.
    Cancel {
        /// The agent.
        agent: u8,
        /// The handle (a pick).
        handle: u8,
    },
    /// `close`.
    Close {
        /// The agent.
        agent: u8,
        /// The handle (a pick).
        handle: u8,
    },
    /// `respond`.
    Respond {
        /// The agent.
        agent: u8,
        /// The incoming id (a pick).
        incoming: u8,
        /// The answer.
        answer: AnswerSpec,
        /// The reason, as bytes (read as lossy UTF-8).
        reason: Vec<u8>,
    },
    /// `launch_info`, or `incoming`.
    LaunchInfo {
        /// The agent.
        agent: u8,
        /// The incoming id (a pick).
        incoming: u8,
        /// `incoming` instead.
        view: bool,
    },
    /// `release`.
    Release {
        /// The agent.
        agent: u8,
        /// The incoming id (a pick).
        incoming: u8,
    },
    /// `add_contact`.
    AddContact {
        /// The agent.
        agent: u8,
        /// Card index (Alice, Bob, Carol, Dave, Eve, Frank, Bob's newer).
        card: u8,
        /// Trusted (else known).
        trusted: bool,
    },
    /// `update_contact`.
    UpdateContact {
        /// The agent.
        agent: u8,
        /// The contact (a pick).
        contact: u8,
        /// A new name.
        name: Option<NameSpec>,
        /// A new trust.
        trust: Option<Trust>,
        /// New addresses: the first this many (0 to 5) of the table.
        addresses: Option<u8>,
    },
    /// `remove_contact`.
    RemoveContact {
        /// The agent.
        agent: u8,
        /// The contact (a pick).
        contact: u8,
    },
    /// `revoke_endpoint`.
    RevokeEndpoint {
        /// The agent.
        agent: u8,
        /// The contact (a pick).
        contact: u8,
        /// Endpoint id (0 to 3).
        endpoint: u8,
    },
    /// `register_application`.
    Register {
        /// The agent.
        agent: u8,
        /// Application index.
        app: u8,
        /// Its name.
        name: NameSpec,
        /// Its own policy.
        policy: Option<Policy>,
    },
    /// `unregister_application`.
    Unregister {
        /// The agent.
        agent: u8,
        /// Application index.
        app: u8,
    },
    /// `set_policy`.
    SetPolicy {
        /// The agent.
        agent: u8,
        /// The policy.
        policy: Policy,
    },
    /// `refresh_contact`.
    RefreshContact {
        /// The agent.
        agent: u8,
        /// The contact (a pick).
        contact: u8,
        /// Card index.
        card: u8,
    },
    /// Time moves by this many milliseconds, but the timers are late: no
    /// agent gets `handle_timeout` yet, so commands and datagrams may come
    /// first.
    Skew {
        /// Milliseconds.
        ms: i32,
    },
}

const OP_COUNT: u8 = 24;

// ---------------------------------------------------------------------------
// Input framing.

fn read_agent(u: &mut Unstructured<'_>) -> u8 {
    read_u8(u) % AGENTS as u8
}

fn policy_of(b: u8) -> Policy {
    Policy::ALL[usize::from(b % 3)]
}

fn policy_byte(p: Policy) -> u8 {
    match p {
        Policy::Anyone => 0,
        Policy::TrustedOnly => 1,
        Policy::Nobody => 2,
    }
}

fn option_policy_of(b: u8) -> Option<Policy> {
    match b % 4 {
        0 => None,
        n => Some(policy_of(n - 1)),
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
        2 => Op::Transmit { agent: read_agent(u) },
        3 => {
            let (pick, flags) = (read_u8(u), read_u8(u));
            Op::Deliver {
                pick,
                keep: flags & 1 != 0,
                reflect: flags & 2 != 0,
                source: match (flags >> 2) & 3 {
                    1 => Source::Away,
                    2 => Source::Nowhere,
                    _ => Source::Sender,
                },
                mutation: read_mutation(u, NETWORK_MUTATIONS),
            }
        }
        4 => Op::Drop { pick: read_u8(u) },
        5 => Op::Flush,
        6 => {
            let to = read_agent(u);
            let from = read_u8(u) % ADDRESS_COUNT as u8;
            Op::Inject { to, from, bytes: read_long(u, MAX_INJECTED) }
        }
        7 => {
            let agent = read_agent(u);
            let contact = read_u8(u);
            let n = read_u8(u) % 6;
            let targets =
                (0..n).map(|_| (read_u8(u) % 4, read_u8(u) % ADDRESS_COUNT as u8)).collect();
            let request = read_u8(u) % REQUESTS.len() as u8;
            Op::InviteContact {
                agent,
                contact,
                targets,
                request,
                options: InviteSpec::of(read_u8(u)),
            }
        }
        8 => Op::InviteEndpoint {
            agent: read_agent(u),
            to: read_u8(u) % ADDRESS_COUNT as u8,
            request: read_u8(u) % REQUESTS.len() as u8,
            options: InviteSpec::of(read_u8(u)),
        },
        9 => Op::Response { agent: read_agent(u), handle: read_u8(u) },
        10 => Op::Cancel { agent: read_agent(u), handle: read_u8(u) },
        11 => Op::Close { agent: read_agent(u), handle: read_u8(u) },
        12 => {
            let (agent, incoming) = (read_agent(u), read_u8(u));
            let answer = read_answer(u);
            Op::Respond { agent, incoming, answer, reason: read_short(u) }
        }
        13 => {
            Op::LaunchInfo { agent: read_agent(u), incoming: read_u8(u), view: read_u8(u) & 1 != 0 }
        }
        14 => Op::Release { agent: read_agent(u), incoming: read_u8(u) },
        15 => Op::AddContact {
            agent: read_agent(u),
            card: read_u8(u) % CARDS as u8,
            trusted: read_u8(u) & 1 != 0,
        },
        16 => {
            let (agent, contact, flags) = (read_agent(u), read_u8(u), read_u8(u));
            Op::UpdateContact {
                agent,
                contact,
                name: match flags & 7 {
                    n @ 1..=4 => Some(NameSpec::of(n - 1)),
                    _ => None,
                },
                trust: match (flags >> 3) & 3 {
                    1 => Some(Trust::Trusted),
                    2 => Some(Trust::Known),
                    _ => None,
                },
                addresses: match (flags >> 5) & 7 {
                    n @ 1..=6 => Some(n - 1),
                    _ => None,
                },
            }
        }
        17 => Op::RemoveContact { agent: read_agent(u), contact: read_u8(u) },
        18 => Op::RevokeEndpoint {
            agent: read_agent(u),
            contact: read_u8(u),
            endpoint: read_u8(u) % 4,
        },
        19 => Op::Register {
            agent: read_agent(u),
            app: read_u8(u) % APPS as u8,
            name: NameSpec::of(read_u8(u)),
            policy: option_policy_of(read_u8(u)),
        },
        20 => Op::Unregister { agent: read_agent(u), app: read_u8(u) % APPS as u8 },
        21 => Op::SetPolicy { agent: read_agent(u), policy: policy_of(read_u8(u)) },
        22 => Op::Skew { ms: read_i32(u) },
        _ => Op::RefreshContact {
            agent: read_agent(u),
            contact: read_u8(u),
            card: read_u8(u) % CARDS as u8,
        },
    });
    (config, ops)
}

fn name_byte(n: NameSpec) -> u8 {
    n as u8
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
        Op::Transmit { agent } => out.extend_from_slice(&[2, *agent]),
        Op::Deliver { pick, keep, reflect, source, mutation } => {
            let source = match source {
                Source::Sender => 0,
                Source::Away => 1,
                Source::Nowhere => 2,
            };
            let flags = u8::from(*keep) | u8::from(*reflect) << 1 | source << 2;
            out.extend_from_slice(&[3, *pick, flags]);
            put_mutation(out, mutation, NETWORK_MUTATIONS);
        }
        Op::Drop { pick } => out.extend_from_slice(&[4, *pick]),
        Op::Flush => out.push(5),
        Op::Inject { to, from, bytes } => {
            out.extend_from_slice(&[6, *to, *from]);
            put_long(out, bytes, MAX_INJECTED);
        }
        Op::InviteContact { agent, contact, targets, request, options } => {
            assert!(targets.len() <= 5, "at most five targets");
            out.extend_from_slice(&[7, *agent, *contact, targets.len() as u8]);
            for (e, a) in targets {
                out.extend_from_slice(&[*e, *a]);
            }
            out.extend_from_slice(&[*request, options.byte()]);
        }
        Op::InviteEndpoint { agent, to, request, options } => {
            out.extend_from_slice(&[8, *agent, *to, *request, options.byte()]);
        }
        Op::Response { agent, handle } => out.extend_from_slice(&[9, *agent, *handle]),
        Op::Cancel { agent, handle } => out.extend_from_slice(&[10, *agent, *handle]),
        Op::Close { agent, handle } => out.extend_from_slice(&[11, *agent, *handle]),
        Op::Respond { agent, incoming, answer, reason } => {
            out.extend_from_slice(&[12, *agent, *incoming]);
            put_answer(out, *answer);
            put_short(out, reason);
        }
        Op::LaunchInfo { agent, incoming, view } => {
            out.extend_from_slice(&[13, *agent, *incoming, u8::from(*view)]);
        }
        Op::Release { agent, incoming } => out.extend_from_slice(&[14, *agent, *incoming]),
        Op::AddContact { agent, card, trusted } => {
            out.extend_from_slice(&[15, *agent, *card, u8::from(*trusted)]);
        }
        Op::UpdateContact { agent, contact, name, trust, addresses } => {
            let name = name.map_or(0, |n| name_byte(n) + 1);
            let trust = match trust {
                None => 0,
                Some(Trust::Trusted) => 1,
                Some(Trust::Known) => 2,
            };
            let addresses = addresses.map_or(0, |n| {
                assert!(n <= 5, "at most five addresses");
                n + 1
            });
            out.extend_from_slice(&[16, *agent, *contact, name | trust << 3 | addresses << 5]);
        }
        Op::RemoveContact { agent, contact } => {
            out.extend_from_slice(&[17, *agent, *contact]);
        }
        Op::RevokeEndpoint { agent, contact, endpoint } => {
            out.extend_from_slice(&[18, *agent, *contact, *endpoint]);
        }
        Op::Register { agent, app, name, policy } => {
            let policy = policy.map_or(0, |p| policy_byte(p) + 1);
            out.extend_from_slice(&[19, *agent, *app, name_byte(*name), policy]);
        }
        Op::Unregister { agent, app } => out.extend_from_slice(&[20, *agent, *app]),
        Op::SetPolicy { agent, policy } => {
            out.extend_from_slice(&[21, *agent, policy_byte(*policy)]);
        }
        Op::Skew { ms } => {
            out.push(22);
            put_i32(out, *ms);
        }
        Op::RefreshContact { agent, contact, card } => {
            out.extend_from_slice(&[23, *agent, *contact, *card]);
        }
    });
    out
}

// ---------------------------------------------------------------------------
// The cast.

/// The fixed identities and cards.
pub struct Cast {
    /// Alice (agent 0).
    pub alice: LocalIdentity,
    /// Bob's endpoint 0 (agent 1).
    pub bob0: LocalIdentity,
    /// Bob's endpoint 1 (agent 2), certificate serial 2.
    pub bob1: LocalIdentity,
    /// Cards: Alice's, Bob's (endpoint 0, endpoint 1 at serial 1, endpoint
    /// 2 run by nobody), Carol's, Dave's, Eve's, Frank's, Bob's newer card
    /// (endpoint 1 at serial 2).
    pub cards: [ContactCard; CARDS],
}

/// The cast, built on first use.
pub fn cast() -> &'static Cast {
    static CAST: OnceLock<Cast> = OnceLock::new();
    CAST.get_or_init(|| {
        let mut rng = HashDrbg::from_u64(0xA6E7_0000);
        let alice = LocalIdentity::generate(&mut rng, EndpointId(0));
        let bob = IdentitySecret::generate(&mut rng);
        let bob0 = LocalIdentity::new(bob.clone(), KeyPair::generate(&mut rng), EndpointId(0), 1);
        let bob1_keys = KeyPair::generate(&mut rng);
        let bob1_old = Certificate::issue(&bob, bob1_keys.public(), EndpointId(1), 1);
        let bob1 = LocalIdentity::new(bob.clone(), bob1_keys, EndpointId(1), 2);
        let bob2 = Certificate::issue(&bob, KeyPair::generate(&mut rng).public(), EndpointId(2), 1);
        let alice_card =
            ContactCard::issue(alice.secret(), "Alice", &[*alice.certificate()], &[address(0)])
                .expect("Alice's card");
        let bob_card = |bob1| {
            ContactCard::issue(
                &bob,
                "Bob",
                &[*bob0.certificate(), bob1, bob2],
                &[address(1), address(2), address(NOWHERE)],
            )
            .expect("Bob's card")
        };
        let (bob_newer, bob_card) = (bob_card(*bob1.certificate()), bob_card(bob1_old));
        let mut other = |name: &str| {
            let who = LocalIdentity::generate(&mut rng, EndpointId(0));
            ContactCard::issue(who.secret(), name, &[*who.certificate()], &[address(NOWHERE)])
                .expect("a card")
        };
        let cards = [
            alice_card,
            bob_card,
            other("Carol"),
            other("Dave"),
            other("Eve"),
            other("Frank"),
            bob_newer,
        ];
        Cast { alice, bob0, bob1, cards }
    })
}

fn local(agent: usize) -> &'static LocalIdentity {
    let cast = cast();
    [&cast.alice, &cast.bob0, &cast.bob1][agent]
}

// ---------------------------------------------------------------------------
// The run.

/// What an outgoing handle saw.
#[derive(Clone, Debug, Default)]
struct HandleTrack {
    open: bool,
    ringing: bool,
    responded: Option<Outcome>,
    /// The identity that must answer, if known.
    expected: Option<IdentityKey>,
}

/// What an incoming id saw.
#[derive(Clone, Debug, Default)]
struct IncomingTrack {
    ended: Option<Outcome>,
    released: bool,
}

/// One agent and what the checks remember of it.
struct Node {
    agent: Box<FuzzAgent>,
    /// The latest `now` the agent surely took in.
    latest: Instant,
    /// The latest `now` the agent was handed, by any call (its clock is at
    /// most this).
    seen: Instant,
    /// Datagrams drained before a command, not yet in flight.
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    /// Every handle issued, in order.
    handles: Vec<Handle>,
    handle_track: BTreeMap<Handle, HandleTrack>,
    /// Every incoming id presented, in order.
    incoming: Vec<IncomingId>,
    incoming_track: BTreeMap<IncomingId, IncomingTrack>,
    /// Every contact id issued, in order.
    contacts: Vec<ContactId>,
    /// Contacts that reported `ContactUpdated`.
    updated: BTreeSet<ContactId>,
    /// Addresses the agent may send to: targets it was given, sources of
    /// datagrams it took.
    heard_of: BTreeSet<SocketAddr>,
}

/// A datagram in flight.
#[derive(Clone, Debug)]
struct Flight {
    from: usize,
    source: SocketAddr,
    destination: SocketAddr,
    bytes: Vec<u8>,
}

/// What a run did, for the seed generator to check its seeds against.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every event, with its agent, in order (the silent settling
    /// included).
    pub events: Vec<(u8, Event)>,
    /// Every command: agent, name, result (`Ok` or the error).
    pub commands: Vec<(u8, &'static str, Result<(), AgentError>)>,
    /// Results of `cancel`.
    pub cancels: Vec<Result<CancelEffect, AgentError>>,
    /// Each agent's counters at the end.
    pub stats: [AgentStats; AGENTS],
    /// Datagrams transmitted by each agent.
    pub transmitted: [usize; AGENTS],
    /// Datagrams delivered to each agent and dropped by it.
    pub dropped: [usize; AGENTS],
    /// Why: the agent and the reason, in order.
    pub drops: Vec<(u8, Dropped)>,
    /// Answers refused at or after their invitation's expiry, which
    /// expired it.
    pub late_answers: usize,
    /// Datagrams delivered to an address nobody listens at.
    pub lost: usize,
    /// `invitations_in_use` of each agent after the operations, before the
    /// silent settling.
    pub in_use_before_settle: [usize; AGENTS],
}

impl Report {
    /// The outcomes an agent's handles reported, in order.
    #[must_use]
    pub fn responded(&self, agent: u8) -> Vec<Outcome> {
        self.events
            .iter()
            .filter_map(|(a, e)| match e {
                Event::Responded { outcome, .. } if *a == agent => Some(*outcome),
                _ => None,
            })
            .collect()
    }

    /// The outcomes an agent's incoming invitations reported, in order.
    #[must_use]
    pub fn incoming_ended(&self, agent: u8) -> Vec<Outcome> {
        self.events
            .iter()
            .filter_map(|(a, e)| match e {
                Event::IncomingEnded { outcome, .. } if *a == agent => Some(*outcome),
                _ => None,
            })
            .collect()
    }

    /// How many events of an agent match `f`.
    pub fn count(&self, agent: u8, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(a, e)| *a == agent && f(e)).count()
    }

    /// The results of an agent's commands called `name`.
    #[must_use]
    pub fn results(&self, agent: u8, name: &str) -> Vec<Result<(), AgentError>> {
        self.commands.iter().filter(|c| c.0 == agent && c.1 == name).map(|c| c.2).collect()
    }
}

/// An owned `response()`.
#[derive(Debug, PartialEq, Eq)]
enum StatusView {
    Pending(bool),
    Answered(Outcome, Option<Box<Certificate>>, Option<ContactId>, String),
}

/// An owned `incoming()`, without the body.
type IncomingSummary =
    (Certificate, Option<ContactId>, SocketAddr, AppId, Instant, Option<Outcome>);

/// An owned contact.
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

fn observe(n: &Node) -> Observable {
    let a = &n.agent;
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
                let revoked = (0..4).map(|e| c.is_revoked(EndpointId(e))).collect();
                (
                    id,
                    *c.identity(),
                    c.display_name().to_owned(),
                    c.trust(),
                    c.addresses().to_vec(),
                    c.certificates().copied().collect(),
                    revoked,
                )
            })
            .collect(),
        responses: n.handles.iter().map(|&h| (h, status_view(a, h))).collect(),
        incoming: n
            .incoming
            .iter()
            .map(|&id| {
                let view = a
                    .incoming(id)
                    .map(|v| (*v.inviter, v.contact, v.address, v.app_id, v.expires_at, v.outcome));
                (id, view, a.launch_info(id).is_ok())
            })
            .collect(),
    }
}

fn status_view(a: &FuzzAgent, h: Handle) -> Result<StatusView, AgentError> {
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
    nodes: Vec<Node>,
    in_flight: InFlight<Flight>,
    /// `respond(Accept)` calls that succeeded.
    accepts: usize,
    report: Report,
}

impl World {
    fn new(config: Config) -> Self {
        let cast = cast();
        let now = schedule::start();
        let mut nodes = Vec::new();
        for (i, &relation) in config.relations.iter().enumerate() {
            let policy = if config.trusted_only { Policy::TrustedOnly } else { Policy::Anyone };
            let mut seed = [0u8; 32];
            seed[0] = 0xA6;
            seed[1] = i as u8;
            let mut agent =
                Box::new(FuzzAgent::new(local(i).clone(), AgentConfig::with_policy(policy), seed));
            if config.registered {
                agent.register_application(APP, "fuzz app", None).expect("register");
            }
            let counterpart = if i == usize::from(ALICE) { CARD_BOB } else { CARD_ALICE };
            let mut contacts = Vec::new();
            let mut add = |card: u8, trust| {
                let id = agent.add_contact(&cast.cards[usize::from(card)], trust).expect("add");
                contacts.push(id);
            };
            match relation {
                Relation::Stranger => {}
                Relation::Known => add(counterpart, Trust::Known),
                Relation::Trusted => add(counterpart, Trust::Trusted),
                Relation::Crowded => {
                    add(counterpart, Trust::Trusted);
                    add(2, Trust::Known);
                    add(3, Trust::Known);
                }
            }
            nodes.push(Node {
                agent,
                // A new agent has seen no time at all.
                latest: Instant::ZERO,
                seen: Instant::ZERO,
                outbox: Vec::new(),
                handles: Vec::new(),
                handle_track: BTreeMap::new(),
                incoming: Vec::new(),
                incoming_track: BTreeMap::new(),
                contacts,
                updated: BTreeSet::new(),
                heard_of: BTreeSet::new(),
            });
        }
        World { now, nodes, in_flight: InFlight::default(), accepts: 0, report: Report::default() }
    }

    // ----- picks -----------------------------------------------------------

    /// A pick among `agent`'s ids, then everybody else's.
    fn pick<T: Copy>(&self, agent: usize, pick: u8, ids: impl Fn(&Node) -> &[T]) -> Option<T> {
        let all: Vec<T> = std::iter::once(agent)
            .chain((0..AGENTS).filter(|&a| a != agent))
            .flat_map(|a| ids(&self.nodes[a]).iter().copied())
            .collect();
        (!all.is_empty()).then(|| all[usize::from(pick) % all.len()])
    }

    // ----- outputs ---------------------------------------------------------

    /// Drains an agent's `poll_transmit`, checking each datagram.
    fn drain(&mut self, agent: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let now = self.now;
        let n = &mut self.nodes[agent];
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut sent = Vec::new();
        while let Some(t) = n.agent.poll_transmit(now, &mut buf) {
            assert!(t.len <= MAX_DATAGRAM, "agent {agent} transmitted {} bytes", t.len);
            assert!(sent.len() < MAX_DRAIN, "agent {agent} transmits without end");
            if let Err(e) = Frame::parse(&buf[..t.len]) {
                panic!("agent {agent} transmitted a datagram that does not parse: {e:?}");
            }
            assert!(
                n.heard_of.contains(&t.destination),
                "agent {agent} sent to {}, an address it never heard of",
                t.destination
            );
            sent.push((t.destination, buf[..t.len].to_vec()));
        }
        n.latest = n.latest.max(now);
        n.seen = n.seen.max(now);
        self.report.transmitted[agent] += sent.len();
        sent
    }

    /// Polls an agent's events, checking each; returns how many there were.
    fn poll_events(&mut self, agent: usize) -> usize {
        let cast = cast();
        let mut count = 0;
        loop {
            let n = &mut self.nodes[agent];
            let Some(e) = n.agent.poll_event() else { break };
            count += 1;
            assert!(count <= 64, "agent {agent} reports without end");
            self.report.events.push((agent as u8, e));
            let a = &n.agent;
            let mut accepted = false;
            match e {
                Event::Ringing(h) => {
                    let t =
                        n.handle_track.get_mut(&h).expect("Ringing names a handle never issued");
                    assert!(t.open, "Ringing on a closed handle");
                    assert!(!t.ringing, "Ringing twice");
                    assert!(t.responded.is_none(), "Ringing after Responded");
                    t.ringing = true;
                    // Pending and ringing, or decided in the same step.
                    let s = status_view(a, h);
                    assert!(
                        matches!(s, Ok(StatusView::Pending(true) | StatusView::Answered(..))),
                        "Ringing, but response() is {s:?}"
                    );
                }
                Event::Responded { handle, outcome } => {
                    let t = n
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
                        accepted = true;
                    }
                    if let (Some(by), Some(expected)) = (r.answered_by, t.expected) {
                        assert_eq!(*by.identity(), expected, "answered by another identity");
                    }
                }
                Event::Invited(id) => {
                    assert!(!n.incoming_track.contains_key(&id), "Invited twice (or reused id)");
                    n.incoming.push(id);
                    n.incoming_track.insert(id, IncomingTrack::default());
                    match a.incoming(id) {
                        Ok(v) => {
                            let inviter = *v.inviter.identity();
                            assert!(
                                inviter == cast.alice.identity() || inviter == cast.bob0.identity(),
                                "presented from outside the cast"
                            );
                            assert!(
                                REQUESTS[..VALID_REQUESTS].iter().any(|r| r.app_id == v.app_id
                                    && r.message == v.message
                                    && r.data == v.data),
                                "presented a request nobody made"
                            );
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
                        n.incoming_track.get_mut(&incoming).expect("IncomingEnded before Invited");
                    assert_eq!(t.ended, None, "IncomingEnded twice");
                    t.ended = Some(outcome);
                    let launch = a.launch_info(incoming);
                    if outcome == Outcome::Accepted {
                        assert!(launch.is_ok(), "accepted, no launch info: {launch:?}");
                        accepted = true;
                    } else {
                        assert_eq!(launch.err(), Some(AgentError::NoLaunchInfo), "{outcome:?}");
                    }
                }
                Event::ContactUpdated { contact, endpoint } => {
                    assert!(n.updated.insert(contact), "ContactUpdated twice");
                    let c = a.contact(contact).expect("ContactUpdated names no contact");
                    assert_eq!(endpoint, EndpointId(1), "updated another endpoint");
                    assert!(
                        c.certificates().any(|c| c == cast.bob1.certificate()),
                        "updated, not pinned"
                    );
                }
                other => panic!("an event this target does not know: {other:?}"),
            }
            if accepted {
                self.report_accepted();
            }
        }
        count
    }

    /// Counts an `Accepted` and checks users accepted at least as often.
    fn report_accepted(&self) {
        let handles = self
            .report
            .count_all(|e| matches!(e, Event::Responded { outcome: Outcome::Accepted, .. }));
        let incoming = self
            .report
            .count_all(|e| matches!(e, Event::IncomingEnded { outcome: Outcome::Accepted, .. }));
        assert!(handles <= self.accepts, "{handles} handles accepted, {} users", self.accepts);
        assert!(incoming <= self.accepts, "{incoming} accepted, {} users", self.accepts);
    }

    fn poll_all(&mut self) {
        for a in 0..AGENTS {
            self.poll_events(a);
        }
    }

    // ----- inputs ----------------------------------------------------------

    fn advance(&mut self, now: Instant) {
        self.now = now;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.agent.handle_timeout(now);
            n.latest = n.latest.max(now);
            n.seen = n.seen.max(now);
            if let Some(t) = n.agent.poll_timeout() {
                assert!(
                    t > n.latest || n.latest == Instant::MAX,
                    "agent {i}: deadline {t:?} not after {:?}",
                    n.latest
                );
            }
        }
        self.poll_all();
    }

    fn deliver(&mut self, to: usize, from: SocketAddr, datagram: &[u8]) {
        let now = self.now;
        let before = observe(&self.nodes[to]);
        let n = &mut self.nodes[to];
        let result = n.agent.handle_datagram(now, from, datagram);
        n.latest = n.latest.max(now);
        n.seen = n.seen.max(now);
        // A cookie reply (an initiation dropped under load) goes to the
        // datagram's source too.
        if matches!(result, Ok(()) | Err(Dropped::CookieRequired)) {
            n.heard_of.insert(from);
        }
        if let Err(d) = result {
            self.report.dropped[to] += 1;
            self.report.drops.push((to as u8, d));
            let mut after = observe(&self.nodes[to]);
            // The one thing a dropped datagram may change: an authentic one
            // is a sign of life and restarts an inviter's silence clock, so
            // the deadline may move later (spec/agent.md §2.8).
            let later = match (before.timeout, after.timeout) {
                (Some(b), Some(a)) => a >= b,
                (b, a) => a == b,
            };
            assert!(later, "agent {to} dropped ({d:?}), the deadline moved: {before:?} {after:?}");
            after.timeout = before.timeout;
            assert_eq!(after, before, "agent {to} dropped ({d:?}) but changed");
            assert_eq!(self.poll_events(to), 0, "agent {to} dropped ({d:?}) and raised an event");
        }
        self.poll_all();
    }

    fn deliver_flight(&mut self, f: &Flight, reflect: bool, source: Source, m: &Mutation) {
        let (to, natural) = if reflect {
            (Some(f.from), f.destination)
        } else {
            (listener(f.destination), f.source)
        };
        let Some(to) = to else {
            self.report.lost += 1;
            return;
        };
        let from = match source {
            Source::Sender => natural,
            Source::Away => {
                let sender = if reflect { listener(f.destination) } else { Some(f.from) };
                sender.map_or(natural, |s| address(away(s as u8)))
            }
            Source::Nowhere => address(NOWHERE),
        };
        let bytes = mutate(f.bytes.clone(), m);
        self.deliver(to, from, &bytes);
    }

    fn transmit(&mut self, agent: usize) {
        let mut sent = std::mem::take(&mut self.nodes[agent].outbox);
        sent.extend(self.drain(agent));
        for (destination, bytes) in sent {
            self.in_flight.push(Flight {
                from: agent,
                source: address(home(agent as u8)),
                destination,
                bytes,
            });
        }
        self.poll_all();
    }

    // ----- commands ----------------------------------------------------------

    /// Runs a command on an agent: its pending datagrams go to its outbox
    /// first; if the command fails, it must change nothing.
    fn command<T>(
        &mut self,
        agent: usize,
        name: &'static str,
        f: impl FnOnce(&mut FuzzAgent, Instant) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        self.command_answering(agent, name, None, f)
    }

    /// [`command`](Self::command), for an answer to `answering`: refused
    /// with `Ended` at or after that invitation's expiry, it expires it (the
    /// one exception, spec/agent.md §2.8): its deadline and transmissions
    /// may change, and it may end Expired; nothing else may.
    fn command_answering<T>(
        &mut self,
        agent: usize,
        name: &'static str,
        answering: Option<IncomingId>,
        f: impl FnOnce(&mut FuzzAgent, Instant) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let now = self.now;
        let pending = self.drain(agent);
        self.nodes[agent].outbox.extend(pending);
        self.poll_events(agent);
        let before = observe(&self.nodes[agent]);
        let stats = self.nodes[agent].agent.stats();
        let result = f(&mut self.nodes[agent].agent, now);
        self.report.commands.push((agent as u8, name, result.as_ref().map(|_| ()).map_err(|e| *e)));
        let seen = self.nodes[agent].seen.max(now);
        self.nodes[agent].seen = seen;
        let late = |id: IncomingId, e: &AgentError| {
            *e == AgentError::Invitation(InviteError::Ended)
                && before.incoming.iter().any(|(i, v, _)| {
                    *i == id && matches!(v, Ok((.., expires_at, None)) if *expires_at <= seen)
                })
        };
        if let (Some(id), Err(e)) = (answering, &result)
            && late(id, e)
        {
            let n = &mut self.nodes[agent];
            let mut after = observe(n);
            assert_eq!(n.agent.stats(), stats, "{name} refused ({e:?}), counters changed");
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
            assert_eq!(after, before, "agent {agent}: a late {name} changed more than its expiry");
            self.report.late_answers += 1;
        } else if let Err(e) = &result {
            let n = &mut self.nodes[agent];
            let after = observe(n);
            assert_eq!(after, before, "agent {agent}: {name} refused ({e:?}) but changed");
            assert_eq!(n.agent.stats(), stats, "{name} refused ({e:?}), counters changed");
            let mut buf = [0u8; MAX_DATAGRAM];
            let sent = n.agent.poll_transmit(now, &mut buf);
            assert!(sent.is_none(), "{name} refused ({e:?}) and sent {sent:?}");
            assert_eq!(self.poll_events(agent), 0, "{name} refused ({e:?}) and raised an event");
        }
        result
    }

    /// Marks that an agent took `now` in.
    fn clocked(&mut self, agent: usize) {
        let n = &mut self.nodes[agent];
        n.latest = n.latest.max(self.now);
    }

    fn invited(&mut self, agent: usize, legs: usize, request: u8, before: (usize, usize, usize)) {
        let a = &self.nodes[agent].agent;
        let r = &REQUESTS[usize::from(request)];
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
    }

    fn new_handle(
        &mut self,
        agent: usize,
        handle: Option<Handle>,
        spec: InviteSpec,
        expected: Option<IdentityKey>,
    ) {
        assert_eq!(handle.is_none(), spec.discard, "a handle iff Keep");
        if let Some(h) = handle {
            let n = &mut self.nodes[agent];
            assert!(!n.handle_track.contains_key(&h), "a handle issued twice");
            n.handles.push(h);
            n.handle_track
                .insert(h, HandleTrack { open: true, expected, ..HandleTrack::default() });
        }
    }

    fn usage(&self, agent: usize) -> (usize, usize, usize) {
        let a = &self.nodes[agent].agent;
        (a.invitations_in_use(), a.handles_in_use(), a.buffers_free())
    }

    fn invite_contact(
        &mut self,
        agent: usize,
        contact: u8,
        targets: &[(u8, u8)],
        request: u8,
        spec: InviteSpec,
    ) {
        let contact = self.pick(agent, contact, |n| &n.contacts);
        let Some(contact) = contact else { return };
        let targets: Vec<Target> = targets
            .iter()
            .map(|&(e, a)| Target { endpoint: EndpointId(u32::from(e)), address: address(a) })
            .collect();
        let expected = self.nodes[agent].agent.contact(contact).ok().map(|c| *c.identity());
        let before = self.usage(agent);
        let r = REQUESTS[usize::from(request)];
        let req = InvitationRequest { app_id: r.app_id, message: r.message, data: r.data };
        let result = self.command(agent, "invite_contact", |a, now| {
            a.invite_contact(now, contact, &targets, &req, spec.options())
        });
        if let Ok(handle) = result {
            self.nodes[agent].heard_of.extend(targets.iter().map(|t| t.address));
            self.clocked(agent);
            self.invited(agent, targets.len(), request, before);
            self.new_handle(agent, handle, spec, expected);
        }
    }

    fn invite_endpoint(&mut self, agent: usize, to: u8, request: u8, spec: InviteSpec) {
        let before = self.usage(agent);
        let r = REQUESTS[usize::from(request)];
        let req = InvitationRequest { app_id: r.app_id, message: r.message, data: r.data };
        let result = self.command(agent, "invite_endpoint", |a, now| {
            a.invite_endpoint(now, address(to), &req, spec.options())
        });
        if let Ok(handle) = result {
            self.nodes[agent].heard_of.insert(address(to));
            self.clocked(agent);
            self.invited(agent, 1, request, before);
            self.new_handle(agent, handle, spec, spec.expected());
        }
    }

    fn track(&self, agent: usize, h: Handle) -> HandleTrack {
        self.nodes[agent].handle_track.get(&h).cloned().unwrap_or_default()
    }

    /// Runs a command on a picked handle (stale and foreign ones too): it
    /// succeeds exactly on a handle open at this agent, and is refused with
    /// `UnknownHandle` otherwise. Returns the handle, what it saw before,
    /// and the result; `None` if no handle was ever issued.
    fn handle_command<T>(
        &mut self,
        agent: usize,
        pick: u8,
        name: &'static str,
        f: impl FnOnce(&mut FuzzAgent, Instant, Handle) -> Result<T, AgentError>,
    ) -> Option<(Handle, HandleTrack, Result<T, AgentError>)> {
        let h = self.pick(agent, pick, |n| &n.handles)?;
        let t = self.track(agent, h);
        let result = self.command(agent, name, |a, now| f(a, now, h));
        match &result {
            Ok(_) => assert!(t.open, "{name} of a handle not open"),
            Err(e) => {
                assert!(!t.open, "{name} of an open handle refused: {e:?}");
                assert_eq!(*e, AgentError::UnknownHandle);
            }
        }
        Some((h, t, result))
    }

    fn response(&mut self, agent: usize, pick: u8) {
        let status = self.handle_command(agent, pick, "response", |a, _, h| status_view(a, h));
        let Some((_, t, Ok(s))) = status else { return };
        match (s, t.responded) {
            (StatusView::Pending(ringing), None) => {
                assert_eq!(ringing, t.ringing, "ringing, unreported")
            }
            (StatusView::Answered(o, ..), Some(r)) => assert_eq!(o, r, "another outcome"),
            (s, r) => panic!("response() is {s:?}, reported {r:?}"),
        }
    }

    fn cancel(&mut self, agent: usize, pick: u8) {
        let result = self.handle_command(agent, pick, "cancel", |a, now, h| a.cancel(now, h));
        let Some((h, t, result)) = result else { return };
        self.report.cancels.push(result);
        match result {
            Ok(CancelEffect::NoEffect) => {
                assert!(t.responded.is_some(), "a cancel of no effect before the outcome");
            }
            Ok(effect) => {
                self.clocked(agent);
                assert!(t.responded.is_none(), "{effect:?} after the outcome");
                self.poll_events(agent);
                let t = self.track(agent, h);
                assert_eq!(
                    t.responded,
                    Some(Outcome::Cancelled(CancelReason::ByUser)),
                    "cancelled ({effect:?}), not reported"
                );
            }
            Err(_) => {}
        }
    }

    fn close(&mut self, agent: usize, pick: u8) {
        let result = self.handle_command(agent, pick, "close", |a, now, h| a.close(now, h));
        let Some((h, _, Ok(()))) = result else { return };
        self.clocked(agent);
        self.nodes[agent].handle_track.get_mut(&h).expect("tracked").open = false;
        assert_eq!(
            self.nodes[agent].agent.response(h).err(),
            Some(AgentError::UnknownHandle),
            "a closed handle answers"
        );
    }

    fn incoming_track(&self, agent: usize, id: IncomingId) -> Option<IncomingTrack> {
        self.nodes[agent].incoming_track.get(&id).cloned()
    }

    fn respond(&mut self, agent: usize, pick: u8, answer: AnswerSpec, reason: &[u8]) {
        let Some(id) = self.pick(agent, pick, |n| &n.incoming) else { return };
        let t = self.incoming_track(agent, id);
        let reason = String::from_utf8_lossy(reason);
        let result = self.command_answering(agent, "respond", Some(id), |a, now| {
            a.respond(now, id, answer.answer(), &reason)
        });
        if result.is_ok() {
            self.clocked(agent);
            let t = t.expect("answered an invitation never presented");
            assert_eq!(t.ended, None, "answered an ended invitation");
            if answer == AnswerSpec::Accept {
                self.accepts += 1;
            }
        }
    }

    fn launch_info(&mut self, agent: usize, pick: u8, view: bool) {
        let Some(id) = self.pick(agent, pick, |n| &n.incoming) else { return };
        let t = self.incoming_track(agent, id);
        if view {
            let result = self.command(agent, "incoming", |a, _| a.incoming(id).map(|_| ()));
            if result.is_ok() {
                assert!(t.is_some(), "incoming() reads an invitation never presented");
            }
            return;
        }
        let result = self.command(agent, "launch_info", |a, _| a.launch_info(id).map(|_| ()));
        let readable = t.is_some_and(|t| t.ended == Some(Outcome::Accepted) && !t.released);
        assert_eq!(result.is_ok(), readable, "launch_info is {result:?}");
    }

    fn release(&mut self, agent: usize, pick: u8) {
        let Some(id) = self.pick(agent, pick, |n| &n.incoming) else { return };
        let t = self.incoming_track(agent, id);
        let result = self.command(agent, "release", |a, _| a.release(id));
        let readable = t.is_some_and(|t| t.ended == Some(Outcome::Accepted) && !t.released);
        assert_eq!(result.is_ok(), readable, "release is {result:?}");
        if result.is_ok() {
            self.nodes[agent].incoming_track.get_mut(&id).expect("tracked").released = true;
        }
    }

    fn apply(&mut self, op: Op) {
        let cast = cast();
        match op {
            Op::Advance { ms } => self.advance(moved(self.now, ms)),
            Op::Jump { at } => self.advance(Instant::from_millis(at)),
            Op::Skew { ms } => self.now = moved(self.now, ms),
            Op::Transmit { agent } => self.transmit(usize::from(agent)),
            Op::Deliver { pick, keep, reflect, source, mutation } => {
                let Some(f) = self.in_flight.take(pick, keep) else { return };
                self.deliver_flight(&f, reflect, source, &mutation);
            }
            Op::Drop { pick } => self.in_flight.lose(pick),
            Op::Flush => {
                while let Some(f) = self.in_flight.pop_oldest() {
                    self.deliver_flight(&f, false, Source::Sender, &Mutation::None);
                }
            }
            Op::Inject { to, from, bytes } => self.deliver(usize::from(to), address(from), &bytes),
            Op::InviteContact { agent, contact, targets, request, options } => {
                self.invite_contact(usize::from(agent), contact, &targets, request, options);
            }
            Op::InviteEndpoint { agent, to, request, options } => {
                self.invite_endpoint(usize::from(agent), to, request, options);
            }
            Op::Response { agent, handle } => self.response(usize::from(agent), handle),
            Op::Cancel { agent, handle } => self.cancel(usize::from(agent), handle),
            Op::Close { agent, handle } => self.close(usize::from(agent), handle),
            Op::Respond { agent, incoming, answer, reason } => {
                self.respond(usize::from(agent), incoming, answer, &reason);
            }
            Op::LaunchInfo { agent, incoming, view } => {
                self.launch_info(usize::from(agent), incoming, view);
            }
            Op::Release { agent, incoming } => self.release(usize::from(agent), incoming),
            Op::AddContact { agent, card, trusted } => {
                let agent = usize::from(agent);
                let card = &cast.cards[usize::from(card)];
                let trust = if trusted { Trust::Trusted } else { Trust::Known };
                let result = self.command(agent, "add_contact", |a, _| a.add_contact(card, trust));
                if let Ok(id) = result {
                    let n = &mut self.nodes[agent];
                    assert!(!n.contacts.contains(&id), "a contact id issued twice");
                    n.contacts.push(id);
                }
            }
            Op::UpdateContact { agent, contact, name, trust, addresses } => {
                let agent = usize::from(agent);
                let Some(id) = self.pick(agent, contact, |n| &n.contacts) else { return };
                let list: Vec<SocketAddr> = (0..addresses.unwrap_or(0)).map(address).collect();
                let mut update = ContactUpdate::default();
                if let Some(name) = name {
                    update = update.display_name(name.text());
                }
                if let Some(trust) = trust {
                    update = update.trust(trust);
                }
                if addresses.is_some() {
                    update = update.addresses(&list);
                }
                let _ = self.command(agent, "update_contact", |a, _| a.update_contact(id, update));
            }
            Op::RemoveContact { agent, contact } => {
                let agent = usize::from(agent);
                let Some(id) = self.pick(agent, contact, |n| &n.contacts) else { return };
                if self.command(agent, "remove_contact", |a, now| a.remove_contact(now, id)).is_ok()
                {
                    self.clocked(agent);
                }
            }
            Op::RefreshContact { agent, contact, card } => {
                let agent = usize::from(agent);
                let Some(id) = self.pick(agent, contact, |n| &n.contacts) else { return };
                let card = &cast.cards[usize::from(card)];
                let result =
                    self.command(agent, "refresh_contact", |a, _| a.refresh_contact(id, card));
                if let Ok(pinned) = result {
                    assert!(pinned <= card.certificates().len(), "pinned {pinned}");
                }
            }
            Op::RevokeEndpoint { agent, contact, endpoint } => {
                let agent = usize::from(agent);
                let Some(id) = self.pick(agent, contact, |n| &n.contacts) else { return };
                let e = EndpointId(u32::from(endpoint));
                let _ = self.command(agent, "revoke_endpoint", |a, _| a.revoke_endpoint(id, e));
            }
            Op::Register { agent, app: i, name, policy } => {
                let _ = self.command(usize::from(agent), "register_application", |a, _| {
                    a.register_application(app(i), name.text(), policy)
                });
            }
            Op::Unregister { agent, app: i } => {
                let _ = self.command(usize::from(agent), "unregister_application", |a, _| {
                    a.unregister_application(app(i))
                });
            }
            Op::SetPolicy { agent, policy } => {
                let _ = self.command(usize::from(agent), "set_policy", |a, _| {
                    a.set_policy(policy);
                    Ok(())
                });
            }
        }
        self.poll_all();
    }

    /// What every agent must come down to once the network is silent:
    /// `(invitations_in_use, handles_in_use)`.
    fn expected_rest(&self, agent: usize) -> (usize, usize) {
        let n = &self.nodes[agent];
        let launches = n
            .incoming_track
            .values()
            .filter(|t| t.ended == Some(Outcome::Accepted) && !t.released)
            .count();
        let open = n.handle_track.values().filter(|t| t.open).count();
        (launches, open)
    }

    fn at_rest(&self) -> bool {
        (0..AGENTS).all(|a| {
            let agent = &self.nodes[a].agent;
            (agent.invitations_in_use(), agent.handles_in_use()) == self.expected_rest(a)
                && agent.poll_timeout().is_none()
        })
    }

    /// The network goes silent: time runs on, a day at a time, until every
    /// agent is at rest.
    fn settle(&mut self) {
        self.in_flight.clear();
        for n in &mut self.nodes {
            n.outbox.clear();
        }
        // From the latest time any agent has seen: time may have gone back.
        self.now = self.nodes.iter().map(|n| n.latest).fold(self.now, Instant::max);
        for _ in 0..SETTLE_STEPS {
            if self.at_rest() {
                break;
            }
            self.advance(self.now + SETTLE_STEP);
            for a in 0..AGENTS {
                self.drain(a);
                self.poll_events(a);
            }
        }
        for a in 0..AGENTS {
            let n = &self.nodes[a];
            let agent = &n.agent;
            let (launches, open) = self.expected_rest(a);
            assert_eq!(
                agent.invitations_in_use(),
                launches,
                "agent {a}: slots in use once silent, {launches} launch infos kept: {agent:?}"
            );
            assert_eq!(agent.handles_in_use(), open, "agent {a}: handles once silent: {agent:?}");
            assert_eq!(agent.poll_timeout(), None, "agent {a}: a deadline once silent");
            for (h, t) in &n.handle_track {
                if t.open {
                    assert!(t.responded.is_some(), "agent {a}: {h:?} never answered");
                }
            }
            for (id, t) in &n.incoming_track {
                assert!(t.ended.is_some(), "agent {a}: {id:?} presented, never ended");
            }
        }
    }
}

impl Report {
    fn count_all(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
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
    w.poll_all();
    for op in ops {
        w.apply(op);
    }
    for a in 0..AGENTS {
        w.report.in_use_before_settle[a] = w.nodes[a].agent.invitations_in_use();
    }
    w.settle();
    for a in 0..AGENTS {
        w.report.stats[a] = w.nodes[a].agent.stats();
    }
    w.report
}

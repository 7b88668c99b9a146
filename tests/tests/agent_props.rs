//! Property tests of the agent (`core/src/agent`, `spec/agent.md`).
//!
//! 1. `any_commands_and_datagrams_never_panic`: random sequences of every
//!    command (valid, stale, foreign and malformed arguments), datagrams
//!    (random bytes, random frames with a valid header, real datagrams of
//!    both agents mutated or replayed, from any address) and
//!    `handle_timeout` at random times (backwards, far ahead,
//!    `Instant::MAX`), on an agent X — [`Small`] (every table tiny, so they
//!    fill) or [`TestAgent`] — next to a real partner agent P that invites
//!    it and answers its invitations. Nothing panics; after
//!    `handle_timeout` the next deadline is after X's clock (but at
//!    `Instant::MAX`); tables stay within their capacities; no event is
//!    reported twice, names a closed handle, or ends an invitation never
//!    presented; `Responded` agrees with `response()`.
//! 2. `refused_commands_change_nothing`: the same runs; whenever a command
//!    returns an error, everything the public getters show (contacts with
//!    names, trust, certificates, endpoints, addresses; applications;
//!    policy; slots, handles and buffers in use; the deadline; the
//!    counters; `response`, `incoming`, `launch_info` and `contact` of every
//!    id seen so far) is as it was, and no datagram or event became
//!    available. The one documented exception (spec/agent.md §2.8) is
//!    exempted: `respond` at or after the expiry returns `Invitation(Ended)`
//!    and the invitation expires at once. A dropped datagram changes nothing
//!    but the counters and, for an authentic one, a later deadline.
//! 3. `full_capacities_answer_with_an_error_or_busy`: full contact,
//!    application, slot and buffer tables give `ContactsFull`,
//!    `ApplicationsFull`, `InvitationsFull` and `Invitation(PoolFull)`; over
//!    the network, an invitee whose remembered-id table or buffer pool is
//!    full answers Busy (with the wait until an id is forgotten, or
//!    `POOL_BUSY_RETRY_AFTER`), one whose slots are all taken is silent
//!    (`Dropped::Full`, as specified).
//! 4. `every_invitation_has_exactly_one_outcome`: random networks of two to
//!    four agents (endpoints of up to three identities, with dead endpoints
//!    on the cards), random contacts, trust, policies and applications,
//!    random faults (loss up to 30 %, duplication, jitter), invitations to
//!    contacts (one to three endpoints) and endpoints (expecting anyone, the
//!    right or a wrong identity), user answers, cancels and closes at random
//!    times. Run until nothing is left to do: every open handle has exactly
//!    one `Responded` and `response()` agrees; a closed one is named by no
//!    event after its close; every `Invited` has exactly one
//!    `IncomingEnded`; an invitee's Accept implies its inviter's (answered
//!    by that endpoint); at most one endpoint accepts an invitation; an
//!    invitation expecting another identity is never presented; with no
//!    loss, a one-endpoint invitation ends the same on both sides; nothing
//!    leaks (handles, slots and buffers in use are exactly the open handles
//!    and kept launch information).
//!
//! The runners are seeded (ChaCha, fixed seed, no failure persistence), so
//! every run generates the same cases; failures shrink. Each property also
//! asserts that its runs reached what it is about (errors, drops, events,
//! outcomes). 96 + 96 + 16 + 160 cases take about 30 s of CPU in a debug
//! build (the four run in parallel). `AGENT_PROPS_CASES` and
//! `AGENT_PROPS_SEED` (a byte) override the case count and the seed, to
//! search further; `AGENT_PROPS_VERBOSE` prints what the runs reached.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock, PoisonError};

use peercollab_core::agent::{
    Agent, AgentConfig, AgentError, AgentStats, Application, Contact, ContactId, ContactUpdate,
    Dropped, Event, Handle, IncomingId, InvitationRequest, InviteOptions, Policy, Status, Target,
    Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{
    Certificate, EndpointId, IdentityKey, IdentitySecret, LocalIdentity,
};
use peercollab_core::invite::{
    Answer, AppId, DEFAULT_MAX_EXPIRY, EXPIRY_GRACE, InviteError, MAX_APP_DATA, MAX_EXPIRY_ON_WIRE,
    MAX_MESSAGE_CHARS, MAX_REASON_BYTES, Outcome, POOL_BUSY_RETRY_AFTER,
};
use peercollab_core::noise::KeyPair;
use peercollab_core::wire::{COOKIE_REPLY_LEN, MAX_DATAGRAM};
use peercollab_core::{Duration, HashDrbg, Instant};
use peercollab_tests::agents::{AddressBook, AgentNode, Seen, TestAgent};
use peercollab_tests::party::Reaction;
use peercollab_tests::{Faults, Network, NodeId};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// The smallest interesting agent: two contacts, two applications, two
/// invitation slots, one body buffer, two remembered ids.
type Small = Agent<2, 2, 2, 1, 2>;

/// Application ids: the partner registers the first two.
const APPS: [AppId; 4] = [
    AppId(*b"agent-props-app0"),
    AppId(*b"agent-props-app1"),
    AppId(*b"agent-props-app2"),
    AppId(*b"agent-props-app3"),
];

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn seed_bytes(seed: u64, salt: u8) -> [u8; 32] {
    let mut b = [salt; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b
}

/// A seeded runner. `AGENT_PROPS_CASES` and `AGENT_PROPS_SEED` (a byte)
/// override the case count and the seed.
fn runner(cases: u32, seed: u8) -> TestRunner {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let cases = env("AGENT_PROPS_CASES").unwrap_or(cases);
    let seed = env("AGENT_PROPS_SEED").map_or(seed, |s| s as u8);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        // Shrinking re-runs whole cases; keep it bounded.
        max_shrink_iters: 512,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]))
}

fn verbose() -> bool {
    std::env::var_os("AGENT_PROPS_VERBOSE").is_some()
}

/// A coarse name for an error, for tallies.
fn error_kind(e: &AgentError) -> String {
    match e {
        AgentError::AlreadyExists(_) => "AlreadyExists".into(),
        AgentError::Invitation(InviteError::BadMessage(_)) => "BadMessage".into(),
        AgentError::Invitation(i) => format!("{i:?}"),
        AgentError::Session(s) => format!("Session({s:?})"),
        other => format!("{other:?}"),
    }
}

/// The name of `x`'s variant, read from its `Debug` form (a drop reason,
/// an event or an outcome, for tallies).
fn variant(x: &impl std::fmt::Debug) -> String {
    let s = format!("{x:?}");
    match s.find(['(', ' ']) {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

// =============================================================================
// Properties 1 and 2: one agent under random commands and datagrams
// =============================================================================

/// Where the agent under test (X) is.
fn x_addr() -> SocketAddr {
    v4(192, 0, 2, 1, 7000)
}

/// Where its partner (P) is.
fn p_addr() -> SocketAddr {
    v4(192, 0, 2, 2, 7000)
}

/// P's second endpoint, which never answers.
fn dead_addr() -> SocketAddr {
    v4(192, 0, 2, 3, 7000)
}

fn stranger_addr() -> SocketAddr {
    "[2001:db8::5]:9999".parse().expect("address")
}

fn address(i: usize) -> SocketAddr {
    [p_addr(), dead_addr(), x_addr(), stranger_addr()][i % 4]
}

/// The identities of a run: X, its partner P (endpoint 0 live with a
/// serial-2 certificate, endpoint 1 dead), a stranger S and M with four
/// endpoints, and the cards X may add.
struct Cast {
    x: LocalIdentity,
    p: LocalIdentity,
    /// P's current card, P's old card (serial 1, another key), S, M, X's own.
    cards: Vec<ContactCard>,
    /// P, S, X, M.
    identities: Vec<IdentityKey>,
}

/// One of four casts (issuing cards is slow in debug builds: each
/// certificate is verified).
fn cast(seed: u64) -> &'static Cast {
    static CASTS: OnceLock<Vec<Cast>> = OnceLock::new();
    let casts = CASTS.get_or_init(|| (0..4).map(new_cast).collect());
    &casts[(seed % 4) as usize]
}

fn new_cast(seed: u64) -> Cast {
    let mut rng = HashDrbg::from_u64(seed);
    let x = LocalIdentity::generate(&mut rng, EndpointId(0));
    let p_secret = IdentitySecret::generate(&mut rng);
    let p_old = LocalIdentity::new(p_secret.clone(), KeyPair::generate(&mut rng), EndpointId(0), 1);
    let p = LocalIdentity::new(p_secret.clone(), KeyPair::generate(&mut rng), EndpointId(0), 2);
    let p_second =
        LocalIdentity::new(p_secret.clone(), KeyPair::generate(&mut rng), EndpointId(1), 1);
    let p_card = ContactCard::issue(
        &p_secret,
        "p",
        &[*p.certificate(), *p_second.certificate()],
        &[p_addr(), dead_addr()],
    )
    .expect("card");
    let p_old_card = ContactCard::issue(&p_secret, "p (old)", &[*p_old.certificate()], &[p_addr()])
        .expect("card");
    let s = LocalIdentity::generate(&mut rng, EndpointId(0));
    let s_card =
        ContactCard::issue(s.secret(), "s", &[*s.certificate()], &[stranger_addr()]).expect("card");
    let m_secret = IdentitySecret::generate(&mut rng);
    let m_certs: Vec<Certificate> = (0..4)
        .map(|e| {
            *LocalIdentity::new(m_secret.clone(), KeyPair::generate(&mut rng), EndpointId(e), 1)
                .certificate()
        })
        .collect();
    let m_card = ContactCard::issue(&m_secret, "m", &m_certs, &[dead_addr(), stranger_addr()])
        .expect("card");
    let x_card =
        ContactCard::issue(x.secret(), "me", &[*x.certificate()], &[x_addr()]).expect("card");
    let identities = vec![p_secret.public(), s.identity(), x.identity(), m_secret.public()];
    Cast { x, p, cards: vec![p_card, p_old_card, s_card, m_card, x_card], identities }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name {
    Empty,
    Short,
    Longest,
    TooLong,
}

impl Name {
    fn text(self) -> String {
        match self {
            Name::Empty => String::new(),
            Name::Short => "n".into(),
            Name::Longest => "x".repeat(64),
            Name::TooLong => "x".repeat(65),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    Empty,
    Short,
    /// 255 characters of two bytes.
    Longest,
    /// 256 characters.
    TooLong,
}

impl Message {
    fn text(self) -> String {
        match self {
            Message::Empty => String::new(),
            Message::Short => "hi".into(),
            Message::Longest => "é".repeat(MAX_MESSAGE_CHARS),
            Message::TooLong => "x".repeat(MAX_MESSAGE_CHARS + 1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Data {
    Empty,
    Len(usize),
    TooLarge,
}

impl Data {
    fn bytes(self) -> Vec<u8> {
        let len = match self {
            Data::Empty => 0,
            Data::Len(n) => n,
            Data::TooLarge => MAX_APP_DATA + 1,
        };
        (0..len).map(|i| (i * 7) as u8).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Req {
    app: usize,
    message: Message,
    data: Data,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    Default,
    Millis(u64),
    Longest,
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Opts {
    expiry: Expiry,
    discard: bool,
    /// Index into the cast's identities.
    expect: Option<usize>,
}

impl Opts {
    fn options(self, identities: &[IdentityKey]) -> InviteOptions {
        let mut o = InviteOptions::default();
        o = match self.expiry {
            Expiry::Default => o,
            Expiry::Millis(m) => o.expires_in(ms(m)),
            Expiry::Longest => o.expires_in(MAX_EXPIRY_ON_WIRE),
            Expiry::TooLong => o.expires_in(MAX_EXPIRY_ON_WIRE.saturating_add(ms(1))),
        };
        if self.discard {
            o = o.discard_handle();
        }
        if let Some(i) = self.expect {
            o = o.expect(identities[i % identities.len()]);
        }
        o
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Accept,
    Decline,
    Busy(u64),
    BusyTooLong,
}

impl Reply {
    fn answer(self) -> Answer {
        match self {
            Reply::Accept => Answer::Accept,
            Reply::Decline => Answer::Decline,
            Reply::Busy(m) => Answer::Busy { retry_after: ms(m) },
            Reply::BusyTooLong => {
                Answer::Busy { retry_after: MAX_EXPIRY_ON_WIRE.saturating_add(ms(1)) }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Empty,
    Short,
    Longest,
    TooLong,
}

impl Reason {
    fn text(self) -> String {
        match self {
            Reason::Empty => String::new(),
            Reason::Short => "ok".into(),
            Reason::Longest => "r".repeat(MAX_REASON_BYTES),
            Reason::TooLong => "r".repeat(MAX_REASON_BYTES + 1),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Mutation {
    None,
    Flip { at: usize, bit: u8 },
    Truncate(usize),
    Extend(Vec<u8>),
    Splice { at: usize, bytes: Vec<u8> },
}

impl Mutation {
    fn apply(&self, mut b: Vec<u8>) -> Vec<u8> {
        match self {
            Mutation::None => {}
            Mutation::Flip { at, bit } => {
                if !b.is_empty() {
                    let i = at % b.len();
                    b[i] ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate(n) => b.truncate(n % (b.len() + 1)),
            Mutation::Extend(more) => b.extend_from_slice(more),
            Mutation::Splice { at, bytes } => {
                if !b.is_empty() {
                    let start = at % b.len();
                    for (i, x) in bytes.iter().enumerate() {
                        if let Some(y) = b.get_mut(start + i) {
                            *y = *x;
                        }
                    }
                }
            }
        }
        b
    }
}

/// A datagram nobody sent as such.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Forged {
    /// Any bytes.
    Random(Vec<u8>),
    /// A valid header (version, type, mode) and random bytes.
    Typed { ty: u8, mode: u8, rest: Vec<u8> },
    /// A datagram either agent sent, mutated.
    Captured { index: usize, mutation: Mutation },
}

/// A time X's `handle_timeout` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    Now,
    Back(u64),
    Ahead(u64),
    /// X's own deadline.
    Deadline,
    At(u64),
    Max,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    AddContact {
        card: usize,
        trusted: bool,
    },
    UpdateContact {
        contact: usize,
        name: Option<Name>,
        trust: Option<bool>,
        addresses: Option<usize>,
    },
    RemoveContact(usize),
    RevokeEndpoint {
        contact: usize,
        endpoint: u32,
    },
    Register {
        app: usize,
        name: Name,
        policy: Option<Policy>,
    },
    Unregister(usize),
    SetPolicy(Policy),
    InviteContact {
        contact: usize,
        /// Its endpoints at its addresses, or these (endpoint, address).
        targets: Option<Vec<(u32, usize)>>,
        req: Req,
        opts: Opts,
    },
    InviteEndpoint {
        address: usize,
        req: Req,
        opts: Opts,
    },
    Response(usize),
    Cancel(usize),
    Close(usize),
    Respond {
        incoming: usize,
        reply: Reply,
        reason: Reason,
    },
    Incoming(usize),
    LaunchInfo(usize),
    Release(usize),
    /// P invites X (over IK if it holds X's card and `ik`).
    PeerInvite {
        ik: bool,
        app: usize,
        data_len: usize,
        expiry_ms: u64,
    },
    /// P invites X, everything is delivered, X's user answers what it was
    /// presented last (if anything), and everything is delivered again.
    PeerRound {
        ik: bool,
        data_len: usize,
        reply: Reply,
    },
    /// The next queued datagram to X (or to P), mutated.
    Deliver {
        to_x: bool,
        mutation: Mutation,
    },
    /// A forged datagram to X from one of four addresses.
    Inject {
        from: usize,
        forged: Forged,
    },
    /// Everything queued, both ways, until nothing is left.
    Flush,
    /// Time passes; P runs its timers, X too if `x_timers`.
    Advance {
        ms: u64,
        x_timers: bool,
    },
    /// X's `handle_timeout` at an arbitrary time.
    Timeout(Clock),
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![4 => Just(Policy::Anyone), 2 => Just(Policy::TrustedOnly), 1 => Just(Policy::Nobody)]
}

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        1 => Just(Name::Empty),
        4 => Just(Name::Short),
        1 => Just(Name::Longest),
        1 => Just(Name::TooLong),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    let message = prop_oneof![
        3 => Just(Message::Empty),
        4 => Just(Message::Short),
        1 => Just(Message::Longest),
        1 => Just(Message::TooLong),
    ];
    let data = prop_oneof![
        4 => Just(Data::Empty),
        3 => (1usize..200).prop_map(Data::Len),
        1 => (1000usize..=MAX_APP_DATA).prop_map(Data::Len),
        1 => Just(Data::TooLarge),
    ];
    (prop_oneof![6 => 0usize..2, 1 => 2usize..4], message, data)
        .prop_map(|(app, message, data)| Req { app, message, data })
}

fn opts() -> impl Strategy<Value = Opts> {
    let expiry = prop_oneof![
        4 => Just(Expiry::Default),
        4 => (0u64..=120_000).prop_map(Expiry::Millis),
        1 => Just(Expiry::Longest),
        1 => Just(Expiry::TooLong),
    ];
    let expect = prop_oneof![4 => Just(None), 1 => (0usize..4).prop_map(Some)];
    (expiry, prop::bool::weighted(0.2), expect).prop_map(|(expiry, discard, expect)| Opts {
        expiry,
        discard,
        expect,
    })
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        4 => Just(Reply::Accept),
        2 => Just(Reply::Decline),
        2 => (0u64..=600_000).prop_map(Reply::Busy),
        1 => Just(Reply::BusyTooLong),
    ]
}

fn reason() -> impl Strategy<Value = Reason> {
    prop_oneof![
        4 => Just(Reason::Empty),
        2 => Just(Reason::Short),
        1 => Just(Reason::Longest),
        1 => Just(Reason::TooLong),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => Just(Mutation::None),
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
    ]
}

fn forged() -> impl Strategy<Value = Forged> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..1300).prop_map(Forged::Random),
        3 => (1u8..=5, 0u8..=3, prop::collection::vec(any::<u8>(), 0..1200))
            .prop_map(|(ty, mode, rest)| Forged::Typed { ty, mode, rest }),
        5 => (any::<usize>(), mutation())
            .prop_map(|(index, mutation)| Forged::Captured { index, mutation }),
    ]
}

fn clock() -> impl Strategy<Value = Clock> {
    prop_oneof![
        2 => Just(Clock::Now),
        3 => (0u64..=300_000).prop_map(Clock::Back),
        3 => (0u64..=300_000).prop_map(Clock::Ahead),
        3 => Just(Clock::Deadline),
        1 => (0u64..=u64::MAX - 1).prop_map(Clock::At),
        1 => Just(Clock::Max),
    ]
}

fn op() -> BoxedStrategy<Op> {
    let contacts = prop_oneof![
        6 => (any::<usize>(), any::<bool>())
            .prop_map(|(card, trusted)| Op::AddContact { card, trusted }),
        3 => (
            any::<usize>(),
            prop::option::of(name()),
            prop::option::of(any::<bool>()),
            prop::option::of(0usize..=5),
        )
            .prop_map(|(contact, name, trust, addresses)| Op::UpdateContact {
                contact,
                name,
                trust,
                addresses,
            }),
        2 => any::<usize>().prop_map(Op::RemoveContact),
        2 => (any::<usize>(), 0u32..=4)
            .prop_map(|(contact, endpoint)| Op::RevokeEndpoint { contact, endpoint }),
        4 => (0usize..4, name(), prop::option::of(policy()))
            .prop_map(|(app, name, policy)| Op::Register { app, name, policy }),
        2 => (0usize..4).prop_map(Op::Unregister),
        2 => policy().prop_map(Op::SetPolicy),
    ];
    let targets = prop_oneof![
        3 => Just(None),
        2 => prop::collection::vec(
            (prop_oneof![3 => 0u32..=1, 1 => 0u32..=4], prop_oneof![3 => Just(0usize), 1 => 0usize..4]),
            0..=5,
        )
        .prop_map(Some),
    ];
    let outgoing = prop_oneof![
        6 => (any::<usize>(), targets, req(), opts()).prop_map(|(contact, targets, req, opts)| {
            Op::InviteContact { contact, targets, req, opts }
        }),
        5 => (prop_oneof![3 => Just(0usize), 1 => 0usize..4], req(), opts())
            .prop_map(|(address, req, opts)| Op::InviteEndpoint { address, req, opts }),
        2 => any::<usize>().prop_map(Op::Response),
        3 => any::<usize>().prop_map(Op::Cancel),
        3 => any::<usize>().prop_map(Op::Close),
    ];
    let incoming = prop_oneof![
        6 => (any::<usize>(), reply(), reason())
            .prop_map(|(incoming, reply, reason)| Op::Respond { incoming, reply, reason }),
        2 => any::<usize>().prop_map(Op::Incoming),
        2 => any::<usize>().prop_map(Op::LaunchInfo),
        3 => any::<usize>().prop_map(Op::Release),
    ];
    let data_len = prop_oneof![2 => Just(0usize), 2 => 1usize..100, 1 => 1000usize..=MAX_APP_DATA];
    let network = prop_oneof![
        10 => (any::<bool>(), prop_oneof![3 => Just(0usize), 1 => 0usize..4], data_len, 0u64..=400_000).prop_map(
            |(ik, app, data_len, expiry_ms)| Op::PeerInvite { ik, app, data_len, expiry_ms }
        ),
        8 => (prop::bool::weighted(0.7), mutation())
            .prop_map(|(to_x, mutation)| Op::Deliver { to_x, mutation }),
        6 => (prop_oneof![3 => Just(0usize), 1 => 0usize..4], forged())
            .prop_map(|(from, forged)| Op::Inject { from, forged }),
        12 => Just(Op::Flush),
        6 => (any::<bool>(), prop_oneof![Just(0usize), 1usize..100], reply())
            .prop_map(|(ik, data_len, reply)| Op::PeerRound { ik, data_len, reply }),
        5 => (prop_oneof![3 => 0u64..=2_000, 1 => 0u64..=120_000], prop::bool::weighted(0.8))
            .prop_map(|(ms, x_timers)| Op::Advance { ms, x_timers }),
        5 => clock().prop_map(Op::Timeout),
    ];
    prop_oneof![21 => contacts, 19 => outgoing, 16 => incoming, 52 => network].boxed()
}

/// One run of properties 1 and 2.
#[derive(Clone, Debug)]
struct Run {
    seed: u64,
    /// X is [`Small`], else [`TestAgent`].
    small: bool,
    /// P holds X's card (so it can invite over IK).
    p_knows_x: bool,
    ops: Vec<Op>,
}

fn run_strategy() -> impl Strategy<Value = Run> {
    (any::<u64>(), prop::bool::weighted(0.7), any::<bool>(), prop::collection::vec(op(), 1..=80))
        .prop_map(|(seed, small, p_knows_x, ops)| Run { seed, small, p_knows_x, ops })
}

/// What the public getters show of an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    contacts: Vec<String>,
    applications: Vec<Application>,
    policy: Policy,
    invitations_in_use: usize,
    handles_in_use: usize,
    buffers_free: usize,
    poll_timeout: Option<Instant>,
    stats: AgentStats,
    /// `response`, `incoming`, `launch_info`, `contact`, `contact_by_identity`
    /// and `application` of every id seen so far.
    lookups: Vec<String>,
}

fn describe(c: &Contact) -> String {
    let certs: Vec<&Certificate> = c.certificates().collect();
    let endpoints: Vec<(EndpointId, bool)> = c.endpoints().map(|e| (e, c.is_revoked(e))).collect();
    format!(
        "{:?} {:?} {:?} certs {certs:?} endpoints {endpoints:?} addresses {:?}",
        c.identity(),
        c.display_name(),
        c.trust(),
        c.addresses()
    )
}

/// Ids seen so far: X's own, and P's (foreign to X).
#[derive(Default)]
struct Ids {
    handles: Vec<Handle>,
    incomings: Vec<IncomingId>,
    contacts: Vec<ContactId>,
    foreign_handles: Vec<Handle>,
    foreign_incomings: Vec<IncomingId>,
    foreign_contacts: Vec<ContactId>,
}

fn note<T: PartialEq>(list: &mut Vec<T>, x: T) {
    if !list.contains(&x) {
        list.push(x);
    }
}

/// An id of X's (three times in four) or of P's, if any; recent ids of
/// X's more often.
fn pick<T: Copy>(own: &[T], foreign: &[T], i: usize) -> Option<T> {
    let j = i / 4;
    if !own.is_empty() && (foreign.is_empty() || !i.is_multiple_of(4)) {
        // Half the time one of the last two.
        let k = if j.is_multiple_of(2) {
            own.len() - 1 - (j / 2) % own.len().min(2)
        } else {
            (j / 2) % own.len()
        };
        Some(own[k])
    } else if !foreign.is_empty() {
        Some(foreign[j % foreign.len()])
    } else {
        None
    }
}

/// The agent under test (X) and a partner agent (P), with the datagrams
/// between them queued, not delivered, until an op delivers them.
struct World<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize> {
    x: Box<Agent<C, A, I, B, R>>,
    p: Box<TestAgent>,
    cards: Vec<ContactCard>,
    identities: Vec<IdentityKey>,
    /// The driver's clock (P's, and every command's).
    now: Instant,
    /// The latest time X was given.
    x_clock: Instant,
    to_x: VecDeque<(SocketAddr, Vec<u8>)>,
    to_p: VecDeque<Vec<u8>>,
    /// Every datagram either agent sent (the first 256).
    captured: Vec<Vec<u8>>,
    ids: Ids,
    /// X at P.
    p_contact: Option<ContactId>,
    p_reactions: u64,
    /// X's handles closed.
    closed: BTreeSet<Handle>,
    responded: BTreeMap<Handle, usize>,
    ringing: BTreeMap<Handle, usize>,
    invited: BTreeMap<IncomingId, usize>,
    ended: BTreeMap<IncomingId, usize>,
    check_refusals: bool,
    /// The one refusal that changes something (spec/agent.md §2.8): a
    /// `respond` at or after the expiry expires the invitation at once.
    late_answer: bool,
    /// What the run reached: commands done and refused, datagrams dropped.
    tally: BTreeMap<String, usize>,
}

impl<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>
    World<C, A, I, B, R>
{
    fn new(run: &Run, check_refusals: bool) -> Self {
        let cast = cast(run.seed);
        let mut x =
            Box::new(Agent::new(cast.x.clone(), AgentConfig::default(), seed_bytes(run.seed, 1)));
        x.register_application(APPS[0], "app", None).expect("register");
        let mut p = Box::new(TestAgent::new(
            cast.p.clone(),
            AgentConfig::default(),
            seed_bytes(run.seed, 2),
        ));
        for app in &APPS[..2] {
            p.register_application(*app, "partner app", None).expect("register");
        }
        let p_contact =
            run.p_knows_x.then(|| p.add_contact(&cast.cards[4], Trust::Trusted).expect("add X"));
        World {
            x,
            p,
            cards: cast.cards.clone(),
            identities: cast.identities.clone(),
            now: Instant::ZERO,
            x_clock: Instant::ZERO,
            to_x: VecDeque::new(),
            to_p: VecDeque::new(),
            captured: Vec::new(),
            ids: Ids::default(),
            p_contact,
            p_reactions: run.seed,
            closed: BTreeSet::new(),
            responded: BTreeMap::new(),
            ringing: BTreeMap::new(),
            invited: BTreeMap::new(),
            ended: BTreeMap::new(),
            check_refusals,
            late_answer: false,
            tally: BTreeMap::new(),
        }
    }

    fn count(&mut self, what: String) {
        *self.tally.entry(what).or_default() += 1;
    }

    fn fingerprint(&self) -> Fingerprint {
        let x = &*self.x;
        let ids = &self.ids;
        let mut lookups = Vec::new();
        for id in ids.contacts.iter().chain(&ids.foreign_contacts) {
            lookups.push(format!("contact {id:?}: {:?}", x.contact(*id).map(describe)));
        }
        for identity in &self.identities {
            lookups.push(format!("{identity:?}: {:?}", x.contact_by_identity(identity)));
        }
        for app in APPS {
            lookups.push(format!("{app:?}: {:?}", x.application(app)));
        }
        for h in ids.handles.iter().chain(&ids.foreign_handles) {
            lookups.push(format!("response {h:?}: {:?}", x.response(*h)));
        }
        for id in ids.incomings.iter().chain(&ids.foreign_incomings) {
            lookups.push(format!("incoming {id:?}: {:?}", x.incoming(*id)));
            lookups.push(format!("launch {id:?}: {:?}", x.launch_info(*id)));
        }
        Fingerprint {
            contacts: x.contacts().map(|(id, c)| format!("{id:?} {}", describe(c))).collect(),
            applications: x.applications().cloned().collect(),
            policy: x.policy(),
            invitations_in_use: x.invitations_in_use(),
            handles_in_use: x.handles_in_use(),
            buffers_free: x.buffers_free(),
            poll_timeout: x.poll_timeout(),
            stats: x.stats(),
            lookups,
        }
    }

    /// Checks what X reports as it is polled.
    fn on_x_event(&mut self, e: Event) -> Result<(), TestCaseError> {
        match e {
            Event::Ringing(h) | Event::Responded { handle: h, .. } => {
                prop_assert!(!self.closed.contains(&h), "{e:?} names a closed handle");
                note(&mut self.ids.handles, h);
                let seen = match e {
                    Event::Ringing(_) => self.ringing.entry(h).or_default(),
                    _ => self.responded.entry(h).or_default(),
                };
                *seen += 1;
                prop_assert!(*seen == 1, "{e:?} reported {} times", *seen);
                if let Event::Responded { outcome, .. } = e {
                    let status = self.x.response(h);
                    prop_assert!(
                        matches!(status, Ok(Status::Answered(r)) if r.outcome == outcome),
                        "{e:?}, yet response() is {status:?}"
                    );
                }
            }
            Event::Invited(id) => {
                note(&mut self.ids.incomings, id);
                let seen = self.invited.entry(id).or_default();
                *seen += 1;
                prop_assert!(*seen == 1, "{e:?} reported {} times", *seen);
                let view = self.x.incoming(id);
                prop_assert!(view.is_ok(), "{e:?}, yet incoming() is {view:?}");
            }
            Event::IncomingEnded { incoming, .. } => {
                note(&mut self.ids.incomings, incoming);
                prop_assert!(self.invited.contains_key(&incoming), "{e:?} was never Invited");
                let seen = self.ended.entry(incoming).or_default();
                *seen += 1;
                prop_assert!(*seen == 1, "{e:?} reported {} times", *seen);
            }
            Event::ContactUpdated { contact, .. } => note(&mut self.ids.contacts, contact),
            _ => {}
        }
        self.count(format!("event {}", variant(&e)));
        Ok(())
    }

    fn on_p_event(&mut self, e: Event) {
        match e {
            Event::Ringing(h) | Event::Responded { handle: h, .. } => {
                note(&mut self.ids.foreign_handles, h);
            }
            Event::Invited(id) => {
                note(&mut self.ids.foreign_incomings, id);
                self.p_reactions = self.p_reactions.wrapping_add(1);
                let answer = match self.p_reactions % 4 {
                    0 => Some(Answer::Accept),
                    1 => Some(Answer::Decline),
                    2 => Some(Answer::Busy { retry_after: ms(5_000) }),
                    _ => None,
                };
                if let Some(answer) = answer {
                    let _ = self.p.respond(self.now, id, answer, "p");
                }
            }
            Event::IncomingEnded { incoming, outcome: Outcome::Accepted } => {
                let _ = self.p.release(incoming);
            }
            Event::ContactUpdated { contact, .. } => note(&mut self.ids.foreign_contacts, contact),
            _ => {}
        }
    }

    fn capture(&mut self, bytes: &[u8]) {
        if self.captured.len() < 256 {
            self.captured.push(bytes.to_vec());
        }
    }

    /// Drains both agents' datagrams (into the queues) and events, until
    /// neither has anything.
    fn route(&mut self) -> Result<(), TestCaseError> {
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            let mut progress = false;
            while let Some(t) = self.x.poll_transmit(self.now, &mut buf) {
                progress = true;
                let bytes = buf[..t.len].to_vec();
                self.capture(&bytes);
                if t.destination == p_addr() {
                    self.to_p.push_back(bytes);
                } else if t.destination == x_addr() {
                    self.to_x.push_back((x_addr(), bytes));
                }
            }
            while let Some(e) = self.x.poll_event() {
                progress = true;
                self.on_x_event(e)?;
            }
            while let Some(t) = self.p.poll_transmit(self.now, &mut buf) {
                progress = true;
                let bytes = buf[..t.len].to_vec();
                self.capture(&bytes);
                if t.destination == x_addr() {
                    self.to_x.push_back((p_addr(), bytes));
                }
            }
            while let Some(e) = self.p.poll_event() {
                progress = true;
                self.on_p_event(e);
            }
            if !progress {
                break;
            }
        }
        self.x_clock = self.x_clock.max(self.now);
        let x = &self.x;
        prop_assert!(x.invitations_in_use() <= I, "{} slots of {I} in use", x.invitations_in_use());
        prop_assert!(x.handles_in_use() <= I, "{} handles of {I} in use", x.handles_in_use());
        prop_assert!(x.buffers_free() <= B, "{} buffers of {B} free", x.buffers_free());
        Ok(())
    }

    /// Runs a command on X at `now`. Property 2: an error changes nothing
    /// the getters show, and makes no datagram or event available.
    fn command<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Agent<C, A, I, B, R>, Instant) -> Result<T, AgentError>,
    ) -> Result<Option<T>, TestCaseError> {
        let before = if self.check_refusals {
            self.route()?;
            Some(self.fingerprint())
        } else {
            None
        };
        let now = self.now;
        let result = f(&mut self.x, now);
        match result {
            Ok(v) => {
                self.count(format!("{name}: Ok"));
                self.route()?;
                Ok(Some(v))
            }
            Err(e) => {
                self.count(format!("{name}: {}", error_kind(&e)));
                let late = std::mem::take(&mut self.late_answer)
                    && e == AgentError::Invitation(InviteError::Ended);
                if late {
                    self.count(format!("{name}: Ended at the expiry"));
                }
                if let Some(before) = before.filter(|_| !late) {
                    let after = self.fingerprint();
                    prop_assert_eq!(
                        &before,
                        &after,
                        "{} refused ({:?}) but changed the agent",
                        name,
                        e
                    );
                    let mut buf = [0u8; MAX_DATAGRAM];
                    let t = self.x.poll_transmit(now, &mut buf);
                    prop_assert!(t.is_none(), "{name} refused ({e:?}) but queued {t:?}");
                    let ev = self.x.poll_event();
                    prop_assert!(ev.is_none(), "{name} refused ({e:?}) but reported {ev:?}");
                }
                self.route()?;
                Ok(None)
            }
        }
    }

    /// A datagram to X. Property 2: a dropped datagram changes nothing but
    /// the counters.
    fn x_datagram(&mut self, from: SocketAddr, bytes: &[u8]) -> Result<(), TestCaseError> {
        let before = if self.check_refusals {
            self.route()?;
            Some(self.fingerprint())
        } else {
            None
        };
        let result = self.x.handle_datagram(self.now, from, bytes);
        match &result {
            Ok(()) => self.count("datagram: Ok".into()),
            Err(d) => self.count(format!("datagram: {}", variant(d))),
        }
        if let (Some(mut before), Err(d)) = (before, result) {
            let mut after = self.fingerprint();
            let (b, a) = (before.stats, after.stats);
            prop_assert!(
                a.received == b.received + 1
                    && a.dropped == b.dropped + 1
                    && a.sent == b.sent
                    && a.roamed == b.roamed,
                "dropped ({d:?}): stats {b:?} then {a:?}"
            );
            // An authentic datagram the invitation drops still restarts its
            // inviter's silence clock (spec/agent.md §2.8): deadlines may
            // only move later.
            prop_assert!(
                after.poll_timeout.is_some() == before.poll_timeout.is_some()
                    && after.poll_timeout >= before.poll_timeout,
                "a dropped datagram ({d:?}) moved the deadline from {:?} to {:?}",
                before.poll_timeout,
                after.poll_timeout
            );
            before.stats = AgentStats::default();
            after.stats = AgentStats::default();
            after.poll_timeout = before.poll_timeout;
            prop_assert_eq!(&before, &after, "a dropped datagram ({:?}) changed the agent", d);
            let mut buf = [0u8; MAX_DATAGRAM];
            // Under load an initiation without a cookie is answered with a
            // cookie reply to its source (agent.md §4.1), and nothing else.
            if d == Dropped::CookieRequired {
                let t = self.x.poll_transmit(self.now, &mut buf);
                prop_assert_eq!(
                    t.map(|t| (t.destination, t.len)),
                    Some((from, COOKIE_REPLY_LEN)),
                    "a cookie is required but no cookie reply was queued"
                );
            }
            let t = self.x.poll_transmit(self.now, &mut buf);
            prop_assert!(t.is_none(), "a dropped datagram ({d:?}) queued {t:?}");
            let ev = self.x.poll_event();
            prop_assert!(ev.is_none(), "a dropped datagram ({d:?}) reported {ev:?}");
        }
        self.route()
    }

    /// X's `handle_timeout(t)`: the next deadline is after X's clock.
    fn x_timeout(&mut self, t: Instant) -> Result<(), TestCaseError> {
        self.x.handle_timeout(t);
        self.x_clock = self.x_clock.max(t);
        let next = self.x.poll_timeout();
        if self.x_clock != Instant::MAX {
            prop_assert!(
                next.is_none_or(|d| d > self.x_clock),
                "after handle_timeout({t:?}) (clock {:?}) poll_timeout is {next:?}",
                self.x_clock
            );
        }
        self.route()
    }

    fn request(&self, r: Req) -> (AppId, String, Vec<u8>) {
        (APPS[r.app % APPS.len()], r.message.text(), r.data.bytes())
    }

    #[allow(clippy::too_many_lines)]
    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::AddContact { card, trusted } => {
                let card = self.cards[card % self.cards.len()].clone();
                let trust = if *trusted { Trust::Trusted } else { Trust::Known };
                if let Some(id) = self.command("add_contact", |x, _| x.add_contact(&card, trust))? {
                    note(&mut self.ids.contacts, id);
                }
            }
            Op::UpdateContact { contact, name, trust, addresses } => {
                let Some(id) = pick(&self.ids.contacts, &self.ids.foreign_contacts, *contact)
                else {
                    return Ok(());
                };
                let name = name.map(Name::text);
                let addresses: Option<Vec<SocketAddr>> =
                    addresses.map(|n| (0..n).map(|i| v4(198, 51, 100, i as u8, 9000)).collect());
                let mut update = ContactUpdate::default();
                if let Some(n) = &name {
                    update = update.display_name(n);
                }
                if let Some(t) = trust {
                    update = update.trust(if *t { Trust::Trusted } else { Trust::Known });
                }
                if let Some(a) = &addresses {
                    update = update.addresses(a);
                }
                self.command("update_contact", |x, _| x.update_contact(id, update))?;
            }
            Op::RemoveContact(contact) => {
                if let Some(id) = pick(&self.ids.contacts, &self.ids.foreign_contacts, *contact) {
                    self.command("remove_contact", |x, now| x.remove_contact(now, id))?;
                }
            }
            Op::RevokeEndpoint { contact, endpoint } => {
                if let Some(id) = pick(&self.ids.contacts, &self.ids.foreign_contacts, *contact) {
                    let e = EndpointId(*endpoint);
                    self.command("revoke_endpoint", |x, _| x.revoke_endpoint(id, e))?;
                }
            }
            Op::Register { app, name, policy } => {
                let (app, name, policy) = (APPS[app % APPS.len()], name.text(), *policy);
                self.command("register_application", |x, _| {
                    x.register_application(app, &name, policy)
                })?;
            }
            Op::Unregister(app) => {
                let app = APPS[app % APPS.len()];
                self.command("unregister_application", |x, _| x.unregister_application(app))?;
            }
            Op::SetPolicy(policy) => {
                let policy = *policy;
                self.command("set_policy", |x, _| {
                    x.set_policy(policy);
                    Ok(())
                })?;
            }
            Op::InviteContact { contact, targets, req, opts } => {
                let Some(id) = pick(&self.ids.contacts, &self.ids.foreign_contacts, *contact)
                else {
                    return Ok(());
                };
                let targets: Vec<Target> = match targets {
                    Some(list) => list
                        .iter()
                        .map(|&(e, a)| Target { endpoint: EndpointId(e), address: address(a) })
                        .collect(),
                    // Its endpoints (revoked ones too), at its addresses (or
                    // P's).
                    None => match self.x.contact(id) {
                        Ok(c) => c
                            .endpoints()
                            .enumerate()
                            .map(|(i, endpoint)| Target {
                                endpoint,
                                address: c.addresses().get(i).copied().unwrap_or_else(p_addr),
                            })
                            .collect(),
                        Err(_) => vec![Target { endpoint: EndpointId(0), address: p_addr() }],
                    },
                };
                let (app_id, message, data) = self.request(*req);
                let options = opts.options(&self.identities);
                let request = InvitationRequest { app_id, message: &message, data: &data };
                if let Some(Some(h)) = self.command("invite_contact", |x, now| {
                    x.invite_contact(now, id, &targets, &request, options)
                })? {
                    note(&mut self.ids.handles, h);
                }
            }
            Op::InviteEndpoint { address: a, req, opts } => {
                let to = address(*a);
                let (app_id, message, data) = self.request(*req);
                let options = opts.options(&self.identities);
                let request = InvitationRequest { app_id, message: &message, data: &data };
                if let Some(Some(h)) = self.command("invite_endpoint", |x, now| {
                    x.invite_endpoint(now, to, &request, options)
                })? {
                    note(&mut self.ids.handles, h);
                }
            }
            Op::Response(i) => {
                if let Some(h) = pick(&self.ids.handles, &self.ids.foreign_handles, *i) {
                    self.command("response", |x, _| x.response(h).map(|_| ()))?;
                }
            }
            Op::Cancel(i) => {
                if let Some(h) = pick(&self.ids.handles, &self.ids.foreign_handles, *i) {
                    self.command("cancel", |x, now| x.cancel(now, h))?;
                }
            }
            Op::Close(i) => {
                if let Some(h) = pick(&self.ids.handles, &self.ids.foreign_handles, *i)
                    && self.command("close", |x, now| x.close(now, h))?.is_some()
                {
                    self.closed.insert(h);
                    let status = self.x.response(h);
                    prop_assert_eq!(status, Err(AgentError::UnknownHandle));
                }
            }
            Op::Respond { incoming, reply, reason } => {
                if let Some(id) = pick(&self.ids.incomings, &self.ids.foreign_incomings, *incoming)
                {
                    let (answer, reason) = (reply.answer(), reason.text());
                    let clock = self.now.max(self.x_clock);
                    self.late_answer = self.x.incoming(id).is_ok_and(|v| v.expires_at <= clock);
                    self.command("respond", |x, now| x.respond(now, id, answer, &reason))?;
                    self.late_answer = false;
                }
            }
            Op::Incoming(i) => {
                if let Some(id) = pick(&self.ids.incomings, &self.ids.foreign_incomings, *i) {
                    self.command("incoming", |x, _| x.incoming(id).map(|_| ()))?;
                }
            }
            Op::LaunchInfo(i) => {
                if let Some(id) = pick(&self.ids.incomings, &self.ids.foreign_incomings, *i) {
                    self.command("launch_info", |x, _| x.launch_info(id).map(|_| ()))?;
                }
            }
            Op::Release(i) => {
                if let Some(id) = pick(&self.ids.incomings, &self.ids.foreign_incomings, *i) {
                    self.command("release", |x, _| x.release(id))?;
                }
            }
            Op::PeerInvite { ik, app, data_len, expiry_ms } => {
                let data: Vec<u8> = (0..*data_len).map(|i| i as u8).collect();
                let request = InvitationRequest {
                    app_id: APPS[app % APPS.len()],
                    message: "from p",
                    data: &data,
                };
                let options = InviteOptions::default().expires_in(ms(*expiry_ms));
                let result = match (ik, self.p_contact) {
                    (true, Some(c)) => {
                        let target = Target { endpoint: EndpointId(0), address: x_addr() };
                        self.p.invite_contact(self.now, c, &[target], &request, options)
                    }
                    _ => self.p.invite_endpoint(self.now, x_addr(), &request, options),
                };
                if let Ok(Some(h)) = result {
                    note(&mut self.ids.foreign_handles, h);
                }
                self.route()?;
            }
            Op::PeerRound { ik, data_len, reply } => {
                let invite =
                    Op::PeerInvite { ik: *ik, app: 0, data_len: *data_len, expiry_ms: 60_000 };
                let presented = self.invited.len();
                self.apply(&invite)?;
                self.apply(&Op::Flush)?;
                if self.invited.len() > presented
                    && let Some(&id) = self.ids.incomings.last()
                {
                    let answer = reply.answer();
                    let clock = self.now.max(self.x_clock);
                    self.late_answer = self.x.incoming(id).is_ok_and(|v| v.expires_at <= clock);
                    self.command("respond", |x, now| x.respond(now, id, answer, ""))?;
                    self.late_answer = false;
                    self.apply(&Op::Flush)?;
                }
            }
            Op::Deliver { to_x, mutation } => {
                if *to_x {
                    if let Some((from, bytes)) = self.to_x.pop_front() {
                        let bytes = mutation.apply(bytes);
                        self.x_datagram(from, &bytes)?;
                    }
                } else if let Some(bytes) = self.to_p.pop_front() {
                    let bytes = mutation.apply(bytes);
                    let _ = self.p.handle_datagram(self.now, x_addr(), &bytes);
                    self.route()?;
                }
            }
            Op::Inject { from, forged } => {
                let bytes = match forged {
                    Forged::Random(b) => b.clone(),
                    Forged::Typed { ty, mode, rest } => {
                        let mut b = vec![1, *ty, *mode, 0];
                        b.extend_from_slice(rest);
                        b
                    }
                    Forged::Captured { index, mutation } => {
                        if self.captured.is_empty() {
                            return Ok(());
                        }
                        let b = self.captured[index % self.captured.len()].clone();
                        mutation.apply(b)
                    }
                };
                self.x_datagram(address(*from), &bytes)?;
            }
            Op::Flush => {
                for _ in 0..100 {
                    if self.to_x.is_empty() && self.to_p.is_empty() {
                        break;
                    }
                    let to_x: Vec<_> = self.to_x.drain(..).collect();
                    for (from, bytes) in to_x {
                        self.x_datagram(from, &bytes)?;
                    }
                    let to_p: Vec<_> = self.to_p.drain(..).collect();
                    for bytes in to_p {
                        let _ = self.p.handle_datagram(self.now, x_addr(), &bytes);
                        self.route()?;
                    }
                }
            }
            Op::Advance { ms: m, x_timers } => {
                self.now += ms(*m);
                self.p.handle_timeout(self.now);
                if *x_timers {
                    self.x_timeout(self.now)?;
                }
                self.route()?;
            }
            Op::Timeout(c) => {
                let now = self.now.as_millis();
                let t = match *c {
                    Clock::Now => self.now,
                    Clock::Back(b) => at(now.saturating_sub(b)),
                    Clock::Ahead(a) => at(now.saturating_add(a)),
                    Clock::Deadline => self.x.poll_timeout().unwrap_or(self.now),
                    Clock::At(t) => at(t),
                    Clock::Max => Instant::MAX,
                };
                self.x_timeout(t)?;
            }
        }
        Ok(())
    }
}

/// Runs `run` on an X of the given capacities; returns what it reached.
fn exercise<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>(
    run: &Run,
    check_refusals: bool,
) -> Result<BTreeMap<String, usize>, TestCaseError> {
    let mut w = World::<C, A, I, B, R>::new(run, check_refusals);
    for (i, op) in run.ops.iter().enumerate() {
        w.apply(op).map_err(|e| TestCaseError::fail(format!("op {i} ({op:?}): {e}")))?;
    }
    Ok(w.tally)
}

fn exercise_any(run: &Run, check_refusals: bool) -> Result<BTreeMap<String, usize>, TestCaseError> {
    if run.small {
        exercise::<2, 2, 2, 1, 2>(run, check_refusals)
    } else {
        exercise::<16, 16, 16, 4, 64>(run, check_refusals)
    }
}

/// Runs `cases` random runs; returns the merged tally.
fn run_ops_property(cases: u32, seed: u8, check_refusals: bool) -> BTreeMap<String, usize> {
    let tally = RefCell::new(BTreeMap::<String, usize>::new());
    let started = std::time::Instant::now();
    let mut runner = runner(cases, seed);
    let result = runner.run(&run_strategy(), |run| {
        let t = exercise_any(&run, check_refusals)?;
        let mut all = tally.borrow_mut();
        for (k, v) in t {
            *all.entry(k).or_default() += v;
        }
        Ok(())
    });
    println!("{} cases in {:.1?}", runner.config().cases, started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
    let tally = tally.into_inner();
    if verbose() {
        for (k, v) in &tally {
            println!("{v:>8}  {k}");
        }
    }
    tally
}

/// Everything the op runs must reach, so the properties test something.
const MUST_REACH: &[&str] = &[
    "respond: Ended at the expiry",
    "add_contact: Ok",
    "add_contact: ContactsFull",
    "add_contact: AlreadyExists",
    "add_contact: OwnIdentity",
    "update_contact: Ok",
    "update_contact: BadName",
    "update_contact: TooManyAddresses",
    "update_contact: UnknownContact",
    "remove_contact: Ok",
    "revoke_endpoint: Ok",
    "revoke_endpoint: UnknownEndpoint",
    "register_application: Ok",
    "register_application: BadName",
    "register_application: ApplicationsFull",
    "unregister_application: UnknownApplication",
    "invite_contact: Ok",
    "invite_contact: InvitationsFull",
    "invite_contact: NoTargets",
    "invite_contact: TooManyTargets",
    "invite_contact: DuplicateEndpoint",
    "invite_contact: UnknownEndpoint",
    "invite_contact: RevokedEndpoint",
    "invite_contact: UnknownContact",
    "invite_endpoint: Ok",
    "invite_endpoint: InvitationsFull",
    "invite_endpoint: PoolFull",
    "invite_endpoint: BadMessage",
    "invite_endpoint: DataTooLarge",
    "invite_endpoint: DurationTooLong",
    "cancel: Ok",
    "cancel: UnknownHandle",
    "close: Ok",
    "close: UnknownHandle",
    "response: Ok",
    "respond: Ok",
    "respond: ReasonTooLong",
    "respond: UnknownIncoming",
    "release: Ok",
    "release: NoLaunchInfo",
    "launch_info: Ok",
    "event Invited",
    "event IncomingEnded",
    "event Responded",
    "event Ringing",
    "event ContactUpdated",
    "datagram: Ok",
    "datagram: Full",
    "datagram: Session",
    "datagram: Malformed",
    "datagram: UnknownIndex",
];

fn assert_reached(tally: &BTreeMap<String, usize>) {
    let missing: Vec<_> = MUST_REACH.iter().filter(|k| !tally.contains_key(**k)).collect();
    assert!(missing.is_empty(), "the runs never reached {missing:?}; reached {tally:#?}");
}

#[test]
fn any_commands_and_datagrams_never_panic() {
    let tally = run_ops_property(96, 0x41, false);
    assert_reached(&tally);
}

#[test]
fn refused_commands_change_nothing() {
    let tally = run_ops_property(96, 0x42, true);
    assert_reached(&tally);
}

// =============================================================================
// Scripted users of agent nodes on the virtual network (properties 3 and 4)
// =============================================================================

/// How a user answers a presented invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UserReaction {
    /// `None`: never.
    answer: Option<Answer>,
    after_ms: u64,
    /// Release the launch information at once once accepted.
    release: bool,
}

const IGNORE: UserReaction = UserReaction { answer: None, after_ms: 0, release: false };

/// An outgoing invitation to start.
#[derive(Clone, Debug)]
struct Plan {
    via: Via,
    app: AppId,
    message: String,
    data: Vec<u8>,
    options: InviteOptions,
}

#[derive(Clone, Debug)]
enum Via {
    Contact(ContactId, Vec<Target>),
    Endpoint(SocketAddr),
}

enum Action {
    /// Start invitation `k` of the scenario.
    Invite(usize, Box<Plan>),
    Cancel(usize),
    Close(usize),
    Respond(IncomingId, Answer),
}

/// What the scripted user at a node does and has seen: it answers presented
/// invitations in the order of `reactions`, then as `otherwise`, and runs
/// [`Action`]s at their times ([`schedule`]).
#[derive(Debug)]
struct User {
    reactions: VecDeque<UserReaction>,
    otherwise: UserReaction,
    release: BTreeSet<IncomingId>,
    /// Invitation `k` of the scenario: what starting it returned.
    handles: BTreeMap<usize, Result<Option<Handle>, AgentError>>,
    /// Handles closed: `events.len()` when closed.
    closed: BTreeMap<Handle, usize>,
    /// Results of answers, cancels, closes and releases.
    results: Vec<(Instant, String, Result<(), AgentError>)>,
    violations: Vec<String>,
}

/// A node's user, shared by the node's watcher and scripts and the checks.
type Shared = Rc<RefCell<User>>;

/// An agent of any capacities for `local` on the network, at node `id`,
/// with a scripted user who ignores every invitation until told otherwise.
fn peer<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>(
    local: LocalIdentity,
    seed: u64,
    id: NodeId,
    book: &AddressBook,
    config: AgentConfig,
) -> (AgentNode<C, A, I, B, R>, Shared) {
    let mut node = AgentNode::with_agent_seed(local, seed_bytes(seed, 3), id, book, config);
    node.reaction = Reaction::Ignore;
    let user = Rc::new(RefCell::new(User {
        reactions: VecDeque::new(),
        otherwise: IGNORE,
        release: BTreeSet::new(),
        handles: BTreeMap::new(),
        closed: BTreeMap::new(),
        results: Vec::new(),
        violations: Vec::new(),
    }));
    let watcher = Rc::clone(&user);
    node.watch(move |n, now, e| react(n, &watcher, now, e));
    (node, user)
}

/// What `user` does on seeing event `e` at node `n`.
fn react<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>(
    n: &mut AgentNode<C, A, I, B, R>,
    user: &Shared,
    now: Instant,
    e: Event,
) {
    match e {
        Event::Invited(id) => {
            if let Err(err) = n.agent.incoming(id) {
                user.borrow_mut()
                    .violations
                    .push(format!("{e:?} at {now:?}, yet incoming() is {err:?}"));
            }
            let r = {
                let mut u = user.borrow_mut();
                let r = u.reactions.pop_front().unwrap_or(u.otherwise);
                if r.release {
                    u.release.insert(id);
                }
                r
            };
            if let Some(answer) = r.answer {
                schedule(n, user, now + ms(r.after_ms), Action::Respond(id, answer));
            }
        }
        Event::IncomingEnded { incoming, outcome: Outcome::Accepted }
            if user.borrow().release.contains(&incoming) =>
        {
            let r = n.agent.release(incoming);
            user.borrow_mut().results.push((now, format!("release {incoming:?}"), r));
        }
        _ => {}
    }
}

/// `user` takes `action` at node `n` at `when`.
fn schedule<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>(
    n: &mut AgentNode<C, A, I, B, R>,
    user: &Shared,
    when: Instant,
    action: Action,
) {
    let user = Rc::clone(user);
    n.at(when, move |n, now| act(n, &user, now, action));
}

/// `user` takes `action` at node `n` now, and notes what it returned.
fn act<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>(
    n: &mut AgentNode<C, A, I, B, R>,
    user: &Shared,
    now: Instant,
    action: Action,
) {
    let mut u = user.borrow_mut();
    match action {
        Action::Invite(k, plan) => {
            let request =
                InvitationRequest { app_id: plan.app, message: &plan.message, data: &plan.data };
            let r = match &plan.via {
                Via::Contact(c, targets) => {
                    n.agent.invite_contact(now, *c, targets, &request, plan.options)
                }
                Via::Endpoint(to) => n.agent.invite_endpoint(now, *to, &request, plan.options),
            };
            u.handles.insert(k, r);
        }
        Action::Cancel(k) => {
            if let Some(Ok(Some(h))) = u.handles.get(&k).cloned() {
                let r = n.agent.cancel(now, h).map(|_| ());
                u.results.push((now, format!("cancel #{k}"), r));
            }
        }
        Action::Close(k) => {
            if let Some(Ok(Some(h))) = u.handles.get(&k).cloned() {
                let r = n.agent.close(now, h);
                if r.is_ok() {
                    u.closed.insert(h, n.events.len());
                }
                u.results.push((now, format!("close #{k}"), r));
            }
        }
        Action::Respond(id, answer) => {
            let r = n.agent.respond(now, id, answer, "");
            u.results.push((now, format!("respond {id:?} {answer:?}"), r));
        }
    }
}

/// The outcomes node `node` reported for invitation `k` of the scenario.
fn outcomes(net: &Network, users: &[Shared], node: NodeId, k: usize) -> Vec<Outcome> {
    match users[node].borrow().handles.get(&k) {
        Some(Ok(Some(h))) => net.node::<Big>(node).responded(*h),
        _ => Vec::new(),
    }
}

/// Agents as large as [`TestAgent`].
type Big = AgentNode;

/// Identity `j` of world `w` (of four worlds of fixed identities).
fn secret_of(w: u64, j: usize) -> IdentitySecret {
    IdentitySecret::generate(&mut HashDrbg::from_u64(0x5eed_0000 + (w % 4) * 64 + j as u64))
}

/// Endpoint `e` of identity `j` of world `w`.
fn endpoint_of(w: u64, j: usize, e: u32) -> LocalIdentity {
    let mut rng = HashDrbg::from_u64(0xe0e0_0000 + ((w % 4) * 64 + j as u64) * 64 + u64::from(e));
    LocalIdentity::new(secret_of(w, j), KeyPair::generate(&mut rng), EndpointId(e), 1)
}

/// The card of identity `j` of world `w` naming its first `count`
/// endpoints and no address (invitations name their targets' addresses).
/// Cached: issuing verifies every certificate, which is slow in debug
/// builds.
fn card_of(w: u64, j: usize, count: u32) -> ContactCard {
    static CARDS: Mutex<BTreeMap<(u64, usize, u32), ContactCard>> = Mutex::new(BTreeMap::new());
    let mut cards = CARDS.lock().unwrap_or_else(PoisonError::into_inner);
    cards
        .entry((w % 4, j, count))
        .or_insert_with(|| {
            let certs: Vec<Certificate> =
                (0..count).map(|e| *endpoint_of(w, j, e).certificate()).collect();
            ContactCard::issue(&secret_of(w, j), &format!("identity {j}"), &certs, &[])
                .expect("card")
        })
        .clone()
}

/// Runs `net` until nothing is left to do; a livelock, or a network still
/// busy after `until_ms`, is an error.
fn settle(net: &mut Network, until_ms: u64) -> Result<(), String> {
    net.run(2_000_000, at(until_ms), |_| false).map_err(|l| format!("livelock: {l:?}"))?;
    match net.next_event_time() {
        None => Ok(()),
        Some(t) => Err(format!("still busy at {:?} (next event {t:?})", net.now)),
    }
}

// =============================================================================
// Property 3: full tables
// =============================================================================

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// The invitee never answers: the invitation rings until it expires.
    Ignore,
    /// The invitee accepts and keeps the launch information.
    AcceptKeep,
}

#[derive(Clone, Debug)]
struct FullCase {
    seed: u64,
    message_len: usize,
    data_len: usize,
    /// Invitations to the invitee go over IK (else XX).
    ik: bool,
    latency_ms: u64,
    hold: Hold,
}

impl FullCase {
    fn message(&self) -> String {
        "m".repeat(self.message_len)
    }

    fn data(&self) -> Vec<u8> {
        (0..self.data_len).map(|i| (i as u64 ^ self.seed) as u8).collect()
    }
}

fn full_case() -> impl Strategy<Value = FullCase> {
    (
        any::<u64>(),
        1usize..=MAX_MESSAGE_CHARS,
        prop_oneof![Just(0usize), 1usize..=MAX_APP_DATA],
        any::<bool>(),
        1u64..=300,
        prop_oneof![Just(Hold::Ignore), Just(Hold::AcceptKeep)],
    )
        .prop_map(|(seed, message_len, data_len, ik, latency_ms, hold)| FullCase {
            seed,
            message_len,
            data_len,
            ik,
            latency_ms,
            hold,
        })
}

/// The tables of one agent, filled by commands: each full table has its
/// error, and nothing changes.
fn full_tables_refuse_commands(c: &FullCase) -> Result<(), TestCaseError> {
    let w = c.seed;
    let mut x = Small::new(endpoint_of(w, 0, 0), AgentConfig::default(), seed_bytes(c.seed, 9));
    let now = Instant::ZERO;
    let (a, b, d) = (card_of(w, 1, 1), card_of(w, 2, 1), card_of(w, 3, 1));
    let first = x.add_contact(&a, Trust::Known).expect("first contact");
    x.add_contact(&b, Trust::Trusted).expect("second contact");
    prop_assert_eq!(x.add_contact(&d, Trust::Known), Err(AgentError::ContactsFull));
    // A known identity is named, full table or not; so is the own one.
    prop_assert_eq!(x.add_contact(&a, Trust::Trusted), Err(AgentError::AlreadyExists(first)));
    let own = card_of(w, 0, 1);
    prop_assert_eq!(x.add_contact(&own, Trust::Trusted), Err(AgentError::OwnIdentity));
    prop_assert_eq!(x.contacts().count(), 2);
    x.remove_contact(now, first).expect("remove");
    x.add_contact(&d, Trust::Known).expect("room again");

    x.register_application(APPS[0], "zero", None).expect("app");
    x.register_application(APPS[1], "one", Some(Policy::TrustedOnly)).expect("app");
    prop_assert_eq!(
        x.register_application(APPS[2], "two", None),
        Err(AgentError::ApplicationsFull)
    );
    // Replacing a registration needs no room.
    x.register_application(APPS[0], "zero again", Some(Policy::Nobody)).expect("replace");
    prop_assert_eq!(x.applications().count(), 2);
    prop_assert!(x.application(APPS[2]).is_none());

    // One body buffer: a second invitation with a body finds none, one
    // without needs none.
    let (message, data) = (c.message(), c.data());
    let with_body = InvitationRequest { app_id: APPS[0], message: &message, data: &data };
    let empty = InvitationRequest { app_id: APPS[0], message: "", data: &[] };
    let opts = InviteOptions::default();
    let to = stranger_addr();
    x.invite_endpoint(now, to, &with_body, opts).expect("first invitation");
    prop_assert_eq!(x.buffers_free(), 0);
    prop_assert_eq!(
        x.invite_endpoint(now, to, &with_body, opts),
        Err(AgentError::Invitation(InviteError::PoolFull))
    );
    prop_assert_eq!(x.invitations_in_use(), 1);
    // Two slots: a contact invitation to two endpoints needs both.
    let two = card_of(w, 4, 2);
    let removed = x.contacts().next().map(|(id, _)| id).expect("a contact");
    x.remove_contact(now, removed).expect("remove");
    let two_id = x.add_contact(&two, Trust::Trusted).expect("add");
    let targets: Vec<Target> =
        (0..2).map(|e| Target { endpoint: EndpointId(e), address: stranger_addr() }).collect();
    prop_assert_eq!(
        x.invite_contact(now, two_id, &targets, &empty, opts),
        Err(AgentError::InvitationsFull)
    );
    x.invite_endpoint(now, to, &empty, opts).expect("second invitation");
    prop_assert_eq!(x.invite_endpoint(now, to, &empty, opts), Err(AgentError::InvitationsFull));
    prop_assert_eq!(
        x.invite_contact(now, two_id, &targets[..1], &empty, opts),
        Err(AgentError::InvitationsFull)
    );
    prop_assert_eq!(x.invitations_in_use(), 2);
    prop_assert_eq!(x.handles_in_use(), 2);
    Ok(())
}

/// An invitee V (node 0) of capacities `<4, 2, I, B, R>` and three
/// inviters (nodes 1 to 3) of [`Big`] size, inviting V at 0, 1 and 2 s: the
/// first two with the case's body, the third with it if `third_body`, else
/// with none. V holds what it is presented as the case says. Runs to the
/// end; returns the network and the nodes' users.
fn three_invite<const I: usize, const B: usize, const R: usize>(
    c: &FullCase,
    third_body: bool,
) -> Result<(Network, Vec<Shared>), TestCaseError> {
    let book = AddressBook::default();
    let mut net = Network::new(c.seed, Faults::clean(c.latency_ms));
    let (mut v, v_user) =
        peer::<4, 2, I, B, R>(endpoint_of(c.seed, 0, 0), c.seed, 0, &book, AgentConfig::default());
    v.agent.register_application(APPS[0], "app", None).expect("register");
    v_user.borrow_mut().otherwise = match c.hold {
        Hold::Ignore => IGNORE,
        Hold::AcceptKeep => {
            UserReaction { answer: Some(Answer::Accept), after_ms: 0, release: false }
        }
    };
    let v_card = card_of(c.seed, 0, 1);
    let v_target = Target { endpoint: EndpointId(0), address: v.address() };
    net.add(Box::new(v));
    let mut users = vec![v_user];
    for i in 0..3u64 {
        let id = net.nodes.len();
        let local = endpoint_of(c.seed, 1 + i as usize, 0);
        let (mut u, user): (Big, _) = peer(local, c.seed + i, id, &book, AgentConfig::default());
        let body = i < 2 || third_body;
        let via = if c.ik {
            let contact = u.agent.add_contact(&v_card, Trust::Known).expect("add V");
            Via::Contact(contact, vec![v_target])
        } else {
            Via::Endpoint(v_target.address)
        };
        let plan = Plan {
            via,
            app: APPS[0],
            message: if body { c.message() } else { String::new() },
            data: if body { c.data() } else { Vec::new() },
            options: InviteOptions::default(),
        };
        schedule(&mut u, &user, at(i * 1_000), Action::Invite(0, Box::new(plan)));
        net.add(Box::new(u));
        users.push(user);
    }
    settle(&mut net, 3_600_000).map_err(TestCaseError::fail)?;
    for (i, u) in users.iter().enumerate().skip(1) {
        let u = u.borrow();
        prop_assert!(
            matches!(u.handles.get(&0), Some(Ok(Some(_)))),
            "inviter {i} could not invite: {:?}",
            u.handles.get(&0)
        );
        prop_assert!(u.violations.is_empty(), "inviter {i}: {:?}", u.violations);
    }
    Ok((net, users))
}

fn full_invitee_answers_busy(c: &FullCase) -> Result<(), TestCaseError> {
    // Remembered ids full (two): the third invitation is answered Busy until
    // the first id is forgotten.
    let (net, users) = three_invite::<4, 4, 2>(c, true)?;
    let remember = DEFAULT_MAX_EXPIRY.saturating_add(EXPIRY_GRACE);
    let v = net.node::<AgentNode<4, 2, 4, 4, 2>>(0);
    let third = outcomes(&net, &users, 3, 0);
    prop_assert_eq!(v.invited(), 2, "remembered ids full: V was presented {}", v.invited());
    prop_assert_eq!(v.agent.stats().full, 0);
    prop_assert!(
        matches!(third.as_slice(), [Outcome::Busy { retry_after }]
            if *retry_after <= remember && *retry_after >= remember.saturating_sub(ms(3_000))),
        "remembered ids full: the third inviter ended {third:?}"
    );

    // Buffer pool full (one, held by the first invitation): the second,
    // with a body, is answered Busy; the third, without, is presented.
    let (net, users) = three_invite::<4, 1, 8>(c, false)?;
    let v = net.node::<AgentNode<4, 2, 4, 1, 8>>(0);
    let second = outcomes(&net, &users, 2, 0);
    let third = outcomes(&net, &users, 3, 0);
    prop_assert_eq!(
        second,
        vec![Outcome::Busy { retry_after: POOL_BUSY_RETRY_AFTER }],
        "buffer pool full: the second inviter"
    );
    prop_assert_eq!(v.invited(), 2);
    let expected = match c.hold {
        Hold::Ignore => Outcome::Expired,
        Hold::AcceptKeep => Outcome::Accepted,
    };
    prop_assert_eq!(third, vec![expected], "the third inviter needs no buffer");

    // Slots full (two): the third initiation is dropped, as documented
    // (Dropped::Full), and its inviter finds nobody.
    let (net, users) = three_invite::<2, 4, 8>(c, true)?;
    let v = net.node::<AgentNode<4, 2, 2, 4, 8>>(0);
    let third = outcomes(&net, &users, 3, 0);
    prop_assert!(v.agent.stats().full >= 1, "slots full, yet nothing dropped Full");
    prop_assert_eq!(v.invited(), 2);
    prop_assert_eq!(third, vec![Outcome::Unreachable]);
    Ok(())
}

#[test]
fn full_capacities_answer_with_an_error_or_busy() {
    let started = std::time::Instant::now();
    let mut runner = runner(16, 0x43);
    let result = runner.run(&full_case(), |c| {
        full_tables_refuse_commands(&c)?;
        full_invitee_answers_busy(&c)
    });
    println!("{} cases in {:.1?}", runner.config().cases, started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
}

// =============================================================================
// Property 4: every invitation has exactly one outcome
// =============================================================================

/// Whom an endpoint invitation expects to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Anyone,
    /// The identity of the node invited.
    Right,
    /// An identity nobody has (the invitation must fail).
    Wrong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    /// Another identity than the inviter's (the `identity`-th, those with
    /// the most live endpoints first) at `legs` of its endpoints (as many as
    /// it has, at most three), starting with endpoint `first`, if the
    /// inviter holds its card; else its first endpoint by address.
    Contact { identity: usize, legs: u32, first: u32 },
    /// Another node, by address.
    Endpoint { node: usize, expect: Expect },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodySpec {
    Empty,
    /// The message names the invitation ("#k").
    Tag,
    /// That and this much data.
    TagData(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Cancel,
    Close,
}

#[derive(Clone, Debug)]
struct InviteSpec {
    at_ms: u64,
    from: usize,
    to: To,
    app: usize,
    body: BodySpec,
    expiry_ms: u64,
    discard: bool,
    /// The inviter's user cancels or closes this long after inviting.
    then: Option<(u64, Then)>,
}

#[derive(Clone, Debug)]
struct NodeSpec {
    /// Which of three identities (their endpoints are numbered in node
    /// order).
    identity: usize,
    policy: Policy,
    /// The first two applications: registered (with an optional policy of
    /// their own) or not.
    apps: (Option<Option<Policy>>, Option<Option<Policy>>),
    /// Which identities it holds the card of, and how trusted.
    knows: (Option<Trust>, Option<Trust>, Option<Trust>),
    /// How its user answers the invitations presented, in order; then
    /// `otherwise`.
    reactions: Vec<UserReaction>,
    otherwise: UserReaction,
}

#[derive(Clone, Debug)]
struct NetScenario {
    seed: u64,
    faults: Faults,
    nodes: Vec<NodeSpec>,
    /// Each identity's card names one more endpoint, which nobody runs.
    dead: (bool, bool, bool),
    invitations: Vec<InviteSpec>,
}

fn user_reaction() -> impl Strategy<Value = UserReaction> {
    let answer = prop_oneof![
        5 => Just(Some(Answer::Accept)),
        2 => Just(Some(Answer::Decline)),
        1 => (0u64..=60_000).prop_map(|r| Some(Answer::Busy { retry_after: ms(r) })),
        2 => Just(None),
    ];
    let after = prop_oneof![3 => 0u64..=3_000, 1 => 0u64..=150_000];
    (answer, after, prop::bool::weighted(0.7))
        .prop_map(|(answer, after_ms, release)| UserReaction { answer, after_ms, release })
}

fn trust() -> impl Strategy<Value = Option<Trust>> {
    prop_oneof![1 => Just(None), 2 => Just(Some(Trust::Trusted)), 1 => Just(Some(Trust::Known))]
}

fn app_registration() -> impl Strategy<Value = Option<Option<Policy>>> {
    prop_oneof![1 => Just(None), 4 => Just(Some(None)), 1 => policy().prop_map(|p| Some(Some(p)))]
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    let global = prop_oneof![6 => Just(Policy::Anyone), 2 => Just(Policy::TrustedOnly), 1 => Just(Policy::Nobody)];
    // Identity 0 more often: several nodes of one identity make contact
    // invitations to several endpoints.
    (
        prop_oneof![3 => Just(0usize), 2 => Just(1usize), 2 => Just(2usize)],
        global,
        (app_registration(), app_registration()),
        (trust(), trust(), trust()),
        prop::collection::vec(user_reaction(), 0..4),
        user_reaction(),
    )
        .prop_map(|(identity, policy, apps, knows, reactions, otherwise)| NodeSpec {
            identity,
            policy,
            apps,
            knows,
            reactions,
            otherwise,
        })
}

fn invite_spec() -> impl Strategy<Value = InviteSpec> {
    let to = prop_oneof![
        3 => (
            prop_oneof![2 => Just(0usize), 1 => 0usize..3],
            prop_oneof![1 => Just(1u32), 2 => Just(2u32), 2 => Just(3u32)],
            0u32..4,
        )
            .prop_map(|(identity, legs, first)| To::Contact { identity, legs, first }),
        2 => (
            any::<usize>(),
            prop_oneof![4 => Just(Expect::Anyone), 2 => Just(Expect::Right), 1 => Just(Expect::Wrong)],
        )
            .prop_map(|(node, expect)| To::Endpoint { node, expect }),
    ];
    let body = prop_oneof![
        1 => Just(BodySpec::Empty),
        3 => Just(BodySpec::Tag),
        2 => (1usize..=300).prop_map(BodySpec::TagData),
        1 => (1000usize..=MAX_APP_DATA).prop_map(BodySpec::TagData),
    ];
    let then = prop::option::weighted(
        0.3,
        (
            prop_oneof![2 => 0u64..=5_000, 1 => 0u64..=90_000],
            prop_oneof![Just(Then::Cancel), Just(Then::Close)],
        ),
    );
    (
        prop_oneof![2 => 0u64..=5_000, 1 => 0u64..=60_000],
        any::<usize>(),
        to,
        prop_oneof![6 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)],
        body,
        5_000u64..=120_000,
        prop::bool::weighted(0.15),
        then,
    )
        .prop_map(|(at_ms, from, to, app, body, expiry_ms, discard, then)| InviteSpec {
            at_ms,
            from,
            to,
            app,
            body,
            expiry_ms,
            discard,
            then,
        })
}

fn net_faults() -> impl Strategy<Value = Faults> {
    let loss = prop_oneof![3 => Just(0u64), 3 => 0u64..=100, 2 => 0u64..=300];
    let dup = prop_oneof![1 => Just(0u64), 1 => 0u64..=200];
    (1u64..=200, 0u64..=200, loss, dup).prop_map(|(latency_ms, jitter_ms, loss, dup)| Faults {
        latency_ms,
        jitter_ms,
        loss_permille: loss,
        duplicate_permille: dup,
    })
}

fn net_scenario() -> impl Strategy<Value = NetScenario> {
    (
        any::<u64>(),
        net_faults(),
        prop::collection::vec(node_spec(), 2..=4),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec(invite_spec(), 1..=6),
    )
        .prop_map(|(seed, faults, nodes, dead, invitations)| NetScenario {
            seed,
            faults,
            nodes,
            dead,
            invitations,
        })
}

/// What the checks need to know of invitation `k`.
#[derive(Clone, Debug)]
struct Meta {
    inviter: NodeId,
    /// The nodes it reaches.
    targets: Vec<NodeId>,
    app: AppId,
    empty: bool,
    /// It expects an identity nobody has.
    wrong: bool,
    /// Endpoints invited (live or not).
    legs: usize,
    /// How: "contact", "endpoint", or "endpoint (not a contact)".
    how: &'static str,
}

struct BuiltNet {
    net: Network,
    /// Each node's user.
    users: Vec<Shared>,
    metas: Vec<Meta>,
    /// Each node's certificate.
    certs: Vec<Certificate>,
    /// When everything must have ended.
    end_ms: u64,
}

fn build_net(s: &NetScenario) -> BuiltNet {
    let w = s.seed;
    let n = s.nodes.len();
    let book = AddressBook::default();
    let mut net = Network::new(s.seed, s.faults);
    let ident: Vec<usize> = s.nodes.iter().map(|ns| ns.identity % 3).collect();
    let mut endpoint_no = vec![0u32; n];
    let mut live = [0u32; 3];
    for i in 0..n {
        endpoint_no[i] = live[ident[i]];
        live[ident[i]] += 1;
    }
    let dead = [s.dead.0, s.dead.1, s.dead.2];
    // An identity nobody runs still has a card, with one dead endpoint.
    let count: Vec<u32> = (0..3)
        .map(|j| if live[j] == 0 { 1 } else { live[j] + u32::from(dead[j] && live[j] < 4) })
        .collect();
    let dead_address = |j: usize| v4(10, 99, 0, j as u8, 7000);
    let node_at = |j: usize, e: u32| (0..n).find(|&i| ident[i] == j && endpoint_no[i] == e);
    let mut contacts = vec![[None; 3]; n];
    let mut certs = Vec::new();
    let mut users = Vec::new();
    for (i, spec) in s.nodes.iter().enumerate() {
        let local = endpoint_of(w, ident[i], endpoint_no[i]);
        certs.push(*local.certificate());
        let config = AgentConfig::with_policy(spec.policy);
        let (mut p, user): (Big, _) = peer(local, s.seed.wrapping_add(i as u64), i, &book, config);
        for (k, reg) in [spec.apps.0, spec.apps.1].into_iter().enumerate() {
            if let Some(policy) = reg {
                p.agent.register_application(APPS[k], "app", policy).expect("register");
            }
        }
        for (j, trust) in [spec.knows.0, spec.knows.1, spec.knows.2].into_iter().enumerate() {
            if let Some(trust) = trust
                && j != ident[i]
            {
                let card = card_of(w, j, count[j]);
                contacts[i][j] = Some(p.agent.add_contact(&card, trust).expect("add contact"));
            }
        }
        user.borrow_mut().reactions = spec.reactions.iter().copied().collect();
        user.borrow_mut().otherwise = spec.otherwise;
        net.add(Box::new(p));
        users.push(user);
    }
    let mut metas = Vec::new();
    let mut end_ms = 0;
    for (k, spec) in s.invitations.iter().enumerate() {
        let from = spec.from % n;
        let mut options = InviteOptions::default().expires_in(ms(spec.expiry_ms));
        if spec.discard {
            options = options.discard_handle();
        }
        let mut wrong = false;
        let (via, targets) = match spec.to {
            To::Contact { identity, legs, first } => {
                let mut others: Vec<usize> = (0..3).filter(|&j| j != ident[from]).collect();
                others.sort_by_key(|&j| std::cmp::Reverse(live[j]));
                let j = others[identity % others.len()];
                match contacts[from][j] {
                    Some(c) => {
                        let endpoints: Vec<u32> =
                            (0..legs.min(count[j])).map(|i| (first + i) % count[j]).collect();
                        let targets = endpoints
                            .iter()
                            .map(|&e| Target {
                                endpoint: EndpointId(e),
                                address: node_at(j, e)
                                    .map_or(dead_address(j), AddressBook::default_address),
                            })
                            .collect();
                        let live_targets =
                            endpoints.iter().filter_map(|&e| node_at(j, e)).collect();
                        (Via::Contact(c, targets), live_targets)
                    }
                    None => match (0..n).find(|&i| ident[i] == j && i != from) {
                        Some(i) => (Via::Endpoint(AddressBook::default_address(i)), vec![i]),
                        None => (Via::Endpoint(dead_address(j)), Vec::new()),
                    },
                }
            }
            To::Endpoint { node, expect } => {
                let to = (from + 1 + node % (n - 1)) % n;
                match expect {
                    Expect::Anyone => {}
                    Expect::Right => options = options.expect(secret_of(w, ident[to]).public()),
                    Expect::Wrong => {
                        wrong = true;
                        options = options.expect(secret_of(w, 7).public());
                    }
                }
                (Via::Endpoint(AddressBook::default_address(to)), vec![to])
            }
        };
        let (message, data) = match spec.body {
            BodySpec::Empty => (String::new(), Vec::new()),
            BodySpec::Tag => (format!("#{k}"), Vec::new()),
            BodySpec::TagData(len) => (format!("#{k}"), (0..len).map(|i| (i + k) as u8).collect()),
        };
        let app = APPS[spec.app % APPS.len()];
        let legs = match &via {
            Via::Contact(_, t) => t.len(),
            Via::Endpoint(_) => 1,
        };
        let how = match (&spec.to, &via) {
            (To::Contact { .. }, Via::Contact(..)) => "contact",
            (To::Contact { .. }, Via::Endpoint(_)) => "endpoint (not a contact)",
            _ => "endpoint",
        };
        let empty = message.is_empty();
        metas.push(Meta { inviter: from, targets, app, empty, wrong, legs, how });
        let plan = Plan { via, app, message, data, options };
        let node = net.node_mut::<Big>(from);
        schedule(node, &users[from], at(spec.at_ms), Action::Invite(k, Box::new(plan)));
        let mut last = spec.at_ms;
        if let Some((after, then)) = spec.then {
            let action = match then {
                Then::Cancel => Action::Cancel(k),
                Then::Close => Action::Close(k),
            };
            schedule(node, &users[from], at(spec.at_ms + after), action);
            last += after;
        }
        end_ms = end_ms.max(last + spec.expiry_ms);
    }
    // Past every expiry: give-ups, Finals, lingering and slow answers.
    BuiltNet { net, users, metas, certs, end_ms: end_ms + 600_000 }
}

/// What happened, for a failure message.
fn net_timeline(s: &NetScenario, b: &BuiltNet) -> String {
    let mut out = format!("scenario: {s:#?}\nended at {} ms\n", b.net.now.as_millis());
    for (k, m) in b.metas.iter().enumerate() {
        let _ = writeln!(out, "invitation #{k}: {m:?}");
    }
    for i in 0..b.net.nodes.len() {
        let p = b.net.node::<Big>(i);
        let u = b.users[i].borrow();
        let _ = writeln!(
            out,
            "node {i} ({:?}): handles {:?} closed {:?} unroutable {} dropped {}",
            p.agent.identity().certificate().endpoint(),
            u.handles,
            u.closed,
            p.unroutable,
            p.dropped.len()
        );
        for (t, e) in &p.events {
            let _ = writeln!(out, "  {:>9} ms  {e:?}", t.as_millis());
        }
        for pr in &p.presented {
            let _ = writeln!(
                out,
                "  presented {:?}: {:?} from {:?} app {:?} data {}",
                pr.incoming,
                pr.message,
                pr.inviter.endpoint(),
                pr.app_id,
                pr.data.len()
            );
        }
        for (t, what, r) in &u.results {
            let _ = writeln!(out, "  {:>9} ms  {what}: {r:?}", t.as_millis());
        }
    }
    out
}

/// The invitation a presented one is, if it can be told.
fn which(p: &Seen, node: NodeId, metas: &[Meta], certs: &[Certificate]) -> Option<usize> {
    if let Some(k) = p.message.strip_prefix('#').and_then(|t| t.parse::<usize>().ok()) {
        return Some(k);
    }
    let inviter = certs.iter().position(|c| *c == p.inviter)?;
    let mut candidates = metas.iter().enumerate().filter(|(_, m)| {
        m.empty && m.inviter == inviter && m.app == p.app_id && m.targets.contains(&node)
    });
    match (candidates.next(), candidates.next()) {
        (Some((k, _)), None) => Some(k),
        _ => None,
    }
}

#[allow(clippy::too_many_lines)]
fn check_net(s: &NetScenario, tally: &mut BTreeMap<String, usize>) -> Result<(), TestCaseError> {
    let mut b = build_net(s);
    let settled = settle(&mut b.net, b.end_ms);
    let b = &b;
    let fail = |what: String| TestCaseError::fail(format!("{what}\n{}", net_timeline(s, b)));
    macro_rules! check {
        ($cond:expr, $($msg:tt)+) => {
            if !$cond {
                return Err(fail(format!($($msg)+)));
            }
        };
    }
    check!(settled.is_ok(), "{settled:?}");
    let n = b.net.nodes.len();
    // invitation → nodes whose user saw it end Accepted
    let mut accepted_at: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
    // invitation → (node, outcome) of every endpoint that presented it
    let mut ended_at: BTreeMap<usize, Vec<(NodeId, Outcome)>> = BTreeMap::new();
    for i in 0..n {
        let p = b.net.node::<Big>(i);
        let u = b.users[i].borrow();
        check!(u.violations.is_empty(), "node {i}: {:?}", u.violations);
        // Every presented invitation ends exactly once, after it was presented.
        let mut invited: BTreeMap<IncomingId, usize> = BTreeMap::new();
        let mut ended: BTreeMap<IncomingId, Vec<Outcome>> = BTreeMap::new();
        for (_, e) in &p.events {
            match e {
                Event::Invited(id) => *invited.entry(*id).or_default() += 1,
                Event::IncomingEnded { incoming, outcome } => {
                    check!(
                        invited.contains_key(incoming),
                        "node {i}: {incoming:?} ended {outcome:?} before or without Invited"
                    );
                    ended.entry(*incoming).or_default().push(*outcome);
                }
                _ => {}
            }
        }
        for (id, count) in &invited {
            check!(*count == 1, "node {i}: {id:?} Invited {count} times");
            let outcomes = ended.get(id).cloned().unwrap_or_default();
            check!(outcomes.len() == 1, "node {i}: {id:?} ended {outcomes:?}");
            *tally.entry(format!("invitee {}", variant(&outcomes[0]))).or_default() += 1;
        }
        for pr in &p.presented {
            let k = which(pr, i, &b.metas, &b.certs);
            if let Some(k) = k {
                check!(
                    !b.metas[k].wrong,
                    "node {i} was presented #{k}, which expected another identity"
                );
            }
            let outcome = ended.get(&pr.incoming).map(|o| o[0]);
            if let (Some(k), Some(o)) = (k, outcome) {
                ended_at.entry(k).or_default().push((i, o));
            }
            if outcome == Some(Outcome::Accepted) {
                match k {
                    Some(k) => accepted_at.entry(k).or_default().push(i),
                    None => *tally.entry("accepted, ambiguous".into()).or_default() += 1,
                }
            }
        }
        // Nothing leaks: once everything ended, the handles in use are the
        // open ones, and the slots and buffers in use are those of accepted
        // invitations whose launch information was kept.
        let open = u
            .handles
            .values()
            .filter(|r| matches!(r, Ok(Some(h)) if !u.closed.contains_key(h)))
            .count();
        check!(
            p.agent.handles_in_use() == open,
            "node {i}: {} handles in use, {open} open",
            p.agent.handles_in_use()
        );
        let kept: Vec<&Seen> = p
            .presented
            .iter()
            .filter(|pr| {
                ended.get(&pr.incoming).is_some_and(|o| o == &[Outcome::Accepted])
                    && !u.release.contains(&pr.incoming)
            })
            .collect();
        check!(
            p.agent.invitations_in_use() == kept.len(),
            "node {i}: {} invitation slots in use, {} launch infos kept",
            p.agent.invitations_in_use(),
            kept.len()
        );
        let bodies = kept.iter().filter(|pr| !pr.message.is_empty() || !pr.data.is_empty()).count();
        check!(
            p.agent.buffers_free() == 4 - bodies,
            "node {i}: {} buffers free, {bodies} held by launch infos",
            p.agent.buffers_free()
        );
        for (_, what, r) in &u.results {
            check!(!what.starts_with("release") || r.is_ok(), "node {i}: {what}: {r:?}");
        }
    }
    for (k, meta) in b.metas.iter().enumerate() {
        let p = b.net.node::<Big>(meta.inviter);
        let u = b.users[meta.inviter].borrow();
        let accepted_by = accepted_at.get(&k).cloned().unwrap_or_default();
        *tally.entry(format!("{} legs", meta.legs)).or_default() += 1;
        *tally.entry(format!("via {}", meta.how)).or_default() += 1;
        if let Some(at) = ended_at.get(&k).filter(|at| at.len() > 1) {
            *tally.entry(format!("presented at {} endpoints", at.len())).or_default() += 1;
        }
        // At most one endpoint accepts an invitation.
        check!(accepted_by.len() <= 1, "#{k} was accepted at nodes {accepted_by:?}");
        let result = u.handles.get(&k);
        check!(result.is_some(), "#{k} was never started");
        let h = match result {
            Some(Ok(Some(h))) => *h,
            Some(Err(e)) => {
                *tally.entry(format!("refused {}", error_kind(e))).or_default() += 1;
                check!(accepted_by.is_empty(), "#{k} was refused ({e:?}) yet accepted");
                continue;
            }
            _ => {
                *tally.entry("discarded".into()).or_default() += 1;
                continue;
            }
        };
        let named: Vec<(usize, &Event)> = p
            .events
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| match e {
                Event::Ringing(x) | Event::Responded { handle: x, .. } => *x == h,
                _ => false,
            })
            .map(|(idx, (_, e))| (idx, e))
            .collect();
        let outcomes: Vec<Outcome> = named
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Responded { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .collect();
        let ringing = named.iter().filter(|(_, e)| matches!(e, Event::Ringing(_))).count();
        check!(ringing <= 1, "#{k}: Ringing {ringing} times");
        check!(outcomes.len() <= 1, "#{k}: outcomes {outcomes:?}");
        match u.closed.get(&h) {
            None => {
                // The handle stayed open: exactly one outcome, and response()
                // says the same.
                check!(outcomes.len() == 1, "#{k}: open handle {h:?} got outcomes {outcomes:?}");
                let status = p.agent.response(h);
                check!(
                    matches!(status, Ok(Status::Answered(r)) if r.outcome == outcomes[0]),
                    "#{k}: reported {outcomes:?}, response() is {status:?}"
                );
                *tally.entry(format!("inviter {}", variant(&outcomes[0]))).or_default() += 1;
                // One endpoint that presented it, nothing lost: both sides
                // agree.
                if let (0, 1, Some([(node, o)])) =
                    (s.faults.loss_permille, meta.legs, ended_at.get(&k).map(Vec::as_slice))
                {
                    check!(
                        *o == outcomes[0],
                        "#{k}: nothing lost, the inviter ended {outcomes:?}, node {node} {o:?}"
                    );
                    *tally.entry("agreement checked".into()).or_default() += 1;
                }
                if let [node] = accepted_by.as_slice() {
                    check!(
                        outcomes[0] == Outcome::Accepted,
                        "#{k}: node {node} ended Accepted, the inviter {outcomes:?}"
                    );
                    let Ok(Status::Answered(r)) = status else { unreachable!() };
                    check!(
                        r.answered_by == Some(&b.certs[*node]),
                        "#{k}: accepted at node {node}, answered_by {:?}",
                        r.answered_by.map(Certificate::endpoint)
                    );
                }
                if meta.wrong {
                    check!(
                        matches!(
                            outcomes[0],
                            Outcome::Failed(_) | Outcome::Unreachable | Outcome::Cancelled(_)
                        ),
                        "#{k} expected another identity, yet ended {outcomes:?}"
                    );
                }
            }
            Some(&closed_at) => {
                // Nothing names a closed handle; an Accept at the invitee was
                // reported before the close (a close before the outcome
                // cancels).
                check!(
                    named.iter().all(|(idx, _)| *idx < closed_at),
                    "#{k}: an event names {h:?} after it was closed: {named:?}"
                );
                check!(
                    p.agent.response(h) == Err(AgentError::UnknownHandle),
                    "#{k}: closed, yet response() is {:?}",
                    p.agent.response(h)
                );
                if !accepted_by.is_empty() {
                    check!(
                        outcomes == [Outcome::Accepted],
                        "#{k}: accepted at node {accepted_by:?}, the inviter reported {outcomes:?} \
                         before closing"
                    );
                }
                *tally.entry("closed".into()).or_default() += 1;
            }
        }
    }
    Ok(())
}

#[test]
fn every_invitation_has_exactly_one_outcome() {
    let cases = 160;
    let tally = RefCell::new(BTreeMap::<String, usize>::new());
    let started = std::time::Instant::now();
    let mut runner = runner(cases, 0x44);
    let result = runner.run(&net_scenario(), |s| {
        let mut t = BTreeMap::new();
        check_net(&s, &mut t)?;
        let mut all = tally.borrow_mut();
        for (k, v) in t {
            *all.entry(k).or_default() += v;
        }
        Ok(())
    });
    println!("{} cases in {:.1?}", runner.config().cases, started.elapsed());
    let tally = tally.into_inner();
    println!("{tally:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    let must = [
        "inviter Accepted",
        "inviter Declined",
        "inviter Busy",
        "inviter Expired",
        "inviter Cancelled",
        "inviter Unreachable",
        "inviter NotRegistered",
        "inviter NotAccepted",
        "inviter Failed",
        "invitee Accepted",
        "invitee Declined",
        "invitee Expired",
        "invitee Cancelled",
        "closed",
        "discarded",
        "agreement checked",
        "3 legs",
        "presented at 2 endpoints",
    ];
    let missing: Vec<_> = must.iter().filter(|k| !tally.contains_key(**k)).collect();
    assert!(missing.is_empty(), "no case reached {missing:?}");
}

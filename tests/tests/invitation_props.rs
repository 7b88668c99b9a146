//! Property tests of one invitation between two parties over random
//! schedules: random faults, partitions, bodies, invitee behaviour, expiries
//! and cancels. Whatever happens, each side reports exactly one outcome, the
//! two agree whenever they could communicate, an invitee never ends Accepted
//! unless its inviter did, everything ends and frees its buffers, and the
//! same scenario replays byte for byte. A tally shows every inviter outcome
//! is reached.
//!
//! The runners are seeded (ChaCha, fixed seed, no failure persistence), so
//! every run generates the same scenarios; a failure prints the scenario and
//! its timeline (shrunk). 256 scenarios, each run twice, take about ten
//! seconds in a debug build. To search further, set `INVITATION_PROPS_CASES`
//! and `INVITATION_PROPS_SEED` (a byte); `INVITATION_PROPS_VERBOSE` prints
//! one line per case.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use peercollab_core::identity::IdentityKey;
use peercollab_core::invite::{
    Admission, Answer, AppId, CancelEffect, CancelReason, FailureCause, InvitationEvent,
    InviteeConfig, MAX_APP_DATA, MAX_MESSAGE_CHARS, Outcome,
};
use peercollab_core::{Duration, HashDrbg, Instant};
use peercollab_tests::party::{Command, OfferSpec, Party, Reaction};
use peercollab_tests::{Faults, Livelock, Network, Node, NodeId, TraceEntry};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

const APP: AppId = AppId([0x5a; 16]);
const INVITER: NodeId = 0;
const INVITEE: NodeId = 1;
/// The inviter's pool: one buffer is all its one invitation needs.
const INVITER_BUFFERS: usize = 1;
/// Steps allowed for one scenario before it counts as a livelock.
const MAX_STEPS: u64 = 200_000;

// ----- scenarios ------------------------------------------------------------

/// How the inviter calls the invitee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A contact (IK).
    Ik,
    /// An endpoint (XX), expecting nobody in particular, the invitee, or
    /// someone else (which must fail with IdentityMismatch).
    Xx(Expected),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Anyone,
    Invitee,
    SomeoneElse,
}

/// What the invitation carries. Data bytes are derived from the seed so a
/// printed scenario stays short.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Empty,
    Message(String),
    MessageAndData { message: String, data_len: usize },
}

/// What the invitee does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// Screening presents it; the user answers this long after it is
    /// presented.
    Answer { answer: Answer, after_ms: u64 },
    /// Screening presents it; the user never answers.
    Ignore,
    /// Screening refuses it.
    Screen(Admission),
}

/// Both directions cut from `start_ms` for `duration_ms` (`None`: forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Partition {
    start_ms: u64,
    duration_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Scenario {
    seed: u64,
    faults: Faults,
    mode: Mode,
    body: Body,
    behaviour: Behaviour,
    invitee_buffers: usize,
    expiry_ms: u64,
    invitee_max_expiry_ms: Option<u64>,
    cancel: Option<(u64, CancelReason)>,
    partition: Option<Partition>,
}

impl Scenario {
    fn offer(&self) -> OfferSpec {
        let (message, data_len) = match &self.body {
            Body::Empty => (String::new(), 0),
            Body::Message(m) => (m.clone(), 0),
            Body::MessageAndData { message, data_len } => (message.clone(), *data_len),
        };
        let data = (0..data_len).map(|i| (i as u64 * 31 + self.seed) as u8).collect();
        OfferSpec { app_id: APP, message, data, expires_in: Duration::from_millis(self.expiry_ms) }
    }

    fn body_is_empty(&self) -> bool {
        self.body == Body::Empty || self.body == Body::Message(String::new())
    }

    /// The two sides can talk: no partition, moderate loss, the right peer,
    /// and the inviter does not abandon the invitation before sending it.
    fn could_communicate(&self, abandoned: bool) -> bool {
        self.partition.is_none()
            && self.faults.loss_permille <= 100
            && self.mode != Mode::Xx(Expected::SomeoneElse)
            && !abandoned
    }
}

fn faults() -> impl Strategy<Value = Faults> {
    let loss = prop_oneof![3 => Just(0u64), 4 => 0u64..=100, 3 => 0u64..=300];
    let dup = prop_oneof![1 => Just(0u64), 1 => 0u64..=200];
    (1u64..=300, 0u64..=200, loss, dup).prop_map(|(latency_ms, jitter_ms, loss, dup)| Faults {
        latency_ms,
        jitter_ms,
        loss_permille: loss,
        duplicate_permille: dup,
    })
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        10 => Just(Mode::Ik),
        4 => Just(Mode::Xx(Expected::Anyone)),
        4 => Just(Mode::Xx(Expected::Invitee)),
        1 => Just(Mode::Xx(Expected::SomeoneElse)),
    ]
}

fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ,.!?]{1,40}",
        2 => "[a-zé✏️ ]{1,20}",
        // The longest message: 255 characters of four bytes each.
        1 => Just("😀".repeat(MAX_MESSAGE_CHARS)),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    let data_len =
        prop_oneof![3 => 1usize..=1200, 3 => 1usize..=MAX_APP_DATA, 1 => Just(MAX_APP_DATA)];
    prop_oneof![
        2 => Just(Body::Empty),
        3 => message().prop_map(Body::Message),
        4 => (message(), data_len)
            .prop_map(|(message, data_len)| Body::MessageAndData { message, data_len }),
    ]
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    let after = prop_oneof![2 => 0u64..=2_000, 1 => 0u64..=120_000];
    let retry = prop_oneof![Just(0u64), 1u64..=600_000];
    prop_oneof![
        6 => after.clone().prop_map(|after_ms| Behaviour::Answer { answer: Answer::Accept, after_ms }),
        2 => after.clone().prop_map(|after_ms| Behaviour::Answer { answer: Answer::Decline, after_ms }),
        2 => (after, retry.clone()).prop_map(|(after_ms, r)| Behaviour::Answer {
            answer: Answer::Busy { retry_after: Duration::from_millis(r) },
            after_ms,
        }),
        2 => Just(Behaviour::Ignore),
        1 => Just(Behaviour::Screen(Admission::NotRegistered)),
        1 => Just(Behaviour::Screen(Admission::NotAccepted)),
        1 => retry.prop_map(|r| Behaviour::Screen(Admission::Busy {
            retry_after: Duration::from_millis(r)
        })),
    ]
}

fn cancel() -> impl Strategy<Value = Option<(u64, CancelReason)>> {
    let at = prop_oneof![2 => 0u64..=3_000, 2 => 0u64..=60_000, 1 => 0u64..=150_000];
    let reason = prop_oneof![Just(CancelReason::ByUser), Just(CancelReason::AnsweredElsewhere)];
    prop_oneof![3 => Just(None), 1 => (at, reason).prop_map(Some)]
}

fn partition() -> impl Strategy<Value = Option<Partition>> {
    // Most outcomes are decided within seconds: start early more often.
    let start = prop_oneof![2 => 0u64..=5_000, 2 => 0u64..=60_000, 1 => 0u64..=150_000];
    let duration = prop_oneof![1 => (1_000u64..=120_000).prop_map(Some), 1 => Just(None)];
    prop_oneof![
        4 => Just(None),
        1 => (start, duration)
            .prop_map(|(start_ms, duration_ms)| Some(Partition { start_ms, duration_ms })),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let expiry = prop_oneof![2 => 5_000u64..=30_000, 3 => 5_000u64..=200_000];
    let max_expiry = prop_oneof![4 => Just(None), 1 => (1_000u64..=60_000).prop_map(Some)];
    let buffers = prop_oneof![1 => Just(0usize), 3 => Just(1usize), 2 => Just(2usize)];
    (
        (any::<u64>(), faults(), mode(), body(), behaviour()),
        (buffers, expiry, max_expiry, cancel(), partition()),
    )
        .prop_map(
            |(
                (seed, faults, mode, body, behaviour),
                (invitee_buffers, expiry_ms, invitee_max_expiry_ms, cancel, partition),
            )| Scenario {
                seed,
                faults,
                mode,
                body,
                behaviour,
                invitee_buffers,
                expiry_ms,
                invitee_max_expiry_ms,
                cancel,
                partition,
            },
        )
}

/// A seeded runner. `INVITATION_PROPS_CASES` and `INVITATION_PROPS_SEED`
/// (a byte) override the case count and the seed, to search further.
fn runner(cases: u32, seed: u8) -> TestRunner {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let cases = env("INVITATION_PROPS_CASES").unwrap_or(cases);
    let seed = env("INVITATION_PROPS_SEED").map_or(seed, |s| s as u8);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        // Shrinking re-runs whole scenarios; keep it bounded.
        max_shrink_iters: 256,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]))
}

// ----- running a scenario ---------------------------------------------------

/// Two parties that hold each other as contacts, set up as the scenario
/// says, with the invitation started at time zero.
fn build(s: &Scenario) -> Network {
    let mut net = Network::new(s.seed, s.faults);
    let a = net.add(Box::new(Party::new(s.seed.wrapping_mul(2).wrapping_add(1), INVITER_BUFFERS)));
    let b =
        net.add(Box::new(Party::new(s.seed.wrapping_mul(2).wrapping_add(2), s.invitee_buffers)));
    assert_eq!((a, b), (INVITER, INVITEE));
    let a_cert = *net.node::<Party>(a).local.certificate();
    let b_cert = *net.node::<Party>(b).local.certificate();
    let b_identity = net.node::<Party>(b).local.identity();
    net.node_mut::<Party>(a).add_contact(b_cert);
    net.node_mut::<Party>(b).add_contact(a_cert);

    let invitee = net.node_mut::<Party>(b);
    if let Some(ms) = s.invitee_max_expiry_ms {
        invitee.config = InviteeConfig::with_max_expiry(Duration::from_millis(ms));
    }
    match s.behaviour {
        Behaviour::Answer { answer, after_ms } => {
            invitee.reaction = Reaction::Answer {
                after: Duration::from_millis(after_ms),
                answer,
                reason: String::new(),
            };
        }
        Behaviour::Ignore => invitee.reaction = Reaction::Ignore,
        Behaviour::Screen(admission) => invitee.screen = Box::new(move |_, _| admission),
    }

    let offer = s.offer();
    let inviter = net.node_mut::<Party>(a);
    let slot = match s.mode {
        Mode::Ik => inviter.invite_contact(Instant::ZERO, b, b_cert, &offer),
        Mode::Xx(expected) => {
            let expected: Option<IdentityKey> = match expected {
                Expected::Anyone => None,
                Expected::Invitee => Some(b_identity),
                Expected::SomeoneElse => Some(Party::new(s.seed ^ 0xdead, 0).local.identity()),
            };
            inviter.invite_endpoint(Instant::ZERO, b, expected, &offer)
        }
    }
    .expect("invite");
    assert_eq!(slot, 0);
    if let Some((at, reason)) = s.cancel {
        inviter.schedule(Instant::from_millis(at), Command::Cancel { slot, reason });
    }
    net
}

/// Runs the scenario until nothing is left to do or the virtual deadline
/// (expiry + 10 minutes), applying the partition on the way.
fn run(s: &Scenario) -> (Network, Result<u64, Livelock>) {
    let mut net = build(s);
    let deadline = Instant::from_millis(s.expiry_ms + 600_000);
    let mut phases = Vec::new();
    if let Some(p) = s.partition {
        phases.push((p.start_ms, true));
        if let Some(d) = p.duration_ms {
            phases.push((p.start_ms + d, false));
        }
    }
    let mut steps = 0;
    let result = (|| {
        for (at, cut) in phases {
            let t = Instant::from_millis(at);
            // Stop before the step that reaches `t`: everything sent at or
            // after `t` sees the new links.
            steps += net
                .run(MAX_STEPS - steps, deadline, |n| n.next_event_time().is_none_or(|e| e >= t))?;
            if cut {
                net.cut = vec![(INVITER, INVITEE), (INVITEE, INVITER)];
            } else {
                net.cut.clear();
            }
        }
        steps += net.run(MAX_STEPS - steps, deadline, |_| false)?;
        Ok(steps)
    })();
    (net, result)
}

fn inviter(net: &Network) -> &Party {
    net.node::<Party>(INVITER)
}

fn invitee(net: &Network) -> &Party {
    net.node::<Party>(INVITEE)
}

fn variant(o: Option<Outcome>) -> &'static str {
    match o {
        None => "(none)",
        Some(Outcome::Accepted) => "Accepted",
        Some(Outcome::Declined) => "Declined",
        Some(Outcome::Busy { .. }) => "Busy",
        Some(Outcome::Expired) => "Expired",
        Some(Outcome::Cancelled(_)) => "Cancelled",
        Some(Outcome::Unreachable) => "Unreachable",
        Some(Outcome::NotRegistered) => "NotRegistered",
        Some(Outcome::NotAccepted) => "NotAccepted",
        Some(Outcome::Failed(_)) => "Failed",
        Some(_) => "(other)",
    }
}

const INVITER_VARIANTS: [&str; 9] = [
    "Accepted",
    "Declined",
    "Busy",
    "Expired",
    "Cancelled",
    "Unreachable",
    "NotRegistered",
    "NotAccepted",
    "Failed",
];

/// What happened, for a failure message: the scenario, each slot's events
/// and commands, and the datagrams (first and last ones if there are many).
fn timeline(s: &Scenario, net: &Network) -> String {
    let mut out = format!("scenario: {s:#?}\nended at {} ms\n", net.now.as_millis());
    for (name, id) in [("inviter", INVITER), ("invitee", INVITEE)] {
        let p = net.node::<Party>(id);
        let _ = writeln!(out, "{name}: pool free {} unrouted {:?}", p.pool.free(), p.unrouted);
        for (i, slot) in p.slots.iter().enumerate() {
            let _ = writeln!(out, "  slot {i}: state {:?}", slot.invitation.state());
            for (t, e) in &slot.events {
                let _ = writeln!(out, "    {:>9} ms  {e:?}", t.as_millis());
            }
            let _ = writeln!(out, "    commands {:?}", slot.command_results);
            let _ = writeln!(out, "    dropped {:?}", slot.dropped);
            let _ = writeln!(out, "    closed_at {:?}", slot.closed_at.map(Instant::as_millis));
            let _ = writeln!(out, "    stats {:?}", slot.invitation.stats());
        }
    }
    let name = |n: NodeId| if n == INVITER { "A" } else { "B" };
    let line = |e: &TraceEntry| match e {
        TraceEntry::Sent { at, from, to, bytes } => {
            format!(
                "{:>9} ms  {}→{} sent {} bytes",
                at.as_millis(),
                name(*from),
                name(*to),
                bytes.len()
            )
        }
        TraceEntry::Delivered { at, from, to, len } => {
            format!("{:>9} ms  {}→{} delivered {len}", at.as_millis(), name(*from), name(*to))
        }
        TraceEntry::Lost { at, from, to } => {
            format!("{:>9} ms  {}→{} LOST", at.as_millis(), name(*from), name(*to))
        }
    };
    let _ = writeln!(out, "trace ({} entries):", net.trace.len());
    let n = net.trace.len();
    for (i, e) in net.trace.iter().enumerate() {
        if n > 400 && (150..n - 150).contains(&i) {
            if i == 150 {
                let _ = writeln!(out, "  … {} entries …", n - 300);
            }
            continue;
        }
        let _ = writeln!(out, "  {}", line(e));
    }
    out
}

fn fail(s: &Scenario, net: &Network, what: &str) -> TestCaseError {
    TestCaseError::fail(format!("{what}\n{}", timeline(s, net)))
}

macro_rules! check {
    ($cond:expr, $s:expr, $net:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(fail($s, $net, &format!($($msg)+)));
        }
    };
}

/// Everything a party logged, for comparing two runs.
fn log(net: &Network) -> String {
    let mut out = String::new();
    for id in [INVITER, INVITEE] {
        let p = net.node::<Party>(id);
        let _ = writeln!(out, "{:?} {:?} {}", p.slots, p.unrouted, p.pool.free());
    }
    out
}

// ----- the properties -------------------------------------------------------

/// Checks properties 1–4 on one scenario; returns the two outcomes.
fn check_scenario(s: &Scenario) -> Result<(Option<Outcome>, Option<Outcome>), TestCaseError> {
    let (net, result) = run(s);
    let net = &net;
    check!(result.is_ok(), s, net, "livelock: {result:?}");

    let a = inviter(net);
    let b = invitee(net);
    check!(a.slots.len() == 1, s, net, "the inviter has {} slots, not 1", a.slots.len());
    let ours = &a.slots[0];
    let theirs = b.slots.first();
    let outcome_a = ours.outcome();
    let outcome_b = theirs.and_then(|t| t.outcome());

    // 1. Exactly one outcome per side; duplicates never surface twice.
    check!(ours.outcomes() == 1, s, net, "P1: the inviter reported {} outcomes", ours.outcomes());
    check!(
        ours.count(InvitationEvent::Ringing) <= 1,
        s,
        net,
        "P1: the inviter reported Ringing {} times",
        ours.count(InvitationEvent::Ringing)
    );
    check!(ours.count(InvitationEvent::Invited) == 0, s, net, "P1: the inviter was Invited");
    check!(
        b.slots.len() <= 1,
        s,
        net,
        "P1: one invitation became {} invitee slots (a duplicate initiation surfaced)",
        b.slots.len()
    );
    for (i, slot) in b.slots.iter().enumerate() {
        check!(
            slot.outcomes() == 1,
            s,
            net,
            "P1: invitee slot {i} reported {} outcomes",
            slot.outcomes()
        );
        check!(
            slot.count(InvitationEvent::Invited) <= 1,
            s,
            net,
            "P1: invitee slot {i} was Invited {} times",
            slot.count(InvitationEvent::Invited)
        );
        check!(
            slot.count(InvitationEvent::Ringing) == 0,
            s,
            net,
            "P1: invitee slot {i} reported Ringing"
        );
    }
    // What the invitee was shown is what was offered.
    if let Some(t) = theirs
        && t.count(InvitationEvent::Invited) == 1
    {
        let offer = s.offer();
        check!(
            t.presented.as_ref() == Some(&(offer.message.clone(), offer.data.clone())),
            s,
            net,
            "P1: the invitee was shown something else than offered"
        );
    }

    // The cancel's effect matches the inviter's outcome.
    let effect = ours.command_results.iter().find_map(|r| match r {
        Ok(Some(e)) => Some(*e),
        _ => None,
    });
    check!(
        ours.command_results.iter().all(Result::is_ok),
        s,
        net,
        "a cancel failed: {:?}",
        ours.command_results
    );
    if let (Some(effect), Some((_, reason))) = (effect, s.cancel)
        && matches!(effect, CancelEffect::Abandoned | CancelEffect::Withdrawing)
    {
        check!(
            outcome_a == Some(Outcome::Cancelled(reason)),
            s,
            net,
            "cancel said {effect:?} but the inviter ended {outcome_a:?}"
        );
    }
    if let (Some(effect), Some((at, _))) = (effect, s.cancel) {
        let ended = ours.events.iter().find(|(_, e)| matches!(e, InvitationEvent::Ended(_)));
        let ended_at = ended.map(|(t, _)| t.as_millis());
        match effect {
            CancelEffect::NoEffect => check!(
                ended_at.is_some_and(|t| t <= at),
                s,
                net,
                "cancel at {at} ms had no effect, yet the inviter ended at {ended_at:?} ms"
            ),
            _ => check!(
                ended_at == Some(at),
                s,
                net,
                "cancel at {at} ms said {effect:?}, yet the inviter ended at {ended_at:?} ms"
            ),
        }
    }
    let abandoned = effect == Some(CancelEffect::Abandoned);
    // The inviter hears Ringing only from an invitee that presented it.
    if ours.count(InvitationEvent::Ringing) > 0 {
        check!(
            theirs.is_some_and(|t| t.count(InvitationEvent::Invited) == 1),
            s,
            net,
            "P1: the inviter heard Ringing, yet the invitation was never presented"
        );
    }

    // 2. Agreement.
    if let (Some(oa), Some(ob)) = (outcome_a, outcome_b)
        && oa != Outcome::Unreachable
        && ob != Outcome::Unreachable
    {
        check!(oa == ob, s, net, "P2: the inviter ended {oa:?}, the invitee {ob:?}");
    }
    if outcome_b == Some(Outcome::Accepted) {
        check!(
            outcome_a == Some(Outcome::Accepted),
            s,
            net,
            "P2: the invitee ended Accepted, the inviter {outcome_a:?}"
        );
    }
    if abandoned {
        check!(
            b.slots.iter().all(|t| t.count(InvitationEvent::Invited) == 0),
            s,
            net,
            "P2: the inviter abandoned the invitation before sending it, yet it was presented"
        );
    }
    if s.mode == Mode::Xx(Expected::SomeoneElse) {
        check!(
            b.slots.iter().all(|t| t.count(InvitationEvent::Invited) == 0),
            s,
            net,
            "P2: an invitee the inviter did not want was presented the invitation"
        );
        // A handshake that never completes cannot prove the wrong identity.
        let reachable = s.partition.is_none() && s.faults.loss_permille <= 100;
        check!(
            matches!(
                outcome_a,
                Some(Outcome::Failed(FailureCause::IdentityMismatch) | Outcome::Cancelled(_))
            ) || (!reachable && outcome_a == Some(Outcome::Unreachable)),
            s,
            net,
            "P2: calling the wrong identity ended {outcome_a:?}"
        );
    }
    if s.could_communicate(abandoned) {
        check!(
            outcome_a != Some(Outcome::Unreachable) && outcome_b != Some(Outcome::Unreachable),
            s,
            net,
            "P2: no partition and loss {}‰, yet the inviter ended {outcome_a:?} and the invitee {outcome_b:?} \
             (known: two consecutive lost Ringings exceed LIVENESS_TIMEOUT, see \
             a_ringing_invitee_survives_two_lost_ringings)",
            s.faults.loss_permille
        );
        check!(theirs.is_some(), s, net, "P2: they could communicate, yet the invitee has no slot");
    }
    // Screening and the pool refuse before anything is presented.
    if let (Some(t), Behaviour::Screen(_)) = (theirs, s.behaviour) {
        check!(t.count(InvitationEvent::Invited) == 0, s, net, "screened out, yet presented");
    }
    if s.invitee_buffers == 0 && !s.body_is_empty() {
        check!(
            theirs.is_none_or(|t| t.count(InvitationEvent::Invited) == 0),
            s,
            net,
            "no buffer for a non-empty body, yet presented"
        );
    }

    // 3. Everything ends and frees.
    for (name, p) in [("inviter", a), ("invitee", b)] {
        for (i, slot) in p.slots.iter().enumerate() {
            check!(
                slot.invitation.is_closed(),
                s,
                net,
                "P3: {name} slot {i} is not closed by the deadline"
            );
            let closed_at = slot.closed_at.expect("closed_at is set once closed");
            let late: Vec<_> = slot.sent.iter().filter(|(t, _)| *t > closed_at).collect();
            check!(
                late.is_empty(),
                s,
                net,
                "P3: {name} slot {i} closed at {} ms but sent {late:?}",
                closed_at.as_millis()
            );
            check!(
                slot.invitation.poll_timeout().is_none(),
                s,
                net,
                "P3: {name} slot {i} closed with a deadline"
            );
        }
    }
    check!(
        a.pool.free() == INVITER_BUFFERS,
        s,
        net,
        "P3: the inviter's pool has {} of {INVITER_BUFFERS} buffers free",
        a.pool.free()
    );
    check!(
        b.pool.free() == s.invitee_buffers,
        s,
        net,
        "P3: the invitee's pool has {} of {} buffers free",
        b.pool.free(),
        s.invitee_buffers
    );

    // 4. Determinism.
    let (again, result_again) = run(s);
    check!(result == result_again, s, net, "P4: steps {result:?} then {result_again:?}");
    if net.trace != again.trace {
        let i = net.trace.iter().zip(&again.trace).position(|(x, y)| x != y);
        return Err(fail(
            s,
            net,
            &format!(
                "P4: traces differ (lengths {} and {}), first at entry {i:?}: {:?} vs {:?}",
                net.trace.len(),
                again.trace.len(),
                i.map(|i| &net.trace[i]),
                i.map(|i| &again.trace[i]),
            ),
        ));
    }
    check!(log(net) == log(&again), s, net, "P4: same trace, different event logs");

    Ok((outcome_a, outcome_b))
}

#[test]
fn random_invitations_end_once_agree_free_everything_and_replay() {
    // Each case runs its scenario twice; unoptimised crypto is slow.
    let cases = 256;
    let tally_a = RefCell::new(BTreeMap::<&'static str, usize>::new());
    let tally_b = RefCell::new(BTreeMap::<&'static str, usize>::new());
    let started = std::time::Instant::now();
    // One line per case (inviter outcome, invitee outcome, scenario).
    let verbose = std::env::var_os("INVITATION_PROPS_VERBOSE").is_some();
    let mut runner = runner(cases, 0x17);
    let result = runner.run(&scenario(), |s| {
        let (a, b) = check_scenario(&s)?;
        if verbose {
            println!(
                "{:>13} {:>13} | {:?} {:?} pool {} expiry {} max {:?} cancel {:?} partition {:?} faults {:?}",
                variant(a), variant(b), s.mode, s.behaviour, s.invitee_buffers, s.expiry_ms,
                s.invitee_max_expiry_ms, s.cancel, s.partition, s.faults,
            );
        }
        *tally_a.borrow_mut().entry(variant(a)).or_default() += 1;
        *tally_b.borrow_mut().entry(variant(b)).or_default() += 1;
        Ok(())
    });
    let tally_a = tally_a.into_inner();
    let tally_b = tally_b.into_inner();
    println!("{} cases in {:.1?}", runner.config().cases, started.elapsed());
    println!("inviter outcomes: {tally_a:?}");
    println!("invitee outcomes: {tally_b:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    // 5. Outcome coverage.
    let missing: Vec<_> = INVITER_VARIANTS.iter().filter(|v| !tally_a.contains_key(*v)).collect();
    assert!(missing.is_empty(), "P5: no case reached inviter outcome(s) {missing:?}: {tally_a:?}");
}

/// The smallest counterexample to "no Unreachable when they could
/// communicate" the random search found (runner seed 3, 2000 cases) before
/// the inviter probed a silent ringing invitee: its Ringings at 25 s and
/// 50 s were both lost (1.1 % loss, unlucky) and the inviter gave up at
/// 60 s (`LIVENESS_TIMEOUT`). Kept as a regression case.
#[test]
fn a_ringing_invitee_survives_two_lost_ringings() {
    let s = Scenario {
        seed: 16_550_065_158_686_211_851,
        faults: Faults { latency_ms: 1, jitter_ms: 0, loss_permille: 11, duplicate_permille: 1 },
        mode: Mode::Ik,
        body: Body::Empty,
        behaviour: Behaviour::Answer {
            answer: Answer::Busy { retry_after: Duration::ZERO },
            after_ms: 60_001,
        },
        invitee_buffers: 0,
        expiry_ms: 60_003,
        invitee_max_expiry_ms: None,
        cancel: None,
        partition: None,
    };
    if let Err(e) = check_scenario(&s) {
        panic!("{e}");
    }
}

// ----- arbitrary clocks -----------------------------------------------------

/// A time an invitation is told, relative to the network's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skew {
    Back(u64),
    Ahead(u64),
    At(u64),
    Max,
}

/// A party whose invitations are also handed `handle_timeout` at arbitrary
/// times (earlier, later, absurdly late) before each real input.
struct Skewed {
    party: Party,
    skews: Vec<Skew>,
    next: usize,
    rng: HashDrbg,
    /// (time told, poll_timeout after) that broke the contract.
    violations: Vec<(Instant, Option<Instant>)>,
}

impl Skewed {
    fn skew(&mut self, now: Instant) {
        let Some(&skew) = self.skews.get(self.next) else { return };
        self.next += 1;
        let t = match skew {
            Skew::Back(ms) => Instant::from_millis(now.as_millis().saturating_sub(ms)),
            Skew::Ahead(ms) => now + Duration::from_millis(ms),
            Skew::At(ms) => Instant::from_millis(ms),
            Skew::Max => Instant::MAX,
        };
        let Party { slots, pool, .. } = &mut self.party;
        for slot in slots.iter_mut() {
            slot.invitation.handle_timeout(t, &mut **pool, &mut self.rng);
            let next = slot.invitation.poll_timeout();
            if next.is_some_and(|d| d <= t) {
                self.violations.push((t, next));
            }
        }
        // Lets the party poll the events that produced (its handle_timeout
        // drains every slot, and only handles what is due at `now`).
        self.party.handle_timeout(now);
    }
}

impl Node for Skewed {
    fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        self.skew(now);
        self.party.handle_datagram(now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.skew(now);
        self.party.handle_timeout(now);
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; peercollab_core::wire::MAX_DATAGRAM],
    ) -> Option<(NodeId, usize)> {
        self.party.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.party.poll_timeout()
    }
}

fn skew() -> impl Strategy<Value = Skew> {
    prop_oneof![
        4 => (0u64..=200_000).prop_map(Skew::Back),
        4 => (0u64..=200_000).prop_map(Skew::Ahead),
        1 => (u64::MAX / 4..=u64::MAX - 1).prop_map(Skew::At),
        1 => (0u64..=u64::MAX - 1).prop_map(Skew::At),
        1 => Just(Skew::Max),
    ]
}

#[test]
fn arbitrary_clocks_never_panic_and_deadlines_stay_ahead() {
    let cases = 128;
    let strategy = (
        any::<u64>(),
        any::<bool>(),
        0u64..=300,
        0u64..=100,
        prop::collection::vec(skew(), 0..12),
        prop::collection::vec(skew(), 0..12),
    );
    // (skews applied, of which Instant::MAX): the test checks itself.
    let applied = std::cell::Cell::new((0usize, 0usize));
    let mut runner = runner(cases, 0x29);
    let result = runner.run(&strategy, |(seed, contact, loss, latency, skews_a, skews_b)| {
        let faults = Faults {
            latency_ms: latency + 1,
            jitter_ms: 50,
            loss_permille: loss,
            duplicate_permille: 50,
        };
        let mut net = Network::new(seed, faults);
        let mut a = Party::new(seed.wrapping_mul(2).wrapping_add(1), 1);
        let mut b = Party::new(seed.wrapping_mul(2).wrapping_add(2), 1);
        let a_cert = *a.local.certificate();
        let b_cert = *b.local.certificate();
        a.add_contact(b_cert);
        b.add_contact(a_cert);
        b.reaction = Reaction::Answer {
            after: Duration::from_secs(seed % 20),
            answer: Answer::Accept,
            reason: String::new(),
        };
        let offer = OfferSpec { data: vec![7; (seed % 3000) as usize], ..OfferSpec::simple(APP) };
        if contact {
            a.invite_contact(Instant::ZERO, INVITEE, b_cert, &offer)
        } else {
            a.invite_endpoint(Instant::ZERO, INVITEE, None, &offer)
        }
        .expect("invite");
        let wrap = |party, skews, salt| Skewed {
            party,
            skews,
            next: 0,
            rng: HashDrbg::from_u64(seed ^ salt),
            violations: Vec::new(),
        };
        net.add(Box::new(wrap(a, skews_a.clone(), 0xa)));
        net.add(Box::new(wrap(b, skews_b.clone(), 0xb)));
        let result = net.run(50_000, Instant::MAX, |_| false);
        prop_assert!(result.is_ok(), "livelock {result:?}");
        for id in [INVITER, INVITEE] {
            let node = net.node::<Skewed>(id);
            let done = &node.skews[..node.next];
            let (n, max) = applied.get();
            applied.set((n + done.len(), max + done.iter().filter(|s| **s == Skew::Max).count()));
            prop_assert!(
                node.violations.is_empty(),
                "node {id}: after handle_timeout(t), poll_timeout() <= t: {:?}",
                node.violations
            );
            for slot in &node.party.slots {
                prop_assert!(slot.outcomes() <= 1, "node {id}: {:?}", slot.events);
                prop_assert!(slot.count(InvitationEvent::Invited) <= 1, "{:?}", slot.events);
                prop_assert!(slot.count(InvitationEvent::Ringing) <= 1, "{:?}", slot.events);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (n, max) = applied.get();
    println!("arbitrary clocks: {n} skewed handle_timeout rounds, {max} at Instant::MAX");
    assert!(n > 100 && max > 5, "the skews were hardly applied: {n}, {max}");
}

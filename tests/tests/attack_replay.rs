//! Replay attacks through the man-in-the-middle harness: an attacker who
//! recorded every datagram of earlier invitations replays them — into the
//! live agents, after the invitations ended, into a restarted agent, and
//! re-addressed to the sessions of a later invitation.

use peercollab_core::agent::{Dropped, Handle, InviteOptions, Trust};
use peercollab_core::invite::{Answer, CancelReason, Outcome};
use peercollab_core::session;
use peercollab_core::wire::FrameType;
use peercollab_core::{Duration, Instant};
use peercollab_tests::agents::{
    APP, AgentNode, answer_after, befriend, invite_contact, register, request, target_of,
};
use peercollab_tests::mitm::{Captured, Mitm, set_u32, trusted_pair};
use peercollab_tests::party::Reaction;
use peercollab_tests::{Network, NodeId};

fn node(net: &Network, id: NodeId) -> &AgentNode {
    net.node::<AgentNode>(id)
}

/// A and B, each the other's trusted contact; B runs the app; the attacker
/// sits between them.
fn friends(seed: u64) -> (Mitm, NodeId, NodeId) {
    trusted_pair(seed, 60)
}

fn invite(m: &mut Mitm, a: NodeId, b: NodeId) -> Handle {
    let card = node(&m.net, b).card();
    let contact = node(&m.net, a).agent.contact_by_identity(card.identity()).unwrap();
    let target = target_of(&m.net, b);
    invite_contact(&mut m.net, a, contact, &[target], &request(), InviteOptions::default())
}

fn run_until(m: &mut Mitm, secs: u64, until: impl FnMut(&Network) -> bool) {
    let deadline = m.net.now + Duration::from_secs(secs);
    m.run(1_000_000, deadline, until).unwrap();
}

/// Every datagram A sent during a contact invitation, replayed three times
/// in reverse order while B rings, again after the invitation ended, and
/// once more into B restarted (same identity, empty replay cache): one
/// invitation is presented, once; B answers no replay after the end; the
/// restarted B answers the replayed first message (it cannot tell), but the
/// replayer cannot go on, so nothing is presented and B's table empties.
///
/// Defences: the initiation table and the session's cached response
/// (`core/src/agent/mod.rs` `dispatch`, `core/src/session.rs` duplicates),
/// the transport replay window (`core/src/replay.rs`), the replay cache
/// (`core/src/agent/guard.rs` `Guard::seen`, checked in `on_initiation`),
/// and structural freshness: the Invite needs keys with B's fresh
/// ephemeral (handshake.md §3.1). Each layer alone stops the replays the
/// test makes, so it fails only with all of them gone, but for the replay
/// window, whose drops it counts.
#[test]
fn replay_of_an_invitation_live_after_its_end_and_into_a_restarted_agent_presents_it_once() {
    let (mut m, a, b) = friends(10);
    m.net.node_mut::<AgentNode>(b).reaction = answer_after(10, Answer::Accept, "");
    let handle = invite(&mut m, a, b);
    run_until(&mut m, 30, |n| n.node::<AgentNode>(b).invited() == 1);
    let recorded: Vec<Captured> = m.captured.iter().filter(|d| d.from == a).cloned().collect();
    assert!(recorded.iter().any(|d| d.is(FrameType::Initiation)));
    assert!(recorded.iter().any(|d| d.is(FrameType::Transport)), "the Invite was recorded");
    for _ in 0..3 {
        for d in recorded.iter().rev() {
            m.send(a, b, &d.bytes);
        }
    }
    m.settle(120);
    assert_eq!(node(&m.net, a).responded(handle), vec![Outcome::Accepted]);
    assert_eq!(node(&m.net, b).invited(), 1);
    assert_eq!(node(&m.net, b).incoming_outcomes().len(), 1);
    let transport = recorded.iter().filter(|d| d.is(FrameType::Transport)).count();
    let window = Dropped::Session(session::Dropped::Replayed);
    assert_eq!(
        node(&m.net, b).dropped.iter().filter(|(_, d)| *d == window).count(),
        3 * transport,
        "each replayed transport datagram is stopped by the live session's replay window"
    );
    // Everything A ever sent, replayed after the end.
    let all: Vec<Captured> = m.captured.iter().filter(|d| d.from == a).cloned().collect();
    let sent_before = node(&m.net, b).sent.len();
    let dropped_before = node(&m.net, b).dropped.len();
    for _ in 0..3 {
        for d in &all {
            m.send(a, b, &d.bytes);
        }
    }
    m.settle(120);
    let nb = node(&m.net, b);
    assert_eq!(nb.invited(), 1);
    assert_eq!(nb.sent.len(), sent_before, "no answer to any replay");
    assert_eq!(nb.dropped.len(), dropped_before + 3 * all.len(), "every replay is dropped");
    // B restarts: no replay cache, no invitations.
    let agent_seed = [77; 32];
    let nb = m.net.node_mut::<AgentNode>(b);
    nb.restart(agent_seed, Default::default());
    nb.reaction =
        Reaction::Answer { after: Duration::ZERO, answer: Answer::Accept, reason: "".into() };
    befriend(&mut m.net, b, a, Trust::Trusted);
    register(&mut m.net, b, APP);
    let events_before = node(&m.net, b).events.len();
    for d in &all {
        m.send(a, b, &d.bytes);
    }
    m.settle(120);
    let nb = node(&m.net, b);
    assert_eq!(
        nb.events.len(),
        events_before,
        "nothing surfaces: {:?}",
        &nb.events[events_before..]
    );
    assert_eq!(nb.agent.invitations_in_use(), 0, "the replayed handshake ended unconfirmed");
    assert_eq!(node(&m.net, a).responded(handle), vec![Outcome::Accepted], "A unaffected");
}

/// Transport datagrams of two earlier invitations between the same agents
/// — a Ringing, a Final(Declined) and its Ack, a Cancel and its Final —
/// replayed into a third invitation while it rings, both as recorded and
/// re-addressed to the third invitation's sessions (receiver indices
/// rewritten: the attacker saw them in its handshake): every decision
/// surfaces exactly once, and the third invitation ends with its own
/// answer.
///
/// Defences: per-session keys (a datagram of another session fails its
/// AEAD, `core/src/session.rs` `handle_datagram`, Transport row of wire.md
/// §4) and routing by the full 32-bit index (`core/src/agent/mod.rs`
/// `dispatch`).
#[test]
fn replay_of_responses_cancels_and_acks_into_a_later_invitation_changes_no_decision() {
    let (mut m, a, b) = friends(11);
    // 1: declined.
    m.net.node_mut::<AgentNode>(b).reaction = answer_after(0, Answer::Decline, "no");
    let h1 = invite(&mut m, a, b);
    m.settle(60);
    // 2: cancelled while ringing.
    m.net.node_mut::<AgentNode>(b).reaction = Reaction::Ignore;
    let h2 = invite(&mut m, a, b);
    run_until(&mut m, 30, |n| n.node::<AgentNode>(b).invited() == 2);
    let now = m.net.now;
    m.net.node_mut::<AgentNode>(a).agent.cancel(now, h2).unwrap();
    m.settle(60);
    let old: Vec<Captured> = m.of_type(FrameType::Transport).cloned().collect();
    assert!(old.len() >= 6, "recorded the earlier answers: {}", old.len());
    // 3: accepted after 5 s; the replays arrive while it rings.
    m.net.node_mut::<AgentNode>(b).reaction = answer_after(5, Answer::Accept, "");
    let start = m.captured.len();
    let h3 = invite(&mut m, a, b);
    run_until(&mut m, 30, |n| n.node::<AgentNode>(b).invited() == 3);
    let idx = |c: &Captured| u32::from_be_bytes(c.bytes[4..8].try_into().unwrap());
    let a3 = idx(m.captured[start..].iter().find(|c| c.is(FrameType::Initiation)).unwrap());
    let b3 = idx(m.captured[start..].iter().find(|c| c.is(FrameType::Response)).unwrap());
    let (drops_a, drops_b) = (node(&m.net, a).dropped.len(), node(&m.net, b).dropped.len());
    for d in &old {
        let index = if d.to == a { a3 } else { b3 };
        m.send(d.from, d.to, &d.bytes);
        m.send(d.from, d.to, &set_u32(&d.bytes, 4, index));
    }
    m.settle(120);
    let (na, nb) = (node(&m.net, a), node(&m.net, b));
    assert_eq!(na.responded(h1), vec![Outcome::Declined]);
    assert_eq!(na.responded(h2), vec![Outcome::Cancelled(CancelReason::ByUser)]);
    assert_eq!(na.responded(h3), vec![Outcome::Accepted]);
    let outcomes: Vec<Outcome> = nb.incoming_outcomes().into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Declined, Outcome::Cancelled(CancelReason::ByUser), Outcome::Accepted]
    );
    let replayed = 2 * old.len();
    assert_eq!(
        na.dropped.len() + nb.dropped.len() - drops_a - drops_b,
        replayed,
        "every replayed datagram is dropped"
    );
}

/// Every datagram of an invitation duplicated, a third copy delivered 3 s
/// late: each side reports its decision exactly once and both agree, and
/// the immediate copy of every transport datagram never gets past the
/// replay window.
///
/// Defences: the transport replay window (`core/src/replay.rs`,
/// `Session::handle_datagram`), the invitation's duplicate handling of
/// Final and Ack (`core/src/invite/table.rs`).
#[test]
fn replay_by_duplication_and_late_copies_surfaces_each_decision_once() {
    for answer in [Answer::Accept, Answer::Decline] {
        let (mut m, a, b) = friends(12);
        m.net.node_mut::<AgentNode>(b).reaction = answer_after(1, answer, "");
        let handle = invite(&mut m, a, b);
        m.script(|_| {
            use peercollab_tests::mitm::Action::{Delay, Forward};
            vec![Forward, Forward, Delay(Duration::from_secs(3))]
        });
        m.settle(120);
        let expected = if answer == Answer::Accept { Outcome::Accepted } else { Outcome::Declined };
        assert_eq!(node(&m.net, a).responded(handle), vec![expected]);
        let outcomes: Vec<Outcome> =
            node(&m.net, b).incoming_outcomes().into_iter().map(|(_, o)| o).collect();
        assert_eq!(outcomes, vec![expected]);
        assert_eq!(node(&m.net, b).invited(), 1);
        assert!(m.net.now < Instant::from_millis(120_000));
        let window = Dropped::Session(session::Dropped::Replayed);
        let stopped: usize = [a, b]
            .iter()
            .map(|&n| node(&m.net, n).dropped.iter().filter(|(_, d)| *d == window).count())
            .sum();
        let transport = m.of_type(FrameType::Transport).count();
        assert!(
            stopped >= transport,
            "the immediate copy of each of the {transport} transport datagrams is stopped by \
             the replay window ({stopped} were)"
        );
    }
}

//! The agent end to end, between agents on the virtual network: contacts,
//! handles, several endpoints, in-band certificate updates, revocation and
//! roaming. (Windows' behaviours: `agent_windows.rs`; the policy table:
//! `agent_policy.rs`; properties: `agent_props.rs`.)

use peercollab_core::agent::{
    AgentConfig, AgentError, ContactId, ContactUpdate, Dropped, Event, Handle, InvitationRequest,
    InviteOptions, Policy, Status, Target, Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, IdentitySecret, LocalIdentity};
use peercollab_core::invite::{Answer, CancelReason, InviteError, Outcome};
use peercollab_core::noise::KeyPair;
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{Duration, HashDrbg, Instant};
use peercollab_tests::agents::{
    APP, AddressBook, AgentNode, answer_after, befriend, clean_network, invite_contact,
    invite_endpoint, one_identity_at, register, request, settle, target_of,
};
use peercollab_tests::party::Reaction;
use peercollab_tests::{Network, NodeId};

// ----- helpers ---------------------------------------------------------------

/// Agent A (seeded 10), alone on a clean network seeded `seed`.
fn agent_a(seed: u64) -> (Network, AddressBook, NodeId) {
    let (net, book, ids) = clean_network(seed, 1, 10);
    (net, book, ids[0])
}

/// Agents A and B (seeded `agent_seed` and the next) on a clean network
/// seeded `seed`.
fn two_agents(seed: u64, agent_seed: u64) -> (Network, AddressBook, NodeId, NodeId) {
    let (net, book, ids) = clean_network(seed, 2, agent_seed);
    (net, book, ids[0], ids[1])
}

/// Agents A and B (seeded 10 and 11) on a clean network seeded `seed`; A
/// holds B's card, trusted, and B runs [`APP`]. Returns B's contact id at A
/// too.
fn a_knows_b(seed: u64) -> (Network, AddressBook, NodeId, NodeId, ContactId) {
    let (mut net, book, a, b) = two_agents(seed, 10);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    register(&mut net, b, APP);
    (net, book, a, b, b_at_a)
}

/// Agent A (seeded 10) on a clean network seeded `seed`, and `count`
/// endpoints of one identity (from `identity_seed`) whose card A holds with
/// `trust`. Returns A, the endpoints and their contact id at A.
fn a_and_endpoints(
    seed: u64,
    count: u32,
    identity_seed: u64,
    trust: Trust,
) -> (Network, NodeId, Vec<NodeId>, ContactId) {
    let (mut net, book, a) = agent_a(seed);
    let (endpoints, card) = one_identity_at(&mut net, &book, count, identity_seed);
    let contact = net.node_mut::<AgentNode>(a).agent.add_contact(&card, trust).unwrap();
    (net, a, endpoints, contact)
}

/// `from` invites its contact `contact` at the nodes `at`, now, with
/// [`request`] and the default options.
fn invite(net: &mut Network, from: NodeId, contact: ContactId, at: &[NodeId]) -> Handle {
    let targets: Vec<Target> = at.iter().map(|&n| target_of(net, n)).collect();
    invite_contact(net, from, contact, &targets, &request(), InviteOptions::default())
}

fn invited(net: &Network, node: NodeId) -> usize {
    net.node::<AgentNode>(node).invited()
}

// ----- one invitation --------------------------------------------------------

#[test]
fn contact_invitation_is_accepted_end_to_end() {
    let (mut net, _, a, b) = two_agents(1, 100);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    befriend(&mut net, b, a, Trust::Trusted);
    register(&mut net, b, APP);
    let handle = invite(&mut net, a, b_at_a, &[b]);
    settle(&mut net, 120);
    let na = net.node::<AgentNode>(a);
    let nb = net.node::<AgentNode>(b);
    assert_eq!(na.responded(handle), vec![Outcome::Accepted]);
    let Status::Answered(r) = na.agent.response(handle).unwrap() else { panic!("pending") };
    assert_eq!(r.outcome, Outcome::Accepted);
    assert_eq!(r.answered_by.map(|c| *c.identity()), Some(nb.agent.identity().identity()));
    assert_eq!(r.contact, Some(b_at_a));
    let ended = nb.incoming_outcomes();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].1, Outcome::Accepted);
    let launch = nb.agent.launch_info(ended[0].0).expect("launch info");
    assert_eq!(launch.message, "join me");
    assert_eq!(launch.data, b"port=4000");
    assert_eq!(launch.app_id, APP);
    assert_eq!(*launch.inviter.identity(), na.agent.identity().identity());
    assert!(launch.contact.is_some());
}

// ----- several endpoints -----------------------------------------------------

#[test]
fn several_endpoints_first_accept_wins_and_the_others_end_answered_elsewhere() {
    let (mut net, a, endpoints, contact) = a_and_endpoints(2, 3, 500, Trust::Trusted);
    for &e in &endpoints {
        register(&mut net, e, APP);
    }
    // Endpoints 0 and 1 accept at the same instant, so both Accepts are in
    // flight together; endpoint 2 never answers. Exactly one Accept wins.
    for (e, reason) in [(endpoints[0], "zero"), (endpoints[1], "one")] {
        net.node_mut::<AgentNode>(e).reaction = answer_after(1, Answer::Accept, reason);
    }
    net.node_mut::<AgentNode>(endpoints[2]).reaction = Reaction::Ignore;
    let handle = invite(&mut net, a, contact, &endpoints);
    settle(&mut net, 400);
    let na = net.node::<AgentNode>(a);
    assert_eq!(na.responded(handle), vec![Outcome::Accepted]);
    let Status::Answered(r) = na.agent.response(handle).unwrap() else { panic!() };
    let winner = r.answered_by.expect("an endpoint answered").endpoint();
    assert_eq!(r.reason, if winner == EndpointId(0) { "zero" } else { "one" });
    for &e in &endpoints {
        assert_eq!(invited(&net, e), 1, "every endpoint rang");
    }
    for &e in &endpoints[..2] {
        let answers: Vec<_> = net.node::<AgentNode>(e).answers.iter().map(|x| x.1).collect();
        assert_eq!(answers, vec![Ok(())], "both Accepts were sent");
    }
    for (i, &e) in endpoints.iter().enumerate() {
        let ended = net.node::<AgentNode>(e).incoming_outcomes();
        let outcomes: Vec<Outcome> = ended.iter().map(|x| x.1).collect();
        if EndpointId(i as u32) == winner {
            assert_eq!(outcomes, vec![Outcome::Accepted], "the winner");
            assert!(net.node::<AgentNode>(e).agent.launch_info(ended[0].0).is_ok());
        } else {
            // The loser's Accept crossed the Cancel and was not
            // acknowledged: it ends Cancelled and launches nothing.
            assert_eq!(
                outcomes,
                vec![Outcome::Cancelled(CancelReason::AnsweredElsewhere)],
                "endpoint {i}"
            );
            assert!(net.node::<AgentNode>(e).agent.launch_info(ended[0].0).is_err());
        }
    }
}

#[test]
fn several_endpoints_that_all_refuse_combine_to_declined_before_busy() {
    let (mut net, a, endpoints, contact) = a_and_endpoints(3, 2, 600, Trust::Known);
    for &e in &endpoints {
        register(&mut net, e, APP);
    }
    let busy = Answer::Busy { retry_after: Duration::from_secs(60) };
    net.node_mut::<AgentNode>(endpoints[0]).reaction = answer_after(1, busy, "");
    net.node_mut::<AgentNode>(endpoints[1]).reaction = answer_after(3, Answer::Decline, "no");
    let handle = invite(&mut net, a, contact, &endpoints);
    // The Busy alone decides nothing: the outcome waits for every endpoint.
    let busy_done = endpoints[0];
    net.run(1_000_000, Instant::MAX, |n| {
        !n.node::<AgentNode>(busy_done).incoming_outcomes().is_empty()
    })
    .unwrap();
    assert_eq!(
        net.node::<AgentNode>(busy_done).incoming_outcomes()[0].1,
        Outcome::Busy { retry_after: Duration::from_secs(60) }
    );
    assert!(matches!(
        net.node::<AgentNode>(a).agent.response(handle),
        Ok(Status::Pending { ringing: true })
    ));
    settle(&mut net, 60);
    let na = net.node::<AgentNode>(a);
    assert_eq!(na.responded(handle), vec![Outcome::Declined]);
    let Status::Answered(r) = na.agent.response(handle).unwrap() else { panic!() };
    assert_eq!(r.reason, "no");
    assert_eq!(r.answered_by.map(|c| c.endpoint()), Some(EndpointId(1)));
}

#[test]
fn contact_invitation_refuses_bad_targets_and_changes_nothing() {
    let (mut net, a, endpoints, contact) = a_and_endpoints(4, 1, 700, Trust::Known);
    let t = target_of(&net, endpoints[0]);
    let unknown = Target { endpoint: EndpointId(9), ..t };
    let agent = &mut net.node_mut::<AgentNode>(a).agent;
    let opts = InviteOptions::default();
    let now = Instant::ZERO;
    assert_eq!(
        agent.invite_contact(now, contact, &[], &request(), opts),
        Err(AgentError::NoTargets)
    );
    assert_eq!(
        agent.invite_contact(now, contact, &[t, t], &request(), opts),
        Err(AgentError::DuplicateEndpoint)
    );
    assert_eq!(
        agent.invite_contact(now, contact, &[unknown], &request(), opts),
        Err(AgentError::UnknownEndpoint)
    );
    assert_eq!(
        agent.invite_contact(now, contact, &[t; 5], &request(), opts),
        Err(AgentError::TooManyTargets)
    );
    let long = "x".repeat(256);
    let bad = InvitationRequest { message: &long, ..request() };
    assert!(matches!(
        agent.invite_contact(now, contact, &[t], &bad, opts),
        Err(AgentError::Invitation(InviteError::BadMessage(_)))
    ));
    assert_eq!(agent.invitations_in_use(), 0);
    assert_eq!(agent.handles_in_use(), 0);
    assert_eq!(agent.poll_timeout(), None);
    let mut buf = [0u8; MAX_DATAGRAM];
    assert!(agent.poll_transmit(now, &mut buf).is_none());
}

// ----- certificates ----------------------------------------------------------

#[test]
fn a_newer_certificate_presented_in_band_replaces_the_pinned_one() {
    let (mut net, book, a) = agent_a(5);
    // B's first endpoint key, then a rotated one (same identity and
    // endpoint, new static key, serial 2) on a fresh node at B's address.
    let mut rng = HashDrbg::from_u64(800);
    let secret = IdentitySecret::generate(&mut rng);
    let old = LocalIdentity::new(secret.clone(), KeyPair::generate(&mut rng), EndpointId(0), 1);
    let new = LocalIdentity::new(secret.clone(), KeyPair::generate(&mut rng), EndpointId(0), 2);
    let old_card = ContactCard::issue(&secret, "b", &[*old.certificate()], &[]).unwrap();
    let new_cert = *new.certificate();
    let id = net.nodes.len();
    let b =
        net.add(Box::new(AgentNode::with_identity(new, 801, id, &book, AgentConfig::default())));
    register(&mut net, a, APP);
    let b_at_a = net.node_mut::<AgentNode>(a).agent.add_contact(&old_card, Trust::Trusted).unwrap();
    let a_at_b = befriend(&mut net, b, a, Trust::Trusted);
    // B (rotated) invites A: A learns the new certificate from the IK
    // initiation and pins it.
    invite(&mut net, b, a_at_b, &[a]);
    settle(&mut net, 60);
    let na = net.node::<AgentNode>(a);
    assert!(
        na.events
            .iter()
            .any(|(_, e)| *e == Event::ContactUpdated { contact: b_at_a, endpoint: EndpointId(0) })
    );
    let pinned: Vec<_> = na.agent.contact(b_at_a).unwrap().certificates().copied().collect();
    assert_eq!(pinned, vec![new_cert]);
    assert_eq!(na.incoming_outcomes().len(), 1);
    // A can now reach B's new key, and the old certificate is refused.
    let h = invite(&mut net, a, b_at_a, &[b]);
    register(&mut net, b, APP);
    settle(&mut net, 60);
    assert_eq!(net.node::<AgentNode>(a).responded(h), vec![Outcome::Accepted]);
    // The superseded certificate is refused from now on.
    let id = net.nodes.len();
    let stale =
        net.add(Box::new(AgentNode::with_identity(old, 802, id, &book, AgentConfig::default())));
    let a_at_stale = befriend(&mut net, stale, a, Trust::Trusted);
    let h = invite(&mut net, stale, a_at_stale, &[a]);
    let dropped_before = net.node::<AgentNode>(a).dropped.len();
    settle(&mut net, 60);
    assert_eq!(net.node::<AgentNode>(stale).responded(h), vec![Outcome::Unreachable]);
    let na = net.node::<AgentNode>(a);
    assert!(na.dropped.len() > dropped_before);
    assert!(na.dropped[dropped_before..].iter().all(|(_, d)| *d == Dropped::Revoked));
}

#[test]
fn a_revoked_endpoint_can_neither_be_invited_nor_invite() {
    let (mut net, _, a, b, b_at_a) = a_knows_b(6);
    let a_at_b = befriend(&mut net, b, a, Trust::Trusted);
    register(&mut net, a, APP);
    let endpoint = net.node::<AgentNode>(b).agent.identity().certificate().endpoint();
    net.node_mut::<AgentNode>(a).agent.revoke_endpoint(b_at_a, endpoint).unwrap();
    assert!(net.node::<AgentNode>(a).agent.contact(b_at_a).unwrap().is_revoked(endpoint));
    let target = target_of(&net, b);
    assert_eq!(
        net.node_mut::<AgentNode>(a).agent.invite_contact(
            Instant::ZERO,
            b_at_a,
            &[target],
            &request(),
            InviteOptions::default()
        ),
        Err(AgentError::RevokedEndpoint)
    );
    // B's invitation with the revoked certificate is met with silence.
    let h = invite(&mut net, b, a_at_b, &[a]);
    settle(&mut net, 120);
    assert_eq!(net.node::<AgentNode>(b).responded(h), vec![Outcome::Unreachable]);
    let na = net.node::<AgentNode>(a);
    assert!(na.sent.is_empty(), "nothing answers a revoked certificate");
    assert!(na.dropped.iter().all(|(_, d)| *d == Dropped::Revoked));
    assert!(!na.dropped.is_empty());
    assert_eq!(invited(&net, a), 0);
}

// ----- roaming ---------------------------------------------------------------

#[test]
fn an_authenticated_datagram_from_a_new_address_moves_the_session() {
    let (mut net, book, a, b, b_at_a) = a_knows_b(7);
    net.node_mut::<AgentNode>(b).reaction = answer_after(40, Answer::Accept, "");
    let h = invite(&mut net, a, b_at_a, &[b]);
    // Once it rings, B moves: its old address reaches nobody from now on.
    net.run(1_000_000, Instant::MAX, |n| {
        n.node::<AgentNode>(a).count(|e| *e == Event::Ringing(h)) > 0
    })
    .unwrap();
    assert!(net.node::<AgentNode>(a).responded(h).is_empty());
    let moved: std::net::SocketAddr = "[2001:db8::b]:9000".parse().unwrap();
    book.set(b, moved);
    settle(&mut net, 120);
    let na = net.node::<AgentNode>(a);
    assert_eq!(na.responded(h), vec![Outcome::Accepted]);
    assert!(na.agent.stats().roamed >= 1);
    let last = na.sent.last().expect("A sent");
    assert_eq!(last.1, moved, "A answers B at its new address");
}

// ----- handles ---------------------------------------------------------------

#[test]
fn closing_a_handle_before_the_outcome_cancels_and_silences_it() {
    let (mut net, _, a, b) = two_agents(8, 10);
    register(&mut net, b, APP);
    net.node_mut::<AgentNode>(b).reaction = Reaction::Ignore;
    let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    net.node_mut::<AgentNode>(a).at(Instant::from_millis(5_000), move |n, now| {
        n.agent.close(now, h).unwrap();
        assert_eq!(n.agent.response(h), Err(AgentError::UnknownHandle));
        assert_eq!(n.agent.close(now, h), Err(AgentError::UnknownHandle));
    });
    settle(&mut net, 120);
    let na = net.node::<AgentNode>(a);
    assert!(na.responded(h).is_empty(), "no event names a closed handle");
    assert_eq!(na.agent.handles_in_use(), 0);
    assert_eq!(na.agent.invitations_in_use(), 0);
    let nb = net.node::<AgentNode>(b);
    assert_eq!(
        nb.incoming_outcomes().iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![Outcome::Cancelled(CancelReason::ByUser)]
    );
}

#[test]
fn removing_a_contact_cancels_invitations_to_it() {
    let (mut net, _, a, b, b_at_a) = a_knows_b(9);
    net.node_mut::<AgentNode>(b).reaction = Reaction::Ignore;
    let h = invite(&mut net, a, b_at_a, &[b]);
    net.node_mut::<AgentNode>(a).at(Instant::from_millis(3_000), move |n, now| {
        n.agent.remove_contact(now, b_at_a).unwrap();
        assert_eq!(n.agent.contact(b_at_a).err(), Some(AgentError::UnknownContact));
    });
    settle(&mut net, 120);
    let na = net.node::<AgentNode>(a);
    assert_eq!(na.responded(h), vec![Outcome::Cancelled(CancelReason::ByUser)]);
    let Status::Answered(r) = na.agent.response(h).unwrap() else { panic!() };
    assert_eq!(r.contact, None, "the removed contact is not named");
    assert_eq!(
        net.node::<AgentNode>(b).incoming_outcomes().iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![Outcome::Cancelled(CancelReason::ByUser)]
    );
}

#[test]
fn launch_info_stays_readable_until_released_and_holds_its_buffer() {
    let (mut net, _, a, b) = two_agents(10, 10);
    register(&mut net, b, APP);
    let to = net.node::<AgentNode>(b).address();
    net.node_mut::<AgentNode>(a)
        .agent
        .invite_endpoint(Instant::ZERO, to, &request(), InviteOptions::default().discard_handle())
        .unwrap();
    // Long past the invitation's lingering.
    settle(&mut net, 3_600);
    let nb = net.node_mut::<AgentNode>(b);
    let (incoming, outcome) = nb.incoming_outcomes()[0];
    assert_eq!(outcome, Outcome::Accepted);
    let free = nb.agent.buffers_free();
    let info = nb.agent.launch_info(incoming).unwrap();
    assert_eq!((info.message, info.data), ("join me", &b"port=4000"[..]));
    assert_eq!(nb.agent.invitations_in_use(), 1);
    nb.agent.release(incoming).unwrap();
    assert_eq!(nb.agent.launch_info(incoming).err(), Some(AgentError::UnknownIncoming));
    assert_eq!(nb.agent.release(incoming), Err(AgentError::UnknownIncoming));
    assert_eq!(nb.agent.buffers_free(), free + 1);
    assert_eq!(nb.agent.invitations_in_use(), 0);
    // The inviter kept no handle and heard of no outcome.
    assert!(net.node::<AgentNode>(a).events.is_empty());
    assert_eq!(net.node::<AgentNode>(a).agent.handles_in_use(), 0);
}

#[test]
fn a_newer_card_refreshes_a_contacts_certificates_but_not_a_revoked_one() {
    let (mut net, _, a) = agent_a(11);
    let mut rng = HashDrbg::from_u64(900);
    let secret = IdentitySecret::generate(&mut rng);
    let cert = |serial, e, rng: &mut HashDrbg| {
        *LocalIdentity::new(secret.clone(), KeyPair::generate(rng), EndpointId(e), serial)
            .certificate()
    };
    let (e0v1, e1v1) = (cert(1, 0, &mut rng), cert(1, 1, &mut rng));
    let (e0v2, e1v2, e2v1) = (cert(2, 0, &mut rng), cert(2, 1, &mut rng), cert(1, 2, &mut rng));
    let old = ContactCard::issue(&secret, "b", &[e0v1, e1v1], &[]).unwrap();
    let new = ContactCard::issue(&secret, "b", &[e0v2, e1v1, e2v1], &[]).unwrap();
    let agent = &mut net.node_mut::<AgentNode>(a).agent;
    let id = agent.add_contact(&old, Trust::Known).unwrap();
    assert_eq!(agent.add_contact(&new, Trust::Known), Err(AgentError::AlreadyExists(id)));
    agent.revoke_endpoint(id, EndpointId(1)).unwrap();
    assert_eq!(agent.refresh_contact(id, &new), Ok(2), "endpoint 0 newer, endpoint 2 new");
    let pinned: Vec<_> = agent.contact(id).unwrap().certificates().copied().collect();
    assert_eq!(pinned, vec![e0v2, e2v1], "the revoked endpoint stays revoked");
    // A certificate newer than the revoked one is taken again.
    let newest = ContactCard::issue(&secret, "b", &[e1v2], &[]).unwrap();
    assert_eq!(agent.refresh_contact(id, &newest), Ok(1));
    assert!(!agent.contact(id).unwrap().is_revoked(EndpointId(1)));
    assert_eq!(agent.refresh_contact(id, &old), Ok(0), "older certificates are ignored");
    let other = net.node::<AgentNode>(a).card();
    let agent = &mut net.node_mut::<AgentNode>(a).agent;
    assert_eq!(agent.refresh_contact(id, &other), Err(AgentError::WrongIdentity));
}

#[test]
fn names_shown_to_people_follow_the_card_rules() {
    let (mut net, _, a, b) = two_agents(12, 10);
    let id = befriend(&mut net, a, b, Trust::Known);
    let agent = &mut net.node_mut::<AgentNode>(a).agent;
    for bad in ["", "bell\u{7}", "evil\u{202E}txt", &"x".repeat(65)] {
        assert_eq!(
            agent.update_contact(id, ContactUpdate::default().display_name(bad)),
            Err(AgentError::BadName),
            "{bad:?}"
        );
        assert_eq!(agent.register_application(APP, bad, None), Err(AgentError::BadName));
    }
    assert_eq!(agent.contact(id).unwrap().display_name(), "node 1");
    assert!(agent.application(APP).is_none());
    agent.update_contact(id, ContactUpdate::default().display_name("Bob ✓")).unwrap();
    assert_eq!(agent.contact(id).unwrap().display_name(), "Bob ✓");
}

#[test]
fn an_answer_refused_at_the_expiry_sends_the_expired_final_at_once() {
    let (mut net, _, a, b) = two_agents(13, 10);
    register(&mut net, b, APP);
    net.node_mut::<AgentNode>(b).reaction = Reaction::Ignore;
    let opts = InviteOptions::default().expires_in(Duration::from_secs(10));
    let h = invite_endpoint(&mut net, a, b, &request(), opts);
    net.run(1_000_000, Instant::MAX, |n| !n.node::<AgentNode>(b).presented.is_empty()).unwrap();
    let nb = net.node_mut::<AgentNode>(b);
    let incoming = nb.presented[0].incoming;
    let late = nb.agent.incoming(incoming).unwrap().expires_at;
    assert_eq!(
        nb.agent.respond(late, incoming, Answer::Accept, ""),
        Err(AgentError::Invitation(InviteError::Ended))
    );
    let mut buf = [0u8; MAX_DATAGRAM];
    assert!(nb.agent.poll_transmit(late, &mut buf).is_some(), "Final(Expired) goes out now");
    settle(&mut net, 120);
    assert_eq!(net.node::<AgentNode>(a).responded(h), vec![Outcome::Expired]);
}

/// Six invitations with a message and data, each declined at once, one
/// after the other within the 32 s an ended invitation lingers, to an
/// agent with four body buffers: none is answered Busy for want of a
/// buffer. The buffers of ended, declined invitations go back to the pool
/// once it is empty (agent.md §1.7), and only then: while it has room, the
/// declined invitations stay readable.
///
/// Code: `core/src/agent/mod.rs` `Agent::reclaim_bodies`, called from
/// `touch`.
#[test]
fn declined_invitations_give_their_buffers_to_newer_ones_when_the_pool_runs_out() {
    let (mut net, _, a, b) = two_agents(12, 10);
    register(&mut net, b, APP);
    net.node_mut::<AgentNode>(b).reaction = answer_after(0, Answer::Decline, "");
    let buffers = net.node::<AgentNode>(b).agent.buffers_free();
    assert_eq!(buffers, 4);
    let start = net.now;
    let mut handles = Vec::new();
    for k in 1..=buffers + 2 {
        handles.push(invite_endpoint(&mut net, a, b, &request(), InviteOptions::default()));
        let deadline = net.now + Duration::from_secs(10);
        net.run(1_000_000, deadline, |n| n.node::<AgentNode>(b).incoming_outcomes().len() == k)
            .expect("no livelock");
        if k == buffers - 1 {
            let nb = net.node::<AgentNode>(b);
            for &(id, _) in &nb.incoming_outcomes() {
                assert_eq!(nb.agent.incoming(id).unwrap().message, "join me", "room: readable");
            }
        }
    }
    assert!(net.now < start + Duration::from_secs(32), "all within the lingering");
    let nb = net.node::<AgentNode>(b);
    let outcomes: Vec<Outcome> = nb.incoming_outcomes().iter().map(|&(_, o)| o).collect();
    assert_eq!(outcomes, vec![Outcome::Declined; buffers + 2], "none Busy");
    let (first, _) = nb.incoming_outcomes()[0];
    assert_eq!(nb.agent.incoming(first).err(), Some(AgentError::NotPresented), "reclaimed");
    settle(&mut net, 60);
    let na = net.node::<AgentNode>(a);
    for h in handles {
        assert_eq!(na.responded(h), vec![Outcome::Declined]);
    }
    assert_eq!(net.node::<AgentNode>(b).agent.buffers_free(), buffers);
}

/// What B changes while the fragments of A's endpoint invitation arrive.
#[derive(Clone, Copy, Debug)]
enum ChangeMidway {
    Nothing,
    UnregisterTheApplication,
    PolicyNobody,
    RemoveTrustedInviterUnderTrustedOnly,
}

/// An invitation is screened again when its body is complete, before it is
/// presented (agent.md §4.2): a registration, policy or contact changed
/// while its fragments arrived applies to it. B holds the first fragment
/// of a 16 KiB invitation (one body buffer taken) when it changes; the
/// invitation is then refused with the Final that change calls for,
/// nothing is presented, the buffer goes back. Without a change it is
/// presented, so the window is real.
///
/// Found by the `agent_ops` fuzz target
/// (`fuzz/regressions/agent_ops/presented_for_an_unregistered_app`). Code:
/// `core/src/invite/mod.rs` `Screen::confirm`, called when the body is
/// complete; the agent's `Screening::admits`.
#[test]
fn a_change_while_the_fragments_arrive_applies_before_the_invitation_is_presented() {
    for (change, expected) in [
        (ChangeMidway::Nothing, Outcome::Accepted),
        (ChangeMidway::UnregisterTheApplication, Outcome::NotRegistered),
        (ChangeMidway::PolicyNobody, Outcome::NotAccepted),
        (ChangeMidway::RemoveTrustedInviterUnderTrustedOnly, Outcome::NotAccepted),
    ] {
        let (mut net, _, a, b) = two_agents(14, 10);
        net.faults.jitter_ms = 20; // fragments arrive one by one
        register(&mut net, b, APP);
        let a_at_b = befriend(&mut net, b, a, Trust::Trusted);
        net.node_mut::<AgentNode>(b).agent.set_policy(Policy::TrustedOnly);
        net.node_mut::<AgentNode>(b).reaction = answer_after(0, Answer::Accept, "");
        let data = vec![7u8; 16 * 1024];
        let invitation = InvitationRequest { app_id: APP, message: "join me", data: &data };
        let h = invite_endpoint(&mut net, a, b, &invitation, InviteOptions::default());
        let buffers = net.node::<AgentNode>(b).agent.buffers_free();
        net.run(1_000_000, Instant::MAX, |n| n.node::<AgentNode>(b).agent.buffers_free() < buffers)
            .expect("the first fragment arrives");
        let now = net.now;
        let nb = net.node_mut::<AgentNode>(b);
        assert_eq!(nb.invited(), 0, "{change:?}: not presented before the rest arrives");
        match change {
            ChangeMidway::Nothing => {}
            ChangeMidway::UnregisterTheApplication => nb.agent.unregister_application(APP).unwrap(),
            ChangeMidway::PolicyNobody => nb.agent.set_policy(Policy::Nobody),
            ChangeMidway::RemoveTrustedInviterUnderTrustedOnly => {
                nb.agent.remove_contact(now, a_at_b).unwrap();
            }
        }
        settle(&mut net, 120);
        assert_eq!(net.node::<AgentNode>(a).responded(h), vec![expected], "{change:?}");
        let nb = net.node::<AgentNode>(b);
        let presented = usize::from(expected == Outcome::Accepted);
        assert_eq!(nb.invited(), presented, "{change:?}");
        assert_eq!(nb.incoming_outcomes().len(), presented, "{change:?}: no event unpresented");
        if presented == 0 {
            assert_eq!(nb.agent.buffers_free(), buffers, "{change:?}: the buffer is back");
        }
    }
}

//! Attacks on authentication and freshness, run through the man-in-the-middle
//! harness (`peercollab_tests::mitm`) between agents on the virtual network:
//! identity misbinding (unknown key-share), reflection, key-compromise
//! impersonation, and the responder-side checks they rely on. Each test
//! names the defence it relies on; spec/threat-model.md maps attacks to
//! tests.

use peercollab_core::agent::{Event, InviteOptions, Policy, Trust};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{Certificate, EndpointId, IdentitySecret};
use peercollab_core::invite::{FailureCause, Outcome};
use peercollab_core::noise::{KeyPair, dh};
use peercollab_core::wire::FrameType;
use peercollab_core::{Duration, HashDrbg};
use peercollab_tests::agents::{
    APP, AddressBook, AgentNode, befriend, clean_network, invite_contact, invite_endpoint,
    register, request, target_of,
};
use peercollab_tests::mitm::{Action, Mitm, Sink, add_sink, forge};
use peercollab_tests::{Network, NodeId};

fn node(net: &Network, id: NodeId) -> &AgentNode {
    net.node::<AgentNode>(id)
}

/// Agents A and B that hold each other's cards (trusted); B runs [`APP`].
fn friends(seed: u64) -> (Network, NodeId, NodeId) {
    let (net, _, a, b) = friends_book(seed);
    (net, a, b)
}

fn friends_book(seed: u64) -> (Network, AddressBook, NodeId, NodeId) {
    let (mut net, book, ids) = clean_network(seed, 2, 40);
    let (a, b) = (ids[0], ids[1]);
    befriend(&mut net, a, b, Trust::Trusted);
    befriend(&mut net, b, a, Trust::Trusted);
    register(&mut net, b, APP);
    (net, book, a, b)
}

fn contact_invitation(net: &mut Network, a: NodeId, b: NodeId) -> peercollab_core::agent::Handle {
    let card = node(net, b).card();
    let contact = net.node::<AgentNode>(a).agent.contact_by_identity(card.identity()).unwrap();
    let target = target_of(net, b);
    invite_contact(net, a, contact, &[target], &request(), InviteOptions::default())
}

// ----- identity misbinding / unknown key-share ------------------------------

/// UKS by relabelling: the attacker E relays A's contact invitation to B as
/// if it came from E's own address (E is one of B's contacts too), and B's
/// answers back to A. B must attribute the invitation to A, whose key the
/// handshake authenticated, never to E, whose address it came from.
///
/// Defence: the inviter is the certificate authenticated by the handshake
/// (`core/src/session.rs`, identity statement; `core/src/agent/mod.rs`
/// `classify` in `on_initiation`), never the source address.
#[test]
fn unknown_key_share_relabelled_source_is_attributed_to_the_authenticated_inviter() {
    let (mut net, _, ids) = clean_network(1, 3, 50);
    let (a, b, e) = (ids[0], ids[1], ids[2]);
    befriend(&mut net, a, b, Trust::Trusted);
    let a_at_b = befriend(&mut net, b, a, Trust::Known);
    let e_at_b = befriend(&mut net, b, e, Trust::Trusted);
    register(&mut net, b, APP);
    let handle = contact_invitation(&mut net, a, b);
    let mut m = Mitm::new(net);
    m.intercept(a, b);
    m.intercept(e, b);
    m.script(move |d| {
        if (d.from, d.to) == (a, b) {
            vec![Action::Send { from: e, to: b, bytes: d.bytes.clone(), after: Duration::ZERO }]
        } else if (d.from, d.to) == (b, e) {
            vec![Action::Send { from: b, to: a, bytes: d.bytes.clone(), after: Duration::ZERO }]
        } else {
            vec![Action::Forward]
        }
    });
    m.settle(60);
    let at_b = node(&m.net, b);
    assert_eq!(at_b.presented.len(), 1, "the relayed invitation is presented once");
    let seen = &at_b.presented[0];
    assert_eq!(seen.inviter.identity(), &node(&m.net, a).agent.identity().identity());
    assert_eq!(seen.contact, Some(a_at_b), "attributed to A, not to E ({e_at_b:?})");
    assert_eq!(seen.address, node(&m.net, e).address(), "it did come from E's address");
    assert_eq!(node(&m.net, a).responded(handle), vec![Outcome::Accepted]);
    assert_eq!(node(&m.net, e).events.len(), 0, "E's agent saw nothing");
}

/// Misbinding by certificate: Eve certifies B's static key under her own
/// identity and hands out that card. A pins it and invites "Eve": the
/// handshake reaches B, who states his own identity; A's invitation fails
/// with IdentityMismatch before the Invite is sent, and B presents nothing.
///
/// Defence: the identity check of the IK initiator (`core/src/session.rs`,
/// identity statement step 4, handshake.md §6): the stated certificate must
/// name the identity pinned.
#[test]
fn identity_misbinding_a_certificate_for_someone_elses_key_ends_in_identity_mismatch() {
    let (mut net, a, b) = friends(2);
    let eve = IdentitySecret::generate(&mut HashDrbg::from_u64(666));
    let b_static = *node(&net, b).agent.identity().static_keys().public();
    let forged = Certificate::issue(&eve, &b_static, EndpointId(0), 1);
    let card = ContactCard::issue(&eve, "eve", &[forged], &[node(&net, b).address()]).unwrap();
    let eve_at_a = net.node_mut::<AgentNode>(a).agent.add_contact(&card, Trust::Trusted).unwrap();
    let target = peercollab_core::agent::Target {
        endpoint: EndpointId(0),
        address: node(&net, b).address(),
    };
    let handle = invite_contact(&mut net, a, eve_at_a, &[target], &request(), Default::default());
    let mut m = Mitm::new(net);
    m.intercept(a, b);
    m.settle(120);
    assert_eq!(
        node(&m.net, a).responded(handle),
        vec![Outcome::Failed(FailureCause::IdentityMismatch)]
    );
    assert_eq!(node(&m.net, b).invited(), 0, "B presents nothing");
    assert!(
        m.of_type(FrameType::Transport).all(|d| d.from != a),
        "the Invite never left A (nothing A sent was a transport datagram)"
    );
}

// ----- reflection -------------------------------------------------------------

/// Every datagram of a contact invitation is delivered, and a copy sent
/// back to its sender as if from its peer: each reflected copy is dropped,
/// no event comes of it, the invitation completes once on each side.
///
/// Defences: IK mac1 keyed by the responder's static key (a reflected
/// initiation fails it: `core/src/agent/mod.rs` `on_initiation`,
/// `Incoming::mac1_ok`); per-direction keys and receiver indices
/// (`core/src/session.rs` `handle_datagram`); typed frames by role.
#[test]
fn reflection_of_every_frame_of_a_contact_invitation_is_dropped_without_effect() {
    let run = |reflect: bool| {
        let (mut net, a, b) = friends(3);
        let handle = contact_invitation(&mut net, a, b);
        let mut m = Mitm::new(net);
        m.intercept(a, b);
        if reflect {
            m.script(|_| vec![Action::Forward, Action::Reflect]);
        }
        m.settle(120);
        (m, a, b, handle)
    };
    let (clean, ..) = run(false);
    let (m, a, b, handle) = run(true);
    let (na, nb) = (node(&m.net, a), node(&m.net, b));
    assert_eq!(na.responded(handle), vec![Outcome::Accepted]);
    assert_eq!(nb.invited(), 1);
    assert_eq!(nb.incoming_outcomes().len(), 1);
    assert_eq!(na.invited(), 0, "A never sees an invitation of its own");
    assert_eq!(nb.count(|e| matches!(e, Event::Responded { .. })), 0);
    let from_a = m.captured.iter().filter(|d| d.from == a).count();
    let from_b = m.captured.iter().filter(|d| d.from == b).count();
    assert_eq!(na.dropped.len(), from_a, "every reflection to A is dropped: {:?}", na.dropped);
    assert_eq!(nb.dropped.len(), from_b, "every reflection to B is dropped: {:?}", nb.dropped);
    assert_eq!(na.sent.len() + nb.sent.len(), m.captured.len(), "no datagram answers a reflection");
    // Everything else exactly as without the attacker.
    let (ca, cb) = (node(&clean.net, a), node(&clean.net, b));
    assert_eq!(na.events, ca.events);
    assert_eq!(nb.events, cb.events);
    assert_eq!(na.sent, ca.sent);
    assert_eq!(nb.sent, cb.sent);
    assert_eq!(
        (na.agent.invitations_in_use(), nb.agent.invitations_in_use()),
        (ca.agent.invitations_in_use(), cb.agent.invitations_in_use())
    );
}

/// An endpoint (XX) initiation reflected to its sender. XX's mac1 is keyed
/// by zeros (the initiator knows no key), so the reflected initiation
/// passes it and the sender's own responder answers it: the agent opens a
/// half-open invitation to itself and sends a handshake response to the
/// peer's address. Nothing should come of a frame of the agent's own role.
///
/// Defence: the agent drops an initiation whose ephemeral key is one of its
/// own outgoing legs' (`core/src/agent/mod.rs` `on_initiation`,
/// `Dropped::Reflected`).
#[test]
fn reflection_of_an_endpoint_initiation_to_its_sender_creates_no_state() {
    let (mut net, a, b) = friends(4);
    let handle = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let mut m = Mitm::new(net);
    m.intercept(a, b);
    m.script(|d| {
        if d.is(FrameType::Initiation) && d.index == 0 {
            vec![Action::Reflect, Action::Forward]
        } else {
            vec![Action::Forward]
        }
    });
    m.run(100, m.net.now + Duration::from_millis(10), |_| false).unwrap();
    let na = node(&m.net, a);
    assert_eq!(na.agent.invitations_in_use(), 1, "only A's own outgoing leg");
    m.settle(120);
    let na = node(&m.net, a);
    assert_eq!(na.responded(handle), vec![Outcome::Accepted]);
    assert_eq!(na.invited(), 0);
    assert_eq!(na.dropped.len(), 1, "the reflection is dropped: {:?}", na.dropped);
}

/// The whole of an endpoint invitation reflected back to its inviter (the
/// attacker answers A with A's own frames): A must not end up inviting
/// itself — no invitation is presented at A and no Accept is reported.
///
/// Defence: as above (`Dropped::Reflected`); without it A would complete an
/// XX handshake with itself, present its own invitation (its own identity
/// counts as trusted) and report it accepted by itself.
#[test]
fn reflection_of_a_whole_endpoint_invitation_never_makes_an_agent_invite_itself() {
    let (mut net, a, b) = friends(5);
    register(&mut net, a, APP);
    let handle = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let mut m = Mitm::new(net);
    m.intercept(a, b);
    m.script(move |d| if d.from == a { vec![Action::Reflect] } else { vec![] });
    m.settle(120);
    let na = node(&m.net, a);
    assert_eq!(na.invited(), 0, "A presented an invitation from itself");
    assert_eq!(na.responded(handle), vec![Outcome::Unreachable], "nobody else answered");
}

// ----- key-compromise impersonation ------------------------------------------

/// The attacker holds B's static private key (stolen) and A's public card.
/// It can build an IK first message that B reads as A's (`ss` computed
/// with B's key: Noise's source level 1), and B answers it — but the
/// attacker cannot derive the transport keys (`se` needs A's key or B's
/// fresh ephemeral), so it can never send the Invite: B presents nothing,
/// and the half-open invitation ends silently.
///
/// Defence: nothing acts on a payload below source level 2 — the
/// invitation rides only in the inviter's first transport message
/// (`core/src/invite/mod.rs` invitee; handshake.md §3.1); B's leg needs
/// confirmation (`core/src/session.rs`, IK responder confirmation).
#[test]
fn key_compromise_impersonation_with_the_invitees_static_key_presents_nothing() {
    let (mut net, book, a, b) = friends_book(6);
    let attacker = add_sink(&mut net, &book);
    let b_keys = node(&net, b).agent.identity().static_keys().clone();
    let a_local = node(&net, a).agent.identity().clone();
    let b_cert_hash = node(&net, b).agent.identity().certificate_hash().0;
    let mut m = Mitm::new(net);
    for k in 0..3u64 {
        let e = KeyPair::generate(&mut HashDrbg::from_u64(900 + k));
        let ss = dh(&b_keys, a_local.static_keys().public()).unwrap();
        let forged = forge::ik_initiation(
            b_keys.public(),
            &e,
            a_local.static_keys().public(),
            &ss,
            &a_local.certificate().encode(),
            &b_cert_hash,
            77 + u32::try_from(k).unwrap(),
        );
        m.send(attacker, b, &forged);
        m.settle(1);
        // Then a transport datagram to B's new session, with a guess for
        // the keys: garbage.
        let sink = m.net.node::<Sink>(attacker);
        if let Some((_, _, response)) = sink.received.last() {
            let mut t = vec![1, 5, 0, 0];
            t.extend_from_slice(&response[4..8]);
            t.extend_from_slice(&[0; 8]);
            t.extend_from_slice(&[0x42; 40]);
            m.send(attacker, b, &t);
        }
    }
    m.settle(120);
    let sink = m.net.node::<Sink>(attacker);
    assert_eq!(sink.received.len(), 3, "B answered each forged first message (KCI at level 1)");
    assert!(sink.received.iter().all(|(_, _, r)| r[1] == FrameType::Response as u8));
    let nb = node(&m.net, b);
    assert_eq!(nb.invited(), 0, "no invitation surfaces at B");
    assert!(nb.events.is_empty(), "no event at all: {:?}", nb.events);
    assert_eq!(nb.agent.invitations_in_use(), 0, "the half-open invitations ended");
    assert_eq!(node(&m.net, a).sent.len(), 0, "A was never involved");
}

/// B with policy TrustedOnly and A a trusted contact: the same attack. The
/// policy check at the first message passes (the attacker claims A), so
/// the only thing between the attacker and B's user is the confirmation.
#[test]
fn key_compromise_impersonation_of_a_trusted_contact_under_trusted_only_presents_nothing() {
    let (mut net, a, b) = friends(7);
    net.node_mut::<AgentNode>(b).agent.set_policy(Policy::TrustedOnly);
    let b_keys = node(&net, b).agent.identity().static_keys().clone();
    let a_local = node(&net, a).agent.identity().clone();
    let e = KeyPair::generate(&mut HashDrbg::from_u64(31));
    let ss = dh(&b_keys, a_local.static_keys().public()).unwrap();
    let forged = forge::ik_initiation(
        b_keys.public(),
        &e,
        a_local.static_keys().public(),
        &ss,
        &a_local.certificate().encode(),
        &node(&net, b).agent.identity().certificate_hash().0,
        5,
    );
    let mut m = Mitm::new(net);
    // From A's own address, too: the source proves nothing.
    m.send(a, b, &forged);
    m.settle(120);
    let nb = node(&m.net, b);
    assert_eq!(nb.sent.len(), 1, "B answered the forged first message");
    assert_eq!(nb.invited(), 0);
    assert!(nb.events.is_empty());
    assert_eq!(node(&m.net, a).dropped.len(), 1, "A drops the response it never asked for");
    assert_eq!(node(&m.net, a).events.len(), 0);
}

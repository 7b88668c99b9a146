//! Attacks on authentication and freshness, run through the man-in-the-middle
//! harness (`peercollab_tests::mitm`) between agents on the virtual network:
//! identity misbinding (unknown key-share), reflection, key-compromise
//! impersonation, and the responder-side checks they rely on. Each test
//! names the defence it relies on; spec/threat-model.md maps attacks to
//! tests.

use peercollab_core::agent::{Dropped, Event, InviteOptions, Policy, Trust};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{Certificate, EndpointId, IdentitySecret};
use peercollab_core::invite::message::InviteId;
use peercollab_core::invite::{FailureCause, Outcome};
use peercollab_core::noise::{KeyPair, SymmetricState, dh};
use peercollab_core::session;
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
    let initiations = m.captured.iter().filter(|d| d.from == a && d.is(FrameType::Initiation));
    let bad_mac = Dropped::Session(session::Dropped::BadMac);
    assert_eq!(
        na.dropped.iter().filter(|(_, d)| *d == bad_mac).count(),
        initiations.count(),
        "each reflected initiation fails mac1, the first check, before any work"
    );
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

/// What the impersonator tries to have B present as A's.
const KCI_MESSAGE: &str = "it's A, really";

/// The impersonator's best effort after its forged IK message 1 (`sym` and
/// `e`, from [`forge::ik_initiation_keeping_state`]) drew B's `response`:
/// it reads what it can of message 2 (`e, ee`) and tries the payload
/// without `se` ([`forge::ik_read_response_without_se`]). With keys it acts
/// as A's agent would: the whole invitation, one authentic transport
/// datagram per Invite fragment, from `from` — B's leg is confirmed by the
/// first and the invitation would be presented. Without keys it can only
/// guess: a garbage transport datagram to B's new session. Returns whether
/// it obtained keys.
fn kci_follow_up(
    m: &mut Mitm,
    from: NodeId,
    b: NodeId,
    sym: SymmetricState,
    e: &KeyPair,
    response: &[u8],
    id: u8,
) -> bool {
    if let Some(keys) = forge::ik_read_response_without_se(sym, e, response) {
        let fragments =
            forge::invite_fragments(InviteId([id; 16]), APP, KCI_MESSAGE, b"port=6666", 60_000);
        for (counter, f) in (0u64..).zip(&fragments) {
            let t = forge::transport(&keys.send, keys.receiver_index, counter, f);
            m.send(from, b, &t);
        }
        return true;
    }
    let mut t = vec![1, 5, 0, 0];
    t.extend_from_slice(&response[4..8]);
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&[0x42; 40]);
    m.send(from, b, &t);
    false
}

/// B's Response to the initiation with sender index `index`, among `seen`.
fn response_to<'a>(seen: impl IntoIterator<Item = &'a Vec<u8>>, index: u32) -> Option<Vec<u8>> {
    seen.into_iter()
        .find(|d| {
            d.len() >= 12 && d[1] == FrameType::Response as u8 && d[8..12] == index.to_be_bytes()
        })
        .cloned()
}

/// The attacker holds B's static private key (stolen) and A's public card.
/// It can build an IK first message that B reads as A's (`ss` computed
/// with B's key: Noise's source level 1), and B answers it. The attacker
/// then does its best: it reads B's message 2 as far as it can (`e, ee`)
/// and, lacking `se`, tries to decrypt the rest anyway; had it the keys, it
/// would send A's invitation as A's agent does. It never gets them: B
/// presents nothing, and the half-open invitations end silently.
///
/// Defence: IK message 2 is `e, ee, se` (handshake.md; the IK pattern in
/// `core/src/noise/pattern.rs`): `se` = DH(e_B, S_A) needs A's private key,
/// so only A can derive the transport keys, read message 2 or send the
/// Invite that confirms B's leg (`core/src/session.rs`, IK responder
/// confirmation) and rides in the inviter's first transport message
/// (`core/src/invite/mod.rs` invitee; handshake.md §3.1). The mutation
/// `ik-se` (message 2 without `se`) makes this test fail: the attacker
/// derives the keys and B presents its invitation as A's.
#[test]
fn key_compromise_impersonation_with_the_invitees_static_key_presents_nothing() {
    let (mut net, book, a, b) = friends_book(6);
    let attacker = add_sink(&mut net, &book);
    let b_keys = node(&net, b).agent.identity().static_keys().clone();
    let a_local = node(&net, a).agent.identity().clone();
    let b_cert_hash = node(&net, b).agent.identity().certificate_hash().0;
    let mut m = Mitm::new(net);
    let mut keyed = 0;
    for k in 0..3u64 {
        let e = KeyPair::generate(&mut HashDrbg::from_u64(900 + k));
        let ss = dh(&b_keys, a_local.static_keys().public()).unwrap();
        let index = 77 + u32::try_from(k).unwrap();
        let (forged, sym) = forge::ik_initiation_keeping_state(
            b_keys.public(),
            &e,
            a_local.static_keys().public(),
            &ss,
            &a_local.certificate().encode(),
            &b_cert_hash,
            index,
        );
        m.send(attacker, b, &forged);
        // Until B's answer arrives (not a second longer: B's half-open
        // session must still be there).
        let answered = |n: &Network| {
            response_to(n.node::<Sink>(attacker).received.iter().map(|(_, _, r)| r), index)
                .is_some()
        };
        m.run(10_000, m.net.now + Duration::from_secs(1), answered).unwrap();
        let sink = m.net.node::<Sink>(attacker);
        if let Some(response) = response_to(sink.received.iter().map(|(_, _, r)| r), index) {
            let id = 0xC0 + u8::try_from(k).unwrap();
            keyed += u32::from(kci_follow_up(&mut m, attacker, b, sym, &e, &response, id));
        }
        // One attempt after another: the next once this one is over (three
        // half-open handshakes at once would put B under load, and it would
        // demand a cookie instead).
        m.settle(60);
    }
    m.settle(120);
    let nb = node(&m.net, b);
    assert_eq!(nb.invited(), 0, "no invitation surfaces at B");
    assert!(nb.events.is_empty(), "no event at all: {:?}", nb.events);
    let sink = m.net.node::<Sink>(attacker);
    assert_eq!(sink.received.len(), 3, "B answered each forged first message (KCI at level 1)");
    assert!(sink.received.iter().all(|(_, _, r)| r[1] == FrameType::Response as u8));
    assert_eq!(nb.agent.invitations_in_use(), 0, "the half-open invitations ended");
    assert_eq!(node(&m.net, a).sent.len(), 0, "A was never involved");
    assert_eq!(keyed, 0, "the attacker never derived transport keys");
}

/// B with policy TrustedOnly and A a trusted contact: the same attack, sent
/// from A's own address (the source proves nothing) by an attacker on the
/// path who reads B's response to A. The policy check at the first message
/// passes (the attacker claims A), so the only thing between the attacker
/// and B's user is that it cannot derive the transport keys.
///
/// Defence: as above, `se` in IK message 2 (handshake.md; the IK pattern in
/// `core/src/noise/pattern.rs`). The mutation `ik-se` makes this test fail.
#[test]
fn key_compromise_impersonation_of_a_trusted_contact_under_trusted_only_presents_nothing() {
    let (mut net, a, b) = friends(7);
    net.node_mut::<AgentNode>(b).agent.set_policy(Policy::TrustedOnly);
    let b_keys = node(&net, b).agent.identity().static_keys().clone();
    let a_local = node(&net, a).agent.identity().clone();
    let e = KeyPair::generate(&mut HashDrbg::from_u64(31));
    let ss = dh(&b_keys, a_local.static_keys().public()).unwrap();
    let (forged, sym) = forge::ik_initiation_keeping_state(
        b_keys.public(),
        &e,
        a_local.static_keys().public(),
        &ss,
        &a_local.certificate().encode(),
        &node(&net, b).agent.identity().certificate_hash().0,
        5,
    );
    let mut m = Mitm::new(net);
    // On the path between A and B: it sees B's answer, which it forwards.
    m.intercept(a, b);
    m.send(a, b, &forged);
    // Until B's answer went past the attacker (A then drops it).
    let answered = |n: &Network| !n.node::<AgentNode>(a).dropped.is_empty();
    m.run(10_000, m.net.now + Duration::from_secs(1), answered).unwrap();
    let mut keyed = 0;
    let from_b = m.captured.iter().filter(|d| d.from == b).map(|d| &d.bytes);
    if let Some(response) = response_to(from_b, 5) {
        keyed += u32::from(kci_follow_up(&mut m, a, b, sym, &e, &response, 0xC5));
    }
    m.settle(120);
    let nb = node(&m.net, b);
    assert_eq!(nb.invited(), 0, "no invitation surfaces at B");
    assert!(nb.events.is_empty(), "no event at all: {:?}", nb.events);
    assert_eq!(nb.sent.len(), 1, "B answered the forged first message");
    assert_eq!(nb.agent.invitations_in_use(), 0, "the half-open invitation ended");
    assert_eq!(node(&m.net, a).dropped.len(), 1, "A drops the response it never asked for");
    assert_eq!(node(&m.net, a).events.len(), 0);
    assert_eq!(node(&m.net, a).sent.len(), 0, "A was never involved");
    assert_eq!(keyed, 0, "the attacker never derived transport keys");
}

//! One secure session between two peers over the virtual network: IK and XX
//! handshakes, retransmission, loss, duplication, reordering, identity
//! checks, and the sans-IO contract.

use peercollab_core::identity::{Certificate, EndpointId, LocalIdentity};
use peercollab_core::mac::MacKey;
use peercollab_core::session::{
    Dropped, Failure, HANDSHAKE_TIMEOUT, Incoming, PinnedPeer, Received, Session, SessionEvent,
    StatementForm,
};
use peercollab_core::wire::{CookieReply, Frame, FrameType, MAX_DATAGRAM, Mode, peek_type};
use peercollab_core::{Duration, HashDrbg, Instant};
use peercollab_tests::{Faults, Network, SessionPeer};
use proptest::prelude::*;

const ALICE: usize = 0;
const BOB: usize = 1;

fn identity(seed: u64, endpoint: u32) -> LocalIdentity {
    LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(endpoint))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Contact,
    Endpoint,
}

/// Alice (node 0) initiates to Bob (node 1); both pin each other.
fn pair(kind: Kind, seed: u64, faults: Faults) -> Network {
    let alice = identity(1, 1);
    let bob = identity(2, 1);
    let bob_card = *bob.certificate();
    let alice_pinned = PinnedPeer::new(&bob, *alice.certificate()).unwrap();
    let mut net = Network::new(seed, faults);
    net.add(Box::new(SessionPeer::initiator(alice, BOB, seed, |local, rng| match kind {
        Kind::Contact => {
            let peer = PinnedPeer::new(local, bob_card).unwrap();
            Session::initiate_contact(
                local,
                &peer,
                0xA11CE,
                StatementForm::Certificate,
                Instant::ZERO,
                rng,
            )
            .unwrap()
        }
        Kind::Endpoint => {
            Session::initiate_endpoint(local, None, 0xA11CE, Instant::ZERO, rng).unwrap()
        }
    })));
    net.add(Box::new(SessionPeer::responder(bob, vec![alice_pinned], ALICE, seed + 1)));
    net
}

fn peer(net: &Network, id: usize) -> &SessionPeer {
    net.node::<SessionPeer>(id)
}

fn run_to_quiet(net: &mut Network) {
    net.run(10_000, Instant::from_millis(600_000), |_| false).expect("no livelock");
}

fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; 1 + i * 37 % 1100]).collect()
}

/// Alice starts an IK handshake to `bob`, whose current certificate she
/// pinned: her session, its initiation datagram and the generator used.
fn ik_initiation(
    alice: &LocalIdentity,
    bob: &LocalIdentity,
    index: u32,
    form: StatementForm,
    seed: u64,
) -> (Session, Vec<u8>, HashDrbg) {
    let mut rng = HashDrbg::from_u64(seed);
    let pinned = PinnedPeer::new(alice, *bob.certificate()).unwrap();
    let mut s =
        Session::initiate_contact(alice, &pinned, index, form, Instant::ZERO, &mut rng).unwrap();
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = s.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    (s, buf[..n].to_vec(), rng)
}

/// A cookie reply to the IK initiation `init` (from session `index`),
/// carrying `cookie` sealed under `key`.
fn cookie_reply(key: &MacKey, init: &[u8], index: u32, cookie: &[u8; 16]) -> [u8; 64] {
    let n = init.len();
    let mac1: [u8; 16] = init[n - 32..n - 16].try_into().unwrap();
    let nonce = [9; 24];
    let mut out = [0u8; 64];
    Frame::CookieReply(CookieReply {
        mode: Mode::Ik,
        receiver_index: index,
        nonce,
        sealed_cookie: key.seal_cookie(&nonce, cookie, &mac1),
    })
    .emit(&mut out)
    .unwrap();
    out
}

#[test]
fn ik_contact_handshake_establishes_both_sides_and_carries_payloads_both_ways() {
    let mut net = pair(Kind::Contact, 1, Faults::clean(20));
    net.node_mut::<SessionPeer>(ALICE).outbox = payloads(5);
    net.node_mut::<SessionPeer>(BOB).outbox = payloads(3);
    run_to_quiet(&mut net);
    let (a, b) = (peer(&net, ALICE), peer(&net, BOB));
    assert!(a.established() && b.established());
    assert_eq!(a.inbox, payloads(3));
    assert_eq!(b.inbox, payloads(5));
    let (sa, sb) = (a.session.as_ref().unwrap(), b.session.as_ref().unwrap());
    assert_eq!(sa.handshake_hash(), sb.handshake_hash());
    assert_eq!(sa.peer().unwrap().identity(), &b.local.identity());
    assert_eq!(sb.peer().unwrap().identity(), &a.local.identity());
    // The handshake took exactly two datagrams: no retransmission on a clean link.
    assert_eq!(sa.stats().handshake_retransmissions, 0);
    assert_eq!(peek_type(&a.sent[0].1), Ok(FrameType::Initiation));
    assert_eq!(peek_type(&b.sent[0].1), Ok(FrameType::Response));
    assert!(b.sent[0].1.len() <= a.sent[0].1.len(), "no reply larger than its trigger");
}

#[test]
fn xx_endpoint_handshake_reveals_the_answerer_and_carries_payloads() {
    let mut net = pair(Kind::Endpoint, 2, Faults::clean(20));
    net.node_mut::<SessionPeer>(ALICE).outbox = payloads(4);
    net.node_mut::<SessionPeer>(BOB).outbox = payloads(2);
    run_to_quiet(&mut net);
    let (a, b) = (peer(&net, ALICE), peer(&net, BOB));
    assert!(a.established() && b.established());
    assert_eq!(a.inbox, payloads(2));
    assert_eq!(b.inbox, payloads(4));
    assert_eq!(a.session.as_ref().unwrap().peer().unwrap().identity(), &b.local.identity());
    assert_eq!(b.session.as_ref().unwrap().peer().unwrap().identity(), &a.local.identity());
    let types: Vec<_> = a.sent.iter().map(|(_, d)| peek_type(d).unwrap()).collect();
    assert_eq!(types[..2], [FrameType::Initiation, FrameType::HandshakeFinal]);
    assert!(b.sent[0].1.len() <= a.sent[0].1.len(), "no reply larger than its trigger");
}

#[test]
fn initiator_retransmits_cached_bytes_with_backoff_then_gives_up_unreachable() {
    for kind in [Kind::Contact, Kind::Endpoint] {
        let mut net = pair(kind, 3, Faults { loss_permille: 1000, ..Faults::clean(10) });
        run_to_quiet(&mut net);
        let a = peer(&net, ALICE);
        // Attempts at about 0, 1, 3, 7, 15, 23, 31 s: each a byte-identical copy.
        assert_eq!(a.sent.len(), 7, "{:?}", a.sent.iter().map(|s| s.0).collect::<Vec<_>>());
        assert!(a.sent.iter().all(|(_, d)| *d == a.sent[0].1));
        let gaps: Vec<u64> =
            a.sent.windows(2).map(|w| w[1].0.as_millis() - w[0].0.as_millis()).collect();
        let nominal = [0u64, 1000, 3000, 7000, 15000, 23000, 31000];
        for ((at, _), due) in a.sent.iter().zip(nominal) {
            assert!((due..=due + 333).contains(&at.as_millis()), "attempt at {at:?}, due {due}");
        }
        assert!(gaps.iter().all(|g| *g >= 1000 - 333));
        assert_eq!(
            a.events,
            vec![(Instant::ZERO + HANDSHAKE_TIMEOUT, SessionEvent::Failed(Failure::Unreachable))]
        );
        assert_eq!(a.session.as_ref().unwrap().poll_timeout(), None);
        assert!(peer(&net, BOB).sent.is_empty());
    }
}

#[test]
fn responder_never_retransmits_on_its_own_timer() {
    // Everything Bob sends is lost; Alice keeps retrying; Bob only ever
    // answers, one cached response per initiation received.
    for kind in [Kind::Contact, Kind::Endpoint] {
        let mut net = pair(kind, 4, Faults::clean(10));
        net.cut.push((BOB, ALICE));
        run_to_quiet(&mut net);
        let a = peer(&net, ALICE);
        let b = peer(&net, BOB);
        assert_eq!(a.sent.len(), 7);
        assert_eq!(b.sent.len(), a.sent.len(), "one answer per initiation, none on a timer");
        assert!(b.sent.iter().all(|(_, d)| *d == b.sent[0].1), "answers come from cache");
        for ((answered, _), (asked, _)) in b.sent.iter().zip(&a.sent) {
            assert_eq!(answered.as_millis(), asked.as_millis() + 10, "answers only when asked");
        }
        let gave_up = Instant::from_millis(10) + HANDSHAKE_TIMEOUT;
        assert_eq!(b.events, vec![(gave_up, SessionEvent::Failed(Failure::Unconfirmed))]);
        assert_eq!(a.events.last().unwrap().1, SessionEvent::Failed(Failure::Unreachable));
    }
}

#[test]
fn handshake_survives_loss_duplication_and_reordering_for_many_seeds() {
    let mut established = 0;
    for seed in 0..60 {
        for kind in [Kind::Contact, Kind::Endpoint] {
            let faults = Faults {
                latency_ms: 30,
                jitter_ms: 200,
                loss_permille: 300,
                duplicate_permille: 200,
            };
            let mut net = pair(kind, seed, faults);
            net.node_mut::<SessionPeer>(ALICE).outbox = payloads(6);
            net.node_mut::<SessionPeer>(BOB).outbox = payloads(6);
            run_to_quiet(&mut net);
            let (a, b) = (peer(&net, ALICE), peer(&net, BOB));
            // Exactly one outcome per side, never both.
            let outcome = |p: &SessionPeer| {
                p.events.iter().filter(|(_, e)| matches!(e, SessionEvent::Failed(_))).count()
            };
            assert!(outcome(a) <= 1 && outcome(b) <= 1);
            if a.established() && b.established() {
                established += 1;
                // Whatever arrived arrived intact and at most once.
                let sent = payloads(6);
                for inbox in [&a.inbox, &b.inbox] {
                    for p in inbox {
                        assert!(sent.contains(p), "altered payload");
                        assert_eq!(
                            inbox.iter().filter(|q| *q == p).count(),
                            1,
                            "duplicate payload"
                        );
                    }
                }
            }
        }
    }
    assert!(established >= 100, "only {established} of 120 runs established under 30% loss");
}

#[test]
fn duplicate_initiation_is_answered_from_cache_with_identical_bytes() {
    let mut net = pair(Kind::Contact, 5, Faults::clean(10));
    // A first payload confirms the handshake to Bob.
    net.node_mut::<SessionPeer>(ALICE).outbox = payloads(1);
    run_to_quiet(&mut net);
    let first_init = peer(&net, ALICE).sent[0].1.clone();
    let first_resp = peer(&net, BOB).sent[0].1.clone();
    net.inject(ALICE, BOB, &first_init);
    run_to_quiet(&mut net);
    let b = peer(&net, BOB);
    assert_eq!(b.sent.last().unwrap().1, first_resp);
    // Alice drops the duplicate response: her handshake is done.
    assert_eq!(peer(&net, ALICE).dropped, vec![Dropped::Duplicate]);
}

#[test]
fn lost_xx_final_is_retransmitted_and_a_duplicate_final_is_confirmed_by_keepalive() {
    let mut net = pair(Kind::Endpoint, 6, Faults::clean(10));
    // The initiation reaches Bob and his response is on its way; then
    // Alice's final, written when the response arrives, is lost.
    net.step();
    net.faults.loss_permille = 1000;
    net.step();
    net.faults.loss_permille = 0;
    assert!(!peer(&net, BOB).established());
    run_to_quiet(&mut net);
    let (a, b) = (peer(&net, ALICE), peer(&net, BOB));
    assert!(a.established() && b.established());
    assert!(a.session.as_ref().unwrap().is_established(), "the initiator was confirmed");
    // Bob had nothing to send, so Alice retransmitted her final until Bob
    // answered a duplicate with a keepalive, which confirmed her.
    let finals =
        a.sent.iter().filter(|(_, d)| peek_type(d) == Ok(FrameType::HandshakeFinal)).count();
    assert_eq!(finals, 3, "lost, retransmitted (establishes Bob), retransmitted (confirmed)");
    assert_eq!(a.keepalives, 1);
    // Replaying the final again earns another keepalive and nothing else.
    let fin = a
        .sent
        .iter()
        .find(|(_, d)| peek_type(d) == Ok(FrameType::HandshakeFinal))
        .unwrap()
        .1
        .clone();
    net.inject(ALICE, BOB, &fin);
    run_to_quiet(&mut net);
    assert_eq!(peer(&net, ALICE).keepalives, 2);
    assert!(peer(&net, BOB).inbox.is_empty());
}

#[test]
fn transport_replay_is_delivered_once() {
    let mut net = pair(Kind::Contact, 7, Faults::clean(10));
    net.node_mut::<SessionPeer>(ALICE).outbox = payloads(2);
    run_to_quiet(&mut net);
    let data: Vec<Vec<u8>> = peer(&net, ALICE)
        .sent
        .iter()
        .filter(|(_, d)| peek_type(d) == Ok(FrameType::Transport))
        .map(|(_, d)| d.clone())
        .collect();
    for d in &data {
        net.inject(ALICE, BOB, d);
    }
    run_to_quiet(&mut net);
    let b = peer(&net, BOB);
    assert_eq!(b.inbox, payloads(2));
    assert_eq!(b.dropped, vec![Dropped::Replayed, Dropped::Replayed]);
}

/// Eve certifies Bob's static key under her own identity and publishes that
/// certificate as her contact card. Alice pins it and invites "Eve": the
/// datagrams reach Bob's endpoint, which answers. Alice must not conclude
/// she is talking to Eve: Bob states his own identity, and Alice checks it.
#[test]
fn identity_misbinding_initiator_detects_the_real_responder() {
    let bob = identity(2, 1);
    let eve = identity(3, 1);
    let eve_claims_bobs_key =
        Certificate::issue(eve.secret(), bob.static_keys().public(), EndpointId(1), 1);
    let eve_card = Certificate::parse(&eve_claims_bobs_key.encode())
        .expect("a valid certificate: Eve may certify any key");
    let mut net = Network::new(8, Faults::clean(10));
    net.add(Box::new(SessionPeer::initiator(identity(1, 1), BOB, 8, |local, rng| {
        let pinned = PinnedPeer::new(local, eve_card).unwrap();
        Session::initiate_contact(local, &pinned, 1, StatementForm::Certificate, Instant::ZERO, rng)
            .unwrap()
    })));
    net.add(Box::new(SessionPeer::responder(bob, vec![], ALICE, 9)));
    net.node_mut::<SessionPeer>(ALICE).outbox = vec![b"meet Eve".to_vec()];
    run_to_quiet(&mut net);
    let a = peer(&net, ALICE);
    assert!(!a.established(), "Alice believed Bob's endpoint was Eve");
    assert_eq!(
        a.events,
        vec![(Instant::from_millis(20), SessionEvent::Failed(Failure::IdentityMismatch))]
    );
    assert!(peer(&net, BOB).inbox.is_empty());
}

/// The same attack seen from the responder: Bob pinned Eve's certificate of
/// Alice's static key. Alice invites Bob, stating her own certificate; Bob
/// must see Alice, not Eve.
#[test]
fn identity_misbinding_responder_sees_the_real_initiator() {
    let alice = identity(1, 1);
    let bob = identity(2, 1);
    let eve = identity(3, 1);
    let eve_claims_alices_key =
        Certificate::issue(eve.secret(), alice.static_keys().public(), EndpointId(1), 1);
    let bob_pins_eve = [PinnedPeer::new(&bob, eve_claims_alices_key).unwrap()];
    let (_, init, _) = ik_initiation(&alice, &bob, 1, StatementForm::Certificate, 10);
    let incoming = Incoming::read(&bob, &bob_pins_eve[..], &init).unwrap();
    assert_eq!(incoming.peer().unwrap().identity(), &alice.identity());
    // Stating only a hash Bob cannot match to what he pinned is refused.
    let (_, init, _) = ik_initiation(&alice, &bob, 2, StatementForm::Hash, 11);
    assert_eq!(
        Incoming::read(&bob, &bob_pins_eve[..], &init).unwrap_err(),
        Dropped::UnknownCertificateHash
    );
}

#[test]
fn xx_initiator_expecting_an_identity_refuses_another() {
    let bob = identity(2, 1);
    let carol = identity(4, 1);
    let mut net = Network::new(11, Faults::clean(10));
    let want = carol.identity();
    net.add(Box::new(SessionPeer::initiator(identity(1, 1), BOB, 11, |local, rng| {
        Session::initiate_endpoint(local, Some(want), 1, Instant::ZERO, rng).unwrap()
    })));
    net.add(Box::new(SessionPeer::responder(bob, vec![], ALICE, 12)));
    run_to_quiet(&mut net);
    let a = peer(&net, ALICE);
    assert_eq!(
        a.events,
        vec![(Instant::from_millis(20), SessionEvent::Failed(Failure::IdentityMismatch))]
    );
    // Alice never sent her final message, so Bob never learned who she is.
    assert!(peer(&net, BOB).session.as_ref().unwrap().peer().is_none());
}

#[test]
fn pinned_initiator_stating_a_hash_is_recognised_by_a_responder_that_pinned_it() {
    let alice = identity(1, 1);
    let bob = identity(2, 1);
    let dir = [PinnedPeer::new(&bob, *alice.certificate()).unwrap()];
    let (_, init, _) = ik_initiation(&alice, &bob, 1, StatementForm::Hash, 13);
    let incoming = Incoming::read(&bob, &dir[..], &init).unwrap();
    assert_eq!(incoming.peer().unwrap(), alice.certificate());
}

#[test]
fn same_seed_same_trace() {
    let run = |seed| {
        let faults =
            Faults { latency_ms: 25, jitter_ms: 100, loss_permille: 200, duplicate_permille: 100 };
        let mut net = pair(Kind::Endpoint, seed, faults);
        net.node_mut::<SessionPeer>(ALICE).outbox = payloads(3);
        run_to_quiet(&mut net);
        net.trace
    };
    assert_eq!(run(21), run(21));
    assert_ne!(run(21), run(22));
}

#[test]
fn commands_before_the_handshake_are_refused_and_change_nothing() {
    let alice = identity(1, 1);
    let mut rng = HashDrbg::from_u64(14);
    let mut s = Session::initiate_endpoint(&alice, None, 1, Instant::ZERO, &mut rng).unwrap();
    let mut buf = [0u8; MAX_DATAGRAM];
    assert!(s.send(Instant::ZERO, b"too early", &mut buf).is_err());
    assert!(!s.can_send());
    // The initiation is still queued, untouched by the failed command.
    assert!(s.poll_transmit(Instant::ZERO, &mut buf).is_some());
}

fn established_pair(kind: Kind) -> (Session, Session, HashDrbg) {
    let mut net = pair(kind, 30, Faults::clean(5));
    net.node_mut::<SessionPeer>(ALICE).outbox = payloads(1);
    run_to_quiet(&mut net);
    let a = net.node_mut::<SessionPeer>(ALICE).session.take().unwrap();
    let b = net.node_mut::<SessionPeer>(BOB).session.take().unwrap();
    (a, b, HashDrbg::from_u64(31))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary datagrams never panic a responder or an established
    /// session, and never change what the session does next.
    #[test]
    fn arbitrary_datagrams_are_dropped_without_effect(
        junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1300), 1..20),
        kind in prop_oneof![Just(Kind::Contact), Just(Kind::Endpoint)],
    ) {
        let bob = identity(2, 1);
        let (mut a, mut b, mut rng) = established_pair(kind);
        let mut payload = [0u8; MAX_DATAGRAM];
        for j in &junk {
            let _ = Incoming::read(&bob, &(), j);
            let before = b.stats().received;
            let r = b.handle_datagram(Instant::from_millis(100), j, &mut payload, &mut rng);
            prop_assert!(r.is_err() || matches!(r, Ok(Received::Handshake)));
            prop_assert_eq!(b.stats().received, before);
        }
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = a.send(Instant::from_millis(200), b"still works", &mut buf).unwrap();
        let r = b.handle_datagram(Instant::from_millis(200), &buf[..n], &mut payload, &mut rng);
        prop_assert_eq!(r, Ok(Received::Payload(11)));
        prop_assert_eq!(&payload[..11], b"still works");
    }

    /// Whatever the sequence of (possibly backwards) times, nothing panics
    /// and after `handle_timeout(now)` the next deadline is later than now.
    #[test]
    fn after_handle_timeout_the_next_deadline_is_in_the_future(
        times in proptest::collection::vec(0u64..100_000, 1..40),
        kind in prop_oneof![Just(Kind::Contact), Just(Kind::Endpoint)],
    ) {
        let mut net = pair(kind, 40, Faults::clean(5));
        let s = net.node_mut::<SessionPeer>(ALICE).session.as_mut().unwrap();
        let mut rng = HashDrbg::from_u64(41);
        let mut latest = 0;
        let mut buf = [0u8; MAX_DATAGRAM];
        for t in times {
            latest = latest.max(t);
            s.handle_timeout(Instant::from_millis(t), &mut rng);
            while s.poll_transmit(Instant::from_millis(t), &mut buf).is_some() {}
            if let Some(next) = s.poll_timeout() {
                prop_assert!(next > Instant::from_millis(latest), "deadline {next:?} not after {latest}");
            }
        }
    }
}

#[test]
fn xx_response_is_never_larger_than_its_initiation() {
    let alice = identity(1, 1);
    let bob = identity(2, 1);
    let mut rng = HashDrbg::from_u64(50);
    let mut s = Session::initiate_endpoint(&alice, None, 1, Instant::ZERO, &mut rng).unwrap();
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = s.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let mut r = Incoming::read(&bob, &(), &buf[..n])
        .unwrap()
        .accept(&bob, 2, Instant::ZERO, &mut rng)
        .unwrap();
    let mut out = [0u8; MAX_DATAGRAM];
    let m = r.poll_transmit(Instant::ZERO, &mut out).unwrap();
    assert!(m <= n, "response {m} > initiation {n}");
    let _ = Duration::ZERO;
}

/// Alice pinned Bob's first certificate; Bob has since reissued it (serial
/// 2, same static key). Bob sees from Alice's initiation that she pinned an
/// older one and states his current certificate in full: Alice learns it
/// in-band instead of failing.
#[test]
fn ik_responder_with_a_reissued_certificate_states_it_in_full_and_the_initiator_learns_it() {
    let alice = identity(1, 1);
    let bob_v1 = identity(2, 1);
    let bob_v2 =
        LocalIdentity::new(bob_v1.secret().clone(), bob_v1.static_keys().clone(), EndpointId(1), 2);
    let (mut a, init, mut rng) = ik_initiation(&alice, &bob_v1, 1, StatementForm::Certificate, 60);
    let n = init.len();
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut out = [0u8; MAX_DATAGRAM];
    let mut b = Incoming::read(&bob_v2, &(), &init)
        .unwrap()
        .accept(&bob_v2, 2, Instant::ZERO, &mut rng)
        .unwrap();
    let m = b.poll_transmit(Instant::ZERO, &mut out).unwrap();
    assert!(m <= n, "response {m} larger than initiation {n}");
    assert_eq!(m, 220, "a response stating the full certificate");
    let _ = a.handle_datagram(Instant::ZERO, &out[..m], &mut buf, &mut rng).unwrap();
    assert_eq!(a.poll_event(), Some(SessionEvent::Established));
    assert_eq!(a.peer().unwrap().serial(), 2);
    assert!(a.peer().unwrap().supersedes(bob_v1.certificate()));
}

#[test]
fn ik_responder_states_only_the_hash_when_the_initiator_pinned_its_current_certificate() {
    let mut net = pair(Kind::Contact, 61, Faults::clean(10));
    net.node_mut::<SessionPeer>(ALICE).outbox = payloads(1);
    run_to_quiet(&mut net);
    let response = &peer(&net, BOB).sent[0].1;
    assert_eq!(response.len(), 111);
    assert!(peer(&net, ALICE).established());
}

#[test]
fn ik_responder_cannot_send_until_the_initiator_confirms() {
    let mut net = pair(Kind::Contact, 62, Faults::clean(10));
    net.step(); // Bob answers and holds transport keys, unconfirmed.
    let mut buf = [0u8; MAX_DATAGRAM];
    let b = net.node_mut::<SessionPeer>(BOB).session.as_mut().unwrap();
    assert!(!b.can_send());
    assert!(b.send(Instant::from_millis(10), b"early", &mut buf).is_err());
    net.node_mut::<SessionPeer>(ALICE).outbox = payloads(1);
    run_to_quiet(&mut net);
    assert!(net.node::<SessionPeer>(BOB).session.as_ref().unwrap().can_send());
}

/// A responder under load answers with a cookie reply; the initiator's next
/// retransmission carries mac2 keyed by that cookie. A cookie reply sealed
/// under the wrong key is dropped.
#[test]
fn a_cookie_reply_sets_mac2_on_the_next_retransmission() {
    let alice = identity(1, 1);
    let bob = identity(2, 1);
    let (mut a, init, mut rng) = ik_initiation(&alice, &bob, 7, StatementForm::Certificate, 63);
    let n = init.len();
    assert_eq!(&init[n - 16..n], &[0; 16], "no cookie yet: mac2 is zeros");
    let cookie = [0x5a; 16];
    let mut payload = [0u8; MAX_DATAGRAM];
    let forged = cookie_reply(&MacKey::cookie(&[1; 32]), &init, 7, &cookie);
    assert_eq!(
        a.handle_datagram(Instant::ZERO, &forged, &mut payload, &mut rng),
        Err(Dropped::Decrypt)
    );
    let genuine = cookie_reply(&MacKey::cookie(bob.static_keys().public()), &init, 7, &cookie);
    assert_eq!(
        a.handle_datagram(Instant::ZERO, &genuine, &mut payload, &mut rng),
        Ok(Received::Handshake)
    );
    let t = a.poll_timeout().unwrap();
    a.handle_timeout(t, &mut rng);
    let mut again = [0u8; MAX_DATAGRAM];
    let m = a.poll_transmit(t, &mut again).unwrap();
    assert_eq!(m, n);
    assert_eq!(&again[..n - 16], &init[..n - 16], "same initiation, same mac1");
    assert_eq!(again[n - 16..n], MacKey::from_cookie(&cookie).mac(&again[..n - 16]));
}

/// XX message 1 carries only an ephemeral key and does no Diffie-Hellman, so
/// a low-order key passes `Incoming::read`; answering it fails, nothing is
/// sent, and the responder is unchanged.
#[test]
fn xx_initiation_with_a_low_order_ephemeral_is_refused_without_a_reply() {
    use peercollab_core::mac::XX_MAC1_KEY_MATERIAL;
    use peercollab_core::noise::Error as NoiseError;
    use peercollab_core::session::SessionError;
    use peercollab_core::wire::Initiation;
    let bob = identity(2, 1);
    let noise = [0u8; 260]; // e = 0 (low order), then the zero padding
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = Frame::Initiation(Initiation {
        mode: Mode::Xx,
        sender_index: 1,
        noise: &noise,
        mac1: [0; 16],
        mac2: [0; 16],
    })
    .emit(&mut buf)
    .unwrap();
    let mac1 = MacKey::mac1(&XX_MAC1_KEY_MATERIAL).mac(&buf[..n - 32]);
    buf[n - 32..n - 16].copy_from_slice(&mac1);
    let incoming = Incoming::read(&bob, &(), &buf[..n]).expect("message 1 has nothing to check");
    let refused = incoming.accept(&bob, 2, Instant::ZERO, &mut HashDrbg::from_u64(70)).unwrap_err();
    assert_eq!(refused, SessionError::Noise(NoiseError::NonContributory));
}

/// The responder's policy sees the claimed identity before the certificate
/// signature is checked; an identity it refuses is dropped, and nothing is
/// sent.
#[test]
fn responder_policy_runs_before_the_signature_check_and_refusal_is_silent() {
    let alice = identity(1, 1);
    let bob = identity(2, 1);
    let (_, init, _) = ik_initiation(&alice, &bob, 1, StatementForm::Certificate, 80);
    let mut asked = None;
    let refused = Incoming::read_admitting(&bob, &(), &init, |id| {
        asked = Some(*id);
        false
    });
    assert_eq!(refused.unwrap_err(), Dropped::NotAdmitted);
    assert_eq!(asked, Some(alice.identity()));
    // Admitted, the certificate is verified and becomes the peer.
    let admitted = Incoming::read_admitting(&bob, &(), &init, |_| true).unwrap();
    assert_eq!(admitted.peer().unwrap().identity(), &alice.identity());
}

#[test]
fn debug_output_shows_state_but_no_keys_or_cookies() {
    let alice = identity(1, 1);
    let bob = identity(2, 1);
    let pinned = PinnedPeer::new(&alice, *bob.certificate()).unwrap();
    let (mut a, init, mut rng) = ik_initiation(&alice, &bob, 7, StatementForm::Certificate, 90);
    let cookie = [0xc5; 16];
    let reply = cookie_reply(&MacKey::cookie(bob.static_keys().public()), &init, 7, &cookie);
    let mut payload = [0u8; MAX_DATAGRAM];
    assert!(a.handle_datagram(Instant::ZERO, &reply, &mut payload, &mut rng).is_ok());
    let shown = format!("{a:?} {pinned:?} {alice:?}");
    assert!(shown.contains("awaiting-response"), "{shown}");
    for secret in [
        peercollab_tests::hex(&cookie),
        peercollab_tests::hex(&alice.static_keys().secret_bytes()),
        peercollab_tests::hex(&alice.secret().to_bytes()),
    ] {
        assert!(!shown.contains(&secret[..8]), "{shown}");
    }
    assert!(!shown.contains("197, 197, 197"), "cookie bytes printed: {shown}");
}

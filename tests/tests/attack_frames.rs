//! Attacks on the frames themselves, through the man-in-the-middle harness:
//! downgrade and header tampering, oversized and malformed frames, nonce
//! desync (garbage that would move receive state), low-order X25519 points
//! and weak ed25519 keys.

use peercollab_core::agent::{Agent, AgentConfig, Dropped, Handle, InviteOptions, Policy};
use peercollab_core::identity::{Certificate, EndpointId, IdentityKey, LocalIdentity};
use peercollab_core::invite::Outcome;
use peercollab_core::noise::KeyPair;
use peercollab_core::session;
use peercollab_core::wire::{FrameType, MAX_DATAGRAM, Mode, WireError};
use peercollab_core::{Duration, HashDrbg, Instant};
use peercollab_tests::agents::{
    APP, AgentNode, invite_contact, invite_endpoint, request, target_of,
};
use peercollab_tests::mitm::{
    Action, Mitm, cleartext_header_len, flip_bit, forge, splice, truncate, trusted_pair,
};
use peercollab_tests::{Network, NodeId};

fn node(net: &Network, id: NodeId) -> &AgentNode {
    net.node::<AgentNode>(id)
}

/// A and B, each the other's trusted contact; B runs the app; the attacker
/// sits between them.
fn friends(seed: u64) -> (Mitm, NodeId, NodeId) {
    trusted_pair(seed, 70)
}

fn start(m: &mut Mitm, a: NodeId, b: NodeId, mode: Mode) -> Handle {
    match mode {
        Mode::Ik => {
            let card = node(&m.net, b).card();
            let contact = node(&m.net, a).agent.contact_by_identity(card.identity()).unwrap();
            let target = target_of(&m.net, b);
            invite_contact(&mut m.net, a, contact, &[target], &request(), InviteOptions::default())
        }
        Mode::Xx => invite_endpoint(&mut m.net, a, b, &request(), InviteOptions::default()),
    }
}

// ----- downgrade and header tampering -----------------------------------------

/// Before every datagram of an invitation (IK and XX), the attacker
/// delivers one copy per bit of its cleartext header (version, type, mode,
/// reserved byte, indices, a transport's counter) with that bit flipped.
/// Every tampered copy is dropped, and everything else — every event, every
/// datagram sent — is exactly as in the run without the attacker.
///
/// Defences: the parse (`core/src/wire.rs` `Frame::parse`: version,
/// reserved, type, mode, length rules), the prologue binding version and
/// mode (`core/src/session.rs` `prologue`), mac1 over the header
/// (`Incoming::mac1_ok`, response mac1), the AEAD's associated data (the
/// transport header), routing by the full index (`Agent::dispatch`).
#[test]
fn downgrade_and_header_tampering_every_header_bit_of_every_datagram_is_dropped() {
    for mode in [Mode::Ik, Mode::Xx] {
        let run = |tamper: bool| {
            let (mut m, a, b) = friends(20);
            let handle = start(&mut m, a, b, mode);
            if tamper {
                m.script(|d| {
                    let t = d.frame_type().expect("a frame");
                    let mut actions: Vec<Action> = (0..8 * cleartext_header_len(t))
                        .map(|bit| Action::Rewrite(flip_bit(&d.bytes, bit)))
                        .collect();
                    actions.push(Action::Forward);
                    actions
                });
            }
            m.settle(120);
            (m, a, b, handle)
        };
        let (clean, ..) = run(false);
        let (m, a, b, handle) = run(true);
        let tampered: usize =
            m.captured.iter().map(|d| 8 * cleartext_header_len(d.frame_type().unwrap())).sum();
        assert!(tampered > 8 * 8 * 6, "{mode:?}: {} datagrams", m.captured.len());
        for n in [a, b] {
            assert_eq!(node(&m.net, n).events, node(&clean.net, n).events, "{mode:?} node {n}");
            assert_eq!(node(&m.net, n).sent, node(&clean.net, n).sent, "{mode:?} node {n}");
        }
        let drops = node(&m.net, a).dropped.len() + node(&m.net, b).dropped.len();
        let clean_drops = node(&clean.net, a).dropped.len() + node(&clean.net, b).dropped.len();
        assert_eq!(drops, clean_drops + tampered, "{mode:?}: every tampered copy is dropped");
        assert_eq!(node(&m.net, a).responded(handle), vec![Outcome::Accepted]);
    }
}

/// Each datagram of an invitation in turn is replaced by a copy with one
/// header bit flipped (a different bit each time), in IK and XX: the
/// invitation still completes (the initiator retransmits), or fails
/// cleanly — one outcome on each side, never a different decision.
///
/// Defences: as above, and retransmission of cached handshake bytes and
/// invitation messages (`core/src/session.rs` `handle_timeout`,
/// `core/src/invite/`).
#[test]
fn downgrade_and_header_tampering_in_place_of_each_datagram_completes_or_fails_cleanly() {
    for mode in [Mode::Ik, Mode::Xx] {
        let (mut clean, ..) = friends(21);
        let (a, b) = (0, 1);
        start(&mut clean, a, b, mode);
        clean.settle(120);
        let count = clean.captured.len();
        for k in 0..count {
            let (mut m, a, b) = friends(21);
            let handle = start(&mut m, a, b, mode);
            m.script(move |d| {
                if d.seq == k {
                    let t = d.frame_type().unwrap();
                    let bit = (k * 7) % (8 * cleartext_header_len(t));
                    vec![Action::Rewrite(flip_bit(&d.bytes, bit))]
                } else {
                    vec![Action::Forward]
                }
            });
            m.settle(400);
            let outcome = node(&m.net, a).responded(handle);
            assert_eq!(outcome.len(), 1, "{mode:?} datagram {k}: one outcome at A");
            let at_b = node(&m.net, b).incoming_outcomes();
            assert!(at_b.len() <= 1, "{mode:?} datagram {k}: at most one at B");
            if let Some((_, o)) = at_b.first() {
                assert_eq!(*o, outcome[0], "{mode:?} datagram {k}: both sides agree");
            }
            assert_eq!(outcome[0], Outcome::Accepted, "{mode:?} datagram {k}: completes");
        }
    }
}

// ----- oversized and malformed frames -------------------------------------------

/// Junk of every shape delivered to both ends of a live invitation: empty
/// and oversized datagrams, every truncation of every frame of the
/// invitation, frames spliced from two others, and bytes past the end.
/// Every one is dropped without a reply and the invitation completes
/// exactly as without the junk.
///
/// Defences: `core/src/wire.rs` `Frame::parse` (length ≤ 1200, per-type
/// minimum lengths, wire.md §3.6), then mac1 / AEAD over the exact bytes.
#[test]
fn oversized_and_malformed_frames_are_dropped_and_change_nothing() {
    let run = |junk: bool| {
        let (mut m, a, b) = friends(22);
        let handle = start(&mut m, a, b, Mode::Ik);
        if junk {
            let mut previous: Vec<u8> = Vec::new();
            m.script(move |d| {
                let mut out = vec![
                    Action::Rewrite(Vec::new()),
                    Action::Rewrite(vec![1]),
                    Action::Rewrite(vec![0x5a; MAX_DATAGRAM + 1]),
                    Action::Rewrite([d.bytes.as_slice(), &[0; MAX_DATAGRAM]].concat()),
                    Action::Rewrite([d.bytes.as_slice(), &[0]].concat()),
                ];
                for len in 0..d.bytes.len() {
                    out.push(Action::Rewrite(truncate(&d.bytes, len)));
                }
                if !previous.is_empty() {
                    for at in [4, 8, 12, 16, 40] {
                        let s = splice(&d.bytes, &previous, at);
                        if s != d.bytes {
                            out.push(Action::Rewrite(s));
                        }
                    }
                }
                previous = d.bytes.clone();
                out.push(Action::Forward);
                out
            });
        }
        m.settle(120);
        (m, a, b, handle)
    };
    let (clean, ..) = run(false);
    let (m, a, b, handle) = run(true);
    for n in [a, b] {
        assert_eq!(node(&m.net, n).events, node(&clean.net, n).events);
        assert_eq!(node(&m.net, n).sent, node(&clean.net, n).sent, "no reply to junk");
    }
    assert_eq!(node(&m.net, a).responded(handle), vec![Outcome::Accepted]);
    let oversized = node(&m.net, b)
        .dropped
        .iter()
        .filter(|(_, d)| *d == Dropped::Malformed(WireError::TooLong))
        .count();
    assert!(oversized >= 2, "oversized datagrams are refused as too long");
}

// ----- nonce reuse and desync ---------------------------------------------------

/// Before each genuine transport datagram, the attacker delivers forgeries
/// with the same receiver index and counters far ahead (the next, +100,
/// 2^32, 2^63, 2^64 − 2 and the reserved 2^64 − 1) and garbage
/// ciphertext; before the genuine response, one with the right mac1
/// (computed from the initiation it saw) and garbage Noise. None is
/// accepted and none moves receive state: every genuine datagram after
/// them is still taken, and the invitation completes as without them.
///
/// Defences: the replay window is checked before and committed only after
/// the AEAD (`core/src/replay.rs`, `core/src/session.rs`
/// `handle_datagram`); a failed Noise read changes nothing
/// (`core/src/noise/handshake.rs` `read_message` works on a copy).
#[test]
fn nonce_desync_forged_counters_and_garbage_never_advance_receive_state() {
    let run = |forge_it: bool| {
        let (mut m, a, b) = friends(23);
        let handle = start(&mut m, a, b, Mode::Ik);
        if forge_it {
            let mut ephemeral = [0u8; 32];
            m.script(move |d| {
                let mut out = Vec::new();
                match d.frame_type() {
                    Some(FrameType::Initiation) => ephemeral.copy_from_slice(&d.bytes[8..40]),
                    Some(FrameType::Response) => {
                        let mut garbage = d.bytes.clone();
                        for byte in &mut garbage[12..] {
                            *byte ^= 0xa5;
                        }
                        out.push(Action::Rewrite(forge::remac_response(&garbage, &ephemeral)));
                    }
                    Some(FrameType::Transport) => {
                        let counter = u64::from_be_bytes(d.bytes[8..16].try_into().unwrap());
                        for c in
                            [counter + 1, counter + 100, 1 << 32, 1 << 63, u64::MAX - 1, u64::MAX]
                        {
                            let mut f = d.bytes.clone();
                            f[8..16].copy_from_slice(&c.to_be_bytes());
                            for byte in &mut f[16..] {
                                *byte = byte.wrapping_add(1);
                            }
                            out.push(Action::Rewrite(f));
                        }
                    }
                    _ => {}
                }
                out.push(Action::Forward);
                out
            });
        }
        m.settle(120);
        (m, a, b, handle)
    };
    let (clean, ..) = run(false);
    let (m, a, b, handle) = run(true);
    assert_eq!(node(&m.net, a).responded(handle), vec![Outcome::Accepted]);
    for n in [a, b] {
        assert_eq!(node(&m.net, n).events, node(&clean.net, n).events);
        assert_eq!(node(&m.net, n).sent, node(&clean.net, n).sent);
    }
    let forged = 1 + 6 * m.of_type(FrameType::Transport).count();
    let drops = node(&m.net, a).dropped.len() + node(&m.net, b).dropped.len();
    let clean_drops = node(&clean.net, a).dropped.len() + node(&clean.net, b).dropped.len();
    assert_eq!(drops, clean_drops + forged);
}

/// Nonce reuse: with every other of the first eight transport datagrams lost (so that
/// invitation messages are retransmitted), no two transport datagrams of
/// one session and direction share a counter, and counters only grow in
/// the order sent. (A retransmission sealed again under a used counter
/// would reuse a ChaCha20-Poly1305 nonce.)
///
/// Defence: the sender's counter (`core/src/session.rs` `send`,
/// `core/src/noise/cipher.rs` nonce increment; handshake.md §5).
#[test]
fn nonce_reuse_never_two_transport_datagrams_under_one_counter() {
    for mode in [Mode::Ik, Mode::Xx] {
        let (mut m, a, b) = friends(24);
        let handle = start(&mut m, a, b, mode);
        let mut seen = 0;
        m.script(move |d| {
            if d.is(FrameType::Transport) {
                seen += 1;
                if seen % 2 == 0 && seen <= 8 {
                    return vec![];
                }
            }
            vec![Action::Forward]
        });
        m.settle(400);
        assert_eq!(node(&m.net, a).responded(handle), vec![Outcome::Accepted], "{mode:?}");
        let mut last: std::collections::BTreeMap<(NodeId, u32), u64> = Default::default();
        let mut transports = 0;
        for d in m.of_type(FrameType::Transport) {
            let index = u32::from_be_bytes(d.bytes[4..8].try_into().unwrap());
            let counter = u64::from_be_bytes(d.bytes[8..16].try_into().unwrap());
            if let Some(prev) = last.insert((d.from, index), counter) {
                assert!(counter > prev, "{mode:?}: counter {counter} after {prev}");
            }
            transports += 1;
        }
        assert!(transports >= 10, "{mode:?}: retransmissions ({transports})");
    }
}

// ----- low-order points and weak keys ---------------------------------------------

type Responder = Agent<4, 4, 16, 1, 16>;

fn responder(policy: Policy) -> (Box<Responder>, LocalIdentity) {
    let me = LocalIdentity::generate(&mut HashDrbg::from_u64(5), EndpointId(0));
    let mut b = Box::new(Responder::new(me.clone(), AgentConfig::with_policy(policy), [3; 32]));
    b.register_application(APP, "app", None).unwrap();
    (b, me)
}

fn from() -> std::net::SocketAddr {
    "192.0.2.9:4000".parse().unwrap()
}

/// Every low-order point as an XX initiator's ephemeral key, as an IK
/// initiator's ephemeral key and as its static key, and a certificate for a
/// low-order static key: each initiation is dropped, nothing is answered,
/// no state is kept.
///
/// Defences: every X25519 result is checked to be contributory
/// (`core/src/noise/primitives.rs` `dh_secret`, `was_contributory`); the
/// certificate's static key is checked (`core/src/identity.rs`
/// `check_static_key`); an XX response with a low-order ephemeral is
/// refused (`Dropped::Unanswerable`, `core/src/agent/mod.rs`
/// `on_initiation`).
#[test]
fn low_order_x25519_points_are_refused_everywhere_without_a_reply() {
    let (mut b, me) = responder(Policy::Anyone);
    let attacker = LocalIdentity::generate(&mut HashDrbg::from_u64(6), EndpointId(0));
    let hash = me.certificate_hash().0;
    let now = Instant::from_millis(1000);
    let mut buf = [0u8; MAX_DATAGRAM];
    for (i, point) in forge::LOW_ORDER_POINTS.iter().enumerate() {
        let t = now + Duration::from_millis(100 * i as u64);
        let xx = forge::xx_initiation(point, forge::XX_PADDING, 1);
        assert!(b.handle_datagram(t, from(), &xx).is_err(), "XX ephemeral {i}");
        // IK, low-order ephemeral: built with a real one, then replaced.
        let honest = forge::ik_initiation_from(
            attacker.static_keys(),
            attacker.certificate(),
            me.static_keys().public(),
            &hash,
            40 + i as u64,
        );
        let mut bad_e = honest.clone();
        bad_e[8..40].copy_from_slice(point);
        let bad_e = forge::remac_initiation(&bad_e, me.static_keys().public());
        assert!(b.handle_datagram(t, from(), &bad_e).is_err(), "IK ephemeral {i}");
        // IK, low-order static key (`ss` then fails at the responder).
        let e = KeyPair::generate(&mut HashDrbg::from_u64(50 + i as u64));
        let bad_s = forge::ik_initiation(
            me.static_keys().public(),
            &e,
            point,
            &[0; 32],
            &attacker.certificate().encode(),
            &hash,
            2,
        );
        assert!(b.handle_datagram(t, from(), &bad_s).is_err(), "IK static {i}");
        // A certificate naming a low-order static key does not parse.
        let mut cert = attacker.certificate().encode();
        cert[33..65].copy_from_slice(point);
        assert!(Certificate::parse(&cert).is_err(), "certificate with point {i}");
        assert!(b.poll_transmit(t, &mut buf).is_none(), "no reply ({i})");
        assert_eq!(b.invitations_in_use(), 0);
    }
    assert!(b.poll_event().is_none());
}

/// A weak (small-order) ed25519 identity key, with the signature that plain
/// verification accepts for any message: refused as a key, as a
/// certificate, and when an initiator states such a certificate in an IK
/// handshake to an agent that accepts strangers — dropped, no reply.
///
/// Defences: `core/src/identity.rs` `IdentityKey::from_bytes` (`is_weak`)
/// and `verify_strict`, applied when the certificate is read
/// (`Certificate::parse`, session identity statement).
#[test]
fn weak_ed25519_keys_and_their_universal_signature_are_refused() {
    assert!(IdentityKey::from_bytes(&forge::WEAK_ED25519_KEY).is_err());
    let (mut b, me) = responder(Policy::Anyone);
    let attacker = LocalIdentity::generate(&mut HashDrbg::from_u64(8), EndpointId(0));
    let weak = forge::weak_certificate(attacker.certificate());
    assert!(Certificate::parse(&weak).is_err());
    let e = KeyPair::generate(&mut HashDrbg::from_u64(9));
    let ss = peercollab_core::noise::dh(attacker.static_keys(), me.static_keys().public()).unwrap();
    let init = forge::ik_initiation(
        me.static_keys().public(),
        &e,
        attacker.static_keys().public(),
        &ss,
        &weak,
        &me.certificate_hash().0,
        3,
    );
    let now = Instant::from_millis(10);
    let r = b.handle_datagram(now, from(), &init);
    assert!(
        matches!(r, Err(Dropped::Session(session::Dropped::BadCertificate(_)))),
        "refused as a bad certificate: {r:?}"
    );
    // The same initiation with the attacker's genuine certificate is
    // answered: the refusal is the weak key's.
    let good = forge::ik_initiation(
        me.static_keys().public(),
        &KeyPair::generate(&mut HashDrbg::from_u64(10)),
        attacker.static_keys().public(),
        &ss,
        &attacker.certificate().encode(),
        &me.certificate_hash().0,
        4,
    );
    let mut buf = [0u8; MAX_DATAGRAM];
    assert!(b.poll_transmit(now, &mut buf).is_none(), "no reply to the weak key");
    assert_eq!(b.handle_datagram(now, from(), &good), Ok(()));
    assert!(b.poll_transmit(now, &mut buf).is_some());
}

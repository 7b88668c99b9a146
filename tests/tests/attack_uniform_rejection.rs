//! Uniform rejection: every pre-authentication failure looks the same from
//! outside — the same output (none), the same state afterwards, and the
//! same work (operation counts, not wall time: `peercollab_core::ops`).
//!
//! The operation counters are process-wide and the tests of one binary run
//! in parallel threads: every test here holds [`LOCK`] throughout.

use std::net::SocketAddr;
use std::sync::Mutex;

/// Serialises the tests of this binary (process-wide counters).
static LOCK: Mutex<()> = Mutex::new(());

use peercollab_core::agent::{Agent, AgentConfig, Dropped, Policy, Trust};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::noise::KeyPair;
use peercollab_core::ops::{self, OpCounts};
use peercollab_core::session;
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{HashDrbg, Instant};
use peercollab_tests::mitm::forge;

type B = Agent<8, 4, 16, 1, 16>;

fn from() -> SocketAddr {
    "198.51.100.4:5000".parse().unwrap()
}

fn local(seed: u64) -> LocalIdentity {
    LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(0))
}

fn card(l: &LocalIdentity) -> ContactCard {
    let secret = l.secret().clone();
    ContactCard::issue(&secret, "peer", &[*l.certificate()], &[from()]).unwrap()
}

struct World {
    me: LocalIdentity,
    trusted: LocalIdentity,
    revoked: LocalIdentity,
    removed: LocalIdentity,
    stranger: LocalIdentity,
}

/// B, TrustedOnly, with a trusted contact, one whose endpoint
/// it revoked and one it removed.
fn b(w: &World) -> Box<B> {
    let mut b =
        Box::new(B::new(w.me.clone(), AgentConfig::with_policy(Policy::TrustedOnly), [1; 32]));
    b.add_contact(&card(&w.trusted), Trust::Trusted).unwrap();
    let r = b.add_contact(&card(&w.revoked), Trust::Trusted).unwrap();
    b.revoke_endpoint(r, EndpointId(0)).unwrap();
    let gone = b.add_contact(&card(&w.removed), Trust::Trusted).unwrap();
    b.remove_contact(Instant::ZERO, gone).unwrap();
    b
}

fn initiation(w: &World, from: &LocalIdentity, seed: u64) -> Vec<u8> {
    forge::ik_initiation_from(
        from.static_keys(),
        from.certificate(),
        w.me.static_keys().public(),
        &w.me.certificate_hash().0,
        seed,
    )
}

/// The silent pre-authentication failures, each run into a fresh B: a
/// stranger under TrustedOnly, a contact whose endpoint was revoked, a
/// removed contact (now a stranger), an initiation from a contact whose
/// payload was altered (mac1 made again), and two initiations from someone
/// holding B's card who claims a static key without its private key (so
/// its `ss` is wrong): a key B pinned (a contact's, from that contact's
/// public card) and a key B does not know. Returns, per case, its name and
/// cost, after checking that each produces no datagram and no event and
/// leaves B so that a later initiation from its trusted contact is answered
/// byte for byte as by a B that saw nothing.
fn silent_failures() -> Vec<(&'static str, OpCounts)> {
    let w = World {
        me: local(1),
        trusted: local(2),
        revoked: local(4),
        removed: local(5),
        stranger: local(6),
    };
    let mut tampered = initiation(&w, &w.trusted, 10);
    let n = tampered.len();
    tampered[n - 40] ^= 1;
    let tampered = forge::remac_initiation(&tampered, w.me.static_keys().public());
    let claim = |key: &[u8; 32], seed: u64| {
        let e = KeyPair::generate(&mut HashDrbg::from_u64(seed));
        forge::ik_initiation(
            w.me.static_keys().public(),
            &e,
            key,
            &[7; 32],
            &w.stranger.certificate().encode(),
            &w.me.certificate_hash().0,
            9,
        )
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("stranger", initiation(&w, &w.stranger, 11)),
        ("revoked contact", initiation(&w, &w.revoked, 12)),
        ("removed contact", initiation(&w, &w.removed, 13)),
        ("contact, altered payload", tampered),
        ("claims a pinned key", claim(w.trusted.static_keys().public(), 14)),
        ("claims an unknown key", claim(local(8).static_keys().public(), 15)),
    ];
    let follow_up = initiation(&w, &w.trusted, 20);
    let now = Instant::from_millis(1000);
    let mut buf = [0u8; MAX_DATAGRAM];
    let baseline = {
        let mut b = b(&w);
        b.handle_datagram(now, from(), &follow_up).unwrap();
        let n = b.poll_transmit(now, &mut buf).unwrap().len;
        buf[..n].to_vec()
    };
    let mut costs = Vec::new();
    for (name, datagram) in cases {
        let mut b = b(&w);
        let before = ops::snapshot();
        let r = b.handle_datagram(now, from(), &datagram);
        let cost = ops::snapshot().since(before);
        assert!(r.is_err(), "{name}: dropped");
        assert_ne!(r, Err(Dropped::Session(session::Dropped::BadMac)), "{name}: got past mac1");
        assert!(b.poll_transmit(now, &mut buf).is_none(), "{name}: no output");
        assert!(b.poll_event().is_none(), "{name}: no event");
        assert_eq!(b.invitations_in_use(), 0, "{name}: no state");
        b.handle_datagram(now, from(), &follow_up).unwrap();
        let n = b.poll_transmit(now, &mut buf).unwrap().len;
        assert_eq!(buf[..n], baseline[..], "{name}: B's later behaviour is unchanged");
        costs.push((name, cost));
    }
    costs
}

/// Every silent pre-authentication failure: no output, no event, no state.
///
/// Defences: `core/src/agent/mod.rs` `on_initiation` (one silent drop path
/// for policy, revocation and Noise failures; state only after every
/// check), `core/src/session.rs` `Incoming::read_admitting`.
#[test]
fn uniform_rejection_every_silent_pre_authentication_failure_shows_and_changes_nothing() {
    let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let costs = silent_failures();
    assert_eq!(costs.len(), 6);
}

/// …and costs the same work. Today it does not: a contact whose endpoint
/// was revoked costs a signature check that a stranger does not (its
/// certificate is no longer pinned, and a contact's identity is admitted
/// to the signature check), and a static key B pinned costs one
/// Diffie-Hellman fewer than one it does not know (`ss` is precomputed
/// for pinned keys) — so anyone holding B's card and the public card of a
/// suspected contact can tell, by counting B's work (its time), whether B
/// holds that contact, without ever being answered.
///
/// Defence needed: uniform work on the silent paths
/// (`core/src/agent/mod.rs` `on_initiation`, `core/src/session.rs`
/// `Incoming::read_admitting` and the precomputed `ss`).
#[test]
#[ignore = "needs uniform rejection work: issue 7 — a revoked contact costs 1 extra ed25519 verify, and a pinned static key saves 1 DH (precomputed ss), so work reveals B's contacts"]
fn uniform_rejection_every_silent_pre_authentication_failure_costs_the_same() {
    let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let costs = silent_failures();
    let first = costs[0].1;
    for (name, cost) in &costs {
        assert_eq!(
            (cost.x25519_dh, cost.ed25519_verify, cost.aead_open),
            (first.x25519_dh, first.ed25519_verify, first.aead_open),
            "{name} costs {cost:?}, a stranger {first:?}"
        );
    }
}

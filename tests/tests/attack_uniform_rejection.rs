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
use peercollab_core::identity::{EndpointId, IdentityError, LocalIdentity};
use peercollab_core::noise::{KeyPair, dh};
use peercollab_core::ops::{self, OpCounts};
use peercollab_core::session;
use peercollab_core::wire::{FrameType, MAX_DATAGRAM};
use peercollab_core::{HashDrbg, Instant};
use peercollab_tests::mitm::{cleartext_header_len, flip_bit, forge};

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
    let header = cleartext_header_len(FrameType::Initiation);
    let remac = |d: Vec<u8>| forge::remac_initiation(&d, w.me.static_keys().public());
    let garbled_static = remac(flip_bit(&initiation(&w, &w.trusted, 16), (header + 40) * 8));
    let mut low_order = initiation(&w, &w.trusted, 17);
    low_order[header..header + 32].fill(0);
    let low_order = remac(low_order);
    // The stranger's own key and a true `ss`, but a certificate naming the
    // trusted contact's identity over the stranger's key: admitted to the
    // signature check, which fails.
    let mut usurped = w.trusted.certificate().encode();
    usurped[33..65].copy_from_slice(w.stranger.static_keys().public());
    let usurper = forge::ik_initiation(
        w.me.static_keys().public(),
        &KeyPair::generate(&mut HashDrbg::from_u64(18)),
        w.stranger.static_keys().public(),
        &dh(w.stranger.static_keys(), w.me.static_keys().public()).unwrap(),
        &usurped,
        &w.me.certificate_hash().0,
        19,
    );
    let decrypt = Dropped::Session(session::Dropped::Decrypt);
    // The same, with the contact's genuine certificate: it certifies
    // another static key than the handshake's.
    let borrowed = forge::ik_initiation(
        w.me.static_keys().public(),
        &KeyPair::generate(&mut HashDrbg::from_u64(21)),
        w.stranger.static_keys().public(),
        &dh(w.stranger.static_keys(), w.me.static_keys().public()).unwrap(),
        &w.trusted.certificate().encode(),
        &w.me.certificate_hash().0,
        22,
    );
    let cases: Vec<(&str, Vec<u8>, Dropped)> = vec![
        ("stranger", initiation(&w, &w.stranger, 11), Dropped::NotAdmitted),
        ("garbled static key", garbled_static, decrypt),
        ("low-order ephemeral key", low_order, decrypt),
        (
            "a contact's identity over another key",
            usurper,
            Dropped::Session(session::Dropped::BadCertificate(IdentityError::BadSignature)),
        ),
        (
            "a contact's certificate over another key",
            borrowed,
            Dropped::Session(session::Dropped::StaticKeyMismatch),
        ),
        ("revoked contact", initiation(&w, &w.revoked, 12), Dropped::Revoked),
        ("removed contact", initiation(&w, &w.removed, 13), Dropped::NotAdmitted),
        ("contact, altered payload", tampered, decrypt),
        ("claims a pinned key", claim(w.trusted.static_keys().public(), 14), decrypt),
        ("claims an unknown key", claim(local(8).static_keys().public(), 15), decrypt),
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
    for (name, datagram, refusal) in cases {
        let mut b = b(&w);
        let before = ops::snapshot();
        let r = b.handle_datagram(now, from(), &datagram);
        let cost = ops::snapshot().since(before);
        assert_eq!(r, Err(refusal), "{name}: dropped by the check it is aimed at");
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
    assert_eq!(costs.len(), 10);
}

/// …and costs the same work, `IK_REFUSAL_WORK` (2 X25519, 2 AEAD
/// decryptions, 1 signature check), whichever check refused it. Without
/// the padding a contact whose endpoint was revoked, or a stranger
/// claiming a contact's identity, costs a signature check that a stranger
/// does not (a contact's identity is admitted to the check), and a static
/// key B pinned costs one Diffie-Hellman fewer than one it does not know
/// (`ss` is precomputed for pinned keys) — so anyone holding B's card and
/// the public card of a suspected contact could tell, by counting B's
/// work (its time), whether B holds that contact, without ever being
/// answered.
///
/// Defence: `core/src/session.rs` `pad_refusal` (called by
/// `Incoming::read_after_mac1` on every refusal, by `Incoming::refuse`
/// from the agent's policy and revocation refusals, and by
/// `Incoming::accept` refusing an answer larger than its trigger before
/// any Diffie-Hellman).
#[test]
fn uniform_rejection_every_silent_pre_authentication_failure_costs_the_same() {
    let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let costs = silent_failures();
    let work = session::IK_REFUSAL_WORK;
    for (name, cost) in &costs {
        assert_eq!(
            (cost.x25519_dh, cost.ed25519_verify, cost.aead_open),
            (u32::from(work.dh), u32::from(work.verify), u32::from(work.aead_open)),
            "{name} costs {cost:?}, not {work:?}"
        );
    }
}

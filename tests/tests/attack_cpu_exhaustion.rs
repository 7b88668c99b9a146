//! CPU exhaustion: junk costs no public-key operation. One `#[test]` in
//! this binary: the operation counters (`peercollab_core::ops`) are
//! process-wide.

use std::net::SocketAddr;

use peercollab_core::agent::{Agent, AgentConfig, Policy};
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::ops;
use peercollab_core::wire::{MAC_LEN, MAX_DATAGRAM};
use peercollab_core::{Duration, Entropy, HashDrbg, Instant};
use peercollab_tests::mitm::{flip_bit, forge};

type B = Agent<4, 4, 16, 1, 16>;

/// An agent that answers strangers (so that nothing but the defences stands
/// between junk and Diffie-Hellman) is fed junk of every kind after one
/// genuine initiation: random bytes of every length, random bytes behind
/// every valid header, every single-bit corruption of the genuine
/// initiation outside its mac2, initiations of both modes with a wrong
/// mac1, the genuine initiation replayed after its invitation ended, and
/// frames naming random session indices. Not one public-key operation.
///
/// Defences: `core/src/wire.rs` `Frame::parse`; mac1 before any DH
/// (`core/src/agent/mod.rs` `on_initiation`, `Incoming::mac1_ok`); the
/// replay cache (`core/src/agent/guard.rs` `Guard::seen`); routing by
/// index (`Agent::dispatch`).
#[test]
fn cpu_exhaustion_junk_costs_no_public_key_operation() {
    let me = LocalIdentity::generate(&mut HashDrbg::from_u64(1), EndpointId(0));
    let peer = LocalIdentity::generate(&mut HashDrbg::from_u64(2), EndpointId(0));
    let mut b = Box::new(B::new(me.clone(), AgentConfig::with_policy(Policy::Anyone), [4; 32]));
    let from: SocketAddr = "203.0.113.1:9".parse().unwrap();
    let genuine = forge::ik_initiation_from(
        peer.static_keys(),
        peer.certificate(),
        me.static_keys().public(),
        &me.certificate_hash().0,
        3,
    );
    let mut now = Instant::from_millis(1000);
    b.handle_datagram(now, from, &genuine).unwrap();
    // Let it end unconfirmed, so that its replay meets the replay cache.
    now += Duration::from_secs(100);
    b.handle_timeout(now);
    assert_eq!(b.invitations_in_use(), 0);
    let mut junk: Vec<Vec<u8>> = Vec::new();
    let mut rng = HashDrbg::from_u64(5);
    for len in 0..=MAX_DATAGRAM + 8 {
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        junk.push(d.clone());
        if len >= 4 {
            for (t, mode) in [(1u8, 1u8), (1, 2), (2, 1), (2, 2), (3, 2), (4, 1), (4, 2), (5, 0)] {
                d[..4].copy_from_slice(&[1, t, mode, 0]);
                junk.push(d.clone());
            }
        }
    }
    let mac2_start = genuine.len() - MAC_LEN;
    for bit in 0..8 * mac2_start {
        junk.push(flip_bit(&genuine, bit));
    }
    for k in 0..50u32 {
        let mut e = [0u8; 32];
        rng.fill_bytes(&mut e);
        let mut xx = forge::xx_initiation(&e, forge::XX_PADDING, k);
        let n = xx.len() - 2 * MAC_LEN;
        xx[n] ^= 0x80;
        junk.push(xx);
        let mut ik = forge::ik_initiation_from(
            peer.static_keys(),
            peer.certificate(),
            &[9; 32],
            &[0; 32],
            100 + u64::from(k),
        );
        let n = ik.len() - 2 * MAC_LEN;
        ik[n] ^= 1;
        junk.push(ik);
    }
    for _ in 0..5 {
        junk.push(genuine.clone());
    }
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut replies = 0;
    let before = ops::snapshot();
    for d in &junk {
        assert!(b.handle_datagram(now, from, d).is_err());
        while b.poll_transmit(now, &mut buf).is_some() {
            replies += 1;
        }
    }
    let cost = ops::snapshot().since(before);
    assert_eq!(cost.public_key_ops(), 0, "{} junk datagrams cost {cost:?}", junk.len());
    assert_eq!(cost.aead_open, 0, "nor any decryption: {cost:?}");
    assert_eq!(replies, 0, "junk is not answered");
    assert_eq!(b.invitations_in_use(), 0);
    let stats = b.stats();
    assert_eq!(stats.dropped, stats.received - 1);
    assert!(stats.replayed_initiations >= 5 && stats.bad_mac > 0 && stats.malformed > 0);
}

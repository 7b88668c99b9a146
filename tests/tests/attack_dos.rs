//! Denial of service without volume: amplification, probing and invite spam
//! from non-contacts, half-open state exhaustion. (CPU exhaustion:
//! `attack_cpu_exhaustion.rs`; the flood: `attack_flood.rs`.)

use std::net::SocketAddr;

use peercollab_core::agent::{Agent, AgentConfig, Dropped, InviteOptions, Policy, Trust};
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::Outcome;
use peercollab_core::noise::KeyPair;
use peercollab_core::wire::{MAX_DATAGRAM, WireError};
use peercollab_core::{Duration, Entropy, HashDrbg, Instant};
use peercollab_tests::agents::{
    APP, AgentNode, befriend, clean_network, invite_contact, register, request, target_of,
};
use peercollab_tests::mitm::forge;
use peercollab_tests::{Network, NodeId};

type B = Agent<4, 4, 16, 1, 16>;

/// What an inviter saw (events, datagrams sent) and how many datagrams B sent.
type Observed =
    (Vec<(Instant, peercollab_core::agent::Event)>, Vec<(Instant, SocketAddr, usize)>, usize);

fn addr(k: u32) -> SocketAddr {
    SocketAddr::from(([10, 9, (k >> 8) as u8, k as u8], 4000))
}

// ----- amplification -----------------------------------------------------------

/// Initiations of every kind a spoofer can make — IK stating a certificate
/// or a hash, XX, XX stripped of its padding, each repeated, and a burst
/// that puts the agent under load so that cookies are demanded — each from
/// its own (spoofed) address, the replies drained after each: at most one
/// reply per datagram, never larger than it, and in all no more bytes out
/// than in.
///
/// Defences: `core/src/session.rs` `Incoming::accept`
/// (`ResponseLargerThanTrigger`), the minimum initiation lengths
/// (`core/src/wire.rs` `MIN_XX_INITIATION_LEN`, `MIN_IK_INITIATION_LEN`),
/// cached answers to duplicates (`core/src/session.rs`), cookie replies of
/// 64 bytes (`core/src/agent/mod.rs` `queue_cookie_reply`).
#[test]
fn amplification_no_reply_before_authentication_is_larger_than_its_trigger() {
    let me = LocalIdentity::generate(&mut HashDrbg::from_u64(1), EndpointId(0));
    let mut b = Box::new(B::new(me.clone(), AgentConfig::with_policy(Policy::Anyone), [2; 32]));
    b.register_application(APP, "app", None).unwrap();
    // First, to an agent at rest (no cookie would stand in for the answer):
    // an XX initiation without its padding is shorter than the response it
    // asks for, so it is not answered at all.
    let mut buf = [0u8; MAX_DATAGRAM];
    let now = Instant::from_millis(1000);
    let mut e = [0u8; 32];
    KeyPair::generate(&mut HashDrbg::from_u64(5)).public().clone_into(&mut e);
    let unpadded = forge::xx_initiation(&e, 0, 40);
    assert_eq!(
        b.handle_datagram(now, addr(99), &unpadded),
        Err(Dropped::Malformed(WireError::TooShort))
    );
    assert!(b.poll_transmit(now, &mut buf).is_none(), "no answer to an unpadded initiation");
    let stranger = LocalIdentity::generate(&mut HashDrbg::from_u64(3), EndpointId(0));
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let mut rng = HashDrbg::from_u64(4);
    for k in 0..12u64 {
        let full = forge::ik_initiation_from(
            stranger.static_keys(),
            stranger.certificate(),
            me.static_keys().public(),
            &[0; 32],
            10 + k,
        );
        let mut e = [0u8; 32];
        KeyPair::generate(&mut rng).public().clone_into(&mut e);
        let xx = forge::xx_initiation(&e, forge::XX_PADDING, 20 + u32::try_from(k).unwrap());
        let short = forge::xx_initiation(&e, 0, 30);
        for d in [&full, &full, &xx, &xx, &short] {
            inputs.push(d.clone());
        }
    }
    let (mut bytes_in, mut bytes_out, mut replies) = (0, 0, 0);
    for (i, d) in inputs.iter().enumerate() {
        let _ = b.handle_datagram(now, addr(u32::try_from(i).unwrap()), d);
        bytes_in += d.len();
        let mut here = 0;
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            assert!(t.len <= d.len(), "datagram {i}: a {}-byte reply to {} bytes", t.len, d.len());
            bytes_out += t.len;
            here += 1;
        }
        assert!(here <= 1, "datagram {i}: {here} replies");
        replies += here;
    }
    assert!(bytes_out <= bytes_in);
    assert!(b.stats().cookie_replies > 0, "the burst put the agent under load");
    assert!(replies > 12, "responses were sent too: {replies}");
}

// ----- probing and invite spam from non-contacts -----------------------------------

/// What an inviter observes of an agent that policy-table.md says must stay
/// silent to it is exactly what it observes of an address where nobody
/// listens: the same datagrams received (none), the same outcome at the
/// same time. Rows: IK stranger under TrustedOnly and Nobody (15–18), IK
/// scanner (19–24: it holds no card; it invites an identity of its own
/// making at B's address), XX under Nobody (29, 35, 41, 47). Each prober
/// sends four invitations at once (spam; four body buffers): nothing is presented, B keeps no state.
///
/// Defences: `core/src/agent/policy.rs` `admits_initiation` applied in
/// `core/src/agent/mod.rs` `on_initiation` before any state or answer;
/// mac1 keyed by B's static key against scanners (`Incoming::mac1_ok`).
#[test]
fn probing_and_invite_spam_from_non_contacts_looks_like_nobody_there() {
    #[derive(Clone, Copy, Debug)]
    enum Probe {
        IkStranger(Policy),
        IkScanner,
        Xx(Policy),
    }
    let probes = [
        Probe::IkStranger(Policy::TrustedOnly),
        Probe::IkStranger(Policy::Nobody),
        Probe::IkScanner,
        Probe::Xx(Policy::Nobody),
    ];
    for probe in probes {
        let observe = |nobody_there: bool| -> Observed {
            let (mut net, book, ids) = clean_network(7, 2, 80);
            let (a, b) = (ids[0], ids[1]);
            register(&mut net, b, APP);
            let policy = match probe {
                Probe::IkStranger(p) | Probe::Xx(p) => p,
                Probe::IkScanner => Policy::Anyone,
            };
            net.node_mut::<AgentNode>(b).agent.set_policy(policy);
            let card = match probe {
                Probe::IkScanner => {
                    // A card of the scanner's own making: B's address, a
                    // key that is not B's.
                    let fake = LocalIdentity::generate(&mut HashDrbg::from_u64(9), EndpointId(0));
                    let secret = fake.secret().clone();
                    peercollab_core::card::ContactCard::issue(
                        &secret,
                        "guess",
                        &[*fake.certificate()],
                        &[book.address(b)],
                    )
                    .unwrap()
                }
                _ => net.node::<AgentNode>(b).card(),
            };
            let contact =
                net.node_mut::<AgentNode>(a).agent.add_contact(&card, Trust::Trusted).unwrap();
            if nobody_there {
                book.vanish(b);
                book.set(b, "10.200.0.1:1".parse().unwrap());
            }
            for _ in 0..4 {
                match probe {
                    Probe::Xx(_) => {
                        invite_endpoint_at(&mut net, a, book.address(a), card.addresses()[0]);
                    }
                    _ => {
                        let target = peercollab_core::agent::Target {
                            endpoint: card.certificates()[0].endpoint(),
                            address: card.addresses()[0],
                        };
                        invite_contact(
                            &mut net,
                            a,
                            contact,
                            &[target],
                            &request(),
                            InviteOptions::default(),
                        );
                    }
                }
            }
            peercollab_tests::agents::settle(&mut net, 600);
            let nb = net.node::<AgentNode>(b);
            assert_eq!(nb.invited(), 0, "{probe:?}: nothing presented");
            assert_eq!(nb.agent.invitations_in_use(), 0, "{probe:?}: no state left");
            let na = net.node::<AgentNode>(a);
            (na.events.clone(), na.sent.clone(), nb.sent.len())
        };
        let (events, sent, b_sent) = observe(false);
        let (events_nobody, sent_nobody, _) = observe(true);
        assert_eq!(b_sent, 0, "{probe:?}: B sends nothing");
        assert_eq!(events, events_nobody, "{probe:?}: the inviter sees the same");
        assert_eq!(sent, sent_nobody, "{probe:?}: and behaves the same");
        assert!(events.iter().all(|(_, e)| !matches!(e, peercollab_core::agent::Event::Responded { outcome, .. } if *outcome != Outcome::Unreachable)));
    }
}

fn invite_endpoint_at(net: &mut Network, a: NodeId, _: SocketAddr, to: SocketAddr) {
    let now = net.now;
    net.node_mut::<AgentNode>(a)
        .agent
        .invite_endpoint(now, to, &request(), InviteOptions::default())
        .unwrap();
}

// ----- half-open state exhaustion -----------------------------------------------------

/// 2,000 XX initiations from 2,000 (spoofed) addresses, 100 a second, none
/// ever completing, while a contact invitation runs: the invitation
/// completes; B's invitation table never holds more than its capacity;
/// once under load, spoofers get cookie replies (at most one per
/// datagram) and cost no Diffie-Hellman.
///
/// Defences: the half-open places and eviction of the oldest unconfirmed
/// handshake (`core/src/agent/mod.rs` `on_initiation`, `evict`,
/// `half_open_places`), cookies under load (`Agent::under_load`,
/// `core/src/agent/guard.rs` `Guard::mac2_ok`).
#[test]
fn half_open_state_exhaustion_by_spoofed_initiations_leaves_a_contact_invitation_working() {
    let (mut net, book, ids) = clean_network(8, 2, 90);
    let (a, b) = (ids[0], ids[1]);
    let contact = befriend(&mut net, a, b, Trust::Trusted);
    befriend(&mut net, b, a, Trust::Trusted);
    register(&mut net, b, APP);
    let mut rng = HashDrbg::from_u64(11);
    let start = net.now;
    let mut handle = None;
    let mut max_in_use = 0;
    for k in 0..2000u32 {
        let mut e = [0u8; 32];
        rng.fill_bytes(&mut e);
        e = *KeyPair::from_secret_bytes(e).public();
        let xx = forge::xx_initiation(&e, forge::XX_PADDING, k);
        let spoofed = 10_000 + k as usize;
        net.inject(spoofed, b, &xx);
        if k == 500 {
            let target = target_of(&net, b);
            handle = Some(invite_contact(
                &mut net,
                a,
                contact,
                &[target],
                &request(),
                InviteOptions::default(),
            ));
        }
        let until = start + Duration::from_millis(10 * u64::from(k + 1));
        net.run(10_000, until, |n| n.now >= until).unwrap();
        max_in_use = max_in_use.max(net.node::<AgentNode>(b).agent.invitations_in_use());
    }
    peercollab_tests::agents::settle(&mut net, 120);
    let _ = book;
    let (na, nb) = (net.node::<AgentNode>(a), net.node::<AgentNode>(b));
    assert_eq!(na.responded(handle.unwrap()), vec![Outcome::Accepted]);
    assert!(max_in_use <= 16, "B's table stays within capacity: {max_in_use}");
    let stats = nb.agent.stats();
    assert!(stats.cookie_replies > 1000, "spoofers are asked for cookies: {stats:?}");
    assert!(nb.sent.len() <= stats.received as usize, "at most one reply per datagram");
}

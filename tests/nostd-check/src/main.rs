//! A bare-metal binary for `thumbv7em-none-eabihf` that links
//! `peercollab-core` with **no global allocator**: if anything in the core
//! (or its dependencies) used `alloc`, this binary would fail to link.
//!
//! It runs complete exchanges through the core so the linker keeps the code
//! paths: an IK contact handshake and an XX endpoint handshake between two
//! secure sessions, each followed by a transport payload both ways, a whole
//! accepted invitation between two invitation state machines, a whole
//! accepted contact invitation between two agents (contacts, application
//! registration, policy, handles), and a contact card round trip
//! ([`exercise`]). `core::hint::black_box` keeps the
//! optimiser from folding the work away.
//!
//! Build: `cargo build --release` in this directory (the target is set in
//! `.cargo/config.toml`).
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::hint::black_box;
use core::panic::PanicInfo;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use cortex_m_rt::entry;
use peercollab_core::agent::{
    Agent, AgentConfig, Event, InvitationRequest, InviteOptions, Policy, Target, Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{
    Admission, Answer, AppId, DEFAULT_EXPIRY, DataPool, Invitation, InvitationEvent, InviteId,
    InviteeConfig, Offer, Outcome,
};
use peercollab_core::session::{Incoming, PinnedPeer, Received, Session, StatementForm};
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{HashDrbg, Instant};

/// One handshake between Alice (initiator) and Bob (responder), then one
/// payload each way. `contact` picks IK (Alice pinned Bob) or XX.
fn handshake(
    contact: bool,
    alice: &LocalIdentity,
    bob: &LocalIdentity,
    rng: &mut HashDrbg,
) -> bool {
    let now = Instant::ZERO;
    let (Ok(a_pins_b), Ok(b_pins_a)) =
        (PinnedPeer::new(alice, *bob.certificate()), PinnedPeer::new(bob, *alice.certificate()))
    else {
        return false;
    };
    let started = if contact {
        Session::initiate_contact(alice, &a_pins_b, 1, StatementForm::Certificate, now, rng)
    } else {
        Session::initiate_endpoint(alice, Some(bob.identity()), 1, now, rng)
    };
    let Ok(mut a) = started else { return false };
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut payload = [0u8; MAX_DATAGRAM];
    let Some(n) = a.poll_transmit(now, &mut buf) else { return false };
    let directory = [b_pins_a];
    let Ok(incoming) = Incoming::read(bob, &directory[..], black_box(&buf[..n])) else {
        return false;
    };
    let Ok(mut b) = incoming.accept(bob, 2, now, rng) else { return false };
    let Some(n) = b.poll_transmit(now, &mut buf) else { return false };
    if a.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng).is_err() {
        return false;
    }
    if !contact {
        let Some(n) = a.poll_transmit(now, &mut buf) else { return false };
        if b.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng).is_err() {
            return false;
        }
    }
    let Ok(n) = a.send(now, b"invite", &mut buf) else { return false };
    if b.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng) != Ok(Received::Payload(6)) {
        return false;
    }
    let Ok(n) = b.send(now, b"ringing", &mut buf) else { return false };
    let got = a.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng);
    got == Ok(Received::Payload(7)) && a.handshake_hash() == b.handshake_hash()
}

/// One whole accepted contact invitation between two `Invitation`s, with an
/// empty body (so a pool of no buffers will do): handshake, Invite, Final,
/// Ack.
fn invitation(alice: &LocalIdentity, bob: &LocalIdentity, rng: &mut HashDrbg) -> bool {
    let now = Instant::ZERO;
    let Ok(a_pins_b) = PinnedPeer::new(alice, *bob.certificate()) else { return false };
    let Ok(b_pins_a) = PinnedPeer::new(bob, *alice.certificate()) else { return false };
    let directory = [b_pins_a];
    let Ok(session) = Session::initiate_contact(alice, &a_pins_b, 1, StatementForm::Hash, now, rng)
    else {
        return false;
    };
    let (mut pool_a, mut pool_b) = (DataPool::<0>::new(), DataPool::<0>::new());
    let offer = Offer {
        id: InviteId::random(rng),
        app_id: AppId([1; 16]),
        message: "",
        data: &[],
        expires_in: DEFAULT_EXPIRY,
    };
    let Ok(mut a) = Invitation::invite(session, &offer, now, &mut pool_a) else { return false };
    let mut b: Option<Invitation> = None;
    let mut screen = |_: &_, _| Admission::Present;
    let mut buf = [0u8; MAX_DATAGRAM];
    // Every exchange of an accepted invitation takes a handful of rounds.
    for _ in 0..8 {
        while let Some(n) = a.poll_transmit(now, &pool_a, &mut buf) {
            let bytes = black_box(&buf[..n]);
            match b.as_mut() {
                Some(b) => {
                    let _ = b.handle_datagram(now, bytes, &mut pool_b, &mut screen, rng);
                }
                None => {
                    let Ok(incoming) = Incoming::read(bob, &directory[..], bytes) else {
                        return false;
                    };
                    let Ok(s) = incoming.accept(bob, 2, now, rng) else { return false };
                    let Ok(inv) = Invitation::invitee(s, InviteeConfig::default(), now) else {
                        return false;
                    };
                    b = Some(inv);
                }
            }
        }
        let Some(b) = b.as_mut() else { return false };
        while let Some(e) = b.poll_event() {
            if e == InvitationEvent::Invited && b.respond(now, Answer::Accept, "").is_err() {
                return false;
            }
        }
        while let Some(n) = b.poll_transmit(now, &pool_b, &mut buf) {
            let _ = a.handle_datagram(now, black_box(&buf[..n]), &mut pool_a, &mut screen, rng);
        }
        if a.outcome() == Some(Outcome::Accepted) && b.outcome() == Some(Outcome::Accepted) {
            return true;
        }
    }
    false
}

/// Small agents: two contacts, two applications, two invitation slots, no
/// body buffer (the invitation's body is empty), four remembered ids.
type SmallAgent = Agent<2, 2, 2, 0, 4>;

/// A whole accepted contact invitation between two agents, from cards to
/// the inviter's `Responded(Accepted)`.
fn agents(alice: LocalIdentity, bob: LocalIdentity, seed: u64) -> bool {
    let at = |last| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 7000);
    let (a_addr, b_addr) = (at(1), at(2));
    let app = AppId([7; 16]);
    let mut a = SmallAgent::new(alice, AgentConfig::default(), [seed as u8; 32]);
    let mut b = SmallAgent::new(bob, AgentConfig::with_policy(Policy::TrustedOnly), [9; 32]);
    let (Ok(a_card), Ok(b_card)) = (a.my_card("Alice", &[a_addr]), b.my_card("Bob", &[b_addr]))
    else {
        return false;
    };
    let (Ok(bob_at_a), Ok(_)) =
        (a.add_contact(&b_card, Trust::Trusted), b.add_contact(&a_card, Trust::Trusted))
    else {
        return false;
    };
    if b.register_application(app, "app", None).is_err() {
        return false;
    }
    let now = Instant::ZERO;
    let target = Target { endpoint: EndpointId(1), address: b_addr };
    let request = InvitationRequest { app_id: app, message: "", data: &[] };
    let Ok(Some(handle)) =
        a.invite_contact(now, bob_at_a, &[target], &request, InviteOptions::default())
    else {
        return false;
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    // An accepted invitation takes a handful of round trips.
    for _ in 0..8 {
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            let _ = b.handle_datagram(now, a_addr, black_box(&buf[..t.len]));
        }
        while let Some(e) = b.poll_event() {
            if let Event::Invited(incoming) = e
                && b.respond(now, incoming, Answer::Accept, "").is_err()
            {
                return false;
            }
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            let _ = a.handle_datagram(now, b_addr, black_box(&buf[..t.len]));
        }
        while let Some(e) = a.poll_event() {
            if e == (Event::Responded { handle, outcome: Outcome::Accepted }) {
                return true;
            }
        }
    }
    false
}

/// A contact card written and parsed back.
fn card_round_trip(alice: &LocalIdentity) -> bool {
    let Ok(card) = ContactCard::issue(alice.secret(), "Alice", &[*alice.certificate()], &[]) else {
        return false;
    };
    let mut text: heapless::String<{ peercollab_core::card::MAX_CARD_TEXT_LEN }> =
        heapless::String::new();
    if write!(text, "{card}").is_err() {
        return false;
    }
    ContactCard::parse(black_box(text.as_str())).is_ok_and(|c| c == card)
}

/// Everything the binary exercises in the core. Returns `true` when every
/// exchange succeeded.
fn exercise(seed: u64) -> bool {
    let mut rng = HashDrbg::from_u64(seed);
    let alice = LocalIdentity::generate(&mut rng, EndpointId(1));
    let bob = LocalIdentity::generate(&mut rng, EndpointId(1));
    handshake(true, &alice, &bob, &mut rng)
        && handshake(false, &alice, &bob, &mut rng)
        && invitation(&alice, &bob, &mut rng)
        && card_round_trip(&alice)
        && agents(alice, bob, seed)
}

#[entry]
fn main() -> ! {
    let ok = exercise(black_box(0x5eed));
    black_box(ok);
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

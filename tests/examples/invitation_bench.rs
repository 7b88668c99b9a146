//! Whole invitations per second — handshake, Invite, Ringing, Accept, Ack —
//! against the bare secure session they ride on (handshake plus one
//! transport message each way), measured side by side in one run; then the
//! bytes on the wire and the memory of one invitation.
//!
//! ```text
//! cargo run --release -p peercollab-tests --example invitation_bench
//! ```
//!
//! Each figure is the median of several rounds; in each round every
//! contender runs for the same wall time, interleaved, and the ratio is
//! taken round by round.

use std::hint::black_box;
use std::time::Duration;

use peercollab_tests::bench::{median, rate};

use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{
    Admission, Answer, AppId, DataPool, Invitation, InvitationEvent, InviteId, InviteeConfig,
    MAX_APP_DATA, Offer, Outcome,
};
use peercollab_core::session::{Incoming, PinnedPeer, Session, StatementForm};
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{HashDrbg, Instant};

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(400);

struct Peers {
    alice: LocalIdentity,
    bob: LocalIdentity,
    a_pins_b: PinnedPeer,
    b_pins: Vec<PinnedPeer>,
}

/// The baseline: an IK session, one transport message each way.
fn session_only(p: &Peers, rng: &mut HashDrbg) {
    let now = Instant::ZERO;
    let (mut buf, mut out) = ([0u8; MAX_DATAGRAM], [0u8; MAX_DATAGRAM]);
    let mut a =
        Session::initiate_contact(&p.alice, &p.a_pins_b, 1, StatementForm::Certificate, now, rng)
            .unwrap();
    let n = a.poll_transmit(now, &mut buf).unwrap();
    let incoming = Incoming::read(&p.bob, p.b_pins.as_slice(), &buf[..n]).unwrap();
    let mut b = incoming.accept(&p.bob, 2, now, rng).unwrap();
    let n = b.poll_transmit(now, &mut buf).unwrap();
    let _ = a.handle_datagram(now, &buf[..n], &mut out, rng).unwrap();
    let n = a.send(now, b"invite", &mut buf).unwrap();
    let _ = b.handle_datagram(now, &buf[..n], &mut out, rng).unwrap();
    let n = b.send(now, b"accept", &mut buf).unwrap();
    let _ = black_box(a.handle_datagram(now, &buf[..n], &mut out, rng).unwrap());
}

/// One whole accepted IK invitation; returns (datagrams, bytes) on the wire.
fn invitation(
    p: &Peers,
    data: &[u8],
    pools: &mut (DataPool<1>, DataPool<1>),
    rng: &mut HashDrbg,
) -> (usize, usize) {
    let now = Instant::ZERO;
    let mut buf = [0u8; MAX_DATAGRAM];
    let session =
        Session::initiate_contact(&p.alice, &p.a_pins_b, 1, StatementForm::Certificate, now, rng)
            .unwrap();
    let offer = Offer {
        id: InviteId([1; 16]),
        app_id: AppId([2; 16]),
        message: "join me",
        data,
        expires_in: peercollab_core::invite::DEFAULT_EXPIRY,
    };
    let mut a = Invitation::invite(session, &offer, now, &mut pools.0).unwrap();
    let mut b: Option<Invitation> = None;
    let mut screen = |_: &_, _| Admission::Present;
    let (mut datagrams, mut bytes) = (0, 0);
    let (mut a_done, mut b_done) = (false, false);
    while !(a_done && b_done) {
        let mut moved = false;
        while let Some(n) = a.poll_transmit(now, &pools.0, &mut buf) {
            moved = true;
            datagrams += 1;
            bytes += n;
            match b.as_mut() {
                Some(b) => {
                    let _ = b.handle_datagram(now, &buf[..n], &mut pools.1, &mut screen, rng);
                }
                None => {
                    let incoming = Incoming::read(&p.bob, p.b_pins.as_slice(), &buf[..n]).unwrap();
                    let s = incoming.accept(&p.bob, 2, now, rng).unwrap();
                    b = Some(Invitation::invitee(s, InviteeConfig::default(), now).unwrap());
                }
            }
        }
        if let Some(b) = b.as_mut() {
            while let Some(e) = b.poll_event() {
                match e {
                    InvitationEvent::Invited => b.respond(now, Answer::Accept, "").unwrap(),
                    InvitationEvent::Ended(o) => b_done = o == Outcome::Accepted,
                    _ => {}
                }
            }
            while let Some(n) = b.poll_transmit(now, &pools.1, &mut buf) {
                moved = true;
                datagrams += 1;
                bytes += n;
                let _ = a.handle_datagram(now, &buf[..n], &mut pools.0, &mut screen, rng);
            }
        }
        while let Some(e) = a.poll_event() {
            if let InvitationEvent::Ended(o) = e {
                a_done = o == Outcome::Accepted;
            }
        }
        assert!(moved || (a_done && b_done), "stalled");
    }
    // Free the buffers as the linger's end would.
    let later = now + peercollab_core::invite::LINGER;
    a.handle_timeout(later, &mut pools.0, rng);
    if let Some(b) = b.as_mut() {
        b.handle_timeout(later, &mut pools.1, rng);
    }
    black_box((datagrams, bytes))
}

fn main() {
    let mut rng = HashDrbg::from_u64(1);
    let alice = LocalIdentity::generate(&mut rng, EndpointId(1));
    let bob = LocalIdentity::generate(&mut rng, EndpointId(1));
    let p = Peers {
        a_pins_b: PinnedPeer::new(&alice, *bob.certificate()).unwrap(),
        b_pins: vec![PinnedPeer::new(&bob, *alice.certificate()).unwrap()],
        alice,
        bob,
    };
    let mut pools = Box::new((DataPool::<1>::new(), DataPool::<1>::new()));
    let data_16k = vec![0x5a; MAX_APP_DATA];

    let names =
        ["session IK, 1 message each way", "invitation, no data", "invitation, 16 KiB data"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut ratios = Vec::new();
    for _ in 0..ROUNDS {
        let r = [
            rate(ROUND_TIME, || session_only(&p, &mut rng)),
            rate(ROUND_TIME, || {
                invitation(&p, &[], &mut pools, &mut rng);
            }),
            rate(ROUND_TIME, || {
                invitation(&p, &data_16k, &mut pools, &mut rng);
            }),
        ];
        ratios.push(r[1] / r[0]);
        for (v, x) in rates.iter_mut().zip(r) {
            v.push(x);
        }
    }
    println!("{ROUNDS} rounds x {ROUND_TIME:?}, medians:");
    for (name, v) in names.iter().zip(rates) {
        println!("  {name:<32} {:>9.0} /s", median(v));
    }
    println!("  ratio invitation/session (per round) {:.3}", median(ratios));
    println!("on the wire (IK, 7-byte message, clean link):");
    for (label, data) in [("no data", &[][..]), ("16 KiB data", &data_16k[..])] {
        let (d, b) = invitation(&p, data, &mut pools, &mut rng);
        println!("  {label:<12} {d} datagrams, {b} bytes");
    }
    println!("sizes (bytes):");
    println!("  Invitation              {}", size_of::<Invitation>());
    println!("    of which Session      {}", size_of::<Session>());
    println!("  body buffer (pool slot) {}", size_of::<DataPool<1>>());
}

//! Handshakes per second: peercollab's Noise engine and sessions against
//! `snow`, measured side by side in one run, plus the sizes of the states.
//!
//! ```text
//! cargo run --release -p peercollab-tests --example handshake_bench
//! ```
//!
//! Each figure is the median of several rounds; in each round every
//! contender runs for the same wall time, interleaved, and ratios are taken
//! round by round, so a machine that slows down mid-run slows everyone.

use std::hint::black_box;
use std::time::Duration;

use peercollab_tests::bench::{median, rate};

use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::noise::{
    HandshakePattern, HandshakeState, KeyPair, Role, StaticDhCache, TransportState, dh,
};
use peercollab_core::session::{Incoming, PinnedPeer, Session, StatementForm};
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{HashDrbg, Instant};

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(400);
const PAYLOAD: &[u8] = b"invitation-sized payload: app id, expiry, message....";

struct Ss([u8; 32], [u8; 32]);
impl StaticDhCache for Ss {
    fn static_dh(&self, rs: &[u8; 32]) -> Option<[u8; 32]> {
        (rs == &self.0).then_some(self.1)
    }
}

/// One handshake + one transport message each way with our engine.
fn ours(
    pattern: HandshakePattern,
    si: &KeyPair,
    sr: &KeyPair,
    ss: Option<[u8; 32]>,
    rng: &mut HashDrbg,
) {
    let ik = pattern == HandshakePattern::IK;
    let mut i = HandshakeState::new(
        pattern,
        Role::Initiator,
        b"bench",
        Some(si.clone()),
        ik.then(|| *sr.public()),
        None,
    )
    .unwrap();
    if let Some(ss) = ss {
        i = i.with_precomputed_ss(ss);
    }
    let mut r =
        HandshakeState::new(pattern, Role::Responder, b"bench", Some(sr.clone()), None, None)
            .unwrap();
    let cache = ss.map(|ss| Ss(*si.public(), ss));
    let mut m = [0u8; 512];
    let mut p = [0u8; 512];
    let mut turn = 0;
    while !(i.is_finished() && r.is_finished()) {
        let (w, rd) = if turn % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
        let n = w.write_message(PAYLOAD, &mut m, rng).unwrap();
        match &cache {
            Some(c) if turn == 0 => rd.read_message_with(&m[..n], &mut p, c).unwrap(),
            _ => rd.read_message(&m[..n], &mut p).unwrap(),
        };
        turn += 1;
    }
    let (mut ti, mut tr): (TransportState, TransportState) =
        (i.into_transport().unwrap(), r.into_transport().unwrap());
    let n = ti.write_message(PAYLOAD, &mut m).unwrap();
    tr.read_message(&m[..n], &mut p).unwrap();
    let n = tr.write_message(PAYLOAD, &mut m).unwrap();
    black_box(ti.read_message(&m[..n], &mut p).unwrap());
}

/// The same with snow.
fn snow_run(name: &str, si: &[u8; 32], sr: &[u8; 32], sr_pub: &[u8; 32]) {
    let params: snow::params::NoiseParams = name.parse().unwrap();
    let mut ib = snow::Builder::new(params.clone())
        .local_private_key(si)
        .unwrap()
        .prologue(b"bench")
        .unwrap();
    if name.contains("_IK_") {
        ib = ib.remote_public_key(sr_pub).unwrap();
    }
    let mut i = ib.build_initiator().unwrap();
    let mut r = snow::Builder::new(params)
        .local_private_key(sr)
        .unwrap()
        .prologue(b"bench")
        .unwrap()
        .build_responder()
        .unwrap();
    let mut m = [0u8; 512];
    let mut p = [0u8; 512];
    let mut turn = 0;
    while !(i.is_handshake_finished() && r.is_handshake_finished()) {
        let (w, rd) = if turn % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
        let n = w.write_message(PAYLOAD, &mut m).unwrap();
        rd.read_message(&m[..n], &mut p).unwrap();
        turn += 1;
    }
    let mut ti = i.into_transport_mode().unwrap();
    let mut tr = r.into_transport_mode().unwrap();
    let n = ti.write_message(PAYLOAD, &mut m).unwrap();
    tr.read_message(&m[..n], &mut p).unwrap();
    let n = tr.write_message(PAYLOAD, &mut m).unwrap();
    black_box(ti.read_message(&m[..n], &mut p).unwrap());
}

/// A full peercollab session handshake (frames, MACs, identity statements
/// and their checks) plus one transport payload each way.
fn session(
    contact: bool,
    alice: &LocalIdentity,
    bob: &LocalIdentity,
    a_pins_b: &PinnedPeer,
    b_pins: &[PinnedPeer],
    rng: &mut HashDrbg,
) {
    let now = Instant::ZERO;
    let mut a = if contact {
        Session::initiate_contact(alice, a_pins_b, 1, StatementForm::Certificate, now, rng).unwrap()
    } else {
        Session::initiate_endpoint(alice, None, 1, now, rng).unwrap()
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut out = [0u8; MAX_DATAGRAM];
    let n = a.poll_transmit(now, &mut buf).unwrap();
    let mut b = Incoming::read(bob, b_pins, &buf[..n]).unwrap().accept(bob, 2, now, rng).unwrap();
    let n = b.poll_transmit(now, &mut buf).unwrap();
    let _ = a.handle_datagram(now, &buf[..n], &mut out, rng).unwrap();
    if !contact {
        let n = a.poll_transmit(now, &mut buf).unwrap();
        let _ = b.handle_datagram(now, &buf[..n], &mut out, rng).unwrap();
    }
    let n = a.send(now, PAYLOAD, &mut buf).unwrap();
    let _ = b.handle_datagram(now, &buf[..n], &mut out, rng).unwrap();
    let n = b.send(now, PAYLOAD, &mut buf).unwrap();
    let _ = black_box(a.handle_datagram(now, &buf[..n], &mut out, rng).unwrap());
}

fn main() {
    let mut rng = HashDrbg::from_u64(1);
    let si = KeyPair::generate(&mut rng);
    let sr = KeyPair::generate(&mut rng);
    let ss = dh(&si, sr.public()).unwrap();
    let (si_b, sr_b, sr_pub) = (si.secret_bytes(), sr.secret_bytes(), *sr.public());
    let alice = LocalIdentity::generate(&mut rng, EndpointId(1));
    let bob = LocalIdentity::generate(&mut rng, EndpointId(1));
    let a_pins_b = PinnedPeer::new(&alice, *bob.certificate()).unwrap();
    let b_pins = vec![PinnedPeer::new(&bob, *alice.certificate()).unwrap()];

    let names = [
        "ours IK (precomputed ss)",
        "ours IK (no precompute)",
        "snow IK",
        "ours XX",
        "snow XX",
        "session IK (contact)",
        "session XX (endpoint)",
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut ratio_ik = Vec::new();
    let mut ratio_xx = Vec::new();
    for _ in 0..ROUNDS {
        let r = [
            rate(ROUND_TIME, || ours(HandshakePattern::IK, &si, &sr, Some(ss), &mut rng)),
            rate(ROUND_TIME, || ours(HandshakePattern::IK, &si, &sr, None, &mut rng)),
            rate(ROUND_TIME, || {
                snow_run("Noise_IK_25519_ChaChaPoly_SHA256", &si_b, &sr_b, &sr_pub)
            }),
            rate(ROUND_TIME, || ours(HandshakePattern::XX, &si, &sr, None, &mut rng)),
            rate(ROUND_TIME, || {
                snow_run("Noise_XX_25519_ChaChaPoly_SHA256", &si_b, &sr_b, &sr_pub)
            }),
            rate(ROUND_TIME, || session(true, &alice, &bob, &a_pins_b, &b_pins, &mut rng)),
            rate(ROUND_TIME, || session(false, &alice, &bob, &a_pins_b, &b_pins, &mut rng)),
        ];
        ratio_ik.push(r[0] / r[2]);
        ratio_xx.push(r[3] / r[4]);
        for (v, x) in rates.iter_mut().zip(r) {
            v.push(x);
        }
    }
    println!(
        "handshake + one transport message each way, {ROUNDS} rounds x {ROUND_TIME:?}, medians:"
    );
    for (name, v) in names.iter().zip(rates) {
        println!("  {name:<26} {:>9.0} handshakes/s", median(v));
    }
    println!("  ratio ours/snow IK (precomputed, per round) {:.3}", median(ratio_ik));
    println!("  ratio ours/snow XX (per round)              {:.3}", median(ratio_xx));
    println!("sizes (bytes):");
    println!("  HandshakeState  {}", size_of::<HandshakeState>());
    println!("  TransportState  {}", size_of::<TransportState>());
    println!("  Session         {}", size_of::<Session>());
    println!("  Incoming        {}", size_of::<Incoming>());
    println!("  PinnedPeer      {}", size_of::<PinnedPeer>());
    println!("  LocalIdentity   {}", size_of::<LocalIdentity>());
}
